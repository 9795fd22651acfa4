/**
 * Attested bootstrap: the broker proves "I run as the operator's service account in this very cluster" with a
 * service-account token minted by the cluster's API server, whose audience binds the public key of the CSR it
 * sends. The bridge checks that token offline against the issuer keys stored at registration, so no call to
 * the cluster is needed and a token is useless with any other key.
 */
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { compactVerify, type JWK } from 'jose';
import { CloudtaserError } from '../core/errors.js';

/** Audience prefix of a bootstrap attestation token; the rest is the hex SHA-256 of the CSR's SPKI. */
export const ATTESTATION_AUDIENCE_PREFIX = 'cloudtaser-bootstrap:';
/** Tokens are minted for the bootstrap and used at once; anything longer-lived is refused. */
export const MAX_ATTESTATION_TOKEN_SECONDS = 3600;
/** Clock skew allowed between the cluster's API server and the bridge. */
export const CLOCK_SKEW_SECONDS = 120;
/** RSA keys shorter than this are refused, at registration and when verifying (RFC 7518 section 3.3). */
export const MIN_RSA_BITS = 2048;
const MAX_TOKEN_BYTES = 8192;

/**
 * The algorithms Kubernetes signs service-account tokens with, and the key each needs: RS256 for an RSA key,
 * ES256/ES384/ES512 for a P-256/P-384/P-521 key (kubernetes pkg/serviceaccount/jwt.go, `JWTTokenGenerator`
 * picks the algorithm from the signing key). Nothing else is ever accepted, `none` included.
 */
const SIGNING_ALGORITHMS = {
  RS256: { kty: 'RSA' },
  ES256: { kty: 'EC', crv: 'P-256' },
  ES384: { kty: 'EC', crv: 'P-384' },
  ES512: { kty: 'EC', crv: 'P-521' },
} as const;
type SigningAlgorithm = keyof typeof SIGNING_ALGORITHMS;

/** Node's names for the curves JWK calls P-256, P-384 and P-521. */
const NODE_CURVES: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };

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
  | 'algorithm'
  | 'crit'
  | 'unknown-key'
  | 'key-mismatch'
  | 'weak-key'
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
 * `CT_ATTESTATION_FAILED` with `details.reason`; the message says what to do. The signature is checked with
 * `jose`, and only with a registered key whose type, curve and size fit the token's algorithm: Node's own
 * `verify` would accept an ES256 signature made with a P-384 key, or a 1024-bit RSA key.
 */
