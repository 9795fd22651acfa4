/**
 * A beacon in its own process, for tests and benchmarks that need a real process boundary: kill -9 of a
 * replica, RSS and open descriptors of the beacon alone. Started by `startBeaconProcess` (processes.ts) with
 * an IPC channel; configured by the CLOUDTASER_BEACON_CHILD environment variable (JSON).
 */
import { readdirSync } from 'node:fs';
import { createBeacon } from '../../runtime/beacon/index.js';
import { createLogger } from '../../runtime/core/index.js';
import { issueSelfSignedSync } from '../../runtime/pki/index.js';

export interface BeaconProcessConfig {
  readonly host: string;
  readonly port: number;
  readonly plain?: boolean;
  readonly limits?: Record<string, number>;
  readonly tls?: { readonly certPem: string; readonly keyPem: string };
  /** Log level for the child's JSON lines on stderr. @default 'silent' */
  readonly logLevel?: string;
  /**
   * CA certificates of the bridges' client identity, as production runs the beacon (`--bridge-ca`): a bridge
   * then proves itself in the outer handshake. @default any client may wait as a bridge
   */
  readonly bridgeCaPems?: readonly string[];
}

export interface BeaconProcessReport {
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly openFds: number;
  readonly stats: Record<string, number>;
}

const config = JSON.parse(process.env.CLOUDTASER_BEACON_CHILD ?? '{}') as BeaconProcessConfig;
const tls =
  config.tls ??
  issueSelfSignedSync({ commonName: 'load beacon', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
const logger = createLogger('beacon', { level: config.logLevel ?? 'silent' });
const beacon = await createBeacon({
  host: config.host,
  port: config.port,
  plain: config.plain ?? true,
  tls,
  // The load tests measure relaying, not who may wait: any client may wait as a bridge, unless the benchmark
  // gives the bridges' CA (the fleet storm measures the handshakes production makes).
  ...(config.bridgeCaPems?.length
    ? { bridgeCaPems: [...config.bridgeCaPems] }
    : { allowAnonymousBridges: true }),
  limits: config.limits,
  metrics: false,
  logger,
});

const gc = (globalThis as { gc?: () => void }).gc;

function report(): BeaconProcessReport {
  gc?.();
  const memory = process.memoryUsage();
  return {
    rssBytes: memory.rss,
    heapUsedBytes: memory.heapUsed,
    openFds: readdirSync('/proc/self/fd').length,
    // The counters only (the per-reason map is not a figure a load report compares).
    stats: (({ rejectionsByReason: _byReason, ...counters }) => counters)(beacon.stats()),
  };
}

process.on('message', (message: { type: string; id: number }) => {
  if (message.type === 'report') process.send?.({ type: 'report', id: message.id, report: report() });
  if (message.type === 'close') void beacon.close().then(() => process.exit(0));
});
// The parent going away must not leave a beacon holding the port.
process.on('disconnect', () => process.exit(0));
process.send?.({ type: 'listening', port: beacon.port, certPem: tls.certPem });
