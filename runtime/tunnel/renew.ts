/**
 * Renewing the broker's certificates inside the tunnel. The broker's certificate (and its pod API certificate) come
 * from its bootstrap and last `LIFETIME_DAYS.broker`; a broker that runs that long would find the bridge refusing
 * its next tunnel, and a broker without attestation could not bootstrap again without a re-arm. So, some time
 * before expiry, the broker sends `POST /v1/tunnel/certificate` through its live tunnel with CSRs for the keys it
 * already holds, and the bridge answers with certificates of the cluster CA for those same keys.
 *
 * Nothing about trust changes: the request only exists inside the mutual-TLS tunnel, whose broker end the bridge
 * already accepted (cluster CA, and the broker key of the latest bootstrap), and the bridge signs only for the key
 * that tunnel is authenticated with. The pod API key is not pinned anywhere, as at bootstrap: it is the same
 * authenticated broker asking. No record in OpenBao changes (the bootstrap's record names the key, which stays).
 * A bridge before this version answers 404; the broker keeps its certificate and tries again later.
 */
import { type KeyObject, X509Certificate } from 'node:crypto';
import { CloudtaserError } from '../core/errors.js';
import { certificateMatchesKey, isIssuedBy, MAX_CSR_BYTES } from '../pki/index.js';
import type { TunnelMux } from './mux.js';

export const CERTIFICATE_RENEW_PATH = '/v1/tunnel/certificate';

/** The request body: two PEM CSRs and a little JSON around them. */
export const MAX_RENEW_REQUEST_BYTES = 4 * MAX_CSR_BYTES;

export interface RenewRequest {
  readonly v: 1;
  /** CSR (PEM) for the broker's tunnel key: the key of the certificate the tunnel was opened with. */
  readonly csr: string;
  /** CSR (PEM) for the pod API key, when the broker serves a pod API. */
  readonly podApiCsr?: string;
}

export interface RenewAnswer {
  readonly brokerCert: string;
  readonly podApiCert?: string;
}

export function isCertificateRenewRequest(request: {
  readonly method: string;
  readonly path: string;
}): boolean {
  return request.method === 'POST' && request.path === CERTIFICATE_RENEW_PATH;
}

/** Reads a renewal request body; anything else than `RenewRequest` is `CT_RENEWAL_REFUSED`. */
export function parseRenewRequest(body: Buffer): RenewRequest {
  if (body.length > MAX_RENEW_REQUEST_BYTES)
    throw refused(`the request is ${body.length} bytes; the limit is ${MAX_RENEW_REQUEST_BYTES}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw refused('the request is not JSON');
  }
  const request = parsed as Partial<RenewRequest> | null;
  if (
    typeof request !== 'object' ||
    request === null ||
    request.v !== 1 ||
    typeof request.csr !== 'string' ||
    (request.podApiCsr !== undefined && typeof request.podApiCsr !== 'string')
  )
    throw refused('the request must be {"v":1,"csr":"<PEM>","podApiCsr"?:"<PEM>"}');
  return {
    v: 1,
    csr: request.csr,
    ...(request.podApiCsr !== undefined ? { podApiCsr: request.podApiCsr } : {}),
  };
}

/** The certificates the broker holds now, and the keys it asks to have certified again. */
export interface HeldCertificates {
  readonly caCertPem: string;
  readonly brokerCertPem: string;
  readonly privateKey: KeyObject;
  readonly podApiCertPem?: string;
  readonly podApiPrivateKey?: KeyObject;
}

/**
 * Sends the renewal request through `tunnel` and checks the answer before anything is used: each certificate must be
 * issued by the cluster CA the broker already trusts, valid now, for the very key the broker holds, and last longer
 * than the one it replaces. A bridge that answers anything else (a bug, or a bridge replica serving another version)
 * leaves the broker with what it has. Throws `CT_RENEWAL_REFUSED` (with `details.status` when the bridge answered),
 * or the tunnel's own error when the request could not be sent.
 */
export async function requestRenewal(
  tunnel: TunnelMux,
  held: HeldCertificates,
  request: RenewRequest,
  options: { readonly timeoutMs: number; readonly signal?: AbortSignal },
): Promise<RenewAnswer> {
  const answer = await tunnel.request(
    { method: 'POST', path: CERTIFICATE_RENEW_PATH, headers: { 'content-type': 'application/json' } },
    Buffer.from(JSON.stringify(request)),
    { timeoutMs: options.timeoutMs, signal: options.signal },
  );
  if (answer.status !== 200) {
    const said = answer.body.toString('utf8').slice(0, 500);
    throw new CloudtaserError(
      'CT_RENEWAL_REFUSED',
      answer.status === 404
        ? 'the bridge does not renew broker certificates (it answered 404: a version before 0.2.0); upgrade the bridge before this certificate expires'
        : `the bridge refused to renew the broker certificate (status ${answer.status}): ${said}`,
      { details: { status: answer.status } },
    );
  }
  let parsed: Partial<RenewAnswer>;
  try {
    parsed = JSON.parse(answer.body.toString('utf8')) as Partial<RenewAnswer>;
  } catch {
    throw refusedAnswer('it is not JSON');
  }
  if (typeof parsed?.brokerCert !== 'string') throw refusedAnswer('it carries no broker certificate');
  checkRenewed('broker', parsed.brokerCert, held.brokerCertPem, held.privateKey, held.caCertPem);
  if (request.podApiCsr !== undefined) {
    if (typeof parsed.podApiCert !== 'string' || !held.podApiPrivateKey)
      throw refusedAnswer('it carries no pod API certificate');
    checkRenewed('pod API', parsed.podApiCert, held.podApiCertPem, held.podApiPrivateKey, held.caCertPem);
  }
  return {
    brokerCert: parsed.brokerCert,
    ...(request.podApiCsr !== undefined ? { podApiCert: parsed.podApiCert } : {}),
  };
}

function checkRenewed(
  what: string,
  certPem: string,
  currentPem: string | undefined,
  privateKey: KeyObject,
  caCertPem: string,
): void {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    throw refusedAnswer(`its ${what} certificate does not parse`);
  }
  if (!isIssuedBy(cert, caCertPem))
    throw refusedAnswer(`its ${what} certificate is not a valid one of the cluster CA`);
  if (!certificateMatchesKey(cert, privateKey))
    throw refusedAnswer(`its ${what} certificate is for another key`);
  if (
    currentPem !== undefined &&
    Date.parse(cert.validTo) <= Date.parse(new X509Certificate(currentPem).validTo)
  )
    throw refusedAnswer(`its ${what} certificate expires no later than the current one`);
}

function refused(why: string): CloudtaserError {
  return new CloudtaserError('CT_RENEWAL_REFUSED', `certificate renewal request refused: ${why}`);
}

function refusedAnswer(why: string): CloudtaserError {
  return new CloudtaserError(
    'CT_RENEWAL_REFUSED',
    `the bridge's renewal answer was not used (${why}); the broker keeps its current certificate`,
  );
}
