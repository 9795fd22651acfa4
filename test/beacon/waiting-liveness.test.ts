/**
 * A waiting connection is alive while the beacon's keepalive pings arrive, and dead after three missed ones.
 * Before, the client ignored the pings, so a half-open connection (a replica gone without a FIN reaching us) was
 * only noticed by the bridge's refresh timer, which therefore redialed every room every 30 to 60 s: a mutual-TLS
 * handshake per room per minute on both ends, ~6 ms of CPU per cluster per minute each, growing with the fleet.
 * Now the refresh can be long (default 540 s, below the beacon's 600 s bound for an unmatched bridge).
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer as createTlsServer, type TLSSocket, type Server as TlsServer } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { RAW_ALPN, waitForPeer } from '../../runtime/beacon/index.js';
import { DEFAULT_BEACON_LIMITS } from '../../runtime/beacon/limits.js';
import { DEFAULT_BRIDGE_TIMING } from '../../runtime/bridge/options.js';
import { isCloudtaserError } from '../../runtime/core/index.js';
import { beaconCert } from '../runtime/fixtures.js';
import { waitUntil } from '../support/wait.js';

const servers: TlsServer[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
});

/**
 * A beacon replica that accepts the announce, says `waiting` (with `keepaliveMs` unless told not to), pings for
 * `pingForMs`, then falls silent with the connection still open: a half-open connection as the client sees it.
 */
async function fakeBeacon(options: { keepaliveMs: number; pingForMs: number; announceInterval: boolean }) {
  const sockets: TLSSocket[] = [];
  const server = createTlsServer(
    { cert: beaconCert.certPem, key: beaconCert.keyPem, ALPNProtocols: [RAW_ALPN] },
    (socket) => {
      sockets.push(socket);
      socket.on('error', () => undefined);
      const send = (message: object) => {
        const body = Buffer.from(JSON.stringify(message));
        const header = Buffer.alloc(2);
        header.writeUInt16BE(body.length);
        socket.write(Buffer.concat([header, body]));
      };
      socket.once('data', () => {
        send(
          options.announceInterval ? { t: 'waiting', keepaliveMs: options.keepaliveMs } : { t: 'waiting' },
        );
        const pings = setInterval(() => send({ t: 'ping' }), options.keepaliveMs);
        setTimeout(() => clearInterval(pings), options.pingForMs);
        socket.on('close', () => clearInterval(pings));
      });
    },
  );
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as { port: number }).port, sockets };
}

function dial(port: number) {
  const started = performance.now();
  return waitForPeer({
    target: { door: 'tls', host: 'localhost', port },
    ip: '127.0.0.1',
    role: 'bridge',
    hash: randomBytes(32).toString('hex'),
    caCertPem: beaconCert.certPem,
  }).then(
    () => ({ error: undefined, ms: performance.now() - started }),
    (error: unknown) => ({ error, ms: performance.now() - started }),
  );
}

describe('a waiting connection and the beacon keepalive', () => {
  it('stays waiting while pings arrive, and fails as unreachable within three missed pings once they stop', async () => {
    const beacon = await fakeBeacon({ keepaliveMs: 200, pingForMs: 1_500, announceInterval: true });
    const { error, ms } = await dial(beacon.port);
    expect(isCloudtaserError(error, 'CT_BEACON_UNREACHABLE')).toBe(true);
    expect((error as Error).message).toContain('sent nothing (not even its keepalive ping) for 800 ms');
    // Alive through 1.5 s of pings (many times the limit), dead ~0.8 s after the last one.
    expect(ms).toBeGreaterThan(1_500);
    expect(ms).toBeLessThan(4_000);
    // The client closed its end: the beacon's side sees the close.
    await waitUntil(() => beacon.sockets[0].destroyed, { what: "the beacon's socket closed" });
  });

  it("against a beacon that does not say its interval, assumes the default's 20 s (65 s of silence)", async () => {
    const beacon = await fakeBeacon({ keepaliveMs: 200, pingForMs: 0, announceInterval: false });
    const outcome = await Promise.race([
      dial(beacon.port),
      new Promise<'still waiting'>((resolve) => setTimeout(() => resolve('still waiting'), 1_500)),
    ]);
    expect(outcome).toBe('still waiting');
    for (const socket of beacon.sockets) socket.destroy();
  });

  it('a huge interval the beacon accepts (~11.6 days) does not fail the waiting connection after 1 ms', async () => {
    // Three intervals are beyond a Node timer's reach, which fires such a timer after 1 ms; the limit is capped.
    const keepaliveMs = 1_000_000_000;
    const { resolveLimits } = await import('../../runtime/beacon/limits.js');
    expect(resolveLimits({ keepaliveIntervalMs: keepaliveMs }).keepaliveIntervalMs).toBe(keepaliveMs);
    const beacon = await fakeBeacon({ keepaliveMs, pingForMs: 0, announceInterval: true });
    const outcome = await Promise.race([
      dial(beacon.port),
      new Promise<'still waiting'>((resolve) => setTimeout(() => resolve('still waiting'), 1_000)),
    ]);
    expect(outcome).toBe('still waiting');
    for (const socket of beacon.sockets) socket.destroy();
  });

  it('the bridge refreshes a waiting connection less often than the beacon expires an unmatched one', () => {
    // Refreshes come after a jittered half to all of waitRefreshMs: at most 9 minutes, never the beacon's 10.
    expect(DEFAULT_BRIDGE_TIMING.waitRefreshMs).toBeLessThan(DEFAULT_BEACON_LIMITS.bridgeWaitMs);
    expect(DEFAULT_BRIDGE_TIMING.waitRefreshMs / 2).toBeGreaterThanOrEqual(4 * 60_000);
  });
});

describe('durations beyond a Node timer', () => {
  it('are refused for beacon and tunnel limits, which would otherwise fire after 1 ms', async () => {
    const { resolveLimits } = await import('../../runtime/beacon/limits.js');
    const { resolveTunnelLimits } = await import('../../runtime/tunnel/index.js');
    expect(() => resolveLimits({ bridgeWaitMs: 2 ** 31 })).toThrow(
      /bridgeWaitMs' is 2147483648; it must be .* <= 2147483647/,
    );
    expect(() => resolveTunnelLimits({ pingIntervalMs: 2 ** 31 })).toThrow(/<= 2147483647/);
    expect(resolveLimits({ bridgeWaitMs: 2 ** 31 - 1 }).bridgeWaitMs).toBe(2 ** 31 - 1);
  });
});
