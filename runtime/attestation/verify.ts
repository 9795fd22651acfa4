/**
 * Attested bootstrap: the broker proves "I run as the operator's service account in this very cluster" with a
 * service-account token minted by the cluster's API server, whose audience binds the public key of the CSR it
 * sends. The bridge checks that token offline against the issuer keys stored at registration, so no call to
 * the cluster is needed and a token is useless with any other key.
 */
import { createPublicKey, type JsonWebKey, type KeyObject, verify } from 'node:crypto';
import { CloudtaserError } from '../core/errors.js';

/** Audience prefix of a bootstrap attestation token; the rest is the hex SHA-256 of the CSR's SPKI. */
export const ATTESTATION_AUDIENCE_PREFIX = 'cloudtaser-bootstrap:';
/** Tokens are minted for the bootstrap and used at once; anything longer-lived is refused. */
export const MAX_ATTESTATION_TOKEN_SECONDS = 3600;
/** Clock skew allowed between the cluster's API server and the bridge. */
export const CLOCK_SKEW_SECONDS = 120;
const MAX_TOKEN_BYTES = 8192;

export interface AttestationPolicy {
  /** `iss` of the cluster's service-account tokens (its OIDC issuer URL). */
  readonly issuer: string;
  /** The issuer's public keys, as served at `/openid/v1/jwks`. */
  readonly jwks: { readonly keys: readonly JsonWebKey[] };
  /** The operator's service account, the only subject accepted. */
  readonly serviceAccount: { readonly namespace: string; readonly name: string };
}

export type AttestationFailure =
  | 'malformed'
  | 'unknown-key'
  | 'signature'
  | 'issuer'
  | 'subject'
  | 'audience'
  | 'expired'
  | 'not-yet-valid'
  | 'lifetime';

export function attestationAudience(csrPublicKeySha256: string): string {
  return `${ATTESTATION_AUDIENCE_PREFIX}${csrPublicKeySha256}`;
}

/**
 * Verifies an attestation token for a CSR whose SPKI hashes to `csrPublicKeySha256`. Throws
 * `CT_ATTESTATION_FAILED` with `details.reason`; the message says what to do.
 */
export function verifyAttestation(
  token: string,
  csrPublicKeySha256: string,
  policy: AttestationPolicy,
  now: Date = new Date(),
): { subject: string; expiresAt: Date /** `iat`, seconds since the epoch. */; issuedAt: number } {
  const fail = (reason: AttestationFailure, message: string): never => {
    throw new CloudtaserError(
      'CT_ATTESTATION_FAILED',
      `bootstrap attestation refused (${reason}): ${message}`,
      {
        details: { reason },
      },
    );
  };
  if (typeof token !== 'string' || token.length > MAX_TOKEN_BYTES)
    fail('malformed', 'the token is missing or too large');
  const parts = token.split('.');
  if (parts.length !== 3) fail('malformed', 'the token is not a compact JWS');
  const header = decodeSegment(parts[0]) ?? fail('malformed', 'the token header is not JSON');
  const claims = decodeSegment(parts[1]) ?? fail('malformed', 'the token claims are not JSON');
  const signature = Buffer.from(parts[2], 'base64url');

  const alg = header.alg;
  if (alg !== 'RS256' && alg !== 'ES256')
    fail('malformed', `algorithm ${String(alg)} is not accepted (RS256 or ES256 only)`);
  const candidates = policy.jwks.keys.filter((key) => header.kid === undefined || key.kid === header.kid);
  const keys = candidates.map(toPublicKey).filter((key): key is KeyObject => key !== undefined);
  if (keys.length === 0) {
    fail(
      'unknown-key',
      `the cluster signed it with a key (kid ${JSON.stringify(header.kid)}) the registration does not know; the cluster's service-account signing key was probably rotated: refresh the registration's keys (\`cloudtaser-cli source register --attestation-jwks <file>\` or re-apply the Terraform registration)`,
    );
  }
  const signed = Buffer.from(`${parts[0]}.${parts[1]}`);
  const valid = keys.some((key) =>
    alg === 'ES256'
      ? key.asymmetricKeyType === 'ec' &&
        verify('sha256', signed, { key, dsaEncoding: 'ieee-p1363' }, signature)
      : key.asymmetricKeyType === 'rsa' && verify('sha256', signed, key, signature),
  );
  if (!valid) fail('signature', 'the signature does not verify against the registered issuer keys');

  if (claims.iss !== policy.issuer)
    fail(
      'issuer',
      `issuer ${JSON.stringify(claims.iss)} is not the registered ${JSON.stringify(policy.issuer)}`,
    );
  const subject = `system:serviceaccount:${policy.serviceAccount.namespace}:${policy.serviceAccount.name}`;
  if (claims.sub !== subject)
    fail('subject', `subject ${JSON.stringify(claims.sub)} is not the operator's service account ${subject}`);
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!audiences.includes(attestationAudience(csrPublicKeySha256))) {
    fail('audience', 'the token is not bound to the public key of this certificate request');
  }
  const nowSeconds = Math.floor(now.getTime() / 1000);
  const exp = Number(claims.exp);
  const nbf = Number(claims.nbf ?? claims.iat);
  if (!Number.isFinite(exp) || exp + CLOCK_SKEW_SECONDS < nowSeconds)
    fail('expired', 'the token has expired; the broker requests a new one on retry');
  if (Number.isFinite(nbf) && nbf - CLOCK_SKEW_SECONDS > nowSeconds)
    fail('not-yet-valid', 'the token is not valid yet; check the clocks');
  const iat = Number(claims.iat);
  if (!Number.isFinite(iat) || exp - iat > MAX_ATTESTATION_TOKEN_SECONDS) {
    fail(
      'lifetime',
      `the token lives longer than ${MAX_ATTESTATION_TOKEN_SECONDS} s; bootstrap tokens must be short-lived`,
    );
  }
  return { subject, expiresAt: new Date(exp * 1000), issuedAt: iat };
}

/** Validates a JWKS document given to registration (CLI file or data source), keeping only usable public keys. */
export function parseJwks(input: unknown): { keys: JsonWebKey[] } {
  const doc = typeof input === 'string' ? safeJson(input) : input;
  const keys = (doc as { keys?: unknown })?.keys;
  if (!Array.isArray(keys) || keys.length === 0 || keys.length > 32) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      'the attestation JWKS must be a JSON object {"keys":[...]} with 1 to 32 keys, as served at /openid/v1/jwks',
    );
  }
  const usable = (keys as JsonWebKey[]).filter(
    (key) => toPublicKey(key) !== undefined && key.d === undefined,
  );
  if (usable.length === 0)
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      'the attestation JWKS holds no usable RSA or EC public key',
    );
  return {
    keys: usable.map(({ kty, kid, n, e, crv, x, y, alg, use }) => ({ kty, kid, n, e, crv, x, y, alg, use })),
  };
}

function toPublicKey(jwk: JsonWebKey): KeyObject | undefined {
  try {
    if (jwk.d !== undefined) return undefined; // never accept private material as a verification key
    return createPublicKey({ key: jwk, format: 'jwk' });
  } catch {
    return undefined;
  }
}

function decodeSegment(segment: string): Record<string, unknown> | undefined {
  const value = safeJson(Buffer.from(segment, 'base64url').toString('utf8'));
  return value && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
