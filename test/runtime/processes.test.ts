/**
 * Real processes through the CLI entry point (`node dist/runtime/cli/main.js bridge run` / `broker run`), two
 * beacon replica processes on 127.0.0.1 and 127.0.0.2 with one port behind one name (CLOUDTASER_DEV_RESOLVE),
 * and kill -9 of each at each phase. Needs `npx tsc -p tsconfig.build.json` first.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import {
  deregisterCluster,
  ensureBeaconClientCa,
  getClusterStatus,
  rearmCluster,
} from '../../runtime/registration/index.js';
import { builtCli } from '../support/built-cli.js';
import { waitUntil } from '../support/wait.js';
import {
  BEACON_NAME,
  beaconCert,
  FAST_BROKER_FLAGS,
  REPLICA_IPS,
  type SecretStore,
  startSecretStore,
} from './fixtures.js';

const root = resolve(import.meta.dirname, '../..');
/** The build under test; CLOUDTASER_TEST_DIST points at another output folder of `tsc -p tsconfig.build.json`. */
const dist = process.env.CLOUDTASER_TEST_DIST ?? join(root, 'dist');
const cli = builtCli();
const beaconChild = join(dist, 'test/runtime/beacon-child.js');
const POLL_MS = 200;

let dir: string;
let store: SecretStore;
let beaconPort: number;
let beaconCaFile: string;
const children = new Set<ChildProcess>();
const beacons: (ChildProcess | undefined)[] = [];
const kubes: KubeTestServer[] = [];

async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}

function run(args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: {
      ...process.env,
      CLOUDTASER_LOG_LEVEL: 'warn',
      CLOUDTASER_DEV_RESOLVE: `${BEACON_NAME}=${REPLICA_IPS.join(',')}`,
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  (child as ChildProcess & { stderrTail: () => string }).stderrTail = () => stderr;
  children.add(child);
  child.once('exit', (code, signal) => {
    children.delete(child);
    // A child that dies on its own (not our kill -9) is a bug worth seeing in the test output.
    if (signal !== 'SIGKILL' && code !== 0)
      process.stderr.write(`child ${args.slice(1, 3).join(' ')} exited ${code}: ${stderr}\n`);
  });
  return child;
}

function kill9(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    child.once('exit', () => done());
    child.kill('SIGKILL');
  });
}

let beaconEntry: string[] | undefined;
function beaconCommand(): string[] {
  if (beaconEntry) return beaconEntry;
  const help = spawnSync(process.execPath, [cli, 'beacon', 'serve', '--help'], { encoding: 'utf8' });
  const wired = `${help.stdout}${help.stderr}`.includes('--tls-cert');
  beaconEntry = wired ? [cli] : [beaconChild];
  return beaconEntry;
}

async function startBeacon(index: number): Promise<void> {
  const certFile = join(dir, 'beacon.pem');
  const keyFile = join(dir, 'beacon-key.pem');
  beacons[index] = run([
    ...beaconCommand(),
    'beacon',
    'serve',
    '--listen',
    `${REPLICA_IPS[index]}:${beaconPort}`,
    '--tls-cert',
    certFile,
    '--tls-key',
    keyFile,
    '--bridge-ca',
    join(dir, 'beacon-client-ca.pem'),
    '--metrics-listen',
    'off',
    '--broker-wait-ms',
    '2000',
    '--bridge-wait-ms',
    '5000',
    '--keepalive-ms',
    '1000',
  ]);
  // Listening = a TCP connect succeeds. (Probing by binding the port itself could take it in the very moment the
  // beacon binds, which then exits with EADDRINUSE.)
  await waitUntil(
    () =>
      new Promise<boolean>((done) => {
        const probe = connect(beaconPort, REPLICA_IPS[index]);
        probe.once('connect', () => {
          probe.destroy();
          done(true);
        });
        probe.once('error', () => done(false));
      }),
    { timeoutMs: 10_000, what: `beacon ${index} listening` },
  );
}

