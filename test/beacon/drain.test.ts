/**
 * A beacon replica that shuts down (SIGTERM in a rollout) drains: it pairs nothing more, tells every waiting
 * connection and every late announce `draining` with the time its relays keep running, and lets the relays it
 * carries end by themselves within a grace before it cuts them. Before, a drained replica kept pairing until it
 * closed and then cut every relay at once, so the tunnels through it died with requests in flight.
 */
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { BeaconHandle } from '../../runtime/beacon/index.js';
import { MAX_DRAIN_RETRY_AFTER_MS, parseControl } from '../../runtime/beacon/protocol.js';
import { type CloudtaserError, isCloudtaserError } from '../../runtime/core/index.js';
import { waitUntil } from '../support/wait.js';
import {
  captureLogger,
  dialRoom,
  makeCerts,
  pairThrough,
  randomHash,
  readBytes,
  startBeacon,
} from './helpers.js';

const certs = makeCerts();
const beacons: BeaconHandle[] = [];
afterEach(async () => {
  await Promise.all(beacons.splice(0).map((beacon) => beacon.close()));
});

async function beacon(logger = captureLogger()) {
  const started = await startBeacon(certs, { logger: logger.logger });
  beacons.push(started);
  return { beacon: started, log: logger };
}

const dial = (
  on: BeaconHandle,
  role: 'broker' | 'bridge',
  hash: string,
  door: 'tls' | 'wss' | 'plain',
  onWaiting?: () => void,
) => dialRoom(on, certs.beacon.certPem, role, hash, door, onWaiting);

/** A dial that has reached `waiting`, and its outcome (wrapped: an async function would wait for it). */
async function waiting(
  on: BeaconHandle,
  role: 'broker' | 'bridge',
  door: 'tls' | 'wss' | 'plain',
): Promise<{ outcome: Promise<CloudtaserError | undefined> }> {
  let reached!: () => void;
  const isWaiting = new Promise<void>((resolve) => {
    reached = resolve;
  });
  const outcome = dial(on, role, randomHash(), door, reached).then(
    () => undefined,
    (err: CloudtaserError) => err,
  );
  await isWaiting;
  return { outcome };
}

async function pair(on: BeaconHandle): Promise<{ broker: Duplex; bridge: Duplex }> {
  const streams = await pairThrough(on, certs.beacon.certPem);
  // Flowing, so an end from the beacon is read (a paused stream never emits it; the streams are half-open).
  for (const stream of Object.values(streams)) stream.on('data', () => {});
  return streams;
}

