/**
 * The provider's OpenBao client logs through the provider's hclog logger (what TF_LOG_PROVIDER shows): a quota's
 * retries, a standby's redirects and read lag. Before, the provider gave its client no logger and they were
 * dropped (an outside fleet test applied 50 registrations under a quota and saw nothing of the retries).
 */
import { expect, it } from 'vitest';
import { configureCloudtaser } from '../../provider/resources/provider-config.js';
import type { ProviderLogger } from '../../provider/wire/hclog.js';
import { startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';

it("hands the OpenBao client's lines to the provider logger at their own level, without the token", async () => {
  const server = await startOpenBaoTestServer();
  const admin = new OpenBaoClient({ address: server.address, token: server.rootToken });
  try {
    await admin.request('POST', 'sys/quotas/rate-limit/provider-test', {
      body: { rate: 1, interval: '1s', path: '' },
    });
    const lines: Array<{ level: string; event: string; message: string; fields?: Record<string, unknown> }> =
      [];
    const record = (level: string) => (event: string, message: string, fields?: Record<string, unknown>) =>
      lines.push({ level, event, message, fields });
    const logger: ProviderLogger = {
      trace: record('trace'),
      debug: record('debug'),
      info: record('info'),
      warn: record('warn'),
      error: record('error'),
    };
    const client = configureCloudtaser(
      {
        secretstore_address: server.address,
        secretstore_token: server.rootToken,
        secretstore_ca_cert: null,
        namespace_root: null,
        kubernetes: null,
      } as never,
      {},
      logger,
    );
    const openBao = await client.openBao();
    await Promise.all([openBao.listMounts(), openBao.listMounts()]);
    const limited = lines.find((line) => line.event === 'openbao.rate_limited');
    expect(limited?.level).toBe('warn');
    expect(limited?.message).toContain('rate-limit quota');
    expect(limited?.fields).toMatchObject({ path: expect.any(String), attempt: expect.any(Number) });
    expect(JSON.stringify(lines)).not.toContain(server.rootToken);
    await openBao.close();
  } finally {
    await admin.close();
    await server.close();
  }
});
