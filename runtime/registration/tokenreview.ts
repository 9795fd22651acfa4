/**
 * What registration sets up so that OpenBao's Kubernetes auth of one cluster can reach the bridge's TokenReview
 * endpoint, and only OpenBao can:
 *   - `kubernetes_host` = `<endpoint>/clusters/<fingerprint>`, over HTTPS by default;
 *   - `kubernetes_ca_cert` = the listener CA: one CA for every cluster, kept in the root namespace's records
 *     mount (`tokenreview/ca`), from which each bridge replica issues its serving certificate in memory (or a CA
 *     the user brings with `--tokenreview-ca-cert`, e.g. cert-manager's);
 *   - `token_reviewer_jwt` = a reviewer credential derived from this cluster's CA key. OpenBao sends it as the
 *     bearer token of every TokenReview (upstream: internal/builtin/credential/kubernetes/token_review.go) and
 *     never returns it on read, so its SHA-256 is kept in the cluster namespace (`system/tokenreview`) where the
 *     bridge reads it and refuses any review that does not carry it.
 */
import { createHash, createHmac } from 'node:crypto';
import { backoffDelay, sleep } from '../core/backoff.js';
import { CloudtaserError, isCloudtaserError } from '../core/errors.js';
import { parseFingerprint } from '../core/rules.js';
import type { OpenBaoClient } from '../openbao/index.js';
import {
  type CertificateAuthority,
  createCertificateAuthority,
  LIFETIME_DAYS,
  loadCertificateAuthority,
} from '../pki/index.js';
import { asLostCreateRace } from './create-once.js';
import { asCertificateRecord, KUBERNETES_AUTH_MOUNT, RECORDS_MOUNT } from './layout.js';
import {
  DEFAULT_TOKENREVIEW_ENDPOINT,
  parseTokenReviewEndpoint,
  tokenReviewEndpointProblem,
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
 * Check-and-set conflicts the listener CA may meet before registration gives up: each one means another
 * registration created it (the next read returns theirs) or its latest version was soft-deleted (the next write
 * replaces it at the version the metadata names).
 */
const MAX_CA_CONFLICTS = 5;
const CA_CONFLICT_BACKOFF = { initialMs: 50, maxMs: 1_000 };

/**
 * The listener CA, created once with check-and-set (a concurrent registration's CA wins and both use it).
 * `root` is a client for the root namespace.
 */
export async function ensureTokenReviewCa(root: OpenBaoClient): Promise<CertificateAuthority> {
  let ca: CertificateAuthority | undefined;
  // A soft-deleted record (`kv delete`) reads as absent but keeps its version number, so cas=0 cannot replace it.
  let replacesVersion = 0;
  for (let attempt = 0; ; attempt++) {
    const existing = await loadTokenReviewCa(root);
    if (existing) return existing;
    ca ??= createCertificateAuthority({
      commonName: 'cloudtaser TokenReview listener',
      days: LIFETIME_DAYS.ca,
    });
    try {
      await root.kvWrite(
        RECORDS_MOUNT,
        TOKENREVIEW_PATHS.listenerCa,
        { certificate: ca.certPem, private_key: ca.keyPem },
        { cas: replacesVersion },
      );
      return ca;
    } catch (thrown) {
      // Another run's first registration created it a moment ago (this fleet's first `apply` registers many
      // clusters at once): a lost race, whichever way OpenBao said so.
      const err = await asLostCreateRace(thrown, async () => (await loadTokenReviewCa(root)) !== undefined);
      if (isCloudtaserError(err, 'CT_OPENBAO_PERMISSION_DENIED')) throw listenerCaNotWritable(err);
      if (!isCloudtaserError(err, 'CT_OPENBAO_CAS_MISMATCH')) throw err;
      if (attempt + 1 >= MAX_CA_CONFLICTS) throw listenerCaKeptChanging(err);
      // Usually a concurrent registration created it first (the next read returns theirs). A soft-deleted record
      // reads as absent too: its metadata says the version to replace. The shipped registrar policy may not read
      // metadata; for it the conflict can only be the concurrent create.
      replacesVersion = await root.kvReadMetadata(RECORDS_MOUNT, TOKENREVIEW_PATHS.listenerCa).then(
        (metadata) => metadata?.currentVersion ?? 0,
        (readError: unknown) => {
          if (isCloudtaserError(readError, 'CT_OPENBAO_PERMISSION_DENIED')) return 0;
          throw readError;
        },
      );
      await sleep(backoffDelay(attempt, CA_CONFLICT_BACKOFF));
    }
  }
}

/**
 * The shipped registrar policy may create the listener CA but not update it (it is every cluster's trust, in the
 * root namespace), and OpenBao counts a write over a soft-deleted record as an update.
 */
function listenerCaNotWritable(cause: unknown): CloudtaserError {
  return new CloudtaserError(
    'CT_OPENBAO_PERMISSION_DENIED',
    `this token may not write the TokenReview listener CA (${RECORDS_MOUNT}/${TOKENREVIEW_PATHS.listenerCa} in the root namespace): either its policy lacks \`create\` there (see \`cloudtaser-cli source policy registrar\`), or the record was deleted, and writing a deleted record again is an update; restore it with \`bao kv undelete -mount=${RECORDS_MOUNT} -versions=<latest> ${TOKENREVIEW_PATHS.listenerCa}\`, or run register once with an admin token to make a new one`,
    { cause },
  );
}

function listenerCaKeptChanging(cause: unknown): CloudtaserError {
  return new CloudtaserError(
    'CT_OPENBAO_CAS_MISMATCH',
    `the TokenReview listener CA record (${RECORDS_MOUNT}/${TOKENREVIEW_PATHS.listenerCa} in the root namespace) changed under this registration ${MAX_CA_CONFLICTS} times in a row (check-and-set conflicts): another register run is writing it at the same time; let that one finish and run this one again`,
    { cause },
  );
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
 * The cluster's reviewer credential: a JWT (Vault's Kubernetes auth checks `token_reviewer_jwt` parses as one;
 * OpenBao does not) whose HS256 signature is an HMAC keyed by the cluster CA's private key. Nobody verifies the
 * signature (the bridge compares the whole credential with the recorded hash); it is what makes the credential
 * unguessable. Derived rather than random so that every write of it is idempotent: concurrent registrations,
 * a retried write whose answer was lost and a slow write that lands late all write the same value, and a re-run
 * can rewrite it without reading it back (OpenBao never returns it). Keeping a random one in a record instead
 * would need a create-once write and put the credential itself where the bridge reads. Not derived from the
 * endpoint, so runs with different endpoints cannot split the pair either. A new cluster CA (deregister, then
 * register) gives a new credential.
 */
function reviewerCredential(
  clusterCa: CertificateAuthority,
  fingerprint: string,
): { jwt: string; sha256: string } {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  // No time claims: they would make the credential differ between runs.
  const signingInput = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode({
    iss: 'cloudtaser',
    sub: 'tokenreview-reviewer',
    aud: `cloudtaser-bridge:${parseFingerprint(fingerprint)}`,
  })}`;
  const key = clusterCa.privateKey.export({ type: 'pkcs8', format: 'der' });
  const signature = createHmac('sha256', key).update(signingInput).digest('base64url');
  const jwt = `${signingInput}.${signature}`;
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
 * Points the cluster namespace's Kubernetes auth at the bridge's TokenReview endpoint with the cluster's reviewer
 * credential, and records the credential's hash for the bridge. `disable_local_ca_jwt` keeps OpenBao from sending
 * its own pod's service-account token instead. Returns true when something OpenBao showed differed.
 *
 * The config is written on every run, the record whenever its hash differs: OpenBao only says
 * `token_reviewer_jwt_set`, so a run cannot tell whether the credential it holds is the recorded one (a run that
 * stopped between the two writes, a write that landed late), and the credential is derived (reviewerCredential),
 * so rewriting it changes nothing that matched. A finished run therefore leaves the pair matching, whatever runs
 * failed or ran at the same time.
 */
export async function ensureTokenReviewAuth(
  root: OpenBaoClient,
  cluster: OpenBaoClient,
  /** The cluster CA registration ensured before this step: the key the reviewer credential is derived from. */
  { fingerprint, clusterCa }: { readonly fingerprint: string; readonly clusterCa: CertificateAuthority },
  options: TokenReviewAuthOptions,
  /** Begun before a write: bridges re-read what they act on (the reviewer hash, the listener CA it points at). */
  announcement?: { begin(): Promise<void> },
): Promise<boolean> {
  if (options.endpoint !== undefined) parseTokenReviewEndpoint(options.endpoint);
  const reviewer = reviewerCredential(clusterCa, fingerprint);
  // Three independent reads in one round trip (the listener CA is created once, by whichever run comes first).
  const [caPem, current, recordedSha256] = await Promise.all([
    options.caCertPem ?? ensureTokenReviewCa(root).then((ca) => ca.certPem),
    cluster.request<{ data?: Record<string, unknown> }>('GET', `auth/${KUBERNETES_AUTH_MOUNT}/config`, {
      allow404: true,
    }),
    loadReviewerSha256(cluster),
  ]);
  const data = current.body?.data;
  // Not given: the endpoint the cluster points at now (a re-run keeps it, as it keeps migration and attestation;
  // an upgrade test found a plain re-run moving an explicit endpoint to the default), else the default.
  const stored = endpointOfHost(data?.kubernetes_host, fingerprint);
  const endpoint =
    options.endpoint ??
    (stored && !tokenReviewEndpointProblem(stored) ? stored : DEFAULT_TOKENREVIEW_ENDPOINT);
  // An http:// endpoint ignores the CA (OpenBao sends the reviewer credential in clear: only for a bridge on
  // OpenBao's own host); OpenBao still wants some PEM there, and the listener CA is public.
  const host = tokenReviewHost(endpoint, fingerprint);
  const configShown =
    current.status === 200 &&
    data?.kubernetes_host === host &&
    String(data?.kubernetes_ca_cert ?? '').trim() === caPem.trim() &&
    data?.disable_local_ca_jwt === true &&
    data?.token_reviewer_jwt_set === true;
  const recorded = recordedSha256 === reviewer.sha256;
  // A replaced listener CA shows here (the config points at another CA): the bridges must serve a certificate of
  // the new one, and learn so from the journal like any other change they act on.
  if (!configShown || !recorded) await announcement?.begin();
  // The record first: when the credential changes (a new cluster CA), a bridge that then sees the new one finds
  // its hash (it re-reads on a mismatch).
  if (!recorded) {
    const record: ReviewerRecord = { reviewer_sha256: reviewer.sha256, created_at: new Date().toISOString() };
    await cluster.kvWrite(RECORDS_MOUNT, TOKENREVIEW_PATHS.reviewer, { ...record });
  }
  await cluster.writeKubernetesAuthConfig(KUBERNETES_AUTH_MOUNT, {
    kubernetesHost: host,
    kubernetesCaCert: caPem,
    disableLocalCaJwt: true,
    tokenReviewerJwt: reviewer.jwt,
  });
  return !configShown || !recorded;
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
  return endpointOfHost(
    current.status === 200 ? current.body?.data?.kubernetes_host : undefined,
    fingerprint,
  );
}

/** The endpoint in a `kubernetes_host` registration wrote (tokenReviewHost's inverse), else undefined. */
function endpointOfHost(host: unknown, fingerprint: string): string | undefined {
  const suffix = `/clusters/${parseFingerprint(fingerprint)}`;
  return typeof host === 'string' && host.endsWith(suffix) ? host.slice(0, -suffix.length) : undefined;
}
