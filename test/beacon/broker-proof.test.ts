/**
 * A broker proving its operational room at the beacon (runtime/beacon/broker-proof.ts). The room's hash is the
 * SHA-256 of the cluster CA certificate, which every injected pod holds: an outside hostile drill held all of a
 * room's broker places with anonymous announces and kept a restarting broker out for as long as it liked (every
 * restart, node drain or beacon restart during such a flood became an outage). A broker presenting its own
 * certificate with that CA takes a place an anonymous one holds and is paired first; a forged proof counts as none.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BeaconClientCertificate, type BeaconHandle, waitForPeer } from '../../runtime/beacon/index.js';
import { createCertificateAuthority, issueCertificate } from '../../runtime/pki/index.js';
import { waitUntil } from '../support/wait.js';
import { type Certs, makeCerts, readBytes, startBeacon, targetFor } from './helpers.js';

let certs: Certs;
let beacon: BeaconHandle;
const clusterCa = createCertificateAuthority({ commonName: 'cloudtaser cluster test' });
const room = createHash('sha256').update(clusterCa.certDer).digest('hex');

function brokerProof(ca = clusterCa, chainCa = ca): BeaconClientCertificate {
  const leaf = issueCertificate(ca, {
    commonName: 'cloudtaser-broker',
    extKeyUsage: ['serverAuth', 'clientAuth'],
  });
  return { certPem: `${leaf.certPem}${chainCa.certPem}`, keyPem: leaf.keyPem! };
}

beforeAll(async () => {
  certs = makeCerts();
  beacon = await startBeacon(certs, { limits: { maxWaitingPerHash: 2, brokerWaitMs: 20_000 } });
});
afterAll(async () => {
  await beacon.close();
});

function dial(role: 'broker' | 'bridge', signal: AbortSignal, clientCertificate?: BeaconClientCertificate) {
  return waitForPeer({
    target: targetFor(beacon, 'tls'),
    ip: '127.0.0.1',
    role,
    hash: room,
    caCertPem: certs.beacon.certPem,
    clientCertificate,
    signal,
  });
}

describe('a broker proving its operational room', () => {
  it('takes a place anonymous brokers hold in a full room, and the bridge pairs with it first', async () => {
    const squatters = new AbortController();
    const squatting = [dial('broker', squatters.signal), dial('broker', squatters.signal)].map((p) =>
      p.then(
        (stream) => ({ stream }),
        (err: { code?: string }) => ({ code: err.code }),
      ),
    );
    await waitUntil(() => beacon.stats().waitingBrokers === 2);
    // A third anonymous broker is refused, as before.
    await expect(dial('broker', new AbortController().signal)).rejects.toMatchObject({
      code: 'CT_BEACON_LIMIT',
    });
    const proven = new AbortController();
    const broker = dial('broker', proven.signal, brokerProof());
    await waitUntil(() => (beacon.stats().rejectionsByReason.waiting_per_hash_proven ?? 0) === 1);
    expect(beacon.stats().waitingBrokers).toBe(2);
    // The bridge comes: it pairs with the proven broker, not the anonymous one that waited longer.
    const bridge = await dial('bridge', new AbortController().signal);
    const brokerStream = await broker;
    const got = readBytes(bridge, 5);
    brokerStream.write('proof');
    expect((await got).toString()).toBe('proof');
    brokerStream.destroy();
    bridge.destroy();
    squatters.abort();
    const outcomes = await Promise.all(squatting);
    expect(outcomes.filter((o) => 'code' in o && o.code === 'CT_BEACON_LIMIT')).toHaveLength(1);
  });

  it('counts a forged proof as none: a leaf of another CA sent with the room CA, or a chain of another CA', async () => {
    const other = createCertificateAuthority({ commonName: 'not the cluster CA' });
    for (const forged of [brokerProof(other, clusterCa), brokerProof(other)]) {
      const squatters = new AbortController();
      const squatting = [dial('broker', squatters.signal), dial('broker', squatters.signal)].map((p) =>
        p.catch(() => undefined),
      );
      await waitUntil(() => beacon.stats().waitingBrokers === 2);
      const before = beacon.stats().rejectionsByReason.waiting_per_hash ?? 0;
      await expect(dial('broker', new AbortController().signal, forged)).rejects.toMatchObject({
        code: 'CT_BEACON_LIMIT',
      });
      expect(beacon.stats().rejectionsByReason.waiting_per_hash).toBe(before + 1);
      squatters.abort();
      await Promise.all(squatting);
      await waitUntil(() => beacon.stats().waitingBrokers === 0);
    }
  });

  it('is not refused for the room pairing rate that anonymous brokers spent', async () => {
    const flood = await startBeacon(certs, { limits: { maxPairingsPerHashPerSecond: 1 } });
    try {
      const at = (role: 'broker' | 'bridge', client?: BeaconClientCertificate) =>
        waitForPeer({
          target: targetFor(flood, 'tls'),
          ip: '127.0.0.1',
          role,
          hash: room,
          caCertPem: certs.beacon.certPem,
          clientCertificate: client,
        });
      // One anonymous pairing spends the room's budget for a second.
      const [a, b] = await Promise.all([at('broker'), at('bridge')]);
      a.destroy();
      b.destroy();
      const bridge = at('bridge');
      await waitUntil(() => flood.stats().waitingBridges === 1);
      await expect(at('broker')).rejects.toMatchObject({ code: 'CT_BEACON_LIMIT' });
      // The proven broker waits for the budget instead, and pairs.
      const proven = await at('broker', brokerProof());
      proven.destroy();
      (await bridge).destroy();
    } finally {
      await flood.close();
    }
  });
});
