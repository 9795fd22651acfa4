/**
 * The beacon's doors: how a connection arrives on the one port and is read until it announces. A connection is
 * bounded while it has not announced (per address, in total, in time), its first bytes pick the door (TLS, or
 * the plain magic when that door is open), the TLS door's ALPN picks raw frames or HTTP (the WebSocket door),
 * and each door wraps the connection in a Leg that reports to the pairing core. A new door is a change here.
 */
import { createServer as createHttpServer, type Server as HttpServer, type IncomingMessage } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createSecureContext, type SecureContext, TLSSocket } from 'node:tls';
import { WebSocketServer } from 'ws';
import { CloudtaserError } from '../core/index.js';
import { unmappedIPv4 } from '../core/rules.js';
import { type BridgeCaSet, bridgeAdmission } from './bridge-auth.js';
import { provesRoom } from './broker-proof.js';
import { type Leg, type LegEvents, type Refuse, SocketLeg, WebSocketLeg } from './legs.js';
import type { BeaconLimits } from './limits.js';
import type { BeaconMetrics } from './metrics.js';
import { HTTP_ALPN, PLAIN_MAGIC, RAW_ALPN, TLS_HANDSHAKE_BYTE, WEBSOCKET_PATH } from './protocol.js';

export interface TlsPair {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface BeaconDoorsOptions {
  readonly limits: BeaconLimits;
  /** The beacon's own certificate for the TLS door. */
  readonly tls: TlsPair;
  /** CAs of the bridges' client certificates; undefined lets anyone wait as a bridge. */
  readonly bridgeCas: BridgeCaSet | undefined;
  /** Accept the plain door (no outer TLS). */
  readonly plainDoor: boolean;
  readonly metrics: BeaconMetrics;
  /** Where every leg reports its announce, faults and close: the pairing core. */
  readonly legEvents: LegEvents;
  readonly refuse: Refuse;
  /** A client closed during the outer TLS handshake, after sending some of it (see openTlsDoor). */
  readonly tlsAborted: (remote: string) => void;
  /** All connections taken and announced: closes one that may give way (an anonymous waiter); false when none. */
  readonly makeRoom: () => boolean;
}

/** One accepted TCP connection from accept until close, whatever door it takes. */
interface Connection {
  readonly socket: Socket;
  readonly remote: string;
  readonly acceptedAt: number;
  tlsSocket?: TLSSocket;
  leg?: Leg;
  deadline?: NodeJS.Timeout;
  /** Still counted against maxPendingPerAddress. */
  pending: boolean;
}

export class BeaconDoors {
  /** Accepts TCP connections; listen on it. */
  readonly server: NetServer;
  private readonly limits: BeaconLimits;
  private readonly metrics: BeaconMetrics;
  private readonly legEvents: LegEvents;
  private readonly refuse: Refuse;
  private readonly tlsAborted: (remote: string) => void;
  private readonly makeRoom: () => boolean;
  private readonly plainDoor: boolean;
  private readonly connections = new Set<Connection>();
  private readonly connectionOf = new WeakMap<Socket, Connection>();
  /** Connections not announced yet, per address, oldest first (a Set keeps insertion order). */
  private readonly pendingByAddress = new Map<string, Set<Connection>>();
  private readonly http: HttpServer;
  private readonly wss: WebSocketServer;
  private tls: TlsPair;
  private secureContext: SecureContext;
  private cas: BridgeCaSet | undefined;
  private nextLegId = 1;
  /** Every connection not announced yet, oldest first: the ones that give way when all connections are taken. */
  private readonly pendingInOrder = new Set<Connection>();
  private closing = false;

