/**
 * A beacon as deployed by default: the plain door is off, so the TLS door takes every connection without a
 * first-bytes look (that look costs relay CPU for a connection's whole life). Pairing through the TLS and
 * WebSocket doors works, and bytes that are not TLS (an HTTP request, the plain magic, random bytes) are still
 * refused with the `garbage` reason and a CT_ code, while the beacon keeps serving.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BeaconHandle, PLAIN_MAGIC, waitForPeer } from '../../runtime/beacon/index.js';
import { waitUntil } from '../support/wait.js';
import {
  type Certs,
  captureLogger,
  collectFrames,
  makeCerts,
  randomHash,
  rawClient,
  readBytes,
  startBeacon,
  targetFor,
} from './helpers.js';

let certs: Certs;
let beacon: BeaconHandle;
const log = captureLogger();

beforeAll(async () => {
  certs = makeCerts();
  beacon = await startBeacon(certs, { plain: false, logger: log.logger });
});
afterAll(async () => {
  await beacon.close();
});

async function pairThrough(brokerDoor: 'tls' | 'wss', bridgeDoor: 'tls' | 'wss'): Promise<void> {
  const hash = randomHash();
  const dial = (role: 'broker' | 'bridge', door: 'tls' | 'wss') =>
    waitForPeer({
      target: targetFor(beacon, door),
      ip: '127.0.0.1',
      role,
      hash,
      caCertPem: certs.beacon.certPem,
    });
  const [broker, bridge] = await Promise.all([dial('broker', brokerDoor), dial('bridge', bridgeDoor)]);
  const got = readBytes(bridge, 5);
  broker.write('hello');
  expect((await got).toString()).toBe('hello');
  broker.destroy();
  bridge.destroy();
}

const garbageRejections = () =>
  log.lines.filter((line) => line.event === 'rejected' && line.reason === 'garbage');

describe('beacon with the plain door off (the default)', () => {
  it('pairs through the TLS door and across the TLS and WebSocket doors', async () => {
    await pairThrough('tls', 'tls');
    await pairThrough('wss', 'tls');
  });

  for (const [what, bytes] of [
    ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: beacon\r\n\r\n')],
    ['the plain-door magic', Buffer.concat([PLAIN_MAGIC, Buffer.from([0, 2, 0x7b, 0x7d])])],
    ['random bytes', Buffer.concat([Buffer.from([0x42]), randomBytes(300)])],
  ] as const) {
    it(`refuses ${what} as garbage with a CT_ code, and keeps serving`, async () => {
      // Counted every time; logged in full once a minute per reason, source and message (then summed up).
      const before = beacon.stats().rejectionsByReason.garbage ?? 0;
      const socket = await rawClient(beacon, certs, 'tcp');
      const result = collectFrames(socket);
      socket.write(bytes);
      expect((await result).frames).toEqual([]);
      await waitUntil(() => (beacon.stats().rejectionsByReason.garbage ?? 0) === before + 1);
      const line = garbageRejections().at(-1)!;
      expect(line.code).toBe('CT_BEACON_PROTOCOL');
      expect(String(line.message)).toMatch(/not a TLS ClientHello .*plain door is off/);
      expect(beacon.stats().pending).toBe(0);
      await pairThrough('tls', 'tls');
    });
  }
});
