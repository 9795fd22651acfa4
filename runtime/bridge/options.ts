/**
 * What a bridge is started with and what it reports: its options, timing, status and handle. The bridge itself
 * (discovery, waiters, sessions) is in bridge.ts; this is the surface the CLI, the tests and embedders see.
 */
import type { Duplex } from 'node:stream';
import type { BeaconClientCertificate } from '../beacon/index.js';
import type { Logger } from '../core/log.js';
import type { OpenBaoClient, TokenLoginState } from '../openbao/index.js';
import type { RelayPartyOptions, TunnelHandler, TunnelMux } from '../tunnel/index.js';
import { DEFAULT_BEACON_DIAL_CONCURRENCY, DEFAULT_BRIDGE_TIMING } from './defaults.js';
import type { BridgeMetrics } from './metrics.js';
import type { ShardMembershipOptions, ShardMembershipStatus } from './shards.js';
import type { BridgeTokenReviewOptions } from './tokenreview-service.js';

export interface BridgeTiming {
  /** How often OpenBao is listed for clusters. @default 10000 */
  readonly pollIntervalMs: number;
  /** Bound for each bootstrap / handshake step. @default 10000 */
  readonly stepTimeoutMs: number;
  /** First redial delay after a beacon failure. @default 500 */
  readonly backoffInitialMs: number;
  /** Redial delay cap. @default 30000 */
  readonly backoffMaxMs: number;
  /**
   * A waiting connection is replaced after a jittered half to all of this, even if nothing happened: below the
   * beacon's own bound for an unmatched bridge (`--bridge-wait-ms`, 600 s), so the beacon never has to expire it.
   * A replica that vanished without a FIN/RST reaching us is noticed sooner, by its missing keepalive pings
   * (replica-dial.ts). Each refresh is a new mutual-TLS handshake on both ends per room, so a short interval is a
   * CPU cost that grows with the fleet (at 60 s: ~6 ms per cluster per minute on each side). @default 540000
   */
  readonly waitRefreshMs: number;
  /**
   * Every this long the bridge lists all clusters even though the discovery journal says nothing changed
   * (anti-entropy against writers that do not journal); 0 = never. @default 21600000 (6 h)
   */
  readonly discoveryResyncMs: number;
  /** Pause of a room's waiters after one failed handshake there; doubles with each further failure. @default 250 */
  readonly handshakeBackoffInitialMs: number;
  /** Cap of that pause. @default 15000 */
  readonly handshakeBackoffMaxMs: number;
  /**
   * How long a cluster's trust material (CA, bridge certificate) is used from memory before the poll marks it for
   * a fresh read: pairings never read OpenBao themselves. Discovery already reloads it when a registration
   * changes it, so this is anti-entropy only, as long as the discovery resync. @default 21600000 (6 h)
   */
  readonly trustRefreshMs: number;
  /**
   * On close: how long open tunnels get to reach a moment with nothing in flight (each closes then, and its broker
   * resends what it had not had answered to another replica) before they are cut. @default 10000
   */
  readonly closeGraceMs: number;
  /**
   * On close, the first part of that grace: each tunnel's broker is asked to move first (make before break: it
   * opens its next tunnel to another bridge replica while this one serves, then closes this one itself). A tunnel
   * still open after this long (no other replica waits for its cluster, or a broker before 0.2.0) closes the
   * moment nothing is in flight on it, within the rest of the grace. @default 5000
   */
  readonly closeMoveWaitMs: number;
  /**
   * Lifetime of the certificates the bridge signs for a broker, at bootstrap and at each renewal through the tunnel
   * (fractions allowed: tests use seconds). @default 365 (LIFETIME_DAYS.broker)
   */
  readonly brokerCertificateDays: number;
  /** At most one broker certificate renewal per cluster this often (a broker asking in a loop). @default 60000 */
  readonly renewalMinIntervalMs: number;
}

export { DEFAULT_BRIDGE_TIMING };