  constructor(options: BeaconDoorsOptions) {
    this.limits = options.limits;
    this.metrics = options.metrics;
    this.legEvents = options.legEvents;
    this.refuse = options.refuse;
    this.tlsAborted = options.tlsAborted;
    this.makeRoom = options.makeRoom;
    this.plainDoor = options.plainDoor;
    this.tls = options.tls;
    this.cas = options.bridgeCas;
    // The start context names no bridge CAs in its certificate request (bridges send theirs regardless);
    // updateBridgeCas's contexts do.
    this.secureContext = buildSecureContext(options.tls, undefined);
    this.server = createNetServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.accept(socket));
    this.http = createHttpServer({ maxHeaderSize: 8 * 1024 }, (req, res) => {
      this.rejectHttp(req.socket, 'http_not_found', `no route for ${req.method} ${safePath(req.url)}`);
      res.writeHead(404, { 'content-type': 'text/plain', connection: 'close' }).end('not found\n');
    });
    this.http.headersTimeout = this.limits.announceTimeoutMs;
    this.http.requestTimeout = this.limits.announceTimeoutMs;
    this.http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) =>
      this.upgrade(req, socket, head),
    );
    this.http.on('clientError', (_err, socket: Socket) => {
      this.rejectHttp(socket, 'http_malformed', 'malformed HTTP request');
      socket.destroy();
    });
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.limits.webSocketMaxPayloadBytes,
      perMessageDeflate: false,
      clientTracking: false,
    });
  }

  /** CAs bridges are checked against; undefined when bridges are anonymous. */
  get bridgeCas(): BridgeCaSet | undefined {
    return this.cas;
  }

  /** Connections that have not announced yet. */
  get pending(): number {
    return this.pendingInOrder.size;
  }

  /** Source addresses with connections that have not announced. */
  pendingAddresses(): Iterable<string> {
    return this.pendingByAddress.keys();
  }

  /** New connections use this certificate from now on; open ones keep theirs. */
  updateTls(tls: TlsPair): void {
    this.secureContext = buildSecureContext(tls, this.cas);
    this.tls = tls;
  }

  /** New TLS connections name these CAs, and new bridge announces are checked against them. */
  updateBridgeCas(cas: BridgeCaSet): void {
    this.secureContext = buildSecureContext(this.tls, cas);
    this.cas = cas;
  }

  /**
   * A leg announced: it no longer counts as pending. Returns why it may not wait as a bridge (its TLS session
   * carries no certificate of a bridge CA in force now), or undefined.
   */
  announced(leg: Leg, role: 'broker' | 'bridge', hash: string): string | undefined {
    const connection = this.connectionOf.get(leg.transport);
    if (connection) {
      clearTimeout(connection.deadline);
      this.releasePending(connection);
    }
    if (role === 'broker') {
      leg.proven = provesRoom(connection?.tlsSocket, hash);
      return undefined;
    }
    if (role !== 'bridge' || !this.cas) return undefined;
    const admission = bridgeAdmission(connection?.tlsSocket, this.cas);
    if ('refusal' in admission) return admission.refusal;
    leg.operator = admission.admittedBy;
    return undefined;
  }

  /** Stops accepting new legs and drops every connection; the caller closes `server`. */
  close(): void {
    this.closing = true;
    for (const connection of this.connections) {
      connection.tlsSocket?.destroy();
      connection.socket.destroy();
    }
    this.wss.close();
  }

  // ---- accept, bounds before the announce, door selection ----

  private accept(socket: Socket): void {
    socket.on('error', () => {});
    if (this.closing) {
      socket.destroy();
      return;
    }
    const remote = normalizeAddress(socket.remoteAddress);
    const connection: Connection = { socket, remote, acceptedAt: performance.now(), pending: false };
    this.connections.add(connection);
    this.connectionOf.set(socket, connection);
    this.metrics.counters.connections += 1;
    socket.once('close', () => this.forget(connection));
    // Connections that have not announced cost the beacon memory (a TLS socket each: about 20 KB, and glibc keeps
    // the peak) and their senders nothing. At --max-pending of them, or when all connections are taken, the oldest
    // one from any address makes room, as the per-address bound below does for one address: refusing the newcomer
    // let idle sockets from many addresses (an IPv6 /64 has plenty) keep every broker from dialing, and 20,000 of
    // them took the beacon past its chart's memory limit (outside drills). With every connection announced, the
    // anonymous broker that waited longest gives way (announcing costs nothing either); only then is the newcomer
    // refused.
    const overTotal = this.metrics.counters.connections > this.limits.maxConnections;
    const overPending = this.pendingInOrder.size >= this.limits.maxPending;
    const oldestPending: Connection | undefined =
      overTotal || overPending ? this.pendingInOrder.values().next().value : undefined;
    if (oldestPending) {
      this.refuse(
        'pending_evicted_total',
        'CT_BEACON_LIMIT',
        overPending
          ? `${this.pendingInOrder.size} connections have not announced (--max-pending): the oldest was closed to make room`
          : `open connections reached ${this.limits.maxConnections}: the oldest one that has not announced was closed to make room`,
        { remote: oldestPending.remote, silentMs: Math.round(performance.now() - oldestPending.acceptedAt) },
      );
      this.releasePending(oldestPending);
      oldestPending.tlsSocket?.destroy();
      oldestPending.socket.destroy();
    } else if (overTotal && !this.makeRoom()) {
      // Refused before the door is known: no frame is possible without spending a TLS handshake on it.
      this.refuse(
        'max_connections',
        'CT_BEACON_LIMIT',
        `open connections exceed ${this.limits.maxConnections}`,
        {
          remote,
        },
      );
      socket.destroy();
      return;
    }
    let pendingHere = this.pendingByAddress.get(remote);
    if (pendingHere && pendingHere.size >= this.limits.maxPendingPerAddress) {
      // The address's oldest connection that has not announced makes room, whatever its age: a client that
      // announces (a broker, a bridge) does so within a round trip or two, so idle sockets held from one egress
      // address (a pod behind the broker's NAT) cannot keep the broker from dialing. Refusing the newcomer did:
      // 64 idle sockets, or new ones opened faster than they aged (an outside hostile drill at 150 to 1,000 a
      // second), kept a broker out for as long as they came. Now its connection lives until `bound` newer ones
      // arrive: at 1,000 a second 64 ms, a TLS handshake and an announce on a near link.
      const oldest = pendingHere.values().next().value as Connection;
      this.refuse(
        'pending_evicted',
        'CT_BEACON_LIMIT',
        `address has ${pendingHere.size} connections that have not announced: its oldest was closed to make room`,
        // The age is a field, not in the message: the log folds repeats by message (an outside drill got a line per
        // eviction while the age was in it).
        { remote, silentMs: Math.round(performance.now() - oldest.acceptedAt) },
      );
      this.releasePending(oldest);
      oldest.tlsSocket?.destroy();
      oldest.socket.destroy();
      pendingHere = this.pendingByAddress.get(remote);
    }
    if (!pendingHere) {
      pendingHere = new Set();
      this.pendingByAddress.set(remote, pendingHere);
    }
    pendingHere.add(connection);
    connection.pending = true;
    this.pendingInOrder.add(connection);
    connection.deadline = setTimeout(() => this.announceTimedOut(connection), this.limits.announceTimeoutMs);
    // Only the plain door needs a look at the first bytes. Reading them in JS before the TLS socket takes the
    // connection over costs about 15 % more relay CPU per byte for the connection's whole life (measured against
    // tls.createServer), so with the plain door off (the default) TLS gets the connection untouched.
    if (this.plainDoor) this.peek(connection);
    else this.openTlsDoor(connection);
  }

  /** Reads just enough bytes to pick the door, then puts them back for the door to read. */
  private peek(connection: Connection): void {
    const { socket } = connection;
    let head: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const door = this.chooseDoor(head);
      if (door === 'undecided') return;
      socket.off('data', onData);
      socket.pause();
      if (door === 'garbage') {
        this.refuse(
          'garbage',
          'CT_BEACON_PROTOCOL',
          'first bytes are neither a TLS ClientHello nor the plain magic',
          {
            remote: connection.remote,
          },
        );
        socket.destroy();
        return;
      }
      if (door === 'tls') {
        socket.unshift(head);
        this.openTlsDoor(connection);
      } else {
        if (head.length > PLAIN_MAGIC.length) socket.unshift(head.subarray(PLAIN_MAGIC.length));
        this.metrics.accepted('plain');
        this.attachLeg(
          connection,
          new SocketLeg(
            this.nextLegId++,
            'plain',
            connection.remote,
            socket,
            connection.acceptedAt,
            this.limits.maxAnnounceBytes,
            this.legEvents,
          ),
        );
        socket.resume();
      }
    };
    socket.on('data', onData);
  }

  private chooseDoor(head: Buffer): 'tls' | 'plain' | 'garbage' | 'undecided' {
    if (head[0] === TLS_HANDSHAKE_BYTE) return 'tls';
    if (!this.plainDoor) return 'garbage';
    const compared = Math.min(head.length, PLAIN_MAGIC.length);
    if (!head.subarray(0, compared).equals(PLAIN_MAGIC.subarray(0, compared))) return 'garbage';
    return compared === PLAIN_MAGIC.length ? 'plain' : 'undecided';
  }

  private openTlsDoor(connection: Connection): void {
    const tlsSocket = new TLSSocket(connection.socket, {
      isServer: true,
      secureContext: this.secureContext,
      ALPNProtocols: [RAW_ALPN, HTTP_ALPN],
      // Ask every client for a certificate without requiring one: bridges send theirs, bootstrapped brokers their
      // own with the cluster CA (broker-proof.ts), others none. What a certificate admits is decided at announce
      // time (bridgeAdmission, provesRoom), against the room and the CAs in force then.
      requestCert: true,
      rejectUnauthorized: false,
    });
    connection.tlsSocket = tlsSocket;
    this.connectionOf.set(tlsSocket, connection);
    tlsSocket.once('close', () => this.forget(connection));
    let secure = false;
    tlsSocket.on('error', (err: NodeJS.ErrnoException) => {
      // A reset during the handshake is a client giving up on it, as a close is (below), not a broken protocol (an
      // outside drill found 757 of 36,000 such clients counted as tls_handshake rejections).
      if (!secure && err.code === 'ECONNRESET' && connection.socket.bytesRead > 0) {
        this.tlsAborted(connection.remote);
      } else if (!secure) {
        // Without the first-bytes look (plain door off), OpenSSL is what finds bytes that are not TLS at all.
        const notTls = !this.plainDoor && NOT_TLS_ERRORS.test(err.code ?? '');
        this.refuse(
          notTls ? 'garbage' : 'tls_handshake',
          'CT_BEACON_PROTOCOL',
          notTls
            ? `first bytes are not a TLS ClientHello (${err.code}); the plain door is off`
            : `outer TLS handshake failed (${err.code ?? 'error'})`,
          { remote: connection.remote },
        );
      }
      tlsSocket.destroy();
    });
    // A client that sent its ClientHello and closed before the handshake completed gave up on it: one that does not
    // trust this beacon's certificate (expired, another CA, another name) does so. It was neither counted nor logged,
    // and (half-open connections are allowed, for the relay) held its pending place until the announce timeout. A
    // probe (no byte sent, or a completed handshake) stays quiet, as announceTimedOut says.
    tlsSocket.once('end', () => {
      // Judged a turn later: a TLS probe's last handshake bytes and its close arrive together, and the end can be
      // told before the handshake it completed.
      setImmediate(() => {
        if (secure) return;
        if (connection.socket.bytesRead > 0) this.tlsAborted(connection.remote);
        tlsSocket.destroy();
      });
    });
    tlsSocket.once('secure', () => {
      secure = true;
      if (tlsSocket.alpnProtocol === RAW_ALPN) {
        this.metrics.accepted('tls');
        this.attachLeg(
          connection,
          new SocketLeg(
            this.nextLegId++,
            'tls',
            connection.remote,
            tlsSocket,
            connection.acceptedAt,
            this.limits.maxAnnounceBytes,
            this.legEvents,
          ),
        );
      } else {
        this.http.emit('connection', tlsSocket);
      }
    });
  }

  private upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const connection = this.connectionOf.get(socket);
    if (!connection) {
      socket.destroy();
      return;
    }
    const isWebSocket = (req.headers.upgrade ?? '').toLowerCase() === 'websocket';
    if (safePath(req.url) !== WEBSOCKET_PATH || req.method !== 'GET' || !isWebSocket) {
      this.rejectHttp(socket, 'http_not_found', `no upgrade route for ${req.method} ${safePath(req.url)}`);
      socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      setTimeout(() => socket.destroy(), 1_000).unref();
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.metrics.accepted('wss');
      this.attachLeg(
        connection,
        new WebSocketLeg(
          this.nextLegId++,
          connection.remote,
          ws,
          socket,
          connection.acceptedAt,
          this.limits.maxAnnounceBytes,
          this.legEvents,
        ),
      );
    });
  }

  /** Sockets whose HTTP request was already refused: requests pipelined behind it add no log line or count. */
  private readonly refusedHttp = new WeakSet<Socket>();

  private rejectHttp(socket: Socket, reason: string, message: string): void {
    // One refusal per connection, as PROTOCOL.md promises: Node dispatches every request pipelined in one read
    // before `connection: close` takes effect (500 requests in 13.5 KB made 500 log lines).
    if (this.refusedHttp.has(socket)) return;
    this.refusedHttp.add(socket);
    const connection = this.connectionOf.get(socket);
    this.refuse(reason, 'CT_BEACON_PROTOCOL', message, { door: 'wss', remote: connection?.remote });
  }

  private attachLeg(connection: Connection, leg: Leg): void {
    connection.leg = leg;
    if (this.closing) leg.destroy();
  }

  private announceTimedOut(connection: Connection): void {
    // The client ended its side before announcing: a probe (a load balancer's TCP or TLS check, target doctor's
    // reachability check), not a refusal. Nobody reads a TLS socket before its handshake, so its end shows only
    // here (readableEnded), not as a close; without this, every probe became a warn line and a rejection.
    if (connection.socket.readableEnded || connection.tlsSocket?.readableEnded) {
      connection.tlsSocket?.destroy();
      connection.socket.destroy();
      return;
    }
    const message = `no announce within ${this.limits.announceTimeoutMs} ms`;
    const leg = connection.leg;
    this.refuse('announce_timeout', 'CT_BEACON_PROTOCOL', message, {
      door: leg?.door,
      remote: connection.remote,
    });
    if (leg) leg.reject('CT_BEACON_PROTOCOL', message);
    else {
      connection.tlsSocket?.destroy();
      connection.socket.destroy();
    }
  }

  /** Runs once per connection, on whichever of the TCP or TLS socket reports close first. */
  private forget(connection: Connection): void {
    if (!this.connections.delete(connection)) return;
    this.metrics.counters.connections -= 1;
    this.releasePending(connection);
    clearTimeout(connection.deadline);
  }

  private releasePending(connection: Connection): void {
    if (!connection.pending) return;
    connection.pending = false;
    this.pendingInOrder.delete(connection);
    const pending = this.pendingByAddress.get(connection.remote);
    pending?.delete(connection);
    if (pending?.size === 0) this.pendingByAddress.delete(connection.remote);
  }
}

