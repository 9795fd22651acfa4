/**
 * The bridge's side of the init room: TLS client with the bridge certificate and the cluster CA chain; read
 * {fingerprint, csr}; re-check OpenBao at that moment; sign; record `initialized` with cas=0; and only after
 * that write succeeded send the certificates. Every other outcome sends a refusal, never certificates.
 * When the registration carries attestation settings, a valid service-account token bound to the CSR's key is
 * required, and it also allows a re-bootstrap of an initialized cluster (an operator restart).
 */
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { type AttestationPolicy, verifyAttestation } from '../attestation/index.js';
import { CloudtaserError, type ErrorCode, isCloudtaserError } from '../core/errors.js';
import { operationalHash } from '../core/hashes.js';
import type { Logger } from '../core/log.js';
import type { OpenBaoClient } from '../openbao/index.js';
import { certificateSha256, LIFETIME_DAYS, parseCsr, signCsr } from '../pki/index.js';
import {
  alreadyInitializedMessage,
  type ClusterTrust,
  getClusterStatus,
  isRearmExpired,
  markClusterInitialized,
} from '../registration/index.js';
import {
  awaitSecure,
  type BootstrapRequest,
  INIT_ALPN,
  INNER_TLS_MIN_VERSION,
  readBootstrapMessage,
  writeBootstrapMessage,
} from '../tunnel/index.js';

export interface ServeBootstrapOptions {
  readonly fingerprint: string;
  readonly namespaceRoot: string;
  readonly openbao: OpenBaoClient;
  readonly trust: ClusterTrust;
  readonly stepTimeoutMs: number;
  /** Lifetime of the broker and pod API certificates signed. @default LIFETIME_DAYS.broker */
  readonly brokerCertificateDays?: number;
  readonly signal?: AbortSignal;
  readonly logger: Logger;
}

export type BootstrapOutcome =
  | {
      readonly signed: true;
      /** An attested re-bootstrap replaced an earlier one. */
      readonly replaced: boolean;
      /** SHA-256 of the SPKI of the broker key signed for: the only key its operational room accepts now. */
      readonly brokerKeySha256?: string;
    }
  | {
      readonly signed: false;
      readonly code: ErrorCode;
      /** Which attestation check refused (`expired`, `not-yet-valid`, `unknown-key`, ...), for the fix said. */
      readonly why?: string;
    };

