/**
 * Both ends of one operational tunnel over an in-memory stream, with certificates of one test cluster CA: for tests
 * of what a bridge or a broker does with a tunnel, without a beacon in between.
 */
import { silentLogger } from '../../runtime/core/index.js';
import { createCertificateAuthority, issueCertificate } from '../../runtime/pki/index.js';
import { acceptTunnel, openTunnel, type TunnelHandler, type TunnelMux } from '../../runtime/tunnel/index.js';
import { duplexPair } from './duplex-pair.js';

const ca = createCertificateAuthority({ commonName: 'test cluster ca' });
const brokerCert = issueCertificate(ca, { commonName: 'cloudtaser-broker', extKeyUsage: ['serverAuth'] });
const bridgeCert = issueCertificate(ca, { commonName: 'cloudtaser-bridge', extKeyUsage: ['clientAuth'] });

const session = (cert: typeof brokerCert, handler?: TunnelHandler) => ({
  caCertPem: ca.certPem,
  certPem: cert.certPem,
  keyPem: cert.keyPem!,
  handshakeTimeoutMs: 3_000,
  limits: { pingIntervalMs: 0 },
  handler,
  logger: silentLogger,
});

/** A tunnel whose broker end serves `brokerHandler` and bridge end `bridgeHandler` (404 without one). */
export async function tunnelPair(
  brokerHandler: TunnelHandler,
  bridgeHandler?: TunnelHandler,
): Promise<{ readonly broker: TunnelMux; readonly bridge: TunnelMux }> {
  const [brokerSide, bridgeSide] = duplexPair();
  const [broker, bridge] = await Promise.all([
    acceptTunnel(brokerSide, session(brokerCert, brokerHandler)),
    openTunnel(bridgeSide, session(bridgeCert, bridgeHandler)),
  ]);
  return { broker: broker.mux, bridge: bridge.mux };
}
