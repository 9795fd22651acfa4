/**
 * A token given to the bridge as it is (`--secretstore-token`): before, nothing renewed it, so a renewable token
 * with a TTL (`dev up`'s bridge token: one hour) expired under a running bridge and every poll failed with
 * permission denied. keepStaticTokenAlive renews it at two thirds of each lease, and says once, with a code, when
 * it will expire regardless (its max TTL); a token that never expires costs one lookup.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { keepStaticTokenAlive, OpenBaoClient } from '../../runtime/openbao/index.js';
import { captureLogger } from '../beacon/helpers.js';
import { waitUntil } from '../support/wait.js';

let server: OpenBaoTestServer;
let admin: OpenBaoClient;

beforeAll(async () => {
  server = await startOpenBaoTestServer();
  admin = new OpenBaoClient({ address: server.address, token: server.rootToken, retries: 0 });
  await admin.enableAuth('approle', 'approle');
});
afterAll(async () => {
  await admin?.close();
  await server?.close();
});

describe('a token given as it is', () => {
  it('is renewed while OpenBao allows, so it outlives its first TTL', async () => {
    const token = (await admin.createToken({ policies: ['default'], ttl: '2s' })).clientToken;
    const client = admin.withToken(token);
    const keeper = keepStaticTokenAlive({ client });
    try {
      // Past the first TTL (2 s) by more than a second: alive, so it was renewed (before: permission denied).
      await new Promise((resolve) => setTimeout(resolve, 3_500));
      expect((await client.lookupSelf()).ttl).toBeGreaterThan(0);
    } finally {
      keeper.close();
    }
  });

  it('says once, with its code, when renewing no longer adds time (its max TTL), and when it expires', async () => {
    await admin.writeAppRole('approle', 'short', {
      policies: ['default'],
      tokenTtl: '2s',
      tokenMaxTtl: '3s',
    });
    const roleId = await admin.readAppRoleId('approle', 'short');
    const secretId = await admin.createAppRoleSecretId('approle', 'short');
    const login = await admin.appRoleLogin('approle', roleId, secretId);
    const { logger, lines } = captureLogger();
    const keeper = keepStaticTokenAlive({ client: admin.withToken(login.clientToken), logger });
    try {
      await waitUntil(() => lines.some((l) => l.event === 'openbao.token_expires'), {
        timeoutMs: 5_000,
        what: 'the expiry warning',
      });
      const warnings = lines.filter((l) => l.event === 'openbao.token_expires');
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ level: 40, code: 'CT_OPENBAO_TOKEN_EXPIRES' }); // 40: warn
      expect(String(warnings[0].msg)).toContain('AppRole or Kubernetes auth');
      // The token never reaches a log line.
      expect(JSON.stringify(lines)).not.toContain(login.clientToken);
    } finally {
      keeper.close();
    }
  });

  it('needs nothing for a token that never expires (root): one lookup, no warning', async () => {
    const { logger, lines } = captureLogger();
    const before = server.requestLog().length;
    const keeper = keepStaticTokenAlive({ client: admin, logger });
    try {
      await waitUntil(() => server.requestLog().length > before, { what: 'the lookup' });
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(
        server
          .requestLog()
          .slice(before)
          .map((e) => e.path),
      ).toEqual(['/v1/auth/token/lookup-self']);
      expect(lines.filter((l) => Number(l.level) >= 40)).toEqual([]);
    } finally {
      keeper.close();
    }
  });
});
