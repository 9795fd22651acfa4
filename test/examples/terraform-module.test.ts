/**
 * The HCL module: the cloudtaser-only part (modules/registration) is applied and destroyed for real (terraform
 * 1.11, our provider from a filesystem mirror, the dev stack's OpenBao and Kubernetes test servers); the part
 * that needs hashicorp/helm (unreachable offline) is checked structurally.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { isBeaconAddress } from '../../constructs/validation.js';
import { installProviderMirror } from '../../provider/packaging/mirror.js';
import { type DevStack, startDevStack } from '../../runtime/dev/stack.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { getClusterStatus } from '../../runtime/registration/index.js';
import { secretsIn } from '../constructs/synth.js';
import { testBundle } from '../provider/support/bundle.js';
import { createWorkspace, TERRAFORM, type TerraformWorkspace } from '../provider/support/terraform.js';
import { argumentNames, blocksOf, namesOf, readHclModule, variableReferences } from './hcl.js';

const MODULE_DIR = resolve(import.meta.dirname, '../../examples/terraform-module');
const root = readHclModule(MODULE_DIR);
const registration = readHclModule(join(MODULE_DIR, 'modules/registration'));
const operator = readHclModule(join(MODULE_DIR, 'modules/operator'));
const submodules = { registration, operator } as const;

describe('examples/terraform-module structure', () => {
  it('takes the inputs HCL users need and gives the outputs they use', () => {
    expect(namesOf(root, 'variable')).toEqual(
      expect.arrayContaining([
        'secretstore_address',
        'beacon_address',
        'fingerprint',
        'kubeconfig_path',
        'host',
        'cluster_ca_certificate',
        'exec',
        'chart_version',
        'deploy_operator',
      ]),
    );
    expect(namesOf(root, 'output')).toEqual(
      expect.arrayContaining([
        'fingerprint',
        'namespace',
        'init_hash',
        'operational_hash',
        'operator_values',
      ]),
    );
    for (const module of [root, registration, operator]) {
      expect(module.text).not.toMatch(/secretstore_token|null_resource|local-exec/);
      for (const block of blocksOf(module, 'variable')) {
        expect(block.body, `${module.dir} variable ${block.labels[0]}`).toMatch(/description\s*=/);
      }
    }
  });

  it.each([
    ['root', root],
    ['modules/registration', registration],
    ['modules/operator', operator],
  ])('%s declares every variable it uses and uses every variable it declares', (_name, module) => {
    const declared = new Set(namesOf(module, 'variable'));
    const used = variableReferences(module);
    expect([...used].filter((v) => !declared.has(v))).toEqual([]);
    expect([...declared].filter((v) => !used.has(v))).toEqual([]);
  });

  it('wires each module call to variables and outputs the inner module really has', () => {
    for (const call of blocksOf(root, 'module')) {
      const name = call.labels[0] as keyof typeof submodules;
      const inner = submodules[name];
      expect(inner, `module ${name}`).toBeDefined();
      expect(call.body).toContain(`source = "./modules/${name}"`);
      const innerVariables = blocksOf(inner, 'variable');
      const passed = argumentNames(call.body).filter(
        (a) => !['source', 'count', 'for_each', 'depends_on', 'providers'].includes(a),
      );
      expect(passed.filter((a) => !innerVariables.some((v) => v.labels[0] === a))).toEqual([]);
      const required = innerVariables.filter((v) => !/\bdefault\s*=/.test(v.body)).map((v) => v.labels[0]);
      expect(
        required.filter((r) => !passed.includes(r)),
        `required inputs of ${name}`,
      ).toEqual([]);
    }
    for (const reference of root.text.matchAll(/\bmodule\.([a-z_]+)(?:\[\d+\])?\.([a-z_]+)/g)) {
      const inner = submodules[reference[1] as keyof typeof submodules];
      expect(namesOf(inner, 'output'), `module.${reference[1]}.${reference[2]}`).toContain(reference[2]);
    }
  });

  it('keeps provider configuration out of the reusable inner modules and pins the CA in the operator release', () => {
    expect(blocksOf(registration, 'provider')).toEqual([]);
    expect(blocksOf(operator, 'provider')).toEqual([]);
    expect(namesOf(root, 'provider').sort()).toEqual(['cloudtaser', 'helm']);
    expect(registration.text).toMatch(/source\s*=\s*"cloudtaser\/cloudtaser"/);
    expect(registration.text).not.toMatch(/hashicorp\/helm/);
    expect(operator.text).toMatch(
      /name\s*=\s*"operator\.broker\.beacon\.address"\s+value\s*=\s*var\.beacon_address/,
    );
    expect(operator.text).toMatch(
      /name\s*=\s*"operator\.broker\.trust\.caSha256"\s+value\s*=\s*var\.ca_sha256/,
    );
    expect(root.text).toMatch(/ca_sha256\s*=\s*module\.registration\.operational_hash/);
  });

  it('is formatted as terraform fmt wants and its beacon address rule matches the constructs', () => {
    const env = { ...process.env, TF_CLI_CONFIG_FILE: '/dev/null', CHECKPOINT_DISABLE: '1' };
    execFileSync(TERRAFORM, ['fmt', '-check', '-recursive', MODULE_DIR], { env, stdio: 'pipe' });
    const rule = /regex\("((?:[^"\\]|\\.)*)", var\.beacon_address\)/.exec(operator.text)![1];
    const addresses = [
      'beacon.example.com:443',
      '[::1]:443',
      'wss://b.example.com/x',
      'beacon.example.com',
      'https://b:1',
      '',
    ];
    const scratch = mkdtempSync(join(tmpdir(), 'ct-console-'));
    try {
      const expression = `[${addresses.map((a) => `can(regex("${rule}", "${a}"))`).join(', ')}]`;
      const out = execFileSync(TERRAFORM, ['console'], {
        cwd: scratch,
        env,
        input: `jsonencode(${expression})\n`,
      }).toString();
      expect(JSON.parse(JSON.parse(out.trim()))).toEqual(addresses.map(isBeaconAddress));
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});

describe('examples/terraform-module registration, applied for real', () => {
  let dev: DevStack;
  let workspace: TerraformWorkspace;
  let mirrorDir: string;

  beforeAll(async () => {
    dev = await startDevStack();
    mirrorDir = mkdtempSync(join(tmpdir(), 'ct-mirror-'));
    const mirror = installProviderMirror(mirrorDir, {
      bundlePath: await testBundle(),
      platforms: ['linux_amd64'],
    });
    workspace = createWorkspace({
      cliConfig: `disable_checkpoint = true\n${mirror.cliConfig}`,
      env: { CLOUDTASER_SECRETSTORE_TOKEN: dev.registrarToken },
    });
  }, 120_000);

  afterAll(async () => {
    workspace?.dispose();
    if (mirrorDir) rmSync(mirrorDir, { recursive: true, force: true });
    await dev?.close();
  });

  it('registers the cluster read through a kubeconfig, outputs its hashes, and deregisters on destroy', async () => {
    workspace.write(
      'main.tf',
      [
        'terraform {\n  required_providers {\n    cloudtaser = { source = "cloudtaser/cloudtaser" }\n  }\n}',
        `provider "cloudtaser" {\n  secretstore_address = "${dev.secretstoreAddress}"\n}`,
        `module "registration" {\n  source          = "${join(MODULE_DIR, 'modules/registration')}"\n  kubeconfig_path = "${dev.kubeconfig}"\n}`,
        'output "fingerprint" {\n  value = module.registration.fingerprint\n}',
        'output "namespace" {\n  value = module.registration.namespace\n}',
        'output "operational_hash" {\n  value = module.registration.operational_hash\n}',
        'output "attested" {\n  value = module.registration.attested\n}',
      ].join('\n\n'),
    );
    const client = new OpenBaoClient({ address: dev.secretstoreAddress, token: dev.secretstoreToken });

    const init = await workspace.run(['init', '-input=false', '-no-color']);
    expect(init.code, init.stderr + init.stdout).toBe(0);
    const apply = await workspace.run(['apply', '-auto-approve', '-input=false', '-no-color']);
    expect(apply.code, apply.stderr + apply.stdout).toBe(0);

    const outputs = JSON.parse((await workspace.run(['output', '-json'])).stdout);
    expect(outputs.fingerprint.value).toBe(dev.kubeSystemUid);
    expect(outputs.namespace.value).toBe(`cloudtaser/${dev.kubeSystemUid.slice(0, 8)}`);
    expect(outputs.operational_hash.value).toMatch(/^[0-9a-f]{64}$/);
    const status = await getClusterStatus(client, { fingerprint: dev.kubeSystemUid });
    expect(status.registered).toBe(true);
    // Attestation is on by default: issuer and keys were read through the same kubeconfig.
    expect(outputs.attested.value).toBe(true);
    expect(status.attestation?.issuer).toEqual(expect.stringMatching(/^https:\/\//));
    expect(status.attestation?.serviceAccount).toEqual({
      namespace: 'cloudtaser-system',
      name: 'cloudtaser',
    });

    const state = readFileSync(join(workspace.dir, 'terraform.tfstate'), 'utf8');
    expect(secretsIn(state, [dev.secretstoreToken, dev.registrarToken])).toEqual([]);

    const plan = await workspace.run(['plan', '-detailed-exitcode', '-input=false', '-no-color']);
    expect(plan.code, plan.stdout).toBe(0);

    const destroy = await workspace.run(['destroy', '-auto-approve', '-input=false', '-no-color']);
    expect(destroy.code, destroy.stderr).toBe(0);
    expect((await getClusterStatus(client, { fingerprint: dev.kubeSystemUid })).registered).toBe(false);
  }, 120_000);

  it('reads the fingerprint at plan time through host, token and CA given as variables', async () => {
    const kubeconfig = parse(readFileSync(dev.kubeconfig, 'utf8'));
    const caPem = Buffer.from(
      kubeconfig.clusters[0].cluster['certificate-authority-data'],
      'base64',
    ).toString();
    workspace.write(
      'main.tf',
      [
        'terraform {\n  required_providers {\n    cloudtaser = { source = "cloudtaser/cloudtaser" }\n  }\n}',
        `provider "cloudtaser" {\n  secretstore_address = "${dev.secretstoreAddress}"\n}`,
        'variable "host" {}\nvariable "ca" {}\nvariable "token" {\n  sensitive = true\n}',
        `module "registration" {\n  source                 = "${join(MODULE_DIR, 'modules/registration')}"\n  host                   = var.host\n  token                  = var.token\n  cluster_ca_certificate = var.ca\n}`,
      ].join('\n\n'),
    );
    const vars = { TF_VAR_host: dev.kubeUrl, TF_VAR_ca: caPem, TF_VAR_token: dev.kubeAdminToken };
    const init = await workspace.run(['init', '-input=false', '-no-color']);
    expect(init.code, init.stderr).toBe(0);
    const plan = await workspace.run(['plan', '-input=false', '-no-color', '-out=plan.bin'], vars);
    expect(plan.code, plan.stderr + plan.stdout).toBe(0);
    const shown = JSON.parse((await workspace.run(['show', '-json', 'plan.bin'], vars)).stdout);
    const change = shown.resource_changes.find(
      (c: { type: string }) => c.type === 'cloudtaser_cluster_registration',
    );
    expect(change.change.actions).toEqual(['create']);
    expect(change.change.after.fingerprint).toBe(dev.kubeSystemUid);
  }, 120_000);
});
