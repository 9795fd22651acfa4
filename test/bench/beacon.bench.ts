/**
 * Beacon benchmarks. The relay under test always runs in a child process (this same file, started with
 * `child <kind>`), so its CPU and memory are its own. Every goal is checked against a baseline measured in
 * the same run, because these machines drift by ±30 %.
 *
 * Standalone: `npx tsc -p tsconfig.build.json && node --expose-gc dist/test/bench/beacon.bench.js [--quick]`
 */
import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  createSecureContext,
  createServer as createTlsServer,
  type SecureContext,
  type TLSSocket,
  connect as tlsConnect,
} from 'node:tls';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Server as ProxyServer } from 'proxy-chain';
import { type BeaconTarget, createBeacon, waitForPeer } from '../../runtime/beacon/index.js';
import { type ProxyEndpoint, parseProxyUrl } from '../../runtime/proxy/index.js';
import { makeCerts as makeTestCerts } from '../beacon/helpers.js';
import { type BenchContext, type Benchmark, type Metric, median, percentile, sized } from './harness.js';

/**
 * `beacon`: as deployed by default (TLS and WebSocket doors); `beacon-all-doors`: the plain door on too;
 * `http-proxy`: a real HTTP CONNECT proxy (proxy-chain) in front of the beacon, as in a proxied cluster.
 */
type RelayKind = 'beacon' | 'beacon-all-doors' | 'pipe-relay' | 'http-proxy';

interface BenchCerts {
  readonly beacon: { certPem: string; keyPem: string };
  readonly caPem: string;
  readonly broker: { certPem: string; keyPem: string };
  readonly bridge: { certPem: string; keyPem: string };
}

/** The beacon tests' certificate set, as plain PEM strings so it can travel to the child processes as JSON. */
function makeCerts(): BenchCerts {
  const { beacon, caPem, broker, bridge } = makeTestCerts();
  const pem = (issued: { certPem: string; keyPem?: string }) => ({
    certPem: issued.certPem,
    keyPem: issued.keyPem!,
  });
  return { beacon: pem(beacon), caPem, broker: pem(broker), bridge: pem(bridge) };
}

// ---------------------------------------------------------------------------------------------------------
// Child side: a relay (the beacon, or the minimal pipe relay baseline) or a bulk sender.

type ChildRequest =
  | { cmd: 'memory' }
  | { cmd: 'cpu' }
  | { cmd: 'send'; door: BeaconTarget['door']; port: number; hash: string; bytes: number };

async function runChild(kind: string): Promise<void> {
  const certs = JSON.parse(process.env.CT_BENCH_CERTS ?? '{}') as BenchCerts;
  const send = (message: unknown) => process.send!(message);
  if (kind === 'beacon' || kind === 'beacon-all-doors') {
    const beacon = await createBeacon({
      host: '127.0.0.1',
      port: 0,
      tls: certs.beacon,
      plain: kind === 'beacon-all-doors',
      allowAnonymousBridges: true,
      metrics: false,
      limits: {
        maxWaitingPerAddress: 100_000,
        maxPendingPerAddress: 1_000,
        maxConnections: 100_000,
        maxWaiting: 100_000,
      },
    });
    send({ ready: true, port: beacon.port });
  } else if (kind === 'pipe-relay') {
    send({ ready: true, port: await startPipeRelay(certs) });
  } else if (kind === 'http-proxy') {
    const proxy = new ProxyServer({ host: '127.0.0.1', port: 0 });
    await proxy.listen();
    send({ ready: true, port: proxy.port });
  } else if (kind !== 'sender') {
    throw new Error(`unknown child kind ${kind}`);
  } else {
    send({ ready: true, port: 0 });
  }
  process.on('message', (request: ChildRequest) => {
    if (request.cmd === 'memory') {
      const gc = (globalThis as { gc?: () => void }).gc;
      gc?.();
      gc?.();
      const usage = process.memoryUsage();
      send({ rss: usage.rss, heapUsed: usage.heapUsed });
    } else if (request.cmd === 'cpu') {
      const usage = process.cpuUsage();
      send({ micros: usage.user + usage.system });
    } else if (request.cmd === 'send') {
      bulkSend(certs, request).then(
        () => send({ sent: true }),
        (err) => send({ error: String(err) }),
      );
    }
  });
  process.on('disconnect', () => process.exit(0));
}

/**
 * The baseline: `tls.createServer` + read one announce frame + pair by hash + `a.pipe(b)`. Nothing else,
 * except `noDelay` (as the beacon sets): without it Nagle adds tens of ms to every handshake round trip.
 */
