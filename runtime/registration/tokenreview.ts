/**
 * What registration sets up so that OpenBao's Kubernetes auth of one cluster can reach the bridge's TokenReview
 * endpoint, and only OpenBao can:
 *   - `kubernetes_host` = `<endpoint>/clusters/<fingerprint>`, over HTTPS by default;
 *   - `kubernetes_ca_cert` = the listener CA: one CA for every cluster, kept in the root namespace's records
 *     mount (`tokenreview/ca`), from which each bridge replica issues its serving certificate in memory (or a CA
 *     the user brings with `--tokenreview-ca-cert`, e.g. cert-manager's);
 *   - `token_reviewer_jwt` = a reviewer credential made for this cluster. OpenBao sends it as the bearer token of
 *     every TokenReview (upstream: internal/builtin/credential/kubernetes/token_review.go) and never returns it
 *     on read, so its SHA-256 is kept in the cluster namespace (`system/tokenreview`) where the bridge reads it
 *     and refuses any review that does not carry it.
 */
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { isCloudtaserError } from '../core/errors.js';
import { parseFingerprint } from '../core/rules.js';
import type { OpenBaoClient } from '../openbao/index.js';
import {
  type CertificateAuthority,
  createCertificateAuthority,
  LIFETIME_DAYS,
  loadCertificateAuthority,
} from '../pki/index.js';
import { asCertificateRecord, KUBERNETES_AUTH_MOUNT, RECORDS_MOUNT } from './layout.js';
import {
  DEFAULT_TOKENREVIEW_ENDPOINT,
  parseTokenReviewEndpoint,
  tokenReviewHost,
} from './tokenreview-endpoint.js';

export const TOKENREVIEW_PATHS = {
  /** Root namespace, records mount: the listener CA every replica issues its serving certificate from. */
  listenerCa: 'tokenreview/ca',
  /** Cluster namespace, records mount: SHA-256 of the reviewer credential OpenBao sends. */
  reviewer: 'system/tokenreview',
} as const;

/** `system/tokenreview` in the cluster namespace. The credential itself lives only in OpenBao's auth config. */
export interface ReviewerRecord {
  readonly reviewer_sha256: string;
  readonly created_at: string;
}

/**
 * The listener CA, created once with check-and-set (a concurrent registration's CA wins and both use it).
 * `root` is a client for the root namespace.
 */
export async function ensureTokenReviewCa(root: OpenBaoClient): Promise<CertificateAuthority> {
  const existing = await loadTokenReviewCa(root);
  if (existing) return existing;
  const ca = createCertificateAuthority({
    commonName: 'cloudtaser TokenReview listener',
    days: LIFETIME_DAYS.ca,
  });
  try {
    await root.kvWrite(
      RECORDS_MOUNT,
      TOKENREVIEW_PATHS.listenerCa,
      { certificate: ca.certPem, private_key: ca.keyPem },
      { cas: 0 },
    );
  } catch (err) {
    if (!isCloudtaserError(err, 'CT_OPENBAO_CAS_MISMATCH')) throw err;
    return ensureTokenReviewCa(root);
  }
  return ca;
}

/** The listener CA as the bridge reads it; undefined until a registration made it. */
export async function loadTokenReviewCa(root: OpenBaoClient): Promise<CertificateAuthority | undefined> {
  const record = asCertificateRecord<{ certificate: string; private_key: string }>(
    (await root.kvRead(RECORDS_MOUNT, TOKENREVIEW_PATHS.listenerCa))?.data,
    'TokenReview listener CA',
  );
  return record ? loadCertificateAuthority(record.certificate, record.private_key) : undefined;
}

/** The SHA-256 (hex) of the cluster's reviewer credential, as the bridge compares it; undefined if none. */
export async function loadReviewerSha256(cluster: OpenBaoClient): Promise<string | undefined> {
  const data = (await cluster.kvRead(RECORDS_MOUNT, TOKENREVIEW_PATHS.reviewer))?.data;
  const hash = data?.reviewer_sha256;
  return typeof hash === 'string' && /^[0-9a-f]{64}$/.test(hash) ? hash : undefined;
}

/**
 * A reviewer credential: a signed JWT (OpenBao checks `token_reviewer_jwt` parses as one; path_config.go), whose
 * 256-bit random `jti` makes it unguessable. Nobody verifies its signature: the bridge compares it whole.
 */
