/**
 * One real `cdktf deploy` and `cdktf destroy` (the cdktf CLI from node_modules/.bin, offline) of an app with a
 * RegisteredCluster against the dev stack: the registration exists in the OpenBao test server after deploy
 * and is gone after destroy, and nothing cdktf wrote holds a private key or a token.
 */
import { execFile } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installProviderMirror } from '../../provider/packaging/mirror.js';
import { type DevStack, startDevStack } from '../../runtime/dev/stack.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { getClusterStatus } from '../../runtime/registration/index.js';
import { secretsIn } from '../constructs/synth.js';
import { testBundle } from '../provider/support/bundle.js';
import { STACK_NAME } from './fixtures/registration-app.js';

const REPO = resolve(import.meta.dirname, '../..');
const CDKTF = join(REPO, 'node_modules', '.bin', 'cdktf');

interface Run {
  readonly code: number;
  readonly output: string;
}

describe('cdktf deploy / destroy of a RegisteredCluster (offline, real CLI)', () => {
  let dev: DevStack;
  let work: string;
  let project: string;
  let env: NodeJS.ProcessEnv;

  const cdktf = (args: string[]) =>
    new Promise<Run>((done) => {
      execFile(
        CDKTF,
        args,
        { cwd: project, env, timeout: 150_000, maxBuffer: 32 << 20 },
        (err, stdout, stderr) => {
          done({
            code: err ? (typeof err.code === 'number' ? err.code : 1) : 0,
            output: `${stdout}\n${stderr}`,
          });
        },
      );
    });

  beforeAll(async () => {
    dev = await startDevStack();
    work = mkdtempSync(join(tmpdir(), 'ct-cdktf-'));
    project = join(work, 'app');
    const home = join(work, 'home');
    mkdirSync(project);
    mkdirSync(home);
    const mirror = installProviderMirror(join(work, 'mirror'), {
      bundlePath: await testBundle(),
      platforms: ['linux_amd64'],
    });
    writeFileSync(join(work, 'terraform.rc'), `disable_checkpoint = true\n${mirror.cliConfig}`);

    // The app is bundled to one ESM file; packages resolve through a node_modules link to the repository's.
    const esbuild = await import('esbuild');
    await esbuild.build({
      stdin: {
        contents:
          "import { synthFromEnvironment } from './test/examples/fixtures/registration-app.ts';\nsynthFromEnvironment();\n",
        resolveDir: REPO,
        sourcefile: 'app-entry.ts',
        loader: 'ts',
      },
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      outfile: join(project, 'app.mjs'),
      logLevel: 'error',
    });
    symlinkSync(join(REPO, 'node_modules'), join(project, 'node_modules'), 'dir');
    writeFileSync(
      join(project, 'cdktf.json'),
      JSON.stringify({
        language: 'typescript',
        app: 'node app.mjs',
        sendCrashReports: 'false',
        terraformProviders: [],
      }),
    );
    env = {
      PATH: process.env.PATH,
      HOME: home,
      TMPDIR: tmpdir(),
      CI: '1',
      CHECKPOINT_DISABLE: '1',
      DISABLE_VERSION_CHECK: 'true',
      TF_CLI_CONFIG_FILE: join(work, 'terraform.rc'),
      TF_IN_AUTOMATION: '1',
      CLOUDTASER_SECRETSTORE_ADDRESS: dev.secretstoreAddress,
      CLOUDTASER_SECRETSTORE_TOKEN: dev.secretstoreToken,
      CLOUDTASER_BEACON_ADDRESS: dev.beaconAddress,
      CLOUDTASER_TEST_KUBECONFIG: dev.kubeconfig,
    };
  }, 120_000);

  afterAll(async () => {
    if (work) rmSync(work, { recursive: true, force: true });
    await dev?.close();
  });

  it('registers the cluster on deploy, keeps cdktf.out free of secrets, and deregisters on destroy', async () => {
    const client = new OpenBaoClient({ address: dev.secretstoreAddress, token: dev.secretstoreToken });

    const deploy = await cdktf([
      'deploy',
      STACK_NAME,
      '--auto-approve',
      '--skip-provider-lock',
      '--outputs-file',
      'outputs.json',
    ]);
    expect(deploy.code, deploy.output).toBe(0);
    const status = await getClusterStatus(client, { fingerprint: dev.kubeSystemUid });
    expect(status).toMatchObject({
      registered: true,
      namespace: `cloudtaser/${dev.kubeSystemUid.slice(0, 8)}`,
    });
    const outputs = JSON.parse(readFileSync(join(project, 'outputs.json'), 'utf8'))[STACK_NAME];
    expect(outputs).toMatchObject({ fingerprint: dev.kubeSystemUid, init_hash: status.initHash });
    expect(outputs.operational_hash).toMatch(/^[0-9a-f]{64}$/);

    const written = filesUnder(join(project, 'cdktf.out')).map((file) => readFileSync(file, 'utf8'));
    expect(written.length).toBeGreaterThan(0);
    for (const text of written)
      expect(secretsIn(text, [dev.secretstoreToken, dev.kubeAdminToken])).toEqual([]);
    const state = readFileSync(join(project, `terraform.${STACK_NAME}.tfstate`), 'utf8');
    expect(secretsIn(state, [dev.secretstoreToken, dev.kubeAdminToken])).toEqual([]);

    const destroy = await cdktf(['destroy', STACK_NAME, '--auto-approve', '--skip-provider-lock']);
    expect(destroy.code, destroy.output).toBe(0);
    expect((await getClusterStatus(client, { fingerprint: dev.kubeSystemUid })).registered).toBe(false);
  }, 240_000);
});

/** Every regular file under `dir`, skipping provider binaries (.terraform/providers) and plugin caches. */
function filesUnder(dir: string): string[] {
  const files: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (name === 'providers' || name === 'modules') continue;
    const stat = statSync(path);
    if (stat.isDirectory()) files.push(...filesUnder(path));
    else if (stat.isFile() && stat.size < 5_000_000) files.push(path);
  }
  return files;
}
