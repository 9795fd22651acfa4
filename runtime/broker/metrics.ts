/**
 * The broker's Prometheus metrics (`cloudtaser_broker_*`), served as `/metrics` on its probe port. One broker
 * serves one cluster, so no label names the cluster; none names a pod, a path or a token either: a pod API
 * request is labelled by its allow-list route, a beacon replica by its address, a failure by its CT_ code.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { createProcessRegistry, REQUEST_SECONDS_BUCKETS } from '../core/metrics.js';
import type { MigrationOutcome, MigrationStatus } from '../migration/migrator.js';
import { POD_API_LIMIT_KINDS } from '../podapi/defaults.js';

/** Every phase `/status` can report, so each one has a series (0 or 1) from the first scrape on. */
const PHASES = [
  'starting',
  'bootstrapping',
  'rejected',
  'connecting',
  'operational',
  'reconnecting',
  'stopped',
] as const;

/** What the gauges read at scrape time. */
export interface BrokerMetricsSource {
  phase(): string;
  tunnelUp(): boolean;
  migration(): MigrationStatus | undefined;
}

/** How the webhook answered one AdmissionReview. */
export type AdmissionOutcome = 'mutated' | 'allowed' | 'refused' | 'invalid';

export interface BrokerMetrics {
  readonly registry: Registry;
  track(source: BrokerMetricsSource): void;
  tunnelOpened(): void;
  /** The tunnel closed with this CT_ code. */
  tunnelClosed(code: string): void;
  /** One attempt to move the tunnel (the bridge asked): `moved`, or the CT_ code it failed with (it retries). */
  tunnelMove(outcome: string): void;
  /** `signed`, or the CT_ code the bootstrap failed with once paired (a refusal carries the bridge's code). */
  bootstrap(outcome: string): void;
  /** One dial of one beacon replica: `waiting`, `paired`, or the CT_ code it failed with. */
  beaconDial(replica: string, result: string): void;
  podApiRequest(route: string, status: number, seconds: number): void;
  /** A pod API bound refused a pod (a connection closed or a request answered 503/408), by the bound's kind. */
  podApiLimit(limit: string): void;
  /** One TokenReview or namespace read the bridge asked this broker to make, by kind and HTTP status. */
  tokenReview(kind: 'review' | 'namespace', status: number): void;
  admission(outcome: AdmissionOutcome, reason?: string): void;
  migration(outcome: MigrationOutcome, code?: string): void;
  refusal(code: string): void;
  /**
   * The certificate in use expires at `notAfter` (set at a bootstrap or renewal); `outcome` counts a renewal
   * attempt: `renewed`, or the CT_ code it failed with (undefined: a bootstrap, no attempt).
   */
  certificate(notAfter: Date | undefined, outcome: string | undefined): void;
}

export interface BrokerMetricsOptions {
  /** Also export the Node process metrics (`cloudtaser_broker_process_*`, `cloudtaser_broker_nodejs_*`). @default true */
  readonly processMetrics?: boolean;
  /** A beacon replica not dialed for this long leaves the replica series. @default 900000 (15 min) */
  readonly replicaForgetMs?: number;
  /** Clock for that (tests). @default performance.now */
  readonly now?: () => number;
}

const REPLICA_FORGET_MS = 15 * 60_000;