/** The outer TLS context: the beacon's certificate, and the bridge CAs named in its certificate request. */
function buildSecureContext(tls: TlsPair, bridgeCas: BridgeCaSet | undefined): SecureContext {
  try {
    return createSecureContext({
      cert: tls.certPem,
      key: tls.keyPem,
      ...(bridgeCas?.pem ? { ca: bridgeCas.pem } : {}),
      // OpenSSL refuses to resume a session of a server that asks for client certificates unless a session id
      // context is set (it would end the handshake with an internal error); brokers resume their sessions.
      sessionIdContext: 'cloudtaser-beacon',
      minVersion: 'TLSv1.2',
    });
  } catch (err) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `beacon TLS certificate or key is unusable: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** OpenSSL's codes for a first record that is not TLS (an HTTP request, random bytes, the plain magic). */
const NOT_TLS_ERRORS =
  /HTTP_REQUEST|HTTPS_PROXY_REQUEST|WRONG_VERSION_NUMBER|UNKNOWN_PROTOCOL|PACKET_LENGTH_TOO_LONG/;

/** Per-address bounds must see an IPv4 client the same way whether it came in over v4 or v4-mapped v6. */
function normalizeAddress(address: string | undefined): string {
  if (!address) return 'unknown';
  return unmappedIPv4(address);
}

/** The request path without its query, cut short so a hostile URL cannot flood the log. */
function safePath(url: string | undefined): string {
  return (url ?? '/').split('?')[0].slice(0, 64);
}
