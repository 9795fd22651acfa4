/**
 * The OpenBao test server's X-Forwarded-For handling follows the listener wrapper upstream runs around every request
 * once `x_forwarded_for_authorized_addrs` is set (http/handler.go `WrapForwardedForHandler`), because the bridge's
 * `--openbao-forwarded-for` is only useful against it: the client address it yields is what per-address rate-limit
 * quotas count.
 */
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ForwardedForOptions,
  type OpenBaoTestServer,
  startOpenBaoTestServer,
} from '../../runtime/dev/openbao/index.js';

let server: OpenBaoTestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** A test server with these listener settings; with `quota`, 2 requests per 10 s and client address on every path. */
async function start(forwardedFor?: ForwardedForOptions, quota = false): Promise<OpenBaoTestServer> {
  server = await startOpenBaoTestServer(forwardedFor ? { forwardedFor } : {});
  if (quota) {
    const written = await request(`${server.address}/v1/sys/quotas/rate-limit/per-client`, {
      method: 'POST',
      headers: { 'x-vault-token': server.rootToken, 'x-forwarded-for': '10.9.9.9' },
      body: JSON.stringify({ rate: 2, interval: '10s' }),
    });
    expect(written.statusCode).toBe(204);
  }
  return server;
}

async function lookupSelf(
  on: OpenBaoTestServer,
  forwardedFor?: string | string[],
): Promise<{ status: number; errors?: string[] }> {
  const response = await request(`${on.address}/v1/auth/token/lookup-self`, {
    headers: {
      'x-vault-token': on.rootToken,
      ...(forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor }),
    },
  });
  const body = (await response.body.json().catch(() => ({}))) as { errors?: string[] };
  return { status: response.statusCode, errors: body.errors };
}

describe('X-Forwarded-For on the OpenBao test server (x_forwarded_for_* listener settings)', () => {
  it('without the settings, ignores the header: every request counts against the socket address', async () => {
    const on = await start(undefined, true);
    expect((await lookupSelf(on, '10.0.0.1')).status).toBe(200);
    expect((await lookupSelf(on, '10.0.0.2')).status).toBe(200);
    expect((await lookupSelf(on, '10.0.0.3')).status).toBe(429);
    expect(on.requestLog().at(-1)?.clientAddress).toBe('127.0.0.1');
  });

  it('from an authorized address, counts each forwarded client on its own', async () => {
    const on = await start({ authorizedAddrs: ['127.0.0.0/8'] }, true);
    for (let i = 0; i < 2; i++) expect((await lookupSelf(on, '10.0.0.1')).status).toBe(200);
    expect((await lookupSelf(on, '10.0.0.1')).status).toBe(429);
    expect((await lookupSelf(on, '10.0.0.2')).status).toBe(200);
    // The last link of a chain is the client (hop_skips 0); header lines and commas make one chain.
    expect((await lookupSelf(on, ['10.0.0.1', '192.0.2.1, 10.0.0.3'])).status).toBe(200);
    expect(on.requestLog().at(-1)?.clientAddress).toBe('10.0.0.3');
  });

  it('refuses a request without the header unless x_forwarded_for_reject_not_present is false', async () => {
    const strict = await start({ authorizedAddrs: ['127.0.0.1'] });
    expect(await lookupSelf(strict)).toEqual({
      status: 400,
      errors: ['missing x-forwarded-for header and configured to reject when not present'],
    });
    await strict.close();
    const lenient = await start({ authorizedAddrs: ['127.0.0.1'], rejectNotPresent: false });
    expect((await lookupSelf(lenient)).status).toBe(200);
  });

  it('refuses the header from an address outside the list, or ignores it when told not to reject', async () => {
    const strict = await start({ authorizedAddrs: ['192.0.2.0/24'] });
    expect(await lookupSelf(strict, '10.0.0.1')).toEqual({
      status: 400,
      errors: ['client address not authorized for x-forwarded-for and configured to reject connection'],
    });
    await strict.close();
    const lenient = await start({ authorizedAddrs: ['192.0.2.0/24'], rejectNotAuthorized: false });
    expect((await lookupSelf(lenient, '10.0.0.1')).status).toBe(200);
    expect(lenient.requestLog().at(-1)?.clientAddress).toBe('127.0.0.1');
  });

  it('skips hops from the end of the chain, and refuses a chain too short for them', async () => {
    const on = await start({ authorizedAddrs: ['127.0.0.1'], hopSkips: 1 });
    expect((await lookupSelf(on, '10.0.0.7, 192.0.2.9')).status).toBe(200);
    expect(on.requestLog().at(-1)?.clientAddress).toBe('10.0.0.7');
    const short = await lookupSelf(on, '10.0.0.7');
    expect(short.status).toBe(400);
    expect(short.errors?.[0]).toMatch(/hops to skip \(1\) would skip before earliest chain link/);
  });
});
