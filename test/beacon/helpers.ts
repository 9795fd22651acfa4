import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Writable } from 'node:stream';
import { createServer as createTlsServer, type TLSSocket, connect as tlsConnect } from 'node:tls';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import {
  type BeaconHandle,
  type BeaconLimits,
  type BeaconTarget,
  createBeacon,
  PLAIN_MAGIC,
  RAW_ALPN,
  waitForPeer,
} from '../../runtime/beacon/index.js';
import type { Logger } from '../../runtime/core/index.js';
import {
  createCertificateAuthority,
  issueCertificate,
  issueSelfSignedSync,
} from '../../runtime/pki/index.js';

/** Beacon certificate (its own trust anchor) plus an inner cluster CA with broker and bridge leaves. */
export function makeCerts() {
  const beacon = issueSelfSignedSync({
    commonName: 'test beacon',
    dnsNames: ['localhost', 'beacon.test'],
    ipAddresses: ['127.0.0.1', '::1'],
  });
  const ca = createCertificateAuthority({ commonName: 'test cluster ca' });
  const broker = issueCertificate(ca, {
    commonName: 'broker',
    dnsNames: ['broker'],
    extKeyUsage: ['serverAuth'],
  });
  const bridge = issueCertificate(ca, { commonName: 'bridge', extKeyUsage: ['clientAuth'] });
  return { beacon, caPem: ca.certPem, broker, bridge };
}

export type Certs = ReturnType<typeof makeCerts>;

export function randomHash(): string {
  return randomBytes(32).toString('hex');
}

/** A pino logger whose lines land in `lines` (parsed) and `raw` (text), for log-content assertions. */
export function captureLogger(): { logger: Logger; lines: Record<string, unknown>[]; raw: string[] } {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      for (const line of String(chunk).split('\n')) {
        if (!line) continue;
        raw.push(line);
        lines.push(JSON.parse(line));
      }
      callback();
    },
  });
  return { logger: pino({ level: 'debug', base: { component: 'beacon' } }, destination), lines, raw };
}

export async function startBeacon(
  certs: Certs,
  options: {
    limits?: Partial<BeaconLimits>;
    plain?: boolean;
    logger?: Logger;
    metrics?: boolean;
    /** Authenticate bridges against these CAs. @default anonymous bridges (the pairing tests' subject is pairing) */
    bridgeCaPems?: string[];
  } = {},
): Promise<BeaconHandle> {
  return createBeacon({
    host: '127.0.0.1',
    port: 0,
    tls: { certPem: certs.beacon.certPem, keyPem: certs.beacon.keyPem },
    ...(options.bridgeCaPems ? { bridgeCaPems: options.bridgeCaPems } : { allowAnonymousBridges: true }),
    plain: options.plain ?? true,
    metrics: options.metrics ? { host: '127.0.0.1', port: 0 } : false,
    limits: options.limits,
    logger: options.logger,
  });
}

export function targetFor(beacon: BeaconHandle, door: 'tls' | 'wss' | 'plain'): BeaconTarget {
  return door === 'wss'
    ? { door, host: 'localhost', port: beacon.port, path: '/v1/relay' }
    : { door, host: 'localhost', port: beacon.port };
}

/** Inner mutual TLS 1.3: the broker serves, the bridge is the client; each trusts only the cluster CA. */
export async function innerMutualTls(
  certs: Certs,
  brokerStream: Duplex,
  bridgeStream: Duplex,
): Promise<{ broker: TLSSocket; bridge: TLSSocket }> {
  // A tls.Server (never listening) is what verifies the client certificate; a bare server-side TLSSocket
  // requests it but leaves the check to its owner.
  const server = createTlsServer({
    cert: certs.broker.certPem,
    key: certs.broker.keyPem,
    ca: certs.caPem,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
  });
  const brokerSecure = once(server, 'secureConnection') as Promise<[TLSSocket]>;
  server.emit('connection', brokerStream);
  const bridge = tlsConnect({
    socket: bridgeStream,
    servername: 'broker',
    cert: certs.bridge.certPem,
    key: certs.bridge.keyPem,
    ca: certs.caPem,
    minVersion: 'TLSv1.3',
  });
  await once(bridge, 'secureConnect');
  const [broker] = await brokerSecure;
  if (!bridge.authorized)
    throw new Error(`bridge did not authorize the broker: ${bridge.authorizationError}`);
  if (!broker.authorized)
    throw new Error(`broker did not authorize the bridge: ${broker.authorizationError}`);
  return { broker, bridge };
}

