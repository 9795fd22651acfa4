/**
 * `npm run demo`: the main job end to end on the embedded local stack, offline.
 *
 *  1. dev stack: OpenBao test server, Kubernetes test server, beacon with a dev CA (loopback)
 *  2. provider mirror: the bundled terraform-provider-cloudtaser in a filesystem mirror
 *  3. `cdktf deploy`: RegisteredCluster registers the dev cluster (fingerprint via the cloudtaser data source)
 *  4. bridge and broker start (real `cloudtaser-cli` processes) and bootstrap to the operational phase
 *  5. `cdktf destroy`: deregisters the cluster
 *  6. the bridge drops the tunnel; the broker leaves the operational phase
 * Exit 0 only if every step worked.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { installProviderMirror } from '../../provider/packaging/mirror.js';
import { type DevStack, startDevStack } from '../../runtime/dev/stack.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { getClusterStatus } from '../../runtime/registration/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const packageRoot = resolve(here, '../../..');
const cli = join(packageRoot, 'dist/runtime/cli/main.js');
const cdktfBin = join(packageRoot, 'node_modules/.bin/cdktf');
const verbose = process.argv.includes('--verbose');

interface StepResult {
  readonly name: string;
  readonly ms: number;
  readonly detail: string;
  readonly ok: boolean;
}
const results: StepResult[] = [];
const children: ChildProcess[] = [];

async function step(name: string, work: () => Promise<string>): Promise<void> {
  const started = performance.now();
  process.stderr.write(`… ${name}\n`);
  try {
    const detail = await work();
    results.push({ name, ms: performance.now() - started, detail, ok: true });
    process.stderr.write(`✓ ${name} (${fmtMs(performance.now() - started)}): ${detail}\n`);
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    results.push({ name, ms: performance.now() - started, detail, ok: false });
    process.stderr.write(`✗ ${name}: ${detail}\n`);
    throw err;
  }
}

const workdir = await mkdtemp(join(tmpdir(), 'cloudtaser-demo-'));
let stack: DevStack | undefined;
let admin: OpenBaoClient | undefined;
let exitCode = 0;

try {
  await step('dev stack up', async () => {
    stack = await startDevStack({ dir: join(workdir, 'dev') });
    admin = new OpenBaoClient({ address: stack.secretstoreAddress, token: stack.secretstoreToken });
    return `OpenBao test server ${stack.secretstoreAddress}, Kubernetes test server ${stack.kubeUrl}, beacon ${stack.beaconAddress}`;
  });
  await demo(stack!, admin!);
} catch {
  exitCode = 1;
} finally {
  await step('stop everything', async () => {
    for (const child of children) child.kill('SIGTERM');
    await Promise.all(
      children.map((c) => (c.exitCode === null && c.signalCode === null ? once(c, 'exit') : undefined)),
    );
    await admin?.close();
    await stack?.close();
    await rm(workdir, { recursive: true, force: true });
    return `${children.length} processes stopped, dev stack closed, temp files removed`;
  }).catch(() => {
    exitCode = 1;
  });
}

process.stdout.write('\ncloudtaser local demo\n');
for (const r of results)
  process.stdout.write(
    `  ${r.ok ? '✓' : '✗'} ${r.name.padEnd(45)} ${fmtMs(r.ms).padStart(8)}  ${r.detail}\n`,
  );
const total = results.reduce((sum, r) => sum + r.ms, 0);
process.stdout.write(`  ${exitCode === 0 ? 'all steps worked' : 'FAILED'} in ${fmtMs(total)}\n`);
process.exit(exitCode);

/** Steps 2 to 6, once the dev stack is up. */
async function demo(stack: DevStack, admin: OpenBaoClient): Promise<void> {
  const mirrorDir = join(workdir, 'mirror');
  const cliConfig = join(workdir, 'terraform.rc');
  await step('provider mirror', async () => {
    const mirror = installProviderMirror(mirrorDir, {
      platforms: [`${process.platform}_${process.arch === 'x64' ? 'amd64' : process.arch}`],
    });
    await writeFile(cliConfig, `disable_checkpoint = true\n${mirror.cliConfig}\n`);
    return `${mirror.providerAddress} ${mirror.version} (${mirror.h1})`;
  });

  const appDir = join(workdir, 'app');
  const cdktfEnv = {
    ...process.env,
    CHECKPOINT_DISABLE: '1',
    TF_CLI_CONFIG_FILE: cliConfig,
    TF_IN_AUTOMATION: '1',
    CLOUDTASER_SECRETSTORE_ADDRESS: stack.secretstoreAddress,
    // The registrar's least-privilege token, not the root token (docs/openbao-policies.md).
    CLOUDTASER_SECRETSTORE_TOKEN: stack.registrarToken,
    CLOUDTASER_DEMO_BEACON: stack.beaconAddress,
    CLOUDTASER_DEMO_KUBECONFIG: stack.kubeconfig,
  };
  let outputs: Record<string, string> = {};
  await step('cdktf deploy (register the cluster)', async () => {
    await (await import('node:fs/promises')).mkdir(appDir, { recursive: true });
    await writeFile(
      join(appDir, 'cdktf.json'),
      JSON.stringify({
        language: 'typescript',
        app: `node ${join(here, 'app.js')}`,
        sendCrashReports: 'false',
        terraformProviders: [],
      }),
    );
    await run(
      cdktfBin,
      ['deploy', 'local', '--auto-approve', '--skip-provider-lock', '--outputs-file', 'outputs.json'],
      appDir,
      cdktfEnv,
    );
    outputs = JSON.parse(await readFile(join(appDir, 'outputs.json'), 'utf8')).local;
    const status = await getClusterStatus(admin, { fingerprint: outputs.fingerprint });
    if (!status.registered) throw new Error('cdktf deploy finished but OpenBao has no registration record');
    if (String(outputs.attested) !== 'true')
      throw new Error('the registration is not attested; RegisteredCluster should turn attestation on');
    return `fingerprint ${outputs.fingerprint} registered in ${outputs.namespace}, attested bootstrap on`;
  });

  const bridgeHealth = await freeAddress();
  const brokerHealth = await freeAddress();
  await step('bridge and broker bootstrap to operational', async () => {
    children.push(
      startCli(
        'bridge',
        [
          'bridge',
          'run',
          '--secretstore-address',
          stack.secretstoreAddress,
          '--beacon',
          stack.beaconAddress,
          '--beacon-ca',
          stack.beaconCaFile,
          '--health-listen',
          bridgeHealth,
          '--poll-interval',
          '1s',
        ],
        {
          CLOUDTASER_SECRETSTORE_TOKEN: stack.bridgeToken,
        },
      ),
    );
    children.push(
      startCli('broker', [
        'broker',
        'run',
        '--beacon',
        stack.beaconAddress,
        '--beacon-ca',
        stack.beaconCaFile,
        '--kubeconfig',
        stack.operatorKubeconfig,
        '--attestation',
        '--service-account',
        'cloudtaser-system/cloudtaser',
        '--ca-sha256',
        outputs.operational_hash,
        '--health-listen',
        brokerHealth,
      ]),
    );
    const started = performance.now();
    const status = await waitFor(`http://${brokerHealth}/status`, (s) => s.phase === 'operational', 30_000);
    return `broker operational ${fmtMs(performance.now() - started)} after start, through beacon ${status.beaconIp}; CA pinned by caSha256, bootstrap attested by the operator's service-account token`;
  });

  await step('cdktf destroy (deregister the cluster)', async () => {
    await run(cdktfBin, ['destroy', 'local', '--auto-approve', '--skip-provider-lock'], appDir, cdktfEnv);
    const status = await getClusterStatus(admin, { fingerprint: outputs.fingerprint });
    if (status.registered)
      throw new Error('cdktf destroy finished but the registration record is still there');
    return 'registration and initialization records removed; workload secrets kept';
  });

  await step('tunnel closed after deregistration', async () => {
    const started = performance.now();
    const status = await waitFor(`http://${brokerHealth}/status`, (s) => s.phase !== 'operational', 15_000);
    return `broker left the operational phase ${fmtMs(performance.now() - started)} after destroy (now "${status.phase}")`;
  });
}

