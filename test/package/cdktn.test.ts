/**
 * The community fork: the packed tarball installed beside cdktn and cdktn-cli 0.24 (no cdktf anywhere), the
 * constructs synthesizing on it, and the whole local demo deployed and destroyed by `cdktn`.
 *
 * cdktn-cli 0.24 needs Node.js >= 22.19 (its bundled HTTP client calls an API Node 20 lacks). On an older Node the
 * test installs Node 22 from the npm registry (`node-<platform>-<arch>`) for the CLI alone; the constructs, the
 * app and every cloudtaser process keep running on this Node.
 */
import { copyFileSync, existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProcess } from '../run-process.js';
import { npmInstall, packTarball, REPO, runModule, SYNTH_REGISTERED_CLUSTER } from './install.js';

const work = mkdtempSync(join(tmpdir(), 'ct-cdktn-'));
const project = join(work, 'project');
let cliNodeBin: string | undefined;

// Hundreds of MB of node_modules: removing them can take a while on a busy machine.
afterAll(() => rm(work, { recursive: true, force: true }), 300_000);

function nodeAtLeast(major: number, minor: number): boolean {
  const [a, b] = process.versions.node.split('.').map(Number);
  return a > major || (a === major && b >= minor);
}

beforeAll(async () => {
  const tarball = await packTarball(join(work, 'tarball'));
  const node22 = nodeAtLeast(22, 19) ? [] : [`node-${process.platform}-${process.arch}@^22.19.0`];
  await npmInstall(project, [
    tarball.path,
    'cdktn@0.24.0',
    'cdktn-cli@0.24.0',
    'constructs@~10.7.0',
    ...node22,
  ]);
  if (node22.length > 0)
    cliNodeBin = join(project, 'node_modules', `node-${process.platform}-${process.arch}`, 'bin');
}, 400_000);

describe('cloudtaser/constructs on cdktn', () => {
  it('installs without cdktf: the fork, its CLI and constructs only', () => {
    const installed = readdirSync(join(project, 'node_modules'));
    expect(installed).toEqual(expect.arrayContaining(['cdktn', 'cdktn-cli', 'constructs', 'cloudtaser']));
    expect(installed).not.toContain('cdktf');
    expect(installed).not.toContain('@cdktf');
  });

  it('synthesizes a RegisteredCluster with its fingerprint data source and operator release on cdktn', async () => {
    const result = await runModule(project, SYNTH_REGISTERED_CLUSTER);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const { cdkLibrary, stack } = JSON.parse(result.stdout);
    expect(cdkLibrary).toBe('cdktn');
    expect(Object.keys(stack.data.kubernetes_namespace)).toHaveLength(1);
    const release = Object.values(stack.resource.helm_release)[0] as { set: Array<{ name: string }> };
    expect(release.set.map((s) => s.name)).toContain('operator.broker.beacon.address');
    expect(stack.terraform.required_providers.cloudtaser.source).toBe('cloudtaser/cloudtaser');
  });

  it('runs the whole local demo with cdktn deploy and cdktn destroy', async () => {
    // The example app, as a user copies it into a cdktn project.
    const app = join(project, 'app.js');
    copyFileSync(join(REPO, 'dist', 'examples', 'local', 'app.js'), app);
    expect(existsSync(join(project, 'node_modules', '.bin', 'cdktn'))).toBe(true);
    const path = cliNodeBin ? `${cliNodeBin}:${process.env.PATH}` : process.env.PATH;
    const { code, stdout, stderr } = await runProcess(
      process.execPath,
      [join(REPO, 'dist', 'examples', 'local', 'demo.js'), '--cdk', 'cdktn', '--app', app],
      { env: { ...process.env, PATH: path, CHECKPOINT_DISABLE: '1' }, timeoutMs: 480_000 },
    );
    expect(code, `${stdout}\n${stderr}`).toBe(0);
    expect(stderr).toContain(
      `cloudtaser local demo: cdktn (${join(project, 'node_modules', '.bin', 'cdktn')})`,
    );
    for (const step of [
      'cdktn deploy (register the cluster)',
      'bridge and broker bootstrap to operational',
      'logs in through the pod API and reads it',
      'the webhook injects the in-memory secret volume',
      'a Kubernetes Secret migrated into OpenBao and removed',
      'cdktn destroy (deregister the cluster)',
      'tunnel closed after deregistration',
    ]) {
      expect(stdout).toMatch(new RegExp(`✓ [^\\n]*${step.replace(/[()]/g, '\\$&')}`));
    }
    expect(stdout).toContain('all steps worked');
  }, 500_000);
});
