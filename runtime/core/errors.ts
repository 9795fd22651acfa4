/**
 * The brand every copy of the class puts on its errors. A bundle may carry a second copy of this module (the
 * provider compiles its OpenBao and Kubernetes code as separate lazy chunks), and an error from one copy is not
 * an instance of the other's class; a symbol from the global registry is the same in every copy.
 */
const CLOUDTASER_ERROR = Symbol.for('cloudtaser.error');

/**
 * The machine-readable facts a code carries in `details`, for the codes whose callers read them. Other codes
 * carry free-form facts (address, path, status...). Adding a field is fine; renaming one breaks callers.
 */
export interface ErrorDetailsByCode {
  /** The code the bridge refused with (CT_ALREADY_INITIALIZED, CT_ATTESTATION_FAILED, ...). */
  CT_BOOTSTRAP_REFUSED: { readonly refusal: ErrorCode };
  /** Which check refused the token (see AttestationFailure: 'expired', 'audience', 'unknown-key', ...). */
  CT_ATTESTATION_FAILED: { readonly reason: string };
  /** The fingerprint being registered and the one that owns the namespace prefix. */
  CT_NAMESPACE_CLASH: { readonly fingerprint: string; readonly owner: string };
}

export type ErrorDetails<C extends ErrorCode = ErrorCode> = Record<string, unknown> &
  (C extends keyof ErrorDetailsByCode ? ErrorDetailsByCode[C] : unknown);

/** The constructor's options: `details` is required, and typed, for the codes ErrorDetailsByCode lists. */
export type CloudtaserErrorOptions<C extends ErrorCode> = {
  readonly cause?: unknown;
} & (C extends keyof ErrorDetailsByCode
  ? { readonly details: ErrorDetails<C> }
  : { readonly details?: Record<string, unknown> });

/**
 * One root error class for the whole project. Callers switch on `code`, never on message text.
 * Messages say what went wrong and what to do; they never contain a token, a key or a secret value.
 * `instanceof CloudtaserError` and isCloudtaserError recognise the errors of every copy of this class by its brand.
 */
export class CloudtaserError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C;
  /** Extra machine-readable facts (address, path, fingerprint...). Never secrets. */
  readonly details: ErrorDetails<C>;

  constructor(
    code: C,
    message: string,
    ...[options]: C extends keyof ErrorDetailsByCode
      ? [CloudtaserErrorOptions<C>]
      : [CloudtaserErrorOptions<C>?]
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CloudtaserError';
    this.code = code;
    this.details = (options?.details ?? {}) as ErrorDetails<C>;
    // Not enumerable: logs and JSON of an error stay as they were.
    Object.defineProperty(this, CLOUDTASER_ERROR, { value: true });
  }

  /**
   * Answers `instanceof CloudtaserError` by the brand, so an error from another copy of the class passes.
   * A subclass keeps the ordinary prototype check (`instanceof FunctionArgumentError`).
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    // biome-ignore lint/complexity/noThisInStatic: `this` is the class on the right of instanceof, maybe a subclass
    if (this !== CloudtaserError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return (
      typeof value === 'object' &&
      value !== null &&
      (value as Record<symbol, unknown>)[CLOUDTASER_ERROR] === true
    );
  }

  /** The one-line form the CLI prints: `CT_CODE: message`. */
  toLine(): string {
    return `${this.code}: ${this.message}`;
  }
}

/** True for an error of any copy of CloudtaserError (see the brand), with `code` when one is given. */
export function isCloudtaserError<C extends ErrorCode = ErrorCode>(
  err: unknown,
  code?: C,
): err is CloudtaserError<C> {
  return err instanceof CloudtaserError && (code === undefined || err.code === code);
}

/**
 * Every stable code the project emits. Adding one is fine; renaming or reusing one is a breaking change.
 * The comment says when it happens.
 */
