/**
 * What a bridge knows about the beacon replicas it waits on: for each configured beacon address, the replica
 * addresses from the last good resolution (kept through a DNS blip), the ones a proxy refused, and whether it
 * falls back to dialling the name through the proxy; per replica, the circuit that paces probes while it is
 * unreachable and the admission that bounds dials opening at once. The bridge asks it which (address, replica)
 * pairs a cluster's rooms should wait on, and tells it what the dials learned.
 */
import {
  type BeaconDialPlan,
  type BeaconTarget,
  createDialAdmission,
  createReplicaCircuit,
  type DialAdmission,
  everyReplicaRefused,
  planBeaconDial,
  type ReplicaCircuit,
  reportFanOut,
} from '../beacon/index.js';
import type { CloudtaserError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { ProxyEndpoint, ProxySetting } from '../proxy/index.js';

/** Longest pause between two probes of an unreachable beacon replica. */
const CIRCUIT_PROBE_MAX_MS = 2_000;

/** How long the bridge dials a beacon by name before it tries every replica address through the proxy again. */
const FANOUT_RETRY_MS = 5 * 60_000;

/** One place to wait: a beacon address as configured, one of its replicas (or its name), and the route there. */
export interface ReplicaTarget {
  readonly address: string;
  readonly target: BeaconTarget;
  readonly ip: string;
  readonly proxy?: ProxyEndpoint;
}

/** What the bridge knows about one beacon address: the plan from the last good resolution, and its fan-out. */
interface KnownAddress {
  readonly plan: BeaconDialPlan;
  /** Replica addresses the proxy refused (CT_PROXY_REFUSED), with the refusal. */
  readonly refused: Map<string, CloudtaserError>;
  /** Set while the address is dialled by name through the proxy: why. */
  byName?: string;
  /** When dialling by name began; every FANOUT_RETRY_MS the addresses are tried again. */
  byNameSince?: number;
}

export interface BeaconReplicaSetOptions {
  readonly beacons: readonly string[];
  readonly resolve?: (host: string) => Promise<string[]>;
  readonly proxy: ProxySetting;
  /** Dials opening at once towards one replica. */
  readonly dialConcurrency: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly log: Logger;
}

export interface BeaconReplicaSet {
  /** Resolves every beacon address again; true when the places to wait changed (waiters must follow). */
  refresh(): Promise<boolean>;
  /** Every (address, replica) a room should wait on now. */
  targets(): ReplicaTarget[];
  /** Every replica address and name known, for the metrics to keep. */
  knownReplicas(): string[];
  circuitFor(ip: string): ReplicaCircuit;
  admissionFor(ip: string): DialAdmission;
  /** The proxy refused one replica; true when that made the address fall back to its name (waiters must follow). */
  proxyRefused(address: string, ip: string, error: CloudtaserError): boolean;
  /** A dial through the proxy reached a replica: it is no longer counted as refused. */
  reached(address: string, ip: string): void;
  /**
   * The replica said it drains (`draining`): it ends the relays it carries within `relaysCutInMs`. True the first
   * time it says so, when its tunnels should move.
   */
  draining(ip: string, relaysCutInMs: number): boolean;
  /** How long the relays through a draining replica still run; 0 when it is not draining. */
  drainingLeftMs(ip: string): number;
  /** A wait reached the replica again (a new process at that address): it no longer drains. */
  waitingAgain(ip: string): void;
}

export function createBeaconReplicaSet(options: BeaconReplicaSetOptions): BeaconReplicaSet {
  const { log } = options;
  const known = new Map<string, KnownAddress>();
  const circuits = new Map<string, ReplicaCircuit>();
  const admissions = new Map<string, DialAdmission>();
  /** Draining replicas: when their relays are cut (performance.now() time). */
  const drainingUntil = new Map<string, number>();

  return {
    async refresh() {
      let moved = false;
      for (const address of options.beacons) {
        try {
          const plan = await planBeaconDial(address, { resolve: options.resolve, proxy: options.proxy });
          const before = known.get(address);
          const same =
            before !== undefined &&
            before.plan.reducedBecause === plan.reducedBecause &&
            before.plan.replicas.join(',') === plan.replicas.join(',');
          if (plan.reducedBecause !== undefined) {
            reportFanOut(log, plan, plan.reducedBecause);
            if (!same) {
              known.set(address, { plan, refused: new Map() });
              moved = true;
            }
          } else if (!same) {
            // New addresses: try every one of them again.
            known.set(address, { plan, refused: new Map() });
            moved = true;
          } else if (before.byName && Date.now() - (before.byNameSince ?? 0) >= FANOUT_RETRY_MS) {
            known.set(address, { plan, refused: new Map() });
            moved = true;
          }
        } catch (err) {
          log.warn(
            { event: 'bridge.resolve_failed', address, reason: (err as Error).message },
            'beacon name did not resolve; keeping the last answer',
          );
        }
      }
      if (moved) {
        // Pacing state of replicas DNS no longer gives (a rollout, a rescheduled pod) goes with them: kept, it grew
        // with every beacon pod IP the bridge ever waited on. Their waiters are stopped by the reconcile that follows.
        const current = new Set(this.knownReplicas());
        for (const ip of [...circuits.keys()]) if (!current.has(ip)) circuits.delete(ip);
        for (const ip of [...admissions.keys()]) if (!current.has(ip)) admissions.delete(ip);
      }
      const now = performance.now();
      for (const [ip, until] of drainingUntil) if (until <= now) drainingUntil.delete(ip);
      return moved;
    },

    targets() {
      const targets: ReplicaTarget[] = [];
      for (const [address, { plan, byName }] of known) {
        const { target, route } = plan;
        for (const ip of byName ? [target.host] : plan.replicas)
          targets.push({ address, target, ip, proxy: route.proxy });
      }
      return targets;
    },

    knownReplicas() {
      return [...known.values()].flatMap(({ plan }) => [...plan.replicas, plan.target.host]);
    },

    circuitFor(ip) {
      let circuit = circuits.get(ip);
      if (!circuit) {
        circuit = createReplicaCircuit({
          initialMs: options.backoffInitialMs,
          // One dial per replica, so it can afford to look often: the waiters return soon after the replica does.
          maxMs: Math.min(options.backoffMaxMs, CIRCUIT_PROBE_MAX_MS),
        });
        circuits.set(ip, circuit);
      }
      return circuit;
    },

    admissionFor(ip) {
      let admission = admissions.get(ip);
      if (!admission) {
        admission = createDialAdmission(options.dialConcurrency);
        admissions.set(ip, admission);
      }
      return admission;
    },

    // When the proxy has refused every address of the beacon, the bridge waits on the name instead (the proxy
    // picks the replica) and says so once; the addresses are tried again after FANOUT_RETRY_MS.
    proxyRefused(address, ip, error) {
      const entry = known.get(address);
      if (!entry || entry.byName || !entry.plan.route.proxy || ip === entry.plan.target.host) return false;
      entry.refused.set(ip, error);
      if (!entry.plan.replicas.every((replica) => entry.refused.has(replica))) return false;
      entry.byName = everyReplicaRefused(entry.plan, [...entry.refused.values()]);
      entry.byNameSince = Date.now();
      reportFanOut(log, entry.plan, entry.byName);
      return true;
    },

    draining(ip, relaysCutInMs) {
      // Kept until the next refresh after it passed, so the notices of a replica's thousands of waiters count once.
      if (drainingUntil.has(ip)) return false;
      drainingUntil.set(ip, performance.now() + relaysCutInMs);
      return true;
    },

    drainingLeftMs(ip) {
      const until = drainingUntil.get(ip);
      return until === undefined ? 0 : Math.max(0, Math.round(until - performance.now()));
    },

    waitingAgain(ip) {
      drainingUntil.delete(ip);
    },

    reached(address, ip) {
      const entry = known.get(address);
      if (entry?.plan.route.proxy && !entry.byName && ip !== entry.plan.target.host) {
        entry.refused.delete(ip);
        reportFanOut(log, entry.plan, undefined);
      }
    },
  };
}
