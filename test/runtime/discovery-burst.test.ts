/**
 * The discovery journal keeps MAX_JOURNAL_ENTRIES (512) entries, two per change. A burst of changes faster than a
 * bridge's poll interval can hold (over ~25 registrations or bootstraps a second at the default 10 s, e.g. one
 * `cdktf deploy` of a fleet) ran past the bridge, and every poll of the burst then listed every cluster (two reads
 * per cluster: 20,000 requests a poll at 10,000 clusters, per bridge replica). Now a poll that followed more than a
 * quarter of the journal makes the bridge poll again at a tenth of its interval until the journal calms: at most
 * the first poll of a burst lists everything, and nothing is missed.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { type BridgeHandle, createBridgeMetrics } from '../../runtime/bridge/index.js';
import { announceChange, deregisterCluster, MAX_JOURNAL_ENTRIES } from '../../runtime/registration/index.js';
import { captureLogger } from '../beacon/helpers.js';
import { waitUntil } from '../support/wait.js';
import { FAST_BRIDGE_TIMING, startTestBridge, useStoreAndReplicas } from './fixtures.js';

/** The bridge's usual poll interval here; the burst below writes ~900 journal entries within each. */
const POLL_MS = 3_000;
const CHANGES_PER_SECOND = 150;
const BURST_MS = 2.5 * POLL_MS;

let bridge: BridgeHandle;
const log = captureLogger();
const env = useStoreAndReplicas(1, async () => {
  await bridge?.close();
});

/**
 * Journal changes (begin and end of a re-announced bootstrap) at `perSecond` for `ms`, started in ticks of 100 ms
 * so the pace does not depend on how fast this machine writes (concurrent announcements share check-and-set
 * writes). Resolves with how many ended.
 */
async function burst(ms: number, perSecond: number): Promise<number> {
  const noise = randomUUID();
  let ended = 0;
  const running: Promise<void>[] = [];
  for (const until = performance.now() + ms; performance.now() < until; ) {
    for (let i = 0; i < perSecond / 10; i++)
      running.push(
        (async () => {
          const announcement = announceChange(env.store.admin, { fingerprint: noise, change: 'initialize' });
          await announcement.begin();
          await announcement.end();
          ended++;
        })(),
      );
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await Promise.all(running);
  return ended;
}

describe('a burst of journal changes faster than the poll interval', () => {
  it('makes the bridge poll faster instead of listing every cluster on every poll, and misses nothing', async () => {
    const fleet = await Promise.all(Array.from({ length: 4 }, () => env.store.register()));
    const metrics = createBridgeMetrics({ processMetrics: false });
    bridge = await startTestBridge({
      metrics,
      openbao: env.store.admin,
      beacons: [env.replicas.address],
      logger: log.logger,
      timing: { ...FAST_BRIDGE_TIMING, pollIntervalMs: POLL_MS },
    });
    const resyncs = () =>
      log.lines.filter((line) => line.event === 'discovery.resynced' && line.reason === 'behind').length;
    // A deregistration inside the burst: its entry is soon pushed off the journal by the noise.
    const gone = fleet[0]!.fingerprint;
    const noise = burst(BURST_MS, CHANGES_PER_SECOND);
    await deregisterCluster(env.store.registrar, { fingerprint: gone });
    const changes = await noise;
    // Far more than the journal holds per poll interval: without faster polls every poll would resync.
    expect((changes * 2 * POLL_MS) / BURST_MS).toBeGreaterThan(MAX_JOURNAL_ENTRIES);
    await waitUntil(() => log.lines.some((line) => line.event === 'bridge.discovery_calm'), {
      what: 'the bridge back at its usual poll interval',
      timeoutMs: 4 * POLL_MS,
    });
    expect(log.lines.some((line) => line.event === 'bridge.discovery_busy')).toBe(true);
    // The first poll of the burst may already find the journal run past it; none after that.
    const pace = log.lines
      .filter((line) => /discovery/.test(String(line.event)))
      .map((line) => `${line.time} ${line.event} ${line.reason ?? ''} ${line.followedEntries ?? ''}`);
    expect(resyncs(), pace.join('\n')).toBeLessThanOrEqual(1);
    // The same count where an SRE sees it: listings by reason.
    const listings = await metrics.registry
      .getSingleMetric('cloudtaser_bridge_discovery_listings_total')!
      .get();
    const behind = listings.values.find((v) => v.labels.reason === 'behind')?.value ?? 0;
    expect(behind).toBe(resyncs());
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
