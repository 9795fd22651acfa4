/**
 * Service-account token signing and validation for the Kubernetes test server (dev-only).
 * Tokens are real JWTs with a `kid`, claims as the API server mints them (wire-facts B3). Like the API server,
 * the algorithm follows the signing key (kubernetes pkg/serviceaccount/jwt.go `JWTTokenGenerator`): RS256 for
 * an RSA key, which is what kubeadm, GKE, EKS and AKS use, or ES256/ES384/ES512 for a P-256/P-384/P-521 key.
 */
import { createHash, generateKeyPairSync, type KeyObject, randomUUID, sign, verify } from 'node:crypto';

/** The algorithms the API server signs service-account tokens with. */
export type ServiceAccountSigningAlgorithm = 'RS256' | 'ES256' | 'ES384' | 'ES512';

/** Key and hash for each algorithm; ECDSA signatures are the JWS r||s form (RFC 7518 section 3.4). */
const ALGORITHMS: Record<
  ServiceAccountSigningAlgorithm,
  { readonly hash: string; readonly curve?: string; readonly jwkCurve?: string }
> = {
  RS256: { hash: 'sha256' },
  ES256: { hash: 'sha256', curve: 'prime256v1', jwkCurve: 'P-256' },
  ES384: { hash: 'sha384', curve: 'secp384r1', jwkCurve: 'P-384' },
  ES512: { hash: 'sha512', curve: 'secp521r1', jwkCurve: 'P-521' },
};

export interface ServiceAccountClaims {
  readonly aud: string[];
  readonly exp: number;
  readonly iat: number;
  readonly nbf: number;
  readonly iss: string;
  readonly jti: string;
  readonly sub: string;
  readonly 'kubernetes.io': {
    readonly namespace: string;
    readonly serviceaccount: { readonly name: string; readonly uid: string };
    readonly pod?: { readonly name: string; readonly uid: string };
  };
}

export interface MintOptions {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly audiences: readonly string[];
  readonly expirationSeconds: number;
  readonly boundPod?: { readonly name: string; readonly uid: string };
  /** Seconds since the epoch; injectable so tests can mint already-expired tokens. */
  readonly now?: number;
}

export type TokenCheck =
  | { readonly ok: true; readonly claims: ServiceAccountClaims }
  | { readonly ok: false; readonly error: string };

/** Largest JWT the server will even try to parse; real tokens are about 1 KiB. */
const MAX_TOKEN_LENGTH = 16 * 1024;

export class ServiceAccountTokenSigner {
  readonly issuer: string;
  readonly keyId: string;
  readonly algorithm: ServiceAccountSigningAlgorithm;
  private readonly privateKey: KeyObject;
  private readonly publicKey: KeyObject;

  constructor(issuer: string, algorithm: ServiceAccountSigningAlgorithm = 'RS256') {
    this.issuer = issuer;
    if (!Object.hasOwn(ALGORITHMS, algorithm))
      throw new TypeError(
        `serviceAccountSigningAlgorithm must be one of ${Object.keys(ALGORITHMS).join(', ')}`,
      );
    this.algorithm = algorithm;
    const curve = ALGORITHMS[algorithm].curve;
    const pair =
      curve === undefined
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : generateKeyPairSync('ec', { namedCurve: curve });
    this.privateKey = pair.privateKey;
    this.publicKey = pair.publicKey;
    // Same derivation as the API server: base64url(SHA-256(DER of the public key)).
    this.keyId = createHash('sha256')
      .update(this.publicKey.export({ type: 'spki', format: 'der' }))
      .digest('base64url');
  }

