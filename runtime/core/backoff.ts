/**
 * The one retry pacing of the whole project: capped exponential backoff with full jitter (a delay drawn
 * uniformly from 0 to the current ceiling). When a beacon replica restarts, every broker and every bridge
 * waiter fails at the same moment; full jitter spreads their returns over the whole window instead of
 * bunching them at its edges, which is what keeps a reconnect storm from becoming a second outage.
 */
export interface BackoffOptions {
  /** Ceiling of the first delay. */
  readonly initialMs: number;
  /** Largest ceiling. */
  readonly maxMs: number;
}

export interface Backoff {
  /** The next delay: uniform in [0, ceiling], the ceiling doubling per call up to `maxMs`. */
  next(): number;
  reset(): void;
  readonly attempts: number;
}

/** The ceiling for `attempt` (0-based): `initialMs * 2^attempt`, capped at `maxMs`. */
export function backoffCeiling(attempt: number, options: BackoffOptions): number {
  return Math.min(options.maxMs, options.initialMs * 2 ** Math.min(Math.max(attempt, 0), 30));
}

/** One jittered delay for `attempt` (0-based); `random` is injectable for tests. */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  return Math.round(random() * backoffCeiling(attempt, options));
}

/** A fixed interval with the same jitter: uniform in [0, ms]. For periodic retries many processes share. */
export function jitteredInterval(ms: number, random: () => number = Math.random): number {
  return backoffDelay(0, { initialMs: ms, maxMs: ms }, random);
}

export function createBackoff(options: BackoffOptions): Backoff {
  let attempts = 0;
  return {
    next() {
      return backoffDelay(attempts++, options);
    },
    reset() {
      attempts = 0;
    },
    get attempts() {
      return attempts;
    },
  };
}

/**
 * The longest delay a Node timer keeps: a longer one (2^31 ms, 24.8 days, and up) fires after 1 ms instead. Every
 * delay derived from configuration or from a lease or certificate lifetime goes through timerDelay, so a year-long
 * token lease or certificate means waking after 24 days to look again, not renewing in a tight loop.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export function timerDelay(ms: number): number {
  return Math.min(Math.max(ms, 0), MAX_TIMER_MS);
}

/** Sleeps `ms` (at most MAX_TIMER_MS), waking early (without throwing) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, timerDelay(ms));
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
