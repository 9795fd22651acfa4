/**
 * The broker: runs in the target cluster, dials out only. Reads the cluster fingerprint, bootstraps through
 * the init room, then holds the operational tunnel, reconnecting on its own. Nothing is written to disk.
 */
import type { Duplex } from 'node:stream';
import { dialBeacon } from '../beacon/index.js';
import { CloudtaserError, isCloudtaserError } from '../core/errors.js';
import { hashPrefix, initHash, operationalHash, parseFingerprint } from '../core/hashes.js';
import { type Logger, silentLogger } from '../core/log.js';
import { generateKeyPair, privateKeyToPem } from '../pki/index.js';
import {
  createBackoff,
  type HealthServer,
  type Resolve,
  sleep,
  startHealthServer,
  type TunnelHandler,
  type TunnelLimits,
  type TunnelMux,
} from '../tunnel/index.js';
import { acceptTunnel } from '../tunnel/session.js';
import { type BrokerCredentials, bootstrapBroker } from './bootstrap.js';

export type BrokerPhase =
  | 'starting'
  | 'bootstrapping'
  | 'rejected'
  | 'connecting'
  | 'operational'
  | 'reconnecting'
  | 'stopped';

export interface BrokerStatus {
  readonly phase: BrokerPhase;
  /** Human-readable: what the broker is doing or why it is stuck, and what to do. */
  readonly reason: string;
  /** When the phase last changed (ISO 8601). */
  readonly since: string;
  /** The stable code of the last failure, if any. */
  readonly lastErrorCode?: string;
  /** First 12 hex characters of the operational room (the CA hash) once bootstrapped. */
  readonly operationalHashPrefix?: string;
  /** The beacon replica the live tunnel runs through. */
  readonly beaconIp?: string;
  readonly tunnel?: { readonly since: string; readonly lastPingRttMs?: number };
}

export interface BrokerTiming {
  /** Bound for each bootstrap / handshake step. @default 10000 */
  readonly stepTimeoutMs: number;
  /** First reconnect delay. @default 500 */
  readonly backoffInitialMs: number;
  /** Reconnect delay cap. @default 30000 */
  readonly backoffMaxMs: number;
  /** Retry interval while rejected (already initialized), so a re-arm heals without a restart. @default 60000 */
  readonly rejectedRetryMs: number;
  /**
   * A dial that has not paired after this long is abandoned and retried, so a beacon replica that vanished
   * without a FIN/RST reaching us cannot strand the broker. Keep it above the beacon's broker wait. @default 45000
   */
  readonly pairTimeoutMs: number;
  /** After this many operational dials without a bridge, try the init room once (the cluster may be re-registered). @default 3 */
  readonly reBootstrapAfterFailures: number;
}

export const DEFAULT_BROKER_TIMING: BrokerTiming = Object.freeze({
  stepTimeoutMs: 10_000,
  backoffInitialMs: 500,
  backoffMaxMs: 30_000,
  rejectedRetryMs: 60_000,
  pairTimeoutMs: 45_000,
  reBootstrapAfterFailures: 3,
});

export interface BrokerOptions {
  /** Beacon addresses (`host:port`, `wss://host:port`, `plain://host:port`); every A-record of each is dialled. */
  readonly beacons: readonly string[];
  /** Trust for the beacon's outer TLS. @default the system roots */
  readonly beaconCaPem?: string;
  /** The cluster fingerprint, or how to read it (the kube-system UID). Retried with backoff on failure. */
  readonly fingerprint: string | ((signal: AbortSignal) => Promise<string>);
  /** Optional pin: SHA-256 (hex) of the cluster CA DER. */
  readonly caSha256?: string;
  /** Injectable resolver for beacon names (tests). @default DNS */
  readonly resolve?: Resolve;
  /** Serve /healthz, /readyz, /status here. @default off */
  readonly health?: { readonly host?: string; readonly port: number };
  readonly timing?: Partial<BrokerTiming>;
  readonly tunnelLimits?: Partial<TunnelLimits>;
  /** Serves requests the bridge sends through the tunnel (issue 6 adds the real ones). */
  readonly handler?: TunnelHandler;
  /** Sees every stream the beacon pairs us with; tests wrap it to capture what the relay carries. */
  readonly observePairedStream?: (stream: Duplex, room: 'init' | 'operational') => Duplex;
  readonly logger?: Logger;
}

export interface BrokerHandle {
  status(): BrokerStatus;
  /** The live tunnel, when operational. */
  tunnel(): TunnelMux | undefined;
  /** Resolves when the broker reaches `phase`; rejects after `timeoutMs`. */
  waitForPhase(phase: BrokerPhase, timeoutMs?: number): Promise<BrokerStatus>;
  readonly healthUrl?: string;
  close(): Promise<void>;
}

