/**
 * The suite's one way to wait for something to happen: poll a check until it holds, and fail with what was
 * awaited. Tests wait for outcomes (a phase, a counter, a log line), never for a duration.
 *
 * It works like `vi.waitFor`, but without vitest's runner state, so the benchmarks (`npm run bench` runs them
 * with plain Node) wait the same way as the tests.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface WaitOptions {
  /**
   * What is awaited, for the timeout error ("the bridge tunnel").
   * @default the check's source text
   */
  readonly what?: string;
  /**
   * Give up after this long. CI runs on a loaded 2-core machine: be generous, a passing wait costs nothing.
   * @default 10_000
   */
  readonly timeoutMs?: number;
  /** Pause between two checks. @default 10 */
  readonly intervalMs?: number;
}

export type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>;

const TIMED_OUT = Symbol('timed out');

/**
 * Polls `check` until it returns a truthy value, and resolves to that value. A check that throws counts as "not
 * yet" (its last error goes into the timeout error); a check still running at the deadline is not awaited.
 */
export async function waitUntil<T>(
  check: () => T | Promise<T>,
  options: WaitOptions = {},
): Promise<Truthy<T>> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const intervalMs = options.intervalMs ?? 10;
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    const remaining = deadline - performance.now();
    const stop = new AbortController();
    try {
      const value = await Promise.race([
        check(),
        sleep(Math.max(remaining, 0), TIMED_OUT, { signal: stop.signal, ref: false }),
      ]);
      if (value !== TIMED_OUT && value) return value as Truthy<T>;
      if (value !== TIMED_OUT) lastError = undefined;
    } catch (err) {
      lastError = err;
    } finally {
      stop.abort();
    }
    if (performance.now() >= deadline) {
      const what = options.what ?? describeCheck(check);
      const last =
        lastError === undefined ? '' : `; last error: ${(lastError as Error)?.message ?? lastError}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last}`, { cause: lastError });
    }
    await sleep(intervalMs);
  }
}

function describeCheck(check: () => unknown): string {
  const source = check.toString().replace(/\s+/g, ' ');
  return source.length > 200 ? `${source.slice(0, 197)}...` : source;
}
