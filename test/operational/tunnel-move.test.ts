/**
 * A tunnel moving off a draining beacon replica, make before break: the bridge asks the broker to move, the broker
 * dials its next tunnel while the old one keeps serving, and closes the old one only once the next is up.
 *
 * Before, the bridge closed the tunnel once idle and the broker dialed afterwards (break before make). When the
 * replica the bridge had seen a waiter on was gone by then (it died a moment before, or the cluster's network could
 * not reach it), the broker was left with no tunnel at all until a replica answered, although the draining one
 * still relayed for its whole grace.
 *
 * Trust: the move's new tunnel is an ordinary operational pairing (mutual TLS against the cluster CA). A beacon that
 * pairs it with someone else gets a refused handshake and the broker keeps the tunnel it has; a bridge asking for
 * moves in a loop gets one per backoff ceiling.
 */
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createBrokerMetrics } from '../../runtime/broker/index.js';
import { createCertificateAuthority, issueCertificate } from '../../runtime/pki/index.js';
import { TUNNEL_ALPN, TUNNEL_MOVE_PATH, type TunnelMux } from '../../runtime/tunnel/index.js';
import { duplexPair } from '../runtime/duplex-pair.js';
import { BEACON_NAME, FAST_BROKER_TIMING, REPLICA_IPS } from '../runtime/fixtures.js';
import { waitUntil } from '../support/wait.js';
import { parseExposition } from './exposition.js';
import { type OperationalStack, podClientToken, podLoad, startOperationalStack } from './stack.js';

/** The replicas the broker's network reaches (a partition between the cluster and one replica drops it). */
let reachable = [...REPLICA_IPS];
/** When set, the broker's next operational pairing is handed to this instead (a hostile beacon). */
let pairWithRogue: ((real: Duplex) => Duplex) | undefined;

let stack: OperationalStack;
let token: string;
const brokerMetrics = createBrokerMetrics({ processMetrics: false });
/** cloudtaser_broker_tunnel_moves_total by outcome, now. */
const movesCounted = async (outcome: string) =>
  parseExposition(await brokerMetrics.registry.metrics()).value('cloudtaser_broker_tunnel_moves_total', {
    outcome,
  }) ?? 0;

beforeAll(async () => {
  stack = await startOperationalStack({
    logLevel: 'info',
    broker: {
      metrics: brokerMetrics,
      resolve: async (host) => (host === BEACON_NAME ? [...reachable] : [host]),
      observePairedStream: (stream, room) => {
        const rogue = room === 'operational' ? pairWithRogue : undefined;
        pairWithRogue = undefined;
        return rogue ? rogue(stream) : stream;
      },
    },
  });
  await stack.replicas.start(1);
  token = await podClientToken(stack);
}, 60_000);
afterAll(async () => {
  await stack?.close();
});
/** Replicas a test drained come back (same address), as their pods' replacements do; each test starts whole. */
const drained = new Set<number>();
afterEach(async () => {
  reachable = [...REPLICA_IPS];
  pairWithRogue = undefined;
  for (const index of drained) {
    await stack.replicas.stop(index);
    await stack.replicas.start(index);
  }
  drained.clear();
});

/** What `beacon serve` does first on SIGTERM, on the replica at `index`. */
function drain(index: number, relaysCutInMs: number) {
  const replica = stack.replicas.handles[index];
  if (!replica) throw new Error(`replica ${index} is not running`);
  drained.add(index);
  replica.drain({ relaysCutInMs });
  return replica;
}

const count = (event: string, also = '') =>
  stack.logs.filter((line) => line.includes(`"event":"${event}"`) && line.includes(also)).length;

/** The broker operational, and the bridge waiting for this cluster's broker on both replicas. */
async function settled(): Promise<{ from: number; to: number; tunnel: TunnelMux }> {
  await stack.broker.waitForPhase('operational', 15_000);
  await stack.bridge.pollNow();
  await waitUntil(
    () =>
      stack.replicas.handles.every((replica) => (replica?.stats().waitingBridges ?? 0) >= 2) &&
      stack.bridge.tunnels().filter((tunnel) => !tunnel.closed).length === 1,
    { what: 'the bridge waiting on both replicas, one tunnel open', timeoutMs: 20_000 },
  );
  const from = REPLICA_IPS.indexOf(stack.broker.status().beaconIp ?? '');
  expect(from).toBeGreaterThanOrEqual(0);
  const [tunnel] = stack.bridge.tunnels().filter((open) => !open.closed);
  return { from, to: 1 - from, tunnel };
}