export function createBrokerMetrics(options: BrokerMetricsOptions = {}): BrokerMetrics {
  const registry = createProcessRegistry('cloudtaser_broker_', options.processMetrics ?? true);
  let source: BrokerMetricsSource | undefined;
  /** Per beacon replica: its last dial's result (1 reached, 0 failed), when, and the results its dials counted. */
  const replicas = new Map<string, { up: number | undefined; at: number; readonly results: Set<string> }>();
  const now = options.now ?? (() => performance.now());
  const forgetAfterMs = options.replicaForgetMs ?? REPLICA_FORGET_MS;
  /**
   * A replica not dialed for forgetAfterMs is forgotten: the broker dials only while it has no tunnel, so an old 0
   * is no news (a replica that left DNS while the broker was operational kept its alert firing until a restart),
   * and every beacon pod address ever dialed stayed a series.
   */
  const forgetStaleReplicas = () => {
    const cutoff = now() - forgetAfterMs;
    for (const [replica, entry] of replicas) {
      if (entry.at >= cutoff) continue;
      replicas.delete(replica);
      for (const result of entry.results) beaconDials.remove({ replica, result });
    }
  };

  new Gauge({
    name: 'cloudtaser_broker_phase',
    help: 'The phase /status reports: 1 for the current one, 0 for the others',
    labelNames: ['phase'],
    registers: [registry],
    collect() {
      const current = source?.phase() ?? 'starting';
      for (const phase of PHASES) this.set({ phase }, phase === current ? 1 : 0);
    },
  });
  new Gauge({
    name: 'cloudtaser_broker_tunnel_up',
    help: 'Whether the operational tunnel to the bridge is up (1) or not (0)',
    registers: [registry],
    collect() {
      this.set(source?.tunnelUp() ? 1 : 0);
    },
  });
  const tunnelOpens = new Counter({
    name: 'cloudtaser_broker_tunnel_opens_total',
    help: 'Operational tunnels opened with the bridge (each reconnect opens one)',
    registers: [registry],
  });
  const tunnelCloses = new Counter({
    name: 'cloudtaser_broker_tunnel_closes_total',
    help: 'Operational tunnels that closed, by the CT_ code they closed with',
    labelNames: ['code'],
    registers: [registry],
  });
  const tunnelMoves = new Counter({
    name: 'cloudtaser_broker_tunnel_moves_total',
    help: 'Attempts to move the tunnel when the bridge asked (a beacon replica or bridge replica going away): moved, or the CT_ code of an attempt that failed (the old tunnel serves on, the broker tries again)',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const bootstraps = new Counter({
    name: 'cloudtaser_broker_bootstraps_total',
    help: 'Bootstraps in the init room once paired: signed, or the CT_ code it failed with (a refusal: the code the bridge gave)',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const beaconDials = new Counter({
    name: 'cloudtaser_broker_beacon_dials_total',
    help: 'Dials of one beacon replica: result waiting (reached the room), paired, or the CT_ code of the failure',
    labelNames: ['replica', 'result'],
    registers: [registry],
    collect() {
      forgetStaleReplicas();
    },
  });
  new Gauge({
    name: 'cloudtaser_broker_beacon_replica_up',
    help: 'Whether the last dial of a beacon replica reached it (1) or failed (0)',
    labelNames: ['replica'],
    registers: [registry],
    collect() {
      forgetStaleReplicas();
      this.reset();
      for (const [replica, entry] of replicas) if (entry.up !== undefined) this.set({ replica }, entry.up);
    },
  });
  const podApiRequests = new Counter({
    name: 'cloudtaser_broker_podapi_requests_total',
    help: 'Pod API requests by allow-list route (refused: not on it) and the HTTP status the pod got',
    labelNames: ['route', 'status'],
    registers: [registry],
  });
  // By kind only: the pod's address is in the log line, never a label (one series per pod would grow without bound).
  const podApiLimits = new Counter({
    name: 'cloudtaser_broker_podapi_limit_refusals_total',
    help: 'Pods refused by a pod API bound (connections, address_connections, address_requests, body_budget, address_body_budget, body_timeout, body_size); the podapi.limit log line names the pod address',
    labelNames: ['limit'],
    registers: [registry],
  });
  // Every kind from the start at 0, so increase() sees the first refusal of each.
  for (const limit of POD_API_LIMIT_KINDS) podApiLimits.inc({ limit }, 0);
  const podApiSeconds = new Histogram({
    name: 'cloudtaser_broker_podapi_request_duration_seconds',
    help: 'Time from a pod API request to its answer, through the tunnel and OpenBao, by route',
    labelNames: ['route'],
    buckets: [...REQUEST_SECONDS_BUCKETS],
    registers: [registry],
  });
  const tokenReviews = new Counter({
    name: 'cloudtaser_broker_tokenreviews_total',
    help: "TokenReviews (kind review) and namespace reads (kind namespace) the bridge forwarded for OpenBao's Kubernetes auth, by the API server's status",
    labelNames: ['kind', 'status'],
    registers: [registry],
  });
  const admissions = new Counter({
    name: 'cloudtaser_broker_webhook_admissions_total',
    help: 'AdmissionReviews answered: mutated, allowed (not ours to change), refused (with the reason) or invalid',
    labelNames: ['outcome', 'reason'],
    registers: [registry],
  });
  const migrations = new Counter({
    name: 'cloudtaser_broker_migration_secrets_total',
    help: 'Annotated Secrets handled by migration: migrated, conflict, skipped, failed or refused',
    labelNames: ['result'],
    registers: [registry],
  });
  new Gauge({
    name: 'cloudtaser_broker_migration_state',
    help: 'Migration as /status reports it (waiting, active, refused): 1 for the current state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.reset();
      const current = source?.migration()?.state;
      if (current === undefined) return;
      for (const state of ['waiting', 'active', 'refused']) this.set({ state }, state === current ? 1 : 0);
    },
  });
  const refusals = new Counter({
    name: 'cloudtaser_broker_refusals_total',
    help: 'Refusals this broker met or made (bootstrap, CA pin, migration, webhook), by CT_ code',
    labelNames: ['code'],
    registers: [registry],
  });

  const certificateNotAfter = new Gauge({
    name: 'cloudtaser_broker_certificate_not_after_seconds',
    help: "When the broker's tunnel certificate expires (Unix seconds); alert on it minus time() (renewed 90 days ahead)",
    registers: [registry],
  });
  const renewals = new Counter({
    name: 'cloudtaser_broker_certificate_renewals_total',
    help: 'Renewals of the broker certificate through the tunnel: renewed, or the CT_ code the attempt failed with',
    labelNames: ['outcome'],
    registers: [registry],
  });

  return {
    registry,
    track(next) {
      source = next;
    },
    tunnelOpened: () => tunnelOpens.inc(),
    tunnelClosed: (code) => tunnelCloses.inc({ code }),
    tunnelMove: (outcome) => tunnelMoves.inc({ outcome }),
    bootstrap(outcome) {
      bootstraps.inc({ outcome });
      if (outcome !== 'signed') refusals.inc({ code: outcome });
    },
    beaconDial(replica, result) {
      beaconDials.inc({ replica, result });
      const entry = replicas.get(replica) ?? { up: undefined, at: now(), results: new Set<string>() };
      entry.results.add(result);
      entry.at = now();
      // A cancelled dial (another replica paired first) says nothing about reachability.
      if (result !== 'CT_CANCELLED') entry.up = result === 'waiting' || result === 'paired' ? 1 : 0;
      replicas.set(replica, entry);
    },
    podApiRequest(route, status, seconds) {
      podApiRequests.inc({ route, status: String(status) });
      podApiSeconds.observe({ route }, seconds);
    },
    podApiLimit: (limit) => podApiLimits.inc({ limit }),
    tokenReview: (kind, status) => tokenReviews.inc({ kind, status: String(status) }),
    admission(outcome, reason) {
      admissions.inc({ outcome, reason: reason ?? '' });
      if (outcome === 'refused') refusals.inc({ code: 'CT_WEBHOOK_REFUSED' });
    },
    migration(outcome, code) {
      migrations.inc({ result: outcome.result });
      if (outcome.result === 'refused' && code) refusals.inc({ code });
    },
    refusal: (code) => refusals.inc({ code }),
    certificate(notAfter, outcome) {
      if (notAfter) certificateNotAfter.set(Math.floor(notAfter.getTime() / 1000));
      if (outcome !== undefined) renewals.inc({ outcome });
    },
  };
}
