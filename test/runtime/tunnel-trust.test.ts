/**
 * Who the broker's end of the operational mutual TLS lets in: only a client certificate issued by this
 * cluster's CA. Every refusal names its reason, because that reason is what an on-call engineer reads.
 */
import { connect as tlsConnect } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../runtime/core/index.js';
import { createCertificateAuthority, issueCertificate } from '../../runtime/pki/index.js';
import { acceptTunnel, openTunnel } from '../../runtime/tunnel/index.js';
import { duplexPair } from './duplex-pair.js';

const ca = createCertificateAuthority({ commonName: 'cluster ca' });
const otherCa = createCertificateAuthority({ commonName: 'some other cluster ca' });
const broker = issueCertificate(ca, { commonName: 'cloudtaser-broker', extKeyUsage: ['serverAuth'] });
const common = { caCertPem: ca.certPem, handshakeTimeoutMs: 3_000, logger: silentLogger };

function brokerEnd() {
  const [brokerSide, bridgeSide] = duplexPair();
  const accepted = acceptTunnel(brokerSide, { ...common, certPem: broker.certPem, keyPem: broker.keyPem! });
  return { accepted, bridgeSide };
}

describe('operational mutual TLS, broker side', () => {
  it('refuses a bridge certificate from another CA, saying it is not issued by the cluster CA', async () => {
    const stranger = issueCertificate(otherCa, {
      commonName: 'cloudtaser-bridge',
      extKeyUsage: ['clientAuth'],
    });
    const { accepted, bridgeSide } = brokerEnd();
    const opened = openTunnel(bridgeSide, {
      ...common,
      certPem: stranger.certPem,
      keyPem: stranger.keyPem!,
    }).catch((err: Error) => err);
    const refusal = await accepted.then(
      () => undefined,
      (err: { code: string; message: string }) => err,
    );
    expect(refusal?.code).toBe('CT_TUNNEL_CLOSED');
    expect(refusal?.message).toMatch(/not issued by the cluster CA/);
    expect(await opened).toBeInstanceOf(Error);
  });

  it('refuses a client that sends no certificate at all', async () => {
    const { accepted, bridgeSide } = brokerEnd();
    const bare = tlsConnect({ socket: bridgeSide, ca: ca.certPem, checkServerIdentity: () => undefined });
    bare.on('error', () => {});
    const refusal = await accepted.then(
      () => undefined,
      (err: { code: string; message: string }) => err,
    );
    expect(refusal?.code).toBe('CT_TUNNEL_CLOSED');
    expect(refusal?.message).toMatch(/certificate was refused/);
    bare.destroy();
  });
});
