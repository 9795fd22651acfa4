/**
 * What the provider knows at plan time, with the real terraform binary against the OpenBao test server:
 * - provider arguments computed from a resource created in the same run (unknown during plan);
 * - a missing token or address, or an unusable one, fails `terraform plan`, not apply;
 * - a registration that already exists outside this state is refused (import it, or adopt_existing).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCloudtaserProvider } from '../../provider/cloudtaser.js';
import { type ProviderServerHandle, startProviderServer } from '../../provider/framework/serve-provider.js';
import { silentProviderLogger } from '../../provider/wire/hclog.js';
import { initHash } from '../../runtime/core/hashes.js';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { deregisterCluster, getClusterStatus, registerCluster } from '../../runtime/registration/index.js';
import { createWorkspace, type TerraformWorkspace } from './support/terraform.js';

const HEADER = `terraform {
  required_providers {
    cloudtaser = { source = "registry.terraform.io/cloudtaser/cloudtaser" }
  }
}
`;
const FP = '1d2e3f40-5a6b-4c7d-8e9f-a0b1c2d3e4f5';
const FP_NEW = '2e3f4051-6b7c-4d8e-9fa0-b1c2d3e4f506';
const FP_CLI = '3f405162-7c8d-4e9f-a0b1-c2d3e4f50617';
const FP_ADOPT = '40516273-8d9e-4fa0-b1c2-d3e4f5061728';
const FP_RACE = '51627384-9eaf-40b1-82d3-e4f506172839';

/** Terraform wraps long messages at ~80 columns; compare with whitespace collapsed. */
const flat = (text: string) => text.replace(/\s+/g, ' ');