  mint(options: MintOptions): { token: string; claims: ServiceAccountClaims } {
    const now = options.now ?? Math.floor(Date.now() / 1000);
    const claims: ServiceAccountClaims = {
      aud: [...options.audiences],
      exp: now + options.expirationSeconds,
      iat: now,
      nbf: now,
      iss: this.issuer,
      jti: randomUUID(),
      sub: `system:serviceaccount:${options.namespace}:${options.name}`,
      'kubernetes.io': {
        namespace: options.namespace,
        serviceaccount: { name: options.name, uid: options.uid },
        ...(options.boundPod === undefined
          ? {}
          : { pod: { name: options.boundPod.name, uid: options.boundPod.uid } }),
      },
    };
    const header = { alg: this.algorithm, kid: this.keyId };
    const signingInput = `${base64urlJson(header)}.${base64urlJson(claims)}`;
    const signature = sign(ALGORITHMS[this.algorithm].hash, Buffer.from(signingInput), {
      key: this.privateKey,
      dsaEncoding: 'ieee-p1363',
    });
    return { token: `${signingInput}.${signature.toString('base64url')}`, claims };
  }

  /** Checks shape, signature, issuer and time. Audiences and the service account's existence are the caller's job. */
  check(token: string, nowSeconds = Math.floor(Date.now() / 1000)): TokenCheck {
    if (token.length > MAX_TOKEN_LENGTH) return { ok: false, error: 'token too large' };
    const parts = token.split('.');
    if (parts.length !== 3) return { ok: false, error: 'token is not a JWT' };
    const [headerPart, payloadPart, signaturePart] = parts;
    const header = parseJsonPart(headerPart);
    if (header === undefined || header.alg !== this.algorithm || header.kid !== this.keyId) {
      return { ok: false, error: 'token signed by an unknown key or with an unexpected algorithm' };
    }
    const signature = Buffer.from(signaturePart, 'base64url');
    const valid = verify(
      ALGORITHMS[this.algorithm].hash,
      Buffer.from(`${headerPart}.${payloadPart}`),
      { key: this.publicKey, dsaEncoding: 'ieee-p1363' },
      signature,
    );
    if (!valid) return { ok: false, error: 'invalid signature' };
    const payload = parseJsonPart(payloadPart);
    if (payload === undefined || !isServiceAccountClaims(payload))
      return { ok: false, error: 'token claims are malformed' };
    if (payload.iss !== this.issuer) return { ok: false, error: 'token issuer is not this cluster' };
    if (payload.exp <= nowSeconds) return { ok: false, error: 'token has expired' };
    if (payload.nbf > nowSeconds + 60) return { ok: false, error: 'token is not valid yet' };
    return { ok: true, claims: payload };
  }

  /**
   * The key set served at /openid/v1/jwks: `use`, `kty`, `kid`, `alg` and the public parameters
   * (kubernetes pkg/serviceaccount/openidmetadata.go `publicJWKSFromKeys`).
   */
  jwks(): { keys: Record<string, string>[] } {
    const jwk = this.publicKey.export({ format: 'jwk' }) as Record<string, string>;
    const base = { use: 'sig', kid: this.keyId, alg: this.algorithm };
    const curve = ALGORITHMS[this.algorithm].jwkCurve;
    return {
      keys: [
        curve === undefined
          ? { ...base, kty: 'RSA', n: jwk.n, e: jwk.e }
          : { ...base, kty: 'EC', crv: curve, x: jwk.x, y: jwk.y },
      ],
    };
  }

  publicKeyPem(): string {
    return this.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  }
}

function base64urlJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function parseJsonPart(part: string): Record<string, unknown> | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(part)) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function isServiceAccountClaims(
  value: Record<string, unknown>,
): value is Record<string, unknown> & ServiceAccountClaims {
  const k8s = value['kubernetes.io'] as Record<string, unknown> | undefined;
  const sa = k8s?.serviceaccount as Record<string, unknown> | undefined;
  return (
    Array.isArray(value.aud) &&
    value.aud.every((a) => typeof a === 'string') &&
    typeof value.exp === 'number' &&
    typeof value.nbf === 'number' &&
    typeof value.iss === 'string' &&
    typeof value.sub === 'string' &&
    typeof k8s?.namespace === 'string' &&
    typeof sa?.name === 'string' &&
    typeof sa?.uid === 'string'
  );
}
