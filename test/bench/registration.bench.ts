import { randomUUID } from 'node:crypto';
import { startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { registerCluster } from '../../runtime/registration/index.js';
import { type Benchmark, median, percentile, sample, sized } from './harness.js';

/**
 * `registration.register_ms`: one full `register` (namespace, mounts, CA, bridge certificate, records) against
 * the in-process OpenBao test server, beside a single KV write on the same server in the same run, so the
 * figure reads as "how many round trips' worth".
 */
export const benchmarks: Benchmark[] = [
  {
    name: 'registration',
    async run(ctx) {
      const server = await startOpenBaoTestServer();
      const client = new OpenBaoClient({ address: server.address, token: server.rootToken });
      try {
        await client.createNamespace('bench');
        const bench = client.withNamespace('bench');
        await bench.enableKvV2('kv');
        let i = 0;
        const write = await sample(
          sized(ctx, 1000, 200, 20),
          () => bench.kvWrite('kv', `k${i++ % 50}`, { v: i }),
          20,
        );
        const register = await sample(
          sized(ctx, 150, 30, 5),
          () => registerCluster(client, { fingerprint: randomUUID() }),
          3,
        );
        const again = await sample(
          sized(ctx, 150, 30, 5),
          () => registerCluster(client, { fingerprint: '0ad50c05-1153-4508-9237-4cb2912e2c23' }),
          3,
        );
        const value = median(register);
        const baseline = median(write);
        ctx.log(
          `register: ${value.toFixed(2)} ms (idempotent re-run ${median(again).toFixed(2)} ms) vs ${baseline.toFixed(2)} ms per KV write`,
        );
        return [
          {
            name: 'registration.register_ms',
            value,
            unit: 'ms',
            baseline,
            baselineLabel: 'one KV v2 write on the same test server',
            ratio: value / baseline,
            extra: { p90: percentile(register, 90), idempotentRerunMs: median(again) },
          },
        ];
      } finally {
        await client.close();
        await server.close();
      }
    },
  },
];
