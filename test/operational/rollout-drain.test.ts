/**
 * Rollouts without failed pod requests. A bridge replica that closes (a rollout, a scale-down) used to cut its
 * tunnels at once: requests in flight got 503, and so did every request the pods sent while their broker
 * reconnected (up to the broker's first backoff, then a pairing). A broker that closed cut the requests of its
 * pods the same way. Now:
 * - the bridge stops waiting for new tunnels and asks each tunnel's broker to move: the broker opens its next
 *   tunnel to another replica while this one serves, then closes this one once nothing is in flight on it (GOAWAY
 *   CT_TUNNEL_DRAINED: nothing unanswered was processed); a tunnel whose broker did not move within the bridge's
 *   closeMoveWaitMs (no other replica, a broker before 0.2.0) is closed the same way by the bridge;
 * - the broker's pod API waits for the next tunnel (up to tunnelWaitMs) instead of answering 503, and sends a
 *   request the drained tunnel left unanswered once more, whatever its method; after a close that was not a
 *   drain it resends only reads (a login or renewal may have reached OpenBao);
 * - the broker's own close answers the requests in flight first, through the tunnel still up.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BridgeHandle } from '../../runtime/bridge/index.js';
import { waitUntil } from '../support/wait.js';
import {
  type OperationalStack,
  podClientToken,
  podLoad,
  SECRET_PATH,
  startOperationalStack,
  startWaitingBridgeReplica,
} from './stack.js';

let stack: OperationalStack;
let second: BridgeHandle;
/** A pod's OpenBao token, from a login before any replica closes (logins need the first bridge's TokenReview). */
let token: string;

beforeAll(async () => {
  stack = await startOperationalStack({ logLevel: 'info' });
  second = await startWaitingBridgeReplica(stack);
  token = await podClientToken(stack);
}, 60_000);
afterAll(async () => {
  await second?.close();
  await stack?.close();
});

describe('a bridge replica closing while pods read (rollout)', () => {
  it('answers every pod request (reads and token renewals) while the tunnel moves to the other replica', async () => {
    expect(stack.bridge.tunnels()).toHaveLength(1);
    // Requests in flight on the tunnel when it closes: OpenBao answers reads slowly for a moment.
    stack.openbao.injectFault({ pathPattern: /secret\/data/, method: 'GET', delayMs: 300, times: 4 });
    const reconnects = () =>
      stack.logs.filter(
        (line) => line.includes('"event":"broker.phase"') && line.includes('"phase":"reconnecting"'),
      ).length;
    const reconnectsBefore = reconnects();
    const stop = new AbortController();
    const load = podLoad(stack, token, 8, stop.signal);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await stack.bridge.close();
    await waitUntil(() => second.tunnels().length === 1, { timeoutMs: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    stop.abort();
    const statuses = await load;
    const failed = statuses.filter((status) => status !== 200);
    expect({ answered: statuses.length > 20, failed }).toEqual({ answered: true, failed: [] });
    expect(stack.broker.status().phase).toBe('operational');
    // The broker heard the drain, not a cut.
    expect(
      stack.logs.some(
        (line) => line.includes('"event":"tunnel.closed"') && line.includes('CT_TUNNEL_DRAINED'),
      ),
    ).toBe(true);
    expect(stack.logs.some((line) => line.includes('"event":"bridge.draining_tunnels"'))).toBe(true);
    // Make before break: the closing bridge asked the broker to move, and the broker opened its tunnel to the other
    // replica before it closed this one, so it never was without one (before: 'reconnecting' for a pause and a
    // pairing, the pods' requests held meanwhile).
    expect(stack.logs.some((line) => line.includes('"event":"broker.tunnel_moved"'))).toBe(true);
    expect(reconnects()).toBe(reconnectsBefore);
  }, 30_000);
});

describe('a tunnel cut without a drain (a bridge killed, a network fault)', () => {
  it('sends a read in flight once more on the next tunnel, but never a renewal that may have reached OpenBao', async () => {
    const renewals = () =>
      stack.openbao.requestLog().filter((entry) => entry.path.endsWith('auth/token/renew-self')).length;
    const before = renewals();
    stack.openbao.injectFault({ pathPattern: /secret\/data/, method: 'GET', delayMs: 400, times: 1 });
    stack.openbao.injectFault({ pathPattern: /renew-self/, method: 'POST', delayMs: 400, times: 1 });
    const read = stack.podRequest('GET', `/v1/secret/data/${SECRET_PATH}`, { token });
    const renew = stack.podRequest('POST', '/v1/auth/token/renew-self', { token, body: {} });
    await waitUntil(() => renewals() > before || second.tunnels()[0]?.stats().remoteStreams === 2, {
      timeoutMs: 5_000,
    });
    second.tunnels()[0].close({ code: 'CT_TUNNEL_CLOSED', reason: 'cut by the test' });
    const [readAnswer, renewAnswer] = await Promise.all([read, renew]);
    expect(readAnswer.status).toBe(200);
    expect(renewAnswer.status).toBe(503);
    await waitUntil(() => stack.broker.status().phase === 'operational', { timeoutMs: 10_000 });
    expect(renewals() - before).toBeLessThanOrEqual(1);
  }, 30_000);
});

describe('a broker closing while pods read', () => {
  it('answers the requests in flight before it closes the tunnel', async () => {
    stack.openbao.injectFault({ pathPattern: /secret\/data/, method: 'GET', delayMs: 500, times: 3 });
    const inFlight = Array.from({ length: 3 }, () =>
      stack.podRequest('GET', `/v1/secret/data/${SECRET_PATH}`, { token }),
    );
    await new Promise((resolve) => setTimeout(resolve, 150));
    const closed = stack.broker.close();
    const answers = await Promise.all(inFlight);
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200]);
    await closed;
    expect(stack.broker.status().phase).toBe('stopped');
  }, 30_000);
});
