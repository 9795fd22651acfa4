import { createHmac, generateKeyPairSync, type KeyObject, sign, verify } from 'node:crypto';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AttestationPolicy,
  attestationAudience,
  parseJwks,
  refusePrivateJwks,
  verifyAttestation,
} from '../../runtime/attestation/index.js';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { createCsr, parseCsr } from '../../runtime/pki/index.js';

const OPERATOR = { namespace: 'cloudtaser-system', name: 'cloudtaser' };
const SUBJECT = 'system:serviceaccount:cloudtaser-system:cloudtaser';

async function fetchJwks(kube: KubeTestServer): Promise<unknown> {
  const dispatcher = new Agent({ connect: { ca: kube.caCertPem } });
  try {
    const response = await undiciFetch(`${kube.url}/openid/v1/jwks`, {
      headers: { authorization: `Bearer ${kube.adminToken}` },
      dispatcher,
    });
    return await response.json();
  } finally {
    await dispatcher.close();
  }
}

const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A token signed by hand, for the cases the API server (and jose) would never sign. */
function craftToken(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
  signer: (input: Buffer) => Buffer,
) {
  const input = `${part(header)}.${part(claims)}`;
  return `${input}.${signer(Buffer.from(input)).toString('base64url')}`;
}

const ecdsa = (hash: string, key: KeyObject) => (input: Buffer) =>
  sign(hash, input, { key, dsaEncoding: 'ieee-p1363' });
const rsa = (key: KeyObject) => (input: Buffer) => sign('sha256', input, key);

function claimsFor(keySha: string, issuer: string): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: issuer,
    sub: SUBJECT,
    aud: [attestationAudience(keySha)],
    iat: now,
    nbf: now,
    exp: now + 600,
  };
}

async function failureOf(promise: Promise<unknown>): Promise<Error & { details: { reason: string } }> {
  try {
    await promise;
  } catch (err) {
    return err as Error & { details: { reason: string } };
  }
  throw new Error('expected the token to be refused');
}

async function reasonOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (err) {
    expect(err).toMatchObject({ code: 'CT_ATTESTATION_FAILED' });
    return (err as { details: { reason: string } }).details.reason;
  }
}

