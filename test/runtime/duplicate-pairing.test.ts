/**
 * With two beacon replicas the bridge waits on both, and a broker dials both: its announce pairs on both at once,
 * it keeps the first and destroys the other. The bridge end of the one it destroyed used to wait for the inner TLS
 * handshake until its step timeout (10 s by default): the beacon passes the broker's close on as an end of the
 * stream, which a TLS client over a paired stream did not see. For that long the cluster had no bridge waiter on
 * that replica (so a drain there had nowhere to move the tunnel), and every broker connect logged
 * `bridge.session_failed` and counted a failed handshake. Now the end fails the handshake at once, and a pairing
 * its peer left before answering is not reported as a failure.
 */
import { describe, expect, it } from 'vitest';
import { createHandshakeGate } from '../../runtime/bridge/handshake-gate.js';
import type { BridgeHandle } from '../../runtime/bridge/index.js';
import type { BrokerHandle } from '../../runtime/broker/index.js';
import { captureLogger } from '../beacon/helpers.js';
import { waitUntil } from '../support/wait.js';
import { FAST_BRIDGE_TIMING, startTestBridge, startTestBroker, useStoreAndReplicas } from './fixtures.js';

let bridge: BridgeHandle;
let broker: BrokerHandle | undefined;
const log = captureLogger();
const env = useStoreAndReplicas(2, async () => {
  await broker?.close();
  await bridge?.close();
});

describe('a broker pairing on two beacon replicas at once', () => {
  it('costs the bridge nothing: its waiter on the other replica is back at once, and no failure is reported', async () => {
    const { fingerprint } = await env.store.register();
    // A step timeout far longer than the check below: a handshake left waiting for it shows.
    bridge = await startTestBridge({
      openbao: env.store.admin,
      beacons: [env.replicas.address],
      logger: log.logger,
      timing: { ...FAST_BRIDGE_TIMING, stepTimeoutMs: 30_000, pollIntervalMs: 60_000 },
    });
    broker = await startTestBroker({ fingerprint, beacons: [env.replicas.address] });
    await broker.waitForPhase('operational', 15_000);
    // Both rooms on both replicas: the operational waiter the broker's second pairing took is back.
    await waitUntil(() => bridge.status().clusters[0]?.waiting === 4, {
      what: 'the bridge waiting in both rooms on both replicas',
      timeoutMs: 5_000,
    });
    // Both replicas paired the broker's announce; the one it dropped is a debug line, not a warning or a failure.
    expect(log.lines.filter((line) => line.event === 'bridge.session_failed')).toEqual([]);
    expect(log.lines.filter((line) => line.event === 'bridge.paired').length).toBeGreaterThan(2);
    expect(bridge.status().clusters[0]?.failedHandshakes).toBe(0);
  }, 60_000);
});

describe('pairings a peer leaves before the handshake (hostile relay)', () => {
  it('are paced like failures while nothing succeeds, without counting as failures, so a pair-and-drop loop cannot make the bridge spin', async () => {
    const gate = createHandshakeGate({ initialMs: 50, maxMs: 10_000 });
    for (let i = 0; i < 3; i++) gate.abandoned();
    const started = performance.now();
    await gate.ready(new AbortController().signal);
    // 50, 100, then 200 ms: the third abandon in a row waits at least 200 ms.
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
    expect(gate.failures).toBe(0);
    gate.succeeded();
    gate.abandoned();
    const again = performance.now();
    await gate.ready(new AbortController().signal);
    // After a success the count starts over: the first abandon pauses the initial 50 ms, not 400.
    expect(performance.now() - again).toBeLessThan(400);
  });
});
