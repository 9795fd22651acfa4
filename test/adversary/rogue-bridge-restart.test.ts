/**
 * Attack: restart of an unpinned broker while a rogue party, which knows only the init hash (`source register`
 * prints it; Terraform keeps it as an output), keeps bridge waiters with its own CA in the init room. Before the
 * fix the restarted broker paired with a rogue waiter on its second try, went operational on the rogue CA, and
 * answered the rogue's TokenReview with its cluster rights.
 *
 * The beacon here lets anyone wait as a bridge, so what is proven is what the broker itself holds: the first CA it
 * accepted is in the cluster's trust record, and a restarted broker accepts only that one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeClient } from '../../runtime/kube/index.js';
import { rearmCluster } from '../../runtime/registration/index.js';
import { waitUntil } from '../support/wait.js';
import {
  startRogueBridge,
  startTrustStage,
  statusOf,
  type TrustStage,
  watchBroker,
} from './trust-harness.js';

let stage: TrustStage;

beforeAll(async () => {
  stage = await startTrustStage({ anonymousBridges: true });
});
afterAll(async () => {
  await stage?.close();
});

describe('attack: restart an unpinned broker while rogue bridges wait in the init room', () => {
  it('never goes operational on the rogue CA, sends the rogue neither fingerprint nor CSR, and lets no TokenReview reach it', async () => {
    const realHashPrefix = stage.cluster.operationalHash.slice(0, 12);
    // First start: no pin anywhere; the broker bootstraps with the real bridge and records its CA.
    const first = await stage.startBroker();
    await waitUntil(async () => (await statusOf(first.healthPort))?.phase === 'operational', {
      timeoutMs: 20_000,
      what: 'first broker operational',
    });
    expect((await statusOf(first.healthPort))?.operationalHashPrefix).toBe(realHashPrefix);

    const rogue = startRogueBridge({
      beaconAddress: stage.beaconAddress,
      initHash: stage.cluster.initHash,
      waiters: 4,
    });
    try {
      await waitUntil(() => rogue.counts.waitingAccepted >= 4, {
        timeoutMs: 10_000,
        what: 'rogue waiters in the init room',
      });
      // The operator pod restarts: a new process, a new key, nothing in memory.
      await first.process.kill();
      const second = await stage.startBroker();
      const watch = watchBroker(second.healthPort, rogue.rogue.operationalHash);
      try {
        // The restarted broker meets the rogue waiters again and again (and the real bridge, which refuses it: the
        // cluster is initialized and this test runs without attestation).
        await waitUntil(() => rogue.counts.initPairings >= 3 || watch.operationalOnRogue, {
          timeoutMs: 30_000,
          what: 'the broker meeting rogue waiters',
        });
        expect(watch.operationalOnRogue, 'operational on the rogue CA').toBe(false);
        expect(rogue.counts.bootstrapRequests, 'fingerprint and CSR sent to the rogue').toBe(0);
        expect(rogue.counts.tunnelsOpened, 'tunnels to the rogue').toBe(0);
        expect(rogue.counts.tokenReviewsAnswered, 'TokenReviews answered for the rogue').toBe(0);

        // The admin re-arms (the documented way to let a restarted, unattested operator in): the broker meets
        // the real bridge among the rogue waiters and is operational on the real CA, and only on it.
        await rearmCluster(stage.store.admin, { fingerprint: stage.cluster.fingerprint });
        await waitUntil(async () => (await statusOf(second.healthPort))?.phase === 'operational', {
          timeoutMs: 30_000,
          what: 'the restarted broker operational after the re-arm',
        });
        expect((await statusOf(second.healthPort))?.operationalHashPrefix).toBe(realHashPrefix);
        expect(watch.operationalOnRogue).toBe(false);
        expect(rogue.counts.tunnelsOpened).toBe(0);
        expect(rogue.counts.tokenReviewsAnswered).toBe(0);
      } finally {
        await watch.stop();
      }
      // /status never shows the fingerprint (nor a full room hash), in any phase the broker went through.
      expect(watch.seen.map((status) => status.phase)).toContain('rejected');
      for (const status of watch.seen) {
        const text = JSON.stringify(status);
        expect(text).not.toContain(stage.cluster.fingerprint);
        expect(text).not.toContain(stage.cluster.operationalHash);
        expect(text).not.toContain(stage.cluster.initHash);
      }
      // The record the broker kept in the cluster names the real CA.
      const kube = KubeClient.fromConnection({ kind: 'kubeconfig', path: stage.kubeconfig });
      try {
        const record = await kube.getConfigMap('cloudtaser-system', 'cloudtaser-trust');
        expect(record.data?.caSha256).toBe(stage.cluster.operationalHash);
        expect(record.data?.recordedBy).toMatch(/first bootstrap/);
      } finally {
        kube.close();
      }
    } finally {
      rogue.stop();
    }
  }, 120_000);
});