async function startPipeRelay(certs: BenchCerts): Promise<number> {
  const waiting = new Map<string, TLSSocket>();
  const frame = (value: object) => {
    const body = Buffer.from(JSON.stringify(value));
    const header = Buffer.alloc(2);
    header.writeUInt16BE(body.length);
    return Buffer.concat([header, body]);
  };
  const server = createTlsServer(
    {
      cert: certs.beacon.certPem,
      key: certs.beacon.keyPem,
      ALPNProtocols: ['cloudtaser-beacon/1'],
      noDelay: true,
    },
    (socket) => {
      socket.on('error', () => socket.destroy());
      let head = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        if (head.length < 2 || head.length < 2 + head.readUInt16BE(0)) return;
        socket.off('data', onData);
        socket.pause();
        const announce = JSON.parse(head.subarray(2, 2 + head.readUInt16BE(0)).toString());
        const peer = waiting.get(announce.hash);
        socket.write(frame({ t: 'waiting' }));
        if (!peer) {
          waiting.set(announce.hash, socket);
          return;
        }
        waiting.delete(announce.hash);
        peer.write(frame({ t: 'paired' }));
        socket.write(frame({ t: 'paired' }));
        peer.pipe(socket);
        socket.pipe(peer);
        peer.resume();
        socket.resume();
        peer.on('close', () => socket.destroy());
        socket.on('close', () => peer.destroy());
      };
      socket.on('data', onData);
    },
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as { port: number }).port;
}

/** The sender child's half of a bulk run: dial as bridge, inner mTLS client, write `bytes`, end. */
async function bulkSend(certs: BenchCerts, request: Extract<ChildRequest, { cmd: 'send' }>): Promise<void> {
  const stream = await waitForPeer({
    target: target(request.door, request.port),
    ip: '127.0.0.1',
    role: 'bridge',
    hash: request.hash,
    caCertPem: certs.beacon.certPem,
  });
  const inner = innerClient(certs, stream);
  await once(inner, 'secureConnect');
  const chunk = randomBytes(64 * 1024);
  for (let sent = 0; sent < request.bytes; sent += chunk.length) {
    if (!inner.write(chunk)) await once(inner, 'drain');
  }
  inner.end();
  await once(inner, 'finish');
  // The receiver confirms the byte count itself; let the tunnel wind down without holding up the next run.
  setTimeout(() => inner.destroy(), 5_000).unref();
}

// ---------------------------------------------------------------------------------------------------------
// Parent side.

interface Child {
  readonly process: ChildProcess;
  readonly port: number;
  request<T>(message: ChildRequest): Promise<T>;
  stop(): Promise<void>;
}

