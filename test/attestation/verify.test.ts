import { generateKeyPairSync, sign } from 'node:crypto';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AttestationPolicy,
  attestationAudience,
  parseJwks,
  verifyAttestation,
} from '../../runtime/attestation/index.js';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { createCsr, parseCsr } from '../../runtime/pki/index.js';

const OPERATOR = { namespace: 'cloudtaser-system', name: 'cloudtaser' };

describe('attested bootstrap: verifying a service-account token offline', () => {
  let kube: KubeTestServer;
  let policy: AttestationPolicy;
  let keySha: string;

  beforeAll(async () => {
    kube = await startKubeTestServer();
    await kube.createServiceAccount(OPERATOR.namespace, OPERATOR.name);
    await kube.createServiceAccount('default', 'intruder');
    const response = await undiciFetch(`${kube.url}/openid/v1/jwks`, {
      headers: { authorization: `Bearer ${kube.adminToken}` },
      dispatcher: new Agent({ connect: { ca: kube.caCertPem } }),
    });
    const jwks = await response.json();
    policy = { issuer: kube.issuer, jwks: parseJwks(jwks), serviceAccount: OPERATOR };
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

  it('accepts a token from the cluster bound to this CSR key, for the operator service account', () => {
    expect(verifyAttestation(tokenFor(keySha), keySha, policy).subject).toBe(
      'system:serviceaccount:cloudtaser-system:cloudtaser',
    );
  });

  it('refuses a substituted CSR: the token is bound to another key', () => {
    const other = parseCsr(createCsr({ commonName: 'attacker' }).csrPem).publicKeySha256;
    expect(() => verifyAttestation(tokenFor(keySha), other, policy)).toThrowError(
      expect.objectContaining({ code: 'CT_ATTESTATION_FAILED', details: { reason: 'audience' } }),
    );
  });

  it('refuses a token of another service account (a pod on the cluster that is not the operator)', () => {
    expect(() =>
      verifyAttestation(tokenFor(keySha, { namespace: 'default', name: 'intruder' }), keySha, policy),
    ).toThrowError(expect.objectContaining({ details: { reason: 'subject' } }));
  });

  it('refuses an expired token (a replay after its lifetime) and a token from another issuer', () => {
    const later = new Date(Date.now() + 3_600_000);
    expect(() => verifyAttestation(tokenFor(keySha), keySha, policy, later)).toThrowError(
      expect.objectContaining({ details: { reason: 'expired' } }),
    );
    expect(() =>
      verifyAttestation(tokenFor(keySha), keySha, { ...policy, issuer: 'https://other.example' }),
    ).toThrowError(expect.objectContaining({ details: { reason: 'issuer' } }));
  });

  it('refuses a long-lived token: bootstrap tokens must be short', () => {
    expect(() => verifyAttestation(tokenFor(keySha, OPERATOR, 86_400), keySha, policy)).toThrowError(
      expect.objectContaining({ details: { reason: 'lifetime' } }),
    );
  });

  it('tells the operator to refresh the keys when the cluster rotated its signing key', () => {
    const rotated = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const header = Buffer.from(JSON.stringify({ alg: 'ES256', kid: 'new-key' })).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const claims = Buffer.from(
      JSON.stringify({
        iss: kube.issuer,
        sub: 'system:serviceaccount:cloudtaser-system:cloudtaser',
        aud: [attestationAudience(keySha)],
        iat: now,
        nbf: now,
        exp: now + 600,
      }),
    ).toString('base64url');
    const sig = sign('sha256', Buffer.from(`${header}.${claims}`), {
      key: rotated.privateKey,
      dsaEncoding: 'ieee-p1363',
    }).toString('base64url');
    const err = (() => {
      try {
        verifyAttestation(`${header}.${claims}.${sig}`, keySha, policy);
      } catch (e) {
        return e as Error & { details: { reason: string } };
      }
    })();
    expect(err?.details.reason).toBe('unknown-key');
    expect(err?.message).toMatch(/rotated.*refresh the registration's keys/);
  });

  it('refuses a forged signature, alg none, and malformed or oversized tokens', () => {
    const good = tokenFor(keySha);
    const [h, c] = good.split('.');
    const forged = `${h}.${c}.${Buffer.alloc(64, 1).toString('base64url')}`;
    expect(() => verifyAttestation(forged, keySha, policy)).toThrowError(
      expect.objectContaining({ details: { reason: 'signature' } }),
    );
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${c}.`;
    expect(() => verifyAttestation(none, keySha, policy)).toThrowError(
      expect.objectContaining({ details: { reason: 'malformed' } }),
    );
    for (const bad of ['', 'a.b', 'x'.repeat(10_000), '!!.??.**']) {
      expect(() => verifyAttestation(bad, keySha, policy)).toThrowError(
        expect.objectContaining({ code: 'CT_ATTESTATION_FAILED' }),
      );
    }
  });

  it('accepts only public keys in a registration JWKS', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    expect(() => parseJwks({ keys: [privateKey.export({ format: 'jwk' })] })).toThrowError(
      expect.objectContaining({ code: 'CT_INVALID_ARGUMENT' }),
    );
    expect(() => parseJwks('not json')).toThrowError(
      expect.objectContaining({ code: 'CT_INVALID_ARGUMENT' }),
    );
  });
});
