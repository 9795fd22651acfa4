/**
 * The bridge: runs beside OpenBao, dials out only. It discovers registered clusters by polling OpenBao and
 * keeps one waiting connection per room on every beacon replica:
 *   - the init room of every registered cluster (it signs for a cluster not yet initialized and refuses,
 *     with the re-arm instructions, for one that is; without that answer a restarted broker could not tell
 *     "already initialized" from "bridge down");
 *   - the operational room of every initialized cluster.
 * A waiting connection that gets paired is handed off and replaced at once. A cluster that disappears from
 * OpenBao loses its waiters and its live tunnels at the next poll.
 */
import { createHash, type X509Certificate } from 'node:crypto';
import type { Duplex } from 'node:stream';
import {
  type BeaconClientCertificate,
  type BeaconDialPlan,
  type BeaconTarget,
  everyReplicaRefused,
  logBeaconRoutes,
  planBeaconDial,
  reportFanOut,
  waitForPeer,
} from '../beacon/index.js';
import { CloudtaserError, type ErrorCode } from '../core/errors.js';
import { fingerprintPrefix, hashPrefix, initHash, redactIdentifiers } from '../core/hashes.js';
import { type Logger, moduleLogger } from '../core/log.js';
import { createLogSummarizer } from '../core/log-summary.js';
import {
  createRefusalLogGate,
  isMigrationRequest,
  type RefusalLogGate,
  serveMigration,
} from '../migration/bridge-side.js';
import type { OpenBaoClient } from '../openbao/index.js';
import { createOpenBaoForwarder } from '../podapi/forward.js';
import { OPENBAO_TUNNEL_PREFIX } from '../podapi/protocol.js';
import { type ProxyEndpoint, proxySettingFromEnvironment } from '../proxy/index.js';
import {
  type ClusterTrust,
  DEFAULT_NAMESPACE_ROOT,
  getClusterStatus,
  listRegisteredClusters,
  loadClusterTrust,
  type RegisteredCluster,
} from '../registration/index.js';
import {
  createBackoff,
  type HealthServer,
  type RelayPartyOptions,
  sleep,
  startHealthServer,
  type TunnelHandler,
  type TunnelMux,
  type TunnelReply,
} from '../tunnel/index.js';
import { openTunnel } from '../tunnel/session.js';
import { serveBootstrap } from './bootstrap.js';
import { createHandshakeGate, type HandshakeGate } from './handshake-gate.js';
import type { BridgeMetrics } from './metrics.js';
import {
  type BridgeTokenReview,
  type BridgeTokenReviewOptions,
  startBridgeTokenReview,
} from './tokenreview-service.js';

export interface BridgeTiming {
  /** How often OpenBao is listed for clusters. @default 10000 */
  readonly pollIntervalMs: number;
  /** Bound for each bootstrap / handshake step. @default 10000 */
  readonly stepTimeoutMs: number;
  /** First redial delay after a beacon failure. @default 500 */
  readonly backoffInitialMs: number;
  /** Redial delay cap. @default 30000 */
  readonly backoffMaxMs: number;
  /**
   * A waiting connection is replaced after this long even if nothing happened, so a beacon replica that
   * vanished without a FIN/RST reaching us (kill -9, half-open TCP) cannot strand a room. @default 60000
   */
  readonly waitRefreshMs: number;
  /** Pause of a room's waiters after one failed handshake there; doubles with each further failure. @default 250 */
  readonly handshakeBackoffInitialMs: number;
  /** Cap of that pause. @default 15000 */
  readonly handshakeBackoffMaxMs: number;
  /**
   * How long a cluster's trust material (CA, bridge certificate, current broker key) is used from memory before
   * the poll marks it for a fresh read: pairings never read OpenBao themselves. @default 300000
   */
  readonly trustRefreshMs: number;
}

export const DEFAULT_BRIDGE_TIMING: BridgeTiming = Object.freeze({
  pollIntervalMs: 10_000,
  stepTimeoutMs: 10_000,
  backoffInitialMs: 500,
  backoffMaxMs: 30_000,
  waitRefreshMs: 60_000,
  handshakeBackoffInitialMs: 250,
  handshakeBackoffMaxMs: 15_000,
  trustRefreshMs: 300_000,
});

