import { once } from 'node:events';
import { createServer as createNetServer, type Server } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BeaconHandle,
  dialBeacon,
  parseBeaconAddress,
  RAW_ALPN,
  resolveBeacon,
  waitForPeer,
} from '../../runtime/beacon/index.js';
import { type Certs, innerMutualTls, makeCerts, randomHash, readBytes, startBeacon } from './helpers.js';

describe('parseBeaconAddress', () => {
  const cases: [string, object][] = [
    ['beacon.example.com:443', { door: 'tls', host: 'beacon.example.com', port: 443 }],
    ['beacon.example.com', { door: 'tls', host: 'beacon.example.com', port: 443 }],
    ['tls://beacon.example.com:8443', { door: 'tls', host: 'beacon.example.com', port: 8443 }],
    ['wss://beacon.example.com', { door: 'wss', host: 'beacon.example.com', port: 443, path: '/v1/relay' }],
    [
      'wss://beacon.example.com:8443/relay/x',
      { door: 'wss', host: 'beacon.example.com', port: 8443, path: '/relay/x' },
    ],
    ['plain://10.0.0.1:7000', { door: 'plain', host: '10.0.0.1', port: 7000 }],
    ['[::1]:443', { door: 'tls', host: '::1', port: 443 }],
    ['PLAIN://[2001:db8::1]:80', { door: 'plain', host: '2001:db8::1', port: 80 }],
  ];
  for (const [input, expected] of cases) {
    it(`reads ${input}`, () => {
      expect(parseBeaconAddress(input)).toEqual(expected);
    });
  }
  for (const bad of [
    '',
    'http://x:1',
    'x:99999',
    'x:0',
    'plain://x:1/path',
    'wss://u:p@x',
    'x:1?y=2',
    ':443',
  ]) {
    it(`refuses ${JSON.stringify(bad)} with CT_INVALID_ARGUMENT`, () => {
      expect(() => parseBeaconAddress(bad)).toThrow(expect.objectContaining({ code: 'CT_INVALID_ARGUMENT' }));
    });
  }
});