async function startBridgeProcess(healthPort: number): Promise<ChildProcess> {
  return run(
    [
      cli,
      'bridge',
      'run',
      '--secretstore-address',
      store.server.address,
      '--beacon',
      `${BEACON_NAME}:${beaconPort}`,
      '--beacon-ca',
      beaconCaFile,
      '--poll-interval',
      `${POLL_MS}ms`,
      '--backoff-max',
      '1s',
      '--step-timeout',
      '3s',
      // The flag the chart passes: one port for /metrics, probes and /status.
      '--metrics-listen',
      `127.0.0.1:${healthPort}`,
      '--wait-refresh',
      '3s',
    ],
    // The bridge's own identity as deployed: AppRole with exactly the shipped bridge policy.
    {
      CLOUDTASER_APPROLE_ROLE_ID: store.identities.bridgeRoleId,
      CLOUDTASER_APPROLE_SECRET_ID: store.identities.bridgeSecretId,
    },
  );
}

async function startBrokerProcess(
  kubeconfig: string,
  healthPort: number,
  extra: string[] = [],
): Promise<ChildProcess> {
  return run([
    cli,
    'broker',
    'run',
    '--beacon',
    `${BEACON_NAME}:${beaconPort}`,
    '--beacon-ca',
    beaconCaFile,
    '--kubeconfig',
    kubeconfig,
    '--metrics-listen',
    `127.0.0.1:${healthPort}`,
    ...FAST_BROKER_FLAGS,
    '--rejected-retry',
    '300ms',
    ...extra,
  ]);
}

interface Status {
  phase: string;
  reason: string;
  lastErrorCode?: string;
  beaconIp?: string;
}

async function brokerStatus(port: number): Promise<Status | undefined> {
  try {
    return (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as Status;
  } catch {
    return undefined;
  }
}

async function waitForPhase(port: number, phase: string, timeoutMs = 15_000): Promise<Status> {
  let last: Status | undefined;
  try {
    return (await waitUntil<Status | undefined>(
      async () => {
        last = await brokerStatus(port);
        return last?.phase === phase ? last : undefined;
      },
      { timeoutMs, what: `broker on :${port} to be ${phase}` },
    )) as Status;
  } catch (err) {
    throw new Error(`${(err as Error).message}; last status ${JSON.stringify(last)}`);
  }
}

async function newCluster(): Promise<{ kube: KubeTestServer; kubeconfig: string; fingerprint: string }> {
  const kube = await startKubeTestServer();
  kubes.push(kube);
  // The operator's namespace, where the broker records the CA it accepts (the chart creates both).
  await kube.createNamespace('cloudtaser-system');
  const kubeconfig = join(dir, `kubeconfig-${kubes.length}`);
  await kube.writeKubeconfig(kubeconfig);
  await store.register(kube.kubeSystemUid);
  return { kube, kubeconfig, fingerprint: kube.kubeSystemUid };
}

// `npm test` builds first, so the CLI exists; a bare `npx vitest run` without a build skips this file, but under
// CI a missing build fails the run instead of silently skipping the real-process tests.

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cloudtaser-proc-'));
  store = await startSecretStore();
  beaconCaFile = join(dir, 'beacon.pem');
  await writeFile(beaconCaFile, beaconCert.certPem);
  await writeFile(join(dir, 'beacon-key.pem'), beaconCert.keyPem);
  // Bridges mint their beacon client certificate from this CA (in OpenBao); the beacons admit only such bridges.
  await writeFile(join(dir, 'beacon-client-ca.pem'), (await ensureBeaconClientCa(store.admin)).certPem);
  beaconPort = await freePort();
  await startBeacon(0);
  await startBeacon(1);
});

