/**
 * Child for the clock-skew tests: runs both ends of the operational mutual TLS in this process with a broker
 * certificate outside its validity (CLOUDTASER_SKEW = 'future' | 'expired') and prints one JSON line with what
 * each end reported. A crash (uncaught error) shows as a non-zero exit with no line.
 */
import { silentLogger } from '../../runtime/core/index.js';
import { createCertificateAuthority, issueCertificate } from '../../runtime/pki/index.js';
import { acceptTunnel, openTunnel } from '../../runtime/tunnel/index.js';
import { duplexPair } from '../runtime/duplex-pair.js';

const DAY_MS = 86_400_000;
const ca = createCertificateAuthority({ commonName: 'skew child ca' });
const future = process.env.CLOUDTASER_SKEW === 'future';
const broker = issueCertificate(ca, {
  commonName: 'cloudtaser-broker',
  extKeyUsage: ['serverAuth'],
  notBefore: new Date(Date.now() + (future ? DAY_MS : -3 * DAY_MS)),
  days: future ? 365 : 1,
});
const bridge = issueCertificate(ca, { commonName: 'cloudtaser-bridge', extKeyUsage: ['clientAuth'] });
const [brokerEnd, bridgeEnd] = duplexPair();
const common = { caCertPem: ca.certPem, handshakeTimeoutMs: 3_000, logger: silentLogger };
const results = await Promise.allSettled([
  acceptTunnel(brokerEnd, { ...common, certPem: broker.certPem, keyPem: broker.keyPem! }),
  openTunnel(bridgeEnd, { ...common, certPem: bridge.certPem, keyPem: bridge.keyPem! }),
]);
// Give late 'error' events a chance to surface as the crash they would be in a bridge process.
await new Promise((resolve) => setTimeout(resolve, 200));
const describe = (r: PromiseSettledResult<unknown>) =>
  r.status === 'fulfilled' ? 'open' : `${r.reason.code}: ${r.reason.message}`;
process.stdout.write(`${JSON.stringify({ broker: describe(results[0]), bridge: describe(results[1]) })}\n`);
process.exit(0);
