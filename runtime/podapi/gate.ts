/**
 * Bounds how many requests one side keeps in flight on the tunnel (the mux refuses more than its stream limit)
 * and how many may wait for a slot; beyond that callers are told to retry instead of piling up memory. Waiters
 * are served in turn by key (the pod address on the pod API): a pod that queues hundreds of requests delays
 * another pod's by one turn, not by all of them.
 */
import { CloudtaserError } from '../core/errors.js';

export interface RequestGate {
  /** Runs `work` once a slot is free; `key` names whose turn it is among waiters (one key: first come, first served). */
  run<T>(work: () => Promise<T>, signal?: AbortSignal, key?: string): Promise<T>;
  readonly inFlight: number;
  readonly waiting: number;
}

export function createRequestGate(options: { maxInFlight: number; maxWaiting: number }): RequestGate {
  let inFlight = 0;
  let waiting = 0;
  /** Waiters per key, in arrival order; `turns` holds each key with waiters once, next turn first. */
  const queues = new Map<string, Array<() => void>>();
  const turns: string[] = [];
  // A finishing request hands its slot straight to the next waiter, so no newcomer can slip in between.
  const release = () => {
    const key = turns.shift();
    if (key === undefined) {
      inFlight--;
      return;
    }
    const queue = queues.get(key)!;
    const next = queue.shift()!;
    waiting--;
    if (queue.length > 0) turns.push(key);
    else queues.delete(key);
    next();
  };
  return {
    async run(work, signal, key = '') {
      if (inFlight >= options.maxInFlight) {
        if (waiting >= options.maxWaiting) {
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
            const queue = queues.get(key);
            const at = queue ? queue.indexOf(start) : -1;
            if (queue && at >= 0) {
              queue.splice(at, 1);
              waiting--;
              if (queue.length === 0) {
                queues.delete(key);
                turns.splice(turns.indexOf(key), 1);
              }
            }
            reject(new CloudtaserError('CT_CANCELLED', 'the request was cancelled while waiting'));
          };
          signal?.addEventListener('abort', onAbort, { once: true });
          const queue = queues.get(key);
          if (queue) queue.push(start);
          else {
            queues.set(key, [start]);
            turns.push(key);
          }
          waiting++;
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
      return waiting;
    },
  };
}
