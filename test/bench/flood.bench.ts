/**
 * bridge.flood_cpu_s: CPU seconds the bridge process (`bridge run`, real process) spends while eight fake brokers
 * hammer its operational room through a real `beacon serve`, with a live tunnel to a real `broker run`. Baseline:
 * the same bridge idle (its own polls only) over the same time, in the same run. Goal: <= 0.5 s over 15 s
 * (quick mode shortens both windows to 5 s; the goal is then scaled to the window).
 */
import { startFakeBrokers, startTrustStage, statusOf } from '../adversary/trust-harness.js';
import { waitUntil } from '../support/wait.js';
import { type Benchmark, sized } from './harness.js';

const FAKE_BROKERS = 8;
const GOAL_S_PER_15_S = 0.5;

export const benchmarks: Benchmark[] = [
  {
    name: 'bridge.flood',
    async run(ctx) {
      const windowMs = sized(ctx, 15_000, 5_000, 1_000);
      const stage = await startTrustStage({ bridgePollInterval: '1s' });
      try {
        const bridge = stage.bridge!;
        const broker = await stage.startBroker({ pin: stage.cluster.operationalHash });
        await waitUntil(async () => (await statusOf(broker.healthPort))?.phase === 'operational', {
          timeoutMs: 30_000,
          what: 'broker operational',
        });
        const tunnelSince = (await statusOf(broker.healthPort))?.tunnel?.since;
        const wait = () => new Promise((done) => setTimeout(done, windowMs));
        const idleStart = bridge.cpuSeconds();
        await wait();
        const idle = bridge.cpuSeconds() - idleStart;
        const openbaoBefore = stage.store.server.requestLog().length;
        const linesBefore = bridge.lines().length;
        const flood = startFakeBrokers({
          beaconAddress: stage.beaconAddress,
          hash: stage.cluster.operationalHash,
          count: FAKE_BROKERS,
        });
        const floodStart = bridge.cpuSeconds();
        await wait();
        const spent = bridge.cpuSeconds() - floodStart;
        flood.stop();
        const after = await statusOf(broker.healthPort);
        const tunnelSurvived = after?.phase === 'operational' && after.tunnel?.since === tunnelSince;
        ctx.log(
          `   flood ${spent.toFixed(2)} s CPU vs idle ${idle.toFixed(2)} s over ${windowMs / 1000} s; ${flood.counts.pairings} fake pairings; tunnel ${tunnelSurvived ? 'kept' : 'LOST'}`,
        );
        return [
          {
            name: 'bridge.flood_cpu_s',
            value: spent,
            unit: 's',
            baseline: idle,
            baselineLabel: `same bridge idle, ${windowMs / 1000} s`,
            ratio: idle > 0 ? spent / idle : undefined,
            goal: { op: '<=', limit: Math.round((GOAL_S_PER_15_S * windowMs) / 15) / 1000, on: 'value' },
            extra: {
              windowS: windowMs / 1000,
              fakeBrokers: FAKE_BROKERS,
              fakePairings: flood.counts.pairings,
              openbaoRequests: stage.store.server.requestLog().length - openbaoBefore,
              bridgeLogLines: bridge.lines().length - linesBefore,
              tunnelSurvived: tunnelSurvived ? 'yes' : 'no',
            },
          },
        ];
      } finally {
        await stage.close();
      }
    },
  },
];
