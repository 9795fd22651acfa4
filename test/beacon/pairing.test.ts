import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BeaconHandle, waitForPeer } from '../../runtime/beacon/index.js';
import { waitUntil } from '../support/wait.js';
import {
  type Certs,
  innerMutualTls,
  makeCerts,
  randomHash,
  readAll,
  readBytes,
  startBeacon,
  targetFor,
} from './helpers.js';

const DOORS = ['tls', 'wss', 'plain'] as const;

let certs: Certs;
let beacon: BeaconHandle;

beforeAll(async () => {
  certs = makeCerts();
  beacon = await startBeacon(certs);
});
afterAll(async () => {
  await beacon.close();
});

function dial(role: 'broker' | 'bridge', hash: string, door: (typeof DOORS)[number], onWaiting?: () => void) {
  return waitForPeer({
    target: targetFor(beacon, door),
    ip: '127.0.0.1',
    role,
    hash,
    caCertPem: certs.beacon.certPem,
    onWaiting,
  });
}

/** Dials the broker first and waits until the beacon parks it, so the order of arrival is known. */
async function pairedStreams(
  brokerDoor: (typeof DOORS)[number],
  bridgeDoor: (typeof DOORS)[number],
): Promise<{ broker: Duplex; bridge: Duplex }> {
  const hash = randomHash();
  let brokerWaiting!: () => void;
  const waiting = new Promise<void>((resolve) => {
    brokerWaiting = resolve;
  });
  const broker = dial('broker', hash, brokerDoor, brokerWaiting);
  await waiting;
  const bridge = dial('bridge', hash, bridgeDoor);
  return { broker: await broker, bridge: await bridge };
}

