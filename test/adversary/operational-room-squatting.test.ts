/**
 * Attack: squat the operational room. Its hash is the SHA-256 of the cluster CA certificate, which every injected
 * pod holds: an outside hostile drill kept ten anonymous connections announcing there as brokers and a restarting
 * broker never got a place (the room holds 8 brokers), re-bootstrapping every few seconds for as long as the flood
 * lasted; every restart, node drain or beacon restart during such a flood became an outage for the cluster's pods.
 * Now a bootstrapped broker presents its certificate with the cluster CA in the outer TLS (beacon/broker-proof.ts):
 * it takes a place an anonymous broker holds, and the bridge is paired with it first.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../support/wait.js';
import { startFakeBrokers, startTrustStage, statusOf, type TrustStage } from './trust-harness.js';

let stage: TrustStage;

beforeAll(async () => {
  // Brokers wait in a room as long as the beacon's default (30 s), so squatters keep their places as they would.
  stage = await startTrustStage({ bridgePollInterval: '1s', beaconFlags: [['--broker-wait-ms', '30000']] });
});
afterAll(async () => {
  await stage?.close();
});

describe('attack: ten anonymous brokers squat the operational room before the broker arrives', () => {
  it('the broker still becomes operational: it proves the room, gets a place and is paired first', async () => {
    const squatters = startFakeBrokers({
      beaconAddress: stage.beaconAddress,
      hash: stage.cluster.operationalHash,
      count: 10,
    });
    try {
      // The room is full of squatters before the broker comes (a third of them refused for want of a place).
      await waitUntil(() => (squatters.counts.refused.CT_BEACON_LIMIT ?? 0) >= 10, {
        timeoutMs: 15_000,
        what: 'the squatters filling the room',
      });
      const broker = await stage.startBroker({ pin: stage.cluster.operationalHash });
      const operational = await waitUntil(
        async () => {
          const status = await statusOf(broker.healthPort);
          return status?.phase === 'operational' ? status : undefined;
        },
        { timeoutMs: 30_000, what: 'the broker operational while the squatters keep the room full' },
      );
      expect(operational.tunnel).toBeDefined();
      // Before, it stayed out for the 30 s of this test (and the drill's 90 s), refused "8 brokers already wait".
      // Now it gets in by a squatter's place (waiting_per_hash_proven) or one a pairing freed, and the bridge
      // pairs with it ahead of the squatters that waited longer (test/beacon/broker-proof.test.ts shows each).
      const metrics = await (await fetch(`http://127.0.0.1:${stage.beaconMetricsPort}/metrics`)).text();
      expect(metrics).toMatch(/cloudtaser_beacon_rejections_total\{reason="waiting_per_hash"\} [1-9]/);
    } finally {
      squatters.stop();
    }
  }, 90_000);
});
