/**
 * Bounded concurrency for opening beacon connections. A bridge keeps one waiting connection per room and
 * beacon replica; when a replica restarts, thousands of them redial at once. Each opening connection costs the
 * replica a TLS handshake and counts against its `maxPendingPerAddress` until it has announced, so an unbounded
 * burst from one bridge is refused by the very replica it is trying to reach. An admission lets at most
 * `maxOpening` dials be in their opening phase (connect, outer TLS, announce) at a time; the rest queue in order.
 * A dial leaves the opening phase when the beacon says `waiting`, when it is paired, or when it fails.
 *
 * Queued dials go by priority, then in order: after a replica restarts, the bridge's waiters in the operational
 * rooms (the ones brokers are redialing into right now) open before those in the init rooms, which only a
 * rare re-bootstrap needs, so the fleet is operational again after half the handshakes.
 */
import { CloudtaserError } from '../core/errors.js';

export interface DialAdmission {
  /**
   * Resolves with a release function once a slot is free; rejects with CT_CANCELLED if `signal` aborts first.
   * Lower `priority` goes first among the queued (default 0).
   */
  acquire(signal?: AbortSignal, priority?: number): Promise<() => void>;
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
  /** Queued starts, kept sorted by priority (stable: in arrival order within one priority). */
  const queue: Array<{ start: () => void; priority: number }> = [];
  const releaser = () => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // A finished dial hands its slot straight to the next in line, so the bound holds without a gap.
      const next = queue.shift();
      if (next) next.start();
      else opening--;
    };
  };
  return {
    acquire(signal, priority = 0) {
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
        const entry = { start, priority };
        const onAbort = () => {
          const at = queue.indexOf(entry);
          if (at >= 0) queue.splice(at, 1);
          reject(new CloudtaserError('CT_CANCELLED', 'the beacon dial was cancelled while queued'));
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        // Behind every queued dial of the same or a higher priority: few priorities, so a scan from the end.
        let at = queue.length;
        while (at > 0 && queue[at - 1].priority > priority) at--;
        queue.splice(at, 0, entry);
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

/** The same admission, every dial at one priority (so a dialer that knows nothing of priorities uses it). */
export function withPriority(admission: DialAdmission, priority: number): DialAdmission {
  return {
    acquire: (signal) => admission.acquire(signal, priority),
    get opening() {
      return admission.opening;
    },
    get queued() {
      return admission.queued;
    },
  };
}