async function startChild(kind: RelayKind | 'sender', certs: BenchCerts): Promise<Child> {
  const path = fileURLToPath(import.meta.url);
  if (path.endsWith('.ts')) {
    throw new Error('beacon benchmarks run from the build: npx tsc -p tsconfig.build.json, then use dist/');
  }
  const child = fork(path, ['child', kind], {
    // CT_BENCH_CHILD_ARGS adds node flags to the relay children, e.g. `--cpu-prof` to see where a relay spends.
    execArgv: ['--expose-gc', ...(process.env.CT_BENCH_CHILD_ARGS ?? '').split(' ').filter(Boolean)],
    env: { ...process.env, CT_BENCH_CERTS: JSON.stringify(certs) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const [ready] = (await once(child, 'message')) as [{ port: number }];
  return {
    process: child,
    port: ready.port,
    async request<T>(message: ChildRequest): Promise<T> {
      const reply = once(child, 'message') as Promise<[T]>;
      child.send(message);
      return (await reply)[0];
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.disconnect();
      await exited;
    },
  };
}

function target(door: BeaconTarget['door'], port: number): BeaconTarget {
  return door === 'wss'
    ? { door, host: 'localhost', port, path: '/v1/relay' }
    : { door, host: 'localhost', port };
}

/** One secure context per certificate set, as a long-running bridge would keep it; parsing PEM per dial is slow. */
const clientContexts = new WeakMap<BenchCerts, SecureContext>();

function innerClient(certs: BenchCerts, socket?: Duplex, port?: number): TLSSocket {
  let secureContext = clientContexts.get(certs);
  if (!secureContext) {
    secureContext = createSecureContext({
      cert: certs.bridge.certPem,
      key: certs.bridge.keyPem,
      ca: certs.caPem,
      minVersion: 'TLSv1.3',
    });
    clientContexts.set(certs, secureContext);
  }
  return tlsConnect({
    socket,
    host: socket ? undefined : '127.0.0.1',
    port,
    servername: 'broker',
    secureContext,
  });
}

/** The broker's inner server: a never-listening tls.Server so the client certificate is verified. */
function innerServer(certs: BenchCerts) {
  return createTlsServer({
    cert: certs.broker.certPem,
    key: certs.broker.keyPem,
    ca: certs.caPem,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
  });
}

function hash(): string {
  return randomBytes(32).toString('hex');
}

/**
 * One pairing as in limits.md §7: A (inner server) is parked on the beacon; t0 just before B dials; B gets
 * paired, runs inner mTLS and writes one byte on secureConnect; t1 when A receives it.
 */
async function pairingThroughBeacon(
  certs: BenchCerts,
  port: number,
  door: BeaconTarget['door'] = 'tls',
  proxy?: ProxyEndpoint,
): Promise<number> {
  const room = hash();
  let parked!: () => void;
  const isParked = new Promise<void>((resolve) => {
    parked = resolve;
  });
  const server = innerServer(certs);
  const received = new Promise<void>((resolve, reject) => {
    server.once('secureConnection', (socket: TLSSocket) => {
      socket.once('data', () => {
        resolve();
        socket.destroy();
      });
    });
    server.once('tlsClientError', reject);
  });
  const a = waitForPeer({
    target: target(door, port),
    ip: '127.0.0.1',
    role: 'broker',
    hash: room,
    caCertPem: certs.beacon.certPem,
    proxy,
    onWaiting: parked,
  }).then((stream) => server.emit('connection', stream));
  await isParked;
  await new Promise((resolve) => setTimeout(resolve, 10));
  const t0 = performance.now();
  const stream = await waitForPeer({
    target: target(door, port),
    ip: '127.0.0.1',
    role: 'bridge',
    hash: room,
    caCertPem: certs.beacon.certPem,
    proxy,
  });
  const b = innerClient(certs, stream);
  b.once('secureConnect', () => b.write('x'));
  await Promise.all([a, received]);
  const t1 = performance.now();
  b.destroy();
  return t1 - t0;
}

/** The baseline pairing: the same inner mTLS and one byte, directly over TCP, no relay. */
async function pairingDirect(
  certs: BenchCerts,
  port: number,
  server: ReturnType<typeof innerServer>,
): Promise<number> {
  const received = new Promise<void>((resolve) => {
    server.once('secureConnection', (socket: TLSSocket) => {
      socket.once('data', () => {
        resolve();
        socket.destroy();
      });
    });
  });
  const t0 = performance.now();
  const b = innerClient(certs, undefined, port);
  b.once('secureConnect', () => b.write('x'));
  await received;
  const t1 = performance.now();
  b.destroy();
  return t1 - t0;
}

const pairingBenchmark: Benchmark = {
  name: 'beacon.pairing',
  async run(ctx: BenchContext): Promise<Metric[]> {
    const certs = makeCerts();
    const warmup = sized(ctx, 20, 5, 2);
    const count = sized(ctx, 200, 50, 10);
    const direct = innerServer(certs);
    direct.listen(0, '127.0.0.1');
    await once(direct, 'listening');
    const directPort = (direct.address() as { port: number }).port;
    const baseline: number[] = [];
    for (let i = 0; i < warmup + count; i++) {
      const ms = await pairingDirect(certs, directPort, direct);
      if (i >= warmup) baseline.push(ms);
    }
    direct.close();
    const beacon = await startChild('beacon', certs);
    const allDoors = await startChild('beacon-all-doors', certs);
    const pipe = await startChild('pipe-relay', certs);
    const httpProxy = await startChild('http-proxy', certs);
    // Both sides behind the proxy: each dial is a CONNECT, then the same outer and inner TLS as without it.
    const proxy = parseProxyUrl(`http://127.0.0.1:${httpProxy.port}`, 'bench');
    const samples: number[] = [];
    const plainSamples: number[] = [];
    const pipeSamples: number[] = [];
    const proxySamples: number[] = [];
    try {
      // Interleaved so drift hits every path alike.
      for (let i = 0; i < warmup + count; i++) {
        const tlsMs = await pairingThroughBeacon(certs, beacon.port, 'tls');
        const plainMs = await pairingThroughBeacon(certs, allDoors.port, 'plain');
        const pipeMs = await pairingThroughBeacon(certs, pipe.port, 'tls');
        const proxyMs = await pairingThroughBeacon(certs, beacon.port, 'tls', proxy);
        if (i < warmup) continue;
        samples.push(tlsMs);
        plainSamples.push(plainMs);
        pipeSamples.push(pipeMs);
        proxySamples.push(proxyMs);
      }
    } finally {
      await Promise.all([beacon.stop(), allDoors.stop(), pipe.stop(), httpProxy.stop()]);
    }
    ctx.log(
      `pairing p50: beacon tls ${median(samples).toFixed(2)} ms, through an HTTP proxy ${median(proxySamples).toFixed(2)}, plain ${median(plainSamples).toFixed(2)}, minimal TLS pipe relay ${median(pipeSamples).toFixed(2)}, direct ${median(baseline).toFixed(2)}`,
    );
    return [
      {
        // Against the minimal TLS pipe relay of the same run: what a relay that does nothing else costs.
        name: 'beacon.pairing_p50_ms',
        value: median(samples),
        unit: 'ms',
        baseline: median(pipeSamples),
        baselineLabel: 'minimal TLS pipe relay (tls.createServer + announce + a.pipe(b)), same run, p50',
        ratio: median(samples) / median(pipeSamples),
        goal: { op: '<=', limit: 1.1, on: 'ratio' },
        extra: {
          samples: count,
          directP50Ms: Number(median(baseline).toFixed(2)),
          ratioToDirect: Number((median(samples) / median(baseline)).toFixed(2)),
          plainDoorP50Ms: Number(median(plainSamples).toFixed(2)),
          plainDoorP99Ms: Number(percentile(plainSamples, 99).toFixed(2)),
          minimalTlsPipeRelayP50Ms: Number(median(pipeSamples).toFixed(2)),
          minimalTlsPipeRelayP99Ms: Number(percentile(pipeSamples, 99).toFixed(2)),
        },
      },
      {
        name: 'beacon.pairing_p50_ms_via_proxy',
        value: median(proxySamples),
        unit: 'ms',
        baseline: median(samples),
        baselineLabel:
          'the same pairing through the beacon without a proxy (beacon.pairing_p50_ms), same run',
        ratio: median(proxySamples) / median(samples),
        extra: {
          samples: count,
          proxy: 'proxy-chain (Node) in its own process, both sides tunnelling with CONNECT',
          viaProxyP99Ms: Number(percentile(proxySamples, 99).toFixed(2)),
          directP99Ms: Number(percentile(samples, 99).toFixed(2)),
        },
      },
      {
        name: 'beacon.pairing_p99_ms',
        value: percentile(samples, 99),
        unit: 'ms',
        baseline: percentile(baseline, 99),
        baselineLabel: 'direct inner mTLS (ECDSA), no relay, p99',
        ratio: percentile(samples, 99) / percentile(baseline, 99),
        goal: { op: '<=', limit: 50, on: 'value' },
        extra: { samples: count },
      },
    ];
  },
};

/**
 * Bulk inner-TLS bytes through a relay child. The receiver (this process, broker role, inner TLS server)
 * parks first; a sender child dials as bridge and writes. MB/s from the receiver's inner handshake to the
 * last byte. Three processes share the machine's cores, as in limits.md §1–6.
 */
async function bulkThroughput(
  certs: BenchCerts,
  relayPort: number,
  sender: Child,
  door: BeaconTarget['door'],
  bytes: number,
): Promise<number> {
  const room = hash();
  const server = innerServer(certs);
  let parked!: () => void;
  const isParked = new Promise<void>((resolve) => {
    parked = resolve;
  });
  const done = new Promise<number>((resolve, reject) => {
    server.once('secureConnection', (socket: TLSSocket) => {
      const start = performance.now();
      let received = 0;
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received >= bytes) resolve(performance.now() - start);
      });
      socket.on('end', () => {
        if (received < bytes) reject(new Error(`only ${received} of ${bytes} bytes arrived`));
      });
    });
    server.once('tlsClientError', reject);
  });
  const receiver = waitForPeer({
    target: target(door, relayPort),
    ip: '127.0.0.1',
    role: 'broker',
    hash: room,
    caCertPem: certs.beacon.certPem,
    onWaiting: parked,
  }).then((stream) => server.emit('connection', stream));
  await isParked;
  const sent = sender.request<{ sent?: boolean; error?: string }>({
    cmd: 'send',
    door,
    port: relayPort,
    hash: room,
    bytes,
  });
  await receiver;
  const ms = await done;
  const result = await sent;
  if (result.error) throw new Error(result.error);
  return bytes / 1e6 / (ms / 1000);
}