export interface BridgeOptions extends RelayPartyOptions {
  /** OpenBao client authenticated as the bridge (its own token or AppRole login, never an admin token). */
  readonly openbao: OpenBaoClient;
  /** @default 'cloudtaser' */
  readonly namespaceRoot?: string;
  readonly timing?: Partial<BridgeTiming>;
  /**
   * Serves broker requests other than the built-in ones (pod API `/openbao/v1/...` forwarded to OpenBao in the
   * cluster namespace, and migration writes `/migration/v1/...` made with the bridge's own token).
   */
  readonly handler?: TunnelHandler;
  /** CA of OpenBao's certificate, for the pod API forwarder (which keeps its own connection pool). */
  readonly openbaoCaCertPem?: string;
  /**
   * How long a pod's request forwarded to OpenBao may take before the pod gets OpenBao's own 503 shape (it
   * retries as it would against OpenBao). @default 15000
   */
  readonly podRequestTimeoutMs?: number;
  /**
   * Pass each pod's address to OpenBao as `X-Forwarded-For` (OpenBao's listener must trust the bridge's addresses:
   * `x_forwarded_for_authorized_addrs`). @default false: OpenBao sees every pod arrive from the bridge
   */
  readonly openbaoForwardedFor?: boolean;
  /**
   * Serve the per-cluster endpoint OpenBao's Kubernetes auth calls instead of an API server
   * (`/clusters/<fingerprint>/apis/authentication.k8s.io/v1/tokenreviews`, `/clusters/<fingerprint>/api/v1/
   * namespaces/<ns>`), HTTPS by default, only for OpenBao's reviewer credential, forwarding to the replica that
   * holds the cluster's tunnel. @default off
   */
  readonly tokenReview?: BridgeTokenReviewOptions;
  /**
   * The client certificate the bridge presents to the beacon, asked again for every dial (it is renewed):
   * see startMintedBeaconIdentity and watchBeaconIdentityFiles. @default none (only an anonymous-bridge beacon
   * lets such a bridge wait)
   */
  readonly beaconIdentity?: { current(): BeaconClientCertificate | undefined };
  readonly observePairedStream?: (stream: Duplex, room: 'init' | 'operational') => Duplex;
  /**
   * Waiting connections opening at once towards one beacon replica (connect, outer TLS, announce). Keep it
   * below the beacon's `--max-pending-per-address` (64 by default). @default 32
   */
  readonly beaconDialConcurrency?: number;
  /**
   * Count what happens into these metrics (createBridgeMetrics) and serve them as `/metrics` on the health port.
   * @default no metrics
   */
  readonly metrics?: BridgeMetrics;
  /**
   * Serve only the clusters of the shards this replica holds a Kubernetes Lease for (docs/scaling.md), for fleets
   * larger than one replica holds. @default every replica serves every cluster
   */
  readonly sharding?: Omit<ShardMembershipOptions, 'onChange' | 'logger'>;
  /** How the bridge's own OpenBao login is doing (a renewed AppRole or Kubernetes auth token), for /status. */
  readonly openbaoLogin?: () => TokenLoginState;
  readonly logger?: Logger;
}

export { DEFAULT_BEACON_DIAL_CONCURRENCY };

export interface BridgeClusterStatus {
  readonly fingerprintPrefix: string;
  readonly initialized: boolean;
  /** Waiting connections (rooms x beacon replicas). */
  readonly waiting: number;
  readonly tunnels: number;
  /** Consecutive failed handshakes in the operational room (a flood shows here, paced by the bridge). */
  readonly failedHandshakes: number;
  /** The last bootstrap this replica refused for the cluster, until one is signed or a tunnel opens. */
  readonly lastBootstrapRefusal?: { readonly code: string; readonly at: string; readonly why?: string };
  /** When a newer bootstrap last replaced a live broker's tunnel here (CT_BROKER_REPLACED). */
  readonly lastTunnelReplacedAt?: string;
  /**
   * The broker at the other end of each open tunnel here: the SHA-256 (64 lowercase hex) of the SubjectPublicKeyInfo
   * DER of its certificate in the mutual-TLS session, the same hash as that broker's own /status `brokerKeySha256`,
   * so with two brokers of one cluster the one holding the tunnel can be told (source doctor compares them).
   */
  readonly tunnelBrokers?: readonly BridgeTunnelBroker[];
}

/** One open tunnel of a cluster, by the broker key at its other end. */
export interface BridgeTunnelBroker {
  readonly brokerKeySha256: string;
  /** When the tunnel opened (ISO 8601). */
  readonly since: string;
  /** The beacon replica it runs through. */
  readonly beaconIp?: string;
}

export interface BridgeStatus {
  readonly clusters: BridgeClusterStatus[];
  readonly lastPollAt?: string;
  readonly lastPollError?: string;
  /** Discovery journal generation the cluster list is current with. */
  readonly discoveryGeneration?: number;
  readonly bootstrapsSigned: number;
  readonly bootstrapsRefused: number;
  /** Why the beacon refused this bridge's identity, while it does (CT_BEACON_UNAUTHENTICATED / CT_BEACON_IDENTITY). */
  readonly beaconIdentityError?: string;
  /** With sharding: the shards this replica serves and how the Lease rounds go. */
  readonly shards?: ShardMembershipStatus;
  /** The bridge's own OpenBao login: `failing` with the code while a new token cannot be had. */
  readonly openbaoLogin?: TokenLoginState;
  /** With the TokenReview listener: how many clusters' reviewer credentials it holds (at most the registered). */
  readonly tokenReview?: { readonly cachedReviewers: number };
}

export interface BridgeHandle {
  status(): BridgeStatus;
  /** Live tunnels, optionally for one fingerprint. */
  tunnels(fingerprint?: string): TunnelMux[];
  /** Polls OpenBao now instead of waiting for the interval. */
  pollNow(): Promise<void>;
  readonly healthUrl?: string;
  /** Where the TokenReview endpoint listens, when enabled. */
  readonly tokenReviewUrl?: string;
  /** From now on /readyz answers 503; everything else keeps serving until close(). */
  drain(): void;
  close(): Promise<void>;
}
