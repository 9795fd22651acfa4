import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { TestSpecification, Vitest } from 'vitest/node';
import { SLOW_FILES, SlowFirstSequencer } from './sequencer.js';

const ROOT = resolve(import.meta.dirname, '../..');

/** A file as vitest hands it to the sequencer, on a clean clone (no cached durations or sizes). */
function spec(file: string): TestSpecification {
  const config = { root: ROOT, sequence: { groupOrder: 0 }, isolate: true };
  return { moduleId: join(ROOT, file), project: { name: '', config } } as unknown as TestSpecification;
}

const cleanClone = {
  config: { root: ROOT },
  cache: { getFileTestResults: () => undefined, getFileStats: () => undefined },
} as unknown as Vitest;

describe('SlowFirstSequencer', () => {
  it('names only files that exist (a renamed file would silently lose its place)', () => {
    for (const file of Object.keys(SLOW_FILES)) expect(existsSync(join(ROOT, file)), file).toBe(true);
  });

  it('starts the listed files first, longest first, and keeps the order of the rest', async () => {
    const files = [
      'test/readme.test.ts',
      'test/cli/cli.test.ts',
      'test/kubectl.test.ts',
      'test/bench/smoke.test.ts',
    ];
    const sorted = await new SlowFirstSequencer(cleanClone).sort(files.map(spec));
    expect(sorted.map((s) => s.moduleId.slice(ROOT.length + 1))).toEqual([
      'test/bench/smoke.test.ts',
      'test/cli/cli.test.ts',
      'test/readme.test.ts',
      'test/kubectl.test.ts',
    ]);
  });
});
