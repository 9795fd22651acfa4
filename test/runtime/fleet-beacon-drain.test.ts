/**
 * A beacon replica leaving a fleet (a rollout, a scale-down) with many clusters' tunnels through it: it drains, the
 * bridge asks the broker of every one of those tunnels to move, each opens its next tunnel through the other
 * replica while the old one still runs, and the replica closes once
 * the last relay has ended, long before its grace would cut them. No cluster bootstraps again, and OpenBao sees
 * nothing but the bridge's discovery polls: moving a tunnel costs pairings and handshakes, not trust material.
 */
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import type { BridgeHandle } from '../../runtime/bridge/index.js';
import type { BrokerHandle } from '../../runtime/broker/index.js';
import { paths } from '../../runtime/registration/index.js';
import { waitUntil } from '../support/wait.js';
import {
  FAST_BRIDGE_TIMING,
  FAST_BROKER_TIMING,
  REPLICA_IPS,
  startTestBridge,
  startTestBroker,
  useStoreAndReplicas,
} from './fixtures.js';

const CLUSTERS = 40;
let bridge: BridgeHandle;
const brokers: BrokerHandle[] = [];
const fingerprints: string[] = [];
const env = useStoreAndReplicas(2, async () => {
  await Promise.all(brokers.map((broker) => broker.close()));
  await bridge?.close();
});

beforeAll(async () => {
  for (let i = 0; i < CLUSTERS; i++) fingerprints.push((await env.store.register(randomUUID())).fingerprint);
  bridge = await startTestBridge({
    openbao: env.store.admin,
    beacons: [env.replicas.address],
    // No waiter refresh during the test (the fast timing's 3 s): with 160 waiters redialed every 3 s, a loaded
    // machine rarely showed all of them in place at one instant, and the drain needs none refreshed.
    timing: { ...FAST_BRIDGE_TIMING, stepTimeoutMs: 20_000, pollIntervalMs: 10_000, waitRefreshMs: 120_000 },
  });
  // A long step, like the bridge's: a broker whose bridge left a pairing before the handshake (its waiter was
  // refreshed in that moment) sees that end at once (test/runtime/broker-peer-left.test.ts), so no broker here
  // waits for its step.
  const timing = { ...FAST_BROKER_TIMING, stepTimeoutMs: 20_000, pairTimeoutMs: 15_000 };
  for (let i = 0; i < fingerprints.length; i += 10) {
    const group = await Promise.all(
      fingerprints
        .slice(i, i + 10)
        .map((fingerprint) => startTestBroker({ fingerprint, beacons: [env.replicas.address], timing })),
    );
    brokers.push(...group);
    await Promise.all(group.map((broker) => broker.waitForPhase('operational', 60_000)));
  }
}, 180_000);
describe('a beacon replica draining in a fleet', () => {
  it('moves every tunnel through it to the other replica before its grace ends, with no bootstrap', async () => {
    // Every waiter in place on both replicas, so each cluster has somewhere to go. A precondition, not a figure:
    // 160 paced TLS dials (it timed out at 10 s in three full-suite runs on a loaded machine).
    await waitUntil(() => bridge.status().clusters.every((cluster) => cluster.waiting === 4), {
      what: 'the bridge waiting in both rooms of every cluster on both replicas',
      timeoutMs: 30_000,
    });
    await bridge.pollNow();
    const through = (ip: string) => brokers.filter((broker) => broker.status().beaconIp === ip);
    const from = through(REPLICA_IPS[0]).length >= through(REPLICA_IPS[1]).length ? 0 : 1;
    const carried = through(REPLICA_IPS[from]);
    expect(carried.length).toBeGreaterThanOrEqual(CLUSTERS / 2);
    const writes = fingerprints.map((fingerprint) => env.store.initializedWrites(fingerprint));
    const signed = bridge.status().bootstrapsSigned;
    const phases = new Set<string>();
    const watch = setInterval(() => {
      for (const broker of brokers) phases.add(broker.status().phase);
    }, 20);
    const mark = env.store.server.requestLog().length;

    const graceMs = 30_000;
    const replica = env.replicas.handles[from]!;
    const started = performance.now();
    replica.drain({ relaysCutInMs: graceMs });
    await replica.close({ graceMs });
    const closedMs = performance.now() - started;
    await waitUntil(
      () =>
        brokers.every(
          (broker) =>
            broker.status().phase === 'operational' && broker.status().beaconIp === REPLICA_IPS[1 - from],
        ),
      { what: 'every broker operational through the other replica', timeoutMs: 30_000 },
    );
    clearInterval(watch);

    // The relays ended because their tunnels moved: the replica did not wait for its grace, let alone cut them.
    expect(closedMs).toBeLessThan(graceMs / 2);
    expect(fingerprints.map((fingerprint) => env.store.initializedWrites(fingerprint))).toEqual(writes);
    expect(bridge.status().bootstrapsSigned).toBe(signed);
    expect(phases.has('bootstrapping')).toBe(false);
    // Make before break: every broker opened its next tunnel before closing the old one, so none was ever without
    // one (before, each closed first and reconnected: 'reconnecting').
    expect([...phases]).toEqual(['operational']);
    const others = env.store.server
      .requestLog()
      .slice(mark)
      .filter((r) => !(r.method === 'GET' && r.path.endsWith(`data/${paths.discoveryJournal}`)));
    expect(others).toEqual([]);
    for (const broker of carried) expect(await broker.tunnel()!.ping()).toBeGreaterThanOrEqual(0);
  }, 120_000);
});