describe('beacon pairing', () => {
  for (const brokerDoor of DOORS) {
    for (const bridgeDoor of DOORS) {
      it(`pairs a ${brokerDoor} broker with a ${bridgeDoor} bridge and carries inner mutual TLS 1.3 both ways`, async () => {
        const { broker, bridge } = await pairedStreams(brokerDoor, bridgeDoor);
        const inner = await innerMutualTls(certs, broker, bridge);
        expect(inner.bridge.getProtocol()).toBe('TLSv1.3');
        expect(inner.broker.getPeerCertificate().subject.CN).toBe('bridge');
        expect(inner.bridge.getPeerCertificate().subject.CN).toBe('broker');
        const toBroker = readBytes(inner.broker, 5);
        inner.bridge.write('hello');
        expect((await toBroker).toString()).toBe('hello');
        const toBridge = readBytes(inner.bridge, 5);
        inner.broker.write('world');
        expect((await toBridge).toString()).toBe('world');
        inner.bridge.destroy();
        inner.broker.destroy();
      });
    }
  }

  it('pairs when the bridge arrives first, and reports waiting to the one that waits', async () => {
    const hash = randomHash();
    let bridgeWaited = false;
    let waitingSeen!: () => void;
    const seen = new Promise<void>((resolve) => {
      waitingSeen = resolve;
    });
    const bridge = dial('bridge', hash, 'tls', () => {
      bridgeWaited = true;
      waitingSeen();
    });
    await seen;
    const broker = await dial('broker', hash, 'tls');
    const bridgeStream = await bridge;
    expect(bridgeWaited).toBe(true);
    const got = readBytes(bridgeStream, 3);
    broker.write('abc');
    expect((await got).toString()).toBe('abc');
    broker.destroy();
    bridgeStream.destroy();
  });

  it('pairs brokers and bridges of one hash first in, first out', async () => {
    const hash = randomHash();
    const bridges: Promise<Duplex>[] = [];
    for (let i = 0; i < 3; i++) {
      let waited!: () => void;
      const waiting = new Promise<void>((resolve) => {
        waited = resolve;
      });
      bridges.push(dial('bridge', hash, i === 1 ? 'wss' : 'tls', waited));
      await waiting;
    }
    const labels: string[] = [];
    for (let i = 0; i < 3; i++) {
      const broker = await dial('broker', hash, 'plain');
      broker.write(`broker-${i}`);
      const bridge = await bridges[i];
      labels.push((await readBytes(bridge, 8)).toString());
      broker.destroy();
      bridge.destroy();
    }
    expect(labels).toEqual(['broker-0', 'broker-1', 'broker-2']);
  });

  it('never pairs different hashes or two peers of the same role', async () => {
    const hash = randomHash();
    const otherHash = randomHash();
    const controller = new AbortController();
    const waits: Promise<unknown>[] = [];
    let waitingCount = 0;
    const onWaiting = () => {
      waitingCount += 1;
    };
    for (const [role, h] of [
      ['broker', hash],
      ['broker', hash],
      ['bridge', otherHash],
    ] as const) {
      waits.push(
        waitForPeer({
          target: targetFor(beacon, 'tls'),
          ip: '127.0.0.1',
          role,
          hash: h,
          caCertPem: certs.beacon.certPem,
          signal: controller.signal,
          onWaiting,
        }).catch((err) => err),
      );
    }
    await waitUntil(() => waitingCount === 3);
    expect(beacon.stats().paired).toBe(0);
    controller.abort();
    const results = await Promise.all(waits);
    expect(results.map((err) => (err as { code: string }).code)).toEqual([
      'CT_CANCELLED',
      'CT_CANCELLED',
      'CT_CANCELLED',
    ]);
  });

  for (const [brokerDoor, bridgeDoor] of [
    ['tls', 'tls'],
    ['plain', 'plain'],
    ['wss', 'tls'],
  ] as const) {
    it(`relays megabytes both ways with backpressure (${brokerDoor} to ${bridgeDoor}) without loss or reordering`, async () => {
      const { broker, bridge } = await pairedStreams(brokerDoor, bridgeDoor);
      const size = 4 * 1024 * 1024;
      const up = randomBytes(size);
      const down = randomBytes(size);
      const bridgeReceived = readBytes(bridge, size);
      const brokerReceived = readBytes(broker, size);
      // Write in chunks honouring backpressure on the sender too.
      const send = async (stream: Duplex, data: Buffer) => {
        for (let offset = 0; offset < data.length; offset += 64 * 1024) {
          if (!stream.write(data.subarray(offset, offset + 64 * 1024))) await once(stream, 'drain');
        }
      };
      await Promise.all([send(broker, up), send(bridge, down)]);
      expect((await bridgeReceived).equals(up)).toBe(true);
      expect((await brokerReceived).equals(down)).toBe(true);
      broker.destroy();
      bridge.destroy();
    });
  }

  it('holds a slow reader back instead of buffering everything in the beacon', async () => {
    const { broker, bridge } = await pairedStreams('tls', 'tls');
    bridge.pause();
    let written = 0;
    const chunk = Buffer.alloc(64 * 1024, 1);
    // Write until the sender's own buffer reports backpressure several times over.
    while (written < 64 * 1024 * 1024) {
      written += chunk.length;
      if (!broker.write(chunk)) {
        const drained = await Promise.race([
          once(broker, 'drain').then(() => true),
          new Promise((resolve) => setTimeout(() => resolve(false), 300)),
        ]);
        if (!drained) break;
      }
    }
    // The beacon stopped reading long before 64 MiB: the stall propagated back to the sender.
    expect(written).toBeLessThan(64 * 1024 * 1024);
    const received = readBytes(bridge, written);
    expect((await received).length).toBe(written);
    broker.destroy();
    bridge.destroy();
  });

  for (const door of ['tls', 'plain'] as const) {
    it(`propagates a half-close on the ${door} door and still delivers the answer`, async () => {
      const { broker, bridge } = await pairedStreams(door, door);
      const request = readAll(bridge);
      broker.end('request');
      expect((await request).toString()).toBe('request');
      // The broker has ended its side but can still read the bridge's reply.
      const reply = readAll(broker);
      bridge.end('reply');
      expect((await reply).toString()).toBe('reply');
      await waitUntil(() => beacon.stats().paired === 0);
    });
  }

  it('closes the other side when one side resets', async () => {
    const { broker, bridge } = await pairedStreams('tls', 'wss');
    bridge.on('error', () => {});
    const ended = readAll(bridge);
    broker.destroy();
    await ended;
    bridge.destroy();
    await waitUntil(() => beacon.stats().paired === 0);
  });

  it('closes a WebSocket peer when its raw peer ends', async () => {
    const { broker, bridge } = await pairedStreams('wss', 'plain');
    const ended = readAll(broker);
    bridge.end('bye');
    expect((await ended).toString()).toBe('bye');
    broker.end();
    await waitUntil(() => beacon.stats().paired === 0);
  });
});

describe('the stream waitForPeer returns', () => {
  for (const door of DOORS) {
    it(`flows on the first 'data' listener alone (${door} door), including bytes sent right after pairing`, async () => {
      const hash = randomHash();
      let parked!: () => void;
      const isParked = new Promise<void>((resolve) => {
        parked = resolve;
      });
      const broker = dial('broker', hash, door, parked);
      await isParked;
      const bridge = await dial('bridge', hash, door);
      // The bridge speaks at once; the broker attaches a plain listener only after its await resolves.
      bridge.write('first-bytes');
      const brokerStream = await broker;
      await new Promise((resolve) => setTimeout(resolve, 20));
      const [chunk] = (await once(brokerStream, 'data')) as [Buffer];
      expect(chunk.toString()).toBe('first-bytes');
      brokerStream.destroy();
      bridge.destroy();
    });
  }
});
