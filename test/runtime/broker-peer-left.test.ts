/**
 * The broker end of a pairing whose bridge leaves before the inner handshake. The broker serves the inner TLS over
 * its beacon connection, and Node's TLS server reads through that connection's handle, so the connection itself
 * reports nothing once the handshake begins; the server's TLS socket (half-open, like the connection it wraps)
 * saw the end and kept waiting. The broker then waited its whole step timeout (10 s by default) before it dialed
 * again: after every bridge that went away at that moment (a bridge replica shutting down or moving its tunnels,
 * a duplicate pairing on a second beacon replica, or a hostile bridge pairing and dropping on purpose). Now the
 * end fails the handshake at once as "the peer left", and the broker dials again after its usual backoff.
 */
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { waitForPeer } from '../../runtime/beacon/index.js';
import type { BridgeHandle } from '../../runtime/bridge/index.js';
import type { BrokerHandle } from '../../runtime/broker/index.js';
import { bootstrapBroker } from '../../runtime/broker/index.js';
import { initHash } from '../../runtime/core/hashes.js';
import { acceptTunnel } from '../../runtime/tunnel/session.js';
import { acceptTls } from '../../runtime/tunnel/tls.js';
import { captureLogger, makeCerts, pairThrough, startBeacon } from '../beacon/helpers.js';
import {
  beaconCert,
  FAST_BROKER_TIMING,
  REPLICA_IPS,
  startTestBridge,
  startTestBroker,
  testBeaconIdentity,
  useStoreAndReplicas,
} from './fixtures.js';

/** Far longer than any check below: a broker left waiting for it shows as a timeout. */
const LONG_STEP_MS = 30_000;

describe('a paired stream whose bridge end leaves before the inner handshake (every beacon door)', () => {
  const certs = makeCerts();
  const tunnelOptions = () => ({
    caCertPem: certs.caPem,
    certPem: certs.broker.certPem,
    keyPem: certs.broker.keyPem!,
    handshakeTimeoutMs: LONG_STEP_MS,
    logger: captureLogger().logger,
  });

  /**
   * Pairs through a fresh beacon's `door`, runs the broker's `exchange` on its end and has the bridge end `leave`
   * 50 ms later; resolves with what the exchange failed with (undefined if it did not) and how long it took.
   */
  async function whenBridgeLeaves(
    door: 'tls' | 'plain' | 'wss',
    leave: (bridge: Duplex) => void,
    exchange: (stream: Duplex) => Promise<unknown>,
  ): Promise<{ error: unknown; ms: number }> {
    const beacon = await startBeacon(certs);
    try {
      const { broker: stream, bridge } = await pairThrough(beacon, certs.beacon.certPem, door);
      const started = performance.now();
      const running = exchange(stream);
      setTimeout(() => leave(bridge), 50);
      const error = await running.then(
        () => undefined,
        (err: unknown) => err,
      );
      return { error, ms: performance.now() - started };
    } finally {
      await beacon.close();
    }
  }

  for (const door of ['tls', 'plain', 'wss'] as const)
    for (const how of ['end', 'destroy'] as const)
      it(`fails the broker's handshake at once, marked as the peer leaving (${door} door, bridge ${how}s)`, async () => {
        const { error, ms } = await whenBridgeLeaves(
          door,
          (bridge) => (how === 'end' ? bridge.end() : bridge.destroy()),
          (stream) => acceptTunnel(stream, tunnelOptions()),
        );
        expect(error).toMatchObject({ code: 'CT_TUNNEL_CLOSED', details: { peerLeft: true } });
        expect(ms).toBeLessThan(5_000);
      });

  it('fails the init exchange at once too (bootstrapBroker), without waiting its step', async () => {
    const { error, ms } = await whenBridgeLeaves(
      'tls',
      (bridge) => bridge.destroy(),
      (stream) =>
        bootstrapBroker(stream, {
          fingerprint: randomUUID(),
          stepTimeoutMs: LONG_STEP_MS,
          logger: captureLogger().logger,
        }),
    );
    expect(error).toMatchObject({ code: 'CT_BOOTSTRAP_PROTOCOL', details: { peerLeft: true } });
    expect(ms).toBeLessThan(5_000);
  });

  it('gives the tunnel back the half-close of the paired stream once the handshake completed', async () => {
    const beacon = await startBeacon(certs);
    try {
      const { broker: stream, bridge } = await pairThrough(beacon, certs.beacon.certPem);
      expect(stream.allowHalfOpen).toBe(true);
      const accepted = acceptTls(
        stream,
        { cert: certs.broker.certPem, key: certs.broker.keyPem, ca: [certs.caPem], requestCert: true },
        { timeoutMs: LONG_STEP_MS, code: 'CT_TUNNEL_CLOSED', what: 'the test handshake' },
      );
      const client = tlsConnect({
        socket: bridge,
        cert: certs.bridge.certPem,
        key: certs.bridge.keyPem,
        ca: [certs.caPem],
        checkServerIdentity: () => undefined,
      });
      client.on('error', () => {});
      const socket = await accepted;
      // The handshake-only change is undone: after it, ends are the tunnel's to handle, as before.
      expect(socket.allowHalfOpen).toBe(true);
      expect(stream.allowHalfOpen).toBe(true);
      socket.destroy();
      client.destroy();
    } finally {
      await beacon.close();
    }
  });
});

