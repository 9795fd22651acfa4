import { createServer as createHttpServer, type Server as HttpServer, type IncomingMessage } from 'node:http';
import {
  type AddressInfo,
  createServer as createNetServer,
  type Server as NetServer,
  type Socket,
} from 'node:net';
import { createSecureContext, type SecureContext, TLSSocket } from 'node:tls';
import { WebSocketServer } from 'ws';
import { CloudtaserError, hashPrefix, type Logger, silentLogger } from '../core/index.js';
import { type BridgeCaSet, bridgeRefusal, loadBridgeCas } from './bridge-auth.js';
import { type Leg, type LegEvents, type RejectCode, SocketLeg, WebSocketLeg } from './legs.js';
import { type BeaconLimits, resolveLimits } from './limits.js';
import {
  type BeaconCounters,
  type BeaconMetrics,
  createBeaconMetrics,
  formatHost,
  startMetricsServer,
} from './metrics.js';
import {
  type Announce,
  type BeaconDoor,
  type BeaconRole,
  HTTP_ALPN,
  PLAIN_MAGIC,
  RAW_ALPN,
  TLS_HANDSHAKE_BYTE,
  WEBSOCKET_PATH,
} from './protocol.js';
import { relayStreams } from './relay.js';

export interface BeaconOptions {
  /** Address to listen on. @default '0.0.0.0' */
  readonly host?: string;
  /** Port to listen on; 0 picks a free one. @default 443 */
  readonly port?: number;
  /** The beacon's own certificate and key for the TLS door (PEM). Replace them later with `updateTls`. */
  readonly tls: { readonly certPem: string; readonly keyPem: string };
  /**
   * CA certificates (PEM, each may be a bundle) whose client certificates may wait as bridges: one per OpenBao
   * operator this beacon serves. Brokers stay anonymous. Replace them later with `updateBridgeCas`. Exactly one
   * of `bridgeCaPems` and `allowAnonymousBridges` is required.
   */
  readonly bridgeCaPems?: readonly string[];
  /**
   * Let any client wait as a bridge (no client certificate checked). Anyone who knows a room hash can then
   * squat it: for tests and closed networks only; the beacon logs a warning at start. @default false
   */
  readonly allowAnonymousBridges?: boolean;
  /** Accept the plain door (`CTBCN/1\n` magic, no outer TLS). @default false */
  readonly plain?: boolean;
  /** Health, readiness and Prometheus endpoints on their own port; `false` for none. @default false */
  readonly metrics?: { readonly host?: string; readonly port?: number } | false;
  /** Bounds; anything left out takes its default from DEFAULT_BEACON_LIMITS. */
  readonly limits?: Partial<BeaconLimits>;
  /** JSON-lines logger; connection metadata only. @default silentLogger */
  readonly logger?: Logger;
}

export interface BeaconStats {
  /** Open client connections in every state. */
  readonly connections: number;
  /** Connections that have not announced yet. */
  readonly pending: number;
  readonly waiting: number;
  readonly waitingBrokers: number;
  readonly waitingBridges: number;
  /** Pairs currently relaying. */
  readonly paired: number;
  /** Rooms (hashes) with at least one waiter. */
  readonly rooms: number;
  /** Source addresses the per-address bounds currently track. */
  readonly trackedAddresses: number;
  readonly pairingsTotal: number;
  readonly rejectionsTotal: number;
  readonly bytesBrokerToBridge: number;
  readonly bytesBridgeToBroker: number;
}