export interface BridgeOptions extends RelayPartyOptions {
  /** OpenBao client authenticated as the bridge (its own token or AppRole login, never an admin token). */
  readonly openbao: OpenBaoClient;
  /** @default 'cloudtaser' */
  readonly namespaceRoot?: string;
  readonly timing?: Partial<BridgeTiming>;
  /**
   * Serves broker requests other than the built-in ones (pod API `/openbao/v1/...` forwarded to OpenBao in the
   * cluster namespace, and migration writes `/migration/v1/...` made with the bridge's own token).
   */
  readonly handler?: TunnelHandler;
  /** CA of OpenBao's certificate, for the pod API forwarder (which keeps its own connection pool). */
  readonly openbaoCaCertPem?: string;
  /**
   * How long a pod's request forwarded to OpenBao may take before the pod gets OpenBao's own 503 shape (it
   * retries as it would against OpenBao). @default 15000
   */
  readonly podRequestTimeoutMs?: number;
  /**
   * Serve the per-cluster endpoint OpenBao's Kubernetes auth calls instead of an API server
   * (`/clusters/<fingerprint>/apis/authentication.k8s.io/v1/tokenreviews`, `/clusters/<fingerprint>/api/v1/
   * namespaces/<ns>`), HTTPS by default, only for OpenBao's reviewer credential, forwarding to the replica that
   * holds the cluster's tunnel. @default off
   */
  readonly tokenReview?: BridgeTokenReviewOptions;
  /**
   * The client certificate the bridge presents to the beacon, asked again for every dial (it is renewed):
   * see startMintedBeaconIdentity and watchBeaconIdentityFiles. @default none (only an anonymous-bridge beacon
   * lets such a bridge wait)
   */
  readonly beaconIdentity?: { current(): BeaconClientCertificate | undefined };
  readonly observePairedStream?: (stream: Duplex, room: 'init' | 'operational') => Duplex;
  /**
   * Count what happens into these metrics (createBridgeMetrics) and serve them as `/metrics` on the health port.
   * @default no metrics
   */
  readonly metrics?: BridgeMetrics;
  readonly logger?: Logger;
}

export interface BridgeClusterStatus {
  readonly fingerprintPrefix: string;
  readonly initialized: boolean;
  /** Waiting connections (rooms x beacon replicas). */
  readonly waiting: number;
  readonly tunnels: number;
  /** Consecutive failed handshakes in the operational room (a flood shows here, paced by the bridge). */
  readonly failedHandshakes: number;
}

export interface BridgeStatus {
  readonly clusters: BridgeClusterStatus[];
  readonly lastPollAt?: string;
  readonly lastPollError?: string;
  readonly bootstrapsSigned: number;
  readonly bootstrapsRefused: number;
  /** Why the beacon refused this bridge's identity, while it does (CT_BEACON_UNAUTHENTICATED / CT_BEACON_IDENTITY). */
  readonly beaconIdentityError?: string;
}

export interface BridgeHandle {
  status(): BridgeStatus;
  /** Live tunnels, optionally for one fingerprint. */
  tunnels(fingerprint?: string): TunnelMux[];
  /** Polls OpenBao now instead of waiting for the interval. */
  pollNow(): Promise<void>;
  readonly healthUrl?: string;
  /** Where the TokenReview endpoint listens, when enabled. */
  readonly tokenReviewUrl?: string;
  close(): Promise<void>;
}

