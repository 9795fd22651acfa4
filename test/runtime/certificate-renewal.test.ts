/**
 * Renewing a broker's certificates through its tunnel (runtime/tunnel/renew.ts), one side at a time, against the
 * parties that should get nothing: on the bridge, a tunnel's broker asking for another key (one a copy of it could
 * use), a broker a newer bootstrap replaced, malformed, oversized and wrong-shaped requests, a pod API name the
 * bootstrap would refuse, a broker asking in a loop, and OpenBao away; on the broker, a bridge before renewals (404)
 * and answers it must not use (another key, another CA, expired, no longer-lived than the current one, not JSON).
 */
import { createHash, X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { serveCertificateRenewal } from '../../runtime/bridge/renewal.js';
import { CloudtaserError } from '../../runtime/core/errors.js';
import {
  createCertificateAuthority,
  createCsr,
  derToPem,
  generateKeyPair,
  issueCertificate,
  type KeyPair,
  pemToDer,
  signCsr,
} from '../../runtime/pki/index.js';
import type { ClusterTrust } from '../../runtime/registration/index.js';
import {
  CERTIFICATE_RENEW_PATH,
  isCertificateRenewRequest,
  MAX_RENEW_REQUEST_BYTES,
  requestRenewal,
  type TunnelRequest,
} from '../../runtime/tunnel/index.js';
import { captureLogger } from '../beacon/helpers.js';
import { tunnelPair } from './tunnel-pair.js';

const ca = createCertificateAuthority({ commonName: 'test cluster ca' });
const bridgeCert = issueCertificate(ca, { commonName: 'cloudtaser-bridge', extKeyUsage: ['clientAuth'] });
const trust: ClusterTrust = { ca, bridgeCertPem: bridgeCert.certPem, bridgeKeyPem: bridgeCert.keyPem! };
const brokerKey = generateKeyPair();
const podApiKey = generateKeyPair();
const keySha256 = (pair: KeyPair) =>
  createHash('sha256')
    .update(pair.publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex');

const csrFor = (pair: KeyPair, dnsNames?: string[]) =>
  createCsr({
    commonName: dnsNames?.[0] ?? 'cloudtaser-broker',
    keyPair: pair,
    ...(dnsNames ? { dnsNames } : {}),
  }).csrPem;

const renewRequest = (body: unknown): TunnelRequest => ({
  method: 'POST',
  path: CERTIFICATE_RENEW_PATH,
  headers: {},
  body: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)),
});

function bridgeSide(overrides: Partial<Parameters<typeof serveCertificateRenewal>[1]> = {}) {
  const { logger, lines } = captureLogger();
  const context = {
    tunnelKeySha256: keySha256(brokerKey),
    recordedKeySha256: () => keySha256(brokerKey) as string | undefined,
    trust: async () => trust,
    days: 365,
    lastSignedAt: { value: Number.NEGATIVE_INFINITY },
    minIntervalMs: 60_000,
    logger,
    ...overrides,
  };
  return { context, lines };
}

const bodyOf = (reply: { body?: Uint8Array | string }) =>
  JSON.parse(Buffer.from(reply.body ?? '').toString());

