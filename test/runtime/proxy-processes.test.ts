/**
 * `bridge run` and `broker run` as real processes (node dist/runtime/cli/main.js) whose only way to the beacon is
 * a real HTTP proxy with Basic authentication: the bridge takes it from HTTPS_PROXY, the broker from
 * --beacon-proxy on the WebSocket door. Needs `npx tsc -p tsconfig.build.json` first.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type BeaconHandle, createBeacon } from '../../runtime/beacon/index.js';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { startTestProxy, type TestProxy } from '../proxy/test-proxy.js';
import { builtCli } from '../support/built-cli.js';
import { waitUntil } from '../support/wait.js';
import {
  BEACON_NAME,
  beaconCert,
  beaconClientCa,
  beaconClientFlags,
  FAST_BEACON_LIMITS,
  FAST_BROKER_FLAGS,
  type SecretStore,
  startSecretStore,
} from './fixtures.js';

const root = resolve(import.meta.dirname, '../..');
const _dist = process.env.CLOUDTASER_TEST_DIST ?? join(root, 'dist');
const cli = builtCli();

/** Reachable directly, refused by the proxy: a direct dial would show up here. */
const UNTOUCHED_IP = '127.0.0.3';
const USER = 'cloudtaser-relay';
const PASSWORD = 'Pr0xy:pa$$word';

let dir: string;
let store: SecretStore;
let beacon: BeaconHandle;
let proxy: TestProxy;
let kube: KubeTestServer;
let kubeconfig: string;
let beaconCaFile: string;
let untouched: Server;
const untouchedConnections: Socket[] = [];
const children = new Set<ChildProcess & { output: () => string }>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cloudtaser-proxy-proc-'));
  store = await startSecretStore();
  beacon = await createBeacon({
    host: '127.0.0.1',
    port: 0,
    tls: beaconCert,
    bridgeCaPems: [beaconClientCa.certPem],
    limits: FAST_BEACON_LIMITS,
  });
  proxy = await startTestProxy({
    credentials: { username: USER, password: PASSWORD },
    refuseHosts: [UNTOUCHED_IP],
  });
  untouched = createServer((socket) => {
    untouchedConnections.push(socket);
    socket.destroy();
  });
  untouched.listen(beacon.port, UNTOUCHED_IP);
  await once(untouched, 'listening');
  beaconCaFile = join(dir, 'beacon.pem');
  await writeFile(beaconCaFile, beaconCert.certPem);
  kube = await startKubeTestServer();
  // The operator's namespace, where the broker keeps its trust record (the default --trust-record).
  await kube.createServiceAccount('cloudtaser-system', 'cloudtaser');
  kubeconfig = join(dir, 'kubeconfig');
  await kube.writeKubeconfig(kubeconfig);
});

afterEach(async () => {
  for (const child of [...children]) await stop(child);
});

