/**
 * OpenBao in production, against a real server. Skipped unless CLOUDTASER_TEST_OPENBAO_ADDR and
 * CLOUDTASER_TEST_OPENBAO_TOKEN point at one (a root or admin token; the cases make and remove a namespace and a
 * rate-limit quota of their own). The HA cases also need CLOUDTASER_TEST_OPENBAO_STANDBY_ADDR: the address of a
 * standby node of the same cluster (OpenBao >= 2.5 for reads served by standbys). The same behaviours run against
 * the OpenBao test server in openbao-ha.test.ts.
 */
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../runtime/core/log.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { deregisterCluster, getClusterStatus, registerCluster } from '../../runtime/registration/index.js';
import { AGAINST_REAL_OPENBAO, REAL_ADDRESS, REAL_TOKEN, raw, uniqueName } from './openbao-helpers.js';

const STANDBY_ADDRESS = process.env.CLOUDTASER_TEST_OPENBAO_STANDBY_ADDR;

function logged(): { events: () => string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      callback();
    },
  });
  return {
    events: () => lines.map((line) => String(JSON.parse(line).event)),
    logger: createLogger('ha-contract', { level: 'debug', destination }),
  };
}

describe.skipIf(!AGAINST_REAL_OPENBAO)(
  'rate-limit quotas on a real OpenBao (skipped: CLOUDTASER_TEST_OPENBAO_ADDR/TOKEN name no real server)',
  () => {
    let admin: OpenBaoClient;
    const base = uniqueName('ct-quota');
    const quota = uniqueName('ct-quota');

    beforeAll(async () => {
      admin = new OpenBaoClient({ address: REAL_ADDRESS!, token: REAL_TOKEN! });
      await admin.createNamespace(base);
      await admin.withNamespace(base).enableKvV2('kv');
      await admin.request('POST', `sys/quotas/rate-limit/${quota}`, {
        body: { rate: 2, interval: '1s', path: `${base}/` },
      });
    });
    afterAll(async () => {
      await admin?.request('DELETE', `sys/quotas/rate-limit/${quota}`).catch(() => undefined);
      await admin?.deleteNamespace(base).catch(() => undefined);
      await admin?.close();
    });

    it('answers 429 "rate limit quota exceeded" once the quota is used, and the client retries through it', async () => {
      const target = { address: REAL_ADDRESS!, token: REAL_TOKEN!, close: async () => {} };
      const answers = await Promise.all(
        Array.from({ length: 4 }, () => raw(target, 'GET', 'kv/data/none', { namespace: base })),
      );
      const refused = answers.find((answer) => answer.status === 429);
      expect(String((refused?.json?.errors as string[] | undefined)?.[0])).toContain(
        'rate limit quota exceeded',
      );
      const log = logged();
      const client = new OpenBaoClient({
        address: REAL_ADDRESS!,
        token: REAL_TOKEN!,
        retries: 3,
        logger: log.logger,
      });
      try {
        const ns = client.withNamespace(base);
        await Promise.all(Array.from({ length: 5 }, (_, i) => ns.kvWrite('kv', `k${i}`, { i })));
        expect(log.events()).toContain('openbao.rate_limited');
      } finally {
        await client.close();
      }
    });
  },
);

describe.skipIf(!AGAINST_REAL_OPENBAO || !STANDBY_ADDRESS)(
  'an HA standby of a real OpenBao (skipped: needs CLOUDTASER_TEST_OPENBAO_ADDR/TOKEN and CLOUDTASER_TEST_OPENBAO_STANDBY_ADDR)',
  () => {
    it('registers, reads its own writes back and deregisters through the standby, whether it forwards, redirects or lags', async () => {
      const log = logged();
      const viaStandby = new OpenBaoClient({
        address: STANDBY_ADDRESS!,
        token: REAL_TOKEN!,
        logger: log.logger,
      });
      const active = new OpenBaoClient({ address: REAL_ADDRESS!, token: REAL_TOKEN! });
      const fingerprint = randomUUID();
      const namespaceRoot = uniqueName('ct-ha');
      try {
        const result = await registerCluster(viaStandby, { fingerprint, namespaceRoot });
        expect((await getClusterStatus(active, { fingerprint, namespaceRoot })).operationalHash).toBe(
          result.operationalHash,
        );
        const root = viaStandby.withNamespace(namespaceRoot);
        await root.kvWrite('cloudtaser', 'ha/probe', { n: 1 });
        expect((await root.kvRead('cloudtaser', 'ha/probe'))?.data).toEqual({ n: 1 });
        await deregisterCluster(viaStandby, { fingerprint, namespaceRoot, purge: true });
      } finally {
        await active.deleteNamespace(namespaceRoot).catch(() => undefined);
        await viaStandby.close();
        await active.close();
      }
    });
  },
);
