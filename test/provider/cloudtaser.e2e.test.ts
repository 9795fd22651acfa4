/**
 * terraform-provider-cloudtaser driven by the real terraform binary (offline) against the OpenBao test
 * server. One long-lived provider serves every command through TF_REATTACH_PROVIDERS; mirror.e2e.test.ts
 * covers the path where terraform installs and spawns the bundle itself.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cloudtaserSchemas, createCloudtaserProvider } from '../../provider/cloudtaser.js';
import { type ProviderServerHandle, startProviderServer } from '../../provider/framework/serve-provider.js';
import { exportSchemaJson } from '../../provider/schema/schema.js';
import { silentProviderLogger } from '../../provider/wire/hclog.js';
import { initHash, sha256Hex } from '../../runtime/core/hashes.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { deregisterCluster, getClusterStatus, registerCluster } from '../../runtime/registration/index.js';
import { provisionIdentities } from '../openbao-identities.js';
import { createWorkspace, type TerraformWorkspace } from './support/terraform.js';

const FP = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const FP2 = '0b6e3c4e-1f2a-4d5b-9c8d-7e6f5a4b3c2d';

function mainTf(options: {
  address: string;
  fingerprint?: string;
  purge?: boolean;
  migration?: boolean;
  token?: string;
  extra?: string;
}) {
  return `
terraform {
  required_providers {
    cloudtaser = { source = "registry.terraform.io/cloudtaser/cloudtaser" }
  }
}
provider "cloudtaser" {
  secretstore_address = "${options.address}"
${options.token ? `  secretstore_token = "${options.token}"\n` : ''}}
resource "cloudtaser_cluster_registration" "prod" {
  fingerprint = ${options.fingerprint ?? `"${FP}"`}
${options.purge ? '  purge_on_destroy = true\n' : ''}${options.migration === undefined ? '' : `  migration_enabled = ${options.migration}\n`}}
output "init_hash" { value = cloudtaser_cluster_registration.prod.init_hash }
output "namespace" { value = cloudtaser_cluster_registration.prod.namespace }
output "operational_hash" { value = cloudtaser_cluster_registration.prod.operational_hash }
output "ca_cert_pem" { value = cloudtaser_cluster_registration.prod.ca_cert_pem }
${options.extra ?? ''}
`;
}

describe('cloudtaser_cluster_registration with the real terraform binary', () => {
  let openbao: OpenBaoTestServer;
  let provider: ProviderServerHandle;
  let ws: TerraformWorkspace;
  let admin: OpenBaoClient;
  /** What the provider runs with: exactly the shipped registrar policy. */
  let registrarToken: string;

  const outputs = async () => {
    const r = await ws.run(['output', '-json']);
    return Object.fromEntries(
      Object.entries(JSON.parse(r.stdout)).map(([k, v]) => [k, (v as { value: unknown }).value]),
    );
  };
  const status = (fingerprint = FP) => getClusterStatus(admin, { fingerprint });
  const errorsIn = (text: string) => text.match(/Error: /g)?.length ?? 0;

  beforeAll(async () => {
    openbao = await startOpenBaoTestServer();
    admin = new OpenBaoClient({ address: openbao.address, token: openbao.rootToken });
    registrarToken = (await provisionIdentities(admin)).registrarToken;
    // The provider reads the token from its environment, as it would from terraform's.
    provider = await startProviderServer(
      createCloudtaserProvider({ env: { CLOUDTASER_SECRETSTORE_TOKEN: registrarToken } }),
      { logger: silentProviderLogger },
    );
    ws = createWorkspace({ env: provider.reattachEnv });
  }, 30_000);

  afterAll(async () => {
    await provider?.close();
    await admin?.close();
    await openbao?.close();
    ws?.dispose();
  });

  it('plans init_hash, id and namespace before apply, then registers the cluster in OpenBao', async () => {
    ws.write('main.tf', mainTf({ address: openbao.address }));
    const plan = await ws.run(['plan', '-no-color']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain(`init_hash        = "${initHash(FP)}"`);
    expect(plan.stdout).toContain(`namespace        = "cloudtaser/${FP.slice(0, 8)}"`);
    expect(plan.stdout).toContain('operational_hash = (known after apply)');

    const apply = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(apply.code, apply.stderr).toBe(0);
    expect(apply.stdout).toContain('1 added, 0 changed, 0 destroyed');
    const s = await status();
    expect(s.registered).toBe(true);
    const out = await outputs();
    expect(out.init_hash).toBe(initHash(FP));
    expect(out.namespace).toBe(`cloudtaser/${FP.slice(0, 8)}`);
    expect(out.operational_hash).toBe(s.operationalHash);
    const der = Buffer.from(String(out.ca_cert_pem).replace(/-----[^-]+-----|\s/g, ''), 'base64');
    expect(sha256Hex(der)).toBe(out.operational_hash);
  });

  it('plans no changes on a second plan', async () => {
    const r = await ws.run(['plan', '-detailed-exitcode', '-no-color']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('No changes.');
  });

  it('keeps private keys and the token out of terraform.tfstate', () => {
    const state = readFileSync(join(ws.dir, 'terraform.tfstate'), 'utf8');
    expect(state).toContain('BEGIN CERTIFICATE');
    expect(state).not.toMatch(/PRIVATE KEY/);
    expect(state).not.toContain(registrarToken);
    const resource = JSON.parse(state).resources[0].instances[0];
    expect(Object.keys(resource.attributes).sort()).toEqual(
      [
        'adopt_existing',
        'attestation_issuer',
        'attestation_jwks',
        'attestation_service_account',
        'attested',
        'ca_cert_pem',
        'fingerprint',
        'id',
        'init_hash',
        'initialized',
        'migration_enabled',
        'namespace',
        'operational_hash',
        'purge_on_destroy',
        'tokenreview_ca_cert',
        'tokenreview_endpoint',
      ].sort(),
    );
  });

  it('switches migration_enabled in place, the registration record follows, and a CLI change shows as drift', async () => {
    ws.write('main.tf', mainTf({ address: openbao.address, migration: true }));
    const on = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(on.code, on.stderr).toBe(0);
    expect(on.stdout).toContain('0 added, 1 changed, 0 destroyed');
    expect((await status()).migrationEnabled).toBe(true);
    // Turned off behind Terraform's back (source register --no-migration): the next plan puts it back.
    await registerCluster(admin, { fingerprint: FP, migration: false });
    const drift = await ws.run(['plan', '-detailed-exitcode', '-no-color']);
    expect(drift.code, drift.stderr).toBe(2);
    expect(drift.stdout).toMatch(/migration_enabled\s+= false -> true/);
    ws.write('main.tf', mainTf({ address: openbao.address }));
    const off = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(off.code, off.stderr).toBe(0);
    expect((await status()).migrationEnabled).toBe(false);
    const quiet = await ws.run(['plan', '-detailed-exitcode', '-no-color']);
    expect(quiet.code, quiet.stdout).toBe(0);
  });

  it('sees an out-of-band deregistration as drift and re-registers on apply', async () => {
    await deregisterCluster(admin, { fingerprint: FP });
    expect((await status()).registered).toBe(false);
    const plan = await ws.run(['plan', '-detailed-exitcode', '-no-color']);
    expect(plan.code, plan.stderr).toBe(2);
    expect(plan.stdout).toContain('has been deleted');
    expect(plan.stdout).toContain('1 to add, 0 to change, 0 to destroy');
    const apply = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(apply.code, apply.stderr).toBe(0);
    expect((await status()).registered).toBe(true);
  });

  it('imports an existing registration by fingerprint after state rm, then plans no changes', async () => {
    expect((await ws.run(['state', 'rm', 'cloudtaser_cluster_registration.prod'])).code).toBe(0);
    const imported = await ws.run(['import', '-no-color', 'cloudtaser_cluster_registration.prod', FP]);
    expect(imported.code, imported.stdout + imported.stderr).toBe(0);
    expect(imported.stdout).toContain('Import successful');
    const plan = await ws.run(['plan', '-detailed-exitcode', '-no-color']);
    expect(plan.code, plan.stdout + plan.stderr).toBe(0);
  });

  it('refuses to import a fingerprint that is not registered with one readable error', async () => {
    ws.write(
      'other.tf',
      'resource "cloudtaser_cluster_registration" "other" {\n  fingerprint = "' + FP2 + '"\n}\n',
    );
    const r = await ws.run(['import', '-no-color', 'cloudtaser_cluster_registration.other', FP2]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Cannot import non-existent remote object');
    ws.write('other.tf', '');
  });

  it('destroy deregisters the cluster but keeps its workload secrets', async () => {
    const namespace = `cloudtaser/${FP.slice(0, 8)}`;
    await admin.withNamespace(namespace).kvWrite('secret', 'app/db', { password: 'kept' });
    const r = await ws.run(['destroy', '-auto-approve', '-no-color']);
    expect(r.code, r.stderr).toBe(0);
    expect((await status()).registered).toBe(false);
    const secret = await admin.withNamespace(namespace).kvRead('secret', 'app/db');
    expect(secret?.data).toEqual({ password: 'kept' });
  });

  it('destroy with purge_on_destroy removes the cluster namespace and its secrets', async () => {
    ws.write('main.tf', mainTf({ address: openbao.address, purge: true }));
    expect((await ws.run(['apply', '-auto-approve', '-no-color'])).code).toBe(0);
    expect((await status()).registered).toBe(true);
    const r = await ws.run(['destroy', '-auto-approve', '-no-color']);
    expect(r.code, r.stderr).toBe(0);
    expect((await status()).registered).toBe(false);
    expect(await admin.withNamespace('cloudtaser').readNamespace(FP.slice(0, 8))).toBeUndefined();
  });

  it('plans correctly when the fingerprint is unknown until apply', async () => {
    ws.write(
      'main.tf',
      mainTf({
        address: openbao.address,
        fingerprint: 'terraform_data.fp.output',
        extra: `resource "terraform_data" "fp" { input = "${FP2}" }`,
      }),
    );
    const plan = await ws.run(['plan', '-no-color']);
    expect(plan.code, plan.stderr).toBe(0);
    // Terraform aligns the `=` by the longest attribute name in the block, so only the spacing is free.
    expect(plan.stdout).toMatch(/fingerprint\s+= \(known after apply\)/);
    expect(plan.stdout).toMatch(/init_hash\s+= \(known after apply\)/);
    const apply = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(apply.code, apply.stderr).toBe(0);
    expect((await status(FP2)).registered).toBe(true);
    expect((await ws.run(['destroy', '-auto-approve', '-no-color'])).code).toBe(0);
  });

  it('reports an invalid fingerprint once, at plan time, pointing at the attribute', async () => {
    ws.write('main.tf', mainTf({ address: openbao.address, fingerprint: '"not-a-uuid"' }));
    const r = await ws.run(['plan', '-no-color']);
    expect(r.code).toBe(1);
    expect(errorsIn(r.stderr)).toBe(1);
    expect(r.stderr).toContain('Invalid value for fingerprint (CT_INVALID_ARGUMENT)');
    expect(r.stderr).toContain('must be a lower-case UUID');
    expect(r.stderr).toMatch(/on main\.tf line \d+, in resource "cloudtaser_cluster_registration" "prod"/);
  });

  it('reports a wrong token once, with the OpenBao error code and what to do', async () => {
    ws.write('main.tf', mainTf({ address: openbao.address, token: 'not-the-token' }));
    const r = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(r.code).toBe(1);
    expect(errorsIn(r.stderr)).toBe(1);
    expect(r.stderr).toContain('CT_OPENBAO_PERMISSION_DENIED');
    expect(r.stderr).not.toContain('not-the-token');
  });

  it('exports the same schema terraform reports (`terraform providers schema -json`), for binding generators, with every input that can carry a credential sensitive', async () => {
    ws.write('main.tf', mainTf({ address: openbao.address }));
    const r = await ws.run(['providers', 'schema', '-json']);
    expect(r.code, r.stderr).toBe(0);
    const reported = JSON.parse(r.stdout).provider_schemas['registry.terraform.io/cloudtaser/cloudtaser'];
    const strip = (block: Record<string, unknown>): unknown =>
      JSON.parse(JSON.stringify(block), (key, value) =>
        ['force_new', 'default', 'env', 'block_types', 'min_items', 'max_items', 'nesting_mode'].includes(key)
          ? undefined
          : value,
      );
    const ours = exportSchemaJson(cloudtaserSchemas.resources.cloudtaser_cluster_registration);
    expect(strip(ours.block as never)).toEqual(
      strip(reported.resource_schemas.cloudtaser_cluster_registration.block),
    );
    expect(
      reported.data_source_schemas.cloudtaser_cluster_fingerprint.block.block_types.exec.nesting_mode,
    ).toBe('single');
    expect(reported.provider.block.attributes.secretstore_token.sensitive).toBe(true);
    // Every fingerprint input that can carry a Kubernetes credential is sensitive as terraform sees it, in
    // the data source and in the provider's kubernetes block (so plans and `terraform show` redact it).
    const fingerprint = reported.data_source_schemas.cloudtaser_cluster_fingerprint.block;
    const kubernetes = reported.provider.block.block_types.kubernetes.block;
    for (const block of [fingerprint, kubernetes]) {
      expect(block.attributes.token.sensitive).toBe(true);
      expect(block.block_types.exec.block.attributes.args.sensitive).toBe(true);
      expect(block.block_types.exec.block.attributes.env.sensitive).toBe(true);
    }
  });

  it('reports an unreachable address once', async () => {
    ws.write('main.tf', mainTf({ address: 'http://127.0.0.1:9' }));
    const r = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(r.code).toBe(1);
    expect(errorsIn(r.stderr)).toBe(1);
    expect(r.stderr).toContain('CT_OPENBAO_UNREACHABLE');
  });
});
