/**
 * The beacon dialer through a real HTTP proxy (proxy-chain, test/proxy/test-proxy.ts) on every door: CONNECT to
 * each replica address, credentials, NO_PROXY, refusals that name the proxy, the degraded dial by name, and proof
 * that nothing is dialled directly while a proxy is configured.
 */
import { once } from 'node:events';
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type BeaconHandle, dialBeacon, waitForPeer } from '../../runtime/beacon/index.js';
import { isCloudtaserError } from '../../runtime/core/index.js';
import {
  beaconProxySetting,
  type ProxySetting,
  parseProxyUrl,
  proxySettingFromEnvironment,
} from '../../runtime/proxy/index.js';
import { startTestProxy, type TestProxy } from '../proxy/test-proxy.js';
import {
  type Certs,
  captureLogger,
  innerMutualTls,
  makeCerts,
  randomHash,
  readBytes,
  startBeacon,
} from './helpers.js';

const NAME = 'beacon.test';
/** A second "replica" of the name: it listens, so a direct dial would reach it; the proxy refuses to tunnel to it. */
const UNTOUCHED_IP = '127.0.0.2';

let certs: Certs;
let beacon: BeaconHandle;
let proxy: TestProxy;
let untouched: Server;
const untouchedConnections: Socket[] = [];

beforeAll(async () => {
  certs = makeCerts();
  beacon = await startBeacon(certs, { limits: { brokerWaitMs: 3_000 } });
  proxy = await startTestProxy({ hosts: { [NAME]: '127.0.0.1' } });
  untouched = createNetServer((socket) => {
    untouchedConnections.push(socket);
    socket.destroy();
  });
  untouched.listen(beacon.port, UNTOUCHED_IP);
  await once(untouched, 'listening');
});

afterAll(async () => {
  untouched?.close();
  await proxy?.close();
  await beacon?.close();
});

afterEach(() => {
  proxy.log.length = 0;
  for (const key of Object.keys(proxy.policy)) delete proxy.policy[key as keyof typeof proxy.policy];
  proxy.policy.hosts = { [NAME]: '127.0.0.1' };
  proxy.policy.refuseHosts = [UNTOUCHED_IP];
});

/** Both replicas of the name: the live beacon, and the untouched listener the proxy refuses. */
const resolve = async () => ['127.0.0.1', UNTOUCHED_IP];

function fixed(url: string): ProxySetting {
  return beaconProxySetting(url, {});
}

function addressFor(door: 'tls' | 'wss' | 'plain'): string {
  return door === 'tls' ? `${NAME}:${beacon.port}` : `${door}://${NAME}:${beacon.port}`;
}

async function pair(
  door: 'tls' | 'wss' | 'plain',
  setting: ProxySetting,
  extra: {
    resolve?: (host: string) => Promise<string[]>;
    logger?: ReturnType<typeof captureLogger>['logger'];
  } = {},
) {
  const hash = randomHash();
  const dial = (role: 'broker' | 'bridge') =>
    dialBeacon({
      address: addressFor(door),
      resolve: extra.resolve ?? resolve,
      role,
      hash,
      caCertPem: door === 'plain' ? undefined : certs.beacon.certPem,
      proxy: setting,
      logger: extra.logger,
    });
  return Promise.all([dial('broker'), dial('bridge')]);
}