/** Pods reading and renewing until `run` resolves; every answer's status, and whether the broker left operational. */
async function whilePodsRead(run: () => Promise<void>): Promise<{ failed: number[]; left: number }> {
  const leftBefore = count('broker.phase', '"phase":"reconnecting"');
  const stop = new AbortController();
  const load = podLoad(stack, token, 6, stop.signal);
  const pause = () => new Promise((resolve) => setTimeout(resolve, 300));
  try {
    await pause();
    await run();
    await pause();
  } finally {
    stop.abort();
  }
  const statuses = await load;
  expect(statuses.length).toBeGreaterThan(20);
  return {
    failed: statuses.filter((status) => status !== 200),
    left: count('broker.phase', '"phase":"reconnecting"') - leftBefore,
  };
}

describe('moving a tunnel off a draining beacon replica (make before break)', () => {
  it('opens the next tunnel before the old one closes', async () => {
    const { from, to, tunnel } = await settled();
    const bootstraps = stack.bridge.status().bootstrapsSigned;
    const moved = count('broker.tunnel_moved');
    let openWhenOldClosed = -1;
    void tunnel.done.then(() => {
      openWhenOldClosed = stack.bridge.tunnels().filter((other) => other !== tunnel && !other.closed).length;
    });
    const outcome = await whilePodsRead(async () => {
      const replica = drain(from, 10_000);
      await waitUntil(() => tunnel.closed, { what: 'the old tunnel closed', timeoutMs: 10_000 });
      await replica.close({ graceMs: 10_000 });
    });
    expect(outcome).toEqual({ failed: [], left: 0 });
    // Another tunnel was already open when the old one closed; before, none was (the broker dialed after).
    expect(openWhenOldClosed).toBe(1);
    expect(stack.broker.status().beaconIp).toBe(REPLICA_IPS[to]);
    expect(count('broker.tunnel_moved')).toBe(moved + 1);
    expect(stack.bridge.status().bootstrapsSigned).toBe(bootstraps);
  }, 60_000);

  it('keeps serving on the old tunnel while the broker cannot reach the other replica, and moves once it can', async () => {
    const { from, to, tunnel } = await settled();
    const bootstraps = stack.bridge.status().bootstrapsSigned;
    const failedMoves = count('broker.move_failed');
    const movedBefore = await movesCounted('moved');
    const failedAttempts = async () => {
      const exposition = parseExposition(await brokerMetrics.registry.metrics());
      return (
        exposition.sum('cloudtaser_broker_tunnel_moves_total') -
        (exposition.value('cloudtaser_broker_tunnel_moves_total', { outcome: 'moved' }) ?? 0)
      );
    };
    const failedBefore = await failedAttempts();
    // The bridge sees its waiter on the other replica; the cluster's network does not reach that replica.
    reachable = [REPLICA_IPS[from]];
    const outcome = await whilePodsRead(async () => {
      drain(from, 30_000);
      await waitUntil(() => count('broker.move_failed') > failedMoves, {
        what: 'the broker failing to open its next tunnel',
        timeoutMs: 10_000,
      });
      // The pods keep being served through the draining replica meanwhile.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(tunnel.closed).toBe(false);
      expect(stack.broker.status().phase).toBe('operational');
      // The partition heals: the broker's next attempt reaches the other replica and the tunnel moves there.
      reachable = [...REPLICA_IPS];
      await waitUntil(() => stack.broker.status().beaconIp === REPLICA_IPS[to] && tunnel.closed, {
        what: 'the tunnel moved to the other replica',
        timeoutMs: 10_000,
      });
    });
    expect(outcome).toEqual({ failed: [], left: 0 });
    expect(stack.bridge.status().bootstrapsSigned).toBe(bootstraps);
    // What an SRE sees: one move, after attempts that failed while the old tunnel served on.
    expect(await movesCounted('moved')).toBe(movedBefore + 1);
    expect(await failedAttempts()).toBeGreaterThan(failedBefore);
  }, 60_000);

  it('refuses a stranger the beacon pairs the move with, and keeps the tunnel it has (hostile beacon)', async () => {
    const { to, tunnel } = await settled();
    const bootstraps = stack.bridge.status().bootstrapsSigned;
    // Another CA's bridge certificate: a party that is not this cluster's bridge, however the beacon routes.
    const strangerCa = createCertificateAuthority({ commonName: 'not the cluster CA' });
    const stranger = issueCertificate(strangerCa, {
      commonName: 'cloudtaser-bridge',
      extKeyUsage: ['clientAuth'],
    });
    let strangerReceived = 0;
    let strangerHandshakes = 0;
    pairWithRogue = (real) => {
      real.destroy();
      const [brokerSide, strangerSide] = duplexPair();
      strangerHandshakes++;
      const socket = tlsConnect({
        socket: strangerSide,
        cert: stranger.certPem,
        key: stranger.keyPem!,
        rejectUnauthorized: false,
        ALPNProtocols: [TUNNEL_ALPN],
      });
      socket.on('data', (chunk: Buffer) => {
        strangerReceived += chunk.length;
      });
      socket.on('error', () => undefined);
      return brokerSide;
    };
    const outcome = await whilePodsRead(async () => {
      drain(1 - to, 30_000);
      await waitUntil(() => stack.broker.status().beaconIp === REPLICA_IPS[to] && tunnel.closed, {
        what: 'the tunnel moved to the real bridge after the stranger',
        timeoutMs: 15_000,
      });
    });
    expect(outcome).toEqual({ failed: [], left: 0 });
    expect(strangerHandshakes).toBe(1);
    expect(strangerReceived).toBe(0);
    expect(count('broker.move_failed')).toBeGreaterThan(0);
    expect(stack.bridge.status().bootstrapsSigned).toBe(bootstraps);
  }, 60_000);

  it('moves at most once per backoff ceiling however often a bridge asks, and only for the live tunnel', async () => {
    await settled();
    const moving = count('broker.tunnel_moving');
    const answers = new Map<number, number>();
    const started = performance.now();
    const outcome = await whilePodsRead(async () => {
      while (performance.now() - started < 3_000) {
        const live = stack.bridge.tunnels().filter((tunnel) => !tunnel.closed);
        for (const tunnel of live) {
          const answer = await tunnel
            .request({ method: 'POST', path: TUNNEL_MOVE_PATH }, undefined, { timeoutMs: 2_000 })
            .catch(() => undefined);
          if (answer) answers.set(answer.status, (answers.get(answer.status) ?? 0) + 1);
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    });
    const elapsedMs = performance.now() - started;
    const moves = count('broker.tunnel_moving') - moving;
    expect(outcome).toEqual({ failed: [], left: 0 });
    expect(moves).toBeGreaterThanOrEqual(2);
    expect(moves).toBeLessThanOrEqual(Math.ceil(elapsedMs / FAST_BROKER_TIMING.backoffMaxMs) + 1);
    // Asked on a tunnel that is no longer the live one (moved from, closing): refused, nothing started.
    expect([...answers.keys()].every((status) => status === 202 || status === 409)).toBe(true);
    expect(answers.get(202)).toBeGreaterThan(moves);
  }, 60_000);

  // Last: the broker stays draining.
  it('does not move once the broker is shutting down (the bridge closes the tunnel once idle instead)', async () => {
    // A move the flood above left asked for starts within one backoff ceiling: let it end first.
    await new Promise((resolve) => setTimeout(resolve, 2 * FAST_BROKER_TIMING.backoffMaxMs));
    await settled();
    const moving = count('broker.tunnel_moving');
    stack.broker.drain();
    const [tunnel] = stack.bridge.tunnels().filter((open) => !open.closed);
    const answer = await tunnel.request({ method: 'POST', path: TUNNEL_MOVE_PATH }, undefined, {
      timeoutMs: 2_000,
    });
    expect(answer.status).toBe(503);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(count('broker.tunnel_moving')).toBe(moving);
    expect(tunnel.closed).toBe(false);
  }, 30_000);
});