describe('plan-time knowledge of the cloudtaser provider (real terraform)', () => {
  let openbao: OpenBaoTestServer;
  let admin: OpenBaoClient;
  let withToken: ProviderServerHandle;
  let withoutToken: ProviderServerHandle;
  const workspaces: TerraformWorkspace[] = [];
  const workspace = (provider: ProviderServerHandle, env: Record<string, string> = {}) => {
    const ws = createWorkspace({ env: { ...provider.reattachEnv, ...env } });
    workspaces.push(ws);
    return ws;
  };
  const registered = async (fingerprint: string) =>
    (await getClusterStatus(admin, { fingerprint })).registered;

  beforeAll(async () => {
    openbao = await startOpenBaoTestServer();
    admin = new OpenBaoClient({ address: openbao.address, token: openbao.rootToken });
    withToken = await startProviderServer(
      createCloudtaserProvider({ env: { CLOUDTASER_SECRETSTORE_TOKEN: openbao.rootToken } }),
      { logger: silentProviderLogger },
    );
    withoutToken = await startProviderServer(createCloudtaserProvider({ env: {} }), {
      logger: silentProviderLogger,
    });
  }, 30_000);
  afterAll(async () => {
    await withToken?.close();
    await withoutToken?.close();
    await admin?.close();
    await openbao?.close();
    for (const ws of workspaces) ws.dispose();
  });

  describe('provider arguments known only during apply', () => {
    let ws: TerraformWorkspace;
    const config = (address: string, extra = '') => `${HEADER}
resource "terraform_data" "openbao" { input = "${openbao.address}" }
provider "cloudtaser" { secretstore_address = ${address} }
resource "cloudtaser_cluster_registration" "prod" { fingerprint = "${FP}" }
${extra}`;

    beforeAll(async () => {
      ws = workspace(withToken);
      ws.write('main.tf', config(`"${openbao.address}"`));
      const first = await ws.run(['apply', '-auto-approve', '-no-color']);
      expect(first.code, first.stdout + first.stderr).toBe(0);
    }, 60_000);

    it('plans with the registration as stored and a warning that says what is happening, instead of failing', async () => {
      // Now the address comes from a resource that does not exist yet (a new terraform_data replaces it).
      ws.write(
        'main.tf',
        config(
          'terraform_data.next.output',
          'resource "terraform_data" "next" { input = "' + openbao.address + '" }\n',
        ),
      );
      const plan = await ws.run(['plan', '-no-color', '-detailed-exitcode']);
      expect(plan.code, plan.stdout + plan.stderr).toBe(2);
      const text = flat(plan.stdout + plan.stderr);
      expect(text).not.toContain('CT_PROVIDER_NOT_CONFIGURED');
      expect(text).not.toContain('configures it again once they are');
      expect(text).toContain('Warning: Registration not refreshed: provider configuration not known yet');
      expect(text).toContain(
        'The cloudtaser provider arguments secretstore_address depend on values Terraform only knows during apply',
      );
      expect(text).toContain(`shows the registration of cluster ${FP} as stored in the state`);
      // Only the new terraform_data is planned; the registration itself has no change.
      expect(text).toContain('Plan: 1 to add, 0 to change, 0 to destroy.');
      expect(text).not.toContain('cloudtaser_cluster_registration.prod will be');
    });

    it('marks what depends on unknown arguments as unknown when creating, and applies with the final values', async () => {
      ws.write(
        'main.tf',
        `${config('terraform_data.next.output', `resource "terraform_data" "next" { input = "${openbao.address}" }\n`)}
resource "terraform_data" "root" { input = "cloudtaser" }
resource "cloudtaser_cluster_registration" "new" { fingerprint = "${FP_NEW}" }
`.replace(
          'provider "cloudtaser" { secretstore_address = terraform_data.next.output }',
          'provider "cloudtaser" {\n  secretstore_address = terraform_data.next.output\n  namespace_root = terraform_data.root.output\n}',
        ),
      );
      const plan = await ws.run(['plan', '-no-color']);
      expect(plan.code, plan.stdout + plan.stderr).toBe(0);
      const planned = plan.stdout.slice(
        plan.stdout.indexOf('cloudtaser_cluster_registration.new will be created'),
      );
      // init_hash is a pure function of the fingerprint; the namespace depends on the unknown namespace_root.
      expect(planned).toMatch(new RegExp(`init_hash +\\= "${initHash(FP_NEW)}"`));
      expect(planned).toMatch(/namespace += \(known after apply\)/);

      const apply = await ws.run(['apply', '-auto-approve', '-no-color']);
      expect(apply.code, apply.stdout + apply.stderr).toBe(0);
      expect(await registered(FP_NEW)).toBe(true);
      const again = await ws.run(['plan', '-no-color', '-detailed-exitcode']);
      expect(again.code, again.stdout + again.stderr).toBe(0);
      expect(again.stdout + again.stderr).not.toContain('Registration not refreshed');
    });

    afterAll(async () => {
      const destroyed = await ws.run(['destroy', '-auto-approve', '-no-color']);
      expect(destroyed.code, destroyed.stdout + destroyed.stderr).toBe(0);
    });
  });

  describe('missing or unusable settings fail the plan', () => {
    const registration = `resource "cloudtaser_cluster_registration" "prod" { fingerprint = "${FP_CLI}" }\n`;

    it('without any token, `terraform plan` fails (not apply) and says where a token goes', async () => {
      const ws = workspace(withoutToken);
      ws.write(
        'main.tf',
        `${HEADER}provider "cloudtaser" { secretstore_address = "${openbao.address}" }\n${registration}`,
      );
      const plan = await ws.run(['plan', '-no-color']);
      expect(plan.code).toBe(1);
      expect(plan.stderr.match(/Error: /g), plan.stderr).toHaveLength(1);
      const text = flat(plan.stderr);
      expect(text).toContain('CT_TOKEN_MISSING');
      expect(text).toContain('set CLOUDTASER_SECRETSTORE_TOKEN (or BAO_TOKEN / VAULT_TOKEN)');
      expect(text).toContain('with cloudtaser_cluster_registration.prod');
      expect(await registered(FP_CLI)).toBe(false);
    });

    it('without any address, `terraform plan` fails and names the variables', async () => {
      const ws = workspace(withToken);
      ws.write('main.tf', `${HEADER}provider "cloudtaser" {}\n${registration}`);
      const plan = await ws.run(['plan', '-no-color']);
      expect(plan.code).toBe(1);
      expect(flat(plan.stderr)).toContain(
        'no OpenBao address: set secretstore_address in the cloudtaser provider block or CLOUDTASER_SECRETSTORE_ADDRESS / BAO_ADDR / VAULT_ADDR',
      );
    });

    it('an address from the environment that is not a URL fails the plan on the provider block', async () => {
      const ws = workspace(withToken);
      ws.write('main.tf', `${HEADER}provider "cloudtaser" {}\n${registration}`);
      // The environment reaches the provider process through terraform; the in-process server reads its
      // own env, so this case uses a provider built with that environment.
      const provider = await startProviderServer(
        createCloudtaserProvider({
          env: { CLOUDTASER_SECRETSTORE_TOKEN: 't', CLOUDTASER_SECRETSTORE_ADDRESS: 'openbao:8200' },
        }),
        { logger: silentProviderLogger },
      );
      try {
        // Terraform 1.11 checks provider configuration during plan (not `terraform validate`).
        const validate = await ws.run(['plan', '-no-color'], provider.reattachEnv);
        expect(validate.code).toBe(1);
        const text = flat(validate.stderr);
        expect(text).toContain('Invalid OpenBao address in the environment');
        expect(text).toContain(
          'CLOUDTASER_SECRETSTORE_ADDRESS is set to "openbao:8200" is not an http(s) URL',
        );
        expect(text).toMatch(/on main\.tf line \d+, in provider "cloudtaser"/);
      } finally {
        await provider.close();
      }
    });

    it('a namespace_root the registration would refuse is refused at plan, on the attribute', async () => {
      const ws = workspace(withToken);
      ws.write(
        'main.tf',
        `${HEADER}provider "cloudtaser" {\n  secretstore_address = "${openbao.address}"\n  namespace_root = "team/cloudtaser"\n}\n${registration}`,
      );
      const plan = await ws.run(['plan', '-no-color']);
      expect(plan.code).toBe(1);
      const text = flat(plan.stderr);
      expect(text).toContain('Invalid value for namespace_root');
      expect(text).toContain('is not a usable OpenBao namespace name');
      expect(text).toContain('namespace_root = "team/cloudtaser"');
    });

    it('a configuration that only reads a fingerprint still plans without any OpenBao token', async () => {
      const ws = workspace(withoutToken);
      ws.write('main.tf', `${HEADER}output "ns" { value = provider::cloudtaser::namespace("${FP_CLI}") }\n`);
      const plan = await ws.run(['plan', '-no-color']);
      expect(plan.code, plan.stdout + plan.stderr).toBe(0);
    });
  });

  describe('one owner per registration', () => {
    it('refuses, at plan, to create a registration the CLI already made, with the import command; the import then plans clean', async () => {
      await registerCluster(admin, { fingerprint: FP_CLI });
      const ws = workspace(withToken);
      ws.write(
        'main.tf',
        `${HEADER}provider "cloudtaser" { secretstore_address = "${openbao.address}" }
resource "cloudtaser_cluster_registration" "prod" { fingerprint = "${FP_CLI}" }
`,
      );
      const plan = await ws.run(['plan', '-no-color']);
      expect(plan.code).toBe(1);
      expect(plan.stderr.match(/Error: /g), plan.stderr).toHaveLength(1);
      const text = flat(plan.stderr);
      expect(text).toContain('CT_REGISTRATION_EXISTS');
      expect(text).toContain(`cluster ${FP_CLI} is already registered in OpenBao`);
      expect(text).toContain(`terraform import cloudtaser_cluster_registration.<name> ${FP_CLI}`);
      expect(text).toContain('with cloudtaser_cluster_registration.prod');
      expect(text).toContain('set adopt_existing = true');

      // The command the message gives, with <name> filled in from Terraform's own "with ..." line.
      const imported = await ws.run(['import', '-no-color', 'cloudtaser_cluster_registration.prod', FP_CLI]);
      expect(imported.code, imported.stdout + imported.stderr).toBe(0);
      const clean = await ws.run(['plan', '-no-color', '-detailed-exitcode']);
      expect(clean.code, clean.stdout + clean.stderr).toBe(0);
    });

    it('adopts an existing registration only with adopt_existing = true', async () => {
      const before = await registerCluster(admin, { fingerprint: FP_ADOPT });
      const ws = workspace(withToken);
      ws.write(
        'main.tf',
        `${HEADER}provider "cloudtaser" { secretstore_address = "${openbao.address}" }
resource "cloudtaser_cluster_registration" "adopted" {
  fingerprint    = "${FP_ADOPT}"
  adopt_existing = true
}
`,
      );
      const apply = await ws.run(['apply', '-auto-approve', '-no-color']);
      expect(apply.code, apply.stdout + apply.stderr).toBe(0);
      const state = JSON.parse(readFileSync(join(ws.dir, 'terraform.tfstate'), 'utf8'));
      const attributes = state.resources[0].instances[0].attributes;
      expect(attributes.operational_hash).toBe(before.operationalHash);
      expect(attributes.adopt_existing).toBe(true);
      const clean = await ws.run(['plan', '-no-color', '-detailed-exitcode']);
      expect(clean.code, clean.stdout + clean.stderr).toBe(0);
    });

    it('refuses at apply a saved plan whose cluster was registered elsewhere after the plan', async () => {
      const ws = workspace(withToken);
      ws.write(
        'main.tf',
        `${HEADER}provider "cloudtaser" { secretstore_address = "${openbao.address}" }
resource "cloudtaser_cluster_registration" "late" { fingerprint = "${FP_RACE}" }
`,
      );
      const plan = await ws.run(['plan', '-no-color', '-out', 'late.plan']);
      expect(plan.code, plan.stdout + plan.stderr).toBe(0);
      const cli = await registerCluster(admin, { fingerprint: FP_RACE });
      const apply = await ws.run(['apply', '-no-color', 'late.plan']);
      expect(apply.code).toBe(1);
      expect(flat(apply.stderr)).toContain('CT_REGISTRATION_EXISTS');
      // The other owner's registration is untouched and this state did not take it.
      const status = await getClusterStatus(admin, { fingerprint: FP_RACE });
      expect(status.registered).toBe(true);
      expect(status.operationalHash).toBe(cli.operationalHash);
      const state = JSON.parse(readFileSync(join(ws.dir, 'terraform.tfstate'), 'utf8'));
      expect(state.resources.flatMap((r: { instances: unknown[] }) => r.instances)).toEqual([]);
      await deregisterCluster(admin, { fingerprint: FP_RACE });
    });
  });

  describe("the provider's kubernetes block, known only during apply", () => {
    let kube: KubeTestServer;
    beforeAll(async () => {
      kube = await startKubeTestServer();
    });
    afterAll(async () => {
      await kube?.close();
    });

    const config = (dependsOn: string) => `${HEADER}
variable "k8s_token" {
  type      = string
  sensitive = true
}
resource "terraform_data" "cluster" { input = "${kube.url}" }
provider "cloudtaser" {
  kubernetes {
    host                   = terraform_data.cluster.output
    token                  = var.k8s_token
    cluster_ca_certificate = file("\${path.module}/ca.pem")
  }
}
data "cloudtaser_cluster_fingerprint" "this" {${dependsOn}}
output "fingerprint" { value = data.cloudtaser_cluster_fingerprint.this.fingerprint }
`;

    it('says to add depends_on when a fingerprint read would need it during plan, and reads during apply with it', async () => {
      const ws = workspace(withoutToken, { TF_VAR_k8s_token: kube.adminToken });
      ws.write('ca.pem', kube.caCertPem ?? '');
      ws.write('main.tf', config(''));
      const plan = await ws.run(['plan', '-no-color']);
      expect(plan.code).toBe(1);
      const text = flat(plan.stderr);
      expect(text).toContain('CT_PROVIDER_CONFIG_UNKNOWN');
      expect(text).toContain(
        'add depends_on = [<the resource that creates the cluster>] to this data source',
      );

      ws.write('main.tf', config('\n  depends_on = [terraform_data.cluster]\n'));
      const deferred = await ws.run(['plan', '-no-color']);
      expect(deferred.code, deferred.stdout + deferred.stderr).toBe(0);
      expect(deferred.stdout).toContain('will be read during apply');
      const apply = await ws.run(['apply', '-auto-approve', '-no-color']);
      expect(apply.code, apply.stdout + apply.stderr).toBe(0);
      expect(JSON.parse((await ws.run(['output', '-json'])).stdout).fingerprint.value).toBe(
        kube.kubeSystemUid,
      );
    });
  });
});
