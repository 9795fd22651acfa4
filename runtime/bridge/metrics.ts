/**
 * The bridge's Prometheus metrics (`cloudtaser_bridge_*`), served as `/metrics` on its probe port. Labels stay
 * cheap for a fleet of thousands: a cluster appears only as its 8-character fingerprint prefix (`cluster`), a
 * beacon replica as its address (`replica`), a failure as its CT_ code; never a pod, a path or a token.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { fingerprintPrefix } from '../core/hashes.js';
import { createProcessRegistry, REQUEST_SECONDS_BUCKETS } from '../core/metrics.js';
import type { OpenBaoRequestObserver } from '../openbao/index.js';

/** What the gauges read at scrape time: the clusters the bridge serves, as it knows them now. */
export interface BridgeMetricsSource {
  clusters(): Iterable<{
    readonly fingerprint: string;
    readonly initialized: boolean;
    readonly tunnels: number;
  }>;
  /** With sharding: the shards this replica holds, the live replicas, and whether the last Lease round failed. */
  shards?(): { readonly held: number; readonly members: number; readonly failing: boolean } | undefined;
  /** Every registered cluster as discovery last saw it, served here or not (the whole fleet, sharded or not). */
  fleet?(): Iterable<{ readonly initialized: boolean }>;
}

/** Where an OpenBao request came from: the bridge's own work, or a pod's request forwarded for a cluster. */
export type OpenBaoRequestSource = 'bridge' | 'pods';

export interface BridgeMetrics {
  readonly registry: Registry;
  /** Gives the gauges their source; the bridge calls it once it runs. */
  track(source: BridgeMetricsSource): void;
  tunnelOpened(fingerprint: string): void;
  tunnelClosed(fingerprint: string): void;
  /** `signed`, or the CT_ code the bootstrap was refused with. */
  bootstrap(fingerprint: string, outcome: string): void;
  /**
   * Drops the per-cluster series of a cluster this replica no longer serves (deregistered, or moved to another
   * replica's shard): without it a fleet with churn grows every scrape for as long as the process lives.
   */
  forgetCluster(fingerprint: string): void;
  /** One dial of one beacon replica: `waiting`, `paired`, or the CT_ code it failed with. */
  beaconDial(replica: string, result: string): void;
  /** Forget replicas no longer in DNS, so the reachability gauge does not keep a dead address forever. */
  keepReplicas(replicas: Iterable<string>): void;
  /** One TokenReview (or namespace read) OpenBao asked the bridge for, by how it was answered. */
  tokenReview(outcome: string): void;
  openbaoRequest(source: OpenBaoRequestSource, outcome: string, seconds: number): void;
  /** The OpenBao client's observer for the bridge's own requests. */
  readonly openbaoObserver: OpenBaoRequestObserver;
  /** One migration write a broker asked for: `accepted` or the CT_ code it was refused with. */
  migration(outcome: string): void;
  /** One discovery poll of OpenBao: `ok` or the CT_ code it failed with. */
  poll(outcome: string): void;
  /**
   * A poll that listed every registered cluster (two OpenBao reads per cluster), and why: `start`, `behind` (the
   * journal ran past this bridge), `interval`, `epoch`, `rewritten`, `no-journal`, `newer-journal`.
   */
  discoveryListing(reason: string): void;
  /** Anything the bridge refused a peer, by CT_ code. */
  refusal(code: string): void;
  /** One broker certificate renewal asked through a tunnel: `renewed`, `refused`, `too_soon`, `unavailable`. */
  certificateRenewal(outcome: string): void;
}

export interface BridgeMetricsOptions {
  /** Also export the Node process metrics (`cloudtaser_bridge_process_*`, `cloudtaser_bridge_nodejs_*`). @default true */
  readonly processMetrics?: boolean;
}

/** Counts clusters by whether their bootstrap is done, into a gauge's `state` label (initialized / registered). */
function setByBootstrapState(
  gauge: Gauge<'state'>,
  clusters: Iterable<{ readonly initialized: boolean }>,
): void {
  let initialized = 0;
  let registered = 0;
  for (const cluster of clusters) {
    if (cluster.initialized) initialized++;
    else registered++;
  }
  gauge.set({ state: 'initialized' }, initialized);
  gauge.set({ state: 'registered' }, registered);
}

