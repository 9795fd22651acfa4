/**
 * `beacon.idle_10k_rss_mib`: RSS of one beacon process holding 10,000 idle paired connections (20,000 client
 * sockets through the plain door, loopback only), next to the same beacon's idle RSS measured in the same run.
 * Quick mode holds 2,000 pairs. The load comes from generator child processes so no process needs more file
 * descriptors than its limit; when the beacon's own limit cannot hold the target, the run says so, measures as
 * many pairs as fit and projects to the target from the per-pair cost (marked `projected`).
 */
import { fork } from 'node:child_process';
import { BEACON_FD_HEADROOM } from '../../runtime/beacon/index.js';
import { childEntry, openFileLimit, startBeaconProcess } from '../load/processes.js';
import { waitUntil } from '../support/wait.js';
import { type Benchmark, type Metric, sized } from './harness.js';

const MIB = 1024 * 1024;
const PAIRS_PER_GENERATOR = 4_000;
/**
 * Descriptors a beacon process needs beside its connections (stdio, listener, epoll, libuv, IPC), and those it keeps
 * free at its connection bound (it holds --max-connections that far below its open-file limit).
 */
const BEACON_FD_RESERVE = 64 + BEACON_FD_HEADROOM;

async function generate(
  port: number,
  pairs: number,
  host: string,
): Promise<{ close(): void; ready: Promise<void> }> {
  const entry = await childEntry('pair-generator');
  const child = fork(entry, [], {
    env: { ...process.env, CLOUDTASER_PAIR_GENERATOR: JSON.stringify({ port, pairs, host }) },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const ready = new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`pair generator exited with ${code} before it was ready`)));
    child.on('message', (message: { type: string }) => {
      if (message.type === 'ready') resolve();
    });
  });
  return {
    ready,
    close: () => {
      child.removeAllListeners('exit');
      if (child.connected) child.send({ type: 'close' });
      setTimeout(() => child.kill('SIGKILL'), 2_000).unref();
    },
  };
}

async function holdPairs(port: number, total: number): Promise<() => void> {
  const generators: Awaited<ReturnType<typeof generate>>[] = [];
  const closeAll = () => {
    for (const generator of generators) generator.close();
  };
  try {
    for (let left = total; left > 0; left -= PAIRS_PER_GENERATOR) {
      generators.push(await generate(port, Math.min(PAIRS_PER_GENERATOR, left), '127.0.0.1'));
    }
    await Promise.all(generators.map((g) => g.ready));
  } catch (err) {
    // One generator failed: the others must not outlive the benchmark (their IPC kept `npm run bench` from exiting).
    closeAll();
    throw err;
  }
  return closeAll;
}

export const benchmarks: Benchmark[] = [
  {
    name: 'beacon.idle_10k_rss_mib',
    async run(ctx) {
      const target = sized(ctx, 10_000, 2_000, 200);
      const fdLimit = openFileLimit();
      const fitting = Math.floor((fdLimit - BEACON_FD_RESERVE) / 2);
      const pairs = Math.min(target, fitting);
      if (pairs < target) {
        ctx.log(
          `   open-file limit is ${fdLimit} (ulimit -n; raising it needs CAP_SYS_RESOURCE here): a beacon holds 2 descriptors per pair, ` +
            `so this run holds ${pairs} pairs and projects ${target} from the per-pair cost. Run with a higher ulimit -n to measure ${target} directly.`,
        );
      }
      const beacon = await startBeaconProcess({
        host: '127.0.0.1',
        port: 0,
        plain: true,
        limits: {
          maxConnections: pairs * 2 + 100,
          maxWaiting: pairs * 2 + 100,
          maxWaitingPerAddress: pairs * 2 + 100,
          maxPendingPerAddress: 10_000,
        },
      });
      try {
        // Warm-up as in reference/limits.md: open and close 200 pairs, then take the idle baseline.
        const warm = await holdPairs(beacon.port, 200);
        warm();
        await waitUntil(async () => (await beacon.report()).stats.connections === 0, {
          timeoutMs: 20_000,
          intervalMs: 50,
        });
        const idle = await beacon.report();
        const started = performance.now();
        const release = await holdPairs(beacon.port, pairs);
        const openMs = performance.now() - started;
        const loaded = await beacon.report();
        release();
        if (loaded.stats.paired !== pairs)
          throw new Error(`beacon reports ${loaded.stats.paired} pairs, expected ${pairs}`);
        const perPairKiB = (loaded.rssBytes - idle.rssBytes) / 1024 / pairs;
        const measuredMiB = loaded.rssBytes / MIB;
        const projected = pairs < target;
        const value = projected ? (idle.rssBytes + perPairKiB * 1024 * target) / MIB : measuredMiB;
        ctx.log(
          `   ${pairs} pairs: beacon RSS ${measuredMiB.toFixed(1)} MiB (idle ${(idle.rssBytes / MIB).toFixed(1)}), ` +
            `${perPairKiB.toFixed(1)} KiB/pair, heap ${(loaded.heapUsedBytes / MIB).toFixed(1)} MiB, ${loaded.openFds} fds, opened in ${(openMs / 1000).toFixed(1)} s`,
        );
        const metrics: Metric[] = [
          {
            name: `beacon.idle_${target % 1000 === 0 ? `${target / 1000}k` : target}_rss_mib`,
            value,
            unit: 'MiB',
            baseline: idle.rssBytes / MIB,
            baselineLabel: 'same beacon idle, same run',
            ratio: value / (idle.rssBytes / MIB),
            extra: {
              pairs: target,
              measuredPairs: pairs,
              projected: projected ? 'yes' : 'no',
              measuredRssMiB: Math.round(measuredMiB * 10) / 10,
              heapUsedMiB: Math.round((loaded.heapUsedBytes / MIB) * 10) / 10,
              openFds: loaded.openFds,
              openSeconds: Math.round(openMs / 100) / 10,
            },
          },
          {
            // Plain door at scale; the TLS-door figure with its same-run baseline is beacon.idle_pair_kib.
            name: 'beacon.idle_pair_kib_plain_at_scale',
            value: perPairKiB,
            unit: 'KiB/pair',
            // Not a same-run baseline: reference/limits.md measured 13.3 KiB per pair for a bare TCP relay.
            extra: { referenceBareTcpRelayKiB: 13.3 },
          },
        ];
        return metrics;
      } finally {
        await beacon.close();
      }
    },
  },
];
