/**
 * What a broker is started with and what it hands back: its options, timing and handle. The broker itself (the
 * bootstrap and reconnect loop) is in broker.ts; this is the surface the CLI, the tests and embedders see.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from '../core/log.js';
import { IN_FLIGHT_GRACE_MS } from '../core/shutdown.js';
import type { KubeClient } from '../kube/index.js';
import type { SecretMigrator } from '../migration/migrator.js';
import type { RelayPartyOptions, TunnelHandler, TunnelMux } from '../tunnel/index.js';
import type { BrokerMetrics } from './metrics.js';
import type { BrokerPodApiOptions } from './pod-api.js';
import type { BrokerPhase, BrokerStatus } from './status.js';
import type { TrustRecordStore } from './trust-record.js';
import type { BrokerWebhookOptions } from './webhook.js';

/**
 * The Kubernetes calls the broker makes (runtime/kube/permissions.ts `operatorKubeAccess`): TokenReview and
 * namespace reads for OpenBao, Secrets + Events for migration, a TokenRequest for its own service account when
 * bootstrap is attested, and its webhook configuration's caBundle.
 */
export type BrokerKubeApi = Pick<
  KubeClient,
  'createTokenReview' | 'listSecrets' | 'deleteSecret' | 'createEvent'
> &
  Partial<
    Pick<
      KubeClient,
      | 'getNamespace'
      | 'createServiceAccountToken'
      | 'getMutatingWebhookConfiguration'
      | 'patchMutatingWebhookConfiguration'
    >
  >;

/** Lifetime asked for the attestation token: the API server's minimum; the bridge refuses anything over 1 h. */
export const ATTESTATION_TOKEN_SECONDS = 600;

export interface BrokerAttestationOptions {
  /** The broker's own service account (the operator's), which the registration names. */
  readonly serviceAccount: { readonly namespace: string; readonly name: string };
  /** Where to request the token. @default the broker's `kube` */
  readonly kube?: Pick<KubeClient, 'createServiceAccountToken'>;
}

export interface BrokerMigrationOptions {
  /** @default every namespace */
  readonly namespaces?: readonly string[];
  /** @default 10000 */
  readonly intervalMs?: number;
  /** Test hook between the verified write and the delete. */
  readonly afterVerifiedWrite?: (secret: { namespace: string; name: string }) => Promise<void> | void;
}

export interface BrokerTiming {
  /** Bound for each bootstrap / handshake step. @default 10000 */
  readonly stepTimeoutMs: number;
  /** First reconnect delay. @default 500 */
  readonly backoffInitialMs: number;
  /**
   * Reconnect delay cap. Kept short because a broker that lost its beacon should be back soon after the beacon
   * is (a replica restart); one dial per cluster every few seconds costs a dead address nothing. @default 5000
   */
  readonly backoffMaxMs: number;
  /**
   * Retry interval while rejected (already initialized), so a re-arm heals without a restart; each wait is
   * drawn uniformly from 0 to this, so refused brokers of many clusters do not return together. @default 60000
   */
  readonly rejectedRetryMs: number;
  /**
   * A dial that has not paired after this long is abandoned and retried, so a beacon replica that vanished
   * without a FIN/RST reaching us cannot strand the broker. Keep it above the beacon's broker wait. @default 45000
   */
  readonly pairTimeoutMs: number;
  /** After this many operational dials without a bridge, try the init room once (the cluster may be re-registered). @default 3 */
  readonly reBootstrapAfterFailures: number;
  /**
   * On close: how long pod API and webhook requests in flight (and the bridge's requests on the tunnel) get to
   * finish before connections are cut; no new connection is accepted meanwhile. @default 10000
   */
  readonly closeGraceMs: number;
  /**
   * The broker renews its certificates through the tunnel when less than this is left (or a third of their
   * validity, if that is shorter): the bridge signs new ones for the same keys. @default 7776000000 (90 days)
   */
  readonly certificateRenewBeforeMs: number;
  /** After a renewal failed, the next attempt comes after a jittered half to all of this. @default 3600000 (1 h) */
  readonly certificateRenewRetryMs: number;
}

