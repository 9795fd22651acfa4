/**
 * Attack: squat the init room. A rogue party that knows the init hash fills the room's bridge places (8 per hash)
 * before the real bridge arrives and re-announces after every pairing, so a pinned broker meets only rogues: it
 * refuses each one (the pin holds), but before the fix it never met the real bridge, and the real bridge was
 * refused a place in the room. Now the beacon admits as bridges only connections with a client certificate from
 * its bridge CAs, so the rogues never wait at all.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../support/wait.js';
import { startRogueBridge, startTrustStage, statusOf, type TrustStage } from './trust-harness.js';

let stage: TrustStage;

beforeAll(async () => {
  // The bridge comes after the rogues, as it does after every restart or wait refresh.
  stage = await startTrustStage({ deferBridge: true });
});
afterAll(async () => {
  await stage?.close();
});

describe('attack: rogue bridges without a bridge certificate squat the init room', () => {
  it('refuses every rogue waiter at the beacon, and a pinned broker meets the real bridge while they keep trying', async () => {
    const rogue = startRogueBridge({
      beaconAddress: stage.beaconAddress,
      initHash: stage.cluster.initHash,
      waiters: 8,
    });
    try {
      // The rogues have tried long enough to fill the room, had the beacon let them.
      await waitUntil(
        () =>
          rogue.counts.waitingAccepted >= 8 ||
          Object.values(rogue.counts.refused).reduce((a, b) => a + b, 0) >= 16,
        { timeoutMs: 15_000, what: 'the rogue waiters trying the init room' },
      );
      await stage.startBridge();
      const broker = await stage.startBroker({ pin: stage.cluster.operationalHash });
      await waitUntil(async () => (await statusOf(broker.healthPort))?.phase === 'operational', {
        timeoutMs: 20_000,
        what: 'the pinned broker operational while rogues squat',
      });
      expect((await statusOf(broker.healthPort))?.operationalHashPrefix).toBe(
        stage.cluster.operationalHash.slice(0, 12),
      );
      expect(rogue.counts.waitingAccepted, 'rogue waiters admitted by the beacon').toBe(0);
      expect(rogue.counts.initPairings, 'brokers paired with a rogue').toBe(0);
      expect(rogue.counts.refused.CT_BEACON_UNAUTHENTICATED ?? 0).toBeGreaterThan(0);
      // The beacon says why, per refusal, in its metrics.
      const metrics = await (await fetch(`http://127.0.0.1:${stage.beaconMetricsPort}/metrics`)).text();
      expect(metrics).toMatch(/cloudtaser_beacon_rejections_total\{reason="bridge_unauthenticated"\} [1-9]/);
    } finally {
      rogue.stop();
    }
  }, 120_000);
});