describe('the bridge renewing a broker certificate', () => {
  it('recognises only POST on the renewal path', () => {
    expect(isCertificateRenewRequest({ method: 'POST', path: CERTIFICATE_RENEW_PATH })).toBe(true);
    expect(isCertificateRenewRequest({ method: 'GET', path: CERTIFICATE_RENEW_PATH })).toBe(false);
    expect(isCertificateRenewRequest({ method: 'POST', path: `${CERTIFICATE_RENEW_PATH}/x` })).toBe(false);
  });

  it("signs the tunnel's own key and the pod API key, with the names and lifetime a bootstrap gives", async () => {
    const { context, lines } = bridgeSide({ days: 30 });
    const { reply, outcome } = await serveCertificateRenewal(
      renewRequest({
        v: 1,
        csr: csrFor(brokerKey),
        podApiCsr: csrFor(podApiKey, ['cloudtaser', 'cloudtaser.ns']),
      }),
      context,
    );
    expect(outcome).toBe('renewed');
    expect(reply.status).toBe(200);
    const answer = bodyOf(reply) as { brokerCert: string; podApiCert: string };
    const broker = new X509Certificate(answer.brokerCert);
    expect(broker.checkIssued(ca.certificate)).toBe(true);
    expect(broker.publicKey.equals(brokerKey.publicKey)).toBe(true);
    expect(broker.subject).toContain('CN=cloudtaser-broker');
    const days = (Date.parse(broker.validTo) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29.9);
    expect(days).toBeLessThan(30.1);
    const podApi = new X509Certificate(answer.podApiCert);
    expect(podApi.publicKey.equals(podApiKey.publicKey)).toBe(true);
    expect(podApi.subjectAltName).toBe('DNS:cloudtaser, DNS:cloudtaser.ns');
    expect(lines.find((l) => l.event === 'bridge.certificate_renewed')).toBeDefined();
  });

  it('refuses a CSR for another key than the tunnel authenticated (a second key a copy could use)', async () => {
    const { context, lines } = bridgeSide();
    const { reply, outcome } = await serveCertificateRenewal(
      renewRequest({ v: 1, csr: csrFor(generateKeyPair()) }),
      context,
    );
    expect([reply.status, outcome]).toEqual([403, 'refused']);
    expect(bodyOf(reply).errors[0]).toMatch(/^CT_RENEWAL_REFUSED: the request is for another key/);
    expect(lines.find((l) => l.event === 'bridge.certificate_renewal_refused')).toMatchObject({
      code: 'CT_RENEWAL_REFUSED',
      status: 403,
    });
    expect(context.lastSignedAt.value).toBe(Number.NEGATIVE_INFINITY);
  });

  it('refuses the broker a newer bootstrap replaced, though its tunnel is still open', async () => {
    const { context } = bridgeSide({ recordedKeySha256: () => keySha256(generateKeyPair()) });
    const { reply } = await serveCertificateRenewal(renewRequest({ v: 1, csr: csrFor(brokerKey) }), context);
    expect(reply.status).toBe(403);
    expect(bodyOf(reply).errors[0]).toMatch(/^CT_BROKER_REPLACED/);
  });

  it('refuses malformed, wrong-shaped, oversized and forged requests with 400, signing nothing', async () => {
    // The tunnel's key, but a signature that does not verify: flip a byte of the signature at the end.
    const der = pemToDer(csrFor(brokerKey), 'CERTIFICATE REQUEST');
    der[der.length - 5] ^= 0xff;
    const forged = derToPem(der, 'CERTIFICATE REQUEST');
    const cases: Array<[string, unknown]> = [
      ['not JSON', '{"v":1,'],
      ['null', 'null'],
      ['no version', { csr: csrFor(brokerKey) }],
      ['another version', { v: 2, csr: csrFor(brokerKey) }],
      ['csr not a string', { v: 1, csr: 5 }],
      ['pod API csr not a string', { v: 1, csr: csrFor(brokerKey), podApiCsr: ['x'] }],
      ['oversized', { v: 1, csr: csrFor(brokerKey), pad: 'x'.repeat(MAX_RENEW_REQUEST_BYTES) }],
      [
        'not a CSR',
        { v: 1, csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----' },
      ],
      ['forged signature', { v: 1, csr: forged }],
    ];
    for (const [what, body] of cases) {
      const { context } = bridgeSide();
      const { reply, outcome } = await serveCertificateRenewal(renewRequest(body), context);
      expect([what, reply.status, outcome]).toEqual([what, 400, 'refused']);
      expect(context.lastSignedAt.value).toBe(Number.NEGATIVE_INFINITY);
    }
  });

  it('refuses pod API names a bootstrap would refuse (wildcards, odd characters), and then signs nothing', async () => {
    for (const names of [['*.cloudtaser.svc'], ['ok.svc', 'not_a_name'], ['ok.svc.']]) {
      const { context } = bridgeSide();
      const { reply } = await serveCertificateRenewal(
        renewRequest({ v: 1, csr: csrFor(brokerKey), podApiCsr: csrFor(podApiKey, names) }),
        context,
      );
      expect(reply.status).toBe(400);
      expect(bodyOf(reply).errors[0]).toContain('plain DNS names');
      expect(context.lastSignedAt.value).toBe(Number.NEGATIVE_INFINITY);
    }
  });

  it('signs at most once per interval per cluster: a broker asking in a loop gets 429 with Retry-After', async () => {
    const { context } = bridgeSide({ minIntervalMs: 60_000 });
    const request = renewRequest({ v: 1, csr: csrFor(brokerKey) });
    expect((await serveCertificateRenewal(request, context)).reply.status).toBe(200);
    const again = await serveCertificateRenewal(request, context);
    expect([again.reply.status, again.outcome]).toEqual([429, 'too_soon']);
    expect(Number(again.reply.headers?.['retry-after'])).toBeGreaterThan(50);
  });

  it('answers 503 with the code when the cluster CA cannot be read from OpenBao', async () => {
    const { context } = bridgeSide({
      trust: async () => {
        throw new CloudtaserError('CT_OPENBAO_UNREACHABLE', 'connection refused');
      },
    });
    const { reply, outcome } = await serveCertificateRenewal(
      renewRequest({ v: 1, csr: csrFor(brokerKey) }),
      context,
    );
    expect([reply.status, outcome]).toEqual([503, 'unavailable']);
    expect(bodyOf(reply).errors[0]).toMatch(/^CT_OPENBAO_UNREACHABLE/);
  });
});

describe('the broker asking for a renewal', () => {
  const current = signCsr(ca, csrFor(brokerKey), { commonName: 'cloudtaser-broker', days: 30 }).certPem;
  const held = { caCertPem: ca.certPem, brokerCertPem: current, privateKey: brokerKey.privateKey };
  const request = { v: 1 as const, csr: csrFor(brokerKey) };

  /** A tunnel whose bridge end answers the renewal with `answer`. */
  async function ask(answer: (body: Buffer) => { status: number; body?: string }) {
    const { broker, bridge } = await tunnelPair(
      () => ({ status: 404 }),
      (req) => answer(req.body),
    );
    try {
      return await requestRenewal(broker, held, request, { timeoutMs: 2_000 });
    } finally {
      bridge.close();
      broker.close();
    }
  }

  it('takes a longer-lived certificate of the cluster CA for its own key', async () => {
    const renewed = signCsr(ca, request.csr, { commonName: 'cloudtaser-broker', days: 365 }).certPem;
    await expect(
      ask(() => ({ status: 200, body: JSON.stringify({ brokerCert: renewed }) })),
    ).resolves.toEqual({
      brokerCert: renewed,
    });
  });

  it('says to upgrade the bridge when it predates renewals (404)', async () => {
    await expect(ask(() => ({ status: 404, body: 'not found' }))).rejects.toMatchObject({
      code: 'CT_RENEWAL_REFUSED',
      details: { status: 404 },
      message: expect.stringContaining('upgrade the bridge'),
    });
  });

  it("passes on the bridge's refusal with its status and text", async () => {
    await expect(
      ask(() => ({
        status: 429,
        body: JSON.stringify({ errors: ['CT_RENEWAL_REFUSED: renewed less than 60 s ago'] }),
      })),
    ).rejects.toMatchObject({ code: 'CT_RENEWAL_REFUSED', details: { status: 429 } });
  });

  it('uses none of the answers it must not trust, and says why', async () => {
    const otherCa = createCertificateAuthority({ commonName: 'rogue ca' });
    const cases: Array<[string, string, RegExp]> = [
      ['not JSON', 'certificate follows', /not JSON/],
      ['no certificate', JSON.stringify({}), /no broker certificate/],
      ['garbage', JSON.stringify({ brokerCert: 'x' }), /does not parse/],
      [
        'another key',
        JSON.stringify({
          brokerCert: signCsr(ca, csrFor(generateKeyPair()), { commonName: 'b', days: 365 }).certPem,
        }),
        /for another key/,
      ],
      [
        'another CA',
        JSON.stringify({ brokerCert: signCsr(otherCa, request.csr, { commonName: 'b', days: 365 }).certPem }),
        /not a valid one of the cluster CA/,
      ],
      [
        'expired',
        JSON.stringify({
          brokerCert: signCsr(ca, request.csr, {
            commonName: 'b',
            days: 1,
            notBefore: new Date(Date.now() - 3 * 86_400_000),
          }).certPem,
        }),
        /not a valid one of the cluster CA/,
      ],
      [
        'not longer-lived',
        JSON.stringify({ brokerCert: signCsr(ca, request.csr, { commonName: 'b', days: 10 }).certPem }),
        /no later than the current one/,
      ],
    ];
    for (const [what, body, why] of cases) {
      const error = await ask(() => ({ status: 200, body })).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect([what, error]).toEqual([what, expect.objectContaining({ code: 'CT_RENEWAL_REFUSED' })]);
      expect((error as Error).message).toMatch(why);
    }
  });

  it('refuses an answer without the pod API certificate it asked for', async () => {
    const renewed = signCsr(ca, request.csr, { commonName: 'cloudtaser-broker', days: 365 }).certPem;
    const { broker, bridge } = await tunnelPair(
      () => ({ status: 404 }),
      () => ({ status: 200, body: JSON.stringify({ brokerCert: renewed }) }),
    );
    try {
      await expect(
        requestRenewal(
          broker,
          { ...held, podApiPrivateKey: podApiKey.privateKey },
          { ...request, podApiCsr: csrFor(podApiKey, ['cloudtaser']) },
          { timeoutMs: 2_000 },
        ),
      ).rejects.toThrow(/no pod API certificate/);
    } finally {
      bridge.close();
      broker.close();
    }
  });
});
