/**
 * Synthesizes the GKE, EKS and AKS example apps in-process, with the root node_modules (CI runs no npm install
 * in the example folders, so `cloudtaser/constructs` does not resolve from there). Each app's main.ts is
 * imported through a copy beside it whose one `cloudtaser/constructs` specifier points at the source entry;
 * everything else (cdktf, constructs, relative files) resolves exactly as in the example.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { secretsIn } from '../constructs/synth.js';

const EXAMPLES = resolve(import.meta.dirname, '../../examples');
const CONSTRUCTS_ENTRY = resolve(import.meta.dirname, '../../constructs/index.ts');
const scratch: string[] = [];
afterAll(() => {
  for (const path of scratch) rmSync(path, { recursive: true, force: true });
});

async function importExample(cloud: string): Promise<ExampleApp> {
  const main = readFileSync(join(EXAMPLES, cloud, 'main.ts'), 'utf8');
  const rewired = main.replace("from 'cloudtaser/constructs'", `from ${JSON.stringify(CONSTRUCTS_ENTRY)}`);
  expect(rewired).not.toBe(main);
  const copy = join(EXAMPLES, cloud, `.main.vitest-${process.pid}.ts`);
  writeFileSync(copy, rewired);
  scratch.push(copy);
  return (await import(copy)) as ExampleApp;
}

interface ExampleApp {
  createApp(options: { outdir?: string }): import('constructs').Construct & { synth(): void };
}

const clouds = [
  {
    cloud: 'gke',
    modules: {
      network: 'terraform-google-modules/network/google',
      gke: 'terraform-google-modules/kubernetes-engine/google',
    },
    execCommand: 'gke-gcloud-auth-plugin',
  },
  {
    cloud: 'eks',
    modules: { vpc: 'terraform-aws-modules/vpc/aws', eks: 'terraform-aws-modules/eks/aws' },
    execCommand: 'aws',
  },
  { cloud: 'aks', modules: { aks: 'Azure/aks/azurerm' }, execCommand: 'kubelogin' },
] as const;

describe.each(clouds)('examples/$cloud', ({ cloud, modules, execCommand }) => {
  const dir = join(EXAMPLES, cloud);

  async function synth() {
    const { createApp } = await importExample(cloud);
    const outdir = mkdtempSync(join(tmpdir(), `cloudtaser-example-${cloud}-`));
    scratch.push(outdir);
    const app = createApp({ outdir });
    app.synth();
    const read = (stack: string) =>
      JSON.parse(readFileSync(join(outdir, 'stacks', stack, 'cdk.tf.json'), 'utf8'));
    const manifest = JSON.parse(readFileSync(join(outdir, 'manifest.json'), 'utf8'));
    // What `cdktf synth` prints as warnings: the constructs' warning annotations.
    const warnings = app.node
      .findAll()
      .flatMap((node) => node.node.metadata)
      .filter((entry) => entry.type === '@cdktf/warn')
      .map((entry) => String(entry.data));
    return {
      outdir,
      manifest,
      warnings,
      cluster: read(`${cloud}-cluster`),
      cloudtaser: read(`${cloud}-cloudtaser`),
    };
  }

  it('ships its own package.json (cloudtaser from file:../.., installed as a copy), cdktf.json and a README', () => {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    expect(pkg.dependencies.cloudtaser).toBe('file:../..');
    expect(pkg.dependencies.cdktf).toBeDefined();
    expect(pkg.dependencies.constructs).toBeDefined();
    // The constructs declare their helm/kubernetes resources themselves: no prebuilt provider package.
    expect(Object.keys(pkg.dependencies).filter((d) => d.startsWith('@cdktf/'))).toEqual([]);
    // What cdktf.json runs must be installed by `npm install` in this folder, and npx must not fetch it instead.
    expect(pkg.devDependencies).toHaveProperty('tsx');
    expect(pkg.devDependencies).toHaveProperty('cdktf-cli');
    const cdktf = JSON.parse(readFileSync(join(dir, 'cdktf.json'), 'utf8'));
    expect(cdktf).toMatchObject({
      language: 'typescript',
      sendCrashReports: 'false',
      app: 'npx --no-install tsx main.ts',
    });
    expect(readFileSync(join(dir, '.npmrc'), 'utf8')).toMatch(/^install-links=true$/m);
    const readme = readFileSync(join(dir, 'README.md'), 'utf8');
    expect(readme).toMatch(/TerraformHclModule/);
    expect(readme).toMatch(/@cdktf\/provider-/);
    expect(readme).toMatch(/cross-stack/i);
  });

  it('has a README written for its cloud: what it creates, the requirements, and the commands in order', () => {
    const readme = readFileSync(join(dir, 'README.md'), 'utf8');
    const cloudName = cloud.toUpperCase();
    expect(readme).toMatch(new RegExp(`^# cloudtaser on ${cloudName} \\(CDKTF\\)`));
    // "a GKE" (gee), "an EKS", "an AKS": the article of the spoken letter.
    expect(readme).toMatch(new RegExp(`Creates ${cloud === 'gke' ? 'a' : 'an'} ${cloudName} cluster`));
    expect(readme).not.toMatch(/\ba [AEIOU][A-Z]{2}\b/);
    for (const section of ['## Requirements', '## Commands']) expect(readme).toContain(section);
    expect(readme).toContain(execCommand === 'aws' ? 'aws eks get-token' : execCommand);
    for (const module of Object.values(modules)) expect(readme).toContain(module);
    const commands = /## Commands\n\n```sh\n([\s\S]*?)```/.exec(readme)![1];
    const order = [
      `cd examples/${cloud}`,
      'npm install',
      'provider install --mirror',
      `npx cdktf deploy ${cloud}-cluster ${cloud}-cloudtaser`,
      `npx cdktf destroy ${cloud}-cloudtaser ${cloud}-cluster`,
    ];
    const positions = order.map((c) => commands.indexOf(c));
    expect(positions, commands).not.toContain(-1);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
    expect(readme).not.toMatch(/without any npm install/);
  });

  it('keeps no lockfile in git: npm writes one on install and .gitignore ignores it', () => {
    const lockfile = `examples/${cloud}/package-lock.json`;
    const ignored = spawnSync('git', ['check-ignore', '-q', lockfile], { cwd: join(EXAMPLES, '..') });
    expect(ignored.status, `${lockfile} is ignored`).toBe(0);
    const tracked = spawnSync('git', ['ls-files', '--error-unmatch', lockfile], {
      cwd: join(EXAMPLES, '..'),
    });
    expect(tracked.status, `${lockfile} is not tracked`).not.toBe(0);
  });

  it('imports cloudtaser only through its public entry, as a user would', () => {
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts') && !f.startsWith('.'))) {
      const imports = [...readFileSync(join(dir, file), 'utf8').matchAll(/from '([^']+)'/g)].map((m) => m[1]);
      for (const specifier of imports) {
        expect(specifier, `${file} imports ${specifier}`).toMatch(
          /^(cdktf|constructs|cloudtaser\/constructs|\.\/[a-z-]+\.js)$/,
        );
      }
    }
  });

  it('synthesizes two stacks: the cluster from official modules, then the registration with cross-stack references', async () => {
    const { manifest, cluster, cloudtaser } = await synth();
    expect(Object.keys(manifest.stacks).sort()).toEqual([`${cloud}-cloudtaser`, `${cloud}-cluster`]);
    expect(manifest.stacks[`${cloud}-cloudtaser`].dependencies).toEqual([`${cloud}-cluster`]);

    for (const [name, source] of Object.entries(modules)) {
      expect(cluster.module[name].source).toBe(source);
      expect(cluster.module[name].version).toMatch(/^~> \d+\.\d+$/);
    }
    const crossStackOutputs = Object.keys(cluster.output).filter((o) => o.startsWith('cross-stack-output-'));
    expect(crossStackOutputs.length).toBeGreaterThanOrEqual(2);

    expect(Object.keys(cloudtaser.data.terraform_remote_state)).toEqual([
      `cross-stack-reference-input-${cloud}-cluster`,
    ]);
    const kubernetes = cloudtaser.provider.kubernetes[0];
    const helm = cloudtaser.provider.helm[0];
    for (const value of [kubernetes.host, kubernetes.cluster_ca_certificate, helm.kubernetes.host]) {
      expect(value).toContain(
        `data.terraform_remote_state.cross-stack-reference-input-${cloud}-cluster.outputs.`,
      );
    }
    expect(kubernetes.exec[0].command).toBe(execCommand);
    expect(helm.kubernetes.exec.command).toBe(execCommand);

    const registration = Object.values(cloudtaser.resource.cloudtaser_cluster_registration)[0] as {
      fingerprint: string;
    };
    expect(registration.fingerprint).toMatch(/^\$\{data\.kubernetes_namespace\.[^.]+\.metadata\[0\]\.uid\}$/);
    const release = Object.values(cloudtaser.resource.helm_release)[0] as {
      set: Array<{ name: string; value: string }>;
    };
    expect(release.set.map((s) => s.name)).toEqual([
      'operator.broker.beacon.address',
      'operator.broker.trust.caSha256',
      'operator.broker.attestation.enabled',
    ]);
    expect(cloudtaser.terraform.required_providers.cloudtaser.source).toBe('cloudtaser/cloudtaser');
  });

  it('turns attested bootstrap on, as the README says: keys read from the cluster, the operator sends a token', async () => {
    const { cloudtaser, warnings } = await synth();
    const sources = cloudtaser.data.cloudtaser_cluster_fingerprint as Record<string, Record<string, unknown>>;
    expect(Object.keys(sources)).toHaveLength(1);
    const [sourceId, source] = Object.entries(sources)[0];
    expect(source.host).toContain(
      `data.terraform_remote_state.cross-stack-reference-input-${cloud}-cluster.outputs.`,
    );
    expect((source.exec as { command: string }).command).toBe(execCommand);
    const [registrationId, registration] = Object.entries(
      cloudtaser.resource.cloudtaser_cluster_registration,
    )[0] as [string, Record<string, unknown>];
    expect(registration.attestation_issuer).toBe(
      `\${data.cloudtaser_cluster_fingerprint.${sourceId}.service_account_issuer}`,
    );
    expect(registration.attestation_jwks).toBe(
      `\${data.cloudtaser_cluster_fingerprint.${sourceId}.service_account_jwks}`,
    );
    const release = Object.values(cloudtaser.resource.helm_release)[0] as {
      set: Array<{ name: string; value: string }>;
    };
    expect(release.set).toContainEqual(
      expect.objectContaining({
        name: 'operator.broker.attestation.enabled',
        value: `\${cloudtaser_cluster_registration.${registrationId}.attested}`,
      }),
    );
    expect(warnings.filter((w) => /trust on first use|attest/i.test(w))).toEqual([]);
  });

  it('uses no null_resource or local-exec and writes no token or private key', async () => {
    const { cluster, cloudtaser } = await synth();
    for (const stack of [cluster, cloudtaser]) {
      const text = JSON.stringify(stack);
      expect(text).not.toMatch(/null_resource|local-exec|terraform_data/);
      expect(secretsIn(text)).toEqual([]);
    }
  });
});
