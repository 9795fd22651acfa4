/**
 * A graceful bridge close under steady traffic whose requests overlap (16 pods, OpenBao answering in 300 ms:
 * always some read in flight). The bridge waited for a moment with nothing in flight, but kept taking the
 * broker's new requests, so the moment never came: after the 10 s grace it cut the tunnel and the renewals and
 * logins in flight got 503. Now, once closing, it refuses new requests unprocessed (RESET CT_TUNNEL_DRAINED), the
 * broker sends them and the rest on its next tunnel, and the tunnel drains within one request's time.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BridgeHandle } from '../../runtime/bridge/index.js';
import { waitUntil } from '../support/wait.js';
import {
  BOUND_SA,
  type OperationalStack,
  ROLE,
  SECRET_PATH,
  startOperationalStack,
  startWaitingBridgeReplica,
} from './stack.js';

let stack: OperationalStack;
let second: BridgeHandle;
let token: string;

beforeAll(async () => {
  stack = await startOperationalStack({ logLevel: 'info' });
  second = await startWaitingBridgeReplica(stack);
  const login = await stack.podRequest('POST', '/v1/auth/kubernetes/login', {
    body: { role: ROLE, jwt: stack.podToken(BOUND_SA) },
  });
  token = (login.body.auth as { client_token: string }).client_token;
}, 60_000);
afterAll(async () => {
  await second?.close();
  await stack?.close();
});

describe('a bridge replica closing under steady overlapping traffic', () => {
  it('drains the tunnel (moves new requests to the next one) and fails no pod request', async () => {
    // OpenBao answers reads and renewals in 300 ms for the whole test (not a fault: a busy secret store).
    stack.openbao.injectFault({ pathPattern: /secret\/data|renew-self/, delayMs: 300, times: 100_000 });
    const statuses: Array<{ kind: string; status: number }> = [];
    const stop = new AbortController();
    const loop = async (n: number) => {
      for (let i = 0; !stop.signal.aborted; i++) {
        const renew = (i + n) % 4 === 0;
        const answer = renew
          ? await stack.podRequest('POST', '/v1/auth/token/renew-self', { token, body: {} })
          : await stack.podRequest('GET', `/v1/secret/data/${SECRET_PATH}`, { token });
        statuses.push({ kind: renew ? 'renew' : 'read', status: answer.status });
      }
    };
    const load = Promise.all(Array.from({ length: 16 }, (_, n) => loop(n)));
    await new Promise((resolve) => setTimeout(resolve, 500));
    const started = Date.now();
    await stack.bridge.close();
    const closeMs = Date.now() - started;
    await waitUntil(() => second.tunnels().length === 1, { timeoutMs: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    stop.abort();
    await load;
    const failed = statuses.filter((s) => s.status !== 200);
    const drained = stack.logs.some(
      (line) => line.includes('"event":"tunnel.closed"') && line.includes('CT_TUNNEL_DRAINED'),
    );
    expect({ answered: statuses.length > 50, failed, drained, closeUnder5s: closeMs < 5_000 }).toEqual({
      answered: true,
      failed: [],
      drained: true,
      closeUnder5s: true,
    });
  }, 40_000);
});
