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
import { type BeaconTarget, logBeaconRoutes, waitForPeer, withPriority } from '../beacon/index.js';
import { jitteredInterval } from '../core/backoff.js';
import { CloudtaserError, type ErrorCode } from '../core/errors.js';
import { fingerprintPrefix, hashPrefix, initHash, redactIdentifiers } from '../core/hashes.js';
import { type LinkedSignal, linkSignal } from '../core/linked-signal.js';
import { type Logger, moduleLogger } from '../core/log.js';
import { createLogSummarizer } from '../core/log-summary.js';
import { isMigrationRequest, serveMigration } from '../migration/bridge-side.js';
import type { TokenLoginState } from '../openbao/index.js';
import { CANCELLED_STATUS, createOpenBaoForwarder } from '../podapi/forward.js';
import { OPENBAO_TUNNEL_PREFIX } from '../podapi/protocol.js';
import { type ProxyEndpoint, proxySettingFromEnvironment } from '../proxy/index.js';
import {
  type ClusterTrust,
  DEFAULT_NAMESPACE_ROOT,
  getClusterStatus,
  loadClusterTrust,
  MAX_JOURNAL_ENTRIES,
  type RegisteredCluster,
} from '../registration/index.js';
import {
  createBackoff,
  type HealthServer,
  INNER_TLS_MIN_VERSION,
  sleep,
  startHealthServer,
  type TunnelHandler,
  type TunnelMux,
  type TunnelReply,
} from '../tunnel/index.js';
import { askToMove } from '../tunnel/move.js';
import { isCertificateRenewRequest } from '../tunnel/renew.js';
import { openTunnel } from '../tunnel/session.js';
import { peerLeftHandshake } from '../tunnel/tls.js';
import { createBeaconReplicaSet, type ReplicaTarget } from './beacon-replicas.js';
import { serveBootstrap } from './bootstrap.js';
import { withUsableBridgeCertificate } from './bridge-certificate.js';
import { createClusterDiscovery, type DiscoveryPoll } from './discovery.js';
import { createHandshakeGate, type HandshakeGate } from './handshake-gate.js';
import type { BridgeMetrics } from './metrics.js';
import {
  type BridgeHandle,
  type BridgeOptions,
  type BridgeStatus,
  type BridgeTiming,
  type BridgeTunnelBroker,
  DEFAULT_BEACON_DIAL_CONCURRENCY,
  DEFAULT_BRIDGE_TIMING,
} from './options.js';
import { beaconRefusalFix, bootstrapRefusalFix } from './refusal-fix.js';
import { serveCertificateRenewal } from './renewal.js';
import { type ShardMembership, startShardMembership } from './shards.js';
import { type BridgeTokenReview, peerAddressOf, startBridgeTokenReview } from './tokenreview-service.js';

// The surface (options, status, handle) lives in options.ts; importers of bridge.js keep finding it here.
export * from './options.js';

interface ClusterState {
  readonly fingerprint: string;
  readonly namespace: string;
  readonly operationalHash: string;
  initialized: boolean;
  /** The operational room's TLS context, built once from `trust` (dropped with it). */
  tunnelContext?: { readonly trust: ClusterTrust; readonly context: SecureContext };
  /**
   * The broker key the latest bootstrap was signed for (from discovery, from our own signing, or read again when
   * a CA-signed peer does not match it): the only one the operational room accepts, so a broker replaced by an
   * attested re-bootstrap cannot come back. Undefined: none recorded (after a re-arm), any CA-signed broker.
   */
  brokerKeySha256?: string;
  /** The last bootstrap refused, for /status and source doctor; cleared by a signed bootstrap or a tunnel. */
  lastBootstrapRefusal?: { readonly code: string; readonly at: string; readonly why?: string };
  /** When a newer bootstrap last replaced a live broker's tunnel, for /status and source doctor. */
  lastTunnelReplacedAt?: string;
  /** The broker key behind each live tunnel, to end those a newer bootstrap replaced (and for /status). */
  readonly tunnelKeys: Map<TunnelMux, string>;
  /** When each live tunnel opened, for /status. */
  readonly tunnelOpenedAt: Map<TunnelMux, string>;
  /** The beacon replica each live tunnel runs through, to move those of a replica that drains. */
  readonly tunnelReplicas: Map<TunnelMux, string>;
  /** The registration's migration setting, refreshed at every poll. */
  migrationEnabled: boolean;
  /** One migration-refusal log line per code per minute for this cluster. */
  readonly stop: AbortController;
  readonly waiters: Map<string, LinkedSignal>;
  /** Waiters that have reached the beacon's `waiting` state. */
  readonly waiting: Set<string>;
  readonly tunnels: Set<TunnelMux>;
  /** The CA and bridge certificate, read once and kept in memory (refreshed at the poll after trustRefreshMs). */
  trust?: Promise<ClusterTrust>;
  trustLoadedAt?: number;
  readonly gates: Record<Room, HandshakeGate>;
  /** When this replica last signed a renewal of the cluster's broker certificate (performance.now()). */
  readonly renewalSignedAt: { value: number };
}

type Room = 'init' | 'operational';

/** The shortest pause between polls while the discovery journal moves fast (see nextPollDelay). */
const BUSY_POLL_MIN_MS = 250;

