import { once, setMaxListeners } from 'node:events';
import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BeaconHandle,
  createBeacon,
  readOpenFileLimit,
  waitForPeer,
} from '../../runtime/beacon/index.js';
import { waitUntil } from '../support/wait.js';
import {
  announceFrame,
  type Certs,
  captureLogger,
  collectFrames,
  dialRoom,
  frame,
  makeCerts,
  randomHash,
  rawClient,
  readBytes,
  startBeacon,
  targetFor,
  webSocketClient,
} from './helpers.js';

let certs: Certs;
let beacon: BeaconHandle;
const log = captureLogger();

const limits = {
  announceTimeoutMs: 300,
  brokerWaitMs: 300,
  bridgeWaitMs: 600,
  keepaliveIntervalMs: 100,
  maxWaitingPerHash: 2,
  maxWaitingPerAddress: 20,
  maxWaiting: 30,
  maxPendingPerAddress: 10,
  maxConnections: 60,
  pairedIdleMs: 400,
  webSocketMaxPayloadBytes: 4096,
};

beforeAll(async () => {
  certs = makeCerts();
  beacon = await startBeacon(certs, { limits, logger: log.logger });
});
afterAll(async () => {
  await beacon.close();
});

/** After every hostile act the beacon must still pair a normal broker and bridge. */
async function assertStillServes(): Promise<void> {
  const hash = randomHash();
  const dial = (role: 'broker' | 'bridge') =>
    waitForPeer({
      target: targetFor(beacon, 'tls'),
      ip: '127.0.0.1',
      role,
      hash,
      caCertPem: certs.beacon.certPem,
    });
  const [broker, bridge] = await Promise.all([dial('broker'), dial('bridge')]);
  const got = readBytes(bridge, 2);
  broker.write('ok');
  expect((await got).toString()).toBe('ok');
  broker.destroy();
  bridge.destroy();
}

/** Refusals counted so far for `reason` (the log writes one line per reason, source and message a minute). */
function rejections(reason: string): number {
  return beacon.stats().rejectionsByReason[reason] ?? 0;
}