// --- helpers ---

function fmtMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${ms.toFixed(0)} ms`;
}

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const collect = (d: Buffer) => {
      output += d;
      if (verbose) process.stderr.write(d);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0
        ? resolvePromise()
        : reject(new Error(`${command.split('/').pop()} ${args[0]} exited ${code}:\n${output.slice(-3000)}`)),
    );
  });
}

function startCli(name: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, [cli, ...args], {
    env: { ...process.env, CLOUDTASER_LOG_LEVEL: verbose ? 'debug' : 'warn', ...env },
    stdio: ['ignore', 'ignore', verbose ? 'inherit' : 'ignore'],
  });
  child.on('exit', (code, signal) => {
    if (code !== 0 && signal !== 'SIGTERM' && verbose)
      process.stderr.write(`${name} exited ${code ?? signal}\n`);
  });
  return child;
}

async function freeAddress(): Promise<string> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  return `127.0.0.1:${port}`;
}

async function waitFor(
  url: string,
  done: (status: Record<string, unknown>) => boolean,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  let last: Record<string, unknown> | undefined;
  while (Date.now() < deadline) {
    try {
      last = (await (await fetch(url)).json()) as Record<string, unknown>;
      if (done(last)) return last;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms; last status: ${JSON.stringify(last)}`);
}
