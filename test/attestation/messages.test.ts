import { describe, expect, it } from 'vitest';
import { createCsr } from '../../runtime/pki/index.js';
import {
  decodeBootstrapMessage,
  encodeBootstrapMessage,
  MAX_ATTESTATION_TOKEN_CHARS,
  MAX_BOOTSTRAP_MESSAGE_BYTES,
} from '../../runtime/tunnel/index.js';

const fingerprint = '0ad50c05-6d6b-4a3e-9f5e-1234567890ab';
const csr = createCsr({ commonName: 'cloudtaser-broker' }).csrPem;
const podApiCsr = createCsr({ commonName: 'cloudtaser', dnsNames: ['cloudtaser'] }).csrPem;
const part = (n: number) => 'A'.repeat(n);
const token = `${part(40)}.${part(600)}.${part(342)}`;
const body = (value: unknown) => Buffer.from(JSON.stringify(value));

describe('bootstrap request with an attestation token', () => {
  it('round-trips a request carrying a token next to both CSRs', () => {
    const request = {
      v: 1,
      type: 'bootstrap.request',
      fingerprint,
      csr,
      podApiCsr,
      attestation: token,
    } as const;
    expect(decodeBootstrapMessage(encodeBootstrapMessage(request).subarray(4))).toEqual(request);
  });

  it('fits the largest accepted token with both CSRs within the message bound', () => {
    const big = `${part(100)}.${part(MAX_ATTESTATION_TOKEN_CHARS - 100 - 100 - 2)}.${part(100)}`;
    expect(big.length).toBe(MAX_ATTESTATION_TOKEN_CHARS);
    const encoded = encodeBootstrapMessage({
      v: 1,
      type: 'bootstrap.request',
      fingerprint,
      csr,
      podApiCsr,
      attestation: big,
    });
    expect(encoded.length - 4).toBeLessThanOrEqual(MAX_BOOTSTRAP_MESSAGE_BYTES);
  });

  it('refuses a malformed, oversized or non-string token as a protocol error', () => {
    const hostile: unknown[] = [
      '',
      'not-a-jws',
      'a.b',
      'a.b.c.d',
      'a.b.c\n',
      'a.b+.c',
      `${part(10)}.${part(MAX_ATTESTATION_TOKEN_CHARS)}.${part(10)}`,
      42,
      null,
      ['a.b.c'],
      { token: 'a.b.c' },
    ];
    for (const attestation of hostile) {
      expect(() =>
        decodeBootstrapMessage(body({ v: 1, type: 'bootstrap.request', fingerprint, csr, attestation })),
      ).toThrowError(expect.objectContaining({ code: 'CT_BOOTSTRAP_PROTOCOL' }));
    }
  });

  it('does not accept an attestation field on the bridge answers', () => {
    expect(() =>
      decodeBootstrapMessage(
        body({
          v: 1,
          type: 'bootstrap.refused',
          code: 'CT_ATTESTATION_FAILED',
          reason: 'x',
          attestation: token,
        }),
      ),
    ).toThrowError(expect.objectContaining({ code: 'CT_BOOTSTRAP_PROTOCOL' }));
  });
});