describe('beacon under hostile input', () => {
  it('closes a connection whose first bytes are neither TLS nor the plain magic, and logs why', async () => {
    const before = rejections('garbage');
    const socket = await rawClient(beacon, certs, 'tcp');
    const result = collectFrames(socket);
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect((await result).frames).toEqual([]);
    expect(rejections('garbage')).toBe(before + 1);
    await assertStillServes();
  });

  it('closes a slow announce (slowloris) with a protocol error frame once the announce deadline passes', async () => {
    const socket = await rawClient(beacon, certs, 'tls');
    const result = collectFrames(socket);
    socket.write(Buffer.from([0x00])); // half a length header, then nothing
    const { frames } = await result;
    expect(frames).toEqual([
      { t: 'error', code: 'CT_BEACON_PROTOCOL', reason: expect.stringContaining('no announce') },
    ]);
    await assertStillServes();
  });

  it('closes a connection that completes TCP but never starts TLS', async () => {
    const socket = await rawClient(beacon, certs, 'tcp');
    socket.on('error', () => {});
    await once(socket, 'close');
    expect(rejections('announce_timeout')).toBeGreaterThan(0);
  });

  it('refuses an oversized announce as soon as its length header arrives', async () => {
    const socket = await rawClient(beacon, certs, 'tls');
    const result = collectFrames(socket);
    const header = Buffer.alloc(2);
    header.writeUInt16BE(60_000, 0);
    socket.write(header);
    const { frames } = await result;
    expect(frames).toEqual([
      { t: 'error', code: 'CT_BEACON_PROTOCOL', reason: expect.stringContaining('exceeds 512') },
    ]);
  });

  const malformed: [string, Buffer, string][] = [
    ['a wrong version', frame(JSON.stringify({ v: 2, role: 'broker', hash: 'a'.repeat(64) })), 'version'],
    ['a bad hash', frame(JSON.stringify({ v: 1, role: 'broker', hash: 'A'.repeat(64) })), 'hash'],
    ['a short hash', frame(JSON.stringify({ v: 1, role: 'bridge', hash: 'ab' })), 'hash'],
    ['an unknown role', frame(JSON.stringify({ v: 1, role: 'admin', hash: 'a'.repeat(64) })), 'role'],
    ['invalid JSON', frame('{"v":1,'), 'JSON'],
    ['a JSON array', frame('[1,2]'), 'object'],
    ['an empty frame', frame(''), 'JSON'],
    [
      'an extra field',
      frame(JSON.stringify({ v: 1, role: 'broker', hash: 'a'.repeat(64), x: 1 })),
      'unknown field',
    ],
  ];
  for (const [what, bytes, reason] of malformed) {
    it(`refuses an announce with ${what} on the raw and plain doors`, async () => {
      for (const door of ['tls', 'plain'] as const) {
        const socket = await rawClient(beacon, certs, door);
        const result = collectFrames(socket);
        socket.write(bytes);
        const { frames } = await result;
        expect(frames).toEqual([
          { t: 'error', code: 'CT_BEACON_PROTOCOL', reason: expect.stringContaining(reason) },
        ]);
      }
    });
  }

  it('refuses bytes sent after the announce before pairing (the client must wait for paired)', async () => {
    const socket = await rawClient(beacon, certs, 'plain');
    const result = collectFrames(socket);
    socket.write(Buffer.concat([announceFrame('bridge', randomHash()), Buffer.from('early')]));
    const { frames } = await result;
    expect(frames.at(-1)).toEqual({
      t: 'error',
      code: 'CT_BEACON_PROTOCOL',
      reason: expect.stringContaining('before'),
    });
    await waitUntil(() => beacon.stats().waiting === 0);
  });

  it('refuses an oversized or textual announce on the WebSocket door', async () => {
    const big = await webSocketClient(beacon, certs);
    const bigMessages: string[] = [];
    big.on('message', (data) => bigMessages.push(String(data)));
    big.send(Buffer.alloc(2000, 0x7b));
    await once(big, 'close');
    expect(JSON.parse(bigMessages[0])).toMatchObject({ t: 'error', code: 'CT_BEACON_PROTOCOL' });

    const huge = await webSocketClient(beacon, certs);
    huge.on('error', () => {});
    huge.send(Buffer.alloc(limits.webSocketMaxPayloadBytes + 1));
    const [code] = (await once(huge, 'close')) as [number];
    // Refused by the announce bound on the bytes themselves (1008, policy), long before ws's payload limit (1009)
    // would have had it buffer the whole message.
    expect(code).toBe(1008);

    const text = await webSocketClient(beacon, certs);
    const textMessages: string[] = [];
    text.on('message', (data) => textMessages.push(String(data)));
    text.send(JSON.stringify({ v: 1, role: 'broker', hash: randomHash() }));
    await once(text, 'close');
    expect(JSON.parse(textMessages[0])).toMatchObject({ t: 'error', code: 'CT_BEACON_PROTOCOL' });
    await assertStillServes();
  });

  it('logs one refusal for a connection however many HTTP requests it pipelines', async () => {
    // Before the fix: every request pipelined in one read was dispatched before `connection: close` took effect,
    // so 500 requests (13.5 KB) made 500 log lines and 500 increments of rejections_total.
    const before = log.lines.filter((l) => l.event === 'rejected' && l.reason === 'http_not_found').length;
    const socket = tlsConnect({
      host: '127.0.0.1',
      port: beacon.port,
      ca: certs.beacon.certPem,
      servername: 'localhost',
      ALPNProtocols: ['http/1.1'],
    });
    await once(socket, 'secureConnect');
    socket.on('error', () => {});
    socket.on('data', () => {});
    socket.write(Buffer.from('GET / HTTP/1.1\r\nhost: x\r\n\r\n'.repeat(500)));
    await once(socket, 'close');
    const after = log.lines.filter((l) => l.event === 'rejected' && l.reason === 'http_not_found').length;
    expect(after - before).toBe(1);
  });

  it('answers 404 to HTTP requests other than the WebSocket upgrade', async () => {
    const socket = tlsConnect({
      host: '127.0.0.1',
      port: beacon.port,
      ca: certs.beacon.certPem,
      servername: 'localhost',
      ALPNProtocols: ['http/1.1'],
    });
    await once(socket, 'secureConnect');
    socket.write('GET /admin HTTP/1.1\r\nHost: localhost\r\n\r\n');
    const [data] = (await once(socket, 'data')) as [Buffer];
    expect(data.toString()).toMatch(/^HTTP\/1\.1 404/);
    socket.destroy();
  });

  it('limits waiters per hash and role, telling the extra one why', async () => {
    const hash = randomHash();
    const controller = new AbortController();
    let waiting = 0;
    const waiters = [0, 1].map(() =>
      waitForPeer({
        target: targetFor(beacon, 'tls'),
        ip: '127.0.0.1',
        role: 'bridge',
        hash,
        caCertPem: certs.beacon.certPem,
        signal: controller.signal,
        onWaiting: () => {
          waiting += 1;
        },
      }).catch(() => undefined),
    );
    await waitUntil(() => waiting === 2);
    const third = waitForPeer({
      target: targetFor(beacon, 'plain'),
      ip: '127.0.0.1',
      role: 'bridge',
      hash,
    });
    await expect(third).rejects.toMatchObject({
      code: 'CT_BEACON_LIMIT',
      details: { beaconCode: 'CT_BEACON_LIMIT' },
    });
    controller.abort();
    await Promise.all(waiters);
  });

  it('limits waiters from one address and keeps serving others', async () => {
    await waitUntil(() => beacon.stats().waiting === 0);
    const controller = new AbortController();
    // One signal for every waiter of this flood (a bridge gives each waiter its own): a listener each, on purpose.
    setMaxListeners(limits.maxWaitingPerAddress + 5, controller.signal);
    const outcomes: Promise<unknown>[] = [];
    let refused = 0;
    for (let i = 0; i < limits.maxWaitingPerAddress + 5; i++) {
      outcomes.push(
        waitForPeer({
          target: targetFor(beacon, 'plain'),
          ip: '127.0.0.1',
          role: 'bridge',
          hash: randomHash(),
          signal: controller.signal,
        }).catch((err) => {
          if (err.code === 'CT_BEACON_LIMIT') refused += 1;
          return err;
        }),
      );
      // Stay under the pending-per-address bound: a flood of waiters, not of half-open connections.
      if (i % 5 === 4) await waitUntil(() => beacon.stats().pending === 0);
    }
    await waitUntil(() => refused === 5);
    expect(rejections('waiting_per_address')).toBeGreaterThanOrEqual(5);
    expect(beacon.stats().waiting).toBe(limits.maxWaitingPerAddress);
    controller.abort();
    const errors = (await Promise.all(outcomes)) as { code: string }[];
    expect(errors.filter((err) => err.code === 'CT_BEACON_LIMIT')).toHaveLength(5);
    await waitUntil(() => beacon.stats().waiting === 0);
    await assertStillServes();
  });

  it('keeps a flood of silent connections from one address within the pending bound, closing the oldest', async () => {
    const before = rejections('pending_evicted');
    const sockets = await Promise.all(
      Array.from({ length: limits.maxPendingPerAddress + 5 }, async () => {
        const socket = netConnect({ host: '127.0.0.1', port: beacon.port });
        socket.on('error', () => {});
        await once(socket, 'connect');
        return socket;
      }),
    );
    await waitUntil(() => rejections('pending_evicted') >= before + 5);
    expect(beacon.stats().pending).toBeLessThanOrEqual(limits.maxPendingPerAddress);
    for (const socket of sockets) socket.destroy();
    await waitUntil(() => beacon.stats().connections === 0);
  });

  it('says waiting with its keepalive interval also to the second party of a pairing (PROTOCOL.md), then paired', async () => {
    const hash = randomHash();
    const first = await rawClient(beacon, certs, 'tls');
    const firstFrames = collectFrames(first, { leaveOn: 'paired' });
    first.write(announceFrame('broker', hash));
    await waitUntil(() => beacon.stats().waiting >= 1);
    const second = await rawClient(beacon, certs, 'tls');
    const secondFrames = collectFrames(second, { leaveOn: 'paired' });
    second.write(announceFrame('bridge', hash));
    const { frames } = await secondFrames;
    // Before: {"t":"waiting"} without keepaliveMs when a peer was there already.
    expect(frames.slice(0, 2)).toEqual([
      { t: 'waiting', keepaliveMs: expect.any(Number) },
      expect.objectContaining({ t: 'paired' }),
    ]);
    await firstFrames;
  });

  it('ends an unmatched broker wait with a limit error, after keepalive pings', async () => {
    const socket = await rawClient(beacon, certs, 'tls');
    const result = collectFrames(socket);
    socket.write(announceFrame('broker', randomHash()));
    const { frames } = await result;
    // The interval tells the client how long a silence means a dead connection.
    expect(frames[0]).toEqual({ t: 'waiting', keepaliveMs: expect.any(Number) });
    expect(frames.filter((f) => f.t === 'ping').length).toBeGreaterThan(0);
    expect(frames.at(-1)).toEqual({
      t: 'error',
      code: 'CT_BEACON_LIMIT',
      reason: expect.stringContaining('no peer'),
    });
  });

  it('closes a paired connection that stays idle', async () => {
    const hash = randomHash();
    const dial = (role: 'broker' | 'bridge') =>
      waitForPeer({ target: targetFor(beacon, 'plain'), ip: '127.0.0.1', role, hash });
    const [broker, bridge] = await Promise.all([dial('broker'), dial('bridge')]);
    bridge.resume();
    broker.resume();
    // The dialer's sockets allow half-open, so the beacon's close shows up as 'end' on each side.
    await Promise.all([once(broker, 'end'), once(bridge, 'end')]);
    broker.destroy();
    bridge.destroy();
    expect(rejections('paired_idle')).toBeGreaterThan(0);
  });

  it('survives a mixed flood of hostile connections and holds no state for them afterwards', async () => {
    const heapBefore = process.memoryUsage().heapUsed;
    for (let round = 0; round < 10; round++) {
      await Promise.all(
        Array.from({ length: 8 }, async (_, i) => {
          const door = i % 2 === 0 ? 'tls' : 'plain';
          const socket = await rawClient(beacon, certs, door);
          const result = collectFrames(socket);
          if (i % 4 === 0) socket.write(frame('x'.repeat(100)));
          else if (i % 4 === 1) socket.write(announceFrame('bridge', randomHash()));
          else if (i % 4 === 2) socket.write(Buffer.from([0xff, 0xff, 1, 2, 3]));
          else socket.write(Buffer.concat([announceFrame('broker', randomHash()), Buffer.alloc(1000)]));
          if (i % 4 === 1) setTimeout(() => socket.destroy(), 20);
          await result;
        }),
      );
    }
    await waitUntil(() => {
      const stats = beacon.stats();
      return (
        stats.connections === 0 && stats.waiting === 0 && stats.rooms === 0 && stats.trackedAddresses === 0
      );
    });
    // Loose sanity bound only: 80 hostile connections must not leave megabytes behind.
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(64 * 1024 * 1024);
    await assertStillServes();
  });

  it('keeps a WebSocket waiter past the HTTP and announce deadlines until its own wait bound', async () => {
    const frames: string[] = [];
    const ws = await webSocketClient(beacon, certs);
    ws.on('message', (data) => frames.push(String(data)));
    ws.send(Buffer.from(JSON.stringify({ v: 1, role: 'bridge', hash: randomHash() })));
    await once(ws, 'close');
    // Pings kept coming for the whole bridge wait (600 ms) although the announce deadline is 300 ms.
    expect(frames.filter((f) => f.includes('"ping"')).length).toBeGreaterThanOrEqual(3);
    expect(JSON.parse(frames.at(-1)!)).toMatchObject({ t: 'error', code: 'CT_BEACON_LIMIT' });
  });

  it('returns to zero connections, waiters and rooms after all of the above', async () => {
    await waitUntil(() => {
      const stats = beacon.stats();
      return stats.connections === 0 && stats.waiting === 0 && stats.rooms === 0 && stats.paired === 0;
    });
    expect(beacon.stats()).toMatchObject({ pending: 0, trackedAddresses: 0 });
  });
});