export function createBridgeMetrics(options: BridgeMetricsOptions = {}): BridgeMetrics {
  const registry = createProcessRegistry('cloudtaser_bridge_', options.processMetrics ?? true);
  let source: BridgeMetricsSource | undefined;
  const replicaUp = new Map<string, number>();
  /** Label values each per-cluster and per-replica counter was given, so their series can be removed. */
  const bootstrapOutcomes = new Map<string, Set<string>>();
  const dialResults = new Map<string, Set<string>>();
  /** The replicas DNS last gave (keepReplicas); a dial to another one that ends later is not counted. */
  let currentReplicas: Set<string> | undefined;

  new Gauge({
    name: 'cloudtaser_bridge_clusters',
    help: 'Registered clusters this bridge serves, by whether their bootstrap is done',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      setByBootstrapState(this, source?.clusters() ?? []);
    },
  });
  new Gauge({
    name: 'cloudtaser_bridge_fleet_clusters',
    help: "Registered clusters in OpenBao as this replica's discovery last saw them, by whether their bootstrap is done: the whole fleet on every replica, sharded or not (cloudtaser_bridge_clusters counts those this replica serves)",
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const fleet = source?.fleet?.();
      if (fleet) setByBootstrapState(this, fleet);
    },
  });
  new Gauge({
    name: 'cloudtaser_bridge_shards',
    help: 'With sharding: shards this replica holds a Lease for (held), live bridge replicas (members), and 1 while the last Lease round failed (round_failing)',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      this.reset();
      const shards = source?.shards?.();
      if (!shards) return;
      this.set({ kind: 'held' }, shards.held);
      this.set({ kind: 'members' }, shards.members);
      this.set({ kind: 'round_failing' }, shards.failing ? 1 : 0);
    },
  });
  new Gauge({
    name: 'cloudtaser_bridge_tunnel_up',
    help: 'Whether an initialized cluster has a live operational tunnel to this bridge replica (1) or not (0)',
    labelNames: ['cluster'],
    registers: [registry],
    collect() {
      this.reset();
      for (const cluster of source?.clusters() ?? []) {
        if (cluster.initialized)
          this.set({ cluster: fingerprintPrefix(cluster.fingerprint) }, cluster.tunnels > 0 ? 1 : 0);
      }
    },
  });
  const tunnelOpens = new Counter({
    name: 'cloudtaser_bridge_tunnel_opens_total',
    help: 'Operational tunnels opened with a cluster broker (each reconnect opens one)',
    labelNames: ['cluster'],
    registers: [registry],
  });
  const tunnelCloses = new Counter({
    name: 'cloudtaser_bridge_tunnel_closes_total',
    help: 'Operational tunnels that closed',
    labelNames: ['cluster'],
    registers: [registry],
  });
  const bootstraps = new Counter({
    name: 'cloudtaser_bridge_bootstraps_total',
    help: 'Bootstraps answered in the init room: outcome signed, or the CT_ code of the refusal',
    labelNames: ['cluster', 'outcome'],
    registers: [registry],
  });
  const beaconDials = new Counter({
    name: 'cloudtaser_bridge_beacon_dials_total',
    help: 'Dials of one beacon replica: result waiting (reached the room), paired, or the CT_ code of the failure',
    labelNames: ['replica', 'result'],
    registers: [registry],
  });
  new Gauge({
    name: 'cloudtaser_bridge_beacon_replica_up',
    help: 'Whether the last dial of a beacon replica reached it (1) or failed (0)',
    labelNames: ['replica'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [replica, up] of replicaUp) this.set({ replica }, up);
    },
  });
  const tokenReviews = new Counter({
    name: 'cloudtaser_bridge_tokenreviews_total',
    help: "OpenBao's TokenReviews and namespace reads served for clusters, by outcome (relayed, forwarded, no_tunnel, unauthorized, tunnel_failed, invalid)",
    labelNames: ['outcome'],
    registers: [registry],
  });
  const openbaoRequests = new Counter({
    name: 'cloudtaser_bridge_openbao_requests_total',
    help: 'Requests to OpenBao by source (bridge: its own; pods: forwarded pod API requests) and outcome (ok, a CT_ code, or http_<status> for a pod request OpenBao failed)',
    labelNames: ['source', 'outcome'],
    registers: [registry],
  });
  const openbaoSeconds = new Histogram({
    name: 'cloudtaser_bridge_openbao_request_duration_seconds',
    help: 'Time OpenBao took to answer, retries included, by source',
    labelNames: ['source'],
    buckets: [...REQUEST_SECONDS_BUCKETS],
    registers: [registry],
  });
  const migrations = new Counter({
    name: 'cloudtaser_bridge_migration_requests_total',
    help: 'Secret migration writes brokers asked for: accepted, or the CT_ code of the refusal',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const polls = new Counter({
    name: 'cloudtaser_bridge_polls_total',
    help: 'Discovery polls of OpenBao for registered clusters: ok, or the CT_ code of the failure',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const listings = new Counter({
    name: 'cloudtaser_bridge_discovery_listings_total',
    help: 'Discovery polls that listed every registered cluster (2 OpenBao reads per cluster), by reason',
    labelNames: ['reason'],
    registers: [registry],
  });
  const refusals = new Counter({
    name: 'cloudtaser_bridge_refusals_total',
    help: 'Everything the bridge refused a peer (bootstraps, handshakes, migrations, TokenReviews), by CT_ code',
    labelNames: ['code'],
    registers: [registry],
  });

  const renewals = new Counter({
    name: 'cloudtaser_bridge_certificate_renewals_total',
    help: 'Broker certificate renewals asked through a tunnel, by outcome (renewed, refused, too_soon, unavailable)',
    labelNames: ['outcome'],
    registers: [registry],
  });

  const openbaoRequest = (source: OpenBaoRequestSource, outcome: string, seconds: number) => {
    openbaoRequests.inc({ source, outcome });
    openbaoSeconds.observe({ source }, seconds);
  };
  return {
    registry,
    track(next) {
      source = next;
    },
    tunnelOpened: (fingerprint) => tunnelOpens.inc({ cluster: fingerprintPrefix(fingerprint) }),
    tunnelClosed: (fingerprint) => tunnelCloses.inc({ cluster: fingerprintPrefix(fingerprint) }),
    certificateRenewal(outcome) {
      renewals.inc({ outcome });
      if (outcome === 'refused') refusals.inc({ code: 'CT_RENEWAL_REFUSED' });
    },
    bootstrap(fingerprint, outcome) {
      const cluster = fingerprintPrefix(fingerprint);
      bootstraps.inc({ cluster, outcome });
      remember(bootstrapOutcomes, cluster, outcome);
      if (outcome !== 'signed') refusals.inc({ code: outcome });
    },
    forgetCluster(fingerprint) {
      const cluster = fingerprintPrefix(fingerprint);
      // Series are labelled by prefix: another served cluster sharing it keeps them.
      for (const served of source?.clusters() ?? [])
        if (served.fingerprint !== fingerprint && fingerprintPrefix(served.fingerprint) === cluster) return;
      tunnelOpens.remove({ cluster });
      tunnelCloses.remove({ cluster });
      for (const outcome of bootstrapOutcomes.get(cluster) ?? []) bootstraps.remove({ cluster, outcome });
      bootstrapOutcomes.delete(cluster);
    },
    beaconDial(replica, result) {
      if (currentReplicas && !currentReplicas.has(replica)) return;
      beaconDials.inc({ replica, result });
      remember(dialResults, replica, result);
      // A dial the caller cancelled says nothing about the replica.
      if (result !== 'CT_CANCELLED')
        replicaUp.set(replica, result === 'waiting' || result === 'paired' ? 1 : 0);
    },
    keepReplicas(replicas) {
      const keep = new Set(replicas);
      currentReplicas = keep;
      for (const replica of replicaUp.keys()) if (!keep.has(replica)) replicaUp.delete(replica);
      for (const [replica, results] of dialResults) {
        if (keep.has(replica)) continue;
        for (const result of results) beaconDials.remove({ replica, result });
        dialResults.delete(replica);
      }
    },
    tokenReview: (outcome) => tokenReviews.inc({ outcome }),
    openbaoRequest,
    openbaoObserver: (event) => openbaoRequest('bridge', event.outcome, event.seconds),
    migration(outcome) {
      migrations.inc({ outcome });
      if (outcome !== 'accepted') refusals.inc({ code: outcome });
    },
    poll: (outcome) => polls.inc({ outcome }),
    discoveryListing: (reason) => listings.inc({ reason }),
    refusal: (code) => refusals.inc({ code }),
  };
}

/** Adds `value` to the set kept under `key`. */
function remember(sets: Map<string, Set<string>>, key: string, value: string): void {
  const set = sets.get(key);
  if (set) set.add(value);
  else sets.set(key, new Set([value]));
}
