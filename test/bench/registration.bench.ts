import { randomUUID } from 'node:crypto';
import { startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { registerCluster } from '../../runtime/registration/index.js';
import { type Benchmark, type Metric, median, percentile, sample, sized } from './harness.js';

/**
 * `registration.register_ms`: one full `register` (namespace, mounts, CA, bridge certificate, records) against
 * the in-process OpenBao test server, beside a single KV write on the same server in the same run, so the
 * figure reads as "how many round trips' worth".
 *
 * `registration.register_wan_ms`: the same over a link where every OpenBao request takes LINK_MS more (an EU
 * OpenBao a WAN away from the platform team's CI), beside one KV write over the same link: the ratio is the round
 * trips a register waits for one after another, which is what a WAN makes expensive.
 */
const LINK_MS = 10;
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
        // The same over a slow link: every request from here on waits LINK_MS before the server answers it.
        server.injectFault({ pathPattern: /./, delayMs: LINK_MS, times: Number.MAX_SAFE_INTEGER });
        const wanWrite = await sample(
          sized(ctx, 40, 10, 3),
          () => bench.kvWrite('kv', `k${i++ % 50}`, { v: i }),
          2,
        );
        const wanRegister = await sample(
          sized(ctx, 20, 5, 2),
          () => registerCluster(client, { fingerprint: randomUUID() }),
          1,
        );
        const value = median(register);
        const baseline = median(write);
        const wan = median(wanRegister);
        const wanBaseline = median(wanWrite);
        ctx.log(
          `register over a link adding ${LINK_MS} ms per request: ${wan.toFixed(1)} ms vs ${wanBaseline.toFixed(1)} ms per KV write (${(wan / wanBaseline).toFixed(1)} round trips one after another)`,
        );
        ctx.log(
          `register: ${value.toFixed(2)} ms (idempotent re-run ${median(again).toFixed(2)} ms) vs ${baseline.toFixed(2)} ms per KV write`,
        );
        const figures: Metric[] = [
          {
            name: 'registration.register_ms',
            value,
            unit: 'ms',
            baseline,
            baselineLabel: 'one KV v2 write on the same test server',
            ratio: value / baseline,
            extra: { p90: percentile(register, 90), idempotentRerunMs: median(again) },
          },
          {
            name: 'registration.register_wan_ms',
            value: wan,
            unit: 'ms',
            baseline: wanBaseline,
            baselineLabel: `one KV v2 write over the same link (${LINK_MS} ms added per request)`,
            ratio: wan / wanBaseline,
            extra: { linkMs: LINK_MS, p90: percentile(wanRegister, 90) },
          },
        ];
        return figures;
      } finally {
        await client.close();
        await server.close();
      }
    },
  },
];
