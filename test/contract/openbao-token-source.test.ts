/**
 * A long-running process's OpenBao login (runtime/openbao/token-source.ts) against the OpenBao test server's AppRole
 * and token store: renewal at two thirds of the lease, a new login at the role's token_max_ttl or when the token
 * died, no new login for a policy that says no, and a failing login said once while the old token lasts.
 */
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../runtime/core/log.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient, type RenewingLogin, startRenewingLogin } from '../../runtime/openbao/index.js';
import { freePort } from '../ports.js';
import { forwardPort } from '../support/port-forwarder.js';

let server: OpenBaoTestServer;
let admin: OpenBaoClient;
let anonymous: OpenBaoClient;
const logins: RenewingLogin[] = [];

beforeAll(async () => {
  server = await startOpenBaoTestServer();
  admin = new OpenBaoClient({ address: server.address, token: server.rootToken });
  anonymous = new OpenBaoClient({ address: server.address, retries: 0 });
  await admin.enableAuth('approle', 'approle');
  await admin.enableKvV2('secret');
  await admin.kvWrite('secret', 'svc/config', { v: '1' });
  await admin.writePolicy('svc', 'path "secret/data/svc/*" { capabilities = ["read"] }');
});
afterEach(() => {
  for (const login of logins.splice(0)) login.close();
});
afterAll(async () => {
  await anonymous?.close();
  await admin?.close();
  await server?.close();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function role(name: string, ttl: string, maxTtl?: string) {
  await admin.writeAppRole('approle', name, {
    policies: ['svc'],
    tokenTtl: ttl,
    ...(maxTtl ? { tokenMaxTtl: maxTtl } : {}),
  });
  return {
    roleId: await admin.readAppRoleId('approle', name),
    secretId: await admin.createAppRoleSecretId('approle', name),
  };
}

function capture() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      callback();
    },
  });
  return { lines, logger: createLogger('token-test', { level: 'debug', destination }) };
}

async function keep(credentials: { roleId: string; secretId: string }, logger = capture().logger) {
  let attempts = 0;
  const login = await startRenewingLogin({
    client: anonymous,
    description: 'AppRole login at auth/approle',
    login: () => {
      attempts++;
      return anonymous.appRoleLogin('approle', credentials.roleId, credentials.secretId);
    },
    logger,
    minReloginIntervalMs: 0,
    retryInitialMs: 1000,
  });
  logins.push(login);
  return { login, client: anonymous.withToken(login), attempts: () => attempts };
}

describe('a login with a lease beyond a Node timer', () => {
  it('a year-long lease waits to renew (at the timer limit), never renews in a loop', async () => {
    let calls = 0;
    const login = await startRenewingLogin({
      client: anonymous,
      description: 'a login with a one-year lease',
      login: async () => {
        calls++;
        const created = await admin.createToken({ policies: ['svc'], ttl: '1h' });
        // What OpenBao returns when its max TTL allows a year: renewal due after 243 days.
        return { ...created, leaseDuration: 365 * 86_400 };
      },
      minReloginIntervalMs: 0,
    });
    logins.push(login);
    // A delay past 2^31 ms used to fire after 1 ms: a renew-self per millisecond against OpenBao.
    await sleep(500);
    expect(login.state()).toMatchObject({ state: 'ok', renewals: 0, logins: 1 });
    expect(calls).toBe(1);
  });
});

