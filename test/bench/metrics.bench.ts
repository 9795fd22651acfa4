/**
 * metrics.overhead: a pod's KV v2 read through the pod API, tunnel, bridge and OpenBao test server with the
 * bridge's and the broker's Prometheus metrics on (and scraped as Prometheus would), against the same read on an
 * identical stack with metrics off, in the same run. Batches alternate between the two stacks so machine load
 * hits both alike. value = median ms with metrics, baseline = median ms without, goal ratio <= 1.05.
 */
import { createBridgeMetrics } from '../../runtime/bridge/index.js';
import { createBrokerMetrics } from '../../runtime/broker/index.js';
import {
  BOUND_SA,
  type OperationalStack,
  ROLE,
  SECRET_PATH,
  startOperationalStack,
} from '../operational/stack.js';
import { type Benchmark, median, sized } from './harness.js';

async function readerFor(stack: OperationalStack): Promise<() => Promise<void>> {
  const login = await stack.podRequest('POST', '/v1/auth/kubernetes/login', {
    body: { role: ROLE, jwt: stack.podToken(BOUND_SA) },
  });
  const token = (login.body.auth as { client_token: string }).client_token;
  return async () => {
    const read = await stack.podRequest('GET', `/v1/secret/data/${SECRET_PATH}`, { token });
    if (read.status !== 200) throw new Error(`pod read answered ${read.status}`);
  };
}

export const benchmarks: Benchmark[] = [
  {
    name: 'metrics',
    async run(ctx) {
      const bridgeMetrics = createBridgeMetrics();
      const brokerMetrics = createBrokerMetrics();
      // Identical but for the metrics: both bridges serve a probe port.
      const off = await startOperationalStack({
        logLevel: 'warn',
        bridge: { health: { host: '127.0.0.1', port: 0 } },
      });
      const on = await startOperationalStack({
        logLevel: 'warn',
        bridge: { health: { host: '127.0.0.1', port: 0 }, metrics: bridgeMetrics },
        broker: { metrics: brokerMetrics },
      });
      try {
        const readOff = await readerFor(off);
        const readOn = await readerFor(on);
        const batches = sized(ctx, 40, 10, 2);
        const perBatch = 20;
        const withMetrics: number[] = [];
        const without: number[] = [];
        const timed = async (read: () => Promise<void>, into: number[]) => {
          for (let i = 0; i < perBatch; i++) {
            const started = performance.now();
            await read();
            into.push(performance.now() - started);
          }
        };
        for (let i = 0; i < 3; i++) {
          await readOff();
          await readOn();
        }
        for (let batch = 0; batch < batches; batch++) {
          // Alternate which stack goes first, so neither always meets a warmer cache.
          if (batch % 2 === 0) {
            await timed(readOff, without);
            await timed(readOn, withMetrics);
          } else {
            await timed(readOn, withMetrics);
            await timed(readOff, without);
          }
          // A scrape per batch, as Prometheus would every interval.
          await bridgeMetrics.registry.metrics();
          await brokerMetrics.registry.metrics();
        }
        const value = median(withMetrics);
        const baseline = median(without);
        ctx.log(
          `metrics.overhead: pod API read ${value.toFixed(3)} ms with metrics vs ${baseline.toFixed(3)} ms without (${(value / baseline).toFixed(3)}x, ${withMetrics.length} reads each)`,
        );
        return [
          {
            name: 'metrics.overhead',
            value,
            unit: 'ms',
            baseline,
            baselineLabel: 'same pod API read, metrics off, same run',
            ratio: value / baseline,
            goal: { op: '<=', limit: 1.05, on: 'ratio' },
          },
        ];
      } finally {
        await on.close();
        await off.close();
      }
    },
  },
];