export async function serveBootstrap(
  stream: Duplex,
  options: ServeBootstrapOptions,
): Promise<BootstrapOutcome> {
  const { trust, logger } = options;
  const socket = tlsConnect({
    socket: stream,
    cert: `${trust.bridgeCertPem.trim()}\n${trust.ca.certPem.trim()}\n`,
    key: trust.bridgeKeyPem,
    minVersion: INNER_TLS_MIN_VERSION,
    ALPNProtocols: [INIT_ALPN],
    // The broker's init certificate is a throw-away self-signed one: nothing to verify. The broker proves
    // itself by knowing the fingerprint; attestation (later) strengthens that.
    rejectUnauthorized: false,
  });
  try {
    await awaitSecure(socket, {
      timeoutMs: options.stepTimeoutMs,
      code: 'CT_BOOTSTRAP_PROTOCOL',
      what: 'the init TLS handshake with the broker',
      signal: options.signal,
      transport: stream,
    });
    const request = (await readBootstrapMessage(socket, {
      timeoutMs: options.stepTimeoutMs,
      signal: options.signal,
      expect: ['bootstrap.request'],
    })) as BootstrapRequest;

    const refuse = (code: ErrorCode, reason: string, why?: string): BootstrapOutcome => {
      writeBootstrapMessage(socket, { v: 1, type: 'bootstrap.refused', code, reason });
      // Logged by the caller, at warn and summarised (a refusal needs someone to act).
      logger.debug({ event: 'bridge.bootstrap_refusing', code }, 'bootstrap refused');
      return { signed: false, code, ...(why ? { why } : {}) };
    };

    if (request.fingerprint !== options.fingerprint) {
      return refuse('CT_BOOTSTRAP_REFUSED', 'the fingerprint does not belong to this init room');
    }
    // Re-read OpenBao now: the poll that put us in this room may be stale.
    let status: Awaited<ReturnType<typeof getClusterStatus>>;
    try {
      status = await getClusterStatus(options.openbao, {
        fingerprint: request.fingerprint,
        namespaceRoot: options.namespaceRoot,
      });
    } catch (err) {
      // OpenBao down or refusing the bridge: say so to the broker with the code. Closing the stream (as before)
      // showed it "the peer closed before sending a whole bootstrap message", a protocol error it could not act on.
      if (isCloudtaserError(err) && err.code.startsWith('CT_OPENBAO_'))
        return refuse(
          err.code,
          `the bridge cannot read this cluster's registration from OpenBao now (${err.code}); the broker tries again`,
        );
      throw err;
    }
    if (!status.registered || status.operationalHash !== operationalHash(trust.ca.certDer)) {
      return refuse(
        'CT_NOT_REGISTERED',
        `cluster ${request.fingerprint} is not registered with this secret store; run \`cloudtaser-cli source register\``,
      );
    }
    const policy = status.attestation;
    // A re-arm is for the operator's own broker, right after it: one left unused past its window (the restart did
    // not happen, or went to another cluster) must not stay open to whoever learns the fingerprint later. An
    // attested cluster needs no such window: its bootstrap proves the operator's service account.
    if (!policy && !status.initialized && status.rearmExpiresAt && isRearmExpired(status.rearmExpiresAt)) {
      logger.warn(
        { event: 'bridge.rearm_expired', rearmExpiredAt: status.rearmExpiresAt },
        'bootstrap refused: the re-arm expired before a broker bootstrapped',
      );
      // The refusal goes to whoever holds the fingerprint, maybe not the operator's broker: the same text as for a
      // cluster that bootstrapped, with no time (that the operator re-armed, and when, is theirs to know; the log
      // line above and `source status` say it).
      return refuse('CT_ALREADY_INITIALIZED', alreadyInitializedMessage(request.fingerprint));
    }
    // The broker key this request is for, parsed once (undefined for a CSR that does not parse: refused below).
    const brokerKeySha256 = csrKeySha256(request.csr);
    let resumed = false;
    let attestationIat: number | undefined;
    if (policy) {
      const checked = await checkAttestation(request, policy);
      const refusal =
        'code' in checked ? checked : replayedAttestation(checked.issuedAt, brokerKeySha256, status);
      if (refusal) {
        logger.info(
          { event: 'bridge.attestation_refused', code: refusal.code, reason: refusal.why },
          'bootstrap attestation refused',
        );
        return refuse(refusal.code, refusal.reason, refusal.why);
      }
      attestationIat = (checked as { issuedAt: number }).issuedAt;
      // The same key as recorded: the broker's earlier answer was lost; sign again without a rewrite.
      resumed = status.initialized && status.initializedBrokerKeySha256 === brokerKeySha256;
    } else if (status.initialized) {
      // The record may name this very key: the broker's earlier attempt was recorded but its answer was lost.
      // Only the key's holder can sign a CSR for it, so signing again for it gives nothing to anyone else.
      const sameKey = status.initializedBrokerKeySha256 === brokerKeySha256;
      if (!sameKey) return refuse('CT_ALREADY_INITIALIZED', alreadyInitializedMessage(request.fingerprint));
      resumed = true;
    }
    // Trust on first use writes with cas=0; an attested re-bootstrap replaces exactly the version it read.
    const replacesVersion = policy && status.initialized ? status.initializedVersion : undefined;

    let brokerCertPem: string;
    try {
      brokerCertPem = signBrokerCsr(trust, request.csr, options.brokerCertificateDays);
    } catch (err) {
      if (isCloudtaserError(err, 'CT_PKI_INVALID_CSR')) return refuse('CT_PKI_INVALID_CSR', err.message);
      throw err;
    }
    // Signed before `initialized` is recorded, so a bad second request cannot use up the one bootstrap.
    let podApiCertPem: string | undefined;
    if (request.podApiCsr !== undefined) {
      try {
        podApiCertPem = signPodApiCsr(trust, request.podApiCsr, options.brokerCertificateDays);
      } catch (err) {
        if (isCloudtaserError(err, 'CT_PKI_INVALID_CSR')) return refuse('CT_PKI_INVALID_CSR', err.message);
        throw err;
      }
    }
    try {
      if (!resumed) {
        await markClusterInitialized(options.openbao, {
          fingerprint: request.fingerprint,
          namespaceRoot: options.namespaceRoot,
          brokerCertSha256: certificateSha256(brokerCertPem),
          brokerKeySha256,
          replacesVersion,
          attestationIat,
          logger,
        });
      }
    } catch (err) {
      if (isCloudtaserError(err, 'CT_ALREADY_INITIALIZED')) {
        // Under attestation a lost check-and-set only means another attested bootstrap won the same moment.
        const reason =
          replacesVersion !== undefined
            ? 'another attested bootstrap of this cluster was recorded at the same moment; the broker retries'
            : err.message;
        return refuse('CT_ALREADY_INITIALIZED', reason);
      }
      const code = err instanceof CloudtaserError ? err.code : 'CT_INTERNAL';
      logger.warn(
        { event: 'bridge.initialized_write_failed', code },
        'could not record the bootstrap; refusing it',
      );
      return refuse(
        'CT_BOOTSTRAP_REFUSED',
        'the bridge could not record the bootstrap in OpenBao; the broker will retry',
      );
    }
    writeBootstrapMessage(socket, {
      v: 1,
      type: 'bootstrap.accepted',
      caCert: trust.ca.certPem,
      brokerCert: brokerCertPem,
      ...(podApiCertPem ? { podApiCert: podApiCertPem } : {}),
    });
    logger.info(
      {
        event: 'bridge.bootstrap_signed',
        brokerCertSha256Prefix: certificateSha256(brokerCertPem).slice(0, 12),
        attested: policy !== undefined,
        replaced: replacesVersion !== undefined,
        resumed,
      },
      'bootstrap signed and recorded',
    );
    return { signed: true, replaced: replacesVersion !== undefined, brokerKeySha256 };
  } finally {
    socket.end();
    setTimeout(() => socket.destroy(), 1000).unref();
  }
}

