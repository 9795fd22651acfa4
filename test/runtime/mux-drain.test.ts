/**
 * closeWhenIdle, the tunnel's orderly close: GOAWAY CT_TUNNEL_DRAINED only at a moment with nothing in flight
 * either way, and nothing read after it, so the peer may resend whatever it has no answer to. Also what the
 * peer is told when the grace period ran out instead (no such promise).
 */
import { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { type CloudtaserError, isCloudtaserError } from '../../runtime/core/index.js';
import { createTunnelMux, type TunnelMux } from '../../runtime/tunnel/index.js';

const open: TunnelMux[] = [];
afterEach(() => {
  for (const mux of open.splice(0)) mux.close();
});

/** Two connected ends whose bytes arrive a turn of the event loop later, as over a socket. */
function socketLikePair(): [Duplex, Duplex] {
  const ends: Duplex[] = [];
  const make = (index: number) =>
    new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        setImmediate(() => {
          const other = ends[1 - index];
          if (!other.destroyed) other.push(chunk);
        });
        callback();
      },
      final(callback) {
        setImmediate(() => ends[1 - index].push(null));
        callback();
      },
    });
  ends.push(make(0), make(1));
  return [ends[0], ends[1]];
}

/** The bridge end (initiator, serving `handler`) and the broker end, as in the product. */
function bridgeAndBroker(handler: () => Promise<{ status: number }>) {
  const [a, b] = socketLikePair();
  let handled = 0;
  const bridge = createTunnelMux(a, {
    side: 'initiator',
    limits: { pingIntervalMs: 0 },
    handler: () => {
      handled++;
      return handler();
    },
  });
  const broker = createTunnelMux(b, { side: 'acceptor', limits: { pingIntervalMs: 0 } });
  open.push(bridge, broker);
  return { bridge, broker, handled: () => handled };
}

const answerAfter = (ms: number) => () =>
  new Promise<{ status: number }>((resolve) => setTimeout(() => resolve({ status: 200 }), ms));

describe('tunnel: closing once idle', () => {
  it('closes at once with GOAWAY CT_TUNNEL_DRAINED when nothing is in flight', async () => {
    const { bridge, broker } = bridgeAndBroker(answerAfter(0));
    await bridge.closeWhenIdle('the bridge is shutting down', 5_000);
    expect(bridge.closed).toBe(true);
    const why = await broker.done;
    expect(why.details?.peerCode).toBe('CT_TUNNEL_DRAINED');
  });

  it('answers a request in flight first, then closes', async () => {
    const { bridge, broker } = bridgeAndBroker(answerAfter(150));
    const answer = broker.request({ method: 'GET', path: '/x' });
    await new Promise((resolve) => setTimeout(resolve, 30));
    const closed = bridge.closeWhenIdle('the bridge is shutting down', 5_000);
    expect(bridge.closed).toBe(false);
    expect((await answer).status).toBe(200);
    await closed;
    expect((await broker.done).details?.peerCode).toBe('CT_TUNNEL_DRAINED');
  });

  it('never handles a request that was on its way when it closed, and tells the peer it was not processed', async () => {
    const { bridge, broker, handled } = bridgeAndBroker(answerAfter(0));
    // The OPEN is written, not yet read by the bridge: the bridge is idle and closes.
    const answer = broker.request({ method: 'POST', path: '/v1/auth/token/renew-self' });
    await bridge.closeWhenIdle('the bridge is shutting down', 5_000);
    const error = await answer.then(
      () => undefined,
      (err: CloudtaserError) => err,
    );
    expect(isCloudtaserError(error, 'CT_TUNNEL_CLOSED')).toBe(true);
    expect(error?.details?.unprocessed).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(handled()).toBe(0);
  });

  it('closes anyway after the grace period, and then promises nothing about the request in flight', async () => {
    const { bridge, broker, handled } = bridgeAndBroker(() => new Promise(() => undefined));
    const answer = broker.request({ method: 'POST', path: '/v1/auth/kubernetes/login' });
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(handled()).toBe(1);
    await bridge.closeWhenIdle('the bridge is shutting down', 100);
    const error = await answer.then(
      () => undefined,
      (err: CloudtaserError) => err,
    );
    expect(isCloudtaserError(error, 'CT_TUNNEL_CLOSED')).toBe(true);
    expect(error?.details?.unprocessed).toBeUndefined();
    expect((await broker.done).details?.peerCode).toBe('CT_TUNNEL_CLOSED');
  });

  it('waits for its own request to the peer too (a TokenReview the bridge asked the broker for)', async () => {
    const { bridge, broker } = bridgeAndBroker(answerAfter(0));
    broker.handle(answerAfter(120));
    const review = bridge.request({ method: 'POST', path: '/kube/tokenreview' });
    const closed = bridge.closeWhenIdle('the bridge is shutting down', 5_000);
    expect((await review).status).toBe(200);
    await closed;
    expect((await broker.done).details?.peerCode).toBe('CT_TUNNEL_DRAINED');
  });

  it('refuses a new request while closing, unprocessed, so the peer moves it and the next ones elsewhere', async () => {
    const { bridge, broker, handled } = bridgeAndBroker(answerAfter(150));
    const first = broker.request({ method: 'GET', path: '/x' });
    await new Promise((resolve) => setTimeout(resolve, 30));
    const closed = bridge.closeWhenIdle('the bridge is shutting down', 5_000);
    expect(bridge.draining).toBe(true);
    // Under steady traffic the tunnel would never be idle if this were taken.
    const late = await broker.request({ method: 'POST', path: '/v1/auth/token/renew-self' }).then(
      () => undefined,
      (err: CloudtaserError) => err,
    );
    expect(isCloudtaserError(late, 'CT_TUNNEL_CLOSED')).toBe(true);
    expect(late?.details?.unprocessed).toBe(true);
    expect(broker.draining).toBe(true);
    expect((await first).status).toBe(200);
    await closed;
    expect(handled()).toBe(1);
    expect((await broker.done).details?.peerCode).toBe('CT_TUNNEL_DRAINED');
  });
});
