import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP, type LookupFunction, connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  type ConnectionOptions,
  createSecureContext,
  type SecureContext,
  connect as tlsConnect,
} from 'node:tls';
import { type ClientOptions, createWebSocketStream, WebSocket } from 'ws';
import { CloudtaserError } from '../core/index.js';
import type { DialAdmission } from './admission.js';
import {
  type BeaconDoor,
  type BeaconRole,
  type ControlMessage,
  encodeFrame,
  encodeJson,
  FRAME_HEADER_BYTES,
  isRoomHash,
  MAX_FRAME_BYTES,
  PLAIN_MAGIC,
  PROTOCOL_VERSION,
  parseControl,
  RAW_ALPN,
  WEBSOCKET_PATH,
} from './protocol.js';

/** Where and how to reach a beacon: which door, which name (for TLS verification), which port. */
export interface BeaconTarget {
  readonly door: BeaconDoor;
  readonly host: string;
  readonly port: number;
  /** WebSocket path; only for the `wss` door. @default '/v1/relay' */
  readonly path?: string;
}

const DEFAULT_PORT = 443;
/** Parsing a CA bundle into a secure context costs milliseconds; dial loops reuse a few. */
const secureContexts = new Map<string, SecureContext>();
const MAX_CACHED_CONTEXTS = 8;

function secureContextFor(caCertPem: string | undefined): SecureContext | undefined {
  if (caCertPem === undefined) return undefined;
  let context = secureContexts.get(caCertPem);
  if (!context) {
    if (secureContexts.size >= MAX_CACHED_CONTEXTS)
      secureContexts.delete(secureContexts.keys().next().value!);
    context = createSecureContext({ ca: caCertPem });
    secureContexts.set(caCertPem, context);
  }
  return context;
}
/** From dial to the beacon's `waiting` frame; after that the beacon's own bounds and pings take over. */
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/**
 * Parses a beacon address as users write it in the Helm value:
 * `host:port` (TLS door, raw framing), `tls://host:port`, `wss://host:port[/path]`, `plain://host:port`.
 * The port defaults to 443 for every door, because all doors share one listening port.
 */
export function parseBeaconAddress(address: string): BeaconTarget {
  const text = typeof address === 'string' ? address.trim() : '';
  const invalid = (why: string) =>
    new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `beacon address ${JSON.stringify(String(address).slice(0, 200))} is invalid: ${why}; use host:port, wss://host:port[/path] or plain://host:port`,
    );
  if (text === '') throw invalid('it is empty');
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text)?.[1]?.toLowerCase();
  const door: BeaconDoor | undefined =
    scheme === undefined || scheme === 'tls'
      ? 'tls'
      : scheme === 'wss'
        ? 'wss'
        : scheme === 'plain'
          ? 'plain'
          : undefined;
  if (!door) throw invalid(`scheme '${scheme}' is not tls, wss or plain`);
  let url: URL;
  try {
    // Bare `host:port` is the TLS door; an explicit scheme of our own makes URL parse the authority for us.
    url = new URL(
      scheme === undefined
        ? `tls://${text}`
        : door === 'wss'
          ? text
          : `tls://${text.slice(scheme!.length + 3)}`,
    );
  } catch {
    throw invalid('it does not parse as host:port');
  }
  if (url.username || url.password) throw invalid('it must not carry credentials');
  if (url.search || url.hash) throw invalid('it must not carry a query or fragment');
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (host === '') throw invalid('the host is missing');
  const port = url.port === '' ? DEFAULT_PORT : Number(url.port);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw invalid('the port is out of range');
  if (door !== 'wss') {
    if (url.pathname !== '' && url.pathname !== '/') throw invalid(`a path is only allowed for wss://`);
    return { door, host, port };
  }
  const path = url.pathname === '' || url.pathname === '/' ? WEBSOCKET_PATH : url.pathname;
  return { door, host, port, path };
}

