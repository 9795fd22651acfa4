/**
 * The silence limit of a waiting beacon connection comes from the `keepaliveMs` the beacon announces (three
 * intervals and a slack). A beacon configured with a keepalive near 2^31-1 ms (which it accepts) made that limit
 * exceed what a Node timer keeps, so it fired after 1 ms: every waiting dial failed at once and redialed.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer as createTlsServer, type TLSSocket, type Server as TlsServer } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { RAW_ALPN, waitForPeer } from '../../runtime/beacon/index.js';
import { resolveLimits } from '../../runtime/beacon/limits.js';
import { beaconCert } from '../runtime/fixtures.js';

const servers: TlsServer[] = [];
const sockets: TLSSocket[] = [];
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const server of servers.splice(0)) server.close();
});

async function beaconAnnouncing(keepaliveMs: number) {
  const server = createTlsServer(
    { cert: beaconCert.certPem, key: beaconCert.keyPem, ALPNProtocols: [RAW_ALPN] },
    (socket) => {
      sockets.push(socket);
      socket.on('error', () => undefined);
      socket.once('data', () => {
        const body = Buffer.from(JSON.stringify({ t: 'waiting', keepaliveMs }));
        const header = Buffer.alloc(2);
        header.writeUInt16BE(body.length);
        socket.write(Buffer.concat([header, body]));
      });
    },
  );
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as { port: number }).port;
}

describe('waiting liveness with a long beacon keepalive interval', () => {
  it('a keepalive interval the beacon accepts does not fail the waiting connection after 1 ms', async () => {
    const keepaliveMs = 1_000_000_000; // ~11.6 days: accepted by the beacon's own limits
    expect(resolveLimits({ keepaliveIntervalMs: keepaliveMs }).keepaliveIntervalMs).toBe(keepaliveMs);
    const port = await beaconAnnouncing(keepaliveMs);
    const dial = waitForPeer({
      target: { door: 'tls', host: 'localhost', port },
      ip: '127.0.0.1',
      role: 'bridge',
      hash: randomBytes(32).toString('hex'),
      caCertPem: beaconCert.certPem,
    }).then(
      () => 'paired',
      (err: Error) => `failed: ${err.message}`,
    );
    const outcome = await Promise.race([
      dial,
      new Promise<string>((resolve) => setTimeout(() => resolve('still waiting'), 1_000)),
    ]);
    // Expected: still waiting (the silence limit is capped at the timer's reach). Actual: failed within ms.
    expect(outcome).toBe('still waiting');
  });
});
