import { defineConfig } from 'vitest/config';
import { SlowFirstSequencer } from './test/support/sequencer.js';

export default defineConfig({
  test: {
    include: [
      'test/**/*.test.ts',
      'runtime/**/*.test.ts',
      'provider/**/*.test.ts',
      'constructs/**/*.test.ts',
    ],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two test files at a time, also on a 2-core machine (vitest's default there is one): most files wait on
    // sockets, child processes and timers rather than compute, so the suite took 805 s with one worker and 540 s
    // with two, all passing. Timing bounds in tests are generous enough for a shared CPU; benchmarks, which need
    // a quiet machine, run apart (`npm run bench`).
    maxWorkers: 2,
    sequence: { sequencer: SlowFirstSequencer },
    env: { CHECKPOINT_DISABLE: '1' },
  },
});