export async function startBridge(options: BridgeOptions): Promise<BridgeHandle> {
  if (options.beacons.length === 0)
    throw new CloudtaserError('CT_INVALID_ARGUMENT', 'the bridge needs at least one --beacon address');
  const timing: BridgeTiming = { ...DEFAULT_BRIDGE_TIMING, ...definedOnly(options.timing ?? {}) };
  const namespaceRoot = options.namespaceRoot ?? DEFAULT_NAMESPACE_ROOT;
  const log = moduleLogger(options.logger, 'bridge');
  const beaconProxy = options.beaconProxy ?? proxySettingFromEnvironment();
  logBeaconRoutes(log, options.beacons, beaconProxy);
  const stop = new AbortController();
  /** After SIGTERM (drain): not ready, still serving until close. */
  let draining = false;
  /** Tunnels whose broker was asked to move already (one ask per tunnel, however many notices arrive). */
  const movesAsked = new WeakSet<TunnelMux>();
  /**
   * Clusters handed to another replica whose tunnels are still moving or closing (`settled` once all are closed):
   * their brokers serve on them until the next tunnel is up, so TokenReviews and a deregistration still find them
   * here, and close() waits for them.
   */
  const handedOff = new Map<string, { readonly cluster: ClusterState; readonly settled: Promise<void> }>();
  const clusters = new Map<string, ClusterState>();
  /** Every registered cluster, as of the last poll; with sharding this replica serves some of them. */
  let registered: ReadonlyMap<string, RegisteredCluster> = new Map();
  let shards: ShardMembership | undefined;
  const serves = (fingerprint: string) => shards?.serves(fingerprint) ?? true;
  /** Last good resolution per beacon address (kept when DNS fails so waiters survive a DNS blip), circuits, admissions. */
  const replicas = createBeaconReplicaSet({
    beacons: options.beacons,
    resolve: options.resolve,
    proxy: beaconProxy,
    dialConcurrency: options.beaconDialConcurrency ?? DEFAULT_BEACON_DIAL_CONCURRENCY,
    backoffInitialMs: timing.backoffInitialMs,
    backoffMaxMs: timing.backoffMaxMs,
    log,
  });
  let lastPollAt: string | undefined;
  let journalBusy = false;
  let lastPolledAt = performance.now();
  let lastPollError: string | undefined;
  let pollFailingSince: string | undefined;
  const pollFailures = createLogSummarizer(log, { summaryEvent: 'bridge.poll_failures_summary' });
  let bootstrapsSigned = 0;
  let bootstrapsRefused = 0;
  let beaconIdentityError: string | undefined;
  // A flood makes one failure per pairing; one line per room and minute says so, with counts.
  const sessionFailures = createLogSummarizer(log, { summaryEvent: 'bridge.session_failures_summary' });
  const beaconFailures = createLogSummarizer(log, { summaryEvent: 'bridge.beacon_failures_summary' });
  const migrationRefusals = createLogSummarizer(log, {
    summaryEvent: 'bridge.migration_refusals_summary',
  });

  // Served on the health port: fingerprints and room hashes appear only as prefixes, whatever an error said.
  const status = (): BridgeStatus => ({
    clusters: [...clusters.values()].map((c) => ({
      fingerprintPrefix: fingerprintPrefix(c.fingerprint),
      initialized: c.initialized,
      waiting: c.waiting.size,
      tunnels: c.tunnels.size,
      failedHandshakes: c.gates.operational.failures,
      ...(c.lastBootstrapRefusal ? { lastBootstrapRefusal: c.lastBootstrapRefusal } : {}),
      ...(c.lastTunnelReplacedAt ? { lastTunnelReplacedAt: c.lastTunnelReplacedAt } : {}),
      tunnelBrokers: tunnelBrokersOf(c),
    })),
    lastPollAt,
    lastPollError: lastPollError === undefined ? undefined : redactIdentifiers(lastPollError),
    discoveryGeneration: discovery.generation,
    bootstrapsSigned,
    bootstrapsRefused,
    ...(beaconIdentityError ? { beaconIdentityError: redactIdentifiers(beaconIdentityError) } : {}),
    ...(shards ? { shards: shards.status() } : {}),
    ...(options.openbaoLogin ? { openbaoLogin: redactedLogin(options.openbaoLogin()) } : {}),
    // Read only after start-up (the health server and callers come later), when `tokenReview` is assigned.
    ...(tokenReview ? { tokenReview: { cachedReviewers: tokenReview.cachedReviewers() } } : {}),
  });

  /** Which broker key holds each open tunnel: what source doctor needs to tell two brokers of a cluster apart. */
  const tunnelBrokersOf = (c: ClusterState): BridgeTunnelBroker[] =>
    [...c.tunnels]
      .filter((tunnel) => !tunnel.closed && c.tunnelKeys.has(tunnel))
      .map((tunnel) => ({
        brokerKeySha256: c.tunnelKeys.get(tunnel)!,
        since: c.tunnelOpenedAt.get(tunnel) ?? '?',
        ...(c.tunnelReplicas.has(tunnel) ? { beaconIp: c.tunnelReplicas.get(tunnel) } : {}),
      }));

  const metrics = options.metrics;
  metrics?.track({
    clusters: () =>
      [...clusters.values()].map((c) => ({
        fingerprint: c.fingerprint,
        initialized: c.initialized,
        tunnels: [...c.tunnels].filter((t) => !t.closed).length,
      })),
    fleet: () => registered.values(),
    shards: () => {
      const now = shards?.status();
      return now && { held: now.held.length, members: now.members, failing: now.lastError !== undefined };
    },
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
    forwardedFor: options.openbaoForwardedFor,
    logger: log,
  });

  /**
   * Live tunnel for one cluster: the newest one that is not closing, when a reconnect or a move briefly overlaps
   * the old; else the newest open one. A tunnel still moving off to the replica that took the cluster's shard
   * counts (older than any tunnel the cluster has here again): its broker serves on it until the next is up.
   */
  const tunnelFor = (fingerprint: string): TunnelMux | undefined => {
    const open = [
      ...(handedOff.get(fingerprint)?.cluster.tunnels ?? []),
      ...(clusters.get(fingerprint)?.tunnels ?? []),
    ].filter((t) => !t.closed);
    return open.findLast((t) => !t.draining) ?? open[open.length - 1];
  };

  /** What one cluster's broker may ask of this bridge through its tunnel. */
  const clusterHandler =
    (cluster: ClusterState, clusterLog: Logger, tunnelKeySha256: () => string | undefined): TunnelHandler =>
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
          // One line per cluster and code per minute; the rest fold into a summary line.
          refusalLog: {
            warn: (code, fields, message) =>
              migrationRefusals.warn(
                `${cluster.fingerprint}|${code}`,
                { ...fields, fingerprintPrefix: fingerprintPrefix(cluster.fingerprint) },
                message,
              ),
          },
        });
        return metrics ? observeMigration(metrics, migrated) : migrated;
      }
      if (isCertificateRenewRequest(request))
        return serveCertificateRenewal(request, {
          tunnelKeySha256: tunnelKeySha256(),
          recordedKeySha256: () => cluster.brokerKeySha256,
          trust: () => trustOf(cluster),
          days: timing.brokerCertificateDays,
          lastSignedAt: cluster.renewalSignedAt,
          minIntervalMs: timing.renewalMinIntervalMs,
          logger: clusterLog,
        }).then(({ reply, outcome }) => {
          metrics?.certificateRenewal(outcome);
          return reply;
        });
      if (options.handler) return options.handler(request, context);
      return { status: 404, headers: { 'content-type': 'text/plain' }, body: 'not found' };
    };

  const tokenReview: BridgeTokenReview | undefined = options.tokenReview
    ? await startBridgeTokenReview({
        listener: options.tokenReview,
        openbao: options.openbao,
        namespaceRoot,
        // Every registered cluster, not only those this replica serves: with sharding, OpenBao's review reaches
        // any replica, and one without the tunnel must still check the credential before asking its peers.
        namespaceOf: (fingerprint) =>
          clusters.get(fingerprint)?.namespace ?? registered.get(fingerprint)?.namespace,
        tunnelFor,
        resolve: options.resolve,
        // With sharding, a review that lands here without the tunnel asks the shard's holders, not every replica.
        holdersOf: (fingerprint) => shards?.holderAddresses(fingerprint),
        observe: metrics ? (outcome) => metrics.tokenReview(outcome) : undefined,
        logger: log,
      })
    : undefined;

  /**
   * A later start step that fails closes what the earlier ones opened, then fails the start: a bridge whose health
   * port was taken printed its fatal line and kept running, holding the TokenReview port and its OpenBao
   * connections, so the next start failed on that port too (an outside docs drill).
   */
  const unwindStart = async (err: unknown, opened: Array<{ close(): Promise<void> } | undefined>) => {
    for (const resource of [...opened, tokenReview, forwarder])
      await resource?.close().catch(() => undefined);
    throw err;
  };

  const health: HealthServer | undefined = options.health
    ? await startHealthServer({
        host: options.health.host,
        port: options.health.port,
        status,
        // Not before one poll worked: a replica that started while OpenBao was away knows no cluster and no
        // reviewer credential yet, so the Service sends OpenBao's TokenReviews to another replica. Once
        // it has, a later outage leaves it ready: it keeps its tunnels and what it knows.
        ready: () => !stop.signal.aborted && !draining && lastPollAt !== undefined,
        metrics: metrics?.registry,
        logger: log,
      }).catch((err: unknown) => unwindStart(err, []))
    : undefined;

  function roomsOf(cluster: ClusterState): Room[] {
    return cluster.initialized ? ['init', 'operational'] : ['init'];
  }

  /** Starts missing waiters and stops unwanted ones for one cluster. */
  function reconcile(cluster: ClusterState): void {
    // Closing: no new tunnels (the waiters were stopped), the open ones drain.
    if (cluster.stop.signal.aborted || stop.signal.aborted) return;
    if (
      cluster.trustLoadedAt !== undefined &&
      performance.now() - cluster.trustLoadedAt > timing.trustRefreshMs
    ) {
      // Read again at the next pairing: a re-run of `register` may have renewed the bridge certificate.
      cluster.trust = undefined;
      cluster.trustLoadedAt = undefined;
    }
    const wanted = new Map<string, ReplicaTarget & { room: Room }>();
    for (const room of roomsOf(cluster))
      for (const place of replicas.targets())
        wanted.set(`${room}|${place.address}|${place.ip}`, { ...place, room });
    for (const [key, controller] of cluster.waiters) {
      if (!wanted.has(key)) {
        controller.abort();
        cluster.waiters.delete(key);
        cluster.waiting.delete(key);
      }
    }
    for (const [key, spec] of wanted) {
      if (cluster.waiters.has(key)) continue;
      const waiter = linkSignal([cluster.stop.signal]);
      cluster.waiters.set(key, waiter);
      void waitLoop(cluster, key, spec, waiter.signal).finally(waiter.dispose);
    }
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
    const circuit = replicas.circuitFor(ip);
    while (!signal.aborted) {
      await gate.ready(signal);
      if (signal.aborted) break;
      // While the replica is unreachable one waiter probes it and the rest wait here for it to get through.
      const pass = await circuit.beforeDial(signal);
      if (signal.aborted) {
        pass.done();
        break;
      }
      let reachedWaiting = false;
      // Its time limit is the refresh, jittered over the second half of the period: waiters started together must
      // not all refresh together.
      const attempt = linkSignal(
        [signal],
        timing.waitRefreshMs - jitteredInterval(Math.floor(timing.waitRefreshMs / 2)),
      );
      try {
        const stream = await waitForPeer({
          target,
          ip,
          role: 'bridge',
          hash,
          caCertPem: options.beaconCaPem,
          proxy: spec.proxy,
          clientCertificate: options.beaconIdentity?.current(),
          // Operational rooms first: that is where brokers are redialing after a replica restart.
          admission: withPriority(replicas.admissionFor(ip), room === 'operational' ? 0 : 1),
          signal: attempt.signal,
          onWaiting: () => {
            reachedWaiting = true;
            pass.reached();
            metrics?.beaconDial(ip, 'waiting');
            beaconIdentityError = undefined;
            cluster.waiting.add(key);
            replicas.reached(spec.address, ip);
            replicas.waitingAgain(ip);
            // A broker now has somewhere to go: tunnels still running through a draining replica move here.
            if (room === 'operational') moveTunnelsOffDrainingReplicas(cluster);
          },
        });
        pass.reached();
        cluster.waiting.delete(key);
        backoff.reset();
        metrics?.beaconDial(ip, 'paired');
        const observed = options.observePairedStream ? options.observePairedStream(stream, room) : stream;
        // Anyone can pair with us in the operational room: a line per pairing would be theirs to multiply.
        log.debug({ event: 'bridge.paired', room, hashPrefix: hashPrefix(hash), beaconIp: ip }, 'paired');
        // One handshake per room at a time: the waiter goes back to the beacon only when this one is decided.
        await handlePaired(cluster, room, observed, ip);
      } catch (err) {
        cluster.waiting.delete(key);
        if (signal.aborted) break;
        const error = err as CloudtaserError;
        if (error.code === 'CT_PROXY_REFUSED' && replicas.proxyRefused(spec.address, ip, error))
          for (const each of clusters.values()) reconcile(each);
        // Unreachable: the circuit paces the next attempt (one probe for all waiters on this replica). A beacon
        // that answered (a bound, a refusal) is reachable: this waiter backs off on its own, from a fresh start
        // when the wait it had was ended, since every waiter on that replica ended at the same moment.
        // A draining replica is paced like an unreachable one: one probe finds out when it is back (a new process at
        // the same address), and the other waiters of this replica wait for that instead of dialing it.
        const drainingReplica = error.code === 'CT_BEACON_DRAINING';
        if (drainingReplica) replicaDraining(ip, Number(error.details.retryAfterMs ?? 0));
        const unreachable = error.code === 'CT_BEACON_UNREACHABLE' || drainingReplica;
        if (unreachable) pass.unreachable();
        else if (error.code !== 'CT_CANCELLED') pass.reached();
        if (reachedWaiting) backoff.reset();
        if (!reachedWaiting && !attempt.timedOut && error.code !== 'CT_CANCELLED')
          metrics?.beaconDial(ip, error.code ?? 'CT_INTERNAL');
        const delay = attempt.timedOut || unreachable ? 0 : backoff.next();
        if (error.code === 'CT_BEACON_UNAUTHENTICATED' || error.code === 'CT_BEACON_IDENTITY')
          beaconIdentityError = error.message;
        // A dial our own refresh cancelled (queued in the admission during a storm) is not a failure to report.
        if (
          !reachedWaiting &&
          error.code !== 'CT_CANCELLED' &&
          !drainingReplica &&
          (!unreachable || pass.probe)
        )
          beaconFailures.warn(
            `${ip}|${error.code}`,
            {
              event: 'bridge.beacon_failed',
              code: error.code,
              beaconIp: ip,
              delayMs: delay,
              probe: pass.probe,
              reason: error.message,
            },
            error.code === 'CT_BEACON_UNAUTHENTICATED'
              ? `the beacon refused this bridge: ${beaconRefusalFix(error.message)}`
              : 'beacon dial failed',
          );
        await sleep(delay, signal);
      } finally {
        pass.done();
        attempt.dispose();
      }
    }
    cluster.waiting.delete(key);
  }

  /** The cluster's CA and bridge certificate from memory; read from OpenBao on first use and after a refresh. */
  function trustOf(cluster: ClusterState): Promise<ClusterTrust> {
    if (!cluster.trust) {
      const loading = loadClusterTrust(options.openbao, { namespace: cluster.namespace }).then((stored) => {
        const usable = withUsableBridgeCertificate(stored);
        if (usable.storedNotAfter)
          log.info(
            {
              event: 'bridge.client_certificate_minted',
              fingerprintPrefix: fingerprintPrefix(cluster.fingerprint),
              storedNotAfter: usable.storedNotAfter,
            },
            'the stored bridge certificate for this cluster expires within 30 days (nobody ran register since): using one minted in memory from the cluster CA; running register again renews the stored one',
          );
        return usable.trust;
      });
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

  /** Records the broker key the latest bootstrap was signed for; tunnels of any other key end now. */
  function setBrokerKey(cluster: ClusterState, brokerKeySha256: string | undefined): void {
    const replaced = brokerKeySha256 !== undefined && brokerKeySha256 !== cluster.brokerKeySha256;
    cluster.brokerKeySha256 = brokerKeySha256;
    if (replaced) endReplacedTunnels(cluster);
  }

  /**
   * A broker of the cluster CA presented a key we do not hold as the latest: read the initialization record once
   * (another replica may have signed a bootstrap our next poll would report), so the new broker need not wait.
   */
  function rereadBrokerKey(cluster: ClusterState, clusterLog: Logger): void {
    void getClusterStatus(options.openbao, { fingerprint: cluster.fingerprint, namespaceRoot }).then(
      (status) => {
        if (!cluster.stop.signal.aborted && status.initializedBrokerKeySha256 !== undefined)
          setBrokerKey(cluster, status.initializedBrokerKeySha256);
      },
      (err) =>
        clusterLog.warn(
          { event: 'bridge.broker_key_read_failed', reason: (err as Error).message },
          'could not read which broker key the latest bootstrap recorded; the next poll will tell',
        ),
    );
  }

  /**
   * A beacon replica said it drains (a rollout, a scale-down): it pairs nothing more and cuts its relays soon. The
   * tunnels through it move now, while they still run, to replicas where a waiter of their cluster waits; a new
   * replica (its pod just became ready) is looked up at once rather than at the next poll.
   */
  function replicaDraining(ip: string, relaysCutInMs: number): void {
    if (!replicas.draining(ip, relaysCutInMs)) return;
    let through = 0;
    for (const cluster of clusters.values())
      for (const replica of cluster.tunnelReplicas.values()) if (replica === ip) through++;
    log.info(
      { event: 'bridge.beacon_draining', beaconIp: ip, relaysCutInMs, tunnels: through },
      'a beacon replica is shutting down: moving the tunnels through it to the other replicas while they still run',
    );
    for (const cluster of clusters.values()) moveTunnelsOffDrainingReplicas(cluster);
    void replicas.refresh().then(
      (moved) => {
        if (moved && !stop.signal.aborted) for (const cluster of clusters.values()) reconcile(cluster);
      },
      () => undefined,
    );
  }

  /**
   * Each tunnel through a draining replica moves, but only when its broker has somewhere to go: a waiter of this
   * cluster waiting on a replica that does not drain. The broker is asked to move (make before break): it dials
   * its next tunnel while this one serves and closes this one once the next is up, so if the replica we saw a
   * waiter on has just died, or the broker cannot reach it, this tunnel simply keeps serving. A broker before
   * 0.2.0 cannot be asked: its tunnel closes the moment nothing is in flight on it (GOAWAY CT_TUNNEL_DRAINED) and
   * it dials again, as a closing bridge's tunnels do. With no other replica (a single beacon restarting) the
   * tunnel runs until the beacon cuts it, as it would have.
   */
  function moveTunnelsOffDrainingReplicas(cluster: ClusterState): void {
    if (cluster.tunnelReplicas.size === 0) return;
    let elsewhere = false;
    for (const key of cluster.waiting) {
      const waitingIp = key.slice(key.lastIndexOf('|') + 1);
      if (key.startsWith('operational|') && replicas.drainingLeftMs(waitingIp) === 0) elsewhere = true;
    }
    if (!elsewhere) return;
    for (const [tunnel, ip] of cluster.tunnelReplicas) {
      const leftMs = replicas.drainingLeftMs(ip);
      if (leftMs === 0 || tunnel.draining || movesAsked.has(tunnel)) continue;
      movesAsked.add(tunnel);
      void askToMove(tunnel, {
        timeoutMs: timing.stepTimeoutMs,
        closeWithinMs: Math.min(timing.closeGraceMs, leftMs),
        reason: 'the beacon replica it runs through is shutting down',
      });
    }
  }

  /**
   * Closing (the bridge, or its share of a cluster): asks the tunnel's broker to move and waits up to
   * closeMoveWaitMs for it to close this tunnel itself; then (no other replica waits for its cluster, or the broker
   * predates moves) closes it once idle, within what is left of the grace.
   */
  async function moveThenClose(tunnel: TunnelMux, reason: string): Promise<void> {
    const moveWaitMs = Math.min(timing.closeMoveWaitMs, timing.closeGraceMs);
    const started = performance.now();
    const outcome = await askToMove(tunnel, {
      timeoutMs: Math.max(1, Math.min(timing.stepTimeoutMs, moveWaitMs)),
      closeWithinMs: timing.closeGraceMs,
      reason,
    });
    if (outcome !== 'moving') return;
    const moved = new AbortController();
    void tunnel.done.then(() => moved.abort());
    await sleep(moveWaitMs - (performance.now() - started), moved.signal);
    if (!tunnel.closed)
      await tunnel.closeWhenIdle(reason, Math.max(0, timing.closeGraceMs - (performance.now() - started)));
  }

  async function handlePaired(
    cluster: ClusterState,
    room: Room,
    stream: Duplex,
    beaconIp: string,
  ): Promise<void> {
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
          brokerCertificateDays: timing.brokerCertificateDays,
          signal: cluster.stop.signal,
          logger: clusterLog,
        });
        metrics?.bootstrap(cluster.fingerprint, outcome.signed ? 'signed' : outcome.code);
        if (outcome.signed) {
          gate.succeeded();
          bootstrapsSigned++;
          cluster.lastBootstrapRefusal = undefined;
          // An attested re-bootstrap means the operator restarted with a new key: the tunnels of the
          // earlier broker belong to a process that is gone (or going), so they end now, not at a timeout.
          // The broker dials the operational room next: be there without waiting for the next poll.
          cluster.initialized = true;
          if (outcome.brokerKeySha256) setBrokerKey(cluster, outcome.brokerKeySha256);
          if (outcome.replaced) {
            // setBrokerKey ended the tunnels of the earlier key with CT_BROKER_REPLACED (the broker says so, the
            // doctor sees it); one whose key was never recorded ends the same way. Before, these closed first as a
            // plain CT_TUNNEL_CLOSED, so an attested replacement on this replica was never said as one.
            const open = [...cluster.tunnels].filter((tunnel) => !tunnel.closed);
            for (const tunnel of open)
              if (cluster.tunnelKeys.get(tunnel) !== outcome.brokerKeySha256)
                tunnel.close({
                  code: 'CT_BROKER_REPLACED',
                  reason: 'replaced by a newer bootstrap of this cluster',
                });
            clusterLog.info(
              { event: 'bridge.bootstrap_replaced' },
              'attested re-bootstrap replaced the earlier broker',
            );
          }
          reconcile(cluster);
        } else {
          // A refusal is a handshake that gave nothing: repeated ones are paced like failures.
          gate.failed();
          bootstrapsRefused++;
          cluster.lastBootstrapRefusal = {
            code: outcome.code,
            at: new Date().toISOString(),
            ...(outcome.why ? { why: outcome.why } : {}),
          };
          // At warn: the cluster stays without a tunnel until someone acts (a re-arm, a registration) or OpenBao
          // answers again. Once per cluster and code a minute: anyone who knows a fingerprint can ask.
          sessionFailures.warn(
            `${cluster.fingerprint}|bootstrap|${outcome.code}`,
            {
              event: 'bridge.bootstrap_refused',
              code: outcome.code,
              fingerprintPrefix: fingerprintPrefix(cluster.fingerprint),
              ...(outcome.why ? { why: outcome.why } : {}),
              fix: bootstrapRefusalFix(outcome.code, outcome.why),
            },
            'refused a broker bootstrap',
          );
        }
        return;
      }
      // Only the broker key the latest bootstrap was signed for may hold a tunnel: after an attested re-bootstrap
      // an earlier broker's still-valid certificate is refused here. The key comes from discovery (a bootstrap on
      // another replica is seen within one poll, and its tunnels to older keys end then) and our own signing,
      // not from a read per pairing, so a reconnect storm costs OpenBao nothing.
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
          if (cluster.brokerKeySha256 === undefined || peerKey === cluster.brokerKeySha256) return undefined;
          // Another bridge replica may have signed a newer bootstrap that our next poll has not seen yet: read
          // the record once now. Only a certificate of the cluster CA gets this far, so a stranger cannot make
          // us read, and the room's handshake gate paces a broker that keeps coming back.
          staleKey = true;
          return 'it belongs to an earlier bootstrap of this cluster (a newer broker replaced it); restart that operator';
        },
        caCertPem: trust.ca.certPem,
        certPem: trust.bridgeCertPem,
        keyPem: trust.bridgeKeyPem,
        handshakeTimeoutMs: timing.stepTimeoutMs,
        limits: options.tunnelLimits,
        handler: clusterHandler(cluster, clusterLog, () => peerKey),
        signal: cluster.stop.signal,
        logger: clusterLog,
      });
      if (cluster.stop.signal.aborted) {
        session.mux.close({ code: 'CT_NOT_REGISTERED', reason: 'the cluster was deregistered' });
        return;
      }
      gate.succeeded();
      cluster.tunnels.add(session.mux);
      cluster.lastBootstrapRefusal = undefined;
      if (peerKey) cluster.tunnelKeys.set(session.mux, peerKey);
      cluster.tunnelOpenedAt.set(session.mux, new Date().toISOString());
      cluster.tunnelReplicas.set(session.mux, beaconIp);
      // Paired just before the replica said it drains (the handshake outlasted the notice): it moves as well.
      if (replicas.drainingLeftMs(beaconIp) > 0) moveTunnelsOffDrainingReplicas(cluster);
      metrics?.tunnelOpened(cluster.fingerprint);
      clusterLog.info(
        { event: 'bridge.tunnel_open', tunnels: cluster.tunnels.size },
        'operational tunnel open',
      );
      // The handshake is decided: the waiter may go back to the beacon while the tunnel lives on.
      void session.mux.done.then((why) => {
        cluster.tunnels.delete(session.mux);
        cluster.tunnelKeys.delete(session.mux);
        cluster.tunnelOpenedAt.delete(session.mux);
        cluster.tunnelReplicas.delete(session.mux);
        // A dropped cluster's series are gone (forgetCluster); its last closes must not bring them back.
        if (!cluster.stop.signal.aborted) metrics?.tunnelClosed(cluster.fingerprint);
        clusterLog.info(
          { event: 'bridge.tunnel_closed', code: why.code, reason: why.message },
          'operational tunnel closed',
        );
      });
    } catch (err) {
      stream.destroy();
      if (staleKey) rereadBrokerKey(cluster, clusterLog);
      if (peerLeftHandshake(err)) {
        // Routine with several beacon replicas: the broker paired on two at once and kept the other one.
        gate.abandoned();
        clusterLog.debug(
          { event: 'bridge.pairing_abandoned', room, beaconIp },
          'the peer left this pairing before the handshake (it kept a pairing on another replica)',
        );
        return;
      }
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

  /** A bootstrap (here or on another replica) signed for a new broker key: tunnels to older keys end now. */
  function endReplacedTunnels(cluster: ClusterState): void {
    for (const [tunnel, key] of cluster.tunnelKeys) {
      if (key === cluster.brokerKeySha256 || tunnel.closed) continue;
      // A live broker replaced is a change of trust (its key no longer counts): loud, with a code the broker
      // shows, since it is also what a takeover by someone who knows the fingerprint looks like.
      tunnel.close({ code: 'CT_BROKER_REPLACED', reason: 'replaced by a newer bootstrap of this cluster' });
      cluster.lastTunnelReplacedAt = new Date().toISOString();
      log.warn(
        {
          event: 'bridge.tunnel_replaced',
          code: 'CT_BROKER_REPLACED',
          fingerprintPrefix: fingerprintPrefix(cluster.fingerprint),
        },
        "closed the tunnel of a broker that a newer bootstrap replaced; if the cluster's operator did not restart, check in the cluster that its own broker is the operational one (cloudtaser-cli target doctor)",
      );
    }
  }

  function dropCluster(cluster: ClusterState, reason: string, code: ErrorCode = 'CT_NOT_REGISTERED'): void {
    cluster.stop.abort();
    clusters.delete(cluster.fingerprint);
    for (const tunnel of cluster.tunnels) tunnel.close({ code, reason });
    metrics?.forgetCluster(cluster.fingerprint);
    log.info(
      { event: 'bridge.cluster_dropped', fingerprintPrefix: fingerprintPrefix(cluster.fingerprint), reason },
      'stopped serving a cluster',
    );
  }

  /**
   * A cluster whose shard another replica holds now (a replica joined, or this one gave up an extra shard): stop
   * waiting for it at once, and move its tunnels as a closing bridge does (the broker opens its next tunnel to the
   * replica that waits for it now, then closes this one; what is left closes once idle), instead of cutting what
   * is in flight on them. Its trust is unchanged, unlike a deregistration's or a new CA's, which close at once.
   */
  function handOff(cluster: ClusterState): void {
    const tunnels = [...cluster.tunnels];
    cluster.stop.abort();
    clusters.delete(cluster.fingerprint);
    metrics?.forgetCluster(cluster.fingerprint);
    log.info(
      {
        event: 'bridge.cluster_handed_off',
        fingerprintPrefix: fingerprintPrefix(cluster.fingerprint),
        tunnels: tunnels.length,
      },
      "another bridge replica serves this cluster's shard now: moving its tunnels there",
    );
    if (tunnels.length === 0) return;
    // Each move ends with its tunnel closed (by the broker, or once idle here). A shard that flaps back and away
    // again before the earlier hand-off settled keeps waiting for that one too.
    const earlier = handedOff.get(cluster.fingerprint)?.settled;
    const settled = Promise.all([
      earlier,
      ...tunnels.map((tunnel) => moveThenClose(tunnel, 'another bridge replica serves its shard now')),
    ]).then(() => undefined);
    const entry = { cluster, settled };
    handedOff.set(cluster.fingerprint, entry);
    void settled.then(() => {
      if (handedOff.get(cluster.fingerprint) === entry) handedOff.delete(cluster.fingerprint);
    });
  }

  /**
   * A poll re-read a cluster whose tunnels are moving off this replica: a deregistration or a new CA ends them at
   * once, as it ends a served cluster's (a move waits for nothing in flight, trust does not wait for a move); a newer
   * bootstrap ends the tunnels of the key it replaced.
   */
  function reviewHandedOff(leaving: ClusterState, entry: RegisteredCluster | undefined): void {
    if (entry && entry.operationalHash === leaving.operationalHash) {
      setBrokerKey(leaving, entry.brokerKeySha256);
      return;
    }
    const open = [...leaving.tunnels].filter((tunnel) => !tunnel.closed);
    if (open.length === 0) return;
    const reason = entry ? 'the cluster was registered again with a new CA' : 'the cluster was deregistered';
    // Their moves then end at once (a closed tunnel has nothing to wait for) and the hand-off settles.
    for (const tunnel of open) tunnel.close({ code: 'CT_NOT_REGISTERED', reason });
    log.info(
      {
        event: 'bridge.handed_off_tunnels_closed',
        fingerprintPrefix: fingerprintPrefix(leaving.fingerprint),
        reason,
      },
      'closed the tunnels still moving to another bridge replica',
    );
  }

  /** Starts serving a registered cluster, or brings the served one up to date with its records. */
  function serveCluster(entry: RegisteredCluster, trustChanged: boolean): void {
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
        stop: new AbortController(),
        brokerKeySha256: entry.brokerKeySha256,
        waiters: new Map(),
        waiting: new Set(),
        tunnels: new Set(),
        tunnelKeys: new Map(),
        tunnelOpenedAt: new Map(),
        tunnelReplicas: new Map(),
        gates: { init: newGate(), operational: newGate() },
        renewalSignedAt: { value: Number.NEGATIVE_INFINITY },
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
    if (trustChanged) {
      cluster.trust = undefined;
      cluster.trustLoadedAt = undefined;
    }
    // Re-armed while a broker is connected: that broker bootstraps again at once and so spends the re-arm, which
    // otherwise stayed open to whoever knew the fingerprint for as long as the tunnel lasted.
    if (cluster.initialized && !entry.initialized) {
      const open = [...cluster.tunnels].filter((tunnel) => !tunnel.closed);
      for (const tunnel of open)
        tunnel.close({ code: 'CT_REARMED', reason: 'the cluster was re-armed: bootstrap again now' });
      if (open.length > 0)
        log.warn(
          {
            event: 'bridge.rearmed_while_connected',
            code: 'CT_REARMED',
            fingerprintPrefix: fingerprintPrefix(entry.fingerprint),
            tunnels: open.length,
          },
          'the cluster was re-armed while its broker was connected: asked that broker to bootstrap again now, so the re-arm does not stay open to anyone who knows the fingerprint',
        );
    }
    cluster.initialized = entry.initialized;
    cluster.migrationEnabled = entry.migrationEnabled === true;
    // The record decides, as a read per pairing would have (after a re-arm there is no key: any broker the
    // cluster CA signed may connect until the next bootstrap names one).
    setBrokerKey(cluster, entry.brokerKeySha256);
    reconcile(cluster);
  }

  /** The held shards changed: serve the clusters that moved here, stop those that moved away. */
  function reshard(): void {
    for (const cluster of [...clusters.values()]) if (!serves(cluster.fingerprint)) handOff(cluster);
    for (const entry of registered.values())
      if (serves(entry.fingerprint) && !clusters.has(entry.fingerprint)) serveCluster(entry, true);
  }

  /** The usual interval, or a tenth of it (at least BUSY_POLL_MIN_MS) while the journal moves fast (see poll). */
  function nextPollDelay(): number {
    return journalBusy
      ? Math.max(BUSY_POLL_MIN_MS, Math.floor(timing.pollIntervalMs / 10))
      : timing.pollIntervalMs;
  }

  async function poll(): Promise<void> {
    const replicasMoved = await replicas.refresh();
    metrics?.keepReplicas(replicas.knownReplicas());
    let found: DiscoveryPoll;
    try {
      found = await discovery.poll();
      lastPollAt = new Date().toISOString();
      lastPollError = undefined;
      metrics?.poll('ok');
      if (found.resynced) metrics?.discoveryListing(found.resyncReason ?? 'start');
      if (pollFailingSince !== undefined) {
        log.info(
          { event: 'bridge.poll_recovered', failingSince: pollFailingSince },
          'reading the clusters from OpenBao works again',
        );
        pollFailingSince = undefined;
      }
    } catch (err) {
      const code = err instanceof CloudtaserError ? err.code : 'CT_INTERNAL';
      lastPollError = err instanceof CloudtaserError ? err.toLine() : String(err);
      metrics?.poll(code);
      // Once per code and minute, then a summary: a sealed OpenBao must not make a line every poll interval.
      pollFailures.warn(
        code,
        { event: 'bridge.poll_failed', code, reason: lastPollError },
        'could not read the clusters from OpenBao; keeping the current ones and retrying every poll',
      );
      pollFailingSince ??= new Date().toISOString();
      if (replicasMoved) for (const cluster of clusters.values()) reconcile(cluster);
      return;
    }
    // The journal keeps MAX_JOURNAL_ENTRIES entries: a bridge that falls further behind must list every cluster.
    // When the entries of the last poll, at the rate they came, would fill half of it in a usual interval (or
    // already ran past it), poll at a tenth of the interval until they slow down.
    const polledAt = performance.now();
    const sinceLastPollMs = Math.max(BUSY_POLL_MIN_MS, polledAt - lastPolledAt);
    lastPolledAt = polledAt;
    const projectedEntries = found.followedEntries * (timing.pollIntervalMs / sinceLastPollMs);
    const busy = found.resyncReason === 'behind' || projectedEntries > MAX_JOURNAL_ENTRIES / 2;
    if (busy !== journalBusy) {
      journalBusy = busy;
      log.info(
        {
          event: journalBusy ? 'bridge.discovery_busy' : 'bridge.discovery_calm',
          followedEntries: found.followedEntries,
          nextPollMs: nextPollDelay(),
        },
        journalBusy
          ? 'the discovery journal moves fast (a burst of registrations or bootstraps): polling more often until it calms, so it does not run past this bridge'
          : 'the discovery journal is calm again: polling at the usual interval',
      );
    }
    registered = found.clusters;
    // Only what discovery re-read needs a look; the rest is as it was (a poll costs O(changes), not O(fleet)).
    for (const fingerprint of found.changed) {
      const entry = found.clusters.get(fingerprint);
      const leaving = handedOff.get(fingerprint)?.cluster;
      if (leaving) reviewHandedOff(leaving, entry);
      const cluster = clusters.get(fingerprint);
      if (!entry) {
        if (cluster) dropCluster(cluster, 'the cluster was deregistered');
        continue;
      }
      if (!serves(fingerprint)) {
        if (cluster) dropCluster(cluster, 'another bridge replica serves its shard now', 'CT_TUNNEL_CLOSED');
        continue;
      }
      serveCluster(entry, found.trustChanged.has(fingerprint));
    }
    if (replicasMoved) for (const cluster of clusters.values()) reconcile(cluster);
    // O(changes), like the loop above: a cluster re-read for any reason has its reviewer credential read afresh.
    tokenReview?.forget(found.changed);
    await tokenReview?.refresh({ registrationsChanged: found.trustChanged.size > 0 });
  }

  function newGate(): HandshakeGate {
    return createHandshakeGate({
      initialMs: timing.handshakeBackoffInitialMs,
      maxMs: timing.handshakeBackoffMaxMs,
    });
  }

  // Before the first poll, so a sharded replica never opens waiters for clusters another replica serves.
  if (options.sharding)
    shards = await startShardMembership({
      // The member Lease names where this replica's TokenReview listener is, for peers to ask it directly.
      address: options.tokenReview ? peerAddressOf(options.tokenReview) : undefined,
      ...options.sharding,
      logger: log,
      onChange: () => reshard(),
    }).catch((err: unknown) => unwindStart(err, [health]));
  let polling: Promise<void> = poll();
  await polling;
  /** The next poll, after the one running: a pollNow() and the interval's poll never overlap. */
  const pollAfterCurrent = (): Promise<void> => {
    polling = polling.catch(() => undefined).then(poll);
    return polling;
  };
  const pollLoop = (async () => {
    while (!stop.signal.aborted) {
      await sleep(nextPollDelay(), stop.signal);
      if (stop.signal.aborted) break;
      await pollAfterCurrent();
    }
  })();

  return {
    drain() {
      draining = true;
    },
    status,
    tunnels(fingerprint) {
      const selected = fingerprint
        ? [clusters.get(fingerprint)].filter((c) => c !== undefined)
        : [...clusters.values()];
      return selected.flatMap((c) => [...c.tunnels]);
    },
    async pollNow() {
      await pollAfterCurrent();
    },
    healthUrl: health?.url,
    tokenReviewUrl: tokenReview?.url,
    async close() {
      if (stop.signal.aborted) return;
      stop.abort();
      await pollLoop;
      await polling.catch(() => undefined);
      // Leases first: the replicas sharing our shards take them at once and wait in the rooms we leave now.
      await shards?.close();
      for (const cluster of clusters.values()) {
        for (const waiter of cluster.waiters.values()) waiter.abort();
        cluster.waiters.clear();
      }
      // Each broker is asked to move first: it opens its next tunnel to another replica while this one serves,
      // and closes this one itself. The rest close the moment nothing is in flight on them (GOAWAY
      // CT_TUNNEL_DRAINED: the broker resends whatever it had not had answered on its next tunnel), at the latest
      // after the grace period. Pods see no pause where another replica waits, and a slower request, not a 503,
      // where none does.
      const open = [...clusters.values()].flatMap((cluster) => [...cluster.tunnels]);
      if (open.length > 0)
        log.info(
          {
            event: 'bridge.draining_tunnels',
            tunnels: open.length,
            moveWaitMs: timing.closeMoveWaitMs,
            graceMs: timing.closeGraceMs,
          },
          'asking each broker to move to another bridge replica, then closing each tunnel left once nothing is in flight on it',
        );
      await Promise.all([
        ...open.map((tunnel) => moveThenClose(tunnel, 'the bridge is shutting down')),
        ...[...handedOff.values()].map((handed) => handed.settled),
      ]);
      for (const cluster of [...clusters.values()])
        dropCluster(cluster, 'the bridge is shutting down', 'CT_TUNNEL_CLOSED');
      sessionFailures.close();
      beaconFailures.close();
      migrationRefusals.close();
      pollFailures.close();
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
  // A request the pod cancelled says nothing about OpenBao: it stays out of the error ratio the alerts read.
  if (answer.status === CANCELLED_STATUS) return answer;
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

function redactedLogin(state: TokenLoginState): TokenLoginState {
  return state.lastError === undefined ? state : { ...state, lastError: redactIdentifiers(state.lastError) };
}
