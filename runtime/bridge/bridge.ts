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
import { createSecureContext, type SecureContext } from 'node:tls';
import {
  type BeaconTarget,
  createDialAdmission,
  createReplicaCircuit,
  type DialAdmission,
  type ReplicaCircuit,
  resolveBeacon,
  waitForPeer,
} from '../beacon/index.js';
import { jitteredInterval } from '../core/backoff.js';
import { CloudtaserError, type ErrorCode } from '../core/errors.js';
import { fingerprintPrefix, hashPrefix, initHash } from '../core/hashes.js';
import { type Logger, moduleLogger } from '../core/log.js';
import { isMigrationRequest, serveMigration } from '../migration/bridge-side.js';
import type { OpenBaoClient } from '../openbao/index.js';
import { createOpenBaoForwarder } from '../podapi/forward.js';
import { OPENBAO_TUNNEL_PREFIX } from '../podapi/protocol.js';
import { type ClusterTrust, DEFAULT_NAMESPACE_ROOT, loadClusterTrust } from '../registration/index.js';
import {
  createBackoff,
  type HealthServer,
  INNER_TLS_MIN_VERSION,
  type RelayPartyOptions,
  sleep,
  startHealthServer,
  type TunnelHandler,
  type TunnelMux,
} from '../tunnel/index.js';
import { openTunnel } from '../tunnel/session.js';
import { serveBootstrap } from './bootstrap.js';
import { createClusterDiscovery, DEFAULT_DISCOVERY_RESYNC_MS, type DiscoveryPoll } from './discovery.js';
import { startTokenReviewServer, type TokenReviewServer } from './tokenreview.js';

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
  /**
   * Every this long the bridge lists all clusters even though the discovery journal says nothing changed
   * (anti-entropy against writers that do not journal); 0 = never. @default 21600000 (6 h)
   */
  readonly discoveryResyncMs: number;
}

