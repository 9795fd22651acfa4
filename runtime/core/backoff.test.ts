import { describe, expect, it } from 'vitest';
import {
  backoffCeiling,
  backoffDelay,
  createBackoff,
  jitteredInterval,
  MAX_TIMER_MS,
  sleep,
  timerDelay,
} from './backoff.js';

describe('the one backoff', () => {
  const options = { initialMs: 100, maxMs: 1_000 };

  it('doubles the ceiling per attempt up to the cap', () => {
    expect([0, 1, 2, 3, 4, 10, 500].map((attempt) => backoffCeiling(attempt, options))).toEqual([
      100, 200, 400, 800, 1_000, 1_000, 1_000,
    ]);
  });

  it('draws each delay uniformly from zero to the ceiling (full jitter)', () => {
    expect(backoffDelay(2, options, () => 0)).toBe(0);
    expect(backoffDelay(2, options, () => 0.5)).toBe(200);
    expect(backoffDelay(2, options, () => 0.999_999)).toBe(400);
    expect(jitteredInterval(60_000, () => 0.25)).toBe(15_000);
  });

  it('spreads a thousand clients that failed together over the whole window instead of bunching them', () => {
    const delays = Array.from({ length: 1_000 }, () => createBackoff(options).next());
    // Ten buckets of 10 ms over [0, 100]: full jitter puts roughly 100 in each, none empty, none crowded.
    const buckets = new Array(10).fill(0);
    for (const delay of delays) buckets[Math.min(9, Math.floor(delay / 10))]++;
    expect(Math.min(...buckets)).toBeGreaterThan(40);
    expect(Math.max(...buckets)).toBeLessThan(200);
  });

  it('starts again from the first ceiling after reset', () => {
    const backoff = createBackoff({ initialMs: 10, maxMs: 10_000 });
    for (let i = 0; i < 8; i++) backoff.next();
    expect(backoff.attempts).toBe(8);
    backoff.reset();
    expect(backoff.next()).toBeLessThanOrEqual(10);
  });
});

describe('timer delays', () => {
  it('caps a delay at the longest a Node timer keeps (a longer one would fire after 1 ms)', () => {
    expect(timerDelay(2 ** 31)).toBe(MAX_TIMER_MS);
    expect(timerDelay(365 * 86_400_000)).toBe(MAX_TIMER_MS);
    expect(timerDelay(1_000)).toBe(1_000);
    expect(timerDelay(-5)).toBe(0);
  });

  it('a sleep far beyond the cap does not end early', async () => {
    const stop = new AbortController();
    let ended = false;
    const sleeping = sleep(40 * 86_400_000, stop.signal).then(() => {
      ended = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(ended).toBe(false);
    stop.abort();
    await sleeping;
  });
});