export interface ReplicaDialOptions {
  readonly target: BeaconTarget;
  /** The replica's IP address (one of the target name's A/AAAA records). */
  readonly ip: string;
  readonly role: BeaconRole;
  /** Room hash: 64 lower-case hex characters. */
  readonly hash: string;
  /** Trust for the outer TLS (TLS and wss doors). @default the system roots */
  readonly caCertPem?: string;
  readonly signal?: AbortSignal;
  /** Called once when the beacon has accepted the announce and the connection waits for its peer. */
  onWaiting?(): void;
  /** From dial to the beacon's `waiting` frame. @default 10000 */
  readonly connectTimeoutMs?: number;
  /** Shared bound on dials opening at once (see admission.ts); the connect timeout starts once admitted. */
  readonly admission?: DialAdmission;
}

/**
 * One connection to one replica; resolves when paired with a Duplex carrying the peer's bytes.
 * The Duplex can carry an inner `tls.connect({ socket })` or `new tls.TLSSocket(stream, { isServer: true })`.
 */
export function waitForPeer(options: ReplicaDialOptions): Promise<Duplex> {
  if (options.role !== 'broker' && options.role !== 'bridge') {
    return Promise.reject(
      new CloudtaserError(
        'CT_INVALID_ARGUMENT',
        `beacon role ${JSON.stringify(options.role)} is not broker or bridge`,
      ),
    );
  }
  if (!isRoomHash(options.hash)) {
    return Promise.reject(
      new CloudtaserError('CT_INVALID_ARGUMENT', 'beacon room hash must be 64 lower-case hex characters'),
    );
  }
  if (options.signal?.aborted) return Promise.reject(cancelled(options));
  const admission = options.admission;
  if (!admission)
    return new Promise<Duplex>((resolve, reject) => new ReplicaDial(options, resolve, reject).start());
  return admission.acquire(options.signal).then(
    (release) =>
      new Promise<Duplex>((resolve, reject) => {
        const admitted: ReplicaDialOptions = {
          ...options,
          onWaiting: () => {
            release();
            options.onWaiting?.();
          },
        };
        new ReplicaDial(
          admitted,
          (stream) => {
            release();
            resolve(stream);
          },
          (err) => {
            release();
            reject(err);
          },
        ).start();
      }),
    () => {
      throw cancelled(options);
    },
  );
}

/** The state of one waitForPeer call; private to this file. */
class ReplicaDial {
  private settled = false;
  private waitingSeen = false;
  private socket: Socket | undefined;
  private ws: WebSocket | undefined;
  private buffered: Buffer = Buffer.alloc(0);
  private readonly connectTimer: NodeJS.Timeout;
  private readonly onAbort = () => this.fail(cancelled(this.options));