const throughputBenchmark: Benchmark = {
  name: 'beacon.relay_throughput',
  async run(ctx: BenchContext): Promise<Metric[]> {
    const certs = makeCerts();
    const bytes = sized(ctx, 256, 64, 8) * 1024 * 1024;
    const rounds = sized(ctx, 5, 3, 1);
    const sender = await startChild('sender', certs);
    // The TLS comparison gets a beacon child of its own, configured as deployed by default (plain door off), so
    // both relays under comparison carry only raw TLS traffic; the plain and WebSocket runs use another child.
    const beacon = await startChild('beacon', certs);
    const otherDoors = await startChild('beacon-all-doors', certs);
    const pipe = await startChild('pipe-relay', certs);
    const results: Record<string, number[]> = { beacon: [], pipe: [], plain: [], wss: [] };
    const ratios: number[] = [];
    // Relay CPU seconds per GiB: robust against other load on the machine, unlike MB/s.
    const cpuPerGib: Record<string, number[]> = { beacon: [], pipe: [] };
    const measured = async (relay: Child, door: BeaconTarget['door'], cpu?: number[]) => {
      const before = await relay.request<{ micros: number }>({ cmd: 'cpu' });
      const mbps = await bulkThroughput(certs, relay.port, sender, door, bytes);
      const after = await relay.request<{ micros: number }>({ cmd: 'cpu' });
      cpu?.push((after.micros - before.micros) / 1e6 / (bytes / 2 ** 30));
      return mbps;
    };
    try {
      // One untimed transfer through every relay and door first: the first runs of each fresh process are
      // JIT and allocator warm-up (round 1 measured 30-40 % below round 3 without it), not relay cost.
      const warmupBytes = 16 * 1024 * 1024;
      await bulkThroughput(certs, pipe.port, sender, 'tls', warmupBytes);
      await bulkThroughput(certs, beacon.port, sender, 'tls', warmupBytes);
      await bulkThroughput(certs, otherDoors.port, sender, 'plain', warmupBytes);
      await bulkThroughput(certs, otherDoors.port, sender, 'wss', warmupBytes);
      // Interleaved, alternating which goes first, so drift over the run hits both alike; the goal ratio is
      // the median of per-round ratios (paired comparison).
      for (let round = 0; round < rounds; round++) {
        const pipeFirst = round % 2 === 0;
        if (pipeFirst) results.pipe.push(await measured(pipe, 'tls', cpuPerGib.pipe));
        results.beacon.push(await measured(beacon, 'tls', cpuPerGib.beacon));
        if (!pipeFirst) results.pipe.push(await measured(pipe, 'tls', cpuPerGib.pipe));
        ratios.push(results.beacon.at(-1)! / results.pipe.at(-1)!);
        results.plain.push(await measured(otherDoors, 'plain'));
        results.wss.push(await measured(otherDoors, 'wss'));
        ctx.log(
          `round ${round + 1}: pipe ${results.pipe.at(-1)!.toFixed(0)} MB/s (${cpuPerGib.pipe.at(-1)!.toFixed(2)} cpu-s/GiB), beacon tls ${results.beacon.at(-1)!.toFixed(0)} (${cpuPerGib.beacon.at(-1)!.toFixed(2)} cpu-s/GiB), plain ${results.plain.at(-1)!.toFixed(0)}, wss ${results.wss.at(-1)!.toFixed(0)}`,
        );
      }
    } finally {
      await Promise.all([sender.stop(), beacon.stop(), otherDoors.stop(), pipe.stop()]);
    }
    const beaconMbps = median(results.beacon);
    const pipeMbps = median(results.pipe);
    return [
      {
        name: 'beacon.relay_throughput',
        value: beaconMbps,
        unit: 'MB/s',
        baseline: pipeMbps,
        baselineLabel: 'minimal Node TLS-terminating pipe relay (tls.createServer + announce + a.pipe(b))',
        ratio: median(ratios),
        goal: { op: '>=', limit: 0.9, on: 'ratio' },
        extra: {
          bytesPerRun: bytes,
          rounds,
          beaconRuns: results.beacon.map((v) => v.toFixed(0)).join(','),
          pipeRuns: results.pipe.map((v) => v.toFixed(0)).join(','),
          perRoundRatios: ratios.map((v) => v.toFixed(2)).join(','),
          beaconCpuSecondsPerGiB: Number(median(cpuPerGib.beacon).toFixed(2)),
          pipeRelayCpuSecondsPerGiB: Number(median(cpuPerGib.pipe).toFixed(2)),
          cpuRatioPipeOverBeacon: Number((median(cpuPerGib.pipe) / median(cpuPerGib.beacon)).toFixed(2)),
        },
      },
      {
        name: 'beacon.relay_throughput_plain_mbps',
        value: median(results.plain),
        unit: 'MB/s',
        baseline: pipeMbps,
        baselineLabel: 'minimal TLS pipe relay',
        ratio: median(results.plain) / pipeMbps,
      },
      {
        name: 'beacon.relay_throughput_wss_mbps',
        value: median(results.wss),
        unit: 'MB/s',
        baseline: pipeMbps,
        baselineLabel: 'minimal TLS pipe relay',
        ratio: median(results.wss) / pipeMbps,
      },
    ];
  },
};

