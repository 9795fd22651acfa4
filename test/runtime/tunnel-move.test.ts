/**
 * The bridge's side of a tunnel move (runtime/tunnel/move.ts), against brokers of each kind: one that takes the
 * move (202: the tunnel stays, the broker closes it itself once its next one is up), one from before 0.2.0 (404:
 * the bridge closes the tunnel once idle, as every bridge did before), one that never answers, and a tunnel that
 * closes while the bridge asks. Nothing in flight is lost either way.
 */
import { describe, expect, it } from 'vitest';
import {
  askToMove,
  isTunnelMoveRequest,
  TUNNEL_MOVE_PATH,
  type TunnelHandler,
} from '../../runtime/tunnel/index.js';
import { tunnelPair } from './tunnel-pair.js';

/** A tunnel between a bridge end and a broker end whose handler is `brokerHandler`. */
const tunnelTo = (brokerHandler: TunnelHandler) =>
  tunnelPair(brokerHandler, () => ({ status: 200, body: 'ok' }));

const OPTIONS = { timeoutMs: 500, closeWithinMs: 2_000, reason: 'test: the beacon replica drains' };

describe('asking a broker to move its tunnel', () => {
  it('recognises only POST on the move path', () => {
    expect(isTunnelMoveRequest({ method: 'POST', path: TUNNEL_MOVE_PATH })).toBe(true);
    expect(isTunnelMoveRequest({ method: 'GET', path: TUNNEL_MOVE_PATH })).toBe(false);
    expect(isTunnelMoveRequest({ method: 'POST', path: `${TUNNEL_MOVE_PATH}?x=1` })).toBe(false);
    expect(isTunnelMoveRequest({ method: 'POST', path: '/v1/tunnel/info' })).toBe(false);
  });

  it('leaves the tunnel open when the broker takes the move (202)', async () => {
    const { broker, bridge } = await tunnelTo((request) =>
      isTunnelMoveRequest(request) ? { status: 202 } : { status: 200, body: 'served' },
    );
    await expect(askToMove(bridge, OPTIONS)).resolves.toBe('moving');
    expect(bridge.closed).toBe(false);
    // Still serving both ways.
    const answer = await bridge.request({ method: 'GET', path: '/anything' });
    expect(answer.body.toString()).toBe('served');
    broker.close();
    await bridge.done;
  });

  it('closes the tunnel once idle when the broker predates moves (404), after what was in flight', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const { broker, bridge } = await tunnelTo(async (request) => {
      if (request.path === '/slow') {
        await held;
        return { status: 200, body: 'slow answer' };
      }
      // What a 0.1.0 broker answers to any path it does not know.
      return { status: 404, headers: { 'content-type': 'text/plain' }, body: 'not found' };
    });
    const inFlight = bridge.request({ method: 'GET', path: '/slow' });
    const asked = askToMove(bridge, OPTIONS);
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Not closed while the slow request runs.
    expect(bridge.closed).toBe(false);
    release();
    await expect(inFlight.then((r) => r.body.toString())).resolves.toBe('slow answer');
    await expect(asked).resolves.toBe('closed-when-idle');
    const why = await broker.done;
    expect(why.details?.peerCode).toBe('CT_TUNNEL_DRAINED');
  });

  it('closes the tunnel once idle when the broker does not answer in time', async () => {
    const { broker, bridge } = await tunnelTo(
      (request, context) =>
        new Promise((resolve) => {
          if (!isTunnelMoveRequest(request)) resolve({ status: 200 });
          context.signal.addEventListener('abort', () => resolve({ status: 499 }));
        }),
    );
    const started = performance.now();
    await expect(askToMove(bridge, OPTIONS)).resolves.toBe('closed-when-idle');
    expect(performance.now() - started).toBeGreaterThanOrEqual(OPTIONS.timeoutMs - 20);
    expect(bridge.closed).toBe(true);
    await broker.done;
  });

  it('reports a tunnel that closed while it asked', async () => {
    const { broker, bridge } = await tunnelTo(() => new Promise(() => undefined));
    const asked = askToMove(bridge, { ...OPTIONS, timeoutMs: 5_000 });
    broker.close({ code: 'CT_TUNNEL_CLOSED', reason: 'test: the broker went away' });
    await expect(asked).resolves.toBe('gone');
  });
});