interface ClusterState {
  readonly fingerprint: string;
  readonly namespace: string;
  readonly operationalHash: string;
  initialized: boolean;
  /** The registration's migration setting, refreshed at every poll. */
  migrationEnabled: boolean;
  /** One migration-refusal log line per code per minute for this cluster. */
  readonly migrationRefusalLog: RefusalLogGate;
  readonly stop: AbortController;
  readonly waiters: Map<string, AbortController>;
  /** Waiters that have reached the beacon's `waiting` state. */
  readonly waiting: Set<string>;
  readonly tunnels: Set<TunnelMux>;
  /** The CA and bridge certificate, read once and kept in memory (refreshed at the poll after trustRefreshMs). */
  trust?: Promise<ClusterTrust>;
  trustLoadedAt?: number;
  /**
   * SHA-256 of the broker key the latest bootstrap was signed for (null: none recorded), kept in memory and
   * updated by our own bootstraps; re-read when an operational peer does not match it or at the poll.
   */
  brokerKey?: Promise<string | null>;
  readonly gates: Record<Room, HandshakeGate>;
}

type Room = 'init' | 'operational';

/** What the bridge knows about one beacon address: the plan from the last good resolution, and its fan-out. */
interface BeaconReplicas {
  readonly plan: BeaconDialPlan;
  /** Replica addresses the proxy refused (CT_PROXY_REFUSED), with the refusal. */
  readonly refused: Map<string, CloudtaserError>;
  /** Set while the address is dialled by name through the proxy: why. */
  byName?: string;
  /** When dialling by name began; every FANOUT_RETRY_MS the addresses are tried again. */
  byNameSince?: number;
}

/** How long the bridge dials a beacon by name before it tries every replica address through the proxy again. */
const FANOUT_RETRY_MS = 5 * 60_000;

