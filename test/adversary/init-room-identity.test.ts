/**
 * Attacks on what the broker sends in the init room, before anything is signed:
 *   - a party holding a certificate of the cluster CA that is not a bridge's (a superseded broker certificate, a
 *     pod API certificate: both serverAuth) plays the bridge to a pinned broker. Before the fix the broker checked
 *     only the chain and the pin, and sent its fingerprint, CSR and attestation token;
 *   - a first contact (no pin, empty trust record) whose record cannot be written. Before the fix the broker sent
 *     its request first and recorded the CA after the answer, so a bootstrap could be spent with no record left
 *     behind, and the next broker process ran trust on first use again against a real bridge that could only
 *     refuse it: any other admitted bridge then won for certain.
 */
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForPeer } from '../../runtime/beacon/index.js';
import { bootstrapBroker } from '../../runtime/broker/bootstrap.js';
import { memoryTrustRecord, type TrustRecordStore } from '../../runtime/broker/trust-record.js';
import { CloudtaserError } from '../../runtime/core/errors.js';
import { initHash, operationalHash } from '../../runtime/core/hashes.js';
import { silentLogger } from '../../runtime/core/index.js';
import { createCertificateAuthority, issueCertificate } from '../../runtime/pki/index.js';
import {
  awaitSecure,
  INIT_ALPN,
  INNER_TLS_MIN_VERSION,
  readBootstrapMessage,
} from '../../runtime/tunnel/index.js';
import { duplexPair } from '../runtime/duplex-pair.js';
import {
  beaconCert,
  type Replicas,
  type SecretStore,
  startReplicas,
  startSecretStore,
  startTestBroker,
  testBeaconIdentity,
} from '../runtime/fixtures.js';
import { waitUntil } from '../support/wait.js';
import { emptyCounts, rogueBootstrap, rogueIdentity } from './trust-harness.js';

describe('attack: a certificate of the cluster CA that is not a bridge certificate plays the bridge', () => {
  it('gets no fingerprint, CSR or token from a pinned broker, which names the missing clientAuth usage', async () => {
    const ca = createCertificateAuthority({ commonName: 'cluster ca' });
    const superseded = issueCertificate(ca, { commonName: 'cloudtaser-broker', extKeyUsage: ['serverAuth'] });
    const [brokerEnd, attackerEnd] = duplexPair();
    const broker = bootstrapBroker(brokerEnd, {
      fingerprint: '11111111-2222-4333-8444-555555555555',
      caSha256: operationalHash(ca.certDer),
      stepTimeoutMs: 3_000,
      logger: silentLogger,
      attestationToken: 'a-token-the-attacker-must-not-see',
    }).then(
      () => undefined,
      (err: unknown) => err,
    );
    const socket = tlsConnect({
      socket: attackerEnd,
      cert: `${superseded.certPem.trim()}\n${ca.certPem.trim()}\n`,
      key: superseded.keyPem!,
      minVersion: INNER_TLS_MIN_VERSION,
      ALPNProtocols: [INIT_ALPN],
      rejectUnauthorized: false,
    });
    socket.on('error', () => {});
    await awaitSecure(socket, { timeoutMs: 3_000, code: 'CT_BOOTSTRAP_PROTOCOL', what: 'attacker init TLS' });
    const received = await readBootstrapMessage(socket, {
      timeoutMs: 3_000,
      expect: ['bootstrap.request'],
    }).then(
      (message) => message.type,
      () => 'nothing',
    );
    socket.destroy();
    expect(received).toBe('nothing');
    const refusal = await broker;
    expect(refusal).toBeInstanceOf(CloudtaserError);
    expect((refusal as CloudtaserError).code).toBe('CT_PKI_INVALID_CERT');
    expect((refusal as CloudtaserError).message).toMatch(/no clientAuth extended key usage/);
  });
});

describe('attack: a rogue bridge in the init room meets a first contact whose trust record cannot be written', () => {
  let replicas: Replicas;
  let store: SecretStore;
  beforeAll(async () => {
    replicas = await startReplicas();
    store = await startSecretStore();
  });
  afterAll(async () => {
    await replicas?.close();
    await store?.close();
  });

  it('sends the rogue nothing, records nothing and stays closed, saying why', async () => {
    const registered = await store.register();
    const record = memoryTrustRecord();
    const forbidden: TrustRecordStore = {
      description: record.description,
      read: (signal) => record.read(signal),
      write: () =>
        Promise.reject(new CloudtaserError('CT_TRUST_RECORD_UNAVAILABLE', 'patch forbidden (test)')),
    };
    const rogue = rogueIdentity();
    const counts = emptyCounts();
    const stop = new AbortController();
    // Another party the beacon admits as a bridge (the beacon's bridge CA, as any real bridge has) waits in the
    // cluster's init room; the real bridge is not running, so every pairing is with the rogue.
    const waiter = async () => {
      while (!stop.signal.aborted) {
        try {
          const stream = await waitForPeer({
            target: { door: 'tls', host: 'localhost', port: replicas.port },
            ip: '127.0.0.1',
            role: 'bridge',
            hash: initHash(registered.fingerprint),
            caCertPem: beaconCert.certPem,
            clientCertificate: testBeaconIdentity.current(),
            signal: stop.signal,
          });
          counts.initPairings++;
          void rogueBootstrap(stream, rogue, counts);
        } catch {
          await new Promise((done) => setTimeout(done, 50));
        }
      }
    };
    const waiting = waiter();
    const broker = await startTestBroker({
      fingerprint: registered.fingerprint,
      beacons: [replicas.address],
      trustRecord: forbidden,
    });
    try {
      await waitUntil(() => counts.initPairings >= 3 || counts.bootstrapRequests > 0, {
        timeoutMs: 20_000,
        what: 'three init pairings, or a request sent to the rogue',
      });
      expect(counts.bootstrapRequests).toBe(0);
      expect(counts.bootstrapsSigned).toBe(0);
      expect((await record.read()).caSha256).toBeUndefined();
      const status = broker.status();
      expect(status.phase).toBe('bootstrapping');
      expect(status.lastErrorCode).toBe('CT_TRUST_RECORD_UNAVAILABLE');
      expect(status.reason).toMatch(
        new RegExp(
          `presented cluster CA ${rogue.operationalHash.slice(0, 8)}… at first contact.*sent nothing`,
        ),
      );
    } finally {
      stop.abort();
      await broker.close();
      await waiting;
    }
  });
});