export async function startBroker(options: BrokerOptions): Promise<BrokerHandle> {
  if (options.beacons.length === 0)
    throw new CloudtaserError('CT_INVALID_ARGUMENT', 'the broker needs at least one --beacon address');
  const pin = options.caSha256?.trim().toLowerCase();
  if (pin !== undefined && !/^[0-9a-f]{64}$/.test(pin)) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      '--ca-sha256 must be 64 hex characters (the operational hash `source register` prints)',
    );
  }
  const timing: BrokerTiming = { ...DEFAULT_BROKER_TIMING, ...definedOnly(options.timing ?? {}) };
  const log = (options.logger ?? silentLogger).child({ component: 'broker' });
  const stop = new AbortController();
  const backoff = createBackoff({ initialMs: timing.backoffInitialMs, maxMs: timing.backoffMaxMs });
  // One key per process: retries reuse it, and it never leaves memory.
  const keyPair = generateKeyPair();

  let status: BrokerStatus = {
    phase: 'starting',
    reason: 'reading the cluster fingerprint',
    since: new Date().toISOString(),
  };
  let liveTunnel: TunnelMux | undefined;
  const watchers = new Set<() => void>();

  const setStatus = (phase: BrokerPhase, reason: string, extra: Partial<BrokerStatus> = {}) => {
    const changed = phase !== status.phase;
    status = {
      ...status,
      ...extra,
      phase,
      reason,
      since: changed ? new Date().toISOString() : status.since,
      ...(phase === 'operational' ? {} : { tunnel: undefined, beaconIp: undefined }),
    };
    if (changed)
      log.info({ event: 'broker.phase', phase, reason, code: status.lastErrorCode }, `broker ${phase}`);
    for (const wake of [...watchers]) wake();
  };

  const health: HealthServer | undefined = options.health
    ? await startHealthServer({
        host: options.health.host,
        port: options.health.port,
        status: () => ({
          ...status,
          tunnel: liveTunnel
            ? { ...status.tunnel, lastPingRttMs: liveTunnel.stats().lastPingRttMs }
            : undefined,
        }),
        // Ready means the process works; the beacon's state is reported by /status, not by failing probes.
        ready: () => !stop.signal.aborted,
        logger: log,
      })
    : undefined;

  const dial = async (hash: string, room: 'init' | 'operational') => {
    const attempt = new AbortController();
    const onStop = () => attempt.abort();
    stop.signal.addEventListener('abort', onStop, { once: true });
    let timedOut = false;
    const pairTimer = setTimeout(() => {
      timedOut = true;
      attempt.abort();
    }, timing.pairTimeoutMs);
    try {
      // Every address, every A-record, in parallel: the first pairing wins and the rest are closed.
      const dials = options.beacons.map((address) =>
        dialBeacon({
          address,
          role: 'broker',
          hash,
          caCertPem: options.beaconCaPem,
          resolve: options.resolve,
          signal: attempt.signal,
        }),
      );
      const winner = await firstFulfilled(dials);
      attempt.abort();
      for (const other of dials)
        void other.then(
          (paired) => paired !== winner && paired.stream.destroy(),
          () => undefined,
        );
      const stream = options.observePairedStream
        ? options.observePairedStream(winner.stream, room)
        : winner.stream;
      return { stream, ip: winner.ip };
    } catch (err) {
      if (timedOut && !stop.signal.aborted) {
        throw new CloudtaserError(
          'CT_BEACON_UNREACHABLE',
          `no pairing in the ${room} room within ${timing.pairTimeoutMs} ms; dialing again`,
          { cause: err },
        );
      }
      throw err;
    } finally {
      clearTimeout(pairTimer);
      stop.signal.removeEventListener('abort', onStop);
    }
  };

  const bootstrap = async (fingerprint: string): Promise<BrokerCredentials> => {
    const paired = await dial(initHash(fingerprint), 'init');
    log.info({ event: 'broker.paired', room: 'init', beaconIp: paired.ip }, 'paired in the init room');
    return bootstrapBroker(paired.stream, {
      fingerprint,
      caSha256: pin,
      stepTimeoutMs: timing.stepTimeoutMs,
      signal: stop.signal,
      logger: log,
      keyPair,
    });
  };

  const connect = async (credentials: BrokerCredentials) => {
    const room = operationalHash(credentials.caCertDer);
    const paired = await dial(room, 'operational');
    const session = await acceptTunnel(paired.stream, {
      caCertPem: credentials.caCertPem,
      certPem: credentials.brokerCertPem,
      keyPem: privateKeyToPem(credentials.privateKey),
      handshakeTimeoutMs: timing.stepTimeoutMs,
      limits: options.tunnelLimits,
      handler: options.handler,
      signal: stop.signal,
      logger: log,
    });
    return { ...session, ip: paired.ip };
  };

  const run = async () => {
    let fingerprint: string | undefined;
    let credentials: BrokerCredentials | undefined;
    let operationalMisses = 0;
    while (!stop.signal.aborted) {
      try {
        if (!fingerprint) {
          fingerprint = parseFingerprint(
            typeof options.fingerprint === 'string'
              ? options.fingerprint
              : await options.fingerprint(stop.signal),
          );
          setStatus('bootstrapping', 'fingerprint read; dialing the beacon init room');
        }
        const tryInit = !credentials || operationalMisses >= timing.reBootstrapAfterFailures;
        if (tryInit) {
          if (!credentials && status.phase !== 'rejected')
            setStatus('bootstrapping', 'waiting for the bridge in the init room');
          try {
            credentials = await bootstrap(fingerprint);
            operationalMisses = 0;
            setStatus('connecting', 'bootstrapped; dialing the operational room', {
              lastErrorCode: undefined,
              operationalHashPrefix: hashPrefix(operationalHash(credentials.caCertDer)),
            });
          } catch (err) {
            // With certificates in hand a refusal only means "still initialized": keep using them.
            if (!credentials) throw err;
            operationalMisses = 0;
            if (!isCloudtaserError(err, 'CT_BOOTSTRAP_REFUSED')) throw err;
          }
        }
        const session = await connect(credentials!);
        liveTunnel = session.mux;
        operationalMisses = 0;
        backoff.reset();
        setStatus('operational', 'mutual TLS tunnel to the bridge is up', {
          lastErrorCode: undefined,
          beaconIp: session.ip,
          tunnel: { since: new Date().toISOString() },
        });
        const why = await session.mux.done;
        liveTunnel = undefined;
        if (stop.signal.aborted) break;
        setStatus('reconnecting', `the tunnel closed (${why.message}); reconnecting`, {
          lastErrorCode: why.code,
        });
      } catch (err) {
        if (stop.signal.aborted) break;
        const error = toCloudtaserError(err);
        if (error.code === 'CT_BOOTSTRAP_REFUSED' && error.details.refusal === 'CT_ALREADY_INITIALIZED') {
          setStatus('rejected', error.message.replace(/^the bridge refused the bootstrap: /, ''), {
            lastErrorCode: 'CT_ALREADY_INITIALIZED',
          });
          await sleep(jitter(timing.rejectedRetryMs), stop.signal);
          continue;
        }
        if (credentials && (error.code === 'CT_BEACON_LIMIT' || error.code === 'CT_BEACON_REJECTED'))
          operationalMisses++;
        const delay = backoff.next();
        const phase: BrokerPhase = !fingerprint
          ? 'starting'
          : !credentials
            ? status.phase === 'rejected'
              ? 'rejected'
              : 'bootstrapping'
            : 'reconnecting';
        setStatus(phase, `${error.message}; retrying in ${delay} ms`, { lastErrorCode: error.code });
        log.warn(
          { event: 'broker.retry', code: error.code, delayMs: delay, reason: error.message },
          'broker attempt failed',
        );
        await sleep(delay, stop.signal);
      }
    }
  };
  const running = run();

  return {
    status: () => ({ ...status }),
    tunnel: () => liveTunnel,
    healthUrl: health?.url,
    waitForPhase(phase, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (status.phase !== phase) return;
          cleanup();
          resolve({ ...status });
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new CloudtaserError(
              'CT_CANCELLED',
              `broker did not reach ${phase} within ${timeoutMs} ms (now ${status.phase}: ${status.reason})`,
            ),
          );
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          watchers.delete(check);
        };
        watchers.add(check);
        check();
      });
    },
    async close() {
      if (stop.signal.aborted) return;
      stop.abort();
      liveTunnel?.close({ code: 'CT_TUNNEL_CLOSED', reason: 'broker shutting down' });
      await running;
      await health?.close();
      setStatus('stopped', 'closed');
    },
  };
}

/** Like Promise.any, but rejects with the most telling CloudtaserError instead of an AggregateError. */
function firstFulfilled<T>(promises: Promise<T>[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const errors: unknown[] = [];
    for (const promise of promises) {
      promise.then(resolve, (err) => {
        errors.push(err);
        if (errors.length === promises.length) {
          const stated = errors.find(
            (e) => isCloudtaserError(e) && e.code !== 'CT_BEACON_UNREACHABLE' && e.code !== 'CT_CANCELLED',
          );
          reject(stated ?? errors[0]);
        }
      });
    }
  });
}

function toCloudtaserError(err: unknown): CloudtaserError {
  if (err instanceof CloudtaserError) return err;
  return new CloudtaserError('CT_INTERNAL', (err as Error)?.message ?? String(err), { cause: err });
}

function jitter(ms: number): number {
  return Math.round(ms * (0.8 + Math.random() * 0.4));
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
