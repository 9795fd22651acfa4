/**
 * The bridge's defaults, free of heavy imports: `bridge run --help` shows them without loading the bridge.
 * options.ts and discovery.ts re-export them.
 */
import { IN_FLIGHT_GRACE_MS } from '../core/shutdown.js';
import { LIFETIME_DAYS } from '../pki/lifetimes.js';
import type { BridgeTiming } from './options.js';

export const DEFAULT_DISCOVERY_RESYNC_MS = 6 * 3_600_000;

export const DEFAULT_BRIDGE_TIMING: BridgeTiming = Object.freeze({
  pollIntervalMs: 10_000,
  stepTimeoutMs: 10_000,
  backoffInitialMs: 500,
  backoffMaxMs: 30_000,
  waitRefreshMs: 540_000,
  discoveryResyncMs: DEFAULT_DISCOVERY_RESYNC_MS,
  handshakeBackoffInitialMs: 250,
  handshakeBackoffMaxMs: 15_000,
  trustRefreshMs: DEFAULT_DISCOVERY_RESYNC_MS,
  closeGraceMs: IN_FLIGHT_GRACE_MS,
  closeMoveWaitMs: IN_FLIGHT_GRACE_MS / 2,
  brokerCertificateDays: LIFETIME_DAYS.broker,
  renewalMinIntervalMs: 60_000,
});

/** Below the beacon's default `maxPendingPerAddress` (64), so a redial burst is never refused for its size. */
export const DEFAULT_BEACON_DIAL_CONCURRENCY = 32;
