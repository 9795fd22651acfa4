/**
 * A bridge closing asks each broker to move first (make before break; with another replica waiting the broker
 * opens its next tunnel there and closes this one itself: test/operational/rollout-drain.test.ts). With no other
 * replica, the move cannot happen: the closing bridge keeps serving for closeMoveWaitMs, then closes the tunnel
 * once idle as before, so a lone bridge's close is bounded and pods are not cut earlier than they used to be.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { BridgeHandle } from '../../runtime/bridge/index.js';
import type { BrokerHandle } from '../../runtime/broker/index.js';
import { FAST_BRIDGE_TIMING, startTestBridge, startTestBroker, useStoreAndReplicas } from './fixtures.js';

const MOVE_WAIT_MS = 1_000;

describe('a lone bridge closing (no replica to move to)', () => {
  let bridge: BridgeHandle | undefined;
  let broker: BrokerHandle | undefined;
  const env = useStoreAndReplicas(1, async () => {
    await broker?.close();
    await bridge?.close();
  });

  it('serves through the move wait, then closes the tunnel once idle, within the wait and the grace', async () => {
    const { fingerprint } = await env.store.register(randomUUID());
    bridge = await startTestBridge({
      openbao: env.store.bridge,
      beacons: [env.replicas.address],
      timing: { ...FAST_BRIDGE_TIMING, closeMoveWaitMs: MOVE_WAIT_MS, closeGraceMs: 5_000 },
    });
    broker = await startTestBroker({ fingerprint, beacons: [env.replicas.address] });
    await broker.waitForPhase('operational', 20_000);
    const tunnel = broker.tunnel()!;

    const started = performance.now();
    const closing = bridge.close();
    await new Promise((resolve) => setTimeout(resolve, MOVE_WAIT_MS / 2));
    // The broker took the move and is dialing; the tunnel it has still carries requests both ways.
    expect(tunnel.closed).toBe(false);
    expect(await tunnel.ping(2_000)).toBeGreaterThanOrEqual(0);
    await closing;
    const closedInMs = performance.now() - started;

    expect(closedInMs).toBeGreaterThanOrEqual(MOVE_WAIT_MS - 50);
    expect(closedInMs).toBeLessThan(MOVE_WAIT_MS + 2_000);
    // Closed by the bridge once idle, the drain's promise: the broker resends what it had not had answered.
    const why = await tunnel.done;
    expect(why.details?.peerCode).toBe('CT_TUNNEL_DRAINED');
    await expect(broker.waitForPhase('reconnecting', 5_000)).resolves.toBeDefined();
  }, 60_000);
});
