/**
 * Bounded concurrency for opening beacon connections. A bridge keeps one waiting connection per room and
 * beacon replica; when a replica restarts, thousands of them redial at once. Each opening connection costs the
 * replica a TLS handshake and counts against its `maxPendingPerAddress` until it has announced, so an unbounded
 * burst from one bridge is refused by the very replica it is trying to reach. An admission lets at most
 * `maxOpening` dials be in their opening phase (connect, outer TLS, announce) at a time; the rest queue in order.
 * A dial leaves the opening phase when the beacon says `waiting`, when it is paired, or when it fails.
 */
import { CloudtaserError } from '../core/errors.js';

export interface DialAdmission {
  /** Resolves with a release function once a slot is free; rejects with CT_CANCELLED if `signal` aborts first. */
  acquire(signal?: AbortSignal): Promise<() => void>;
  /** Dials in their opening phase now. */
  readonly opening: number;
  /** Dials waiting for a slot. */
  readonly queued: number;
}

export function createDialAdmission(maxOpening: number): DialAdmission {
  if (!Number.isSafeInteger(maxOpening) || maxOpening < 1)
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `the number of beacon dials opening at once must be an integer >= 1, not ${maxOpening}`,
    );
  let opening = 0;
  const queue: Array<() => void> = [];
  const releaser = () => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // A finished dial hands its slot straight to the next in line, so the bound holds without a gap.
      const next = queue.shift();
      if (next) next();
      else opening--;
    };
  };
  return {
    acquire(signal) {
      if (signal?.aborted)
        return Promise.reject(new CloudtaserError('CT_CANCELLED', 'the beacon dial was cancelled'));
      if (opening < maxOpening) {
        opening++;
        return Promise.resolve(releaser());
      }
      return new Promise((resolve, reject) => {
        const start = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve(releaser());
        };
        const onAbort = () => {
          const at = queue.indexOf(start);
          if (at >= 0) queue.splice(at, 1);
          reject(new CloudtaserError('CT_CANCELLED', 'the beacon dial was cancelled while queued'));
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        queue.push(start);
      });
    },
    get opening() {
      return opening;
    },
    get queued() {
      return queue.length;
    },
  };
}