describe('attested bootstrap: verifying a service-account token offline', () => {
  let kube: KubeTestServer;
  let policy: AttestationPolicy;
  let keySha: string;

  beforeAll(async () => {
    kube = await startKubeTestServer();
    await kube.createServiceAccount(OPERATOR.namespace, OPERATOR.name);
    await kube.createServiceAccount('default', 'intruder');
    policy = { issuer: kube.issuer, jwks: parseJwks(await fetchJwks(kube)), serviceAccount: OPERATOR };
    keySha = parseCsr(createCsr({ commonName: 'broker' }).csrPem).publicKeySha256;
  });
  afterAll(async () => {
    await kube?.close();
  });

  const tokenFor = (sha: string, account = OPERATOR, expirationSeconds = 600) =>
    kube.issueServiceAccountToken(account.namespace, account.name, {
      audiences: [attestationAudience(sha)],
      expirationSeconds,
    });

  it('accepts an RS256 token (what kubeadm, GKE, EKS and AKS clusters sign) bound to this CSR key, for the operator service account', async () => {
    const token = tokenFor(keySha);
    expect(JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString()).alg).toBe('RS256');
    expect((await verifyAttestation(token, keySha, policy)).subject).toBe(SUBJECT);
  });

  it('refuses a substituted CSR: the token is bound to another key', async () => {
    const other = parseCsr(createCsr({ commonName: 'attacker' }).csrPem).publicKeySha256;
    expect(await reasonOf(verifyAttestation(tokenFor(keySha), other, policy))).toBe('audience');
  });

  it('refuses a token of another service account (a pod on the cluster that is not the operator)', async () => {
    const intruder = tokenFor(keySha, { namespace: 'default', name: 'intruder' });
    expect(await reasonOf(verifyAttestation(intruder, keySha, policy))).toBe('subject');
  });

  it('refuses an expired token (a replay after its lifetime) and a token from another issuer', async () => {
    const later = new Date(Date.now() + 3_600_000);
    expect(await reasonOf(verifyAttestation(tokenFor(keySha), keySha, policy, later))).toBe('expired');
    expect(
      await reasonOf(
        verifyAttestation(tokenFor(keySha), keySha, { ...policy, issuer: 'https://other.example' }),
      ),
    ).toBe('issuer');
  });

  it('refuses a long-lived token: bootstrap tokens must be short', async () => {
    expect(await reasonOf(verifyAttestation(tokenFor(keySha, OPERATOR, 86_400), keySha, policy))).toBe(
      'lifetime',
    );
  });

  it('tells the operator to refresh the keys when the cluster rotated its signing key', async () => {
    const rotated = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const token = craftToken(
      { alg: 'RS256', kid: 'new-key' },
      claimsFor(keySha, kube.issuer),
      rsa(rotated.privateKey),
    );
    const err = await failureOf(verifyAttestation(token, keySha, policy));
    expect(err?.details.reason).toBe('unknown-key');
    expect(err?.message).toMatch(/rotated.*refresh the registration's keys/);
  });

  it('refuses a forged signature, alg none, and malformed or oversized tokens', async () => {
    const [h, c] = tokenFor(keySha).split('.');
    const forged = `${h}.${c}.${Buffer.alloc(256, 1).toString('base64url')}`;
    expect(await reasonOf(verifyAttestation(forged, keySha, policy))).toBe('signature');
    const none = `${part({ alg: 'none' })}.${c}.`;
    expect(await reasonOf(verifyAttestation(none, keySha, policy))).toBe('algorithm');
    const malformed = {
      empty: '',
      'two parts': 'a.b',
      oversized: 'x'.repeat(10_000),
      'not base64url': '!!.??.**',
      'no signature part': `${h}.${c}`,
      'claims not base64url': `${h}.!!.${Buffer.alloc(8).toString('base64url')}`,
    };
    const reasons: Record<string, string | undefined> = {};
    for (const [name, bad] of Object.entries(malformed))
      reasons[name] = await reasonOf(verifyAttestation(bad, keySha, policy));
    expect(reasons).toEqual({
      empty: 'malformed',
      'two parts': 'malformed',
      oversized: 'malformed',
      'not base64url': 'malformed',
      'no signature part': 'malformed',
      // The signature is checked over the raw parts before the claims are decoded.
      'claims not base64url': 'signature',
    });
  });

  it('refuses a token whose header carries crit, even when the signature is good', async () => {
    const kid = policy.jwks.keys[0].kid;
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const own: AttestationPolicy = {
      ...policy,
      jwks: parseJwks({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' }] }),
    };
    const claims = claimsFor(keySha, kube.issuer);
    const plain = craftToken({ alg: 'RS256', kid }, claims, rsa(privateKey));
    expect((await verifyAttestation(plain, keySha, own)).subject).toBe(SUBJECT);
    for (const crit of [['exp'], ['b64'], []]) {
      const token = craftToken({ alg: 'RS256', kid, crit, b64: true, exp: 1 }, claims, rsa(privateKey));
      expect(await reasonOf(verifyAttestation(token, keySha, own))).toBe('crit');
    }
  });

  it('refuses HS256 made with the RSA public key as the secret (algorithm confusion)', async () => {
    const jwk = policy.jwks.keys[0];
    const token = craftToken({ alg: 'HS256', kid: jwk.kid }, claimsFor(keySha, kube.issuer), (input) =>
      createHmac('sha256', JSON.stringify(jwk)).update(input).digest(),
    );
    expect(await reasonOf(verifyAttestation(token, keySha, policy))).toBe('algorithm');
  });

  it('accepts only public keys of a usable type and size in a registration JWKS', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    expect(() => parseJwks({ keys: [privateKey.export({ format: 'jwk' })] })).toThrowError(
      expect.objectContaining({ code: 'CT_INVALID_ARGUMENT' }),
    );
    expect(() => parseJwks('not json')).toThrowError(
      expect.objectContaining({ code: 'CT_INVALID_ARGUMENT' }),
    );
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
    expect(() => parseJwks({ keys: [weak] })).toThrowError(/at least 2048 bits/);
    const strong = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' });
    expect(parseJwks({ keys: [weak, { ...strong, kid: 'ok' }] }).keys.map((k) => k.kid)).toEqual(['ok']);
    // Given by a person (CLI file, Terraform attribute), a private key beside a usable public one is refused, not
    // dropped: the text travels into Terraform plans and state (before the fix the private "d" was kept there while
    // OpenBao got only the public key). Read from a cluster, parseJwks drops it.
    const mixed = {
      keys: [
        { ...strong, kid: 'ok' },
        { ...privateKey.export({ format: 'jwk' }), kid: 'signer' },
      ],
    };
    expect(() => refusePrivateJwks(mixed)).toThrowError(/private key \(key "signer" has private members/);
    expect(() => refusePrivateJwks(JSON.stringify(mixed))).toThrowError(
      expect.objectContaining({ code: 'CT_INVALID_ARGUMENT' }),
    );
    expect(() => refusePrivateJwks({ keys: [{ ...strong, kid: 'ok' }] })).not.toThrow();
    expect(parseJwks(mixed).keys.map((k) => k.kid)).toEqual(['ok']);
  });
});

describe('attestation: the signing algorithm must fit the registered key', () => {
  const keySha = 'a'.repeat(64);
  const issuer = 'https://kubernetes.default.svc.cluster.local';
  const policyWith = (keys: Record<string, unknown>[]): AttestationPolicy => ({
    issuer,
    // Built directly, as a registration stored before stricter JWKS checks would hold it.
    jwks: { keys },
    serviceAccount: OPERATOR,
  });
  const jwkOf = (key: KeyObject, extra: Record<string, unknown>) => ({
    ...key.export({ format: 'jwk' }),
    ...extra,
  });

  it.each([
    ['ES256', 'P-256', 'sha256'],
    ['ES384', 'P-384', 'sha384'],
    ['ES512', 'P-521', 'sha512'],
  ])('accepts %s from a %s key', async (alg, curve, hash) => {
    const pair = generateKeyPairSync('ec', { namedCurve: curve });
    const policy = policyWith([jwkOf(pair.publicKey, { kid: 'k', alg, use: 'sig' })]);
    const token = craftToken({ alg, kid: 'k' }, claimsFor(keySha, issuer), ecdsa(hash, pair.privateKey));
    expect((await verifyAttestation(token, keySha, policy)).subject).toBe(SUBJECT);
  });

  it('refuses an ES256 signature made with a P-384 key (which Node crypto alone would accept)', async () => {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const policy = policyWith([jwkOf(pair.publicKey, { kid: 'k' })]);
    const token = craftToken(
      { alg: 'ES256', kid: 'k' },
      claimsFor(keySha, issuer),
      ecdsa('sha256', pair.privateKey),
    );
    const [h, c, s] = token.split('.');
    const nodeAlone = verify(
      'sha256',
      Buffer.from(`${h}.${c}`),
      { key: pair.publicKey, dsaEncoding: 'ieee-p1363' },
      Buffer.from(s, 'base64url'),
    );
    expect(nodeAlone).toBe(true);
    expect(await reasonOf(verifyAttestation(token, keySha, policy))).toBe('key-mismatch');
  });

  it('refuses an RS256 token signed with a 1024-bit RSA key', async () => {
    const pair = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const policy = policyWith([jwkOf(pair.publicKey, { kid: 'k' })]);
    const token = craftToken({ alg: 'RS256', kid: 'k' }, claimsFor(keySha, issuer), rsa(pair.privateKey));
    const err = await failureOf(verifyAttestation(token, keySha, policy));
    expect(err.details.reason).toBe('weak-key');
    expect(err.message).toMatch(/1024 bits.*at least 2048/);
  });

  it('refuses an algorithm that does not fit the key: RS256 against an EC key, ES256 against an RSA key, a JWK pinned to another alg', async () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const rsaPair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const claims = claimsFor(keySha, issuer);
    const rsOnEc = craftToken({ alg: 'RS256', kid: 'ec' }, claims, rsa(rsaPair.privateKey));
    expect(
      await reasonOf(verifyAttestation(rsOnEc, keySha, policyWith([jwkOf(ec.publicKey, { kid: 'ec' })]))),
    ).toBe('key-mismatch');
    const esOnRsa = craftToken({ alg: 'ES256', kid: 'rsa' }, claims, ecdsa('sha256', ec.privateKey));
    expect(
      await reasonOf(
        verifyAttestation(esOnRsa, keySha, policyWith([jwkOf(rsaPair.publicKey, { kid: 'rsa' })])),
      ),
    ).toBe('key-mismatch');
    const pinned = policyWith([jwkOf(ec.publicKey, { kid: 'ec', alg: 'ES384' })]);
    const es256 = craftToken({ alg: 'ES256', kid: 'ec' }, claims, ecdsa('sha256', ec.privateKey));
    expect(await reasonOf(verifyAttestation(es256, keySha, pinned))).toBe('key-mismatch');
  });
});

describe.each(['ES256', 'ES384', 'ES512'] as const)('a cluster that signs with %s', (algorithm) => {
  let kube: KubeTestServer;
  beforeAll(async () => {
    kube = await startKubeTestServer({ serviceAccountSigningAlgorithm: algorithm });
    await kube.createServiceAccount(OPERATOR.namespace, OPERATOR.name);
  });
  afterAll(async () => {
    await kube?.close();
  });

  it('serves its key in the JWKS and its tokens verify', async () => {
    const jwks = (await fetchJwks(kube)) as { keys: Array<{ alg: string }> };
    expect(jwks.keys.map((k) => k.alg)).toEqual([algorithm]);
    const policy = { issuer: kube.issuer, jwks: parseJwks(jwks), serviceAccount: OPERATOR };
    const keySha = 'b'.repeat(64);
    const token = kube.issueServiceAccountToken(OPERATOR.namespace, OPERATOR.name, {
      audiences: [attestationAudience(keySha)],
      expirationSeconds: 600,
    });
    expect(JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString()).alg).toBe(algorithm);
    expect((await verifyAttestation(token, keySha, policy)).subject).toBe(SUBJECT);
  });
});