afterAll(async () => {
  for (const child of [...children]) await kill9(child);
  for (const kube of kubes) await kube.close();
  await store?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('bridge and broker as real processes', () => {
  it('runs the full flow, survives kill -9 of beacon, bridge and broker at each phase, and never initializes twice without a re-arm', async () => {
    const cluster = await newCluster();
    const bridgePort = await freePort();
    const brokerPort = await freePort();
    let bridge = await startBridgeProcess(bridgePort);
    let broker = await startBrokerProcess(cluster.kubeconfig, brokerPort);

    // Full flow.
    let status = await waitForPhase(brokerPort, 'operational');
    expect((await getClusterStatus(store.admin, { fingerprint: cluster.fingerprint })).initialized).toBe(
      true,
    );
    expect(store.initializedWrites(cluster.fingerprint)).toBe(1);
    expect((await fetch(`http://127.0.0.1:${brokerPort}/readyz`)).status).toBe(200);
    // Both processes serve Prometheus metrics on that port, from their own registry.
    const brokerMetrics = await (await fetch(`http://127.0.0.1:${brokerPort}/metrics`)).text();
    expect(brokerMetrics).toContain('cloudtaser_broker_phase{phase="operational"} 1');
    expect(brokerMetrics).toContain('cloudtaser_broker_process_cpu_seconds_total');
    await waitUntil(
      async () =>
        (await (await fetch(`http://127.0.0.1:${bridgePort}/metrics`)).text()).includes(
          `cloudtaser_bridge_tunnel_up{cluster="${cluster.fingerprint.slice(0, 8)}"} 1`,
        ),
      { timeoutMs: 5_000, what: 'bridge tunnel_up' },
    );

    // kill -9 the beacon replica carrying the tunnel: the broker comes back through a replica on its own.
    const carrier = REPLICA_IPS.indexOf(status.beaconIp!);
    await kill9(beacons[carrier]);
    await waitUntil(async () => (await brokerStatus(brokerPort))?.phase !== 'operational', {
      timeoutMs: 5_000,
      what: 'broker notices',
    });
    status = await waitForPhase(brokerPort, 'operational');
    expect(status.beaconIp).toBe(REPLICA_IPS[1 - carrier]);
    await startBeacon(carrier);

    // kill -9 of every beacon: nobody can pair until they return, then everyone recovers.
    await kill9(beacons[0]);
    await kill9(beacons[1]);
    await waitForPhase(brokerPort, 'reconnecting');
    expect((await fetch(`http://127.0.0.1:${brokerPort}/readyz`)).status).toBe(200);
    await startBeacon(0);
    await startBeacon(1);
    await waitForPhase(brokerPort, 'operational');

    // kill -9 the bridge while operational.
    await kill9(bridge);
    await waitForPhase(brokerPort, 'reconnecting');
    bridge = await startBridgeProcess(bridgePort);
    await waitForPhase(brokerPort, 'operational');
    expect(store.initializedWrites(cluster.fingerprint)).toBe(1);

    // kill -9 the broker while operational: its key died with it, so a new one is refused, says how to
    // re-arm, and heals after the re-arm without a restart.
    await kill9(broker);
    broker = await startBrokerProcess(cluster.kubeconfig, brokerPort);
    const rejected = await waitForPhase(brokerPort, 'rejected');
    expect(rejected.reason).toContain('--rearm');
    expect(store.initializedWrites(cluster.fingerprint)).toBe(1);
    await rearmCluster(store.registrar, { fingerprint: cluster.fingerprint });
    await waitForPhase(brokerPort, 'operational');
    expect(store.initializedWrites(cluster.fingerprint)).toBe(2);

    // Deregistration: the bridge drops the tunnel within one poll interval (plus the poll's own time).
    const before = Date.now();
    await deregisterCluster(store.registrar, { fingerprint: cluster.fingerprint });
    await waitUntil(async () => (await brokerStatus(brokerPort))?.phase !== 'operational', {
      timeoutMs: 3_000,
      what: 'tunnel closed',
    });
    expect(Date.now() - before).toBeLessThan(POLL_MS * 2 + 700);
    await kill9(broker);
  }, 90_000);

  it('recovers from kill -9 of broker, beacon and bridge during bootstrapping', async () => {
    const cluster = await newCluster();
    const bridgePort = await freePort();
    const brokerPort = await freePort();
    for (const child of [...children]) {
      if (!beacons.includes(child)) await kill9(child); // no bridge yet: the broker stays in bootstrapping
    }
    let broker = await startBrokerProcess(cluster.kubeconfig, brokerPort);
    await waitForPhase(brokerPort, 'bootstrapping');
    await kill9(broker);
    await kill9(beacons[0]);
    broker = await startBrokerProcess(cluster.kubeconfig, brokerPort);
    await waitForPhase(brokerPort, 'bootstrapping');
    let bridge = await startBridgeProcess(bridgePort);
    await kill9(bridge);
    bridge = await startBridgeProcess(bridgePort);
    await startBeacon(0);
    await waitForPhase(brokerPort, 'operational', 20_000);
    expect(store.initializedWrites(cluster.fingerprint)).toBe(1);
    const bridgeStatus = (await (await fetch(`http://127.0.0.1:${bridgePort}/status`)).json()) as {
      clusters: { tunnels: number }[];
    };
    expect(bridgeStatus.clusters.some((c) => c.tunnels === 1)).toBe(true);
  }, 60_000);
});
