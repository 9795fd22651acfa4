/**
 * OpenBao restarts or its leader moves while the bridge holds pooled keep-alive sockets: the old sockets are dead
 * (the next bytes written on them meet a reset, as through a load balancer or NAT whose backend is gone). A pod read
 * must not fail because of the stale pooled socket (before: a 503 per dead socket); a write is never sent twice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BridgeHandle } from '../../runtime/bridge/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { provisionIdentities } from '../openbao-identities.js';
import { startTestBridge } from '../runtime/fixtures.js';
import { startTcpProxy } from '../support/tcp-proxy.js';
import { waitUntil } from '../support/wait.js';
import { BOUND_SA, type OperationalStack, ROLE, SECRET_PATH, startOperationalStack } from './stack.js';

let stack: OperationalStack;
let proxy: Awaited<ReturnType<typeof startTcpProxy>>;
let token: string;
let second: BridgeHandle;

beforeAll(async () => {
  stack = await startOperationalStack({ logLevel: 'warn' });
  const login = await stack.podRequest('POST', '/v1/auth/kubernetes/login', {
    body: { role: ROLE, jwt: stack.podToken(BOUND_SA) },
  });
  token = (login.body.auth as { client_token: string }).client_token;
  // The bridge replica that carries the tunnel talks to OpenBao through the proxy (a load balancer in front of the
  // OpenBao active node), with the shipped bridge identity.
  proxy = await startTcpProxy(new URL(stack.openbao.address));
  const identities = await provisionIdentities(stack.admin);
  second = await startTestBridge({
    openbao: new OpenBaoClient({ address: proxy.address, token: identities.bridgeToken }),
    beacons: [stack.replicas.address],
  });
  await second.pollNow();
  await stack.bridge.close();
  await waitUntil(() => stack.broker.status().phase === 'operational' && second.tunnels().length > 0, {
    timeoutMs: 20_000,
    what: 'tunnel on the proxied bridge',
  });
}, 60_000);
afterAll(async () => {
  await proxy?.close();
  await second?.close();
  await stack?.close();
});

describe('OpenBao restart with pooled keep-alive sockets', () => {
  it('the next pod read after the pooled sockets died is answered 200, not 503 (sent again on a fresh socket)', async () => {
    const read = () => stack.podRequest('GET', `/v1/secret/data/${SECRET_PATH}`, { token });
    expect((await read()).status).toBe(200); // a pooled keep-alive socket to OpenBao now exists
    proxy.kill(); // OpenBao restarted, or its leader moved behind the load balancer
    expect((await read()).status).toBe(200);
  });

  it('never sends a write again: a KV write on a dead pooled socket gets the retryable 503', async () => {
    const read = () => stack.podRequest('GET', `/v1/secret/data/${SECRET_PATH}`, { token });
    expect((await read()).status).toBe(200);
    proxy.kill();
    // The pod's token may not write; what matters is that the bridge answers without a second attempt.
    const write = await stack.podRequest('PUT', `/v1/secret/data/${SECRET_PATH}`, {
      token,
      body: { data: { password: 'x' } },
    });
    expect(write.status).toBe(503);
  });
});
