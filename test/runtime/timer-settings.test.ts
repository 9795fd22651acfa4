/**
 * Durations from flags reach timers: `--pod-request-timeout` beyond 2^31-1 ms (600h, or 1000h meant as "no limit")
 * made the forwarder's timer fire after 1 ms, so every pod request through the bridge timed out at once. Such
 * delays are capped at the longest a Node timer keeps.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { parseDuration } from '../../runtime/core/shutdown.js';
import { createOpenBaoForwarder } from '../../runtime/podapi/forward.js';

let server: Server | undefined;
afterEach(() => server?.close());

async function forwardWith(flag: string) {
  const port = (server!.address() as { port: number }).port;
  const forwarder = createOpenBaoForwarder({
    address: `http://127.0.0.1:${port}`,
    timeoutMs: parseDuration(flag, '--pod-request-timeout'),
  });
  try {
    return await forwarder.forward('cloudtaser/c1', {
      method: 'GET',
      path: '/openbao/v1/secret/data/app',
      headers: { 'x-vault-token': 's.x' },
      body: Buffer.alloc(0),
    });
  } finally {
    await forwarder.close();
  }
}

describe('a setting-derived pod request timeout beyond a Node timer', () => {
  it('control: --pod-request-timeout 10s forwards it', async () => {
    server = createServer((_req, res) => {
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      }, 100);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    expect((await forwardWith('10s')).status).toBe(200);
  });

  it('--pod-request-timeout 600h forwards a request OpenBao answers after 100 ms', async () => {
    server = createServer((_req, res) => {
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"data":{"data":{"k":"v"}}}');
      }, 100);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const timeoutMs = parseDuration('600h', '--pod-request-timeout');
    expect(timeoutMs).toBeGreaterThan(2 ** 31 - 1);
    const forwarder = createOpenBaoForwarder({ address: `http://127.0.0.1:${port}`, timeoutMs });
    try {
      const reply = await forwarder.forward('cloudtaser/c1', {
        method: 'GET',
        path: '/openbao/v1/secret/data/app',
        headers: { 'x-vault-token': 's.x' },
        body: Buffer.alloc(0),
      });
      // Expected: OpenBao's answer. Actual: the 1 ms timer fired first (a timeout answer).
      expect({ status: reply.status, body: String(reply.body) }).toMatchObject({ status: 200 });
    } finally {
      await forwarder.close();
    }
  });
});

describe('durations from flags', () => {
  it('need a unit: a bare number is refused with the units to choose from (10 meant 10 ms before)', () => {
    // An outside docs drill typed --poll-interval 10 for 10 s and got a bridge polling OpenBao 72 times a second.
    expect(() => parseDuration('10', '--poll-interval')).toThrow(
      /^--poll-interval "10" needs a unit: 10ms, 10s, 10m, 10h or 10d$/,
    );
    expect(parseDuration('10s', '--poll-interval')).toBe(10_000);
    expect(parseDuration('250ms', '--poll-interval')).toBe(250);
    expect(parseDuration('7d', '--rearm-window')).toBe(7 * 86_400_000);
  });
});
