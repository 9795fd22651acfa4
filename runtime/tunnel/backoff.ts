/** Capped exponential backoff with jitter, so many brokers that lost the same beacon do not return in step. */
export interface BackoffOptions {
  /** First delay. */
  readonly initialMs: number;
  /** Largest delay. */
  readonly maxMs: number;
}

export interface Backoff {
  /** The next delay: doubles each call up to the cap, then a random 50-100 % of it. */
  next(): number;
  reset(): void;
  readonly attempts: number;
}

export function createBackoff(options: BackoffOptions): Backoff {
  let attempts = 0;
  return {
    next() {
      const ceiling = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(attempts, 30));
      attempts++;
      return Math.round(ceiling * (0.5 + Math.random() * 0.5));
    },
    reset() {
      attempts = 0;
    },
    get attempts() {
      return attempts;
    },
  };
}

/** Sleeps `ms`, waking early (without throwing) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