export const ErrorCodes = {
  // input validation
  CT_INVALID_FINGERPRINT: 'the fingerprint is not a kube-system namespace UID (a UUID)',
  CT_INVALID_ARGUMENT: 'a flag, option or property has an invalid value',
  CT_TOKEN_MISSING: 'no secret-store token was given by flag or environment',
  // OpenBao
  CT_OPENBAO_UNREACHABLE: 'the OpenBao address could not be reached (DNS, connection refused, reset)',
  CT_OPENBAO_TOKEN_EXPIRES:
    'the OpenBao token a long-running process was given will expire and cannot be renewed (any more): give it AppRole or Kubernetes auth, or a periodic token',
  CT_OPENBAO_TIMEOUT: 'OpenBao did not answer in time',
  CT_OPENBAO_TLS: 'the TLS handshake with OpenBao failed (unknown CA, wrong name)',
  CT_OPENBAO_PERMISSION_DENIED:
    'OpenBao refused the token (missing, expired, revoked, or policy denies the path)',
  CT_OPENBAO_SEALED: 'OpenBao is sealed or a standby that cannot serve the request',
  CT_OPENBAO_NAMESPACES_UNSUPPORTED: 'the OpenBao server has no namespaces (needs OpenBao >= 2.3)',
  CT_OPENBAO_NAMESPACE_NOT_FOUND: 'an OpenBao namespace named in the request does not exist',
  CT_OPENBAO_CAS_MISMATCH: 'a check-and-set write lost: the record changed or already exists',
  CT_OPENBAO_BAD_REQUEST: 'OpenBao rejected the request as invalid',
  CT_OPENBAO_NOT_FOUND: 'the OpenBao path does not exist',
  CT_OPENBAO_ERROR: 'OpenBao answered with an unexpected error',
  CT_OPENBAO_BAD_RESPONSE: 'OpenBao answered with a body this client cannot read',
  // OpenBao in HA and under quotas
  CT_OPENBAO_READ_LAG:
    'OpenBao did not show a write of this process within the bound (an HA standby lagging the active node)',
  CT_OPENBAO_REDIRECT:
    'OpenBao redirected a request without a usable Location, to another scheme, or in a loop',
  CT_OPENBAO_RATE_LIMITED: 'an OpenBao rate-limit quota kept refusing the request (429) after the retries',
  // registration
  CT_NAMESPACE_CLASH: 'the cluster namespace prefix already belongs to another fingerprint',
  CT_NOT_REGISTERED: 'the fingerprint is not registered',
  CT_ALREADY_INITIALIZED:
    'the cluster allows no bootstrap now: it has bootstrapped once, or a re-arm window passed unused (re-arm to allow another)',
  CT_REGISTRATION_CORRUPT: 'a registration record exists but is unreadable or inconsistent',
  CT_REGISTRATION_INCOMPLETE:
    'a cluster has records but no registration record (a deregistration that stopped half-way); deregister again',
  // discovery (issue 16)
  CT_DISCOVERY_CONTENDED:
    'the discovery journal kept changing under check-and-set (too many registrations at the same moment)',
  // migration and least privilege (issue 11)
  CT_MIGRATION_DISABLED:
    "the bridge refused a migration: the cluster's registration does not enable it (source register --migration, migration_enabled, RegisteredCluster 'migration')",
  CT_MIGRATION_CONFLICT:
    'secret/k8s/<namespace>/<name> already holds a value this migration did not write (or could not record as its own, or wrote over an hour ago); nothing was written and the Secret is kept',
  CT_MIGRATION_UNVERIFIED:
    'the value read back from OpenBao did not prove the migrated write (missing, deleted or different); the Secret is kept',
  CT_MIGRATION_TOO_LARGE:
    "a marked Secret's data encodes to more than a migration request may carry through the tunnel; it is skipped and kept",
  // Kubernetes
  CT_KUBE_CONFIG: 'no usable Kubernetes connection could be loaded (kubeconfig, context, in-cluster)',
  CT_KUBE_UNREACHABLE: 'the Kubernetes API server could not be reached',
  CT_KUBE_UNAUTHORIZED: 'the Kubernetes API server rejected the credentials (401)',
  CT_KUBE_CREDENTIAL_PLUGIN:
    "the kubeconfig's exec credential plugin failed, was stopped at the time limit or printed no usable credential; no request reached the API server",
  CT_KUBE_FORBIDDEN: 'the Kubernetes credentials lack permission (403)',
  CT_KUBE_NOT_FOUND: 'the Kubernetes object does not exist',
  CT_KUBE_CONFLICT: 'a Kubernetes precondition failed (the object changed)',
  CT_KUBE_ERROR: 'the Kubernetes API answered with an unexpected error',
  CT_TOKENREVIEW_UNAVAILABLE:
    "OpenBao's TokenReviews do not reach the cluster's broker (no bridge serves them with --tokenreview-listen, OpenBao cannot reach the bridge's endpoint, or the replica it reached holds no tunnel to the cluster and has no --tokenreview-peers), so pod logins are refused with 403 although the tunnel works",
  CT_KUBE_TLS: 'the TLS handshake with the Kubernetes API server failed (unknown CA, wrong name, expired)',
  // PKI
  CT_PKI_INVALID_CSR: 'a certificate signing request is malformed or its signature does not verify',
  CT_PKI_INVALID_CERT: 'a certificate is malformed, expired, or not issued by the expected CA',
  CT_ATTESTATION_FAILED:
    'a bootstrap attestation token was refused (signature, issuer, subject, audience, expiry)',
  CT_PKI_CA_PIN_MISMATCH: 'the CA offered does not match the pinned caSha256',
  // beacon and tunnel
  CT_BEACON_UNREACHABLE: 'the beacon could not be reached',
  CT_BEACON_REJECTED: 'the beacon closed the connection with a reason',
  CT_BEACON_PROTOCOL: 'a peer broke the beacon protocol (malformed, oversized or slow announce)',
  CT_BEACON_LIMIT: 'a beacon bound was hit (waiters per hash, per address, total; idle; unmatched wait)',
  CT_BEACON_DRAINING:
    'the beacon replica is shutting down (a rollout, a scale-down): it pairs nothing more and ends its relays after the time it names; dial another replica',
  CT_BOOTSTRAP_REFUSED: 'the bridge refused the bootstrap',
  CT_BOOTSTRAP_PROTOCOL: 'a bootstrap message was malformed, oversized or unexpected',
  CT_DISCOVERY_NEWER_FORMAT:
    'the discovery journal is in a format a newer cloudtaser wrote; this version leaves it as it is (writers refuse, bridges list every cluster periodically): upgrade it',
  CT_TUNNEL_CLOSED: 'the operational tunnel closed',
  CT_BROKER_REPLACED:
    "the bridge closed a live broker's tunnel because a newer bootstrap of the cluster replaced its key: expected when the operator restarted; otherwise someone may have taken the cluster over: anyone who knows the fingerprint while a re-arm is open or without attestation, with attestation only someone who can get the operator's service-account tokens",
  CT_REARMED:
    'the cluster was re-armed while its broker was connected: the bridge closed the tunnel so that broker bootstraps again at once and spends the re-arm',
  CT_RENEWAL_REFUSED:
    "a renewal of the broker's certificates through the tunnel was refused (by the bridge: a CSR for another key than the tunnel's, a broker a newer bootstrap replaced, too soon after the last one; by the broker: an answer it cannot use); the broker keeps its certificate and tries again later",
  CT_TUNNEL_DRAINED:
    'the peer closed the tunnel with nothing in flight (a bridge or broker shutting down): requests not yet answered were never processed and are sent again on the next tunnel',
  CT_TUNNEL_PROTOCOL:
    'a tunnel peer sent a malformed or unexpected frame, or broke a tunnel bound (frame, body, streams, time)',
  CT_PODAPI_NOT_ALLOWED:
    "a pod asked the pod API for a request off its allow-list (said after OpenBao's own 403 text; no OpenBao policy was consulted)",
  CT_PODAPI_LIMIT:
    'a pod API bound was hit: connections open (in all, per pod address), request body bytes held (in all, per pod address), a body that did not arrive in time, or a body larger than one request may carry',
  CT_PODAPI_RESPONSE_TOO_LARGE:
    "OpenBao's answer to a pod request is larger than one tunnel answer carries (960 KiB): a retry gets the same; read a smaller secret or list a narrower path",
  CT_HTTP_REFUSED:
    "Node's HTTP parser refused a request before any handler saw it (pod API, webhook, TokenReview listener, probes): not well-formed HTTP/1.1, a method no server of ours knows, headers over 16 KiB (431), a request that did not arrive in time (408); answered with the status and this code, nothing forwarded, the connection closed",
  // HTTP proxies (HTTPS_PROXY, HTTP_PROXY, --beacon-proxy): the message names the proxy, never its credentials
  CT_PROXY_UNREACHABLE:
    'the HTTP proxy itself could not be reached (its name does not resolve, connection refused, reset, timeout)',
  CT_PROXY_AUTH:
    'the HTTP proxy asked for credentials (407): none were in the proxy URL, they were wrong, or it wants a scheme other than Basic',
  CT_PROXY_REFUSED:
    'the HTTP proxy would not open the tunnel: it answered CONNECT with a non-2xx status (403 policy, 502/503/504 cannot reach the destination) or closed without an answer',
  // trust that holds against rogue bridges, hostile beacons and restarts (issue 11)
  CT_BEACON_UNAUTHENTICATED:
    'the beacon refused a bridge: its outer TLS presented no client certificate from one of the bridge CAs the beacon trusts (or it used the plain door)',
  CT_BEACON_IDENTITY:
    'the bridge has no usable beacon client certificate: the beacon client CA is missing from OpenBao (run `cloudtaser-cli source beacon-ca`) or its certificate files are unusable',
  CT_TRUST_RECORD_UNAVAILABLE:
    "the broker cannot read or write the cluster's trust record (the ConfigMap holding the accepted CA hash); it stays closed until it can",
  // provider
  CT_PROVIDER_PROTOCOL: 'Terraform sent something the provider cannot decode',
  CT_PROVIDER_NOT_CONFIGURED: 'the provider was used before it was configured',
  // provider: configuration, adoption and functions (issue 15)
  CT_PROVIDER_CONFIG_UNKNOWN:
    'the provider configuration depends on values Terraform only knows during apply, and this step needs them now',
  CT_REGISTRATION_EXISTS:
    'the cluster is already registered in OpenBao by another owner or under another address of this configuration (the detail says which, and what to do)',
  // packaging and command line
  CT_PEER_DEPENDENCY_MISSING:
    'an optional peer dependency the entry point needs is not installed (cloudtaser/constructs: cdktf or cdktn, and constructs)',
  // generic
  // Operations (metrics and `doctor`).
  CT_WEBHOOK_REFUSED:
    'the webhook refused a pod it should inject (bridge not connected, bad cloudtaser annotations); counted in metrics',
  CT_DOCTOR_BROKEN_LINK:
    '`cloudtaser-cli target doctor` / `source doctor` found a broken link on the path; the exit code says which',
  CT_LISTEN_FAILED:
    'a listener could not open its address (in use by another process, a port below 1024 without the privilege, an address this host does not have)',
  CT_INTERNAL: 'a bug: an invariant did not hold',
  CT_CANCELLED: 'the operation was cancelled',
} as const;

export type ErrorCode = keyof typeof ErrorCodes;