const MAX_REFUSAL_REASON_CHARS = 1000;

/**
 * Checks the request's attestation token against the registration's policy, offline. The token must be bound
 * to the broker CSR's key and, when a pod API CSR comes along, to that key too (one token, two audiences), so
 * no part of the request can be swapped. Returns the refusal, or undefined when the token is good.
 */
async function checkAttestation(
  request: BootstrapRequest,
  policy: AttestationPolicy,
): Promise<AttestationRefusal | { issuedAt: number }> {
  const account = `${policy.serviceAccount.namespace}/${policy.serviceAccount.name}`;
  if (request.attestation === undefined) {
    return {
      code: 'CT_ATTESTATION_FAILED',
      why: 'missing',
      // Told to whoever holds the fingerprint: not which service account the registration names (the operator
      // finds it in `source status`), only the flag.
      reason:
        "bootstrap attestation refused (missing): this cluster's registration requires a service-account token and the broker sent none; run the broker with --attestation (Helm: operator.broker.attestation.enabled=true) as the operator's service account the registration names (`cloudtaser-cli source status`)",
    };
  }
  const keys: string[] = [];
  try {
    keys.push(parseCsr(request.csr).publicKeySha256);
    if (request.podApiCsr !== undefined) keys.push(parseCsr(request.podApiCsr).publicKeySha256);
  } catch (err) {
    if (isCloudtaserError(err, 'CT_PKI_INVALID_CSR'))
      return { code: 'CT_PKI_INVALID_CSR', why: 'csr', reason: err.message };
    throw err;
  }
  let issuedAt = 0;
  try {
    for (const key of keys) issuedAt = (await verifyAttestation(request.attestation, key, policy)).issuedAt;
  } catch (err) {
    if (!isCloudtaserError(err, 'CT_ATTESTATION_FAILED')) throw err;
    const why = err.details.reason;
    const reason = `${err.message}${ATTESTATION_ADVICE[why]?.(account) ?? ''}`;
    return { code: 'CT_ATTESTATION_FAILED', why, reason: reason.slice(0, MAX_REFUSAL_REASON_CHARS) };
  }
  return { issuedAt };
}

interface AttestationRefusal {
  readonly code: ErrorCode;
  readonly reason: string;
  /** Short label for logs and metrics. */
  readonly why: string;
}

