/**
 * One connection to one beacon replica, through its door: outer TLS with raw frames, a WebSocket over TLS, or
 * the plain door; directly or over an HTTP proxy's CONNECT tunnel (proxy/tunnel.ts). It announces, waits for
 * the `paired` frame and hands over the stream; every failure becomes a CT_ error naming the replica.
 */

import { isIP, type LookupFunction, connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  type ConnectionOptions,
  createSecureContext,
  type SecureContext,
  connect as tlsConnect,
} from 'node:tls';
import { type ClientOptions, createWebSocketStream, WebSocket } from 'ws';
import { timerDelay } from '../core/backoff.js';
import { CloudtaserError } from '../core/index.js';
// settings and tunnel only: the undici dispatcher (proxy/dispatcher.ts) is the OpenBao client's business.
import { authority, type ProxyEndpoint } from '../proxy/settings.js';
import { openProxyTunnel } from '../proxy/tunnel.js';
import type { BeaconTarget } from './address.js';
import type { DialAdmission } from './admission.js';
import {
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

/** A client certificate for the beacon's outer TLS: how a bridge proves it may wait in rooms. */
export interface BeaconClientCertificate {
  readonly certPem: string;
  /** PEM, in memory only. */
  readonly keyPem: string;
}

/**
 * Parsing a CA bundle or a key into a secure context costs milliseconds, and dial loops repeat. A context with a
 * client certificate lives as long as that certificate's object (a bridge's identity, a broker's credentials): one
 * per identity, however many identities a process holds (the fleet benchmark runs 1,000 brokers in one process, and
 * a shared cache of 8 made every one of their operational dials parse its key again). Contexts with a CA only are
 * few: the last 8 are kept.
 */
const clientContexts = new WeakMap<BeaconClientCertificate, Map<string, SecureContext>>();
const caContexts = new Map<string, SecureContext>();
const MAX_CACHED_CA_CONTEXTS = 8;

function secureContextFor(
  caCertPem: string | undefined,
  client: BeaconClientCertificate | undefined,
): SecureContext | undefined {
  if (caCertPem === undefined && client === undefined) return undefined;
  const caKey = caCertPem ?? '';
  let byCa = client ? clientContexts.get(client) : caContexts;
  if (!byCa) {
    byCa = new Map();
    clientContexts.set(client!, byCa);
  }
  let context = byCa.get(caKey);
  if (context) return context;
  try {
    context = createSecureContext({
      ...(caCertPem !== undefined ? { ca: caCertPem } : {}),
      ...(client ? { cert: client.certPem, key: client.keyPem } : {}),
    });
  } catch (err) {
    throw new CloudtaserError(
      'CT_BEACON_IDENTITY',
      `the beacon CA or client certificate is unusable: ${(err as Error).message}`,
      { cause: err },
    );
  }
  if (!client && caContexts.size >= MAX_CACHED_CA_CONTEXTS)
    caContexts.delete(caContexts.keys().next().value!);
  byCa.set(caKey, context);
  return context;
}
/** From dial to the beacon's `waiting` frame; after that the beacon's own bounds and pings take over. */
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/**
 * Keepalive pings a waiting connection may miss before it counts as dead, plus slack for a loaded replica (one
 * more interval, at most 5 s).
 */
const SILENT_KEEPALIVES = 3;
const SILENCE_SLACK_MS = 5_000;
/** For beacons that do not say their keepalive interval: three of the default 20 s, plus the slack. */
const DEFAULT_SILENCE_LIMIT_MS = SILENT_KEEPALIVES * 20_000 + SILENCE_SLACK_MS;

export interface ReplicaDialOptions {
  readonly target: BeaconTarget;
  /**
   * The replica's IP address (one of the target name's A/AAAA records); through a proxy that must resolve the
   * name itself, the beacon's name (see planBeaconDial).
   */
  readonly ip: string;
  /**
   * Reach the replica through this HTTP proxy with CONNECT. Only the tunnel changes: the outer TLS (name check,
   * ALPN, session resumption) and the inner TLS run end to end exactly as without it. @default direct
   */
  readonly proxy?: ProxyEndpoint;
  readonly role: BeaconRole;
  /** Room hash: 64 lower-case hex characters. */
  readonly hash: string;
  /** Trust for the outer TLS (TLS and wss doors). @default the system roots */
  readonly caCertPem?: string;
  /**
   * The client certificate the outer TLS presents (TLS and wss doors): a bridge's proof that it may wait in rooms,
   * or a bootstrapped broker's own with its cluster CA, proof that it belongs in its operational room
   * (broker-proof.ts). @default none
   */
  readonly clientCertificate?: BeaconClientCertificate;
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
  /** The CONNECT tunnel, when the replica is reached through a proxy; owned until the caller gets the stream. */
  private tunnel: Socket | undefined;
  private readonly tunnelAbort = new AbortController();
  private socket: Socket | undefined;
  private ws: WebSocket | undefined;
  private buffered: Buffer = Buffer.alloc(0);
  private readonly connectTimer: NodeJS.Timeout;
  /** While waiting: fails the dial when the beacon has sent nothing (not even its keepalive ping) for too long. */
  private silenceTimer: NodeJS.Timeout | undefined;
  private silenceLimitMs = DEFAULT_SILENCE_LIMIT_MS;
  private readonly onAbort = () => this.fail(cancelled(this.options));

  constructor(
    private readonly options: ReplicaDialOptions,
    private readonly resolve: (stream: Duplex) => void,
    private readonly reject: (err: Error) => void,
  ) {
    const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.connectTimer = setTimeout(() => {
      const proxy = options.proxy;
      // Still waiting for the proxy's answer to CONNECT: the proxy is what stalls, so name it.
      if (proxy && !this.tunnel) {
        this.fail(
          new CloudtaserError(
            'CT_PROXY_UNREACHABLE',
            `the HTTP proxy ${proxy.describe()} did not answer CONNECT ${authority(options.ip, options.target.port)} within ${timeoutMs} ms; check that it is up and reachable from here`,
            { details: { proxy: proxy.display, proxySource: proxy.source, ip: options.ip } },
          ),
        );
        return;
      }
      this.fail(this.unreachable(`no answer to the announce within ${timeoutMs} ms`));
    }, timeoutMs);
    options.signal?.addEventListener('abort', this.onAbort, { once: true });
    // Aborted before we listened (the admission handed us a slot in the same cascade that aborted us): an
    // 'abort' listener added now never fires, and a dial started anyway would hold a waiting socket forever.
    if (options.signal?.aborted) this.onAbort();
  }

  start(): void {
    if (this.settled) return;
    const { proxy, ip, target } = this.options;
    if (!proxy) {
      this.connect(undefined);
      return;
    }
    // The tunnel first; then the same door code as a direct dial runs over it.
    openProxyTunnel(
      proxy,
      { host: ip, port: target.port },
      {
        signal: this.tunnelAbort.signal,
        connectTimeoutMs: this.options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      },
    ).then(
      (tunnel) => {
        if (this.settled) {
          tunnel.destroy();
          return;
        }
        // Half-close passes through like on a direct TCP connection (as far as the proxy keeps it).
        tunnel.allowHalfOpen = true;
        this.tunnel = tunnel;
        this.connect(tunnel);
      },
      (err: Error) => this.fail(err),
    );
  }

  /** Runs the door over a fresh TCP connection, or over `tunnel` (a CONNECT tunnel to the replica). */
  private connect(tunnel: Socket | undefined): void {
    const { target, ip } = this.options;
    const announce = encodeJson({ v: PROTOCOL_VERSION, role: this.options.role, hash: this.options.hash });
    if (target.door === 'wss') {
      this.startWebSocket(announce, tunnel);
      return;
    }
    const frame = encodeFrame({ v: PROTOCOL_VERSION, role: this.options.role, hash: this.options.hash });
    let socket: Socket;
    if (target.door === 'tls') {
      const client = this.options.clientCertificate;
      const sessionKey = `${ip}|${target.port}|${target.host}|${this.options.caCertPem ?? ''}`;
      let secureContext: SecureContext | undefined;
      try {
        secureContext = secureContextFor(this.options.caCertPem, client);
      } catch (err) {
        queueMicrotask(() => this.fail(err as Error));
        return;
      }
      const outerTls: ConnectionOptions & { allowHalfOpen: boolean } = {
        servername: isIP(target.host) ? undefined : target.host,
        secureContext,
        ALPNProtocols: [RAW_ALPN],
        allowHalfOpen: true,
        // Resume the outer TLS with the replica's last ticket: reconnects and re-pairings skip the certificate
        // exchange (a replica that lost its ticket keys simply does a full handshake). Not with a client
        // certificate: the beacon then checks the bridge's current certificate on every connection, not one a
        // ticket remembers.
        session: client ? undefined : outerTlsSessions.get(sessionKey),
      };
      // The same outer TLS over a direct connection or a proxy tunnel: only where the bytes travel differs.
      const tlsSocket = tlsConnect(
        tunnel ? { ...outerTls, socket: tunnel } : { ...outerTls, host: ip, port: target.port },
      );
      if (!client) tlsSocket.on('session', (session: Buffer) => rememberSession(sessionKey, session));
      tlsSocket.once('secureConnect', () => {
        this.handshakeDone = true;
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
    } else if (tunnel) {
      socket = tunnel;
      socket.write(Buffer.concat([PLAIN_MAGIC, frame]));
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
    this.fail(this.unreachable(`${err.message.trim()}${dialErrorHint(err)}`, err));
  };

  private readonly onSocketClose = () => {
    this.fail(
      this.unreachable(
        this.waitingSeen
          ? 'the beacon closed the connection before pairing'
          : this.handshakeDone || this.options.target.door !== 'tls'
            ? `the beacon closed the connection before answering the announce${CLOSED_BEFORE_ANNOUNCE_HINT}`
            : `the connection was closed${CLOSED_BEFORE_TLS_HINT}`,
      ),
    );
  };

  /** The outer TLS handshake completed (TLS door): a close before it is a bound at accept, not a refusal. */
  private handshakeDone = false;

  private startWebSocket(announce: Buffer, tunnel: Socket | undefined): void {
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
    let secureContext: SecureContext | undefined;
    try {
      secureContext = secureContextFor(this.options.caCertPem, this.options.clientCertificate);
    } catch (err) {
      queueMicrotask(() => this.fail(err as Error));
      return;
    }
    // ws hands unknown options on to tls.connect (or to createConnection), which takes the cached secure context.
    const clientOptions = {
      secureContext,
      // Through a proxy, ws runs its TLS and upgrade over the CONNECT tunnel with every TLS option it was given.
      ...(tunnel
        ? {
            createConnection: (options: ConnectionOptions) =>
              tlsConnect({
                ...options,
                socket: tunnel,
                servername: isIP(target.host) ? undefined : target.host,
              }),
          }
        : { lookup }),
      perMessageDeflate: false,
      maxPayload: 16 * 1024 * 1024,
      handshakeTimeout: this.options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    } as unknown as ClientOptions;
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
        if (message.keepaliveMs !== undefined)
          // Capped at the longest a timer keeps: a beacon's huge interval must not fail the wait after 1 ms.
          this.silenceLimitMs = timerDelay(
            SILENT_KEEPALIVES * message.keepaliveMs + Math.min(message.keepaliveMs, SILENCE_SLACK_MS),
          );
        this.heardFromBeacon();
        if (!this.waitingSeen) {
          this.waitingSeen = true;
          this.options.onWaiting?.();
        }
        return;
      case 'ping':
        this.heardFromBeacon();
        return;
      case 'paired':
        this.paired();
        return;
      case 'draining':
        this.fail(
          new CloudtaserError(
            'CT_BEACON_DRAINING',
            `the beacon at ${this.where()} is shutting down: it pairs nothing more and ends the relays it carries within ${message.retryAfterMs} ms; wait on another replica`,
            { details: { ip: this.options.ip, retryAfterMs: message.retryAfterMs } },
          ),
        );
        return;
      case 'error':
        this.fail(
          new CloudtaserError(
            message.code === 'CT_BEACON_LIMIT' || message.code === 'CT_BEACON_UNAUTHENTICATED'
              ? message.code
              : 'CT_BEACON_REJECTED',
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
    this.tunnelAbort.abort();
    this.socket?.destroy();
    this.ws?.terminate();
    this.tunnel?.destroy();
    this.reject(err);
  }

  /**
   * A waiting connection is alive as long as the beacon's keepalive pings arrive. Three missed in a row means a
   * half-open connection (a replica gone without a FIN reaching us, a NAT that dropped the mapping): dial again.
   * This is what lets a bridge keep one connection per room for minutes instead of redialing every room on a
   * short timer, a cost that grew with the fleet.
   */
  private heardFromBeacon(): void {
    if (this.settled) return;
    clearTimeout(this.silenceTimer);
    const limitMs = this.silenceLimitMs;
    this.silenceTimer = setTimeout(
      () =>
        this.fail(
          this.unreachable(
            `the beacon sent nothing (not even its keepalive ping) for ${limitMs} ms while we waited; the connection is dead`,
          ),
        ),
      limitMs,
    );
    this.silenceTimer.unref();
  }

  private cleanup(): void {
    clearTimeout(this.connectTimer);
    clearTimeout(this.silenceTimer);
    this.options.signal?.removeEventListener('abort', this.onAbort);
  }

  private where(): string {
    const { target, ip, proxy } = this.options;
    return `${target.door}://${authority(target.host, target.port)} (${ip}${proxy ? ` through HTTP proxy ${proxy.describe()}` : ''})`;
  }

  private unreachable(why: string, cause?: unknown): CloudtaserError {
    return new CloudtaserError('CT_BEACON_UNREACHABLE', `beacon ${this.where()} unreachable: ${why}`, {
      cause,
      details: { ip: this.options.ip },
    });
  }
}

/**
 * What to check for the TLS failures an SRE meets at the beacon, which OpenSSL words for itself (an outside drill
 * read "self-signed certificate" and "...ssl3_record.c:350:" with no hint where to look).
 */
export function dialErrorHint(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (
    /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code) ||
    /self[- ]signed|unable to (verify|get)|certificate/i.test(err.message)
  )
    return " (the beacon's certificate is not trusted: check --beacon-ca, the CA of the beacon's certificate, and the address's host name against it)";
  if (/ERR_SSL_|wrong version number|packet length too long|ssl3_/i.test(`${code} ${err.message}`))
    return ' (what answered there does not speak TLS: check the port, and that it is the beacon and not a proxy or a plain HTTP listener)';
  // Closed before the TLS handshake: what a beacon does over its accept bounds (it cannot send a frame without
  // spending a handshake), so the cause is in its log, not in the network (an outside drill read ECONNRESET here
  // and looked for a network fault while the beacon logged pending_per_address for this address).
  if (code === 'ECONNRESET' || /socket disconnected before secure TLS connection/i.test(err.message))
    return CLOSED_BEFORE_TLS_HINT;
  return '';
}

/**
 * A connection closed before the TLS handshake: what a beacon does over its accept bounds (it cannot send a frame
 * without spending a handshake), so the cause is in its log, not in the network (an outside drill read ECONNRESET,
 * and "closed before pairing", and looked for a network fault while the beacon logged pending_per_address).
 */
const CLOSED_BEFORE_TLS_HINT =
  " (closed before the TLS handshake: a beacon does so when too many connections from this address have not announced, or too many are open in all; its log says pending_per_address, pending_evicted, pending_evicted_total or max_connections with this host's egress address; otherwise a device on the way closed it)";

/**
 * A close after the outer TLS handshake but before the beacon's `waiting` frame: the beacon makes room that way too
 * (the oldest connections that have not announced give way at its bounds), and an outside drill read the bare
 * "closed the connection before pairing" as a network fault while the beacon logged pending_evicted_total.
 */
const CLOSED_BEFORE_ANNOUNCE_HINT =
  " (a beacon closes connections that have not announced yet to make room when too many are open: its log says pending_evicted or pending_evicted_total with this host's egress address; otherwise it is shutting down, or a device on the way closed it)";

function cancelled(options: ReplicaDialOptions): CloudtaserError {
  return new CloudtaserError('CT_CANCELLED', `dialing beacon replica ${options.ip} was cancelled`);
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
