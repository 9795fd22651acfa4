/**
 * PROTOCOL.md: "A reset or error on either side closes both." A WebSocket side that goes away without a close
 * frame (its TCP connection reset, or a client that crashed) used to reach the relay as a clean end, and ws's stream
 * never finished its writable side on the dead socket, so the relay never saw that side close: the pair stayed in
 * `paired` (and in the relay, with its idle timer) until --idle-timeout-ms, 15 minutes by default, even after the
 * other side had gone. Found by an adversarial review; both tests failed before the fix (paired stayed 1).
 */
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { type BeaconHandle, waitForPeer } from '../../runtime/beacon/index.js';
import { waitUntil } from '../support/wait.js';
import { type Certs, makeCerts, randomHash, startBeacon, targetFor } from './helpers.js';

let certs: Certs;
let beacon: BeaconHandle;
beforeAll(async () => {
  certs = makeCerts();
  beacon = await startBeacon(certs, { limits: { pairedIdleMs: 60_000 } });
});
afterAll(async () => {
  await beacon.close();
});

/** A WebSocket bridge whose TCP socket the test can reset. */
async function resettableWsBridge(hash: string) {
  const tcp = netConnect({ host: '127.0.0.1', port: beacon.port });
  await once(tcp, 'connect');
  const tls = tlsConnect({
    socket: tcp,
    ca: certs.beacon.certPem,
    servername: 'localhost',
    ALPNProtocols: ['http/1.1'],
  });
  await once(tls, 'secureConnect');
  const ws = new WebSocket(`wss://localhost:${beacon.port}/v1/relay`, { createConnection: () => tls });
  ws.on('error', () => {});
  await once(ws, 'open');
  const paired = new Promise<void>((resolve) =>
    ws.on('message', (data, isBinary) => {
      if (!isBinary && String(data).includes('"paired"')) resolve();
    }),
  );
  ws.send(Buffer.from(JSON.stringify({ v: 1, role: 'bridge', hash })));
  return { tcp, ws, paired };
}

async function pairWithTlsBroker(): Promise<{
  broker: Duplex;
  tcp: import('node:net').Socket;
  ws: WebSocket;
}> {
  const hash = randomHash();
  const bridge = await resettableWsBridge(hash);
  const broker = await waitForPeer({
    target: targetFor(beacon, 'tls'),
    ip: '127.0.0.1',
    role: 'broker',
    hash,
    caCertPem: certs.beacon.certPem,
  });
  await bridge.paired;
  return { broker, tcp: bridge.tcp, ws: bridge.ws };
}

describe('WebSocket side reset while paired', () => {
  it('closes the raw peer and forgets the pair when the WebSocket side is reset', async () => {
    const { broker, tcp } = await pairWithTlsBroker();
    broker.on('error', () => {});
    broker.resume();
    expect(beacon.stats().paired).toBe(1);
    tcp.resetAndDestroy();
    // The broker is told the bridge went away, and leaves.
    await once(broker, 'end');
    broker.end();
    await once(broker, 'close');
    // Both client sockets are gone now; the beacon should hold nothing for this pair.
    const forgotten = await waitUntil(() => beacon.stats().paired === 0, { timeoutMs: 3_000 }).then(
      () => true,
      () => false,
    );
    const stats = beacon.stats();
    expect({ forgotten, paired: stats.paired, connections: stats.connections }).toEqual({
      forgotten: true,
      paired: 0,
      connections: 0,
    });
  });

  it('forgets the pair when the WebSocket client vanishes without a close frame (socket destroyed: FIN, no close handshake)', async () => {
    const { broker, tcp } = await pairWithTlsBroker();
    broker.on('error', () => {});
    broker.resume();
    tcp.destroy();
    await once(broker, 'end');
    broker.end();
    await once(broker, 'close');
    await waitUntil(() => beacon.stats().paired === 0, { timeoutMs: 3_000 });
  });
});
