import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createCertificateAuthority, createCsr, issueCertificate } from '../../runtime/pki/index.js';
import {
  type BootstrapMessage,
  decodeBootstrapMessage,
  encodeBootstrapMessage,
  MAX_BOOTSTRAP_MESSAGE_BYTES,
  readBootstrapMessage,
} from '../../runtime/tunnel/index.js';
import { duplexPair } from './duplex-pair.js';

const fingerprint = '0ad50c05-6d6b-4a3e-9f5e-1234567890ab';
const csr = createCsr({ commonName: 'cloudtaser-broker' }).csrPem;
const ca = createCertificateAuthority({ commonName: 'test ca' });
const brokerCert = issueCertificate(ca, { commonName: 'cloudtaser-broker' }).certPem;

const request: BootstrapMessage = { v: 1, type: 'bootstrap.request', fingerprint, csr };
const accepted: BootstrapMessage = { v: 1, type: 'bootstrap.accepted', caCert: ca.certPem, brokerCert };
const refused: BootstrapMessage = {
  v: 1,
  type: 'bootstrap.refused',
  code: 'CT_ALREADY_INITIALIZED',
  reason: 'already initialized',
};

const body = (value: unknown) => Buffer.from(JSON.stringify(value));
const frame = (bytes: Buffer) => {
  const out = Buffer.alloc(4 + bytes.length);
  out.writeUInt32BE(bytes.length, 0);
  bytes.copy(out, 4);
  return out;
};

