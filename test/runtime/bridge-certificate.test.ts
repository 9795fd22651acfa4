/**
 * The bridge's client certificate for a cluster is stored by `register` and lasts a year; only a re-run of
 * `register` renewed it. A Terraform-managed registration is not re-run while nothing changes, so a year after it
 * every broker refused the bridge and the cluster lost its tunnel. The bridge now mints one in memory from the
 * cluster CA once the stored one has less than 30 days left (or has expired), writing nothing.
 */
import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { withUsableBridgeCertificate } from '../../runtime/bridge/bridge-certificate.js';
import type { BridgeHandle } from '../../runtime/bridge/index.js';
import type { BrokerHandle } from '../../runtime/broker/index.js';
import {
  createCertificateAuthority,
  issueCertificate,
  loadCertificateAuthority,
} from '../../runtime/pki/index.js';
import { loadClusterTrust, paths, RECORDS_MOUNT } from '../../runtime/registration/index.js';
import { captureLogger } from '../beacon/helpers.js';
import { startTestBridge, startTestBroker, useStoreAndReplicas } from './fixtures.js';

const DAY_MS = 86_400_000;

describe('the bridge certificate a cluster tunnel uses', () => {
  const ca = createCertificateAuthority({ commonName: 'test cluster ca' });
  const stored = (days: number, notBefore?: Date) =>
    issueCertificate(ca, { commonName: 'cloudtaser-bridge', extKeyUsage: ['clientAuth'], days, notBefore });

  it('is the stored one while it has more than 30 days left', () => {
    const cert = stored(200);
    const usable = withUsableBridgeCertificate({
      ca,
      bridgeCertPem: cert.certPem,
      bridgeKeyPem: cert.keyPem!,
    });
    expect(usable.trust.bridgeCertPem).toBe(cert.certPem);
    expect(usable.storedNotAfter).toBeUndefined();
  });

  for (const [what, cert] of [
    ['10 days left', stored(10)],
    ['expired', stored(1, new Date(Date.now() - 3 * DAY_MS))],
  ] as const)
    it(`is minted in memory from the cluster CA when the stored one has ${what}`, () => {
      const usable = withUsableBridgeCertificate({
        ca,
        bridgeCertPem: cert.certPem,
        bridgeKeyPem: cert.keyPem!,
      });
      expect(usable.storedNotAfter).toBe(new Date(new X509Certificate(cert.certPem).validTo).toISOString());
      const minted = new X509Certificate(usable.trust.bridgeCertPem);
      expect(minted.checkIssued(ca.certificate)).toBe(true);
      expect(minted.verify(ca.certificate.publicKey)).toBe(true);
      expect(minted.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
      expect(Date.parse(minted.validTo) - Date.now()).toBeGreaterThan(29 * DAY_MS);
      expect(usable.trust.bridgeKeyPem).not.toBe(cert.keyPem);
    });
});

let bridge: BridgeHandle | undefined;
let broker: BrokerHandle | undefined;
const env = useStoreAndReplicas(1, async () => {
  await broker?.close();
  await bridge?.close();
});

describe('a cluster whose stored bridge certificate expired (nobody ran register for a year)', () => {
  it('still gets its tunnel, and the stored record is left as it is', async () => {
    const registration = await env.store.register();
    const cluster = env.store.admin.withNamespace(registration.namespace);
    const trust = await loadClusterTrust(env.store.admin, { namespace: registration.namespace });
    const ca = loadCertificateAuthority(trust.ca.certPem, trust.ca.keyPem);
    const expired = issueCertificate(ca, {
      commonName: 'cloudtaser-bridge',
      extKeyUsage: ['clientAuth'],
      days: 365,
      notBefore: new Date(Date.now() - 366 * DAY_MS),
    });
    const record = (await cluster.kvRead(RECORDS_MOUNT, paths.bridgeClient))!;
    await cluster.kvWrite(RECORDS_MOUNT, paths.bridgeClient, {
      ...record.data,
      certificate: expired.certPem,
      private_key: expired.keyPem!,
    });
    const written = (await cluster.kvRead(RECORDS_MOUNT, paths.bridgeClient))!.version;

    const log = captureLogger();
    bridge = await startTestBridge({
      openbao: env.store.bridge,
      beacons: [env.replicas.address],
      logger: log.logger,
    });
    broker = await startTestBroker({
      fingerprint: registration.fingerprint,
      beacons: [env.replicas.address],
    });
    await broker.waitForPhase('operational', 15_000);
    expect(log.lines.find((l) => l.event === 'bridge.client_certificate_minted')).toMatchObject({
      storedNotAfter: new Date(new X509Certificate(expired.certPem).validTo).toISOString(),
    });
    // Nothing written: the bridge's policy does not allow it, and the next register renews the stored one.
    expect((await cluster.kvRead(RECORDS_MOUNT, paths.bridgeClient))!.version).toBe(written);
  }, 60_000);
});
