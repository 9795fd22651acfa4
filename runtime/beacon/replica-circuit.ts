/**
 * One circuit per beacon replica for a party that keeps many connections to it (the bridge: one waiter per room
 * and cluster). While the replica is unreachable, a single waiter probes it with a short backoff and the others
 * wait; the first connection that gets through wakes them all at once (their opening is then bounded by the
 * dial admission). Without it, every waiter backs off on its own: a dead replica is hammered by thousands of
 * dials, and when it returns the waiters trickle back over their longest backoff instead of at once.
 */
import { type BackoffOptions, createBackoff, sleep } from '../core/backoff.js';

/** One dial's pass through the circuit; report its outcome once, and always call `done()`. */
export interface CircuitTicket {
  /** This dial probes an unreachable replica (the others wait for its outcome). */
  readonly probe: boolean;
  /** The dial reached the replica (its `waiting` or `paired` frame). */
  reached(): void;
  /** The dial could not reach the replica (refused, reset, timed out). */
  unreachable(): void;
  /** Ends the pass; a probe that reported nothing (cancelled) hands probing to a waiting caller. */
  done(): void;
}

export interface ReplicaCircuit {
  /**
   * Resolves when the caller may dial: at once while the replica is reachable; while it is not, after the probe
   * delay for the one caller that probes, and after a probe got through for the others. Resolves early when
   * `signal` aborts (the caller checks it).
   */
  beforeDial(signal: AbortSignal): Promise<CircuitTicket>;
  readonly state: 'reachable' | 'unreachable';
  /** Callers waiting for a probe to get through. */
  readonly waiting: number;
}

export function createReplicaCircuit(probeBackoff: BackoffOptions): ReplicaCircuit {
  let down = false;
  let probing = false;
  const backoff = createBackoff(probeBackoff);
  const sleepers = new Set<() => void>();
  const wakeAll = () => {
    for (const wake of [...sleepers]) wake();
  };
  const wakeOne = () => {
    const first = sleepers.values().next();
    if (!first.done) first.value();
  };

  const ticket = (probe: boolean): CircuitTicket => {
    let settled = false;
    return {
      probe,
      reached() {
        if (settled) return;
        settled = true;
        if (probe) probing = false;
        if (!down) return;
        down = false;
        backoff.reset();
        wakeAll();
      },
      unreachable() {
        if (settled) return;
        settled = true;
        down = true;
        // A failed probe keeps the role free; its own next pass (or a waiting caller's) probes again.
        if (probe) {
          probing = false;
          wakeOne();
        }
      },
      done() {
        if (settled) return;
        settled = true;
        if (probe) {
          probing = false;
          wakeOne();
        }
      },
    };
  };

  return {
    async beforeDial(signal) {
      while (down && !signal.aborted) {
        if (!probing) {
          probing = true;
          await sleep(backoff.next(), signal);
          return ticket(true);
        }
        await new Promise<void>((resolve) => {
          const wake = () => {
            sleepers.delete(wake);
            signal.removeEventListener('abort', wake);
            resolve();
          };
          sleepers.add(wake);
          signal.addEventListener('abort', wake, { once: true });
        });
      }
      return ticket(false);
    },
    get state() {
      return down ? 'unreachable' : 'reachable';
    },
    get waiting() {
      return sleepers.size;
    },
  };
}