export const DEFAULT_BRIDGE_TIMING: BridgeTiming = Object.freeze({
  pollIntervalMs: 10_000,
  stepTimeoutMs: 10_000,
  backoffInitialMs: 500,
  backoffMaxMs: 30_000,
  waitRefreshMs: 60_000,
  discoveryResyncMs: DEFAULT_DISCOVERY_RESYNC_MS,
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
   * Serve the per-cluster TokenReview endpoint OpenBao's Kubernetes auth calls
   * (`/clusters/<fingerprint>/apis/authentication.k8s.io/v1/tokenreviews`). @default off
   */
  readonly tokenReview?: {
    readonly host?: string;
    readonly port: number;
    readonly tls?: { readonly certPem: string; readonly keyPem: string };
  };
  readonly observePairedStream?: (stream: Duplex, room: 'init' | 'operational') => Duplex;
  /**
   * Waiting connections opening at once towards one beacon replica (connect, outer TLS, announce). Keep it
   * below the beacon's `--max-pending-per-address` (64 by default). @default 32
   */
  readonly beaconDialConcurrency?: number;
  readonly logger?: Logger;
}

/** Longest pause between two probes of an unreachable beacon replica. */
const CIRCUIT_PROBE_MAX_MS = 2_000;

/** Below the beacon's default `maxPendingPerAddress` (64), so a redial burst is never refused for its size. */
export const DEFAULT_BEACON_DIAL_CONCURRENCY = 32;

export interface BridgeClusterStatus {
  readonly fingerprintPrefix: string;
  readonly initialized: boolean;
  /** Waiting connections (rooms x beacon replicas). */
  readonly waiting: number;
  readonly tunnels: number;
}

export interface BridgeStatus {
  readonly clusters: BridgeClusterStatus[];
  readonly lastPollAt?: string;
  readonly lastPollError?: string;
  /** Discovery journal generation the cluster list is current with. */
  readonly discoveryGeneration?: number;
  readonly bootstrapsSigned: number;
  readonly bootstrapsRefused: number;
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
  /** The CA and bridge certificate, loaded once per registration; dropped when discovery reports a change. */
  trust?: Promise<ClusterTrust>;
  /** The operational room's TLS context, built once from `trust` (dropped with it). */
  tunnelContext?: { readonly trust: ClusterTrust; readonly context: SecureContext };
  /**
   * The broker key the latest bootstrap was signed for (from discovery, or from our own signing): the only one
   * the operational room accepts, so a broker replaced by an attested re-bootstrap cannot come back.
   */
  brokerKeySha256?: string;
  /** The broker key behind each live tunnel, to end those a newer bootstrap replaced. */
  readonly tunnelKeys: Map<TunnelMux, string>;
  readonly stop: AbortController;
  readonly waiters: Map<string, AbortController>;
  /** Waiters that have reached the beacon's `waiting` state. */
  readonly waiting: Set<string>;
  readonly tunnels: Set<TunnelMux>;
}

type Room = 'init' | 'operational';

export async function startBridge(options: BridgeOptions): Promise<BridgeHandle> {
  if (options.beacons.length === 0)
    throw new CloudtaserError('CT_INVALID_ARGUMENT', 'the bridge needs at least one --beacon address');
  const timing: BridgeTiming = { ...DEFAULT_BRIDGE_TIMING, ...definedOnly(options.timing ?? {}) };
  const namespaceRoot = options.namespaceRoot ?? DEFAULT_NAMESPACE_ROOT;
  const log = moduleLogger(options.logger, 'bridge');
  const stop = new AbortController();
  const clusters = new Map<string, ClusterState>();
  /** Last good resolution per beacon address; kept when DNS fails so waiters survive a DNS blip. */
  const replicas = new Map<string, { target: BeaconTarget; ips: string[] }>();
  let lastPollAt: string | undefined;
  let lastPollError: string | undefined;
  let bootstrapsSigned = 0;
  let bootstrapsRefused = 0;

  const status = (): BridgeStatus => ({
    clusters: [...clusters.values()].map((c) => ({
      fingerprintPrefix: fingerprintPrefix(c.fingerprint),
      initialized: c.initialized,
      waiting: c.waiting.size,
      tunnels: c.tunnels.size,
    })),
    lastPollAt,
    lastPollError,
    discoveryGeneration: discovery.generation,
    bootstrapsSigned,
    bootstrapsRefused,
  });

  const discovery = createClusterDiscovery({
    openbao: options.openbao,
    namespaceRoot,
    resyncIntervalMs: timing.discoveryResyncMs,
    logger: log,
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
      if (request.path.startsWith(OPENBAO_TUNNEL_PREFIX))
        return forwarder.forward(cluster.namespace, request, context.signal);
      if (isMigrationRequest(request))
        return serveMigration(options.openbao.withNamespace(cluster.namespace), request, clusterLog);
      if (options.handler) return options.handler(request, context);
      return { status: 404, headers: { 'content-type': 'text/plain' }, body: 'not found' };
    };

  const tokenReview: TokenReviewServer | undefined = options.tokenReview
    ? await startTokenReviewServer({ ...options.tokenReview, tunnelFor, logger: log })
    : undefined;

  const health: HealthServer | undefined = options.health
    ? await startHealthServer({
        host: options.health.host,
        port: options.health.port,
        status,
        ready: () => !stop.signal.aborted,
        logger: log,
      })
    : undefined;

  /** Per beacon replica: one prober while it is unreachable, everyone back at once when it answers again. */
  const circuits = new Map<string, ReplicaCircuit>();
  function circuitFor(ip: string): ReplicaCircuit {
    let circuit = circuits.get(ip);
    if (!circuit) {
      circuit = createReplicaCircuit({
        initialMs: timing.backoffInitialMs,
        // One dial per replica, so it can afford to look often: the waiters return soon after the replica does.
        maxMs: Math.min(timing.backoffMaxMs, CIRCUIT_PROBE_MAX_MS),
      });
      circuits.set(ip, circuit);
    }
    return circuit;
  }

  /** One admission per beacon replica: bounds the dials opening at once towards it (reconnect storms). */
  const admissions = new Map<string, DialAdmission>();
  function admissionFor(ip: string): DialAdmission {
    let admission = admissions.get(ip);
    if (!admission) {
      admission = createDialAdmission(options.beaconDialConcurrency ?? DEFAULT_BEACON_DIAL_CONCURRENCY);
      admissions.set(ip, admission);
    }
    return admission;
  }

  function roomsOf(cluster: ClusterState): Room[] {
    return cluster.initialized ? ['init', 'operational'] : ['init'];
  }

  /** Starts missing waiters and stops unwanted ones for one cluster. */
  function reconcile(cluster: ClusterState): void {
    if (cluster.stop.signal.aborted) return;
    const wanted = new Map<string, { room: Room; address: string; target: BeaconTarget; ip: string }>();
    for (const room of roomsOf(cluster)) {
      for (const [address, resolved] of replicas) {
        for (const ip of resolved.ips)
          wanted.set(`${room}|${address}|${ip}`, { room, address, target: resolved.target, ip });
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
      void waitLoop(
        cluster,
        key,
        spec.room,
        spec.target,
        spec.ip,
        AbortSignal.any([controller.signal, cluster.stop.signal]),
      );
    }
  }

  async function waitLoop(
    cluster: ClusterState,
    key: string,
    room: Room,
    target: BeaconTarget,
    ip: string,
    signal: AbortSignal,
  ): Promise<void> {
    const backoff = createBackoff({ initialMs: timing.backoffInitialMs, maxMs: timing.backoffMaxMs });
    const hash = room === 'init' ? initHash(cluster.fingerprint) : cluster.operationalHash;
    const circuit = circuitFor(ip);
    while (!signal.aborted) {
      // While the replica is unreachable one waiter probes it and the rest wait here for it to get through.
      const pass = await circuit.beforeDial(signal);
      if (signal.aborted) {
        pass.done();
        break;
      }
      let reachedWaiting = false;
      const refresh = new AbortController();
      // Jittered over the second half of the period: waiters started together must not all refresh together.
      const refreshTimer = setTimeout(
        () => refresh.abort(),
        timing.waitRefreshMs - jitteredInterval(Math.floor(timing.waitRefreshMs / 2)),
      );
      try {
        const stream = await waitForPeer({
          target,
          ip,
          role: 'bridge',
          hash,
          caCertPem: options.beaconCaPem,
          admission: admissionFor(ip),
          signal: AbortSignal.any([signal, refresh.signal]),
          onWaiting: () => {
            reachedWaiting = true;
            pass.reached();
            cluster.waiting.add(key);
          },
        });
        pass.reached();
        cluster.waiting.delete(key);
        backoff.reset();
        const observed = options.observePairedStream ? options.observePairedStream(stream, room) : stream;
        log.info({ event: 'bridge.paired', room, hashPrefix: hashPrefix(hash), beaconIp: ip }, 'paired');
        void handlePaired(cluster, room, observed);
      } catch (err) {
        cluster.waiting.delete(key);
        if (signal.aborted) break;
        const error = err as CloudtaserError;
        // Unreachable: the circuit paces the next attempt (one probe for all waiters on this replica). A beacon
        // that answered (a bound, a refusal) is reachable: this waiter backs off on its own, from a fresh start
        // when the wait it had was ended, since every waiter on that replica ended at the same moment.
        const unreachable = error.code === 'CT_BEACON_UNREACHABLE';
        if (unreachable) pass.unreachable();
        else if (error.code !== 'CT_CANCELLED') pass.reached();
        if (reachedWaiting) backoff.reset();
        const delay = refresh.signal.aborted || unreachable ? 0 : backoff.next();
        if (!reachedWaiting && (!unreachable || pass.probe))
          log.warn(
            {
              event: 'bridge.beacon_failed',
              code: error.code,
              beaconIp: ip,
              delayMs: delay,
              probe: pass.probe,
              reason: error.message,
            },
            'beacon dial failed',
          );
        await sleep(delay, signal);
      } finally {
        pass.done();
        clearTimeout(refreshTimer);
      }
    }
    cluster.waiting.delete(key);
  }

  async function handlePaired(cluster: ClusterState, room: Room, stream: Duplex): Promise<void> {
    const clusterLog = log.child({ fingerprintPrefix: fingerprintPrefix(cluster.fingerprint) });
    try {
      cluster.trust ??= loadClusterTrust(options.openbao, { namespace: cluster.namespace });
      const trust = await cluster.trust.catch((err) => {
        cluster.trust = undefined;
        throw err;
      });
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
        if (outcome.signed) {
          bootstrapsSigned++;
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
          if (outcome.brokerKeySha256) cluster.brokerKeySha256 = outcome.brokerKeySha256;
          reconcile(cluster);
        } else {
          bootstrapsRefused++;
        }
        return;
      }
      // Only the broker key the latest bootstrap was signed for may hold a tunnel: after an attested re-bootstrap
      // an earlier broker's still-valid certificate is refused here. The key comes from discovery (a bootstrap on
      // another replica is seen within one poll, and its tunnels to older keys end then), not from a read per
      // pairing, so a reconnect storm costs OpenBao nothing.
      let peerKey: string | undefined;
      if (cluster.tunnelContext?.trust !== trust) {
        cluster.tunnelContext = {
          trust,
          context: createSecureContext({
            cert: trust.bridgeCertPem,
            key: trust.bridgeKeyPem,
            ca: [trust.ca.certPem],
            minVersion: INNER_TLS_MIN_VERSION,
          }),
        };
      }
      const session = await openTunnel(stream, {
        secureContext: cluster.tunnelContext.context,
        caCertificate: trust.ca.certificate,
        acceptPeer: (peer) => {
          peerKey = publicKeySha256(peer);
          return cluster.brokerKeySha256 === undefined || peerKey === cluster.brokerKeySha256
            ? undefined
            : 'it belongs to an earlier bootstrap of this cluster (a newer broker replaced it); restart that operator';
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
      cluster.tunnels.add(session.mux);
      if (peerKey) cluster.tunnelKeys.set(session.mux, peerKey);
      clusterLog.info(
        { event: 'bridge.tunnel_open', tunnels: cluster.tunnels.size },
        'operational tunnel open',
      );
      const why = await session.mux.done;
      cluster.tunnels.delete(session.mux);
      cluster.tunnelKeys.delete(session.mux);
      clusterLog.info(
        { event: 'bridge.tunnel_closed', code: why.code, reason: why.message },
        'operational tunnel closed',
      );
    } catch (err) {
      stream.destroy();
      const code = err instanceof CloudtaserError ? err.code : 'CT_INTERNAL';
      clusterLog.warn(
        { event: 'bridge.session_failed', room, code, reason: (err as Error).message },
        'session with a broker failed',
      );
    }
  }

  /** A bootstrap (here or on another replica) signed for a new broker key: tunnels to older keys end now. */
  function endReplacedTunnels(cluster: ClusterState): void {
    for (const [tunnel, key] of cluster.tunnelKeys) {
      if (key === cluster.brokerKeySha256) continue;
      tunnel.close({ code: 'CT_TUNNEL_CLOSED', reason: 'replaced by a newer bootstrap of this cluster' });
      log.info(
        { event: 'bridge.tunnel_replaced', fingerprintPrefix: fingerprintPrefix(cluster.fingerprint) },
        'closed the tunnel of a broker that a newer bootstrap replaced',
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
    let replicasMoved = false;
    for (const address of options.beacons) {
      try {
        const resolved = await resolveBeacon(address, options.resolve);
        const before = replicas.get(address);
        replicasMoved ||= before === undefined || sameSet(before.ips, resolved.ips) === false;
        replicas.set(address, resolved);
      } catch (err) {
        log.warn(
          { event: 'bridge.resolve_failed', address, reason: (err as Error).message },
          'beacon name did not resolve; keeping the last answer',
        );
      }
    }
    let found: DiscoveryPoll;
    try {
      found = await discovery.poll();
      lastPollAt = new Date().toISOString();
      lastPollError = undefined;
    } catch (err) {
      lastPollError = err instanceof CloudtaserError ? err.toLine() : String(err);
      log.warn(
        { event: 'bridge.poll_failed', reason: lastPollError },
        'could not read the clusters; keeping the current ones',
      );
      if (replicasMoved) for (const cluster of clusters.values()) reconcile(cluster);
      return;
    }
    // Only what discovery re-read needs a look; the rest is as it was (a poll costs O(changes), not O(fleet)).
    for (const fingerprint of found.changed) {
      const entry = found.clusters.get(fingerprint);
      let cluster = clusters.get(fingerprint);
      if (!entry) {
        if (cluster) dropCluster(cluster, 'the cluster was deregistered');
        continue;
      }
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
          stop: new AbortController(),
          brokerKeySha256: entry.brokerKeySha256,
          waiters: new Map(),
          waiting: new Set(),
          tunnels: new Set(),
          tunnelKeys: new Map(),
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
      // A registration may have renewed the bridge certificate: load it again at the next pairing.
      if (found.trustChanged.has(fingerprint)) cluster.trust = undefined;
      cluster.initialized = entry.initialized;
      // The record decides, as a read per pairing would have (after a re-arm there is no key: any broker the
      // cluster CA signed may connect until the next bootstrap names one).
      const replaced =
        entry.brokerKeySha256 !== undefined && entry.brokerKeySha256 !== cluster.brokerKeySha256;
      cluster.brokerKeySha256 = entry.brokerKeySha256;
      if (replaced) endReplacedTunnels(cluster);
      reconcile(cluster);
    }
    if (replicasMoved) for (const cluster of clusters.values()) reconcile(cluster);
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
      await tokenReview?.close();
      await health?.close();
      await forwarder.close();
    },
  };
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((item) => b.includes(item));
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
