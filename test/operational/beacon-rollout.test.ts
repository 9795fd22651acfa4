/**
 * A beacon replica restarting (a rollout of the beacon Deployment) used to cut every tunnel through it at once:
 * requests in flight got 503, and the pods' requests waited while brokers redialed. Now the replica drains: it
 * tells its waiting clients `draining`, the bridge asks the broker of each tunnel through it to move (the broker
 * opens its next tunnel through a replica where a waiter of the same cluster waits, then closes the old one with
 * GOAWAY CT_TUNNEL_DRAINED the moment nothing is in flight on it; test/operational/tunnel-move.test.ts), and the
 * replica closes as soon as its relays have ended. With no other replica to go to, the tunnel stays until the beacon cuts it, as
 * before: moving it would only trade a running tunnel for none.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPLICA_IPS } from '../runtime/fixtures.js';
import { waitUntil } from '../support/wait.js';
import {
  type OperationalStack,
  podClientToken,
  podLoad,
  SECRET_PATH,
  startOperationalStack,
} from './stack.js';

let stack: OperationalStack;
let token: string;

beforeAll(async () => {
  stack = await startOperationalStack({ logLevel: 'info' });
  await stack.replicas.start(1);
  await bothReplicasWaited();
  token = await podClientToken(stack);
}, 60_000);
afterAll(async () => {
  await stack?.close();
});

/** The bridge waits for the cluster on both replicas (both rooms): a broker has somewhere to go. */
async function bothReplicasWaited(): Promise<void> {
  await stack.bridge.pollNow();
  await waitUntil(
    () =>
      REPLICA_IPS.every(
        (ip) => (stack.replicas.handles[REPLICA_IPS.indexOf(ip)]?.stats().waitingBridges ?? 0) >= 1,
      ),
    { what: 'the bridge waiting on both beacon replicas', timeoutMs: 20_000 },
  );
}

function carrier(): number {
  const ip = stack.broker.status().beaconIp;
  expect(ip).toBeDefined();
  return REPLICA_IPS.indexOf(ip as string);
}

const count = (event: string, also = '') =>
  stack.logs.filter((line) => line.includes(`"event":"${event}"`) && line.includes(also)).length;

describe('a beacon replica restarting while pods read (beacon rollout)', () => {
  it('answers every pod request while the tunnel moves to the other replica, and the replica closes early', async () => {
    await stack.broker.waitForPhase('operational', 15_000);
    const from = carrier();
    const to = 1 - from;
    const replica = stack.replicas.handles[from];
    if (!replica) throw new Error('the carrying replica is not running');
    const drainedBefore = count('tunnel.closed', 'CT_TUNNEL_DRAINED');
    const bootstrapsBefore = stack.bridge.status().bootstrapsSigned;
    // Requests in flight on the tunnel when the replica drains: OpenBao answers some reads and a renewal slowly.
    stack.openbao.injectFault({ pathPattern: /secret\/data/, method: 'GET', delayMs: 300, times: 4 });
    stack.openbao.injectFault({ pathPattern: /renew-self/, method: 'POST', delayMs: 300, times: 1 });
    const stop = new AbortController();
    const load = podLoad(stack, token, 8, stop.signal);
    await new Promise((resolve) => setTimeout(resolve, 200));

    // What `beacon serve` does on SIGTERM: drain, then close with a grace for the relays to end by themselves.
    const graceMs = 10_000;
    const started = performance.now();
    replica.drain({ relaysCutInMs: graceMs });
    await replica.close({ graceMs });
    const closedInMs = performance.now() - started;
    await waitUntil(() => stack.broker.status().beaconIp === REPLICA_IPS[to], {
      what: 'the broker operational through the other replica',
      timeoutMs: 10_000,
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    stop.abort();
    const statuses = await load;

    const failed = statuses.filter((status) => status !== 200);
    expect({ answered: statuses.length > 20, failed }).toEqual({ answered: true, failed: [] });
    // The relay ended because the tunnel moved, long before the grace would have cut it.
    expect(closedInMs).toBeLessThan(graceMs / 2);
    expect(stack.broker.status().phase).toBe('operational');
    // The same trust: the broker came back in the operational room, no new bootstrap was signed.
    expect(stack.bridge.status().bootstrapsSigned).toBe(bootstrapsBefore);
    expect(count('bridge.beacon_draining', `"beaconIp":"${REPLICA_IPS[from]}"`)).toBe(1);
    expect(count('tunnel.closed', 'CT_TUNNEL_DRAINED')).toBeGreaterThan(drainedBefore);

    // The replica's pod comes back (same address): the bridge waits on it again.
    await stack.replicas.start(from);
    await bothReplicasWaited();
  }, 60_000);

  it('keeps the tunnel through a lone replica that drains until the beacon cuts it (nowhere else to go)', async () => {
    await stack.broker.waitForPhase('operational', 15_000);
    const from = carrier();
    const other = 1 - from;
    await stack.replicas.stop(other);
    const replica = stack.replicas.handles[from];
    if (!replica) throw new Error('the carrying replica is not running');
    // The bridge has seen its waits there end (a replica it still believed in would be somewhere to go). Two
    // waiters in all is not enough: one on the stopped replica not yet seen ending, while the remaining replica's
    // operational waiter is between two waits, also makes two. Both must be on the remaining replica.
    await waitUntil(
      () => stack.bridge.status().clusters[0]?.waiting === 2 && replica.stats().waitingBridges === 2,
      {
        what: 'the bridge waiting only on the remaining replica (init and operational rooms)',
        timeoutMs: 10_000,
      },
    );
    const drainingBefore = count('bridge.beacon_draining');
    const drainedBefore = count('tunnel.closed', 'CT_TUNNEL_DRAINED');
    const [tunnel] = stack.bridge.tunnels();

    replica.drain({ relaysCutInMs: 60_000 });
    await waitUntil(() => count('bridge.beacon_draining') > drainingBefore, {
      what: 'the bridge hearing that the replica drains',
      timeoutMs: 10_000,
    });
    // The tunnel still runs through the draining replica and answers.
    for (let i = 0; i < 5; i++) {
      const read = await stack.podRequest('GET', `/v1/secret/data/${SECRET_PATH}`, { token });
      expect(read.status).toBe(200);
    }
    expect(count('tunnel.closed', 'CT_TUNNEL_DRAINED')).toBe(drainedBefore);
    expect(stack.bridge.tunnels()).toEqual([tunnel]);
    expect(tunnel.closed).toBe(false);

    // The beacon cuts it when its grace ends; both replicas come back and the broker gets a new tunnel.
    await replica.close({ graceMs: 200 });
    await waitUntil(() => tunnel.closed, { what: 'the tunnel cut by the beacon', timeoutMs: 10_000 });
    await stack.replicas.start(from);
    await stack.replicas.start(other);
    await waitUntil(() => stack.bridge.tunnels().some((next) => next !== tunnel && !next.closed), {
      what: 'a new tunnel after the cut',
      timeoutMs: 30_000,
    });
    await waitUntil(() => stack.broker.status().phase === 'operational', {
      what: 'the broker operational again',
      timeoutMs: 10_000,
    });
  }, 90_000);
});
