import { MAX_TIMER_MS } from '../core/backoff.js';
import { CloudtaserError } from '../core/index.js';

/** Every bound the beacon enforces. Each one has a CLI flag of the same meaning (see BEACON_LIMIT_FLAGS). */
export interface BeaconLimits {
  /** From TCP accept to a complete announce, outer TLS handshake included. */
  readonly announceTimeoutMs: number;
  /** Largest announce body (JSON bytes, without the 2-byte length); never above 512. */
  readonly maxAnnounceBytes: number;
  /** How long a broker may wait unmatched; brokers redial soon, so this is short. */
  readonly brokerWaitMs: number;
  /** How long a bridge may wait unmatched; bridges park for clusters that come up later. */
  readonly bridgeWaitMs: number;
  /** Interval of `{"t":"ping"}` frames to waiting connections, so NATs and proxies keep them open. */
  readonly keepaliveIntervalMs: number;
  /** Waiting connections for one hash and one role. */
  readonly maxWaitingPerHash: number;
  /** Waiting connections from one source address (a bridge waits once per cluster and replica). */
  readonly maxWaitingPerAddress: number;
  /** Waiting connections in total. */
  readonly maxWaiting: number;
  /** Connections from one source address that have not announced yet; over it the oldest closes unread. */
  readonly maxPendingPerAddress: number;
  /**
   * Connections that have not announced yet, from every address; over it the oldest closes unread. Each costs a TLS
   * socket (about 20 KB, and the allocator keeps the peak), so this bounds what strangers can make the beacon hold.
   */
  readonly maxPending: number;
  /** Open connections of every kind in total; over it new ones close at accept. */
  readonly maxConnections: number;
  /** A paired connection with no bytes either way for this long is closed. */
  readonly pairedIdleMs: number;
  /** Largest WebSocket message accepted from a client. */
  readonly webSocketMaxPayloadBytes: number;
  /**
   * Pairings per room hash per second (a bucket of this many, refilled at this rate). A room sees a few
   * pairings a minute in normal use; over the bound an arriving broker is refused and an arriving bridge waits,
   * so flooding a room costs the flooder, not the bridge behind it.
   */
  readonly maxPairingsPerHashPerSecond: number;
}

export const DEFAULT_BEACON_LIMITS: BeaconLimits = Object.freeze({
  announceTimeoutMs: 10_000,
  maxAnnounceBytes: 512,
  brokerWaitMs: 30_000,
  bridgeWaitMs: 600_000,
  keepaliveIntervalMs: 20_000,
  maxWaitingPerHash: 8,
  maxWaitingPerAddress: 1024,
  maxWaiting: 10_000,
  maxPendingPerAddress: 64,
  maxPending: 4096,
  maxConnections: 20_000,
  pairedIdleMs: 900_000,
  webSocketMaxPayloadBytes: 1024 * 1024,
  maxPairingsPerHashPerSecond: 5,
});

/** The flag for each bound, its help text, and the smallest value that still makes sense. */
export const BEACON_LIMIT_FLAGS: ReadonlyArray<{
  readonly key: keyof BeaconLimits;
  readonly flag: string;
  readonly description: string;
  readonly min: number;
  readonly max?: number;
}> = [
  {
    key: 'announceTimeoutMs',
    flag: '--announce-timeout-ms',
    description: 'time from accept to announce',
    min: 100,
  },
  {
    key: 'maxAnnounceBytes',
    flag: '--max-announce-bytes',
    description: 'largest announce body',
    min: 64,
    max: 512,
  },
  { key: 'brokerWaitMs', flag: '--broker-wait-ms', description: 'unmatched wait for a broker', min: 100 },
  { key: 'bridgeWaitMs', flag: '--bridge-wait-ms', description: 'unmatched wait for a bridge', min: 100 },
  { key: 'keepaliveIntervalMs', flag: '--keepalive-ms', description: 'ping interval while waiting', min: 50 },
  {
    key: 'maxWaitingPerHash',
    flag: '--max-waiting-per-hash',
    description: 'waiters per hash and role',
    min: 1,
  },
  {
    key: 'maxWaitingPerAddress',
    flag: '--max-waiting-per-address',
    description: 'waiters per source address',
    min: 1,
  },
  { key: 'maxWaiting', flag: '--max-waiting', description: 'waiters in total', min: 1 },
  {
    key: 'maxPendingPerAddress',
    flag: '--max-pending-per-address',
    description: 'not-yet-announced connections per source address',
    min: 1,
  },
  {
    key: 'maxPending',
    flag: '--max-pending',
    description: 'not-yet-announced connections in total',
    min: 1,
  },
  { key: 'maxConnections', flag: '--max-connections', description: 'open connections in total', min: 2 },
  {
    key: 'pairedIdleMs',
    flag: '--idle-timeout-ms',
    description: 'idle time of a paired connection',
    min: 100,
  },
  {
    key: 'webSocketMaxPayloadBytes',
    flag: '--ws-max-payload',
    description: 'largest WebSocket message',
    min: 1024,
  },
  {
    key: 'maxPairingsPerHashPerSecond',
    flag: '--max-pairings-per-hash-per-second',
    description: 'pairings per room hash per second',
    min: 1,
  },
];

/** Merges overrides over the defaults and refuses values that would disable a bound. */
export function resolveLimits(overrides: Partial<BeaconLimits> = {}): BeaconLimits {
  const merged: Record<string, number> = { ...DEFAULT_BEACON_LIMITS };
  for (const { key, min, max: stated } of BEACON_LIMIT_FLAGS) {
    // A duration beyond a Node timer's reach would fire after 1 ms: every waiter expired at once.
    const max = stated ?? (key.endsWith('Ms') ? MAX_TIMER_MS : undefined);
    const value = overrides[key];
    if (value === undefined) continue;
    if (!Number.isSafeInteger(value) || value < min || (max !== undefined && value > max)) {
      throw new CloudtaserError(
        'CT_INVALID_ARGUMENT',
        `beacon limit '${key}' is ${value}; it must be an integer >= ${min}${max === undefined ? '' : ` and <= ${max}`}`,
      );
    }
    merged[key] = value;
  }
  return Object.freeze(merged) as unknown as BeaconLimits;
}
