import { createPrivateKey, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { CloudtaserError } from '../core/errors.js';
import {
  certificateMatchesKey,
  certificateSha256,
  createCertificateAuthority,
  createCsr,
  isIssuedBy,
  issueCertificate,
  issueSelfSignedSync,
  loadCertificateAuthority,
  parseCsr,
  pemToDer,
  privateKeyToPem,
  signCsr,
} from './index.js';

describe('cluster PKI', () => {
  it('creates a CA that is CA:true with pathLen 0 and certSign usage', () => {
    const ca = createCertificateAuthority({ commonName: 'cloudtaser cluster 0ad50c05' });
    const cert = new X509Certificate(ca.certPem);
    expect(cert.ca).toBe(true);
    expect(cert.subject).toContain('CN=cloudtaser cluster 0ad50c05');
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.checkPrivateKey(createPrivateKey(ca.keyPem))).toBe(true);
    const lifetimeDays = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 86_400_000;
    expect(Math.round(lifetimeDays)).toBe(3650);
  });

  it('issues a bridge client certificate the CA verifies, and it is not a CA', () => {
    const ca = createCertificateAuthority({ commonName: 'ca' });
    const bridge = issueCertificate(ca, { commonName: 'cloudtaser-bridge', extKeyUsage: ['clientAuth'] });
    const cert = new X509Certificate(bridge.certPem);
    expect(cert.ca).toBe(false);
    expect(isIssuedBy(bridge.certPem, ca.certPem)).toBe(true);
    expect(cert.keyUsage ?? []).toContain('1.3.6.1.5.5.7.3.2');
    expect(certificateMatchesKey(bridge.certPem, createPrivateKey(bridge.keyPem!))).toBe(true);
  });

  it('signs a CSR with the signer-chosen subject and names, keeping the requester key', () => {
    const ca = createCertificateAuthority({ commonName: 'ca' });
    const csr = createCsr({ commonName: 'attacker-chosen', dnsNames: ['cloudtaser.cloudtaser-system.svc'] });
    const parsed = parseCsr(csr.csrPem);
    expect(parsed.commonName).toBe('attacker-chosen');
    expect(parsed.dnsNames).toEqual(['cloudtaser.cloudtaser-system.svc']);
    const issued = signCsr(ca, csr.csrPem, {
      commonName: 'cloudtaser-broker',
      dnsNames: ['broker.local'],
      extKeyUsage: ['serverAuth'],
    });
    const cert = new X509Certificate(issued.certPem);
    expect(cert.subject).toContain('CN=cloudtaser-broker');
    expect(cert.subjectAltName).toBe('DNS:broker.local');
    expect(certificateMatchesKey(issued.certPem, csr.privateKey)).toBe(true);
    expect(issued.keyPem).toBeUndefined();
  });

  it('refuses a CSR whose signature was tampered with', () => {
    const csr = createCsr({ commonName: 'x' });
    const der = Buffer.from(csr.csrDer);
    der[der.length - 3] ^= 0xff;
    expect(() => parseCsr(der)).toThrowError(expect.objectContaining({ code: 'CT_PKI_INVALID_CSR' }));
  });

  it.each([
    ['garbage', Buffer.from('hello world')],
    ['empty', Buffer.alloc(0)],
    ['oversized', Buffer.alloc(10_000, 0x30)],
    ['truncated', () => createCsr({ commonName: 'x' }).csrDer.subarray(0, 40)],
  ])('refuses a %s CSR with CT_PKI_INVALID_CSR', (_name, input) => {
    const bytes = typeof input === 'function' ? input() : input;
    expect(() => parseCsr(bytes)).toThrowError(CloudtaserError);
  });

  it('refuses a CSR whose public key was swapped (substituted key, original signature)', () => {
    const a = createCsr({ commonName: 'a' });
    const b = createCsr({ commonName: 'a' });
    // Splice b's SPKI into a's request: same length for P-256, so the DER stays well-formed.
    const spkiA = a.privateKey.export({ format: 'der', type: 'pkcs8' });
    expect(spkiA.length).toBeGreaterThan(0);
    const aDer = Buffer.from(a.csrDer);
    const bDer = Buffer.from(b.csrDer);
    const keyA = parseCsr(aDer).publicKey.export({ format: 'der', type: 'spki' });
    const keyB = parseCsr(bDer).publicKey.export({ format: 'der', type: 'spki' });
    const at = aDer.indexOf(keyA);
    keyB.copy(aDer, at);
    expect(() => parseCsr(aDer)).toThrowError(expect.objectContaining({ code: 'CT_PKI_INVALID_CSR' }));
  });

  it('hashes the CA DER for the operational room', () => {
    const ca = createCertificateAuthority({ commonName: 'ca' });
    expect(certificateSha256(ca.certPem)).toMatch(/^[0-9a-f]{64}$/);
    expect(pemToDer(ca.certPem, 'CERTIFICATE').equals(ca.certDer)).toBe(true);
  });

  it('round-trips a CA through its stored PEMs and refuses a mismatched key', () => {
    const ca = createCertificateAuthority({ commonName: 'ca' });
    const other = createCertificateAuthority({ commonName: 'other' });
    expect(loadCertificateAuthority(ca.certPem, ca.keyPem).certDer.equals(ca.certDer)).toBe(true);
    expect(() => loadCertificateAuthority(ca.certPem, other.keyPem)).toThrowError(
      expect.objectContaining({ code: 'CT_PKI_INVALID_CERT' }),
    );
  });

  it('treats a certificate from another CA, or not yet valid, as not issued by this CA', () => {
    const ca = createCertificateAuthority({ commonName: 'ca' });
    const other = createCertificateAuthority({ commonName: 'other' });
    const leaf = issueCertificate(other, { commonName: 'x' });
    expect(isIssuedBy(leaf.certPem, ca.certPem)).toBe(false);
    const future = issueCertificate(ca, { commonName: 'x', notBefore: new Date(Date.now() + 86_400_000) });
    expect(isIssuedBy(future.certPem, ca.certPem)).toBe(false);
  });

  it('completes a real mutual TLS 1.3 handshake with a signed CSR and a bridge certificate', async () => {
    const ca = createCertificateAuthority({ commonName: 'ca' });
    const brokerCsr = createCsr({ commonName: 'broker' });
    const broker = signCsr(ca, brokerCsr.csrPem, {
      commonName: 'cloudtaser-broker',
      extKeyUsage: ['serverAuth'],
    });
    const bridge = issueCertificate(ca, { commonName: 'cloudtaser-bridge', extKeyUsage: ['clientAuth'] });
    const server = tls.createServer({
      cert: broker.certPem,
      key: privateKeyToPem(brokerCsr.privateKey),
      ca: ca.certPem,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
    });
    server.on('secureConnection', (socket) => socket.end('ok'));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const client = tls.connect({
      port,
      host: '127.0.0.1',
      cert: bridge.certPem,
      key: bridge.keyPem,
      ca: ca.certPem,
      checkServerIdentity: () => undefined,
    });
    const [data] = await once(client, 'data');
    expect(String(data)).toBe('ok');
    expect(client.getProtocol()).toBe('TLSv1.3');
    client.destroy();
    server.close();
  });

  it('issues a self-signed server certificate with IP and DNS names usable as its own CA', () => {
    const cert = issueSelfSignedSync({
      commonName: 'localhost',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1', '::1'],
    });
    const x = new X509Certificate(cert.certPem);
    expect(x.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    expect(x.checkHost('localhost')).toBe('localhost');
    expect(x.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(x.ca).toBe(true);
  });
});
