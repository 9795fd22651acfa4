/**
 * SIGTERM of the real processes (`cloudtaser-cli beacon serve`, `bridge run`, `broker run`) as the kubelet sends it
 * on a rollout, with `--shutdown-delay` as the charts pass it (1 s here): /readyz answers 503 at once while the
 * process keeps serving (Kubernetes removes endpoints while it runs), then it exits 0 well inside the 30 s grace
 * period. Before, each process closed within ~25 ms and /readyz went from 200 straight to connection refused.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { ensureBeaconClientCa } from '../../runtime/registration/index.js';
import { freePort } from '../ports.js';
import { builtCli, root } from '../support/built-cli.js';
import { waitUntil } from '../support/wait.js';
import {
  BEACON_NAME,
  beaconCert,
  FAST_BROKER_FLAGS,
  type SecretStore,
  startSecretStore,
} from './fixtures.js';

const SHUTDOWN_DELAY_MS = 1_000;

let dir: string;
let store: SecretStore;
let kube: KubeTestServer;
const ports: Record<string, number> = {};
const procs: Record<string, ChildProcess> = {};
const stderrs: Record<string, string> = {};

function run(name: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, [builtCli(), ...args, '--shutdown-delay', `${SHUTDOWN_DELAY_MS}ms`], {
    cwd: root,
    env: {
      ...process.env,
      CLOUDTASER_LOG_LEVEL: 'info',
      CLOUDTASER_DEV_RESOLVE: `${BEACON_NAME}=127.0.0.1`,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  stderrs[name] = '';
  const keep = (c: Buffer) => {
    stderrs[name] = (stderrs[name] + c.toString()).slice(-20000);
  };
  child.stderr?.on('data', keep);
  child.stdout?.on('data', keep);
  procs[name] = child;
  return child;
}

async function probe(port: number, path: string): Promise<number> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(1000) });
    await r.text();
    return r.status;
  } catch {
    return -1;
  }
}

/** SIGTERM, then: readiness as the kubelet polls it, exit code and time. */
async function terminate(
  name: string,
): Promise<{ exitMs: number; code: number | null; signal: string | null; readyz: number[] }> {
  const child = procs[name]!;
  const readyz: number[] = [];
  let exited = false;
  const exit = new Promise<{ code: number | null; signal: string | null }>((done) =>
    child.once('exit', (code, signal) => {
      exited = true;
      done({ code, signal });
    }),
  );
  const started = performance.now();
  child.kill('SIGTERM');
  const poll = (async () => {
    while (!exited && performance.now() - started < 35_000) {
      const s = await probe(ports[`${name}Health`]!, '/readyz');
      if (readyz[readyz.length - 1] !== s) readyz.push(s);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const grace = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const { code, signal } = await exit;
  clearTimeout(grace);
  await poll;
  return { exitMs: Math.round(performance.now() - started), code, signal, readyz };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ct-restarts-'));
  store = await startSecretStore();
  await writeFile(join(dir, 'beacon.pem'), beaconCert.certPem);
  await writeFile(join(dir, 'beacon-key.pem'), beaconCert.keyPem);
  await writeFile(join(dir, 'client-ca.pem'), (await ensureBeaconClientCa(store.admin)).certPem);
  kube = await startKubeTestServer();
  await kube.createNamespace('cloudtaser-system');
  await kube.writeKubeconfig(join(dir, 'kubeconfig'));
  await store.register(kube.kubeSystemUid);
  for (const p of ['beacon', 'beaconHealth', 'bridgeHealth', 'brokerHealth', 'podApi'])
    ports[p] = await freePort();

  run('beacon', [
    'beacon',
    'serve',
    '--listen',
    `127.0.0.1:${ports.beacon}`,
    '--tls-cert',
    join(dir, 'beacon.pem'),
    '--tls-key',
    join(dir, 'beacon-key.pem'),
    '--bridge-ca',
    join(dir, 'client-ca.pem'),
    '--metrics-listen',
    `127.0.0.1:${ports.beaconHealth}`,
    '--keepalive-ms',
    '1000',
  ]);
  await waitUntil(async () => (await probe(ports.beaconHealth!, '/readyz')) === 200, {
    timeoutMs: 15_000,
    what: 'beacon ready',
  });
  run(
    'bridge',
    [
      'bridge',
      'run',
      '--secretstore-address',
      store.server.address,
      '--beacon',
      `${BEACON_NAME}:${ports.beacon}`,
      '--beacon-ca',
      join(dir, 'beacon.pem'),
      '--poll-interval',
      '200ms',
      '--backoff-max',
      '1s',
      '--step-timeout',
      '3s',
      '--metrics-listen',
      `127.0.0.1:${ports.bridgeHealth}`,
      '--wait-refresh',
      '3s',
    ],
    {
      CLOUDTASER_APPROLE_ROLE_ID: store.identities.bridgeRoleId,
      CLOUDTASER_APPROLE_SECRET_ID: store.identities.bridgeSecretId,
    },
  );
  run('broker', [
    'broker',
    'run',
    '--beacon',
    `${BEACON_NAME}:${ports.beacon}`,
    '--beacon-ca',
    join(dir, 'beacon.pem'),
    '--kubeconfig',
    join(dir, 'kubeconfig'),
    '--metrics-listen',
    `127.0.0.1:${ports.brokerHealth}`,
    '--pod-api-listen',
    `127.0.0.1:${ports.podApi}`,
    '--pod-api-dns-name',
    'localhost',
    ...FAST_BROKER_FLAGS,
  ]);
  await waitUntil(
    async () => {
      try {
        const s = (await (await fetch(`http://127.0.0.1:${ports.brokerHealth}/status`)).json()) as {
          phase: string;
        };
        return s.phase === 'operational';
      } catch {
        return false;
      }
    },
    { timeoutMs: 30_000, what: 'broker operational' },
  ).catch((err) => {
    throw new Error(`${err}\n${stderrs.broker}\n${stderrs.bridge}`);
  });
}, 60_000);

afterAll(async () => {
  for (const child of Object.values(procs))
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await kube?.close();
  await store?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('SIGTERM as the kubelet sends it', () => {
  it('broker: an in-flight pod request is answered, readiness goes 503 first, exit 0 within the grace period', async () => {
    const status = (await (await fetch(`http://127.0.0.1:${ports.brokerHealth}/status`)).json()) as {
      podApiCaPem: string;
    };
    const agent = new Agent({ connect: { ca: status.podApiCaPem } });
    // A slow OpenBao: this pod request is in flight when SIGTERM arrives.
    store.server.injectFault({ pathPattern: /sys\/health/, delayMs: 2_000 });
    const started = performance.now();
    const inFlight = request(`https://localhost:${ports.podApi}/v1/sys/health`, { dispatcher: agent }).then(
      async (r) => ({
        status: r.statusCode,
        ms: Math.round(performance.now() - started),
        body: await r.body.text(),
      }),
      (err: Error & { code?: string }) => ({
        status: -1,
        ms: Math.round(performance.now() - started),
        body: String(err.code ?? err.message),
      }),
    );
    await new Promise((r) => setTimeout(r, 300));
    const t = await terminate('broker');
    const answer = await inFlight;
    await agent.close();
    expect(t.code).toBe(0);
    expect(t.exitMs).toBeLessThan(30_000);
    expect(answer.status).not.toBe(-1); // answered (200 or 503), not a reset connection
    expect(t.readyz).toContain(503); // not-ready before the probe port disappears
    expect(t.readyz.filter((status) => status !== 200)[0]).toBe(503); // 503 before the port closes
    expect(t.exitMs).toBeGreaterThanOrEqual(SHUTDOWN_DELAY_MS - 50); // served on through the delay
  }, 60_000);

  it('bridge: exits 0 within the grace period, readiness 503 first', async () => {
    const t = await terminate('bridge');
    expect(t.code).toBe(0);
    expect(t.exitMs).toBeLessThan(30_000);
    expect(t.readyz.filter((status) => status !== 200)[0]).toBe(503); // 503 before the port closes
    expect(t.exitMs).toBeGreaterThanOrEqual(SHUTDOWN_DELAY_MS - 50);
  }, 60_000);

  it('beacon: exits 0 within the grace period, readiness 503 first', async () => {
    const t = await terminate('beacon');
    expect(t.code).toBe(0);
    expect(t.exitMs).toBeLessThan(30_000);
    expect(t.readyz.filter((status) => status !== 200)[0]).toBe(503); // 503 before the port closes
    expect(t.exitMs).toBeGreaterThanOrEqual(SHUTDOWN_DELAY_MS - 50);
  }, 60_000);
});