export function newReviewerCredential(fingerprint: string): { jwt: string; sha256: string } {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const signingInput = `${encode({ alg: 'ES256', typ: 'JWT' })}.${encode({
    iss: 'cloudtaser',
    sub: 'tokenreview-reviewer',
    aud: `cloudtaser-bridge:${parseFingerprint(fingerprint)}`,
    iat: now,
    jti: randomBytes(32).toString('base64url'),
  })}`;
  const signature = sign('sha256', Buffer.from(signingInput), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const jwt = `${signingInput}.${signature.toString('base64url')}`;
  return { jwt, sha256: reviewerSha256(jwt) };
}

export function reviewerSha256(credential: string): string {
  return createHash('sha256').update(credential, 'utf8').digest('hex');
}

export interface TokenReviewAuthOptions {
  /** @default DEFAULT_TOKENREVIEW_ENDPOINT */
  readonly endpoint?: string;
  /** The CA of a listener certificate you bring; without it, the listener CA kept in OpenBao. */
  readonly caCertPem?: string;
}

/**
 * Points the cluster namespace's Kubernetes auth at the bridge's TokenReview endpoint with a fresh reviewer
 * credential, unless it already points there with one (OpenBao only says `token_reviewer_jwt_set`, so a present
 * credential and our record of it are kept). `disable_local_ca_jwt` keeps OpenBao from sending its own pod's
 * service-account token instead. Returns true when it wrote.
 */
export async function ensureTokenReviewAuth(
  root: OpenBaoClient,
  cluster: OpenBaoClient,
  fingerprint: string,
  options: TokenReviewAuthOptions,
): Promise<boolean> {
  const endpoint = options.endpoint ?? DEFAULT_TOKENREVIEW_ENDPOINT;
  parseTokenReviewEndpoint(endpoint);
  // An http:// endpoint ignores the CA (OpenBao sends the reviewer credential in clear: only for a bridge on
  // OpenBao's own host); OpenBao still wants some PEM there, and the listener CA is public.
  const caPem = options.caCertPem ?? (await ensureTokenReviewCa(root)).certPem;
  const host = tokenReviewHost(endpoint, fingerprint);
  const current = await cluster.request<{ data?: Record<string, unknown> }>(
    'GET',
    `auth/${KUBERNETES_AUTH_MOUNT}/config`,
    { allow404: true },
  );
  const data = current.body?.data;
  const recorded = await loadReviewerSha256(cluster);
  if (
    current.status === 200 &&
    data?.kubernetes_host === host &&
    String(data?.kubernetes_ca_cert ?? '').trim() === caPem.trim() &&
    data?.disable_local_ca_jwt === true &&
    data?.token_reviewer_jwt_set === true &&
    recorded !== undefined
  ) {
    return false;
  }
  const reviewer = newReviewerCredential(fingerprint);
  // The record first: a bridge that then sees the new credential finds its hash (it re-reads on a mismatch).
  const record: ReviewerRecord = { reviewer_sha256: reviewer.sha256, created_at: new Date().toISOString() };
  await cluster.kvWrite(RECORDS_MOUNT, TOKENREVIEW_PATHS.reviewer, { ...record });
  await cluster.writeKubernetesAuthConfig(KUBERNETES_AUTH_MOUNT, {
    kubernetesHost: host,
    kubernetesCaCert: caPem,
    disableLocalCaJwt: true,
    tokenReviewerJwt: reviewer.jwt,
  });
  return true;
}

/**
 * The TokenReview endpoint a cluster's Kubernetes auth points at (`kubernetes_host` less `/clusters/<fingerprint>`),
 * undefined when it is not configured or points somewhere registration would not have pointed it. `cluster` is a
 * client for the cluster's namespace. The provider's refresh reads it, so a change made elsewhere shows as drift
 * instead of being rewritten silently by the next unrelated update.
 */
export async function readTokenReviewEndpoint(
  cluster: OpenBaoClient,
  fingerprint: string,
): Promise<string | undefined> {
  const current = await cluster.request<{ data?: Record<string, unknown> }>(
    'GET',
    `auth/${KUBERNETES_AUTH_MOUNT}/config`,
    { allow404: true },
  );
  const host = current.status === 200 ? current.body?.data?.kubernetes_host : undefined;
  const suffix = `/clusters/${parseFingerprint(fingerprint)}`;
  return typeof host === 'string' && host.endsWith(suffix) ? host.slice(0, -suffix.length) : undefined;
}