describe('beacon dialer through an HTTP proxy', () => {
  beforeAll(() => {
    proxy.policy.refuseHosts = [UNTOUCHED_IP];
  });

  it.each(['tls', 'wss', 'plain'] as const)(
    'pairs on the %s door through CONNECT to every replica address, with the inner mutual TLS end to end, and dials nothing directly',
    async (door) => {
      const before = untouchedConnections.length;
      const [broker, bridge] = await pair(door, fixed(proxy.url));
      expect(broker.ip).toBe('127.0.0.1');
      // Every replica address was asked of the proxy (the refused one too); nothing went around it.
      expect(proxy.tunnelsTo('127.0.0.1', beacon.port).map((e) => e.outcome)).toEqual([200, 200]);
      expect(proxy.tunnelsTo(UNTOUCHED_IP, beacon.port).map((e) => e.outcome)).toEqual([403, 403]);
      expect(proxy.log.every((entry) => entry.method === 'CONNECT')).toBe(true);
      expect(untouchedConnections.length).toBe(before);
      const inner = await innerMutualTls(certs, broker.stream, bridge.stream);
      const got = readBytes(inner.broker, 5);
      inner.bridge.write('hello');
      expect((await got).toString()).toBe('hello');
      inner.bridge.destroy();
      inner.broker.destroy();
    },
  );

  it.each(['tls', 'wss'] as const)(
    'checks the beacon certificate end to end on the %s door: the proxy cannot stand in for the beacon',
    async (door) => {
      const other = makeCerts();
      const failure = await waitForPeer({
        target:
          door === 'wss'
            ? { door, host: NAME, port: beacon.port, path: '/v1/relay' }
            : { door, host: NAME, port: beacon.port },
        ip: '127.0.0.1',
        role: 'broker',
        hash: randomHash(),
        caCertPem: other.beacon.certPem,
        proxy: parseProxyUrl(proxy.url, '--beacon-proxy'),
      }).catch((err: unknown) => err);
      expect(failure).toMatchObject({ code: 'CT_BEACON_UNREACHABLE' });
      expect((failure as Error).message).toMatch(/self.signed|certificate/i);
      expect((failure as Error).message).toContain(`through HTTP proxy ${proxy.url} (--beacon-proxy)`);
      expect(proxy.tunnelsTo('127.0.0.1', beacon.port).map((e) => e.outcome)).toEqual([200]);
    },
  );

  it('sends the Basic credentials of the proxy URL and pairs; wrong or missing ones fail with CT_PROXY_AUTH naming the proxy', async () => {
    proxy.policy.credentials = { username: 'svc-cloudtaser', password: 'p@ss:word' };
    const [broker] = await pair('tls', fixed(proxy.urlWith('svc-cloudtaser', 'p@ss:word')));
    expect(broker.ip).toBe('127.0.0.1');
    broker.stream.destroy();
    expect(proxy.tunnelsTo('127.0.0.1', beacon.port)[0]).toMatchObject({
      outcome: 200,
      username: 'svc-cloudtaser',
    });

    for (const [url, advice] of [
      [proxy.urlWith('svc-cloudtaser', 'wrong-password'), /refused the user name and password/],
      [proxy.url, /wants credentials: put them in the proxy URL, http:\/\/user:password@127\.0\.0\.1:/],
    ] as const) {
      const failure = await dialBeacon({
        address: addressFor('tls'),
        resolve,
        role: 'broker',
        hash: randomHash(),
        caCertPem: certs.beacon.certPem,
        proxy: fixed(url),
      }).catch((err: unknown) => err);
      expect(isCloudtaserError(failure, 'CT_PROXY_AUTH'), String(failure)).toBe(true);
      const message = (failure as Error).message;
      expect(message).toContain(`the HTTP proxy ${proxy.url} (--beacon-proxy)`);
      expect(message).toMatch(advice);
      expect(message).not.toMatch(/wrong-password|unreachable/);
      expect(JSON.stringify((failure as { details: unknown }).details)).not.toContain('wrong-password');
    }
  });

  it('goes direct for a NO_PROXY name, and through HTTPS_PROXY for the rest, never both', async () => {
    const env = { HTTPS_PROXY: proxy.url, NO_PROXY: `.example.com,${NAME}` };
    const before = untouchedConnections.length;
    const [broker, bridge] = await pair('tls', proxySettingFromEnvironment(env), {
      resolve: async () => ['127.0.0.1'],
    });
    broker.stream.destroy();
    bridge.stream.destroy();
    expect(proxy.log).toEqual([]);
    expect(untouchedConnections.length).toBe(before);

    const [viaProxy] = await pair('tls', proxySettingFromEnvironment({ HTTPS_PROXY: proxy.url }));
    viaProxy.stream.destroy();
    expect(proxy.tunnelsTo('127.0.0.1', beacon.port).length).toBe(2);
    expect(untouchedConnections.length).toBe(before);
  });

  it('reports a proxy that refuses CONNECT to the port with CT_PROXY_REFUSED naming the proxy and the port, not as beacon unreachable', async () => {
    proxy.policy.refusePorts = [beacon.port];
    const failure = await dialBeacon({
      address: addressFor('tls'),
      resolve,
      role: 'broker',
      hash: randomHash(),
      caCertPem: certs.beacon.certPem,
      proxy: fixed(proxy.url),
    }).catch((err: unknown) => err);
    expect(isCloudtaserError(failure, 'CT_PROXY_REFUSED'), String(failure)).toBe(true);
    expect((failure as Error).message).toContain(
      `the HTTP proxy ${proxy.url} (--beacon-proxy) refused CONNECT ${NAME}:${beacon.port} with 403 Forbidden`,
    );
    expect((failure as Error).message).toContain(`allow CONNECT to ${NAME}:${beacon.port}`);
    expect((failure as Error).message).not.toMatch(/unreachable/i);
    // Every replica address, then the name: nothing was let through.
    expect(proxy.log.map((entry) => entry.outcome)).toEqual([403, 403, 403]);
  });

  it('reports an unreachable proxy with CT_PROXY_UNREACHABLE naming it', async () => {
    const dead = await startTestProxy();
    const deadUrl = dead.url;
    await dead.close();
    const failure = await dialBeacon({
      address: addressFor('wss'),
      resolve,
      role: 'bridge',
      hash: randomHash(),
      caCertPem: certs.beacon.certPem,
      proxy: proxySettingFromEnvironment({ https_proxy: deadUrl }),
    }).catch((err: unknown) => err);
    expect(isCloudtaserError(failure, 'CT_PROXY_UNREACHABLE'), String(failure)).toBe(true);
    expect((failure as Error).message).toContain(`could not reach the HTTP proxy ${deadUrl} (https_proxy)`);
    expect((failure as Error).message).toContain('ECONNREFUSED');
  });

  it('dials by name when the proxy refuses every replica address, and logs once that the fan-out is reduced', async () => {
    proxy.policy.refuseIpLiterals = true;
    const capture = captureLogger();
    for (let round = 0; round < 2; round++) {
      const [broker, bridge] = await pair('tls', fixed(proxy.url), { logger: capture.logger });
      expect(broker.ip).toBe(NAME);
      broker.stream.destroy();
      bridge.stream.destroy();
    }
    const reduced = capture.lines.filter((line) => line.event === 'beacon.fanout_reduced');
    expect(reduced).toHaveLength(1);
    expect(reduced[0]).toMatchObject({
      level: 40,
      component: 'beacon',
      proxy: proxy.url,
      reason: expect.stringContaining(
        'the proxy refused CONNECT to every replica address of beacon.test (2 addresses; 403)',
      ),
    });
    expect(String(reduced[0].msg)).toMatch(
      /replica fan-out reduced: dialing beacon beacon\.test:\d+ by name/,
    );
    // Each dial asked for every address first (and was refused), then for the name.
    expect(proxy.tunnelsTo(NAME, beacon.port).map((e) => e.outcome)).toEqual([200, 200, 200, 200]);
    expect(proxy.log.filter((e) => e.outcome === 403)).toHaveLength(8);

    // Once the proxy tunnels to addresses again, the next dial uses every replica and says so once.
    proxy.policy.refuseIpLiterals = false;
    const [again] = await pair('tls', fixed(proxy.url), { logger: capture.logger });
    expect(again.ip).toBe('127.0.0.1');
    again.stream.destroy();
    expect(capture.lines.filter((line) => line.event === 'beacon.fanout_restored')).toHaveLength(1);
  });

  it('dials by name when this host cannot resolve the beacon name but the proxy can, and says so', async () => {
    const capture = captureLogger();
    const [broker, bridge] = await pair('wss', fixed(proxy.url), {
      logger: capture.logger,
      resolve: async () => {
        throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${NAME}`), { code: 'ENOTFOUND' });
      },
    });
    expect(broker.ip).toBe(NAME);
    const got = readBytes(bridge.stream, 2);
    broker.stream.write('ok');
    expect((await got).toString()).toBe('ok');
    broker.stream.destroy();
    bridge.stream.destroy();
    const reduced = capture.lines.filter((line) => line.event === 'beacon.fanout_reduced');
    expect(reduced).toHaveLength(1);
    expect(reduced[0].reason).toMatch(
      /this host cannot resolve beacon\.test .*ENOTFOUND.*so the proxy resolves it/,
    );
  });

  it('fails clearly when neither the addresses nor the name get through', async () => {
    proxy.policy.refuseIpLiterals = true;
    proxy.policy.hosts = {};
    const capture = captureLogger();
    const failure = await dialBeacon({
      address: addressFor('tls'),
      resolve,
      role: 'broker',
      hash: randomHash(),
      caCertPem: certs.beacon.certPem,
      proxy: fixed(proxy.url),
      logger: capture.logger,
    }).catch((err: unknown) => err);
    expect(isCloudtaserError(failure, 'CT_PROXY_REFUSED'), String(failure)).toBe(true);
    expect((failure as Error).message).toContain(`${proxy.url} (--beacon-proxy)`);
    expect((failure as Error).message).toContain(`CONNECT ${NAME}:${beacon.port}`);
    expect(capture.lines.some((line) => line.event === 'beacon.fanout_reduced')).toBe(true);
  });
});

/**
 * A rogue "proxy" written for the test: it is the adversary, not the proxy under test. `mitm` answers CONNECT
 * with 200 and then plays the beacon with its own certificate for the beacon's name; `garbage` answers with
 * something that is not HTTP; `silent` never answers.
 */
async function startRogueProxy(mode: 'mitm' | 'garbage' | 'silent') {
  const rogue = makeCerts().beacon;
  const seen = { connects: 0, tlsHandshakes: 0, plaintext: [] as Buffer[] };
  const server = createNetServer((socket) => {
    socket.on('error', () => undefined);
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      seen.connects++;
      if (mode === 'silent') return;
      if (mode === 'garbage') {
        socket.end('SSH-2.0-OpenSSH_9.6\r\n\r\n');
        return;
      }
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      const tlsSocket = new TLSSocket(socket, { isServer: true, cert: rogue.certPem, key: rogue.keyPem });
      tlsSocket.on('error', () => undefined);
      tlsSocket.on('secure', () => seen.tlsHandshakes++);
      tlsSocket.on('data', (data: Buffer) => seen.plaintext.push(data));
    };
    socket.on('data', onData);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    seen,
    close: () => new Promise<void>((done) => server.close(() => done())),
  };
}

describe('beacon dialer against hostile and broken proxies', () => {
  it.each(['tls', 'wss'] as const)(
    'refuses a proxy that answers CONNECT and plays the beacon with its own certificate (%s door): no announce reaches it',
    async (door) => {
      const rogue = await startRogueProxy('mitm');
      try {
        const failure = await dialBeacon({
          address: addressFor(door),
          resolve: async () => ['127.0.0.1'],
          role: 'broker',
          hash: randomHash(),
          caCertPem: certs.beacon.certPem,
          proxy: fixed(rogue.url),
        }).catch((err: unknown) => err);
        expect(isCloudtaserError(failure, 'CT_BEACON_UNREACHABLE'), String(failure)).toBe(true);
        expect((failure as Error).message).toMatch(/certificate/i);
        expect(rogue.seen.connects).toBeGreaterThan(0);
        expect(rogue.seen.tlsHandshakes).toBe(0);
        expect(Buffer.concat(rogue.seen.plaintext).length).toBe(0);
      } finally {
        await rogue.close();
      }
    },
  );

  it('reports a proxy that does not speak HTTP as CT_PROXY_REFUSED saying so', async () => {
    const rogue = await startRogueProxy('garbage');
    try {
      const failure = await waitForPeer({
        target: { door: 'tls', host: NAME, port: beacon.port },
        ip: '127.0.0.1',
        role: 'bridge',
        hash: randomHash(),
        caCertPem: certs.beacon.certPem,
        proxy: parseProxyUrl(rogue.url, 'HTTPS_PROXY'),
      }).catch((err: unknown) => err);
      expect(isCloudtaserError(failure, 'CT_PROXY_REFUSED'), String(failure)).toBe(true);
      expect((failure as Error).message).toContain(`${rogue.url} (HTTPS_PROXY) answered CONNECT`);
      expect((failure as Error).message).toContain('is it an HTTP proxy?');
    } finally {
      await rogue.close();
    }
  });

  it('bounds a proxy that never answers CONNECT and names it (CT_PROXY_UNREACHABLE)', async () => {
    const rogue = await startRogueProxy('silent');
    try {
      const failure = await waitForPeer({
        target: { door: 'wss', host: NAME, port: beacon.port, path: '/v1/relay' },
        ip: '127.0.0.1',
        role: 'broker',
        hash: randomHash(),
        caCertPem: certs.beacon.certPem,
        proxy: parseProxyUrl(rogue.url, '--beacon-proxy'),
        connectTimeoutMs: 300,
      }).catch((err: unknown) => err);
      expect(isCloudtaserError(failure, 'CT_PROXY_UNREACHABLE'), String(failure)).toBe(true);
      expect((failure as Error).message).toBe(
        `the HTTP proxy ${rogue.url} (--beacon-proxy) did not answer CONNECT 127.0.0.1:${beacon.port} within 300 ms; check that it is up and reachable from here`,
      );
      expect(rogue.seen.connects).toBe(1);
    } finally {
      await rogue.close();
    }
  });
});