/**
 * A valid token can still be an old one: a request captured from an earlier broker (within the token's
 * lifetime) would move the cluster back to that broker's key and cut the current broker off. So a bootstrap
 * for another key than the recorded one must bring a token issued after the recorded bootstrap's token.
 */
function replayedAttestation(
  issuedAt: number,
  brokerKeySha256: string | undefined,
  status: { initialized: boolean; initializedBrokerKeySha256?: string; initializedAttestationIat?: number },
): AttestationRefusal | undefined {
  if (!status.initialized || status.initializedAttestationIat === undefined) return undefined;
  if (status.initializedBrokerKeySha256 === brokerKeySha256) return undefined;
  if (issuedAt > status.initializedAttestationIat) return undefined;
  return {
    code: 'CT_ATTESTATION_FAILED',
    why: 'replayed',
    reason:
      'bootstrap attestation refused (replayed): the token was issued before the one behind the current bootstrap, so this request is older than the broker now trusted; a genuine broker mints a fresh token on retry',
  };
}

/** What the operator can do about each refusal (unknown-key's message already says "refresh the keys"). */
const ATTESTATION_ADVICE: Record<string, (account: string) => string> = {
  signature: () =>
    "; the registered keys are not this cluster's: register again with its /openid/v1/jwks (`source register --attestation-jwks <file>`)",
  issuer: () =>
    "; register again with the cluster's issuer (`source register --attestation-issuer <url>`, the issuer of /.well-known/openid-configuration)",
  subject: (account) =>
    `; run the operator as ${account}, or register again with --attestation-service-account <namespace>/<name>`,
  audience: () =>
    '; the token was minted for another key (a replay or a substituted request); a genuine broker mints a fresh one on retry',
  'not-yet-valid': () => '; check the clocks of the cluster and the bridge',
  malformed: () => '; the broker sent something that is not a service-account token',
  algorithm: () => '; the broker sent something that is not a service-account token',
  crit: () => '; the broker sent something that is not a service-account token',
  'key-mismatch': () =>
    "; the registered key with this kid does not fit the token's algorithm: register again with the cluster's /openid/v1/jwks (`source register --attestation-jwks <file>`)",
  'weak-key': () =>
    "; rotate the cluster's service-account signing key to RSA >= 2048 bits or EC, then register again with its /openid/v1/jwks",
};

/**
 * The broker's tunnel certificate, at bootstrap and at each renewal: the signer decides name and usage; the CSR
 * only contributes its (verified) public key.
 */
export function signBrokerCsr(
  trust: ClusterTrust,
  csrPem: string,
  days: number = LIFETIME_DAYS.broker,
): string {
  return signCsr(trust.ca, csrPem, { commonName: 'cloudtaser-broker', extKeyUsage: ['serverAuth'], days })
    .certPem;
}

/** At most this many names on the pod API certificate: a Service has four spellings, plus a few extras. */
const MAX_POD_API_NAMES = 16;
const DNS_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;

/**
 * The pod API certificate: serverAuth only, the broker's requested DNS names when each is a plain host name (no
 * wildcard, no IP). It chains to the cluster CA, which only this cluster's pods trust, so the names cannot be
 * used against anything else.
 */
export function signPodApiCsr(
  trust: ClusterTrust,
  csrPem: string,
  days: number = LIFETIME_DAYS.broker,
): string {
  const requested = parseCsr(csrPem).dnsNames;
  const names = requested.filter((name) => DNS_NAME.test(name));
  if (names.length === 0 || names.length !== requested.length || names.length > MAX_POD_API_NAMES) {
    throw new CloudtaserError(
      'CT_PKI_INVALID_CSR',
      `the pod API request must name 1 to ${MAX_POD_API_NAMES} plain DNS names (the operator Service's), no wildcards`,
    );
  }
  return signCsr(trust.ca, csrPem, {
    commonName: names[0],
    dnsNames: names,
    extKeyUsage: ['serverAuth'],
    days,
  }).certPem;
}

/** SHA-256 of a CSR's public key, or undefined for a CSR that does not parse (it is refused when signed). */
function csrKeySha256(csr: string): string | undefined {
  try {
    return parseCsr(csr).publicKeySha256;
  } catch {
    return undefined;
  }
}