  constructor(
    private readonly options: ReplicaDialOptions,
    private readonly resolve: (stream: Duplex) => void,
    private readonly reject: (err: Error) => void,
  ) {
    const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.connectTimer = setTimeout(
      () => this.fail(this.unreachable(`no answer to the announce within ${timeoutMs} ms`)),
      timeoutMs,
    );
    options.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  start(): void {
    const { target, ip } = this.options;
    const announce = encodeJson({ v: PROTOCOL_VERSION, role: this.options.role, hash: this.options.hash });
    if (target.door === 'wss') {
      this.startWebSocket(announce);
      return;
    }
    const frame = encodeFrame({ v: PROTOCOL_VERSION, role: this.options.role, hash: this.options.hash });
    let socket: Socket;
    if (target.door === 'tls') {
      const sessionKey = `${ip}|${target.port}|${target.host}|${this.options.caCertPem ?? ''}`;
      const tlsSocket = tlsConnect({
        host: ip,
        port: target.port,
        servername: isIP(target.host) ? undefined : target.host,
        secureContext: secureContextFor(this.options.caCertPem),
        ALPNProtocols: [RAW_ALPN],
        allowHalfOpen: true,
        // Resume the outer TLS with the replica's last ticket: reconnects and re-pairings skip the certificate
        // exchange (a replica that lost its ticket keys simply does a full handshake).
        session: outerTlsSessions.get(sessionKey),
      } as ConnectionOptions);
      tlsSocket.on('session', (session: Buffer) => rememberSession(sessionKey, session));
      tlsSocket.once('secureConnect', () => {
        if (tlsSocket.alpnProtocol !== RAW_ALPN) {
          this.fail(
            new CloudtaserError(
              'CT_BEACON_PROTOCOL',
              `the server at ${this.where()} did not agree to ALPN ${RAW_ALPN}; is it a cloudtaser beacon? Use wss:// for proxies that only speak HTTP`,
            ),
          );
          return;
        }
        tlsSocket.write(frame);
      });
      socket = tlsSocket;
    } else {
      socket = netConnect({ host: ip, port: target.port, allowHalfOpen: true });
      socket.once('connect', () => socket.write(Buffer.concat([PLAIN_MAGIC, frame])));
    }
    this.socket = socket;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    // Paused-mode reading: removing the 'readable' listener later returns the socket to the state of a
    // fresh one, so the caller's first 'data' listener, pipe() or inner TLS starts the flow.
    socket.on('readable', this.onSocketReadable);
    socket.on('error', this.onSocketError);
    socket.on('end', this.onSocketClose);
    socket.on('close', this.onSocketClose);
  }

  private readonly onSocketReadable = () => {
    const socket = this.socket!;
    while (!this.settled) {
      const chunk = socket.read() as Buffer | null;
      if (chunk === null) return;
      this.onSocketData(chunk);
    }
  };

  private onSocketData(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    while (!this.settled && this.buffered.length >= FRAME_HEADER_BYTES) {
      const length = this.buffered.readUInt16BE(0);
      if (length > MAX_FRAME_BYTES) {
        this.fail(
          new CloudtaserError(
            'CT_BEACON_PROTOCOL',
            `the beacon at ${this.where()} sent a ${length}-byte frame`,
          ),
        );
        return;
      }
      if (this.buffered.length < FRAME_HEADER_BYTES + length) return;
      const body = this.buffered.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length);
      this.buffered = this.buffered.subarray(FRAME_HEADER_BYTES + length);
      this.control(body);
    }
  }

  private readonly onSocketError = (err: Error) => {
    this.fail(this.unreachable(err.message, err));
  };

  private readonly onSocketClose = () => {
    this.fail(this.unreachable('the beacon closed the connection before pairing'));
  };

  private startWebSocket(announce: Buffer): void {
    const { target, ip } = this.options;
    const lookup: LookupFunction = (_hostname, lookupOptions, callback) => {
      const family = isIP(ip) === 6 ? 6 : 4;
      if ((lookupOptions as { all?: boolean }).all) {
        (callback as unknown as (err: null, addresses: { address: string; family: number }[]) => void)(null, [
          { address: ip, family },
        ]);
      } else callback(null, ip, family);
    };
    const hostForUrl = target.host.includes(':') ? `[${target.host}]` : target.host;
    // ws hands unknown options on to tls.connect, which takes the cached secure context.
    const clientOptions = {
      secureContext: secureContextFor(this.options.caCertPem),
      lookup,
      perMessageDeflate: false,
      maxPayload: 16 * 1024 * 1024,
      handshakeTimeout: this.options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    } as ClientOptions;
    const ws = new WebSocket(
      `wss://${hostForUrl}:${target.port}${target.path ?? WEBSOCKET_PATH}`,
      clientOptions,
    );
    this.ws = ws;
    ws.binaryType = 'nodebuffer';
    ws.once('open', () => ws.send(announce, { binary: true }));
    ws.on('message', this.onWebSocketMessage);
    ws.on('error', this.onSocketError);
    ws.on('unexpected-response', (_req, res) => {
      this.fail(this.unreachable(`the WebSocket upgrade was answered with HTTP ${res.statusCode}`));
    });
    ws.on('close', this.onSocketClose);
  }

