/**
 * The bridge's side of a broker certificate renewal (protocol: runtime/tunnel/renew.ts). It runs inside one
 * operational tunnel, so the asker is the broker that tunnel authenticated: the bridge signs only for the key that
 * tunnel's certificate carries, only while that key is the one the latest bootstrap recorded, and at most once per
 * `minIntervalMs` per cluster. Nothing is written to OpenBao: the bootstrap's record names the key, which stays.
 */
import { CloudtaserError, isCloudtaserError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { certificateSha256, parseCsr } from '../pki/index.js';
import type { ClusterTrust } from '../registration/index.js';
import {
  parseRenewRequest,
  type RenewAnswer,
  type TunnelReply,
  type TunnelRequest,
} from '../tunnel/index.js';
import { signBrokerCsr, signPodApiCsr } from './bootstrap.js';

export interface RenewalContext {
  /** SHA-256 of the SPKI of the certificate this tunnel's broker presented: the only key signed for. */
  readonly tunnelKeySha256: string | undefined;
  /** The broker key the latest bootstrap recorded (undefined: none recorded, after a re-arm). */
  readonly recordedKeySha256: () => string | undefined;
  /** The cluster CA (with its key) and bridge certificate, as the bridge holds them. */
  readonly trust: () => Promise<ClusterTrust>;
  /** Lifetime of the certificates signed, in days. */
  readonly days: number;
  /** When this cluster's last renewal was signed (performance.now()), and a setter for it. */
  readonly lastSignedAt: { value: number };
  readonly minIntervalMs: number;
  readonly logger: Logger;
}

export type RenewalOutcome = 'renewed' | 'refused' | 'too_soon' | 'unavailable';

export async function serveCertificateRenewal(
  request: TunnelRequest,
  context: RenewalContext,
): Promise<{ reply: TunnelReply; outcome: RenewalOutcome }> {
  const refuse = (status: number, outcome: RenewalOutcome, message: string) => {
    context.logger.warn(
      { event: 'bridge.certificate_renewal_refused', code: 'CT_RENEWAL_REFUSED', status, reason: message },
      "refused to renew a broker's certificate",
    );
    return { reply: errorReply(status, message), outcome };
  };
  let csrKeySha256: string;
  let parsed: ReturnType<typeof parseRenewRequest>;
  try {
    parsed = parseRenewRequest(request.body);
    csrKeySha256 = parseCsr(parsed.csr).publicKeySha256;
    if (parsed.podApiCsr !== undefined) parseCsr(parsed.podApiCsr);
  } catch (err) {
    if (isCloudtaserError(err, 'CT_RENEWAL_REFUSED') || isCloudtaserError(err, 'CT_PKI_INVALID_CSR'))
      return refuse(400, 'refused', err.message);
    throw err;
  }
  // The tunnel's own key, nothing else: a broker cannot get a second key certified (one a copy of it could use).
  if (context.tunnelKeySha256 === undefined || csrKeySha256 !== context.tunnelKeySha256)
    return refuse(
      403,
      'refused',
      "CT_RENEWAL_REFUSED: the request is for another key than the one this tunnel's certificate carries; only that key is renewed",
    );
  const recorded = context.recordedKeySha256();
  if (recorded !== undefined && recorded !== csrKeySha256)
    return refuse(
      403,
      'refused',
      'CT_BROKER_REPLACED: a newer bootstrap of this cluster replaced this broker key; its certificate is not renewed',
    );
  const sinceLastMs = performance.now() - context.lastSignedAt.value;
  if (sinceLastMs < context.minIntervalMs) {
    const retryAfterS = Math.ceil((context.minIntervalMs - sinceLastMs) / 1000);
    return {
      reply: errorReply(
        429,
        `CT_RENEWAL_REFUSED: this cluster's broker certificate was renewed less than ${Math.round(context.minIntervalMs / 1000)} s ago; try again in ${retryAfterS} s`,
        { 'retry-after': String(retryAfterS) },
      ),
      outcome: 'too_soon',
    };
  }
  let trust: ClusterTrust;
  try {
    trust = await context.trust();
  } catch (err) {
    const code = err instanceof CloudtaserError ? err.code : 'CT_INTERNAL';
    return {
      reply: errorReply(
        503,
        `${code}: the bridge cannot read this cluster's CA from OpenBao now; the broker tries again later`,
      ),
      outcome: 'unavailable',
    };
  }
  let answer: RenewAnswer;
  try {
    answer = {
      brokerCert: signBrokerCsr(trust, parsed.csr, context.days),
      ...(parsed.podApiCsr !== undefined
        ? { podApiCert: signPodApiCsr(trust, parsed.podApiCsr, context.days) }
        : {}),
    };
  } catch (err) {
    if (isCloudtaserError(err, 'CT_PKI_INVALID_CSR')) return refuse(400, 'refused', err.message);
    throw err;
  }
  context.lastSignedAt.value = performance.now();
  context.logger.info(
    {
      event: 'bridge.certificate_renewed',
      brokerCertSha256Prefix: certificateSha256(answer.brokerCert).slice(0, 12),
      brokerKeySha256Prefix: csrKeySha256.slice(0, 12),
      podApi: answer.podApiCert !== undefined,
    },
    "renewed the broker's certificate for the key its tunnel is authenticated with",
  );
  return {
    reply: { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(answer) },
    outcome: 'renewed',
  };
}

function errorReply(status: number, message: string, headers: Record<string, string> = {}): TunnelReply {
  return {
    status,
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ errors: [message] }),
  };
}
