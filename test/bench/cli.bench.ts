/**
 * cli.help_startup_ms: spawn of the built `cloudtaser-cli --help` to its exit, beside the floor measured in the same
 * run (spawn of `node -e 0` to its exit: Node's own start-up). Every invocation pays this before its command runs,
 * so the definitions must stay light and each command load its implementation when it runs (test/cli/startup.test.ts
 * checks what is loaded). Spawns alternate between the two so machine load hits both alike.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { type Benchmark, median, percentile, sized } from './harness.js';

/** The built CLI beside this compiled file (dist/test/bench/ -> dist/runtime/cli/). */
const CLI = resolve(import.meta.dirname, '../../runtime/cli/main.js');

/** Milliseconds from spawn to exit; a non-zero exit fails the benchmark (a broken --help is no figure). */
function timeToExit(args: string[]): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, args, { env: { PATH: process.env.PATH }, stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code === 0) resolvePromise(performance.now() - started);
      else reject(new Error(`node ${args.join(' ')} exited with ${code}`));
    });
  });
}

export const benchmarks: Benchmark[] = [
  {
    name: 'cli.help_startup',
    async run(ctx) {
      const runs = sized(ctx, 30, 10, 3);
      const help: number[] = [];
      const floor: number[] = [];
      await timeToExit([CLI, '--help']); // warm the page cache
      for (let i = 0; i < runs; i++) {
        help.push(await timeToExit([CLI, '--help']));
        floor.push(await timeToExit(['-e', '0']));
      }
      const value = median(help);
      const baseline = median(floor);
      ctx.log(
        `cli.help_startup_ms median ${value.toFixed(0)} ms (node -e 0: ${baseline.toFixed(0)} ms, ${(value / baseline).toFixed(2)}x)`,
      );
      return [
        {
          name: 'cli.help_startup_ms',
          value,
          unit: 'ms',
          baseline,
          baselineLabel: 'node -e 0 (spawn to exit)',
          ratio: value / baseline,
          // Every implementation loaded up front made it ~17x the floor (~0.9 s); the definitions alone are ~4-5x (pino and
          // commander are most of it). An implementation imported at the top of a command module again fails this.
          goal: { op: '<=', limit: 6, on: 'ratio' },
          extra: { p90: percentile(help, 90), floor_p90: percentile(floor, 90), runs },
        },
      ];
    },
  },
];
