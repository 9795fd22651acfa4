/**
 * The user's path: install the bundle into a filesystem mirror, point the CLI config at it, terraform init
 * (lock file gets our h1: hash), and let terraform spawn the provider itself for plan/apply/destroy.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
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
      version = "0.1.0"
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
      const mirror = mkdtempSync(join(tmpdir(), 'ct-mirror-'));
      dirs.push(mirror);
      const installed = installProviderMirror(mirror, { bundlePath: bundle, layout });
      if (layout === 'unpacked') {
        const packageDir = join(mirror, 'registry.terraform.io/cloudtaser/cloudtaser/0.1.0/linux_amd64');
        expect(hashPackageDir(packageDir)).toBe(installed.h1);
        expect(statSync(join(packageDir, 'terraform-provider-cloudtaser_v0.1.0')).mode & 0o111).toBeTruthy();
      }
      const ws = createWorkspace({
        cliConfig: `disable_checkpoint = true\n${installed.cliConfig}`,
        env: {
          CLOUDTASER_SECRETSTORE_ADDRESS: openbao.address,
          CLOUDTASER_SECRETSTORE_TOKEN: registrarToken,
        },
      });
      try {
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
      // The registration record write is held for 1.5 s, so the interrupt lands mid-ApplyResourceChange.
      openbao.injectFault({
        pathPattern: new RegExp(`clusters/${FP_CTRL_C}/registered`),
        delayMs: 1500,
        times: 2,
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
