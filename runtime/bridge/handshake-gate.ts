/**
 * Paces the handshakes the bridge does in one room. The operational room's hash is public (the CA's hash), so
 * anyone can pair with the bridge there, over and over; each pairing costs the bridge a TLS handshake. After a
 * handshake that failed, the room's waiters return to the beacon only after a delay that doubles with each
 * further failure (up to a cap), and one success resets it. The flooder then meets an empty room instead of
 * our CPU. A live tunnel is untouched: it was paired earlier and does not go through the gate.
 */
import { backoffCeiling } from '../core/backoff.js';
import { sleep } from '../tunnel/index.js';

export interface HandshakeGateOptions {
  /** Delay after the first failure. */
  readonly initialMs: number;
  /** Largest delay. */
  readonly maxMs: number;
}

export interface HandshakeGate {
  /** Resolves when a waiter may go back to the beacon (at once unless recent handshakes failed). */
  ready(signal: AbortSignal): Promise<void>;
  failed(): void;
  /**
   * The peer left before the handshake completed (it paired on another replica too): not a failure, but paced the
   * same way while nothing succeeds, so a relay that pairs and drops us in a loop cannot make us spin.
   */
  abandoned(): void;
  succeeded(): void;
  /** Consecutive failures so far. */
  readonly failures: number;
}

export function createHandshakeGate(options: HandshakeGateOptions): HandshakeGate {
  let failures = 0;
  let abandons = 0;
  let openAt = 0;
  // The n-th failure (or abandon) in a row waits the n-th backoff ceiling (no jitter: one gate, one waiter set).
  const pause = (count: number) => backoffCeiling(count - 1, options);
  return {
    async ready(signal) {
      // Several waiters (one per beacon replica) may wait on the same gate; each sleeps to the same moment.
      while (!signal.aborted && performance.now() < openAt) await sleep(openAt - performance.now(), signal);
    },
    failed() {
      failures++;
      openAt = Math.max(openAt, performance.now() + pause(failures));
    },
    abandoned() {
      abandons++;
      openAt = Math.max(openAt, performance.now() + pause(abandons));
    },
    succeeded() {
      failures = 0;
      abandons = 0;
      openAt = 0;
    },
    get failures() {
      return failures;
    },
  };
}
