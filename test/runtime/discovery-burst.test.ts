/**
 * The discovery journal keeps MAX_JOURNAL_ENTRIES (512) entries, two per change. A burst of changes faster than a
 * bridge's poll interval can hold (over ~25 registrations or bootstraps a second at the default 10 s, e.g. one
 * `cdktf deploy` of a fleet) ran past the bridge, and every poll of the burst then listed every cluster (two reads
 * per cluster: 20,000 requests a poll at 10,000 clusters, per bridge replica). Now a poll that followed more than a
 * quarter of the journal makes the bridge poll again at a tenth of its interval until the journal calms: at most
 * the first poll of a burst lists everything, and nothing is missed.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BridgeHandle } from '../../runtime/bridge/index.js';
import { announceChange, deregisterCluster, MAX_JOURNAL_ENTRIES } from '../../runtime/registration/index.js';
import { captureLogger } from '../beacon/helpers.js';
import { waitUntil } from '../support/wait.js';
import {
  FAST_BRIDGE_TIMING,
  type Replicas,
  type SecretStore,
  startReplicas,
  startSecretStore,
  startTestBridge,
} from './fixtures.js';

const POLL_MS = 2_000;

let store: SecretStore;
let replicas: Replicas;
let bridge: BridgeHandle;
const log = captureLogger();

beforeAll(async () => {
  store = await startSecretStore();
  replicas = await startReplicas(1);
});
afterAll(async () => {
  await bridge?.close();
  await replicas?.close();
  await store?.close();
});

/** Journal changes (begin and end of a re-announced registration) from `writers` writers at once for `ms`. */
async function burst(ms: number, writers: number): Promise<number> {
  const until = performance.now() + ms;
  let changes = 0;
  const noise = randomUUID();
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (performance.now() < until) {
        const announcement = announceChange(store.admin, { fingerprint: noise, change: 'initialize' });
        await announcement.begin();
        await announcement.end();
        changes++;
      }
    }),
  );
  return changes;
}

describe('a burst of journal changes faster than the poll interval', () => {
  it('makes the bridge poll faster instead of listing every cluster on every poll, and misses nothing', async () => {
    const fleet = await Promise.all(Array.from({ length: 4 }, () => store.register()));
    bridge = await startTestBridge({
      openbao: store.admin,
      beacons: [replicas.address],
      logger: log.logger,
      timing: { ...FAST_BRIDGE_TIMING, pollIntervalMs: POLL_MS },
    });
    const resyncs = () =>
      log.lines.filter((line) => line.event === 'discovery.resynced' && line.reason === 'behind').length;
    // A deregistration inside the burst: its entry is soon pushed off the journal by the noise.
    const gone = fleet[0]!.fingerprint;
    const noise = burst(3 * POLL_MS, 4);
    await deregisterCluster(store.registrar, { fingerprint: gone });
    const changes = await noise;
    // Far more than the journal holds per poll interval: without faster polls every poll would resync.
    expect((changes * 2 * POLL_MS) / (3 * POLL_MS)).toBeGreaterThan(MAX_JOURNAL_ENTRIES);
    await waitUntil(() => log.lines.some((line) => line.event === 'bridge.discovery_calm'), {
      what: 'the bridge back at its usual poll interval',
      timeoutMs: 4 * POLL_MS,
    });
    expect(log.lines.some((line) => line.event === 'bridge.discovery_busy')).toBe(true);
    // The first poll of the burst may already find the journal run past it; none after that.
    expect(resyncs()).toBeLessThanOrEqual(1);
    expect(
      bridge
        .status()
        .clusters.map((c) => c.fingerprintPrefix)
        .sort(),
    ).toEqual(
      fleet
        .slice(1)
        .map((c) => c.fingerprint.slice(0, 8))
        .sort(),
    );
  }, 60_000);
});