describe('bootstrap messages', () => {
  it('round-trips each message type through encode and decode', () => {
    for (const message of [request, accepted, refused]) {
      const encoded = encodeBootstrapMessage(message);
      expect(encoded.readUInt32BE(0)).toBe(encoded.length - 4);
      expect(decodeBootstrapMessage(encoded.subarray(4))).toEqual(message);
    }
  });

  const invalid: Array<[string, unknown]> = [
    ['an unknown field', { ...request, extra: true }],
    ['a private key smuggled as an extra field', { ...accepted, brokerKey: '-----BEGIN PRIVATE KEY-----' }],
    ['a future version', { ...request, v: 2 }],
    ['a missing version', { type: 'bootstrap.request', fingerprint, csr }],
    ['an unknown type', { v: 1, type: 'bootstrap.hello' }],
    ['a fingerprint that is not a UUID', { ...request, fingerprint: 'kube-system' }],
    ['an upper-case fingerprint', { ...request, fingerprint: fingerprint.toUpperCase() }],
    ['a number where a CSR belongs', { ...request, csr: 42 }],
    ['a certificate where a CSR belongs', { ...request, csr: brokerCert }],
    ['two PEM blocks in one certificate field', { ...accepted, brokerCert: brokerCert + brokerCert }],
    ['a refusal with an unknown code', { ...refused, code: 'EVIL' }],
    ['a refusal with a huge reason', { ...refused, reason: 'x'.repeat(2000) }],
    ['an array', [request]],
    ['null', null],
  ];
  for (const [what, value] of invalid) {
    it(`refuses ${what} with CT_BOOTSTRAP_PROTOCOL`, () => {
      expect(() => decodeBootstrapMessage(body(value))).toThrowError(
        expect.objectContaining({ code: 'CT_BOOTSTRAP_PROTOCOL' }),
      );
    });
  }

  it('refuses a body that is not JSON, and one over the size bound', () => {
    expect(() => decodeBootstrapMessage(Buffer.from('{"v":1,'))).toThrowError(
      expect.objectContaining({ code: 'CT_BOOTSTRAP_PROTOCOL' }),
    );
    expect(() => decodeBootstrapMessage(Buffer.alloc(MAX_BOOTSTRAP_MESSAGE_BYTES + 1, 0x20))).toThrowError(
      expect.objectContaining({ code: 'CT_BOOTSTRAP_PROTOCOL' }),
    );
  });

  it('never accepts arbitrary JSON as a message', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        try {
          const decoded = decodeBootstrapMessage(body(value));
          // Only an exact, well-typed message may pass.
          expect(['bootstrap.request', 'bootstrap.accepted', 'bootstrap.refused']).toContain(decoded.type);
        } catch (err) {
          expect((err as { code: string }).code).toBe('CT_BOOTSTRAP_PROTOCOL');
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('reading one bootstrap message from a stream', () => {
  it('reads a message split across many small chunks', async () => {
    const [a, b] = duplexPair();
    const pending = readBootstrapMessage(b, { timeoutMs: 1000, expect: ['bootstrap.request'] });
    const bytes = encodeBootstrapMessage(request);
    for (let i = 0; i < bytes.length; i += 7) a.write(bytes.subarray(i, i + 7));
    expect(await pending).toEqual(request);
  });

  it('refuses a length prefix over the bound without waiting for the payload', async () => {
    const [a, b] = duplexPair();
    const pending = readBootstrapMessage(b, { timeoutMs: 5000, expect: ['bootstrap.request'] });
    a.write(Buffer.from([0x00, 0x10, 0x00, 0x00]));
    await expect(pending).rejects.toMatchObject({
      code: 'CT_BOOTSTRAP_PROTOCOL',
      message: expect.stringContaining('limit'),
    });
  });

  it('refuses a replayed second message sent behind the first', async () => {
    const [a, b] = duplexPair();
    const pending = readBootstrapMessage(b, { timeoutMs: 1000, expect: ['bootstrap.request'] });
    a.write(Buffer.concat([encodeBootstrapMessage(request), encodeBootstrapMessage(request)]));
    await expect(pending).rejects.toMatchObject({
      code: 'CT_BOOTSTRAP_PROTOCOL',
      message: expect.stringContaining('more than one'),
    });
  });

  it('refuses a message of the wrong type for this step', async () => {
    const [a, b] = duplexPair();
    const pending = readBootstrapMessage(b, {
      timeoutMs: 1000,
      expect: ['bootstrap.accepted', 'bootstrap.refused'],
    });
    a.write(encodeBootstrapMessage(request));
    await expect(pending).rejects.toMatchObject({ code: 'CT_BOOTSTRAP_PROTOCOL' });
  });

  it('fails a truncated message when the peer closes', async () => {
    const [a, b] = duplexPair();
    const pending = readBootstrapMessage(b, { timeoutMs: 1000, expect: ['bootstrap.request'] });
    a.end(encodeBootstrapMessage(request).subarray(0, 50));
    await expect(pending).rejects.toMatchObject({
      code: 'CT_BOOTSTRAP_PROTOCOL',
      message: expect.stringContaining('closed'),
    });
  });

  it('fails a slow peer after the step time', async () => {
    const [a, b] = duplexPair();
    const pending = readBootstrapMessage(b, { timeoutMs: 50, expect: ['bootstrap.request'] });
    a.write(encodeBootstrapMessage(request).subarray(0, 10)); // then nothing: slowloris
    await expect(pending).rejects.toMatchObject({
      code: 'CT_BOOTSTRAP_PROTOCOL',
      message: expect.stringContaining('within 50 ms'),
    });
  });

  it('fails with CT_CANCELLED when aborted', async () => {
    const [, b] = duplexPair();
    const controller = new AbortController();
    const pending = readBootstrapMessage(b, {
      timeoutMs: 1000,
      signal: controller.signal,
      expect: ['bootstrap.request'],
    });
    controller.abort();
    await expect(pending).rejects.toMatchObject({ code: 'CT_CANCELLED' });
  });

  it('refuses a framed body with a bad JSON object', async () => {
    const [a, b] = duplexPair();
    const pending = readBootstrapMessage(b, { timeoutMs: 1000, expect: ['bootstrap.request'] });
    a.write(frame(body({ ...request, v: '1' })));
    await expect(pending).rejects.toMatchObject({ code: 'CT_BOOTSTRAP_PROTOCOL' });
  });
});
