/**
 * The beacon bounds pairings per room hash per second (`--max-pairings-per-hash-per-second`): over the bound an
 * arriving broker is refused with CT_BEACON_LIMIT (`pairings_per_hash`, counted in metrics) and an arriving
 * bridge waits until the room's budget allows, so a flooded room costs the flooder, never the bridge its place.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BeaconHandle } from '../../runtime/beacon/index.js';
import { type Certs, captureLogger, dialRoom, makeCerts, randomHash, startBeacon } from './helpers.js';

let certs: Certs;
const beacons: BeaconHandle[] = [];
beforeAll(() => {
  certs = makeCerts();
});
afterEach(async () => {
  for (const beacon of beacons.splice(0)) await beacon.close();
});

function dial(beacon: BeaconHandle, role: 'broker' | 'bridge', hash: string, signal?: AbortSignal) {
  return dialRoom(beacon, certs.beacon.certPem, role, hash, 'tls', undefined, signal);
}

describe('pairings per room hash per second', () => {
  it('pairs a flooded room no faster than the bound and refuses the surplus brokers with pairings_per_hash', async () => {
    const log = captureLogger();
    const beacon = await startBeacon(certs, {
      limits: { maxPairingsPerHashPerSecond: 2, brokerWaitMs: 5_000 },
      logger: log.logger,
      metrics: true,
    });
    beacons.push(beacon);
    const hash = randomHash();
    const stop = new AbortController();
    let refusedForRate = 0;
    // A bridge that returns to the room at once after each pairing (no pacing of its own), and brokers that
    // flood it: only the beacon's bound limits the pairings.
    const bridgeLoop = (async () => {
      while (!stop.signal.aborted) {
        const stream = await dial(beacon, 'bridge', hash, stop.signal).catch(() => undefined);
        stream?.destroy();
      }
    })();
    const brokerLoops = Array.from({ length: 6 }, async () => {
      while (!stop.signal.aborted) {
        try {
          (await dial(beacon, 'broker', hash, stop.signal)).destroy();
        } catch (err) {
          if (
            (err as { details?: { reason?: string } }).details?.reason?.includes(
              'paired 2 times in the last second',
            )
          )
            refusedForRate++;
        }
      }
    });
    const started = performance.now();
    await new Promise((done) => setTimeout(done, 2_000));
    stop.abort();
    await Promise.all([bridgeLoop, ...brokerLoops]);
    const seconds = (performance.now() - started) / 1000;
    // A full bucket (2) plus 2 per second.
    expect(beacon.stats().pairingsTotal).toBeLessThanOrEqual(2 + Math.ceil(seconds * 2) + 1);
    expect(beacon.stats().pairingsTotal).toBeGreaterThanOrEqual(2);
    expect(refusedForRate).toBeGreaterThan(0);
    expect(log.lines).toContainEqual(
      expect.objectContaining({
        event: 'rejected',
        reason: 'pairings_per_hash',
        code: 'CT_BEACON_LIMIT',
        role: 'broker',
      }),
    );
    const metrics = await (await fetch(`${beacon.metricsUrl}/metrics`)).text();
    expect(metrics).toMatch(/cloudtaser_beacon_rejections_total\{reason="pairings_per_hash"\} [1-9]/);
  });

  it('lets a bridge that arrives over the bound wait, and pairs it as soon as the budget allows', async () => {
    const beacon = await startBeacon(certs, {
      limits: { maxPairingsPerHashPerSecond: 1, brokerWaitMs: 5_000 },
    });
    beacons.push(beacon);
    const hash = randomHash();
    // Use up the room's budget of one.
    const [a, b] = await Promise.all([dial(beacon, 'broker', hash), dial(beacon, 'bridge', hash)]);
    a.destroy();
    b.destroy();
    // A broker waits; a bridge arrives while the budget is empty: it is held back, not refused.
    const broker = dial(beacon, 'broker', hash);
    await expect.poll(() => beacon.stats().waitingBrokers).toBe(1);
    const heldAt = performance.now();
    const bridge = dial(beacon, 'bridge', hash);
    const [brokerStream, bridgeStream] = await Promise.all([broker, bridge]);
    brokerStream.destroy();
    bridgeStream.destroy();
    expect(beacon.stats().pairingsTotal).toBe(2);
    expect(beacon.stats().rejectionsTotal).toBe(0);
    // It waited for the budget to refill (one per second), not for a timeout.
    expect(performance.now() - heldAt).toBeLessThan(2_500);
  });

  it('refuses a bound below 1 per second', async () => {
    await expect(startBeacon(certs, { limits: { maxPairingsPerHashPerSecond: 0 } })).rejects.toMatchObject({
      code: 'CT_INVALID_ARGUMENT',
      message: expect.stringMatching(/maxPairingsPerHashPerSecond/),
    });
  });
});
