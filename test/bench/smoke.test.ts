/**
 * `npm run bench` checks the speed and memory goals, so a benchmark that no longer runs leaves a goal unchecked.
 * Three did rot between sessions (the bridge began to need a beacon client certificate; the bootstrap bench then
 * waited forever for a bridge the beacon refused). This runs every benchmark once at its smallest size
 * (`--smoke`) and fails on any that throws or reports a figure that is not a number. It asserts no goal: the
 * figures of a smoke run on a busy test machine mean nothing.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runProcess } from '../run-process.js';

const REPO = resolve(import.meta.dirname, '../..');
const work = mkdtempSync(join(tmpdir(), 'ct-bench-smoke-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Report {
  readonly smoke: boolean;
  readonly metrics: Record<string, { value: number | null; baseline?: number | null }>;
  readonly failures: string[];
}

describe('npm run bench -- --smoke', () => {
  it('runs every benchmark to a report with a numeric figure for each metric', async () => {
    const reportPath = join(work, 'report.json');
    const run = await runProcess(
      process.execPath,
      ['--expose-gc', join(REPO, 'dist', 'test', 'bench', 'run.js'), '--smoke', '--json', reportPath],
      { cwd: REPO, env: { ...process.env, CLOUDTASER_LOG_LEVEL: 'error' }, timeoutMs: 300_000 },
    );
    const report = JSON.parse(readFileSync(reportPath, 'utf8')) as Report;
    expect(report.failures, run.stderr.slice(-4000)).toEqual([]);
    expect(run.code, run.stderr.slice(-4000)).toBe(0);
    expect(report.smoke).toBe(true);
    const started = [...run.stderr.matchAll(/^== (\S+) /gm)].map((m) => m[1]);
    expect(started.length).toBeGreaterThanOrEqual(15);
    for (const [name, metric] of Object.entries(report.metrics)) {
      expect(Number.isFinite(metric.value), `${name} value`).toBe(true);
      if (metric.baseline !== undefined)
        expect(Number.isFinite(metric.baseline), `${name} baseline`).toBe(true);
    }
    // Every benchmark module contributed: one metric family per benchmark that started.
    for (const family of [
      'beacon.',
      'bootstrap.',
      'cdktf.',
      'cli.',
      'bridge.',
      'fleet.',
      'metrics.',
      'pki.',
      'provider.',
      'registration.',
      'secret.',
    ])
      expect(
        Object.keys(report.metrics).some((name) => name.startsWith(family)),
        family,
      ).toBe(true);
  }, 330_000);
});