export async function startBridge(options: BridgeOptions): Promise<BridgeHandle> {
  if (options.beacons.length === 0)
    throw new CloudtaserError('CT_INVALID_ARGUMENT', 'the bridge needs at least one --beacon address');
  const timing: BridgeTiming = { ...DEFAULT_BRIDGE_TIMING, ...definedOnly(options.timing ?? {}) };
  const namespaceRoot = options.namespaceRoot ?? DEFAULT_NAMESPACE_ROOT;
  const log = moduleLogger(options.logger, 'bridge');
  const beaconProxy = options.beaconProxy ?? proxySettingFromEnvironment();
  logBeaconRoutes(log, options.beacons, beaconProxy);
  const stop = new AbortController();
  const clusters = new Map<string, ClusterState>();
  /** Last good resolution per beacon address; kept when DNS fails so waiters survive a DNS blip. */
  const replicas = new Map<string, BeaconReplicas>();
  let lastPollAt: string | undefined;
  let lastPollError: string | undefined;
  let bootstrapsSigned = 0;
  let bootstrapsRefused = 0;
  let beaconIdentityError: string | undefined;
  // A flood makes one failure per pairing; one line per room and minute says so, with counts.
  const sessionFailures = createLogSummarizer(log, { summaryEvent: 'bridge.session_failures_summary' });
  const beaconFailures = createLogSummarizer(log, { summaryEvent: 'bridge.beacon_failures_summary' });

  // Served on the health port: fingerprints and room hashes appear only as prefixes, whatever an error said.
  const status = (): BridgeStatus => ({
    clusters: [...clusters.values()].map((c) => ({
      fingerprintPrefix: fingerprintPrefix(c.fingerprint),
      initialized: c.initialized,
      waiting: c.waiting.size,
      tunnels: c.tunnels.size,
      failedHandshakes: c.gates.operational.failures,
    })),
    lastPollAt,
    lastPollError: lastPollError === undefined ? undefined : redactIdentifiers(lastPollError),
    bootstrapsSigned,
    bootstrapsRefused,
    ...(beaconIdentityError ? { beaconIdentityError: redactIdentifiers(beaconIdentityError) } : {}),
  });

  const metrics = options.metrics;
  metrics?.track({
    clusters: () =>
      [...clusters.values()].map((c) => ({
        fingerprint: c.fingerprint,
        initialized: c.initialized,
        tunnels: [...c.tunnels].filter((t) => !t.closed).length,
      })),
  });

  const forwarder = createOpenBaoForwarder({
    address: options.openbao.address,
    caCertPem: options.openbaoCaCertPem,
    timeoutMs: options.podRequestTimeoutMs,
    logger: log,
  });

  /** Live tunnel for one cluster (the newest one, when a reconnect briefly overlaps the old). */
  const tunnelFor = (fingerprint: string): TunnelMux | undefined => {
    const open = [...(clusters.get(fingerprint)?.tunnels ?? [])].filter((t) => !t.closed);
    return open[open.length - 1];
  };

  /** What one cluster's broker may ask of this bridge through its tunnel. */
  const clusterHandler =
    (cluster: ClusterState, clusterLog: Logger): TunnelHandler =>
    (request, context) => {
      if (request.path.startsWith(OPENBAO_TUNNEL_PREFIX)) {
        const forwarded = forwarder.forward(cluster.namespace, request, context.signal);
        return metrics ? observePodForward(metrics, forwarded) : forwarded;
      }
      if (isMigrationRequest(request)) {
        const migrated = serveMigration(request, {
          cluster: options.openbao.withNamespace(cluster.namespace),
          enabled: cluster.migrationEnabled,
          log: clusterLog,
          refusalLog: cluster.migrationRefusalLog,
        });
        return metrics ? observeMigration(metrics, migrated) : migrated;
      }
      if (options.handler) return options.handler(request, context);
      return { status: 404, headers: { 'content-type': 'text/plain' }, body: 'not found' };
    };

  const tokenReview: BridgeTokenReview | undefined = options.tokenReview
    ? await startBridgeTokenReview({
        listener: options.tokenReview,
        openbao: options.openbao,
        namespaceRoot,
        namespaceOf: (fingerprint) => clusters.get(fingerprint)?.namespace,
        tunnelFor,
        resolve: options.resolve,
        observe: metrics ? (outcome) => metrics.tokenReview(outcome) : undefined,
        logger: log,
      })
    : undefined;

  const health: HealthServer | undefined = options.health
    ? await startHealthServer({
        host: options.health.host,
        port: options.health.port,
        status,
        ready: () => !stop.signal.aborted,
        metrics: metrics?.registry,
        logger: log,
      })
    : undefined;

  function roomsOf(cluster: ClusterState): Room[] {
    return cluster.initialized ? ['init', 'operational'] : ['init'];
  }

  /** Starts missing waiters and stops unwanted ones for one cluster. */
  function reconcile(cluster: ClusterState): void {
    if (cluster.stop.signal.aborted) return;
    if (
      cluster.trustLoadedAt !== undefined &&
      performance.now() - cluster.trustLoadedAt > timing.trustRefreshMs
    ) {
      // Read again at the next pairing: a re-run of `register` may have renewed the bridge certificate.
      cluster.trust = undefined;
      cluster.trustLoadedAt = undefined;
      cluster.brokerKey = undefined;
    }
    const wanted = new Map<
      string,
      { room: Room; address: string; target: BeaconTarget; ip: string; proxy?: ProxyEndpoint }
    >();
    for (const room of roomsOf(cluster)) {
      for (const [address, known] of replicas) {
        const { target, route } = known.plan;
        for (const ip of known.byName ? [target.host] : known.plan.replicas)
          wanted.set(`${room}|${address}|${ip}`, { room, address, target, ip, proxy: route.proxy });
      }
    }
    for (const [key, controller] of cluster.waiters) {
      if (!wanted.has(key)) {
        controller.abort();
        cluster.waiters.delete(key);
        cluster.waiting.delete(key);
      }
    }
    for (const [key, spec] of wanted) {
      if (cluster.waiters.has(key)) continue;
      const controller = new AbortController();
      cluster.waiters.set(key, controller);
      void waitLoop(cluster, key, spec, AbortSignal.any([controller.signal, cluster.stop.signal]));
    }
  }

  /**
   * The proxy refused one replica address. When it has refused every address of the beacon, the bridge waits on
   * the name instead (the proxy picks the replica) and says so once; the addresses are tried again later.
   */
  function noteProxyRefusal(address: string, ip: string, error: CloudtaserError): void {
    const known = replicas.get(address);
    if (!known || known.byName || !known.plan.route.proxy || ip === known.plan.target.host) return;
    known.refused.set(ip, error);
    if (!known.plan.replicas.every((replica) => known.refused.has(replica))) return;
    known.byName = everyReplicaRefused(known.plan, [...known.refused.values()]);
    known.byNameSince = Date.now();
    reportFanOut(log, known.plan, known.byName);
    for (const cluster of clusters.values()) reconcile(cluster);
  }

  async function waitLoop(
    cluster: ClusterState,
    key: string,
    spec: { room: Room; address: string; target: BeaconTarget; ip: string; proxy?: ProxyEndpoint },
    signal: AbortSignal,
  ): Promise<void> {
    const { room, target, ip } = spec;
    const backoff = createBackoff({ initialMs: timing.backoffInitialMs, maxMs: timing.backoffMaxMs });
    const hash = room === 'init' ? initHash(cluster.fingerprint) : cluster.operationalHash;
    const gate = cluster.gates[room];
    while (!signal.aborted) {
      await gate.ready(signal);
      if (signal.aborted) break;
      let reachedWaiting = false;
      const refresh = new AbortController();
      const refreshTimer = setTimeout(() => refresh.abort(), timing.waitRefreshMs);
      try {
        const stream = await waitForPeer({
          target,
          ip,
          role: 'bridge',
          hash,
          caCertPem: options.beaconCaPem,
          proxy: spec.proxy,
          clientCertificate: options.beaconIdentity?.current(),
          signal: AbortSignal.any([signal, refresh.signal]),
          onWaiting: () => {
            reachedWaiting = true;
            metrics?.beaconDial(ip, 'waiting');
            beaconIdentityError = undefined;
            cluster.waiting.add(key);
            const known = replicas.get(spec.address);
            if (known?.plan.route.proxy && !known.byName && ip !== target.host) {
              known.refused.delete(ip);
              reportFanOut(log, known.plan, undefined);
            }
          },
        });
        cluster.waiting.delete(key);
        backoff.reset();
        metrics?.beaconDial(ip, 'paired');
        const observed = options.observePairedStream ? options.observePairedStream(stream, room) : stream;
        // Anyone can pair with us in the operational room: a line per pairing would be theirs to multiply.
        log.debug({ event: 'bridge.paired', room, hashPrefix: hashPrefix(hash), beaconIp: ip }, 'paired');
        // One handshake per room at a time: the waiter goes back to the beacon only when this one is decided.
        await handlePaired(cluster, room, observed);
      } catch (err) {
        cluster.waiting.delete(key);
        if (signal.aborted) break;
        const error = err as CloudtaserError;
        if (error.code === 'CT_PROXY_REFUSED') noteProxyRefusal(spec.address, ip, error);
        if (signal.aborted) break;
        if (!reachedWaiting && !refresh.signal.aborted) metrics?.beaconDial(ip, error.code ?? 'CT_INTERNAL');
        // A wait that the beacon ended after its bound, or our refresh, is routine: redial at once.
        const delay = reachedWaiting || refresh.signal.aborted ? 0 : backoff.next();
        if (error.code === 'CT_BEACON_UNAUTHENTICATED' || error.code === 'CT_BEACON_IDENTITY')
          beaconIdentityError = error.message;
        if (!reachedWaiting)
          beaconFailures.warn(
            `${ip}|${error.code}`,
            {
              event: 'bridge.beacon_failed',
              code: error.code,
              beaconIp: ip,
              delayMs: delay,
              reason: error.message,
            },
            error.code === 'CT_BEACON_UNAUTHENTICATED'
              ? 'the beacon refused this bridge: it does not trust its client certificate; give the beacon the beacon client CA (--bridge-ca)'
              : 'beacon dial failed',
          );
        await sleep(delay, signal);
      } finally {
        clearTimeout(refreshTimer);
      }
    }
    cluster.waiting.delete(key);
  }

  /** The cluster's CA and bridge certificate from memory; read from OpenBao on first use and after a refresh. */
  function trustOf(cluster: ClusterState): Promise<ClusterTrust> {
    if (!cluster.trust) {
      const loading = loadClusterTrust(options.openbao, { namespace: cluster.namespace });
      cluster.trust = loading;
      cluster.trustLoadedAt = performance.now();
      // A failed read is not cached: the next pairing tries again.
      loading.catch(() => {
        if (cluster.trust === loading) {
          cluster.trust = undefined;
          cluster.trustLoadedAt = undefined;
        }
      });
    }
    return cluster.trust;
  }

  /** The broker key the latest bootstrap was signed for, from memory; read from OpenBao when unknown. */
  function brokerKeyOf(cluster: ClusterState): Promise<string | null> {
    if (!cluster.brokerKey) {
      const loading = getClusterStatus(options.openbao, {
        fingerprint: cluster.fingerprint,
        namespaceRoot,
      }).then((status) => status.initializedBrokerKeySha256 ?? null);
      cluster.brokerKey = loading;
      loading.catch(() => {
        if (cluster.brokerKey === loading) cluster.brokerKey = undefined;
      });
    }
    return cluster.brokerKey;
  }

  async function handlePaired(cluster: ClusterState, room: Room, stream: Duplex): Promise<void> {
    const clusterLog = log.child({ fingerprintPrefix: fingerprintPrefix(cluster.fingerprint) });
    const gate = cluster.gates[room];
    let staleKey = false;
    try {
      const trust = await trustOf(cluster);
      if (room === 'init') {
        const outcome = await serveBootstrap(stream, {
          fingerprint: cluster.fingerprint,
          namespaceRoot,
          openbao: options.openbao,
          trust,
          stepTimeoutMs: timing.stepTimeoutMs,
          signal: cluster.stop.signal,
          logger: clusterLog,
        });
        metrics?.bootstrap(cluster.fingerprint, outcome.signed ? 'signed' : outcome.code);
        if (outcome.signed) {
          gate.succeeded();
          bootstrapsSigned++;
          cluster.brokerKey = Promise.resolve(outcome.brokerKeySha256 ?? null);
          // An attested re-bootstrap means the operator restarted with a new key: the tunnels of the
          // earlier broker belong to a process that is gone (or going), so they end now, not at a timeout.
          if (outcome.replaced) {
            for (const tunnel of cluster.tunnels)
              tunnel.close({ code: 'CT_TUNNEL_CLOSED', reason: 'replaced by a newer attested bootstrap' });
            clusterLog.info(
              { event: 'bridge.bootstrap_replaced', closedTunnels: cluster.tunnels.size },
              'attested re-bootstrap replaced the earlier broker',
            );
          }
          // The broker dials the operational room next: be there without waiting for the next poll.
          cluster.initialized = true;
          reconcile(cluster);
        } else {
          // A refusal is a handshake that gave nothing: repeated ones are paced like failures.
          gate.failed();
          bootstrapsRefused++;
        }
        return;
      }
      // Only the broker key the latest bootstrap was signed for may hold a tunnel: after a re-arm or an attested
      // re-bootstrap, an earlier broker's still-valid certificate is refused here.
      const initializedBrokerKeySha256 = await brokerKeyOf(cluster);
      const session = await openTunnel(stream, {
        acceptPeer: (peer) => {
          if (initializedBrokerKeySha256 === null || publicKeySha256(peer) === initializedBrokerKeySha256)
            return undefined;
          // Another bridge replica may have signed a newer bootstrap: the next pairing reads the record again.
          // Only a certificate of the cluster CA gets this far, so a stranger cannot make us re-read.
          staleKey = true;
          return 'it belongs to an earlier bootstrap of this cluster (a newer broker replaced it); restart that operator';
        },
        caCertPem: trust.ca.certPem,
        certPem: trust.bridgeCertPem,
        keyPem: trust.bridgeKeyPem,
        handshakeTimeoutMs: timing.stepTimeoutMs,
        limits: options.tunnelLimits,
        handler: clusterHandler(cluster, clusterLog),
        signal: cluster.stop.signal,
        logger: clusterLog,
      });
      if (cluster.stop.signal.aborted) {
        session.mux.close({ code: 'CT_NOT_REGISTERED', reason: 'the cluster was deregistered' });
        return;
      }
      gate.succeeded();
      cluster.tunnels.add(session.mux);
      metrics?.tunnelOpened(cluster.fingerprint);
      clusterLog.info(
        { event: 'bridge.tunnel_open', tunnels: cluster.tunnels.size },
        'operational tunnel open',
      );
      // The handshake is decided: the waiter may go back to the beacon while the tunnel lives on.
      void session.mux.done.then((why) => {
        cluster.tunnels.delete(session.mux);
        metrics?.tunnelClosed(cluster.fingerprint);
        clusterLog.info(
          { event: 'bridge.tunnel_closed', code: why.code, reason: why.message },
          'operational tunnel closed',
        );
      });
    } catch (err) {
      stream.destroy();
      if (staleKey) cluster.brokerKey = undefined;
      gate.failed();
      const code = err instanceof CloudtaserError ? err.code : 'CT_INTERNAL';
      metrics?.refusal(code);
      sessionFailures.warn(
        `${cluster.fingerprint}|${room}`,
        {
          event: 'bridge.session_failed',
          fingerprintPrefix: fingerprintPrefix(cluster.fingerprint),
          room,
          code,
          reason: (err as Error).message,
          failures: gate.failures,
        },
        'session with a broker failed',
      );
    }
  }

  function dropCluster(cluster: ClusterState, reason: string, code: ErrorCode = 'CT_NOT_REGISTERED'): void {
    cluster.stop.abort();
    clusters.delete(cluster.fingerprint);
    for (const tunnel of cluster.tunnels) tunnel.close({ code, reason });
    log.info(
      { event: 'bridge.cluster_dropped', fingerprintPrefix: fingerprintPrefix(cluster.fingerprint), reason },
      'stopped serving a cluster',
    );
  }

  async function poll(): Promise<void> {
    for (const address of options.beacons) {
      try {
        const plan = await planBeaconDial(address, { resolve: options.resolve, proxy: beaconProxy });
        const known = replicas.get(address);
        const same =
          known !== undefined &&
          known.plan.reducedBecause === plan.reducedBecause &&
          known.plan.replicas.join(',') === plan.replicas.join(',');
        if (plan.reducedBecause !== undefined) {
          reportFanOut(log, plan, plan.reducedBecause);
          if (!same) replicas.set(address, { plan, refused: new Map() });
        } else if (!same) {
          // New addresses: try every one of them again.
          replicas.set(address, { plan, refused: new Map() });
        } else if (known.byName && Date.now() - (known.byNameSince ?? 0) >= FANOUT_RETRY_MS) {
          replicas.set(address, { plan, refused: new Map() });
        }
      } catch (err) {
        log.warn(
          { event: 'bridge.resolve_failed', address, reason: (err as Error).message },
          'beacon name did not resolve; keeping the last answer',
        );
      }
    }
    metrics?.keepReplicas(
      [...replicas.values()].flatMap((known) => [...known.plan.replicas, known.plan.target.host]),
    );
    let registered: RegisteredCluster[];
    try {
      registered = await listRegisteredClusters(options.openbao, { namespaceRoot });
      lastPollAt = new Date().toISOString();
      lastPollError = undefined;
      metrics?.poll('ok');
    } catch (err) {
      lastPollError = err instanceof CloudtaserError ? err.toLine() : String(err);
      metrics?.poll(err instanceof CloudtaserError ? err.code : 'CT_INTERNAL');
      log.warn(
        { event: 'bridge.poll_failed', reason: lastPollError },
        'could not list clusters; keeping the current ones',
      );
      for (const cluster of clusters.values()) reconcile(cluster);
      return;
    }
    const seen = new Set<string>();
    for (const entry of registered) {
      seen.add(entry.fingerprint);
      let cluster = clusters.get(entry.fingerprint);
      if (cluster && cluster.operationalHash !== entry.operationalHash) {
        dropCluster(cluster, 'the cluster was registered again with a new CA');
        cluster = undefined;
      }
      if (!cluster) {
        cluster = {
          fingerprint: entry.fingerprint,
          namespace: entry.namespace,
          operationalHash: entry.operationalHash,
          initialized: entry.initialized,
          migrationEnabled: entry.migrationEnabled === true,
          migrationRefusalLog: createRefusalLogGate(),
          stop: new AbortController(),
          waiters: new Map(),
          waiting: new Set(),
          tunnels: new Set(),
          gates: { init: newGate(), operational: newGate() },
        };
        clusters.set(entry.fingerprint, cluster);
        log.info(
          {
            event: 'bridge.cluster_discovered',
            fingerprintPrefix: fingerprintPrefix(entry.fingerprint),
            initialized: entry.initialized,
          },
          'serving a cluster',
        );
      }
      // A re-arm (initialized gone) or a bootstrap elsewhere changes which broker key may hold a tunnel.
      if (cluster.initialized !== entry.initialized) cluster.brokerKey = undefined;
      cluster.initialized = entry.initialized;
      cluster.migrationEnabled = entry.migrationEnabled === true;
      reconcile(cluster);
    }
    for (const cluster of [...clusters.values()]) {
      if (!seen.has(cluster.fingerprint)) dropCluster(cluster, 'the cluster was deregistered');
    }
    await tokenReview?.refresh();
  }

  function newGate(): HandshakeGate {
    return createHandshakeGate({
      initialMs: timing.handshakeBackoffInitialMs,
      maxMs: timing.handshakeBackoffMaxMs,
    });
  }

  let polling: Promise<void> = poll();
  await polling;
  const pollLoop = (async () => {
    while (!stop.signal.aborted) {
      await sleep(timing.pollIntervalMs, stop.signal);
      if (stop.signal.aborted) break;
      polling = poll();
      await polling;
    }
  })();

  return {
    status,
    tunnels(fingerprint) {
      const selected = fingerprint
        ? [clusters.get(fingerprint)].filter((c) => c !== undefined)
        : [...clusters.values()];
      return selected.flatMap((c) => [...c.tunnels]);
    },
    async pollNow() {
      await polling;
      polling = poll();
      await polling;
    },
    healthUrl: health?.url,
    tokenReviewUrl: tokenReview?.url,
    async close() {
      if (stop.signal.aborted) return;
      stop.abort();
      await pollLoop;
      await polling.catch(() => undefined);
      for (const cluster of [...clusters.values()])
        dropCluster(cluster, 'the bridge is shutting down', 'CT_TUNNEL_CLOSED');
      sessionFailures.close();
      beaconFailures.close();
      await tokenReview?.close();
      await health?.close();
      await forwarder.close();
    },
  };
}