describe('a draining beacon replica', () => {
  for (const door of ['tls', 'wss', 'plain'] as const) {
    it(`tells a client waiting on the ${door} door that it drains, with how long its relays still run`, async () => {
      const { beacon: on } = await beacon();
      const bridge = await waiting(on, 'bridge', door);
      const broker = await waiting(on, 'broker', door);
      on.drain({ relaysCutInMs: 7_000 });
      for (const outcome of [await bridge.outcome, await broker.outcome]) {
        expect(outcome).toMatchObject({ code: 'CT_BEACON_DRAINING' });
        const retryAfterMs = Number(outcome?.details.retryAfterMs);
        expect(retryAfterMs).toBeGreaterThan(5_000);
        expect(retryAfterMs).toBeLessThanOrEqual(7_000);
      }
      expect(on.stats().waiting).toBe(0);
    });
  }

  it('pairs nothing more: a broker and a bridge arriving after the drain are both told and never paired', async () => {
    const { beacon: on, log } = await beacon();
    on.drain({ relaysCutInMs: 5_000 });
    const hash = randomHash();
    const outcomes = await Promise.all(
      (['bridge', 'broker'] as const).map((role) =>
        dial(on, role, hash, 'tls').then(
          () => 'paired',
          (err: CloudtaserError) => err.code,
        ),
      ),
    );
    expect(outcomes).toEqual(['CT_BEACON_DRAINING', 'CT_BEACON_DRAINING']);
    expect(on.stats().pairingsTotal).toBe(0);
    // Late announces are not refusals to alert on: no `rejected` line, one debug line each, counted at close.
    expect(log.lines.filter((line) => line.event === 'rejected')).toEqual([]);
    expect(log.lines.filter((line) => line.event === 'drain_refused')).toHaveLength(2);
    expect(log.lines.filter((line) => line.event === 'draining_pairings')).toHaveLength(1);
  });

  it('keeps copying the bytes of a relay it already carries after the drain', async () => {
    const { beacon: on } = await beacon();
    const { broker, bridge } = await pair(on);
    on.drain({ relaysCutInMs: 5_000 });
    broker.write('still flowing');
    expect((await readBytes(bridge, 13)).toString()).toBe('still flowing');
    broker.destroy();
    bridge.destroy();
  });

  it('closes with a grace as soon as the last relay ends by itself, well before the grace is over', async () => {
    const { beacon: on, log } = await beacon();
    const { broker, bridge } = await pair(on);
    on.drain({ relaysCutInMs: 20_000 });
    const started = performance.now();
    const closed = on.close({ graceMs: 20_000 });
    // The new connections are refused from here on; the relay still flows.
    broker.write('x');
    expect((await readBytes(bridge, 1)).toString()).toBe('x');
    setTimeout(() => {
      broker.end();
      bridge.end();
    }, 200);
    await closed;
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(log.lines.some((line) => line.event === 'relays_cut')).toBe(false);
    expect(log.lines.find((line) => line.event === 'closing_relays')).toMatchObject({ relays: 1 });
  });

  it('cuts the relays still open when the grace ends, and says so', async () => {
    const { beacon: on, log } = await beacon();
    const { broker } = await pair(on);
    const cut = once(broker, 'end');
    await on.close({ graceMs: 300 });
    await cut;
    expect(log.lines.find((line) => line.event === 'relays_cut')).toMatchObject({ relays: 1, graceMs: 300 });
  });

  it('cuts at once when close() is called again without a grace while it waits (a second SIGTERM)', async () => {
    const { beacon: on } = await beacon();
    const { broker } = await pair(on);
    const started = performance.now();
    const graceful = on.close({ graceMs: 60_000 });
    await waitUntil(() => on.stats().paired === 1, { timeoutMs: 1_000 });
    await on.close();
    await graceful;
    await once(broker, 'end');
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('closes at once without a grace, as before (the library default)', async () => {
    const { beacon: on } = await beacon();
    const { broker } = await pair(on);
    const started = performance.now();
    await on.close();
    await once(broker, 'end');
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});

describe('the draining control message (hostile or broken beacons)', () => {
  const parse = (value: unknown) => parseControl(Buffer.from(JSON.stringify(value)));

  it('bounds the pause a beacon can ask for, and assumes a default when it names none', () => {
    expect(parse({ t: 'draining', retryAfterMs: 10 ** 12 })).toEqual({
      t: 'draining',
      retryAfterMs: MAX_DRAIN_RETRY_AFTER_MS,
    });
    for (const odd of [-1, 'soon', 1.5, null, undefined])
      expect(parse({ t: 'draining', retryAfterMs: odd })).toMatchObject({ t: 'draining' });
    expect(parse({ t: 'draining', retryAfterMs: -1 })).not.toEqual({ t: 'draining', retryAfterMs: -1 });
    expect(parse({ t: 'draining', retryAfterMs: 1500 })).toEqual({ t: 'draining', retryAfterMs: 1500 });
  });

  it('is a stable error a caller can tell from a refusal or an unreachable replica', async () => {
    const { beacon: on } = await beacon();
    on.drain();
    const err = await dial(on, 'broker', randomHash(), 'tls').catch((error: unknown) => error);
    expect(isCloudtaserError(err, 'CT_BEACON_DRAINING')).toBe(true);
    expect((err as CloudtaserError).details).toMatchObject({ ip: '127.0.0.1' });
    expect((err as CloudtaserError).message).toMatch(/shutting down.*another replica/);
  });
});