export const DEFAULT_BROKER_TIMING: BrokerTiming = Object.freeze({
  stepTimeoutMs: 10_000,
  backoffInitialMs: 500,
  backoffMaxMs: 5_000,
  rejectedRetryMs: 60_000,
  pairTimeoutMs: 45_000,
  reBootstrapAfterFailures: 3,
  closeGraceMs: IN_FLIGHT_GRACE_MS,
  certificateRenewBeforeMs: 90 * 86_400_000,
  certificateRenewRetryMs: 3_600_000,
});

export interface BrokerOptions extends RelayPartyOptions {
  /** The cluster fingerprint, or how to read it (the kube-system UID). Retried with backoff on failure. */
  readonly fingerprint: string | ((signal: AbortSignal) => Promise<string>);
  /**
   * Admin pin: SHA-256 (hex) of the cluster CA DER. It wins over the trust record, and is written into it (the
   * log says when that replaces a different record).
   */
  readonly caSha256?: string;
  /**
   * Where the first CA accepted without a pin is recorded, so that from then on (restarts and re-bootstraps
   * included) the broker behaves as pinned; see configMapTrustRecord. `broker run` always gives one.
   * @default process memory only: a restarted broker would trust the first CA again (a warning says so)
   */
  readonly trustRecord?: TrustRecordStore;
  readonly timing?: Partial<BrokerTiming>;
  /**
   * Serves bridge requests other than the built-in TokenReview (`POST /kube/apis/authentication.k8s.io/v1/
   * tokenreviews`, answered with `kube`). @default 404
   */
  readonly handler?: TunnelHandler;
  /** Kubernetes API access with the broker's own service account. Needed for TokenReview and migration. */
  readonly kube?: BrokerKubeApi;
  /** Serve the OpenBao-compatible pod API (asks the bridge for its certificate at bootstrap). @default off */
  readonly podApi?: BrokerPodApiOptions;
  /** Serve the mutating webhook. @default off */
  readonly webhook?: BrokerWebhookOptions;
  /**
   * Attested bootstrap: send a service-account token bound to the CSR's key, so the bridge can verify the
   * broker runs as the operator in this cluster, and allow a re-bootstrap after a restart. @default off
   */
  readonly attestation?: BrokerAttestationOptions;
  /** Migrate Secrets annotated cloudtaser.io/migrate=true (needs `kube`). @default off */
  readonly migration?: BrokerMigrationOptions;
  /** Sees every stream the beacon pairs us with; tests wrap it to capture what the relay carries. */
  readonly observePairedStream?: (stream: Duplex, room: 'init' | 'operational') => Duplex;
  /**
   * Count what happens into these metrics (createBrokerMetrics) and serve them as `/metrics` on the health port.
   * @default no metrics
   */
  readonly metrics?: BrokerMetrics;
  /**
   * The pod this broker runs in, shown in /status so `source doctor` can name which operator pod holds the tunnel
   * when two brokers of one cluster run. `broker run` passes POD_NAME, else the host name (a pod's name).
   */
  readonly podName?: string;
  readonly logger?: Logger;
}

export interface BrokerHandle {
  status(): BrokerStatus;
  /** The live tunnel, when operational. */
  tunnel(): TunnelMux | undefined;
  /** Where the pod API listens (as bound), once it runs. */
  podApiListenUrl(): string | undefined;
  readonly webhookUrl?: string;
  readonly migrator?: SecretMigrator;
  /** Resolves when the broker reaches `phase`; rejects after `timeoutMs`. */
  waitForPhase(phase: BrokerPhase, timeoutMs?: number): Promise<BrokerStatus>;
  readonly healthUrl?: string;
  /** From now on /readyz answers 503; everything else keeps serving until close(). */
  drain(): void;
  close(): Promise<void>;
}