describe('a login kept valid for a long-running process', () => {
  it('renews the token at two thirds of its lease, so requests work past the TTL without a new login', async () => {
    const { login, client, attempts } = await keep(await role('renewed', '3s'));
    await sleep(4_500);
    await expect(client.kvRead('secret', 'svc/config')).resolves.toMatchObject({ data: { v: '1' } });
    expect(login.state()).toMatchObject({ state: 'ok', logins: 1 });
    expect(login.state().renewals).toBeGreaterThanOrEqual(1);
    expect(attempts()).toBe(1);
  });

  it("logs in again once renewals reach the role's token_max_ttl", async () => {
    const { login, client } = await keep(await role('capped', '3s', '4s'));
    await sleep(6_500);
    await expect(client.kvRead('secret', 'svc/config')).resolves.toMatchObject({ data: { v: '1' } });
    expect(login.state().logins).toBeGreaterThanOrEqual(2);
  });

  it('replaces a revoked token at the first refused request and sends that request again', async () => {
    const { login, client } = await keep(await role('revoked', '1h'));
    await admin.request('POST', 'auth/token/revoke', { body: { token: login.current() } });
    await expect(client.kvRead('secret', 'svc/config')).resolves.toMatchObject({ data: { v: '1' } });
    expect(login.state().logins).toBe(2);
  });

  it('does not log in again when a policy refuses (the token is fine)', async () => {
    const { login, client } = await keep(await role('denied', '1h'));
    await expect(client.kvRead('secret', 'elsewhere/x')).rejects.toMatchObject({
      code: 'CT_OPENBAO_PERMISSION_DENIED',
    });
    expect(login.state().logins).toBe(1);
  });

  it('keeps the old token while a new login fails, says so once, and recovers when the login works again', {
    timeout: 30_000,
  }, async () => {
    const credentials = await role('failing', '1h');
    const { lines, logger } = capture();
    const { login, client } = await keep(credentials, logger);
    const good = credentials.secretId;
    credentials.secretId = 'not-a-secret-id';
    await admin.request('POST', 'auth/token/revoke', { body: { token: login.current() } });
    await expect(client.kvRead('secret', 'svc/config')).rejects.toMatchObject({
      code: 'CT_OPENBAO_PERMISSION_DENIED',
    });
    expect(login.state()).toMatchObject({
      state: 'failing',
      lastErrorCode: expect.stringMatching(/^CT_OPENBAO_/),
    });
    await sleep(2_500); // two retries at 1 s and 2 s
    expect(lines.filter((line) => line.event === 'openbao.login_failed')).toHaveLength(1);
    expect(JSON.stringify(lines)).not.toContain(good);
    credentials.secretId = good;
    // The next retry (backoff 1 s, 2 s, 4 s) logs in with the good secret-id.
    await vi.waitFor(() => expect(login.state().state).toBe('ok'), { timeout: 10_000, interval: 200 });
    await expect(client.kvRead('secret', 'svc/config')).resolves.toBeDefined();
    expect(lines.map((line) => line.event)).toContain('openbao.login_recovered');
  });
});

describe('a first login while OpenBao is away', () => {
  it('starts without a token when allowed, and logs in at the first request OpenBao answers', async () => {
    const credentials = await role('late', '1h');
    const port = await freePort();
    const away = new OpenBaoClient({ address: `http://127.0.0.1:${port}`, retries: 0 });
    const { lines, logger } = capture();
    // Without the option the start fails as before (a login OpenBao refuses fails either way).
    await expect(
      startRenewingLogin({
        client: away,
        description: 'AppRole login at auth/approle',
        login: () => away.appRoleLogin('approle', credentials.roleId, credentials.secretId),
      }),
    ).rejects.toMatchObject({ code: 'CT_OPENBAO_UNREACHABLE' });
    const login = await startRenewingLogin({
      client: away,
      description: 'AppRole login at auth/approle',
      login: () => away.appRoleLogin('approle', credentials.roleId, credentials.secretId),
      logger,
      retryInitialMs: 60_000, // the timer's retry is not what this test waits for
      startBeforeOpenBao: true,
    });
    logins.push(login);
    let back: { close(): Promise<void> } | undefined;
    try {
      expect(login.state()).toMatchObject({
        state: 'failing',
        lastErrorCode: 'CT_OPENBAO_UNREACHABLE',
        logins: 0,
      });
      expect(lines).toContainEqual(expect.objectContaining({ event: 'openbao.login_pending' }));
      back = await forwardPort(port, new URL(server.address));
      // The first request goes without a token, is refused, and the refusal logs in and sends it again.
      await expect(away.withToken(login).kvRead('secret', 'svc/config')).resolves.toBeDefined();
      expect(login.state()).toMatchObject({ state: 'ok', logins: 1 });
    } finally {
      await back?.close();
      await away.close();
    }
  });

  it('does not turn every refused request into a login when the login itself is refused', async () => {
    const credentials = await role('late-refused', '1h');
    const port = await freePort();
    const away = new OpenBaoClient({ address: `http://127.0.0.1:${port}`, retries: 0 });
    let attempts = 0;
    const login = await startRenewingLogin({
      client: away,
      description: 'AppRole login at auth/approle',
      login: () => {
        attempts++;
        return away.appRoleLogin('approle', credentials.roleId, 'a-secret-id-that-expired-meanwhile');
      },
      logger: capture().logger,
      retryInitialMs: 60_000,
      startBeforeOpenBao: true,
    });
    logins.push(login);
    const back = await forwardPort(port, new URL(server.address));
    try {
      // Requests a stranger could cause (bootstraps, TokenReview mismatches) each refused: one login, not five.
      for (let i = 0; i < 5; i++)
        await expect(away.withToken(login).kvRead('secret', 'svc/config')).rejects.toMatchObject({
          code: 'CT_OPENBAO_PERMISSION_DENIED',
        });
      expect(attempts).toBe(2); // the one at start (OpenBao away), and the first refusal's
    } finally {
      await back.close();
      await away.close();
    }
  });
});
