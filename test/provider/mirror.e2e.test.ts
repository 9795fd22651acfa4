/**
 * The user's path: install the bundle into a filesystem mirror, point the CLI config at it, terraform init
 * (lock file gets our h1: hash), and let terraform spawn the provider itself for plan/apply/destroy.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashFiles, hashPackageDir, installProviderMirror } from '../../provider/packaging/mirror.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { getClusterStatus } from '../../runtime/registration/index.js';
import { provisionIdentities } from '../openbao-identities.js';
import { testBundle } from './support/bundle.js';
import { createWorkspace, TERRAFORM } from './support/terraform.js';

const FP = '3c9d8e7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f';
const FP_CTRL_C = '7d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6';

const CONFIG = `
terraform {
  required_providers {
    cloudtaser = {
      source  = "registry.terraform.io/cloudtaser/cloudtaser"
      version = "0.2.0"
    }
  }
}
provider "cloudtaser" {}
resource "cloudtaser_cluster_registration" "prod" {
  fingerprint = "${FP}"
}
`;

describe('provider installed from a filesystem mirror, spawned by terraform', () => {
  let openbao: OpenBaoTestServer;
  /** The provider runs with exactly the shipped registrar policy. */
  let registrarToken: string;
  let bundle: string;
  const dirs: string[] = [];

  beforeAll(async () => {
    bundle = await testBundle();
    openbao = await startOpenBaoTestServer();
    const admin = new OpenBaoClient({ address: openbao.address, token: openbao.rootToken });
    registrarToken = (await provisionIdentities(admin)).registrarToken;
    await admin.close();
  }, 60_000);
  afterAll(async () => {
    await openbao?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  for (const layout of ['unpacked', 'packed'] as const) {
    it(`init writes our h1 hash and apply/destroy work end to end (${layout} mirror)`, async () => {
      // Inside an ES module project, as CDKTF and TypeScript projects often are: Node takes the module type of the
      // extensionless provider executable from the nearest package.json. Before, the provider did not start there
      // (ERR_UNKNOWN_FILE_EXTENSION; terraform: "Failed to read any lines from plugin's stdout").
      const project = mkdtempSync(join(tmpdir(), 'ct-esm-project-'));
      dirs.push(project);
      writeFileSync(join(project, 'package.json'), '{"name":"infra","type":"module"}\n');
      const mirror = join(project, 'mirror');
      const installed = installProviderMirror(mirror, { bundlePath: bundle, layout });
      if (layout === 'unpacked') {
        const packageDir = join(mirror, 'registry.terraform.io/cloudtaser/cloudtaser/0.2.0/linux_amd64');
        expect(hashPackageDir(packageDir)).toBe(installed.h1);
        expect(statSync(join(packageDir, 'terraform-provider-cloudtaser_v0.2.0')).mode & 0o111).toBeTruthy();
      }
      const ws = createWorkspace({
        cliConfig: `disable_checkpoint = true\n${installed.cliConfig}`,
        env: {
          CLOUDTASER_SECRETSTORE_ADDRESS: openbao.address,
          CLOUDTASER_SECRETSTORE_TOKEN: registrarToken,
        },
      });
      try {
        ws.write('package.json', '{"name":"infra-stack","type":"module"}\n');
        ws.write('main.tf', CONFIG);
        const init = await ws.run(['init', '-no-color']);
        expect(init.code, init.stdout + init.stderr).toBe(0);
        const lock = readFileSync(join(ws.dir, '.terraform.lock.hcl'), 'utf8');
        expect(lock).toContain(installed.h1);

        const apply = await ws.run(['apply', '-auto-approve', '-no-color']);
        expect(apply.code, apply.stdout + apply.stderr).toBe(0);
        const admin = new OpenBaoClient({ address: openbao.address, token: openbao.rootToken });
        expect((await getClusterStatus(admin, { fingerprint: FP })).registered).toBe(true);

        const plan = await ws.run(['plan', '-detailed-exitcode', '-no-color']);
        expect(plan.code, plan.stdout + plan.stderr).toBe(0);

        const destroy = await ws.run(['destroy', '-auto-approve', '-no-color']);
        expect(destroy.code, destroy.stderr).toBe(0);
        expect((await getClusterStatus(admin, { fingerprint: FP })).registered).toBe(false);
        await admin.close();
      } finally {
        ws.dispose();
      }
      // ~14 provider processes per run; generous because CI machines may be loaded.
    }, 120_000);
  }

  it('survives Ctrl-C during apply: the provider ignores SIGINT, the in-flight registration completes and lands in state', async () => {
    const mirror = mkdtempSync(join(tmpdir(), 'ct-mirror-'));
    dirs.push(mirror);
    const installed = installProviderMirror(mirror, { bundlePath: bundle, platforms: ['linux_amd64'] });
    const ws = createWorkspace({
      cliConfig: `disable_checkpoint = true\n${installed.cliConfig}`,
      env: {
        CLOUDTASER_SECRETSTORE_ADDRESS: openbao.address,
        CLOUDTASER_SECRETSTORE_TOKEN: registrarToken,
      },
    });
    try {
      ws.write('main.tf', CONFIG.replace(FP, FP_CTRL_C));
      expect((await ws.run(['init', '-no-color'])).code).toBe(0);
      // Every request for the registration record is held for 1.5 s, so the interrupt lands mid-
      // ApplyResourceChange: the ownership checks of the plan and apply walks read it, then the create reads it
      // once more before registerCluster reads and writes it (five requests).
      openbao.injectFault({
        pathPattern: new RegExp(`clusters/${FP_CTRL_C}/registered`),
        delayMs: 1500,
        times: 5,
      });
      const child = spawn(TERRAFORM, ['apply', '-auto-approve', '-no-color'], {
        cwd: ws.dir,
        env: ws.env,
        detached: true,
      });
      let out = '';
      let interrupted = false;
      child.stdout.on('data', (d) => {
        out += d;
        // Exactly one Ctrl-C: a second one (e.g. when output arrives in several chunks under load) makes
        // terraform exit at once without waiting for the provider.
        if (out.includes('Creating...') && !interrupted) {
          interrupted = true;
          out += '[sent SIGINT]';
          setTimeout(() => process.kill(-child.pid!, 'SIGINT'), 300);
        }
      });
      child.stderr.on('data', (d) => {
        out += d;
      });
      await new Promise((resolve) => child.on('exit', resolve));
      expect(out).toContain('Interrupt received');
      expect(out).not.toContain('Plugin did not respond');
      const state = JSON.parse(readFileSync(join(ws.dir, 'terraform.tfstate'), 'utf8'));
      expect(state.resources?.[0]?.instances?.[0]?.attributes?.fingerprint, out).toBe(FP_CTRL_C);
      const admin = new OpenBaoClient({ address: openbao.address, token: openbao.rootToken });
      expect((await getClusterStatus(admin, { fingerprint: FP_CTRL_C })).registered).toBe(true);
      await admin.close();
    } finally {
      ws.dispose();
    }
  }, 120_000);

  /*
   * OpenTofu. No `tofu` binary can be installed here (no network but npm), so this test drives the layout
   * OpenTofu expects with terraform, whose installer OpenTofu forked. What we rely on, as we read the
   * opentofu/opentofu sources (internal/addrs, internal/getproviders, internal/providercache,
   * internal/depsfile) and state as claims, not as things this test observed from tofu itself:
   * - `source = "cloudtaser/cloudtaser"` means registry.opentofu.org/cloudtaser/cloudtaser under OpenTofu
   *   (its default registry host), so the mirror must hold the package under that host directory;
   * - OpenTofu's filesystem_mirror reads the same two layouts as Terraform: unpacked
   *   HOST/NAMESPACE/TYPE/VERSION/OS_ARCH/ and packed HOST/NAMESPACE/TYPE/terraform-provider-TYPE_VERSION_OS_ARCH.zip,
   *   and looks for an executable named terraform-provider-TYPE[_...] in the package;
   * - its lock file (.terraform.lock.hcl) records h1: hashes computed as golang.org/x/mod dirhash Hash1 over the
   *   package contents, so the same package has the same h1: under either address;
   * - its CLI configuration takes the same provider_installation block (~/.tofurc or TF_CLI_CONFIG_FILE).
   * What the test proves: both hosts hold byte-identical packages with one h1:, and an installer that follows
   * those rules (terraform, given the explicit registry.opentofu.org address) installs, locks and runs the
   * provider from the OpenTofu host directory through the printed block. It does not prove tofu's own
   * behaviour, which a CI job with a tofu binary should check.
   */
  for (const layout of ['unpacked', 'packed'] as const) {
    it(`serves OpenTofu's address from the same mirror with the same h1 (${layout} layout, driven by terraform)`, async () => {
      const mirror = mkdtempSync(join(tmpdir(), 'ct-mirror-tofu-'));
      dirs.push(mirror);
      const installed = installProviderMirror(mirror, {
        bundlePath: bundle,
        layout,
        platforms: ['linux_amd64'],
      });
      const tofu = 'registry.opentofu.org/cloudtaser/cloudtaser';
      expect(installed.providerAddresses).toEqual(['registry.terraform.io/cloudtaser/cloudtaser', tofu]);
      if (layout === 'unpacked') {
        const dirOf = (host: string) => join(mirror, host, 'cloudtaser/cloudtaser/0.2.0/linux_amd64');
        expect(hashPackageDir(dirOf('registry.opentofu.org'))).toBe(installed.h1);
        expect(hashPackageDir(dirOf('registry.terraform.io'))).toBe(installed.h1);
        const exe = 'terraform-provider-cloudtaser_v0.2.0';
        expect(readFileSync(join(dirOf('registry.opentofu.org'), exe))).toEqual(
          readFileSync(join(dirOf('registry.terraform.io'), exe)),
        );
        expect(statSync(join(dirOf('registry.opentofu.org'), exe)).mode & 0o111).toBeTruthy();
      } else {
        const zipOf = (host: string) =>
          readFileSync(
            join(mirror, host, 'cloudtaser/cloudtaser/terraform-provider-cloudtaser_0.2.0_linux_amd64.zip'),
          );
        expect(zipOf('registry.opentofu.org')).toEqual(zipOf('registry.terraform.io'));
      }
      expect(installed.lockFileEntries[tofu]).toContain(`provider "${tofu}" {`);
      expect(installed.lockFileEntries[tofu]).toContain(installed.h1);

      const ws = createWorkspace({ cliConfig: `disable_checkpoint = true\n${installed.cliConfig}` });
      try {
        ws.write(
          'main.tf',
          `terraform {\n  required_providers {\n    cloudtaser = { source = "${tofu}", version = "0.2.0" }\n  }\n}\n` +
            'output "ns" { value = provider::cloudtaser::namespace("3c9d8e7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f") }\n',
        );
        const init = await ws.run(['init', '-no-color']);
        expect(init.code, init.stdout + init.stderr).toBe(0);
        const lock = readFileSync(join(ws.dir, '.terraform.lock.hcl'), 'utf8');
        expect(lock).toContain(`provider "${tofu}" {`);
        expect(lock).toContain(installed.h1);
        const plan = await ws.run(['plan', '-no-color']);
        expect(plan.code, plan.stdout + plan.stderr).toBe(0);
        expect(plan.stdout).toContain('ns = "cloudtaser/3c9d8e7f"');
      } finally {
        ws.dispose();
      }
    }, 120_000);
  }

  it('computes h1 the way golang.org/x/mod dirhash does (sorted paths, two spaces, newline)', () => {
    const a = new TextEncoder().encode('a');
    // manifest "ca978112...48bb  x\n", hashed again with sha256 and base64-encoded (computed independently)
    expect(hashFiles([{ path: 'x', data: a }])).toBe('h1:SP278U3+y6iuvznWUl+MU4aJ2dOH53yB/b7x1By65Gw=');
    expect(
      hashFiles([
        { path: 'b', data: a },
        { path: 'a', data: a },
      ]),
    ).toBe(
      hashFiles([
        { path: 'a', data: a },
        { path: 'b', data: a },
      ]),
    );
    expect(() => hashFiles([{ path: 'bad\nname', data: a }])).toThrow(/newlines/);
  });
});
