/** What the broker reports about itself: /status, waitForPhase, the phase metric. */
import type { MigrationStatus } from '../migration/migrator.js';
import type { WebhookCaBundleStatus } from '../webhook/ca-bundle.js';

export type BrokerPhase =
  | 'starting'
  | 'bootstrapping'
  | 'rejected'
  | 'connecting'
  | 'operational'
  | 'reconnecting'
  | 'stopped';

export interface BrokerStatus {
  readonly phase: BrokerPhase;
  /** Human-readable: what the broker is doing or why it is stuck, and what to do. */
  readonly reason: string;
  /** When the phase last changed (ISO 8601). */
  readonly since: string;
  /** The stable code of the last failure, if any. */
  readonly lastErrorCode?: string;
  /** The message of that failure: kept while the broker retries, so `reason` can move on to the current step. */
  readonly lastError?: string;
  /** First 12 hex characters of the operational room (the CA hash) once bootstrapped. */
  readonly operationalHashPrefix?: string;
  /** The pod this broker runs in (POD_NAME, else the host name), when known. */
  readonly pod?: string;
  /**
   * SHA-256 (64 lowercase hex) of the SubjectPublicKeyInfo DER of the certificate this broker presents in the
   * tunnel, as certificate-pinning tools print it; once it has a certificate. The bridge's /status shows the same
   * hash for the broker at the other end of each tunnel it holds, so with two brokers of one cluster (CT_BROKER_REPLACED)
   * the one whose hash matches holds the tunnel. Shown whole: it is a public key's hash and opens no room.
   */
  readonly brokerKeySha256?: string;
  /** That certificate's serial number (hex, as openssl prints it); a renewal changes it, the key stays. */
  readonly certificateSerial?: string;
  /**
   * When this broker's certificate expires (ISO 8601): from its last bootstrap or renewal. The broker renews it
   * through the tunnel before then (`certificateRenewBeforeMs`, 90 days by default).
   */
  readonly certificateNotAfter?: string;
  /** When the certificate was last renewed through the tunnel (ISO 8601); absent before the first renewal. */
  readonly certificateRenewedAt?: string;
  /** The last renewal that failed, until one succeeds: its code and message (a bridge before 0.2.0: a 404). */
  readonly certificateRenewalError?: { readonly code: string; readonly reason: string; readonly at: string };
  /** The beacon replica the live tunnel runs through. */
  readonly beaconIp?: string;
  readonly tunnel?: { readonly since: string; readonly lastPingRttMs?: number };
  /** The pod API URL for pods, once operational with a pod API certificate. */
  readonly podApiUrl?: string;
  /** The cluster CA (public) pods trust for the pod API, once operational. */
  readonly podApiCaPem?: string;
  /** The webhook's serving CA (public), for the MutatingWebhookConfiguration's caBundle. */
  readonly webhookCaPem?: string;
  /** Whether the webhook configuration trusts that CA yet, when the broker keeps it current. */
  readonly webhookCaBundle?: WebhookCaBundleStatus;
  /** Secret migration, when it runs: whether the bridge accepts it for this cluster, and the last code. */
  readonly migration?: MigrationStatus;
  /**
   * The TokenReviews OpenBao asks this broker for on every pod login: `failing` with the code (CT_KUBE_FORBIDDEN
   * when the service account lost system:auth-delegator) until one succeeds again. Absent before the first.
   */
  readonly tokenReview?: {
    readonly state: 'ok' | 'failing';
    readonly since: string;
    readonly lastErrorCode?: string;
    readonly lastError?: string;
  };
  /** Why the last tunnel ended, as the peer or the broker said it; kept until a tunnel is up again. */
  readonly lastTunnelClose?: { readonly code: string; readonly reason: string; readonly at: string };
}