export async function verifyAttestation(
  token: string,
  csrPublicKeySha256: string,
  policy: AttestationPolicy,
  now: Date = new Date(),
): Promise<{ subject: string; expiresAt: Date /** `iat`, seconds since the epoch. */; issuedAt: number }> {
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

  // Kubernetes never marks a header parameter critical; one we would have to understand is refused (RFC 7515 4.1.11).
  if ('crit' in header)
    fail(
      'crit',
      `the token header marks ${JSON.stringify(header.crit)} as critical extensions, which a service-account token never carries`,
    );
  const alg = header.alg;
  if (typeof alg !== 'string' || !Object.hasOwn(SIGNING_ALGORITHMS, alg))
    fail(
      'algorithm',
      `algorithm ${JSON.stringify(alg)} is not accepted (Kubernetes signs with ${Object.keys(SIGNING_ALGORITHMS).join(', ')})`,
    );
  const algorithm = alg as SigningAlgorithm;

  const candidates = policy.jwks.keys.filter((key) => header.kid === undefined || key.kid === header.kid);
  const described = candidates
    .map((jwk) => ({ jwk, key: toPublicKey(jwk) }))
    .filter((entry): entry is { jwk: JsonWebKey; key: KeyObject } => entry.key !== undefined);
  if (described.length === 0) {
    fail(
      'unknown-key',
      `the cluster signed it with a key (kid ${JSON.stringify(header.kid)}) the registration does not know; the cluster's service-account signing key was probably rotated: refresh the registration's keys (\`cloudtaser-cli source register --attestation-jwks <file>\` or re-apply the Terraform registration)`,
    );
  }
  const misfits = described.map(({ jwk, key }) => ({ jwk, misfit: misfitFor(algorithm, jwk, key) }));
  const fitting = misfits.filter((entry) => entry.misfit === undefined).map((entry) => entry.jwk);
  if (fitting.length === 0) {
    const reasons = misfits.map((entry) => entry.misfit ?? '');
    if (reasons.every((reason) => reason.startsWith('RSA key of')))
      fail('weak-key', `the registered ${reasons[0]}; Kubernetes keys must be at least ${MIN_RSA_BITS} bits`);
    fail('key-mismatch', `the token says ${algorithm} but the registered ${reasons.join('; ')}`);
  }

  let payload: Uint8Array | undefined;
  for (const jwk of fitting) {
    try {
      payload = (await compactVerify(token, publicJwk(jwk), { algorithms: [algorithm] })).payload;
      break;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED')
        fail('malformed', `the token is not a valid JWS (${(err as Error).message})`);
    }
  }
  if (payload === undefined)
    fail('signature', 'the signature does not verify against the registered issuer keys');
  const claims =
    parseObject(Buffer.from(payload as Uint8Array).toString('utf8')) ??
    fail('malformed', 'the token claims are not JSON');

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

/** JWK members of private keys (RFC 7518 6.2.2, 6.3.2, 6.4.1): present only in a private or symmetric key. */
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

/**
 * Refuses a JWKS a person gives to registration (CLI file, Terraform attribute) that holds a private key: that text
 * travels into plans, state, logs and files, and a signing key there is a leak however little of it registration
 * keeps. (A JWKS read from a cluster is cleaned by parseJwks instead: its private members are dropped.)
 */
export function refusePrivateJwks(input: unknown): void {
  const doc = typeof input === 'string' ? safeJson(input) : input;
  const keys = (doc as { keys?: unknown })?.keys;
  if (!Array.isArray(keys)) return;
  const withPrivateParts = keys.find(
    (key) =>
      key !== null &&
      typeof key === 'object' &&
      PRIVATE_JWK_MEMBERS.some((member) => (key as Record<string, unknown>)[member] !== undefined),
  ) as JsonWebKey | undefined;
  if (withPrivateParts)
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `the attestation JWKS holds a private key (key ${JSON.stringify(withPrivateParts.kid ?? '(no kid)')} has private members such as "d"); give the public keys only, as served at /openid/v1/jwks`,
    );
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
  const usable = (keys as JsonWebKey[]).filter((key) => {
    if (key === null || typeof key !== 'object' || key.d !== undefined) return false;
    const publicKey = toPublicKey(key);
    return publicKey !== undefined && usableForSomeAlgorithm(key, publicKey);
  });
  if (usable.length === 0)
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `the attestation JWKS holds no usable RSA or EC public key (Kubernetes signs with RSA keys of at least ${MIN_RSA_BITS} bits, or EC keys on P-256, P-384 or P-521)`,
    );
  return {
    keys: usable.map(({ kty, kid, n, e, crv, x, y, alg, use }) => ({ kty, kid, n, e, crv, x, y, alg, use })),
  };
}

/** Why `jwk` cannot check an `algorithm` signature, or undefined when it can. */
function misfitFor(algorithm: SigningAlgorithm, jwk: JsonWebKey, key: KeyObject): string | undefined {
  const wanted = SIGNING_ALGORITHMS[algorithm];
  const name = `key ${JSON.stringify(jwk.kid ?? '(no kid)')}`;
  if (jwk.use !== undefined && jwk.use !== 'sig') return `${name} is not a signing key (use ${jwk.use})`;
  if (jwk.alg !== undefined && jwk.alg !== algorithm) return `${name} is for ${jwk.alg}`;
  const details = key.asymmetricKeyDetails ?? {};
  if (wanted.kty === 'RSA') {
    if (key.asymmetricKeyType !== 'rsa') return `${name} is ${describeKey(key)}, not RSA`;
    const bits = details.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) return `RSA key of ${bits} bits (${name})`;
    return undefined;
  }
  const curve = NODE_CURVES[details.namedCurve ?? ''];
  if (key.asymmetricKeyType !== 'ec' || curve !== wanted.crv)
    return `${name} is ${describeKey(key)}, not EC ${wanted.crv}`;
  return undefined;
}

function usableForSomeAlgorithm(jwk: JsonWebKey, key: KeyObject): boolean {
  return (Object.keys(SIGNING_ALGORITHMS) as SigningAlgorithm[]).some(
    (algorithm) => misfitFor(algorithm, jwk, key) === undefined,
  );
}

function describeKey(key: KeyObject): string {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa') return `RSA ${details.modulusLength ?? '?'} bits`;
  if (key.asymmetricKeyType === 'ec')
    return `EC ${NODE_CURVES[details.namedCurve ?? ''] ?? details.namedCurve}`;
  return String(key.asymmetricKeyType);
}

/** Only the public parameters go to jose: `use`, `alg` and `kid` were checked above. */
function publicJwk(jwk: JsonWebKey): JWK {
  return jwk.kty === 'RSA'
    ? { kty: 'RSA', n: jwk.n, e: jwk.e }
    : { kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y };
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
  return parseObject(Buffer.from(segment, 'base64url').toString('utf8'));
}

function parseObject(text: string): Record<string, unknown> | undefined {
  const value = safeJson(text);
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