describe('beacon total bounds', () => {
  it('refuses waiters beyond the total, and makes room for connections beyond the maximum', async () => {
    const smallLog = captureLogger();
    const small = await startBeacon(certs, {
      limits: { maxWaiting: 3, maxConnections: 5, maxWaitingPerAddress: 100 },
      logger: smallLog.logger,
    });
    try {
      const controller = new AbortController();
      const outcomes: Promise<unknown>[] = [];
      let refused = 0;
      for (let i = 0; i < 5; i++) {
        outcomes.push(
          waitForPeer({
            target: targetFor(small, 'plain'),
            ip: '127.0.0.1',
            role: 'bridge',
            hash: randomHash(),
            signal: controller.signal,
          }).catch((err) => {
            if (err.code === 'CT_BEACON_LIMIT') refused += 1;
            return err;
          }),
        );
      }
      await waitUntil(() => small.stats().waiting === 3 && refused === 2);
      await waitUntil(() => small.stats().connections === 3);
      const silent = await Promise.all(
        [0, 1].map(async () => {
          const socket = netConnect({ host: '127.0.0.1', port: small.port });
          socket.on('error', () => {});
          await once(socket, 'connect');
          return socket;
        }),
      );
      await waitUntil(() => small.stats().connections === 5);
      // At the bound the oldest silent connection makes room for the newcomer (only a beacon whose connections have
      // all announced closes it at accept, max_connections: the next describe block).
      const extra = netConnect({ host: '127.0.0.1', port: small.port });
      extra.on('error', () => {});
      await once(silent[0]!, 'close');
      expect(small.stats().rejectionsByReason).toMatchObject({ pending_evicted_total: 1, waiting_total: 2 });
      expect(small.stats().rejectionsByReason.max_connections).toBeUndefined();
      // Both waiters came from one address with one message: one line, the other summed up at close.
      expect(smallLog.lines.filter((line) => line.reason === 'pending_evicted_total')).toHaveLength(1);
      expect(smallLog.lines.filter((line) => line.reason === 'waiting_total')).toHaveLength(1);
      extra.destroy();
      for (const socket of silent) socket.destroy();
      controller.abort();
      const errors = (await Promise.all(outcomes)) as { code: string }[];
      expect(errors.filter((err) => err.code === 'CT_BEACON_LIMIT')).toHaveLength(2);
    } finally {
      await small.close();
    }
    expect(smallLog.lines.find((line) => line.event === 'rejected_summary')).toMatchObject({
      reason: 'waiting_total',
      remote: '127.0.0.1',
      suppressed: 1,
      byCode: { CT_BEACON_LIMIT: 1 },
    });
  });
});