describe('a broker whose bridge leaves a pairing before the handshake', () => {
  let bridge: BridgeHandle | undefined;
  let broker: BrokerHandle | undefined;
  let registered: { fingerprint: string; operationalHash: string };
  const log = captureLogger();
  const env = useStoreAndReplicas(1, async () => {
    await broker?.close();
    await bridge?.close();
  });

  /** A bridge (admitted by the beacon) that takes the next pairing in `hash`'s room and drops it unanswered. */
  const pairAndLeave = async (hash: string): Promise<void> => {
    const stream: Duplex = await waitForPeer({
      target: { door: 'tls', host: 'localhost', port: env.replicas.port },
      ip: REPLICA_IPS[0]!,
      role: 'bridge',
      hash,
      caCertPem: beaconCert.certPem,
      clientCertificate: testBeaconIdentity.current(),
    });
    stream.destroy();
  };

  it('dials again after its backoff, not its step timeout: bootstrap and operational room', async () => {
    const { fingerprint, operationalHash } = await env.store.register();
    registered = { fingerprint, operationalHash };
    broker = await startTestBroker({
      fingerprint,
      beacons: [env.replicas.address],
      logger: log.logger,
      timing: { ...FAST_BROKER_TIMING, stepTimeoutMs: LONG_STEP_MS, pairTimeoutMs: LONG_STEP_MS },
    });
    // Init room: the first bridge the broker meets leaves; the real one, started right after, bootstraps it.
    await pairAndLeave(initHash(fingerprint));
    const initLeft = performance.now();
    bridge = await startTestBridge({ openbao: env.store.bridge, beacons: [env.replicas.address] });
    await broker.waitForPhase('operational', 15_000);
    expect(performance.now() - initLeft).toBeLessThan(8_000);
    // Operational room: the bridge goes, a bridge that leaves takes the broker's next pairing, then the bridge
    // is back; the broker's tunnel is up again long before a step timeout.
    await bridge.close();
    bridge = undefined;
    await pairAndLeave(operationalHash);
    const operationalLeft = performance.now();
    bridge = await startTestBridge({ openbao: env.store.bridge, beacons: [env.replicas.address] });
    await broker.waitForPhase('operational', 15_000);
    expect(performance.now() - operationalLeft).toBeLessThan(8_000);
    // Said as what it is, and no second bootstrap came of it.
    const retries = log.lines.filter((line) => line.event === 'broker.retry');
    expect(retries.some((line) => /the peer left before it completed/.test(String(line.reason)))).toBe(true);
    expect(env.store.initializedWrites(fingerprint)).toBe(1);
  }, 60_000);

  it('against a bridge that pairs and drops on purpose: paced by its backoff, no re-bootstrap, back once it stops', async () => {
    // Continues from the test above: the broker is operational with the real bridge, which now goes.
    expect(broker!.status().phase).toBe('operational');
    const initPairings = () =>
      log.lines.filter((line) => line.event === 'broker.paired' && line.room === 'init').length;
    const initPairingsBefore = initPairings();
    await bridge!.close();
    bridge = undefined;
    const stop = performance.now() + 4_000;
    let drops = 0;
    while (performance.now() < stop) {
      await pairAndLeave(registered.operationalHash);
      drops++;
    }
    // FAST_BROKER_TIMING backs off with full jitter, uniform up to a ceiling doubling from 50 ms to 1 s: about 13
    // pauses fit in 4 s on average (14 seen). A broker that dialed again at once would be paired hundreds of times
    // (one cycle takes a few milliseconds here).
    expect(drops).toBeGreaterThan(1);
    expect(drops).toBeLessThanOrEqual(30);
    bridge = await startTestBridge({ openbao: env.store.bridge, beacons: [env.replicas.address] });
    await broker!.waitForPhase('operational', 15_000);
    // A pairing the peer left is not a refusal: the broker kept its credentials and never bootstrapped again.
    expect(env.store.initializedWrites(registered.fingerprint)).toBe(1);
    expect(initPairings()).toBe(initPairingsBefore);
  }, 60_000);
});
