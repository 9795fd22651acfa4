import { defineConfig } from 'vitest/config';

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
    env: { CHECKPOINT_DISABLE: '1' },
  },
});
