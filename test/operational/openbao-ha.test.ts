/**
 * The whole operational path with the bridge in front of an OpenBao HA standby that lags the active node and does
 * not forward (it answers 307 to the active node for every write): bootstrap, the operational tunnel, pod logins
 * and reads must all work, and the bridge keeps the cluster initialized through its discovery polls.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BOUND_SA,
  type OperationalStack,
  ROLE,
  SECRET_PATH,
  SECRET_VALUE,
  startOperationalStack,
} from './stack.js';

let stack: OperationalStack;

beforeAll(async () => {
  stack = await startOperationalStack({ bridgeThroughStandby: { readLagMs: 800, requestForwarding: false } });
}, 60_000);
afterAll(async () => {
  await stack?.close();
});

describe('a bridge whose OpenBao is a lagging standby that redirects writes', () => {
  it('bootstraps, stays initialized across its polls, and serves pod logins and reads', async () => {
    await stack.bridge.pollNow();
    expect(stack.bridge.status().clusters).toEqual([
      expect.objectContaining({ initialized: true, tunnels: 1 }),
    ]);
    const login = await stack.podRequest('POST', '/v1/auth/kubernetes/login', {
      body: { role: ROLE, jwt: stack.podToken(BOUND_SA) },
    });
    expect(login.status).toBe(200);
    const token = (login.body.auth as { client_token: string }).client_token;
    const read = await stack.podRequest('GET', `/v1/secret/data/${SECRET_PATH}`, { token });
    expect((read.body.data as { data: { password: string } }).data.password).toBe(SECRET_VALUE);
    const events = stack.logs.map((line) => JSON.parse(line).event as string);
    expect(events).toContain('openbao.redirected');
    expect(events).toContain('podapi.redirected');
    expect(events).not.toContain('bridge.session_failed');
  });
});
