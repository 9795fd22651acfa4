import forge from 'node-forge';
import { createCertificateAuthority, createCsr, issueCertificate, signCsr } from '../../runtime/pki/index.js';
import { type Benchmark, median, sample, sized } from './harness.js';

/** What registration plus one bootstrap cost in key material: CA, bridge client certificate, one signed CSR. */
function generateClusterMaterial(): void {
  const ca = createCertificateAuthority({ commonName: 'cloudtaser cluster bench' });
  issueCertificate(ca, { commonName: 'cloudtaser-bridge', extKeyUsage: ['clientAuth'] });
  const csr = createCsr({ commonName: 'cloudtaser-broker' });
  signCsr(ca, csr.csrPem, { commonName: 'cloudtaser-broker', extKeyUsage: ['serverAuth'] });
}

/** The node-forge RSA-2048 path the source description implies: CA + two leaves, keys from Node's keygen. */
function forgeRsaBaseline(): void {
  const pki = forge.pki;
  const make = (
    subjectCn: string,
    issuer?: { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey },
  ) => {
    const keys = pki.rsa.generateKeyPair({ bits: 2048 });
    const cert = pki.createCertificate();
    cert.publicKey = keys.publicKey;
    cert.serialNumber = '01';
    cert.validity.notBefore = new Date();
    cert.validity.notAfter = new Date(Date.now() + 86_400_000);
    cert.setSubject([{ name: 'commonName', value: subjectCn }]);
    cert.setIssuer(issuer ? issuer.cert.subject.attributes : [{ name: 'commonName', value: subjectCn }]);
    cert.sign(issuer ? issuer.key : keys.privateKey, forge.md.sha256.create());
    return { cert, key: keys.privateKey };
  };
  const ca = make('ca');
  make('broker', ca);
  make('bridge', ca);
}

export const benchmarks: Benchmark[] = [
  {
    name: 'pki',
    async run(ctx) {
      const ours = await sample(sized(ctx, 400, 100, 10), generateClusterMaterial, 10);
      const forgeRuns = await sample(sized(ctx, 7, 3, 1), forgeRsaBaseline, 1);
      const value = median(ours);
      const baseline = median(forgeRuns);
      ctx.log(
        `pki: ${value.toFixed(2)} ms (EC P-256, forge ASN.1 + node:crypto) vs ${baseline.toFixed(0)} ms forge RSA`,
      );
      return [
        {
          name: 'pki.generate_ms',
          value,
          unit: 'ms',
          baseline,
          baselineLabel: 'node-forge RSA-2048 CA + 2 leaves',
          ratio: value / baseline,
          goal: { op: '<=', limit: 10, on: 'value' },
        },
      ];
    },
  },
];
