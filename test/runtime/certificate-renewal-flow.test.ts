/**
 * A broker that runs longer than its certificate lasts. Before renewals, the certificate from the bootstrap (a
 * year) was all it had: once expired, the bridge refused its next tunnel, and a broker without attestation could
 * not bootstrap again without a re-arm. Here the bridge signs 5-second certificates and the broker renews 3 seconds
 * ahead: it renews through the live tunnel, the next tunnel after the first certificate expired comes up at once
 * without a bootstrap, and the pod API serves its renewed certificate to new connections.
 */
import type { X509Certificate } from 'node:crypto';
import { connect as tlsConnect } from 'node:tls';
import { describe, expect, it } from 'vitest';
import type { BridgeHandle } from '../../runtime/bridge/index.js';
import type { BrokerHandle } from '../../runtime/broker/index.js';
import { captureLogger } from '../beacon/helpers.js';
import { waitUntil } from '../support/wait.js';
import { FAST_BRIDGE_TIMING, startTestBridge, startTestBroker, useStoreAndReplicas } from './fixtures.js';

/** The signer backdates 5 minutes: this lifetime leaves a certificate valid for 5 s after it is signed. */
const FIVE_SECONDS_DAYS = (5 * 60_000 + 5_000) / 86_400_000;

let bridge: BridgeHandle | undefined;
let broker: BrokerHandle | undefined;
const env = useStoreAndReplicas(1, async () => {
  await broker?.close();
  await bridge?.close();
});

async function podApiCertificate(url: string): Promise<X509Certificate> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: hostname, port: Number(port), rejectUnauthorized: false }, () => {
      const cert = socket.getPeerX509Certificate();
      socket.destroy();
      if (cert) resolve(cert);
      else reject(new Error('no certificate'));
    });
    socket.on('error', reject);
  });
}

describe('a broker outliving its certificate', () => {
  it('renews it through the tunnel, reconnects after the first one expired, and serves pods the new one', async () => {
    const { fingerprint } = await env.store.register();
    const bridgeLog = captureLogger();
    const brokerLog = captureLogger();
    bridge = await startTestBridge({
      openbao: env.store.bridge,
      beacons: [env.replicas.address],
      logger: bridgeLog.logger,
      timing: { ...FAST_BRIDGE_TIMING, brokerCertificateDays: FIVE_SECONDS_DAYS, renewalMinIntervalMs: 500 },
    });
    broker = await startTestBroker({
      fingerprint,
      beacons: [env.replicas.address],
      podApi: { host: '127.0.0.1', port: 0, dnsNames: ['localhost'] },
      logger: brokerLog.logger,
      timing: {
        stepTimeoutMs: 3_000,
        backoffInitialMs: 50,
        backoffMaxMs: 1_000,
        pairTimeoutMs: 4_000,
        certificateRenewBeforeMs: 3_000,
        certificateRenewRetryMs: 500,
      },
    });
    const first = await broker.waitForPhase('operational', 15_000);
    const firstNotAfter = Date.parse(first.certificateNotAfter!);
    expect(firstNotAfter - Date.now()).toBeLessThan(5_500);
    const firstPodApiNotAfter = Date.parse((await podApiCertificate(broker.podApiListenUrl()!)).validTo);

    // Renewed while the tunnel serves, for the same key (the bridge checked it against the tunnel's certificate).
    await waitUntil(() => broker!.status().certificateRenewedAt !== undefined, {
      what: 'a renewal through the tunnel',
      timeoutMs: 8_000,
    });
    expect(Date.parse(broker.status().certificateNotAfter!)).toBeGreaterThan(firstNotAfter);
    // A new certificate (its serial) for the same key: the hash the bridge and source doctor match stays.
    expect(first.brokerKeySha256).toMatch(/^[0-9a-f]{64}$/);
    expect(broker.status()).toMatchObject({ brokerKeySha256: first.brokerKeySha256 });
    expect(broker.status().certificateSerial).not.toBe(first.certificateSerial);
    expect(bridgeLog.lines.some((l) => l.event === 'bridge.certificate_renewed')).toBe(true);
    expect(brokerLog.lines.some((l) => l.event === 'broker.certificate_renewed')).toBe(true);

    // The first certificate has expired: a new tunnel must come up with the renewed one, without a bootstrap.
    await waitUntil(() => Date.now() > firstNotAfter + 1_000, {
      what: 'the first certificate expiring',
      timeoutMs: 10_000,
    });
    const before = broker.tunnel();
    before?.close({
      code: 'CT_TUNNEL_CLOSED',
      reason: 'test: a reconnect after the first certificate expired',
    });
    await waitUntil(() => broker!.tunnel() !== before && broker!.status().phase === 'operational', {
      what: 'the next tunnel',
      timeoutMs: 10_000,
    });
    expect(env.store.initializedWrites(fingerprint)).toBe(1);
    expect(bridgeLog.lines.filter((l) => l.event === 'bridge.session_failed')).toEqual([]);

    // New pod connections get the renewed pod API certificate.
    const served = await podApiCertificate(broker.podApiListenUrl()!);
    expect(Date.parse(served.validTo)).toBeGreaterThan(firstPodApiNotAfter);
    expect(broker.status().certificateRenewalError).toBeUndefined();
  }, 60_000);
});
