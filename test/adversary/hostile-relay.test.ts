/**
 * Attack: the beacon is the attacker's. A hostile relay (it holds the beacon's certificate: it IS the beacon, as
 * far as the broker can tell) relays honestly until the broker is operational, then cuts the live tunnel, answers
 * the broker's operational dials with CT_BEACON_LIMIT three times (the broker's cue to try the init room again),
 * and plays the bridge in the init room with its own CA. Before the fix the re-bootstrap replaced the broker's
 * working credentials with the rogue CA's: operational on the rogue CA about 3 s after the cut.
 */
import { once } from 'node:events';
import type { Socket } from 'node:net';
import {
  createServer as createTlsServer,
  type TLSSocket,
  type Server as TlsServer,
  connect as tlsConnect,
} from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RAW_ALPN } from '../../runtime/beacon/index.js';
import { beaconCert } from '../runtime/fixtures.js';
import { waitUntil } from '../support/wait.js';
import {
  emptyCounts,
  type RogueCounts,
  type RogueIdentity,
  rogueBootstrap,
  rogueIdentity,
  rogueTunnel,
  startTrustStage,
  statusOf,
  type TrustStage,
  watchBroker,
} from './trust-harness.js';

/** The attacker's relay: the beacon protocol's raw door, honest or hostile on command. */
class HostileRelay {
  mode: 'honest' | 'hostile' = 'honest';
  readonly counts: RogueCounts = emptyCounts();
  limitAnswers = 0;
  private readonly forwarded = new Set<Socket>();
  private server!: TlsServer;
  port = 0;

  constructor(
    private readonly upstream: { host: string; port: number },
    private readonly rooms: { init: string; operational: string },
    readonly rogue: RogueIdentity,
  ) {}

  async start(): Promise<void> {
    this.server = createTlsServer(
      { cert: beaconCert.certPem, key: beaconCert.keyPem, ALPNProtocols: [RAW_ALPN] },
      (socket) => this.accept(socket),
    );
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as { port: number }).port;
  }

  /** Cuts every relayed connection (the live tunnel among them) and turns hostile. */
  turnHostile(): void {
    this.mode = 'hostile';
    for (const socket of this.forwarded) socket.destroy();
    this.forwarded.clear();
  }

  close(): void {
    for (const socket of this.forwarded) socket.destroy();
    this.server.close();
  }

  private accept(socket: TLSSocket): void {
    socket.on('error', () => {});
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < 2 || buffered.length < 2 + buffered.readUInt16BE(0)) return;
      socket.off('data', onData);
      socket.pause();
      const announceFrame = buffered.subarray(0, 2 + buffered.readUInt16BE(0));
      const announce = JSON.parse(announceFrame.subarray(2).toString('utf8')) as {
        role: string;
        hash: string;
      };
      if (this.mode === 'honest') this.relay(socket, announceFrame);
      else this.attack(socket, announce.hash);
    };
    socket.on('data', onData);
  }

  /** Honest: the same announce to the real beacon, then bytes both ways. */
  private relay(socket: TLSSocket, announceFrame: Buffer): void {
    const upstream = tlsConnect({
      host: this.upstream.host,
      port: this.upstream.port,
      servername: 'localhost',
      ca: beaconCert.certPem,
      ALPNProtocols: [RAW_ALPN],
    });
    upstream.on('error', () => socket.destroy());
    socket.on('close', () => upstream.destroy());
    upstream.on('close', () => socket.destroy());
    this.forwarded.add(socket);
    this.forwarded.add(upstream);
    upstream.once('secureConnect', () => {
      upstream.write(announceFrame);
      upstream.pipe(socket);
      socket.pipe(upstream);
      socket.resume();
    });
  }

  private attack(socket: TLSSocket, hash: string): void {
    const send = (message: object) => {
      const body = Buffer.from(JSON.stringify(message));
      const header = Buffer.alloc(2);
      header.writeUInt16BE(body.length);
      socket.write(Buffer.concat([header, body]));
    };
    if (hash === this.rooms.operational) {
      this.limitAnswers++;
      send({ t: 'error', code: 'CT_BEACON_LIMIT', reason: 'no peer arrived within 30000 ms; dial again' });
      socket.end();
      return;
    }
    send({ t: 'waiting' });
    send({ t: 'paired' });
    socket.resume();
    if (hash === this.rooms.init) {
      this.counts.initPairings++;
      void rogueBootstrap(socket, this.rogue, this.counts);
    } else if (hash === this.rogue.operationalHash) {
      void rogueTunnel(socket, this.rogue, this.counts);
    } else socket.destroy();
  }
}

let stage: TrustStage;
let relay: HostileRelay;

beforeAll(async () => {
  stage = await startTrustStage();
  const [host, port] = stage.beaconAddress.split(':');
  relay = new HostileRelay(
    { host, port: Number(port) },
    { init: stage.cluster.initHash, operational: stage.cluster.operationalHash },
    rogueIdentity(),
  );
  await relay.start();
});
afterAll(async () => {
  relay?.close();
  await stage?.close();
});

describe('attack: a hostile relay cuts the tunnel, answers CT_BEACON_LIMIT and plays the bridge', () => {
  it('keeps the broker on its CA: no re-bootstrap moves it to the rogue CA, and it returns to the real bridge once the relay relays again', async () => {
    // The broker runs without a pin, through the relay; the bridge reaches the real beacon directly.
    const broker = await stage.startBroker({ beaconAddress: `127.0.0.1:${relay.port}` });
    await waitUntil(async () => (await statusOf(broker.healthPort))?.phase === 'operational', {
      timeoutMs: 20_000,
      what: 'broker operational',
    });
    const realHashPrefix = stage.cluster.operationalHash.slice(0, 12);
    expect((await statusOf(broker.healthPort))?.operationalHashPrefix).toBe(realHashPrefix);

    const watch = watchBroker(broker.healthPort, relay.rogue.operationalHash);
    try {
      relay.turnHostile();
      // Three CT_BEACON_LIMIT answers send the broker to the init room, where the relay plays the bridge; give it
      // several rounds of that.
      await waitUntil(() => relay.counts.initPairings >= 3 || watch.operationalOnRogue, {
        timeoutMs: 40_000,
        what: 'the broker in the rogue init room',
      });
      expect(relay.limitAnswers).toBeGreaterThanOrEqual(3);
      expect(watch.operationalOnRogue, 'operational on the rogue CA').toBe(false);
      expect(relay.counts.bootstrapRequests, 'fingerprint and CSR sent to the rogue').toBe(0);
      expect(relay.counts.tunnelsOpened, 'tunnels to the rogue').toBe(0);
      expect(relay.counts.tokenReviewsAnswered, 'TokenReviews answered for the rogue').toBe(0);

      // The relay relays honestly again: the broker is back on the real bridge with the credentials it kept.
      relay.mode = 'honest';
      await waitUntil(
        async () => {
          const status = await statusOf(broker.healthPort);
          return status?.phase === 'operational' && status.operationalHashPrefix === realHashPrefix;
        },
        { timeoutMs: 30_000, what: 'the broker back on the real CA' },
      );
      expect(watch.operationalOnRogue).toBe(false);
    } finally {
      await watch.stop();
    }
  }, 120_000);
});