/** Times a pod request forwarded to OpenBao; a 5xx from OpenBao (or the forwarder's own 502/503) is a failure. */
async function observePodForward(metrics: BridgeMetrics, reply: Promise<TunnelReply>): Promise<TunnelReply> {
  const started = performance.now();
  const answer = await reply;
  const outcome = answer.status >= 500 ? `http_${answer.status}` : 'ok';
  metrics.openbaoRequest('pods', outcome, (performance.now() - started) / 1000);
  return answer;
}

/** Counts a migration write by the code the bridge answered with (`accepted` for a 2xx). */
async function observeMigration(metrics: BridgeMetrics, reply: Promise<TunnelReply> | TunnelReply) {
  const answer = await reply;
  if (answer.status < 300) metrics.migration('accepted');
  else {
    let code = 'CT_INTERNAL';
    try {
      const body = answer.body ?? '';
      const text = typeof body === 'string' ? body : Buffer.from(body).toString('utf8');
      code = String(JSON.parse(text).code ?? code);
    } catch {}
    metrics.migration(code);
  }
  return answer;
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** SHA-256 of a certificate's SubjectPublicKeyInfo, as recorded for the broker key at bootstrap. */
function publicKeySha256(certificate: X509Certificate): string {
  return createHash('sha256')
    .update(certificate.publicKey.export({ format: 'der', type: 'spki' }))
    .digest('hex');
}