/**
 * A flood of idle connections while a broker and its bridge dial: the oldest silent one gives way each time. From the
 * broker's own address, the per-address bound does it (an outside hostile drill kept 64 idle sockets open from the
 * broker's address, then opened new ones at 150 to 1,000 a second: the broker could not dial for as long as they
 * came, and read ECONNRESET). Spread over many addresses (an IPv6 /64 has plenty), the bound on all connections does
 * it: a newcomer there was closed at accept (max_connections), so such a flood kept every broker out.
 */
describe.each([
  {
    flood: 'from one address (a pod behind the broker NAT address)',
    limits: { maxPendingPerAddress: 4 },
    held: 4,
    source: () => undefined,
    evicted: 'pending_evicted',
    refused: 'pending_per_address',
    message: /its oldest was closed to make room$/,
  },
  {
    flood: 'from many addresses at the bound on all connections',
    limits: { maxConnections: 8 },
    held: 8,
    // 127.0.0.2 to 127.0.0.41: loopback answers every 127/8 address, each a source address of its own.
    source: (n: number) => `127.0.0.${2 + (n % 40)}`,
    evicted: 'pending_evicted_total',
    refused: 'max_connections',
    message: /the oldest one that has not announced was closed to make room$/,
  },
  {
    // 20,000 such sockets took the beacon to 600 MB, past its chart's 512 Mi (an outside drill): they are bounded on
    // their own now, far below --max-connections.
    flood: 'from many addresses at the bound on connections that have not announced (--max-pending)',
    limits: { maxPending: 8 },
    held: 8,
    source: (n: number) => `127.0.0.${2 + (n % 40)}`,
    evicted: 'pending_evicted_total',
    refused: 'max_connections',
    message: /connections have not announced \(--max-pending\): the oldest was closed to make room$/,
  },
])('idle connections held $flood', ({ limits, held: count, source, evicted: reason, refused, message }) => {
  it('give their place to new connections, so the broker still pairs, also while new ones keep coming', async () => {
    const heldLog = captureLogger();
    const held = await startBeacon(certs, {
      limits: { ...limits, announceTimeoutMs: 10_000 },
      logger: heldLog.logger,
    });
    const idle: ReturnType<typeof netConnect>[] = [];
    const open = async () => {
      const localAddress = source(idle.length);
      const socket = netConnect({
        host: '127.0.0.1',
        port: held.port,
        ...(localAddress ? { localAddress } : {}),
      });
      socket.on('error', () => {});
      idle.push(socket);
      await once(socket, 'connect');
    };
    let flooding = true;
    try {
      for (let i = 0; i < count; i++) await open();
      await waitUntil(() => held.stats().pending === count);
      let mostPending = 0;
      const watch = setInterval(() => {
        mostPending = Math.max(mostPending, held.stats().pending);
      }, 1);
      // Keep opening new silent connections while the broker and the bridge dial.
      const flood = (async () => {
        while (flooding) {
          await open();
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      })();
      const hash = randomHash();
      const dial = (role: 'broker' | 'bridge') =>
        waitForPeer({
          target: targetFor(held, 'tls'),
          ip: '127.0.0.1',
          role,
          hash,
          caCertPem: certs.beacon.certPem,
        });
      const [broker, bridge] = await Promise.all([dial('broker'), dial('bridge')]);
      broker.destroy();
      bridge.destroy();
      flooding = false;
      await flood;
      clearInterval(watch);
      // The bound held throughout: the flood never had more than `count` silent connections at once.
      expect(mostPending).toBeLessThanOrEqual(count);
      expect(held.stats().rejectionsByReason[reason]).toBeGreaterThanOrEqual(2);
      expect(held.stats().rejectionsByReason[refused]).toBeUndefined();
      const evicted = heldLog.lines.filter((line) => line.reason === reason);
      // One line for them all from one address: the age is a field, not part of the message the log folds by.
      if (reason === 'pending_evicted') expect(evicted).toHaveLength(1);
      expect(evicted[0]).toMatchObject({ silentMs: expect.any(Number) });
      expect(evicted[0]?.message).toMatch(message);
    } finally {
      flooding = false;
      for (const socket of idle) socket.destroy();
      await held.close();
    }
  });
});

/** Waits as `role` in `hash` until paired (its stream) or refused (its error, for the assertions). */
function waitIn(beacon: BeaconHandle, role: 'broker' | 'bridge', hash: string) {
  return dialRoom(beacon, certs.beacon.certPem, role, hash).catch((err: Error) => err);
}

/**
 * Announcing as a broker needs no credential: announced waiters in random rooms filled every waiting place (or, with
 * --max-connections below --max-waiting, every connection) and kept bridges and brokers out for as long as they were
 * renewed (an outside drill: a restarting broker out for the whole 30 s attack). The anonymous broker that waited
 * longest gives way now; bridges (their CA) and proven brokers never do.
 */
describe('a full beacon whose connections have all announced', () => {
  it.each([
    {
      bound: 'every waiting place (--max-waiting)',
      limits: { maxWaiting: 4 },
      reason: 'waiting_total_evicted',
    },
    {
      bound: 'every connection (--max-connections)',
      limits: { maxConnections: 4 },
      reason: 'max_connections_evicted',
    },
  ])(
    'makes an anonymous broker that waits alone give way to a bridge and its broker: $bound',
    async ({ limits, reason }) => {
      const full = await startBeacon(certs, { limits });
      try {
        const squatters = [1, 2, 3, 4].map(() => waitIn(full, 'broker', randomHash()));
        await waitUntil(() => full.stats().waiting === 4);
        const hash = randomHash();
        const bridge = waitIn(full, 'bridge', hash);
        await waitUntil(() => full.stats().waitingBridges === 1);
        const broker = await waitIn(full, 'broker', hash);
        expect(broker).not.toBeInstanceOf(Error);
        (broker as Duplex).destroy();
        ((await bridge) as Duplex).destroy();
        expect(full.stats().rejectionsByReason[reason]).toBeGreaterThanOrEqual(1);
        expect(full.stats().rejectionsByReason).not.toHaveProperty('waiting_total');
        expect(full.stats().rejectionsByReason).not.toHaveProperty('max_connections');
        await full.close();
        const evicted = (await Promise.all(squatters)).filter(
          (e) => e instanceof Error && /gave way/.test(e.message),
        );
        expect(evicted.length).toBeGreaterThanOrEqual(1);
      } finally {
        await full.close();
      }
    },
  );

  it('still closes a newcomer at accept when every connection is a bridge', async () => {
    const full = await startBeacon(certs, { limits: { maxConnections: 2 } });
    try {
      const hash = randomHash();
      const waiting = [randomHash(), hash].map((room) => waitIn(full, 'bridge', room));
      await waitUntil(() => full.stats().waiting === 2);
      const refused = await waitIn(full, 'broker', hash);
      expect(refused).toBeInstanceOf(Error);
      expect(full.stats().rejectionsByReason).toMatchObject({ max_connections: 1 });
      expect(full.stats().waiting).toBe(2);
      await full.close();
      await Promise.all(waiting);
    } finally {
      await full.close();
    }
  });
});

/**
 * With the process's open-file limit at --max-connections (a shell's `ulimit -n` of 20,000), a flood took the last
 * descriptors: probes failed and the certificate reload failed with EMFILE (an outside drill). The bound is held
 * below the limit, and said once at start.
 */
describe('the bound on connections and the open-file limit', () => {
  it('lowers --max-connections to leave descriptors for listeners, probes and certificate files', async () => {
    const log = captureLogger();
    const capped = await createBeacon({
      host: '127.0.0.1',
      port: 0,
      tls: { certPem: certs.beacon.certPem, keyPem: certs.beacon.keyPem },
      allowAnonymousBridges: true,
      limits: { maxConnections: 20_000 },
      openFileLimit: 1_024,
      logger: log.logger,
    });
    const roomy = await createBeacon({
      host: '127.0.0.1',
      port: 0,
      tls: { certPem: certs.beacon.certPem, keyPem: certs.beacon.keyPem },
      allowAnonymousBridges: true,
      limits: { maxConnections: 500 },
      openFileLimit: 1_024,
    });
    try {
      expect(capped.limits.maxConnections).toBe(768);
      expect(log.lines.find((line) => line.event === 'max_connections_capped')).toMatchObject({
        configured: 20_000,
        openFileLimit: 1_024,
        maxConnections: 768,
      });
      expect(roomy.limits.maxConnections).toBe(500);
    } finally {
      await capped.close();
      await roomy.close();
    }
  });

  it('reads the soft limit from /proc/self/limits, and none where it is unlimited or unreadable', () => {
    const limits = (soft: string) =>
      `Limit                     Soft Limit           Hard Limit           Units\nMax open files            ${soft}                1048576              files\n`;
    expect(readOpenFileLimit(() => limits('20000'))).toBe(20_000);
    expect(readOpenFileLimit(() => limits('unlimited'))).toBeUndefined();
    expect(
      readOpenFileLimit(() => {
        throw new Error('ENOENT');
      }),
    ).toBeUndefined();
  });
});