/** Opens `count` idle pairs (raw TLS door), 50 at a time, each confirmed by a 1-byte ping-pong. */
async function openIdlePairs(port: number, certs: BenchCerts, count: number): Promise<Socket[]> {
  const sockets: Socket[] = [];
  const openOne = async () => {
    const room = hash();
    const dial = (role: 'broker' | 'bridge') =>
      waitForPeer({
        target: target('tls', port),
        ip: '127.0.0.1',
        role,
        hash: room,
        caCertPem: certs.beacon.certPem,
      });
    const [a, b] = (await Promise.all([dial('broker'), dial('bridge')])) as [Socket, Socket];
    const pong = once(a, 'data');
    b.write('p');
    await pong;
    const ping = once(b, 'data');
    a.write('p');
    await ping;
    sockets.push(a, b);
  };
  for (let opened = 0; opened < count; opened += 50) {
    await Promise.all(Array.from({ length: Math.min(50, count - opened) }, openOne));
  }
  return sockets;
}

async function idleKibPerPair(kind: RelayKind, certs: BenchCerts, count: number): Promise<number> {
  const relay = await startChild(kind, certs);
  try {
    const warm = await openIdlePairs(relay.port, certs, 200);
    for (const socket of warm) socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const before = await relay.request<{ rss: number }>({ cmd: 'memory' });
    const held = await openIdlePairs(relay.port, certs, count);
    const after = await relay.request<{ rss: number }>({ cmd: 'memory' });
    for (const socket of held) socket.destroy();
    return (after.rss - before.rss) / 1024 / count;
  } finally {
    await relay.stop();
  }
}

