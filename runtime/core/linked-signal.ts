/**
 * A signal that aborts when any of its parents does, or after a time limit, and leaves nothing behind on the
 * parents once disposed. Not AbortSignal.any: on Node 20 that keeps an entry on every source signal until the
 * source aborts (nodejs/node#55351, fixed in Node 22), so combined with a long-lived signal (a cluster's, a
 * process's) it grows with every call: ~165 bytes per bridge waiter refresh, ~2.5 KB per shard Lease round, an
 * out-of-memory kill within days. AbortSignal.timeout is avoided too: it costs about a millisecond on Node 20.
 */
import { timerDelay } from './backoff.js';

export interface LinkedSignal {
  readonly signal: AbortSignal;
  /** Whether it aborted because its time limit passed (not a parent, not abort()). */
  readonly timedOut: boolean;
  abort(reason?: unknown): void;
  /** Detaches from the parents and stops the timer: call it once the work is done. Aborting does it too. */
  dispose(): void;
}

export function linkSignal(
  parents: ReadonlyArray<AbortSignal | undefined>,
  timeoutMs?: number,
): LinkedSignal {
  const controller = new AbortController();
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  const attached: Array<readonly [AbortSignal, () => void]> = [];
  const dispose = () => {
    clearTimeout(timer);
    for (const [parent, onAbort] of attached) parent.removeEventListener('abort', onAbort);
    attached.length = 0;
  };
  const abort = (reason?: unknown) => {
    controller.abort(reason);
    dispose();
  };
  for (const parent of parents) {
    if (!parent) continue;
    if (parent.aborted) {
      abort(parent.reason);
      break;
    }
    const onAbort = () => abort(parent.reason);
    parent.addEventListener('abort', onAbort, { once: true });
    attached.push([parent, onAbort]);
  }
  if (timeoutMs !== undefined && !controller.signal.aborted)
    timer = setTimeout(() => {
      timedOut = true;
      abort(new DOMException(`timed out after ${timeoutMs} ms`, 'TimeoutError'));
    }, timerDelay(timeoutMs));
  return {
    signal: controller.signal,
    get timedOut() {
      return timedOut;
    },
    abort,
    dispose,
  };
}
