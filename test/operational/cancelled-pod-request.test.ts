/**
 * A pod request the pod itself cancelled (a client timeout, a pod killed mid-request) while OpenBao was merely
 * slow. The bridge reported it as an OpenBao failure: a warning `podapi.openbao_unreachable` ("OpenBao could not
 * be reached") and `cloudtaser_bridge_openbao_requests_total{source="pods",outcome="http_503"}`, the series the
 * chart's critical CloudtaserOpenBaoErrors alert divides. A soak of 24 pods produced ~200 such warnings a minute.
 */

import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBridgeMetrics } from '../../runtime/bridge/index.js';
import { BOUND_SA, type OperationalStack, ROLE, SECRET_PATH, startOperationalStack } from './stack.js';

let stack: OperationalStack;
let token: string;
beforeAll(async () => {
  stack = await startOperationalStack({
    logLevel: 'info',
    bridge: {
      metrics: createBridgeMetrics({ processMetrics: false }),
      health: { host: '127.0.0.1', port: 0 },
    },
  });
  const login = await stack.podRequest('POST', '/v1/auth/kubernetes/login', {
    body: { role: ROLE, jwt: stack.podToken(BOUND_SA) },
  });
  token = (login.body.auth as { client_token: string }).client_token;
}, 60_000);
afterAll(async () => {
  await stack?.close();
});

const podFailures = async () => {
  const text = await (await fetch(`${stack.bridge.healthUrl}/metrics`)).text();
  return text
    .split('\n')
    .filter(
      (l) =>
        l.startsWith('cloudtaser_bridge_openbao_requests_total') &&
        l.includes('source="pods"') &&
        !l.includes('outcome="ok"'),
    );
};

describe('a pod that cancels its own request while OpenBao is slow', () => {
  it('is not reported as an OpenBao failure (no warn, no http_503 in the OpenBao error ratio)', async () => {
    // OpenBao answers reads after 800 ms (slow, but up); the pods' clients give up after 200 ms.
    stack.openbao.injectFault({ pathPattern: /secret\/data/, method: 'GET', delayMs: 800, times: 5 });
    const linesBefore = stack.logs.length;
    const outcomes = await Promise.all(
      Array.from({ length: 5 }, () =>
        request(`${stack.podApiUrl}/v1/secret/data/${SECRET_PATH}`, {
          dispatcher: stack.podAgent,
          headers: { 'x-vault-token': token },
          signal: AbortSignal.timeout(200),
        }).then(
          () => 'answered',
          (err: Error) => err.name,
        ),
      ),
    );
    expect(outcomes.every((o) => o !== 'answered')).toBe(true);
    await new Promise((r) => setTimeout(r, 1200));
    const warned = stack.logs
      .slice(linesBefore)
      .filter((l) => l.includes('"event":"podapi.openbao_unreachable"'));
    // Also a read that OpenBao answers normally afterwards: still fine.
    const ok = await stack.podRequest('GET', `/v1/secret/data/${SECRET_PATH}`, { token });
    expect(ok.status).toBe(200);
    expect({
      warned: warned.map((l) => JSON.parse(l).reason + ' / ' + JSON.parse(l).code),
      failures: await podFailures(),
    }).toEqual({
      warned: [],
      failures: [],
    });
  }, 30_000);
});