  private readonly onWebSocketMessage = (data: Buffer, isBinary: boolean) => {
    if (isBinary) {
      this.fail(
        new CloudtaserError(
          'CT_BEACON_PROTOCOL',
          `the beacon at ${this.where()} sent payload before pairing`,
        ),
      );
      return;
    }
    if (data.length > MAX_FRAME_BYTES) {
      this.fail(
        new CloudtaserError(
          'CT_BEACON_PROTOCOL',
          `the beacon at ${this.where()} sent an oversized control message`,
        ),
      );
      return;
    }
    this.control(data);
  };

  private control(body: Buffer): void {
    let message: ControlMessage | undefined;
    try {
      message = parseControl(body);
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    if (!message) return;
    switch (message.t) {
      case 'waiting':
        clearTimeout(this.connectTimer);
        if (!this.waitingSeen) {
          this.waitingSeen = true;
          this.options.onWaiting?.();
        }
        return;
      case 'ping':
        return;
      case 'paired':
        this.paired();
        return;
      case 'error':
        this.fail(
          new CloudtaserError(
            message.code === 'CT_BEACON_LIMIT' ? 'CT_BEACON_LIMIT' : 'CT_BEACON_REJECTED',
            `the beacon at ${this.where()} refused the connection: ${message.code}: ${message.reason}`,
            { details: { beaconCode: message.code, reason: message.reason, ip: this.options.ip } },
          ),
        );
        return;
    }
  }

  private paired(): void {
    if (this.settled) return;
    this.settled = true;
    this.cleanup();
    if (this.ws) {
      const ws = this.ws;
      ws.off('message', this.onWebSocketMessage);
      ws.off('error', this.onSocketError);
      ws.off('close', this.onSocketClose);
      this.resolve(createWebSocketStream(ws));
      return;
    }
    const socket = this.socket!;
    socket.off('readable', this.onSocketReadable);
    socket.off('error', this.onSocketError);
    socket.off('end', this.onSocketClose);
    socket.off('close', this.onSocketClose);
    // The peer's first bytes may have arrived in the same read as `paired`; hand them on with the stream.
    if (this.buffered.length > 0) socket.unshift(this.buffered);
    this.buffered = Buffer.alloc(0);
    this.resolve(socket);
  }

  private fail(err: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.cleanup();
    this.socket?.destroy();
    this.ws?.terminate();
    this.reject(err);
  }

  private cleanup(): void {
    clearTimeout(this.connectTimer);
    this.options.signal?.removeEventListener('abort', this.onAbort);
  }

  private where(): string {
    const { target, ip } = this.options;
    return `${target.door}://${target.host}:${target.port} (${ip})`;
  }

  private unreachable(why: string, cause?: unknown): CloudtaserError {
    return new CloudtaserError('CT_BEACON_UNREACHABLE', `beacon ${this.where()} unreachable: ${why}`, {
      cause,
      details: { ip: this.options.ip },
    });
  }
}

function cancelled(options: ReplicaDialOptions): CloudtaserError {
  return new CloudtaserError('CT_CANCELLED', `dialing beacon replica ${options.ip} was cancelled`);
}

/** Resolves a host name to every address (A and AAAA); injectable for tests and custom discovery. */
export type BeaconResolver = (host: string) => Promise<string[]>;

export const systemResolver: BeaconResolver = async (host) =>
  (await dnsLookup(host, { all: true, verbatim: true })).map((entry) => entry.address);

/** Parses the address and resolves its host to every replica IP (an IP literal resolves to itself). */
export async function resolveBeacon(
  address: string,
  resolve: BeaconResolver = systemResolver,
): Promise<{ target: BeaconTarget; ips: string[] }> {
  const target = parseBeaconAddress(address);
  if (isIP(target.host)) return { target, ips: [target.host] };
  let ips: string[];
  try {
    ips = [...new Set(await resolve(target.host))];
  } catch (err) {
    throw new CloudtaserError(
      'CT_BEACON_UNREACHABLE',
      `beacon name ${target.host} did not resolve: ${String(err)}`,
      {
        cause: err,
      },
    );
  }
  if (ips.length === 0) {
    throw new CloudtaserError('CT_BEACON_UNREACHABLE', `beacon name ${target.host} resolved to no address`);
  }
  return { target, ips };
}

export interface BeaconDialOptions extends Omit<ReplicaDialOptions, 'ip' | 'target'> {
  /** The beacon address as in the Helm value (see parseBeaconAddress). */
  readonly address: string;
  readonly resolve?: BeaconResolver;
}

/**
 * Resolves every A/AAAA record of the name, dials all replicas in parallel and returns the first pairing;
 * the other attempts are closed. Rejects only when every replica failed (or the signal aborted).
 */
export async function dialBeacon(options: BeaconDialOptions): Promise<{ stream: Duplex; ip: string }> {
  const { target, ips } = await resolveBeacon(options.address, options.resolve);
  if (options.signal?.aborted) throw new CloudtaserError('CT_CANCELLED', 'dialing the beacon was cancelled');
  const attempts = new AbortController();
  const forwardAbort = () => attempts.abort();
  options.signal?.addEventListener('abort', forwardAbort, { once: true });
  let waitingReported = false;
  const onWaiting = () => {
    if (waitingReported) return;
    waitingReported = true;
    options.onWaiting?.();
  };
  try {
    return await new Promise<{ stream: Duplex; ip: string }>((resolve, reject) => {
      let winner = false;
      const errors: CloudtaserError[] = [];
      for (const ip of ips) {
        waitForPeer({ ...options, target, ip, signal: attempts.signal, onWaiting }).then(
          (stream) => {
            if (winner) {
              // Paired on a second replica in the same moment: close it so that peer dials again.
              stream.destroy();
              return;
            }
            winner = true;
            attempts.abort();
            resolve({ stream, ip });
          },
          (err: CloudtaserError) => {
            errors.push(err);
            if (!winner && errors.length === ips.length)
              reject(pickDialError(errors, options.signal, options.address));
          },
        );
      }
    });
  } finally {
    options.signal?.removeEventListener('abort', forwardAbort);
  }
}

/** The most telling of the replicas' errors: the caller's cancel, then a beacon's stated reason, then unreachable. */
function pickDialError(
  errors: CloudtaserError[],
  signal: AbortSignal | undefined,
  address: string,
): CloudtaserError {
  if (signal?.aborted) return new CloudtaserError('CT_CANCELLED', 'dialing the beacon was cancelled');
  const stated = errors.find((err) => err.code !== 'CT_BEACON_UNREACHABLE' && err.code !== 'CT_CANCELLED');
  if (stated) return stated;
  if (errors.length === 1) return errors[0];
  return new CloudtaserError(
    'CT_BEACON_UNREACHABLE',
    `no replica of beacon ${address} could be reached: ${errors.map((err) => err.message).join('; ')}`,
    { cause: new AggregateError(errors) },
  );
}

/** Outer-TLS session tickets per beacon replica, bounded so a long-lived process cannot grow it without end. */
const outerTlsSessions = new Map<string, Buffer>();
const MAX_REMEMBERED_SESSIONS = 64;

function rememberSession(key: string, session: Buffer): void {
  outerTlsSessions.delete(key);
  outerTlsSessions.set(key, session);
  if (outerTlsSessions.size > MAX_REMEMBERED_SESSIONS) {
    outerTlsSessions.delete(outerTlsSessions.keys().next().value as string);
  }
}
