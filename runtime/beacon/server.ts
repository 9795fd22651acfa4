import { readFileSync } from 'node:fs';
/**
 * The beacon: one port, its doors (doors.ts) and one pairing core (pairing.ts), a metrics port, and the
 * lifecycle that starts and closes them together.
 */

import { X509Certificate } from 'node:crypto';
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CloudtaserError, type Logger, silentLogger } from '../core/index.js';
import { cannotListen } from '../core/listen.js';
import { createLogSummarizer, type LogSummarizer } from '../core/log-summary.js';
import { CLOUDTASER_VERSION } from '../core/version.js';
import { type BridgeCaSet, loadBridgeCas } from './bridge-auth.js';
import { BeaconDoors } from './doors.js';
import type { RejectCode } from './legs.js';
import { type BeaconLimits, resolveLimits } from './limits.js';
import { type BeaconMetrics, createBeaconMetrics, formatHost, startMetricsServer } from './metrics.js';
import { PairingCore } from './pairing.js';
import type { BeaconDoor, BeaconRole } from './protocol.js';

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
  /**
   * The process's limit on open files. `maxConnections` is held below it, so that at the bound the beacon can still
   * accept its probes and re-read its certificate files. @default the soft limit in /proc/self/limits (Linux), else none
   */
  readonly openFileLimit?: number;
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
  /** Refusals since the start by reason (`garbage`, `bridge_unauthenticated`, ...), as the log's `reason`. */
  readonly rejectionsByReason: Readonly<Record<string, number>>;
  /**
   * Clients that closed during the outer TLS handshake (not a refusal: the beacon refused nothing). A client that
   * does not trust the beacon's certificate does so, and so does a probe that closes before its last handshake bytes
   * are sent; `tls_aborted` in the log.
   */
  readonly tlsHandshakesAborted: number;
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
  /**
   * From now on /readyz answers 503 and the beacon pairs nothing more: every waiting connection, and every announce
   * that still arrives, gets `draining` (with `relaysCutInMs`, how long the relays it carries keep running) and is
   * closed, so clients wait on other replicas and bridges move their tunnels there. The relays keep copying until
   * close() ends them.
   */
  drain(options?: { readonly relaysCutInMs?: number }): void;
  /**
   * Stops accepting and closes the metrics server. With `graceMs`, the relays still open get that long to end by
   * themselves (a bridge that heard `draining` closes each tunnel once nothing is in flight on it); whatever is left
   * then is cut. A later close() without a grace cuts at once.
   */
  close(options?: { readonly graceMs?: number }): Promise<void>;
}

/** How long drain() tells clients the relays keep running when the caller does not say. */
export const DEFAULT_RELAYS_CUT_IN_MS = 30_000;

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
  const log = options.logger ?? silentLogger;
  const beacon = new BeaconServer({
    limits: withinOpenFileLimit(
      resolveLimits(options.limits),
      options.openFileLimit ?? readOpenFileLimit(),
      log,
    ),
    tls: options.tls,
    bridgeCas: anonymous ? undefined : parseBridgeCas(options.bridgeCaPems ?? []),
    plainDoor: options.plain === true,
    processMetrics: Boolean(options.metrics),
    log,
  });
  return beacon.start(options);
}

/** File descriptors kept free at --max-connections: listeners, probe and metrics connections, certificate reloads. */
export const BEACON_FD_HEADROOM = 256;

/**
 * With an open-file limit at or under --max-connections (20,000 by default; a shell's `ulimit -n` can be that), a
 * flood took the last descriptors: probes failed (the liveness probe restarts the pod) and the certificate reload
 * failed with EMFILE (an outside drill). The bound is lowered to leave room, and said once at start.
 */