export interface BeaconHandle {
  /** `host:port` the beacon listens on (IPv6 hosts in brackets). */
  readonly address: string;
  readonly port: number;
  /** Base URL of the metrics server (`http://host:port`), when enabled. */
  readonly metricsUrl?: string;
  readonly limits: BeaconLimits;
  stats(): BeaconStats;
  /** New connections use this certificate from now on; open ones keep theirs. Throws CT_INVALID_ARGUMENT when unusable. */
  updateTls(tls: { readonly certPem: string; readonly keyPem: string }): void;
  /** New bridge announces are checked against these CAs from now on. Throws CT_INVALID_ARGUMENT when unusable. */
  updateBridgeCas(pems: readonly string[]): void;
  /** Stops accepting, drops every connection and the metrics server. */
  close(): Promise<void>;
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

interface Room {
  readonly broker: Leg[];
  readonly bridge: Leg[];
}

/** Starts the beacon: one port, TLS / WebSocket / plain doors, one pairing core. */
export async function createBeacon(options: BeaconOptions): Promise<BeaconHandle> {
  if (!options?.tls?.certPem || !options.tls.keyPem) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      "beacon option 'tls' needs certPem and keyPem; give the beacon a certificate its clients trust",
    );
  }
  const anonymous = options.allowAnonymousBridges === true;
  if (anonymous === (options.bridgeCaPems !== undefined)) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      anonymous
        ? "beacon options 'bridgeCaPems' and 'allowAnonymousBridges' are mutually exclusive"
        : "beacon option 'bridgeCaPems' is required (the CAs of the bridges' client certificates); 'allowAnonymousBridges: true' lets anyone wait as a bridge",
    );
  }
  const limits = resolveLimits(options.limits);
  const beacon = new BeaconServer(
    limits,
    buildSecureContext(options.tls, undefined),
    anonymous ? undefined : parseBridgeCas(options.bridgeCaPems ?? []),
    options.plain === true,
    options.logger ?? silentLogger,
    Boolean(options.metrics),
  );
  return beacon.start(options);
}