afterAll(async () => {
  untouched?.close();
  await kube?.close();
  await proxy?.close();
  await beacon?.close();
  await store?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function run(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, [cli, ...args], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      CLOUDTASER_LOG_LEVEL: 'info',
      CLOUDTASER_DEV_RESOLVE: `${BEACON_NAME}=127.0.0.1,${UNTOUCHED_IP}`,
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  }) as ChildProcess & { output: () => string };
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  child.output = () => stderr;
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

async function freePort(): Promise<number> {
  const probe = createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as { port: number };
  await new Promise((done) => probe.close(done));
  return port;
}

function proxyUrl(password: string): string {
  return `http://${encodeURIComponent(USER)}:${encodeURIComponent(password)}@127.0.0.1:${proxy.port}`;
}

async function status(port: number): Promise<Record<string, string> | undefined> {
  try {
    return (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as Record<string, string>;
  } catch {
    return undefined;
  }
}

function brokerRun(healthPort: number, beaconProxy: string) {
  return run(
    [
      'broker',
      'run',
      '--beacon',
      `wss://${BEACON_NAME}:${beacon.port}`,
      '--beacon-ca',
      beaconCaFile,
      '--beacon-proxy',
      beaconProxy,
      '--kubeconfig',
      kubeconfig,
      '--health-listen',
      `127.0.0.1:${healthPort}`,
      ...FAST_BROKER_FLAGS,
    ],
    {},
  );
}

describe('bridge run and broker run behind an HTTP proxy', () => {
  it('bootstrap and tunnel go through the proxy only (bridge: HTTPS_PROXY, TLS door; broker: --beacon-proxy, WebSocket door), and no credential reaches a log', async () => {
    await store.register(kube.kubeSystemUid);
    const bridgePort = await freePort();
    const brokerPort = await freePort();
    const bridge = run(
      [
        'bridge',
        'run',
        '--secretstore-address',
        store.server.address,
        '--beacon',
        `${BEACON_NAME}:${beacon.port}`,
        '--beacon-ca',
        beaconCaFile,
        ...(await beaconClientFlags(dir)),
        '--poll-interval',
        '200ms',
        '--backoff-max',
        '1s',
        '--health-listen',
        `127.0.0.1:${bridgePort}`,
      ],
      { CLOUDTASER_SECRETSTORE_TOKEN: store.server.rootToken, HTTPS_PROXY: proxyUrl(PASSWORD) },
    );
    const broker = brokerRun(brokerPort, proxyUrl(PASSWORD));
    const operational = await waitUntil(
      async () => ((await status(brokerPort))?.phase === 'operational' ? status(brokerPort) : undefined),
      { timeoutMs: 45_000, what: 'broker operational' },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\nbroker: ${broker.output()}\nbridge: ${bridge.output()}`);
    });
    expect(operational?.beaconIp).toBe('127.0.0.1');

    const tunnels = proxy.tunnelsTo('127.0.0.1', beacon.port).filter((e) => e.outcome === 200);
    // The bridge waits in both rooms and the broker dials both: at least four tunnels, all authenticated.
    expect(tunnels.length).toBeGreaterThanOrEqual(4);
    expect(tunnels.every((e) => e.username === USER)).toBe(true);
    expect(proxy.tunnelsTo(UNTOUCHED_IP, beacon.port).length).toBeGreaterThanOrEqual(2);
    expect(untouchedConnections).toHaveLength(0);
    // OpenBao is http:// here: HTTPS_PROXY does not apply to it, so the proxy never saw its port.
    const openbaoPort = Number(new URL(store.server.address).port);
    expect(proxy.log.some((e) => e.port === openbaoPort)).toBe(false);

    for (const [name, child] of [
      ['bridge', bridge],
      ['broker', broker],
    ] as const) {
      const output = child.output();
      expect(output, name).toContain('"event":"beacon.route"');
      expect(output, name).toContain(`through HTTP proxy http://127.0.0.1:${proxy.port}`);
      expect(output, name).not.toContain(PASSWORD);
      expect(output, name).not.toContain(encodeURIComponent(PASSWORD));
    }
  }, 90_000);

  it('a proxy that refuses the credentials shows in /status as CT_PROXY_AUTH naming the proxy', async () => {
    const brokerPort = await freePort();
    const broker = brokerRun(brokerPort, proxyUrl('not-the-password'));
    const failed = await waitUntil(
      async () => {
        // `reason` is the current step's: between retries it says what the broker does now ("waiting for the
        // bridge ..."), while `lastErrorCode` keeps the last failure. Wait for a snapshot taken on the failure.
        const body = await status(brokerPort);
        return body?.lastErrorCode && String(body.reason).includes('HTTP proxy') ? body : undefined;
      },
      { timeoutMs: 20_000, what: 'broker reports the proxy' },
    );
    expect(failed?.lastErrorCode).toBe('CT_PROXY_AUTH');
    expect(failed?.reason).toContain(
      `the HTTP proxy http://127.0.0.1:${proxy.port} (--beacon-proxy) answered CONNECT`,
    );
    expect(failed?.reason).not.toMatch(/beacon .* unreachable/);
    expect(broker.output()).not.toContain('not-the-password');
  }, 30_000);
});