describe('dialer', () => {
  let certs: Certs;
  let beacon: BeaconHandle;
  let deadPort: number;
  let blackHole: Server;

  beforeAll(async () => {
    certs = makeCerts();
    beacon = await startBeacon(certs, { limits: { brokerWaitMs: 200 } });
    // A port that refuses connections: listen, note the port, close.
    const probe = createNetServer();
    probe.listen(0, '127.0.0.1');
    await once(probe, 'listening');
    deadPort = (probe.address() as { port: number }).port;
    probe.close();
    blackHole = createNetServer((socket) => socket.on('error', () => {}));
    blackHole.listen(0, '127.0.0.1');
    await once(blackHole, 'listening');
  });
  afterAll(async () => {
    blackHole.close();
    await beacon.close();
  });

  it('resolves every address of the name through an injected resolver', async () => {
    const resolved = await resolveBeacon('beacon.test:8443', async () => [
      '10.0.0.1',
      '10.0.0.2',
      '10.0.0.1',
    ]);
    expect(resolved).toEqual({
      target: { door: 'tls', host: 'beacon.test', port: 8443 },
      ips: ['10.0.0.1', '10.0.0.2'],
    });
    await expect(resolveBeacon('beacon.test', async () => [])).rejects.toMatchObject({
      code: 'CT_BEACON_UNREACHABLE',
    });
    await expect(
      resolveBeacon('beacon.test', async () => {
        throw new Error('ENOTFOUND');
      }),
    ).rejects.toMatchObject({ code: 'CT_BEACON_UNREACHABLE' });
  });

  it('pairs through two replicas when one is down, and inner mutual TLS works on the winner', async () => {
    // Two "replicas" of one name: 127.0.0.2 has nothing listening on the beacon's port, 127.0.0.1 is the beacon.
    const resolve = async () => ['127.0.0.2', '127.0.0.1'];
    const hash = randomHash();
    const address = `localhost:${beacon.port}`;
    const [broker, bridge] = await Promise.all([
      dialBeacon({ address, resolve, role: 'broker', hash, caCertPem: certs.beacon.certPem }),
      dialBeacon({ address, resolve, role: 'bridge', hash, caCertPem: certs.beacon.certPem }),
    ]);
    expect(broker.ip).toBe('127.0.0.1');
    expect(bridge.ip).toBe('127.0.0.1');
    const inner = await innerMutualTls(certs, broker.stream, bridge.stream);
    const got = readBytes(inner.broker, 4);
    inner.bridge.write('ping');
    expect((await got).toString()).toBe('ping');
    inner.bridge.destroy();
    inner.broker.destroy();
  });

  it('pairs on whichever replica both sides reach, over the WebSocket door too', async () => {
    const second = await startBeacon(certs);
    try {
      // Same port number is not possible on one host, so each side sees one live replica among dead ones.
      const hash = randomHash();
      const [broker, bridge] = await Promise.all([
        dialBeacon({
          address: `wss://localhost:${second.port}`,
          resolve: async () => ['127.0.0.1', '127.0.0.3'],
          role: 'broker',
          hash,
          caCertPem: certs.beacon.certPem,
        }),
        dialBeacon({
          address: `plain://localhost:${second.port}`,
          resolve: async () => ['127.0.0.4', '127.0.0.1'],
          role: 'bridge',
          hash,
        }),
      ]);
      const got = readBytes(bridge.stream, 2);
      broker.stream.write('hi');
      expect((await got).toString()).toBe('hi');
      broker.stream.destroy();
      bridge.stream.destroy();
    } finally {
      await second.close();
    }
  });

  it('reports CT_BEACON_UNREACHABLE when no replica answers', async () => {
    await expect(
      dialBeacon({
        address: `localhost:${deadPort}`,
        resolve: async () => ['127.0.0.1', '127.0.0.2'],
        role: 'broker',
        hash: randomHash(),
      }),
    ).rejects.toMatchObject({ code: 'CT_BEACON_UNREACHABLE' });
  });

  it('reports CT_BEACON_UNREACHABLE when the beacon certificate is not trusted, saying to check --beacon-ca', async () => {
    await expect(
      waitForPeer({
        target: { door: 'tls', host: 'localhost', port: beacon.port },
        ip: '127.0.0.1',
        role: 'broker',
        hash: randomHash(),
      }),
    ).rejects.toMatchObject({
      code: 'CT_BEACON_UNREACHABLE',
      message: expect.stringContaining('check --beacon-ca'),
    });
  });

  // What a dial says depends on how the other end hangs up; each case once sent an outside drill the wrong way. A
  // plain HTTP port: OpenSSL's "...ssl3_record.c:350:". A beacon over its accept bounds closes before the TLS
  // handshake: "read ECONNRESET", or "closed the connection before pairing" (a clean close, 5 cases of 6). The beacon
  // also makes room by closing connections that finished the TLS handshake but have not announced yet
  // (pending_evicted_total): the bare "closed the connection before pairing" again.
  it.each([
    {
      end: 'what answers does not speak TLS',
      listen: () =>
        createNetServer((socket) =>
          socket.once('data', () => socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n')),
        ),
      says: /does not speak TLS: check the port/,
    },
    {
      end: 'the connection is reset before the TLS handshake (a beacon over its accept bounds)',
      listen: () => createNetServer((socket) => socket.resetAndDestroy()),
      says: /closed before the TLS handshake: a beacon does so/,
    },
    {
      end: 'the connection is closed cleanly before the TLS handshake (a beacon over its accept bounds)',
      listen: () => createNetServer((socket) => socket.end()),
      says: /closed before the TLS handshake: a beacon does so/,
    },
    {
      end: 'the beacon closes after the TLS handshake, before answering the announce',
      listen: () =>
        createTlsServer(
          { cert: certs.beacon.certPem, key: certs.beacon.keyPem, ALPNProtocols: [RAW_ALPN] },
          (socket) => socket.end(),
        ),
      says: /closed the connection before answering the announce \(.*pending_evicted_total with this host's egress address/,
    },
  ])('says where to look when $end', async ({ listen, says }) => {
    const closing = listen();
    closing.listen(0, '127.0.0.1');
    await once(closing, 'listening');
    try {
      await expect(
        waitForPeer({
          target: { door: 'tls', host: 'localhost', port: (closing.address() as { port: number }).port },
          ip: '127.0.0.1',
          role: 'broker',
          hash: randomHash(),
          caCertPem: certs.beacon.certPem,
        }),
      ).rejects.toMatchObject({ code: 'CT_BEACON_UNREACHABLE', message: expect.stringMatching(says) });
    } finally {
      closing.close();
    }
  });

  it('times out a server that accepts but never answers', async () => {
    await expect(
      waitForPeer({
        target: { door: 'plain', host: '127.0.0.1', port: (blackHole.address() as { port: number }).port },
        ip: '127.0.0.1',
        role: 'bridge',
        hash: randomHash(),
        connectTimeoutMs: 200,
      }),
    ).rejects.toMatchObject({ code: 'CT_BEACON_UNREACHABLE' });
  });

  it('passes the beacon limit error through when the unmatched wait expires', async () => {
    let waited = false;
    await expect(
      dialBeacon({
        address: `localhost:${beacon.port}`,
        resolve: async () => ['127.0.0.1'],
        role: 'broker',
        hash: randomHash(),
        caCertPem: certs.beacon.certPem,
        onWaiting: () => {
          waited = true;
        },
      }),
    ).rejects.toMatchObject({ code: 'CT_BEACON_LIMIT', details: { beaconCode: 'CT_BEACON_LIMIT' } });
    expect(waited).toBe(true);
  });

  it('cancels every replica attempt when the signal aborts', async () => {
    const controller = new AbortController();
    const dialing = dialBeacon({
      address: `localhost:${beacon.port}`,
      resolve: async () => ['127.0.0.1', '127.0.0.2'],
      role: 'bridge',
      hash: randomHash(),
      caCertPem: certs.beacon.certPem,
      signal: controller.signal,
      onWaiting: () => controller.abort(),
    });
    await expect(dialing).rejects.toMatchObject({ code: 'CT_CANCELLED' });
    await expect.poll(() => beacon.stats().waiting, { timeout: 5_000 }).toBe(0);
  });

  it('refuses a bad hash or role before dialing', async () => {
    const target = { door: 'tls' as const, host: 'localhost', port: beacon.port };
    await expect(waitForPeer({ target, ip: '127.0.0.1', role: 'broker', hash: 'xyz' })).rejects.toMatchObject(
      {
        code: 'CT_INVALID_ARGUMENT',
      },
    );
    await expect(
      waitForPeer({ target, ip: '127.0.0.1', role: 'admin' as 'broker', hash: randomHash() }),
    ).rejects.toMatchObject({ code: 'CT_INVALID_ARGUMENT' });
  });

  it('reports CT_BEACON_PROTOCOL when a TLS server does not speak the raw ALPN', async () => {
    const { createServer } = await import('node:tls');
    const other = createServer({
      cert: certs.beacon.certPem,
      key: certs.beacon.keyPem,
      ALPNProtocols: ['http/1.1'],
    });
    other.on('tlsClientError', () => {});
    other.listen(0, '127.0.0.1');
    await once(other, 'listening');
    try {
      await expect(
        waitForPeer({
          target: { door: 'tls', host: 'localhost', port: (other.address() as { port: number }).port },
          ip: '127.0.0.1',
          role: 'broker',
          hash: randomHash(),
          caCertPem: certs.beacon.certPem,
        }),
      ).rejects.toMatchObject({ code: expect.stringMatching(/CT_BEACON_(PROTOCOL|UNREACHABLE)/) });
    } finally {
      other.close();
    }
  });
});