/** The outer TLS context: the beacon's certificate, and the bridge CAs named in its certificate request. */
function buildSecureContext(
  tls: { readonly certPem: string; readonly keyPem: string },
  bridgeCas: BridgeCaSet | undefined,
): SecureContext {
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

function parseBridgeCas(pems: readonly string[]): BridgeCaSet {
  try {
    return loadBridgeCas(pems);
  } catch (err) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `beacon bridge CAs are unusable: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

class BeaconServer implements LegEvents {
  private readonly metrics: BeaconMetrics;
  private readonly counters: BeaconCounters;
  private readonly connections = new Set<Connection>();
  private readonly connectionOf = new WeakMap<Socket, Connection>();
  private readonly pendingByAddress = new Map<string, number>();
  private readonly waitingByAddress = new Map<string, number>();
  private readonly rooms = new Map<string, Room>();
  /** Pairing budget per room hash (a token bucket), and the timers that pair rooms held back by it. */
  private readonly pairingBudgets = new Map<string, { tokens: number; at: number }>();
  private readonly pairingTimers = new Map<string, NodeJS.Timeout>();
  private readonly budgetSweep: NodeJS.Timeout;
  private readonly relays = new Set<{ destroy(): void }>();
  private readonly server: NetServer;
  private readonly http: HttpServer;
  private readonly wss: WebSocketServer;
  private metricsServer: HttpServer | undefined;
  private tls!: { readonly certPem: string; readonly keyPem: string };
  private nextLegId = 1;
  private pending = 0;
  private pairingsTotal = 0;
  private rejectionsTotal = 0;
  private closing = false;
  private listening = false;

  constructor(
    private readonly limits: BeaconLimits,
    private secureContext: SecureContext,
    /** Undefined: anonymous bridges allowed. */
    private bridgeCas: BridgeCaSet | undefined,
    private readonly plainDoor: boolean,
    private readonly log: Logger,
    processMetrics: boolean,
  ) {
    this.metrics = createBeaconMetrics({ processMetrics });
    this.counters = this.metrics.counters;
    this.server = createNetServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.accept(socket));
    this.http = createHttpServer({ maxHeaderSize: 8 * 1024 }, (req, res) => {
      this.rejectHttp(req.socket, 'http_not_found', `no route for ${req.method} ${safePath(req.url)}`);
      res.writeHead(404, { 'content-type': 'text/plain', connection: 'close' }).end('not found\n');
    });
    this.http.headersTimeout = limits.announceTimeoutMs;
    this.http.requestTimeout = limits.announceTimeoutMs;
    this.http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) =>
      this.upgrade(req, socket, head),
    );
    this.http.on('clientError', (_err, socket: Socket) => {
      this.rejectHttp(socket, 'http_malformed', 'malformed HTTP request');
      socket.destroy();
    });
    // Full buckets carry no information; dropping them keeps the table as small as the rooms in use.
    this.budgetSweep = setInterval(() => this.sweepPairingBudgets(), 10_000);
    this.budgetSweep.unref();
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: limits.webSocketMaxPayloadBytes,
      perMessageDeflate: false,
      clientTracking: false,
    });
  }

  async start(options: BeaconOptions): Promise<BeaconHandle> {
    this.tls = options.tls;
    const host = options.host ?? '0.0.0.0';
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(options.port ?? 443, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.listening = true;
    const port = (this.server.address() as AddressInfo).port;
    let metricsUrl: string | undefined;
    if (options.metrics) {
      try {
        const started = await startMetricsServer(
          this.metrics,
          options.metrics.host ?? '0.0.0.0',
          options.metrics.port ?? 9090,
          () => this.listening && !this.closing,
        );
        this.metricsServer = started.server;
        metricsUrl = started.url;
      } catch (err) {
        await this.close();
        throw new CloudtaserError(
          'CT_INVALID_ARGUMENT',
          `beacon metrics server could not listen: ${String(err)}`,
          {
            cause: err,
          },
        );
      }
    }
    const address = `${formatHost(host)}:${port}`;
    this.log.info({
      event: 'listening',
      address,
      plainDoor: this.plainDoor,
      metricsUrl,
      bridgeAuthentication: this.bridgeCas ? 'client-certificate' : 'anonymous',
      bridgeCas: this.bridgeCas?.certificates.length,
      limits: this.limits,
    });
    if (!this.bridgeCas)
      this.log.warn({
        event: 'anonymous_bridges',
        message:
          'bridges are not authenticated: anyone who knows a room hash can wait as a bridge; give the beacon its bridge CAs (--bridge-ca)',
      });
    else if (this.bridgeCas.certificates.length === 0)
      this.log.warn({
        event: 'no_bridge_ca',
        message:
          'the bridge CA file holds no certificate: every bridge is refused until it does (cloudtaser-cli source beacon-ca prints the CA; Helm beacon.bridgeAuth.caPems)',
      });
    return {
      address,
      port,
      metricsUrl,
      limits: this.limits,
      stats: () => this.stats(),
      updateTls: (tls) => {
        this.secureContext = buildSecureContext(tls, this.bridgeCas);
        this.tls = tls;
        this.log.info({ event: 'tls_updated' });
      },
      updateBridgeCas: (pems) => {
        if (!this.bridgeCas)
          throw new CloudtaserError(
            'CT_INVALID_ARGUMENT',
            'this beacon runs with anonymous bridges; restart it with bridge CAs to authenticate bridges',
          );
        const cas = parseBridgeCas(pems);
        this.secureContext = buildSecureContext(this.tls, cas);
        this.bridgeCas = cas;
        this.log.info({ event: 'bridge_cas_updated', bridgeCas: cas.certificates.length });
      },
      close: () => this.close(),
    };
  }

  private stats(): BeaconStats {
    return {
      connections: this.counters.connections,
      pending: this.pending,
      waiting: this.counters.waitingBroker + this.counters.waitingBridge,
      waitingBrokers: this.counters.waitingBroker,
      waitingBridges: this.counters.waitingBridge,
      paired: this.counters.paired,
      rooms: this.rooms.size,
      trackedAddresses: new Set([...this.pendingByAddress.keys(), ...this.waitingByAddress.keys()]).size,
      pairingsTotal: this.pairingsTotal,
      rejectionsTotal: this.rejectionsTotal,
      bytesBrokerToBridge: this.counters.bytesBrokerToBridge,
      bytesBridgeToBroker: this.counters.bytesBridgeToBroker,
    };
  }

  private async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const serverClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const relay of this.relays) relay.destroy();
    for (const connection of this.connections) {
      connection.tlsSocket?.destroy();
      connection.socket.destroy();
    }
    for (const room of this.rooms.values()) {
      for (const leg of [...room.broker, ...room.bridge]) this.stopWaiting(leg);
    }
    this.rooms.clear();
    clearInterval(this.budgetSweep);
    for (const timer of this.pairingTimers.values()) clearTimeout(timer);
    this.pairingTimers.clear();
    this.wss.close();
    if (this.metricsServer) {
      const metricsServer = this.metricsServer;
      metricsServer.closeAllConnections();
      await new Promise<void>((resolve) => metricsServer.close(() => resolve()));
    }
    if (this.listening) await serverClosed;
    this.listening = false;
    this.log.info({ event: 'closed' });
  }

  // ---- accept and door selection ----

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
    this.counters.connections += 1;
    socket.once('close', () => this.forget(connection));
    if (this.counters.connections > this.limits.maxConnections) {
      // Refused before the door is known: no frame is possible without spending a TLS handshake on it.
      this.reject(
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
    const pendingHere = this.pendingByAddress.get(remote) ?? 0;
    if (pendingHere >= this.limits.maxPendingPerAddress) {
      this.reject(
        'pending_per_address',
        'CT_BEACON_LIMIT',
        `address has ${pendingHere} connections that have not announced`,
        { remote },
      );
      socket.destroy();
      return;
    }
    this.pendingByAddress.set(remote, pendingHere + 1);
    connection.pending = true;
    this.pending += 1;
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
        this.reject(
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
            this,
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
      // Ask every client for a certificate without requiring one: bridges send theirs, brokers send none. Who may
      // wait as a bridge is decided at announce time (bridgeRefusal), against the CAs in force then.
      ...(this.bridgeCas ? { requestCert: true, rejectUnauthorized: false } : {}),
    });
    connection.tlsSocket = tlsSocket;
    this.connectionOf.set(tlsSocket, connection);
    tlsSocket.once('close', () => this.forget(connection));
    let secure = false;
    tlsSocket.on('error', (err: NodeJS.ErrnoException) => {
      if (!secure) {
        // Without the first-bytes look (plain door off), OpenSSL is what finds bytes that are not TLS at all.
        const notTls = !this.plainDoor && NOT_TLS_ERRORS.test(err.code ?? '');
        this.reject(
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
            this,
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
          this,
        ),
      );
    });
  }

  private rejectHttp(socket: Socket, reason: string, message: string): void {
    const connection = this.connectionOf.get(socket);
    this.reject(reason, 'CT_BEACON_PROTOCOL', message, { door: 'wss', remote: connection?.remote });
  }

  private attachLeg(connection: Connection, leg: Leg): void {
    connection.leg = leg;
    if (this.closing) leg.destroy();
  }

  private announceTimedOut(connection: Connection): void {
    const message = `no announce within ${this.limits.announceTimeoutMs} ms`;
    const leg = connection.leg;
    this.reject('announce_timeout', 'CT_BEACON_PROTOCOL', message, {
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
    this.counters.connections -= 1;
    this.releasePending(connection);
    clearTimeout(connection.deadline);
  }

  private releasePending(connection: Connection): void {
    if (!connection.pending) return;
    connection.pending = false;
    this.pending -= 1;
    const count = (this.pendingByAddress.get(connection.remote) ?? 1) - 1;
    if (count <= 0) this.pendingByAddress.delete(connection.remote);
    else this.pendingByAddress.set(connection.remote, count);
  }

  // ---- LegEvents: the pairing core ----

  announced(leg: Leg, announce: Announce): void {
    if (leg.rejected || this.closing) return;
    const connection = this.connectionOf.get(leg.transport);
    if (connection) {
      clearTimeout(connection.deadline);
      this.releasePending(connection);
    }
    if (announce.role === 'bridge' && this.bridgeCas) {
      const refusal = bridgeRefusal(connection?.tlsSocket, this.bridgeCas);
      if (refusal) {
        this.rejectLeg(leg, 'bridge_unauthenticated', 'CT_BEACON_UNAUTHENTICATED', refusal, announce);
        return;
      }
    }
    leg.role = announce.role;
    leg.hash = announce.hash;
    const room = this.rooms.get(announce.hash);
    const peers = room?.[opposite(announce.role)];
    let heldBack = false;
    if (peers && peers.length > 0) {
      if (this.takePairingToken(announce.hash)) {
        const peer = peers.shift()!;
        this.stopWaiting(peer);
        this.dropRoomIfEmpty(announce.hash);
        leg.send({ t: 'waiting' });
        if (announce.role === 'broker') this.pair(leg, peer);
        else this.pair(peer, leg);
        return;
      }
      if (announce.role === 'broker') {
        this.rejectLeg(
          leg,
          'pairings_per_hash',
          'CT_BEACON_LIMIT',
          `this room already paired ${this.limits.maxPairingsPerHashPerSecond} times in the last second; dial again`,
        );
        return;
      }
      // A bridge is never refused for the rate: it waits, and the room pairs as soon as the budget allows.
      heldBack = true;
    }
    const meta = legMeta(leg);
    const queued = room?.[announce.role].length ?? 0;
    if (queued >= this.limits.maxWaitingPerHash) {
      this.rejectLeg(
        leg,
        'waiting_per_hash',
        'CT_BEACON_LIMIT',
        `${queued} ${announce.role}s already wait for this hash`,
      );
      return;
    }
    const fromAddress = this.waitingByAddress.get(leg.remote) ?? 0;
    if (fromAddress >= this.limits.maxWaitingPerAddress) {
      this.rejectLeg(
        leg,
        'waiting_per_address',
        'CT_BEACON_LIMIT',
        `${fromAddress} connections already wait from this address`,
      );
      return;
    }
    const total = this.counters.waitingBroker + this.counters.waitingBridge;
    if (total >= this.limits.maxWaiting) {
      this.rejectLeg(
        leg,
        'waiting_total',
        'CT_BEACON_LIMIT',
        `the beacon already holds ${total} waiting connections`,
      );
      return;
    }
    const target = room ?? { broker: [], bridge: [] };
    if (!room) this.rooms.set(announce.hash, target);
    target[announce.role].push(leg);
    this.waitingByAddress.set(leg.remote, fromAddress + 1);
    if (announce.role === 'broker') this.counters.waitingBroker += 1;
    else this.counters.waitingBridge += 1;
    const waitMs = announce.role === 'broker' ? this.limits.brokerWaitMs : this.limits.bridgeWaitMs;
    const expiry = setTimeout(() => {
      this.withdraw(leg);
      this.rejectLeg(
        leg,
        'unmatched_timeout',
        'CT_BEACON_LIMIT',
        `no peer arrived within ${waitMs} ms; dial again`,
      );
    }, waitMs);
    const keepalive = setInterval(() => leg.send({ t: 'ping' }), this.limits.keepaliveIntervalMs);
    expiry.unref();
    keepalive.unref();
    leg.waiting = { timers: [expiry, keepalive], since: performance.now() };
    leg.send({ t: 'waiting' });
    this.log.info({ event: 'waiting', ...meta, announceMs: round(performance.now() - leg.acceptedAt) });
    if (heldBack) this.schedulePairing(announce.hash);
  }

  /** Takes one pairing from the room's budget; false when the room is over its rate. */
  private takePairingToken(hash: string): boolean {
    const rate = this.limits.maxPairingsPerHashPerSecond;
    const now = performance.now();
    const budget = this.pairingBudgets.get(hash) ?? { tokens: rate, at: now };
    budget.tokens = Math.min(rate, budget.tokens + ((now - budget.at) * rate) / 1000);
    budget.at = now;
    this.pairingBudgets.set(hash, budget);
    if (budget.tokens < 1) return false;
    budget.tokens -= 1;
    return true;
  }

  /** Pairs the room's waiting brokers and bridges once its budget has a token again. */
  private schedulePairing(hash: string): void {
    if (this.pairingTimers.has(hash) || this.closing) return;
    const budget = this.pairingBudgets.get(hash);
    const missing = budget ? Math.max(0, 1 - budget.tokens) : 0;
    const delayMs = Math.ceil((missing * 1000) / this.limits.maxPairingsPerHashPerSecond);
    const timer = setTimeout(() => {
      this.pairingTimers.delete(hash);
      const room = this.rooms.get(hash);
      while (room && room.broker.length > 0 && room.bridge.length > 0) {
        if (!this.takePairingToken(hash)) {
          this.schedulePairing(hash);
          return;
        }
        const broker = room.broker.shift()!;
        const bridge = room.bridge.shift()!;
        this.stopWaiting(broker);
        this.stopWaiting(bridge);
        this.pair(broker, bridge);
      }
      this.dropRoomIfEmpty(hash);
    }, delayMs);
    timer.unref();
    this.pairingTimers.set(hash, timer);
  }

  private sweepPairingBudgets(): void {
    const rate = this.limits.maxPairingsPerHashPerSecond;
    const now = performance.now();
    for (const [hash, budget] of this.pairingBudgets) {
      if (budget.tokens + ((now - budget.at) * rate) / 1000 >= rate) this.pairingBudgets.delete(hash);
    }
  }

  fault(leg: Leg, reason: string, message: string): void {
    this.withdraw(leg);
    this.rejectLeg(leg, reason, 'CT_BEACON_PROTOCOL', message);
  }

  closed(leg: Leg): void {
    if (leg.waiting) {
      this.withdraw(leg);
      this.log.info({ event: 'waiter_left', ...legMeta(leg) });
    }
  }

  private pair(broker: Leg, bridge: Leg): void {
    broker.paired = true;
    bridge.paired = true;
    this.pairingsTotal += 1;
    this.counters.paired += 1;
    this.metrics.pairing(broker.door, bridge.door);
    broker.send({ t: 'paired' });
    bridge.send({ t: 'paired' });
    const waitedMs = round(performance.now() - Math.min(broker.acceptedAt, bridge.acceptedAt));
    const hash = hashPrefix(broker.hash!);
    this.log.info({
      event: 'paired',
      hashPrefix: hash,
      brokerDoor: broker.door,
      bridgeDoor: bridge.door,
      brokerRemote: broker.remote,
      bridgeRemote: bridge.remote,
      waitedMs,
    });
    const brokerStream = broker.detach();
    const bridgeStream = bridge.detach();
    const onIdle = () => {
      this.reject(
        'paired_idle',
        'CT_BEACON_LIMIT',
        `no bytes either way for ${this.limits.pairedIdleMs} ms`,
        {
          hashPrefix: hash,
        },
      );
      relay.destroy();
    };
    const relay = relayStreams(
      brokerStream,
      bridgeStream,
      this.counters,
      (end) => {
        this.relays.delete(relay);
        this.counters.paired -= 1;
        this.log.info({
          event: 'relay_closed',
          hashPrefix: hash,
          brokerDoor: broker.door,
          bridgeDoor: bridge.door,
          durationMs: round(end.durationMs),
          bytesBrokerToBridge: end.bytesBrokerToBridge,
          bytesBridgeToBroker: end.bytesBridgeToBroker,
          aborted: end.aborted,
        });
      },
      { ms: this.limits.pairedIdleMs, onIdle },
    );
    this.relays.add(relay);
  }

  /** Takes a leg out of its room's queue (idempotent). */
  private withdraw(leg: Leg): void {
    if (!leg.waiting || !leg.hash || !leg.role) return;
    const room = this.rooms.get(leg.hash);
    const queue = room?.[leg.role];
    const index = queue ? queue.indexOf(leg) : -1;
    if (index >= 0) queue!.splice(index, 1);
    this.stopWaiting(leg);
    this.dropRoomIfEmpty(leg.hash);
  }

  private stopWaiting(leg: Leg): void {
    if (!leg.waiting) return;
    for (const timer of leg.waiting.timers) clearTimeout(timer);
    leg.waiting = undefined;
    if (leg.role === 'broker') this.counters.waitingBroker -= 1;
    else this.counters.waitingBridge -= 1;
    const count = (this.waitingByAddress.get(leg.remote) ?? 1) - 1;
    if (count <= 0) this.waitingByAddress.delete(leg.remote);
    else this.waitingByAddress.set(leg.remote, count);
  }

  private dropRoomIfEmpty(hash: string): void {
    const room = this.rooms.get(hash);
    if (room && room.broker.length === 0 && room.bridge.length === 0) this.rooms.delete(hash);
  }

  private rejectLeg(leg: Leg, reason: string, code: RejectCode, message: string, announce?: Announce): void {
    if (leg.rejected) return;
    const meta = legMeta(leg);
    // A refusal before the leg joins a room still says which role and room it asked for (hash prefix only).
    if (announce) Object.assign(meta, { role: announce.role, hashPrefix: hashPrefix(announce.hash) });
    this.reject(reason, code, message, meta);
    leg.reject(code, message);
  }

  /** Every refusal goes through here: one log line and one counter increment. */
  private reject(reason: string, code: RejectCode, message: string, meta: Record<string, unknown>): void {
    this.rejectionsTotal += 1;
    this.metrics.rejection(reason);
    this.log.warn({ event: 'rejected', reason, code, message, ...meta });
  }
}

/** OpenSSL's codes for a first record that is not TLS (an HTTP request, random bytes, the plain magic). */
const NOT_TLS_ERRORS =
  /HTTP_REQUEST|HTTPS_PROXY_REQUEST|WRONG_VERSION_NUMBER|UNKNOWN_PROTOCOL|PACKET_LENGTH_TOO_LONG/;

function legMeta(leg: Leg): Record<string, unknown> {
  return {
    door: leg.door,
    role: leg.role,
    remote: leg.remote,
    hashPrefix: leg.hash ? hashPrefix(leg.hash) : undefined,
  };
}

function opposite(role: BeaconRole): BeaconRole {
  return role === 'broker' ? 'bridge' : 'broker';
}

/** Per-address bounds must see an IPv4 client the same way whether it came in over v4 or v4-mapped v6. */
function normalizeAddress(address: string | undefined): string {
  if (!address) return 'unknown';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** The request path without its query, cut short so a hostile URL cannot flood the log. */
function safePath(url: string | undefined): string {
  return (url ?? '/').split('?')[0].slice(0, 64);
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

export type { BeaconDoor, BeaconRole };