const idleMemoryBenchmark: Benchmark = {
  name: 'beacon.idle_pair_kib',
  async run(ctx: BenchContext): Promise<Metric[]> {
    const certs = makeCerts();
    const count = sized(ctx, 2000, 400, 50);
    const pipeKib = await idleKibPerPair('pipe-relay', certs, count);
    const beaconKib = await idleKibPerPair('beacon', certs, count);
    ctx.log(`idle pair: beacon ${beaconKib.toFixed(1)} KiB, pipe relay ${pipeKib.toFixed(1)} KiB`);
    return [
      {
        name: 'beacon.idle_pair_kib',
        value: beaconKib,
        unit: 'KiB/pair',
        baseline: pipeKib,
        baselineLabel: 'minimal Node TLS pipe relay, same method',
        ratio: beaconKib / pipeKib,
        goal: { op: '<=', limit: 64, on: 'value' },
        extra: { pairs: count },
      },
    ];
  },
};

export const benchmarks: Benchmark[] = [pairingBenchmark, throughputBenchmark, idleMemoryBenchmark];

// ---------------------------------------------------------------------------------------------------------

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain && process.argv[2] === 'child') {
  runChild(process.argv[3] ?? '').catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else if (isMain) {
  const quick = process.argv.includes('--quick');
  const only = process.argv.find((arg) => arg.startsWith('--only='))?.slice(7);
  const ctx: BenchContext = { quick, smoke: false, log: (message) => process.stderr.write(`${message}\n`) };
  const metrics: Metric[] = [];
  for (const benchmark of benchmarks) {
    if (only && benchmark.name !== only) continue;
    ctx.log(`running ${benchmark.name}${quick ? ' (quick)' : ''}`);
    metrics.push(...(await benchmark.run(ctx)));
  }
  process.stdout.write(`${JSON.stringify(metrics, null, 2)}\n`);
  // Child processes and sockets are closed; leftover client sockets from the idle test must not hold us.
  process.exit(0);
}