function withinOpenFileLimit(limits: BeaconLimits, openFiles: number | undefined, log: Logger): BeaconLimits {
  if (openFiles === undefined || limits.maxConnections <= openFiles - BEACON_FD_HEADROOM) return limits;
  const maxConnections = Math.max(2, openFiles - BEACON_FD_HEADROOM);
  log.info(
    {
      event: 'max_connections_capped',
      configured: limits.maxConnections,
      openFileLimit: openFiles,
      maxConnections,
    },
    `--max-connections lowered to ${maxConnections}: this process may open ${openFiles} files, and the beacon keeps ${BEACON_FD_HEADROOM} for its listeners, probes and certificate files (raise the container's nofile limit to keep the bound)`,
  );
  return Object.freeze({ ...limits, maxConnections });
}

/** The soft limit on open files, from /proc/self/limits; undefined where there is none (not Linux) or unlimited. */
export function readOpenFileLimit(
  read: () => string = () => readFileSync('/proc/self/limits', 'utf8'),
): number | undefined {
  let text: string;
  try {
    text = read();
  } catch {
    return undefined;
  }
  const soft = /^Max open files\s+(\S+)/m.exec(text)?.[1];
  return soft !== undefined && /^\d+$/.test(soft) ? Number(soft) : undefined;
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

interface BeaconServerOptions {
  readonly limits: BeaconLimits;
  readonly tls: { readonly certPem: string; readonly keyPem: string };
  /** Undefined: anonymous bridges allowed. */
  readonly bridgeCas: BridgeCaSet | undefined;
  readonly plainDoor: boolean;
  /** Also export the process's own metrics (CPU, memory) on the metrics port. */
  readonly processMetrics: boolean;
  readonly log: Logger;
}

class BeaconServer {
  private readonly limits: BeaconLimits;
  private readonly log: Logger;
  private readonly metrics: BeaconMetrics;
  private readonly doors: BeaconDoors;
  private readonly pairing: PairingCore;
  private metricsServer: HttpServer | undefined;
  private readonly rejectionsByReason = new Map<string, number>();
  private tlsHandshakesAborted = 0;
  private readonly rejectionLog: LogSummarizer;
  private readonly tlsAbortLog: LogSummarizer;
  private closing: Promise<void> | undefined;
  /** After SIGTERM (drain): not ready, still relaying until close. */
  private draining = false;
  private listening = false;

  constructor(options: BeaconServerOptions) {
    this.limits = options.limits;
    this.log = options.log;
    // 100 addresses a minute in full, then one shared summary: a scan from thousands of addresses wrote about 2,000
    // lines a minute with the default 1,000 (an outside drill).
    this.tlsAbortLog = createLogSummarizer(this.log, {
      summaryEvent: 'tls_aborted_summary',
      keyFields: ['remote'],
      maxKeys: 100,
    });
    this.rejectionLog = createLogSummarizer(this.log, {
      summaryEvent: 'rejected_summary',
      keyFields: ['reason', 'remote'],
    });
    this.metrics = createBeaconMetrics({
      processMetrics: options.processMetrics,
      maxConnections: this.limits.maxConnections,
    });
    const refuse = (reason: string, code: RejectCode, message: string, meta: Record<string, unknown>) =>
      this.reject(reason, code, message, meta);
    this.pairing = new PairingCore({
      limits: this.limits,
      metrics: this.metrics,
      log: this.log,
      refuse,
      admit: (leg, role, hash) => this.doors.announced(leg, role, hash),
    });
    this.metrics.certificate(notAfterOf(options.tls.certPem));
    this.doors = new BeaconDoors({
      limits: this.limits,
      tls: options.tls,
      bridgeCas: options.bridgeCas,
      plainDoor: options.plainDoor,
      metrics: this.metrics,
      legEvents: this.pairing,
      refuse,
      tlsAborted: (remote) => this.tlsAborted(remote),
      makeRoom: () => this.pairing.evictAnonymousBroker('max_connections_evicted'),
    });
  }

  async start(options: BeaconOptions): Promise<BeaconHandle> {
    const host = options.host ?? '0.0.0.0';
    const server = this.doors.server;
    let metricsUrl: string | undefined;
    try {
      const listenPort = options.port ?? 443;
      await new Promise<void>((resolve, reject) => {
        // EACCES (a port below 1024 without the privilege) and EADDRINUSE are what was asked for, not a bug.
        const refused = (err: Error) =>
          reject(cannotListen('beacon connections (--listen)', formatHost(host), listenPort, err));
        server.once('error', refused);
        server.listen(listenPort, host, () => {
          server.off('error', refused);
          resolve();
        });
      });
      this.listening = true;
      if (options.metrics) {
        try {
          const started = await startMetricsServer(
            this.metrics,
            options.metrics.host ?? '0.0.0.0',
            options.metrics.port ?? 9090,
            () => this.listening && !this.closing && !this.draining,
          );
          this.metricsServer = started.server;
          metricsUrl = started.url;
        } catch (err) {
          throw new CloudtaserError(
            'CT_LISTEN_FAILED',
            `beacon metrics server (--metrics-listen): ${(err as Error).message}`,
            {
              cause: err,
            },
          );
        }
      }
    } catch (err) {
      // A start that fails halfway leaves nothing open: no port, no timers.
      await this.close(0);
      throw err;
    }
    const port = (server.address() as AddressInfo).port;
    const address = `${formatHost(host)}:${port}`;
    const bridgeCas = this.doors.bridgeCas;
    this.log.info({
      event: 'listening',
      version: CLOUDTASER_VERSION,
      address,
      plainDoor: options.plain === true,
      metricsUrl,
      bridgeAuthentication: bridgeCas ? 'client-certificate' : 'anonymous',
      bridgeCas: bridgeCas?.certificates.length,
      limits: this.limits,
    });
    if (!bridgeCas)
      this.log.warn({
        event: 'anonymous_bridges',
        message:
          'bridges are not authenticated: anyone who knows a room hash can wait as a bridge; give the beacon its bridge CAs (--bridge-ca)',
      });
    else if (bridgeCas.certificates.length === 0)
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
        this.doors.updateTls(tls);
        this.metrics.certificate(notAfterOf(tls.certPem));
        this.log.info({ event: 'tls_updated' });
      },
      updateBridgeCas: (pems) => {
        if (!this.doors.bridgeCas)
          throw new CloudtaserError(
            'CT_INVALID_ARGUMENT',
            'this beacon runs with anonymous bridges; restart it with bridge CAs to authenticate bridges',
          );
        const cas = parseBridgeCas(pems);
        this.doors.updateBridgeCas(cas);
        this.log.info({ event: 'bridge_cas_updated', bridgeCas: cas.certificates.length });
      },
      drain: (drainOptions) => this.drain(drainOptions?.relaysCutInMs ?? DEFAULT_RELAYS_CUT_IN_MS),
      close: (closeOptions) => this.close(closeOptions?.graceMs ?? 0),
    };
  }

  private stats(): BeaconStats {
    const counters = this.metrics.counters;
    return {
      connections: counters.connections,
      pending: this.doors.pending,
      waiting: counters.waitingBroker + counters.waitingBridge,
      waitingBrokers: counters.waitingBroker,
      waitingBridges: counters.waitingBridge,
      paired: counters.paired,
      rooms: this.pairing.roomCount,
      trackedAddresses: new Set([...this.doors.pendingAddresses(), ...this.pairing.waitingAddresses()]).size,
      pairingsTotal: this.pairing.pairingsTotal,
      rejectionsTotal: [...this.rejectionsByReason.values()].reduce((sum, count) => sum + count, 0),
      rejectionsByReason: Object.fromEntries(this.rejectionsByReason),
      tlsHandshakesAborted: this.tlsHandshakesAborted,
      bytesBrokerToBridge: counters.bytesBrokerToBridge,
      bytesBridgeToBroker: counters.bytesBridgeToBroker,
    };
  }

  private drain(relaysCutInMs: number): void {
    if (this.draining || this.closing) return;
    this.draining = true;
    const told = this.pairing.drain(relaysCutInMs);
    this.log.info({
      event: 'draining_pairings',
      waitersTold: told,
      relays: this.pairing.relayCount,
      relaysCutInMs,
      message:
        'pairing nothing more: waiting clients were told to wait on another replica; the relays keep running until the beacon closes',
    });
  }

  /**
   * Every caller gets the first call's promise, which resolves once the port and the metrics port are closed. A
   * call without a grace while an earlier one waits for relays cuts them now.
   */
  private close(graceMs: number): Promise<void> {
    if (graceMs === 0) this.cutRelays?.();
    this.closing ??= this.shutDown(graceMs);
    return this.closing;
  }

  private cutRelays: (() => void) | undefined;

  private async shutDown(graceMs: number): Promise<void> {
    const server = this.doors.server;
    const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    const relays = this.pairing.relayCount;
    if (graceMs > 0 && relays > 0) {
      // No new connections from here on; connections accepted before that are told `draining` at their announce.
      this.drain(graceMs);
      this.log.info({ event: 'closing_relays', relays, graceMs });
      const cut = new Promise<boolean>((resolve) => {
        this.cutRelays = () => resolve(false);
      });
      const ended = await Promise.race([this.pairing.relaysEnded(graceMs), cut]);
      this.cutRelays = undefined;
      if (!ended)
        this.log.warn({
          event: 'relays_cut',
          relays: this.pairing.relayCount,
          graceMs,
          message:
            'relays still open when the shutdown grace ended were cut (their clients reconnect through another replica)',
        });
    }
    this.pairing.close();
    this.doors.close();
    if (this.metricsServer) {
      const metricsServer = this.metricsServer;
      metricsServer.closeAllConnections();
      await new Promise<void>((resolve) => metricsServer.close(() => resolve()));
    }
    if (this.listening) await serverClosed;
    this.listening = false;
    this.rejectionLog.close();
    this.tlsAbortLog.close();
    this.log.info({ event: 'closed', drainRefusals: this.pairing.drainRefusalCount });
  }

  /** A client that gave up during the outer TLS handshake: counted and logged (summarized), not a refusal. */
  private tlsAborted(remote: string): void {
    this.tlsHandshakesAborted += 1;
    this.metrics.tlsAborted();
    this.tlsAbortLog.warn(remote, {
      event: 'tls_aborted',
      remote,
      message:
        "a client closed the connection during the outer TLS handshake: a client that does not trust this beacon's certificate does so (expired, another CA, a name it does not match: see cloudtaser_beacon_certificate_not_after_seconds and the client's own log), and so do scanners (many addresses: tls_aborted_summary)",
    });
  }

  /**
   * Every refusal goes through here: one counter increment, and one log line per reason, source address and message
   * a minute, the rest counted into a `rejected_summary` line (strangers make refusals at will: an outside SRE drill
   * read 16 `bridge_unauthenticated` lines in 23 s from one bridge).
   */
  private reject(reason: string, code: RejectCode, message: string, meta: Record<string, unknown>): void {
    this.rejectionsByReason.set(reason, (this.rejectionsByReason.get(reason) ?? 0) + 1);
    this.metrics.rejection(reason);
    // Keyed by the message too: a bridge refused first for an unknown CA and then for an expired certificate gets
    // both lines (the summarizer caps the keys a stranger can make this way).
    this.rejectionLog.warn(`${reason}|${String(meta.remote)}|${message}`, {
      event: 'rejected',
      reason,
      code,
      message,
      ...meta,
    });
  }
}

export type { BeaconDoor, BeaconRole };

/** The notAfter of the first certificate of a PEM (the served one; the rest is its chain). */
function notAfterOf(certPem: string): Date {
  return new Date(new X509Certificate(certPem).validTo);
}
