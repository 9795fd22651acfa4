/**
 * High availability: beacon replicas as real processes on 127.0.0.1 / .2 / .3 with ONE port behind one name (a
 * resolver the test changes, as DNS would). The replica carrying a live tunnel is killed with SIGKILL while
 * requests are in flight; the broker and bridge must re-pair through another replica within the backoff bound,
 * and a replica added later must be used after the next resolve. Re-pair times are printed for the report.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BridgeHandle, startBridge } from '../../runtime/bridge/index.js';
import { type BrokerHandle, startBroker } from '../../runtime/broker/index.js';
import { TUNNEL_INFO_PATH } from '../../runtime/tunnel/index.js';
import { type BeaconProcess, startBeaconProcess } from '../load/processes.js';
import {
  BEACON_NAME,
  beaconCert,
  FAST_BRIDGE_TIMING,
  FAST_BROKER_TIMING,
  type SecretStore,
  startSecretStore,
} from '../runtime/fixtures.js';
import { waitUntil } from '../support/wait.js';

const IPS = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
/**
 * Generous bound for kill -> operational again: the broker notices at once (the kernel closes the sockets of a
 * killed process), then one backoff step (<= 50 ms first) and one pairing; the bridge already waits on every
 * replica. backoffMaxMs + pairTimeoutMs would be the worst case; CI machines are slow, so allow 5 s.
 */
const REPAIR_BOUND_MS = 5_000;

let store: SecretStore;
let port = 0;
const replicas = new Map<string, BeaconProcess>();
/** What "DNS" answers for the beacon name right now. */
let published: string[] = [];
let bridge: BridgeHandle;
let broker: BrokerHandle;
const timings: Record<string, number> = {};
/** How many `/v1/slow` requests reached the bridge's handler (which holds them open). */
let slowRequestsHeld = 0;

const resolve = async (host: string) => (host === BEACON_NAME ? [...published] : [host]);

async function startReplica(ip: string): Promise<void> {
  const replica = await startBeaconProcess({
    host: ip,
    port,
    plain: false,
    tls: beaconCert,
    limits: { brokerWaitMs: 2_000, bridgeWaitMs: 5_000, keepaliveIntervalMs: 1_000 },
  });
  port = replica.port;
  replicas.set(ip, replica);
}

beforeAll(async () => {
  store = await startSecretStore();
  await startReplica(IPS[0]);
  await startReplica(IPS[1]);
  published = [IPS[0], IPS[1]];
});
afterAll(async () => {
  await broker?.close();
  await bridge?.close();
  for (const replica of replicas.values()) await replica.close();
  await store?.close();
  if (Object.keys(timings).length > 0)
    process.stderr.write(`ha re-pair timings (ms): ${JSON.stringify(timings)}\n`);
});

/** Kills the replica carrying the tunnel; returns ms until the broker is operational on another one. */
async function killCarrierAndTimeRepair(
  label: string,
): Promise<{ ms: number; newIp: string; oldIp: string }> {
  const oldIp = broker.status().beaconIp!;
  const tunnel = broker.tunnel()!;
  const held = slowRequestsHeld;
  // Requests in flight at the moment of the kill: the bridge handler holds them open.
  const inFlight = [1, 2, 3].map(() =>
    tunnel.request({ method: 'GET', path: '/v1/slow' }).then(
      () => 'answered',
      (err: { code: string }) => err.code,
    ),
  );
  await waitUntil(() => slowRequestsHeld >= held + inFlight.length, {
    what: 'the bridge holding the in-flight requests',
  });
  const started = performance.now();
  await replicas.get(oldIp)!.kill9();
  replicas.delete(oldIp);
  // In-flight requests fail fast with a code; none hangs and none is answered twice.
  expect(await Promise.all(inFlight)).toEqual(['CT_TUNNEL_CLOSED', 'CT_TUNNEL_CLOSED', 'CT_TUNNEL_CLOSED']);
  await waitUntil(() => broker.status().phase === 'operational' && broker.tunnel() !== tunnel, {
    timeoutMs: REPAIR_BOUND_MS + 5_000,
    what: 'operational again',
  });
  const ms = performance.now() - started;
  timings[label] = Math.round(ms);
  return { ms, newIp: broker.status().beaconIp!, oldIp };
}

describe('beacon replicas behind one name', () => {
  it('re-pairs the broker and bridge on the other replica within the backoff bound when the carrying one is killed mid-tunnel', async () => {
    const cluster = await store.register();
    bridge = await startBridge({
      openbao: store.bridge,
      beacons: [`${BEACON_NAME}:${port}`],
      beaconCaPem: beaconCert.certPem,
      resolve,
      timing: FAST_BRIDGE_TIMING,
      handler: async (request) => {
        if (request.path === '/v1/slow') {
          slowRequestsHeld++;
          await new Promise((r) => setTimeout(r, 30_000));
        }
        return { status: 200, body: 'ok' };
      },
    });
    broker = await startBroker({
      fingerprint: cluster.fingerprint,
      beacons: [`${BEACON_NAME}:${port}`],
      beaconCaPem: beaconCert.certPem,
      resolve,
      timing: FAST_BROKER_TIMING,
    });
    await broker.waitForPhase('operational', 15_000);
    // The bridge waits on every replica, so the survivor already holds its waiter.
    await waitUntil(() => bridge.status().clusters[0]?.waiting === 4, {
      timeoutMs: 5_000,
      what: 'bridge waiting on both replicas',
    });

    const { ms, newIp, oldIp } = await killCarrierAndTimeRepair('kill_carrier_of_2');
    expect(newIp).not.toBe(oldIp);
    expect(published).toContain(newIp);
    expect(ms).toBeLessThan(REPAIR_BOUND_MS);
    const answer = await broker.tunnel()!.request({ method: 'GET', path: TUNNEL_INFO_PATH });
    expect(answer.status).toBe(200);
    // The re-pair used the certificates already held: no second bootstrap.
    expect(store.initializedWrites(cluster.fingerprint)).toBe(1);
  }, 40_000);

  it('picks up a replica added later on the next resolve, and re-pairs through it', async () => {
    const survivor = broker.status().beaconIp!;
    const dead = IPS.slice(0, 2).find((ip) => ip !== survivor)!;
    await startReplica(IPS[2]);
    // DNS now lists the survivor and the new replica (the dead one has left the Service's endpoints).
    published = [survivor, IPS[2]];
    await bridge.pollNow();
    await waitUntil(() => bridge.status().clusters[0]?.waiting === 4, {
      timeoutMs: 5_000,
      what: 'bridge waiting on the new replica',
    });
    expect(dead).not.toBe(IPS[2]);

    const { ms, newIp } = await killCarrierAndTimeRepair('kill_carrier_after_scale_out');
    expect(newIp).toBe(IPS[2]);
    expect(ms).toBeLessThan(REPAIR_BOUND_MS);
    expect((await broker.tunnel()!.request({ method: 'GET', path: TUNNEL_INFO_PATH })).status).toBe(200);
  }, 40_000);
});