/** Reads exactly `length` bytes (or until end) from a stream. */
export function readBytes(stream: Duplex, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      total += chunk.length;
      if (total >= length) {
        stream.off('data', onData);
        stream.off('end', onEnd);
        stream.pause();
        resolve(Buffer.concat(chunks));
      }
    };
    const onEnd = () => {
      stream.off('data', onData);
      resolve(Buffer.concat(chunks));
    };
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', reject);
    stream.resume();
  });
}

export function readAll(stream: Duplex): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
    stream.resume();
  });
}

/** Dials `beacon` as `role` in the room `hash` with the dialer clients use, trusting `caCertPem`. */
export function dialRoom(
  beacon: BeaconHandle,
  caCertPem: string,
  role: 'broker' | 'bridge',
  hash: string,
  door: 'tls' | 'wss' | 'plain' = 'tls',
  onWaiting?: () => void,
  signal?: AbortSignal,
): Promise<Duplex> {
  return waitForPeer({
    target: targetFor(beacon, door),
    ip: '127.0.0.1',
    role,
    hash,
    caCertPem,
    onWaiting,
    signal,
  });
}

/** A broker and a bridge paired through `beacon` on `door`: the bridge waits first, as in production. */
export async function pairThrough(
  beacon: BeaconHandle,
  caCertPem: string,
  door: 'tls' | 'wss' | 'plain' = 'tls',
): Promise<{ broker: Duplex; bridge: Duplex }> {
  const hash = randomHash();
  let reached!: () => void;
  const isWaiting = new Promise<void>((resolve) => {
    reached = resolve;
  });
  const bridge = dialRoom(beacon, caCertPem, 'bridge', hash, door, reached);
  await isWaiting;
  const broker = await dialRoom(beacon, caCertPem, 'broker', hash, door);
  return { broker, bridge: await bridge };
}

export function frame(body: string | Buffer): Buffer {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  const header = Buffer.alloc(2);
  header.writeUInt16BE(bytes.length, 0);
  return Buffer.concat([header, bytes]);
}

export function announceFrame(role: 'broker' | 'bridge', hash: string): Buffer {
  return frame(JSON.stringify({ v: 1, role, hash }));
}

/** A hand-driven client for hostile-input tests: raw TLS door, plain door, or bare TCP. */
export async function rawClient(
  beacon: BeaconHandle,
  certs: Certs,
  door: 'tls' | 'plain' | 'tcp',
): Promise<Socket> {
  if (door === 'tls') {
    const socket = tlsConnect({
      host: '127.0.0.1',
      port: beacon.port,
      ca: certs.beacon.certPem,
      servername: 'localhost',
      ALPNProtocols: [RAW_ALPN],
    });
    await once(socket, 'secureConnect');
    return socket;
  }
  const socket = netConnect({ host: '127.0.0.1', port: beacon.port });
  await once(socket, 'connect');
  if (door === 'plain') socket.write(PLAIN_MAGIC);
  return socket;
}

/**
 * Collects every control frame a raw client receives until the connection closes, or until a frame of type
 * `leaveOn` arrives (then the client leaves). `leftover` counts bytes that never formed a whole frame.
 */
export function collectFrames(
  socket: Socket,
  options: { leaveOn?: string } = {},
): Promise<{ frames: Record<string, unknown>[]; leftover: number; closed: true }> {
  return new Promise((resolve) => {
    let buffered = Buffer.alloc(0);
    const frames: Record<string, unknown>[] = [];
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2) {
        const length = buffered.readUInt16BE(0);
        if (buffered.length < 2 + length) break;
        frames.push(JSON.parse(buffered.subarray(2, 2 + length).toString('utf8')));
        buffered = buffered.subarray(2 + length);
      }
      if (options.leaveOn !== undefined && frames.some((f) => f.t === options.leaveOn)) socket.destroy();
    });
    socket.on('error', () => {});
    socket.once('close', () => resolve({ frames, leftover: buffered.length, closed: true }));
  });
}

/** A raw WebSocket client against the beacon's wss door, for hostile-input tests. */
export async function webSocketClient(
  beacon: BeaconHandle,
  certs: Certs,
  path = '/v1/relay',
): Promise<WebSocket> {
  const ws = new WebSocket(`wss://localhost:${beacon.port}${path}`, { ca: certs.beacon.certPem });
  await once(ws, 'open');
  return ws;
}
