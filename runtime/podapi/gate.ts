/**
 * Bounds how many requests one side keeps in flight on the tunnel (the mux refuses more than its stream limit)
 * and how many may wait for a slot; beyond that callers are told to retry instead of piling up memory.
 */
import { CloudtaserError } from '../core/errors.js';

export interface RequestGate {
  run<T>(work: () => Promise<T>, signal?: AbortSignal): Promise<T>;
  readonly inFlight: number;
  readonly waiting: number;
}

export function createRequestGate(options: { maxInFlight: number; maxWaiting: number }): RequestGate {
  let inFlight = 0;
  const queue: Array<() => void> = [];
  // A finishing request hands its slot straight to the next waiter, so no newcomer can slip in between.
  const release = () => {
    const next = queue.shift();
    if (next) next();
    else inFlight--;
  };
  return {
    async run(work, signal) {
      if (inFlight >= options.maxInFlight) {
        if (queue.length >= options.maxWaiting) {
          throw new CloudtaserError(
            'CT_TUNNEL_PROTOCOL',
            `${options.maxInFlight} requests in flight and ${options.maxWaiting} waiting; retry shortly`,
          );
        }
        await new Promise<void>((resolve, reject) => {
          const start = () => {
            signal?.removeEventListener('abort', onAbort);
            resolve();
          };
          const onAbort = () => {
            const at = queue.indexOf(start);
            if (at >= 0) queue.splice(at, 1);
            reject(new CloudtaserError('CT_CANCELLED', 'the request was cancelled while waiting'));
          };
          signal?.addEventListener('abort', onAbort, { once: true });
          queue.push(start);
        });
      } else {
        inFlight++;
      }
      try {
        return await work();
      } finally {
        release();
      }
    },
    get inFlight() {
      return inFlight;
    },
    get waiting() {
      return queue.length;
    },
  };
}
