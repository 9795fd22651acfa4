/**
 * Sharding bridge replicas with Kubernetes Leases (coordination.k8s.io/v1), for fleets larger than one replica
 * holds (docs/scaling.md).
 *
 * A cluster belongs to shard `shardOf(fingerprint)`; each shard has `replicasPerShard` slots, one Lease per slot
 * (`<prefix>-shard-<i>-<slot>`). A bridge replica serves the clusters of the shards it holds a slot of, and never
 * holds two slots of one shard, so with two slots a cluster is served by two replicas and a dying replica costs
 * its brokers no wait for a Lease to expire. Each replica also renews a member Lease (`<prefix>-member-<id>`):
 * the live members tell every replica its fair share, ceil(slots / members), so a new replica is given shards
 * (the others release their extras) and a dead one's shards are taken over once its Leases expire. A member Lease
 * also names the replica's address (its pod IP), so a replica asked about a cluster it does not hold (OpenBao's
 * TokenReview through the Service) asks the shard's holders instead of every replica.
 *
 * Leases decide capacity, never trust: every replica may still serve any cluster (OpenBao's policies and the
 * cluster CA decide who may), so a wrong or stale shard map costs memory and connections, not security. That is
 * why an API server that cannot be reached leaves a replica serving what it holds (two replicas serving one
 * cluster is harmless; nobody serving it is an outage) and why there is no fencing.
 *
 * Expiry follows client-go's leader election (tools/leaderelection): a Lease is judged by when this replica last
 * saw it change, on its own monotonic clock, never by the renewTime another node's clock wrote, so neither clock
 * skew between nodes nor a step of this node's wall clock (NTP, a resumed VM) moves a takeover. Each API call of a
 * round has a deadline of a third of the Lease duration (client-go renews within a deadline shorter than the
 * duration too), so one hung request costs a round, not the replica's shards. Time in which this replica could
 * not observe (an API outage, a stalled process) does not count: a Lease that did not change across it gets a
 * fresh duration once, as client-go only starts its observed time when it can observe.
 */
import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { sleep } from '../core/backoff.js';
import { CloudtaserError, isCloudtaserError } from '../core/errors.js';
import { linkSignal } from '../core/linked-signal.js';
import { type Logger, moduleLogger } from '../core/log.js';
import type { KubeLease, KubeLeaseSpec } from '../kube/types.js';

/** The Kubernetes calls sharding makes (rows of KUBE_CALLS): the chart's Role grants exactly these. */
export const SHARD_LEASE_CALLS = ['listLeases', 'createLease', 'updateLease', 'deleteLease'] as const;

/** The Lease calls sharding makes; `KubeClient` has them. */
export interface LeaseApi {
  listLeases(
    namespace: string,
    options?: { labelSelector?: string; signal?: AbortSignal },
  ): Promise<ShardLease[]>;
  createLease(
    namespace: string,
    lease: {
      metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
      spec: ShardLeaseSpec;
    },
    options?: { signal?: AbortSignal },
  ): Promise<ShardLease>;
  updateLease(namespace: string, lease: ShardLease, options?: { signal?: AbortSignal }): Promise<ShardLease>;
  deleteLease(
    namespace: string,
    name: string,
    options?: { resourceVersion?: string; signal?: AbortSignal },
  ): Promise<void>;
  /** Closes the connection pool, when the bridge command made the client. */
  close?(): void;
}

/** The Kubernetes Lease as the client reads and writes it (types only: sharding needs no Kubernetes code). */
export type ShardLeaseSpec = KubeLeaseSpec;
export type ShardLease = KubeLease;

export interface ShardMembershipOptions {
  readonly leases: LeaseApi;
  /** The bridge's own namespace (the Leases live there; the bridge's Role allows them there only). */
  readonly namespace: string;
  /** Number of shards. Fixed for a fleet: changing it moves clusters between replicas (once, harmlessly). */
  readonly shards: number;
  /** Replicas that serve each shard. @default 2 */
  readonly replicasPerShard?: number;
  /** This replica's name in the Leases: the pod name. */
  readonly identity: string;
  /**
   * This replica's address among the TokenReview peers (the pod IP, one of the headless Service's A-records),
   * written on its member Lease so that peers know where a shard's holders are. @default none (peers ask everyone)
   */
  readonly address?: string;
  /** Lease names start with it, e.g. the Helm release's full name. @default 'cloudtaser-bridge' */
  readonly prefix?: string;
  /** @default 15 */
  readonly leaseDurationSeconds?: number;
  /** How often the Leases are renewed and rebalanced. @default 5000 */
  readonly renewIntervalMs?: number;
  /** Called after every round in which the held shards changed. */
  readonly onChange?: (held: ReadonlySet<number>) => void;
  readonly logger?: Logger;
  /** For tests: the local clock (milliseconds; only differences matter). @default a monotonic clock */
  readonly now?: () => number;
}

export interface ShardMembershipStatus {
  readonly shards: number;
  readonly replicasPerShard: number;
  /** Shards this replica serves. */
  readonly held: number[];
  /** Live bridge replicas, this one included. */
  readonly members: number;
  /** The slots this replica aims to hold: ceil(shards x replicasPerShard / members). */
  readonly target: number;
  readonly lastRoundAt?: string;
  /** The last failed round (the replica keeps serving what it holds meanwhile). */
  readonly lastError?: string;
  /** This replica's identity (its pod name in the chart), the Leases' namespace and name prefix. */
  readonly identity: string;
  readonly leaseNamespace: string;
  readonly leasePrefix: string;
  /**
   * Per shard, the replicas holding a slot of it as this replica last saw the Leases (an expired one not counted):
   * where `source doctor` sends an SRE asking about a cluster whose shard this replica does not hold.
   */
  readonly holders: string[][];
}

export interface ShardMembership {
  /** Whether this replica serves the cluster. */
  serves(fingerprint: string): boolean;
  /**
   * The addresses of the other live replicas holding the cluster's shard, as this replica last saw the Leases;
   * undefined when one of them names no address (a replica before 0.2.0, or one run without it): ask every peer then.
   */
  holderAddresses(fingerprint: string): string[] | undefined;
  /** One round now (renew, rebalance); resolves when it is done. */
  roundNow(): Promise<void>;
  status(): ShardMembershipStatus;
  /** Stops renewing and releases every held Lease, so other replicas take the shards at once. */
  close(): Promise<void>;
}

const LABEL_GROUP = 'cloudtaser.io/bridge-leases';
const LABEL_KIND = 'cloudtaser.io/lease-kind';
/** On a member Lease: the replica's address among the TokenReview peers. */
export const ADDRESS_ANNOTATION = 'cloudtaser.io/peer-address';
/** Member Leases not renewed for this many durations are deleted by whoever sees them (a pod gone for good). */
const MEMBER_GC_DURATIONS = 20;
/** How long closing waits for its Lease releases before it lets them expire instead. */
const RELEASE_ON_CLOSE_MS = 3_000;

/** The shard a cluster belongs to: stable for a fingerprint and a shard count, no coordination per cluster. */
export function shardOf(fingerprint: string, shards: number): number {
  const digest = createHash('sha256').update(fingerprint.toLowerCase()).digest();
  return digest.readUInt32BE(0) % shards;
}

/**
 * How much a replica prefers a shard (rendezvous hashing): every replica computes the same number for every other.
 * A replica over its fair share gives back the shards it prefers least; one under it takes those it prefers most.
 */
export function shardPreference(identity: string, shard: number): number {
  return createHash('sha256').update(`${identity}/${shard}`).digest().readUInt32BE(0);
}

export function validateShardSettings(shards: number, replicasPerShard: number): void {
  if (!Number.isInteger(shards) || shards < 1 || shards > 1024)
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `--shards ${shards} must be a whole number from 1 to 1024 (e.g. 16; keep it fixed for a fleet)`,
    );
  if (!Number.isInteger(replicasPerShard) || replicasPerShard < 1 || replicasPerShard > 3)
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `--shard-replicas ${replicasPerShard} must be 1, 2 or 3 (2 keeps every cluster served while a replica restarts)`,
    );
}

/** What this replica last saw of a Lease, and when (on its own clock). */
interface Observed {
  readonly lease: ShardLease;
  readonly seenChangingAt: number;
  /** Whether seenChangingAt is the fresh start this version was given after a blind spell, not a change seen. */
  readonly graced: boolean;
}

export async function startShardMembership(options: ShardMembershipOptions): Promise<ShardMembership> {
  const replicasPerShard = options.replicasPerShard ?? 2;
  validateShardSettings(options.shards, replicasPerShard);
  if (!options.identity)
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      'sharding needs this replica identity (--shard-identity, or POD_NAME from the downward API)',
    );
  const prefix = options.prefix ?? 'cloudtaser-bridge';
  const durationS = options.leaseDurationSeconds ?? 15;
  const durationMs = durationS * 1000;
  const renewMs = options.renewIntervalMs ?? 5000;
  const now = options.now ?? monotonicNow;
  /** Per API call: a hung request ends the round long before the Leases this replica holds expire. */
  const callTimeoutMs = Math.max(100, Math.floor(durationMs / 3));
  const log = moduleLogger(options.logger, 'bridge.shards');
  const { namespace, identity } = options;
  const stop = new AbortController();
  /**
   * Every Lease call ends at its deadline or when membership stops, and leaves nothing on the stop signal once
   * it ended (linked-signal.ts: AbortSignal.any would leave an entry per call, ~2.5 KB per round, for as long as
   * the process lives). A caller's own signal replaces both: the releases on close run after stop, within their
   * own bound.
   */
  const bounded = <T>(
    signal: AbortSignal | undefined,
    call: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> => {
    const link = signal ? linkSignal([signal]) : linkSignal([stop.signal], callTimeoutMs);
    return call(link.signal).finally(link.dispose);
  };
  const leases: LeaseApi = {
    listLeases: (ns, o) => bounded(o?.signal, (signal) => options.leases.listLeases(ns, { ...o, signal })),
    createLease: (ns, lease, o) =>
      bounded(o?.signal, (signal) => options.leases.createLease(ns, lease, { signal })),
    updateLease: (ns, lease, o) =>
      bounded(o?.signal, (signal) => options.leases.updateLease(ns, lease, { signal })),
    deleteLease: (ns, name, o) =>
      bounded(o?.signal, (signal) => options.leases.deleteLease(ns, name, { ...o, signal })),
  };
  /** This replica's preference for each shard (rendezvous hashing): fixed for its identity. */
  const rank = Array.from({ length: options.shards }, (_, shard) => shardPreference(identity, shard));

  const slotName = (shard: number, slot: number) => `${prefix}-shard-${shard}-${slot}`;
  /** The shard and slot a slot Lease of this fleet stands for; undefined for a member Lease or a foreign name. */
  const parseSlotName = (name: string): { shard: number; slot: number } | undefined => {
    const match =
      name.startsWith(`${prefix}-shard-`) && /^(\d+)-(\d+)$/.exec(name.slice(`${prefix}-shard-`.length));
    if (!match) return undefined;
    const [shard, slot] = [Number(match[1]), Number(match[2])];
    return shard < options.shards && slot < replicasPerShard ? { shard, slot } : undefined;
  };
  const memberName = `${prefix}-member-${identity}`;
  const labels = (kind: 'shard' | 'member') => ({ [LABEL_GROUP]: prefix, [LABEL_KIND]: kind });

  /** Slots held, by Lease name, with the Lease as last written by us. */
  const heldSlots = new Map<string, { shard: number; lease: ShardLease }>();
  const observed = new Map<string, Observed>();
  /** Since when (this replica's clock) each slot has been free, while it stays free. */
  const freeSince = new Map<string, number>();
  let members = 1;
  let target = Math.ceil((options.shards * replicasPerShard) / members);
  let lastRoundAt: string | undefined;
  /** Slots whose release failed, with the version let go: still naming this replica, but not to be adopted. */
  const releasedVersions = new Map<string, string | undefined>();
  /** When the last list that answered was sent (this replica's clock): the last time it observed the Leases. */
  let lastListedAt: number | undefined;
  let lastError: string | undefined;
  let lastErrorLogged: string | undefined;

  const heldShards = (): Set<number> => new Set([...heldSlots.values()].map((s) => s.shard));
  let served = heldShards();

  const micro = (ms: number) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

  /** Free: released, never held, or not seen changing for a whole duration (its holder stopped renewing). */
  const isFree = (name: string, at: number): boolean => {
    const seen = observed.get(name);
    if (!seen) return true;
    const holder = seen.lease.spec.holderIdentity;
    if (!holder) return true;
    const duration = (seen.lease.spec.leaseDurationSeconds ?? durationS) * 1000;
    return at - seen.seenChangingAt > duration;
  };

  /**
   * After a blind spell a Lease that did not change proves nothing (its holder may have been cut off alike): its
   * version counts as seen changing now, once, so a holder that died meanwhile is still replaced a duration later
   * however often the API server fails again.
   */
  const observe = (lease: ShardLease, at: number, afterBlindSpell = false) => {
    const before = observed.get(lease.metadata.name);
    if (!before || before.lease.metadata.resourceVersion !== lease.metadata.resourceVersion)
      observed.set(lease.metadata.name, { lease, seenChangingAt: at, graced: false });
    else if (afterBlindSpell && !before.graced)
      observed.set(lease.metadata.name, { lease, seenChangingAt: at, graced: true });
  };

  const isConflict = (err: unknown) =>
    isCloudtaserError(err, 'CT_KUBE_CONFLICT') || isCloudtaserError(err, 'CT_KUBE_NOT_FOUND');

  async function renewMember(at: number): Promise<void> {
    const mine = observed.get(memberName)?.lease;
    const spec = { holderIdentity: identity, leaseDurationSeconds: durationS, renewTime: micro(at) };
    const annotations = options.address ? { [ADDRESS_ANNOTATION]: options.address } : undefined;
    try {
      const written = mine
        ? await leases.updateLease(
            namespace,
            {
              ...mine,
              // A pod keeps its IP, but a member Lease left by an earlier pod of the same name may name another.
              metadata: annotations
                ? { ...mine.metadata, annotations: { ...mine.metadata.annotations, ...annotations } }
                : mine.metadata,
              spec: { ...mine.spec, ...spec },
            },
            {},
          )
        : await leases.createLease(
            namespace,
            {
              metadata: {
                name: memberName,
                labels: labels('member'),
                ...(annotations ? { annotations } : {}),
              },
              spec: { ...spec, acquireTime: micro(at) },
            },
            {},
          );
      observe(written, at);
    } catch (err) {
      // Someone else wrote it (a previous pod with our name, or a person): read it at the next list, retry then.
      if (!isConflict(err)) throw err;
      observed.delete(memberName);
    }
  }

  async function take(shard: number, slot: number, at: number): Promise<boolean> {
    const name = slotName(shard, slot);
    const seen = observed.get(name)?.lease;
    const spec: ShardLeaseSpec = {
      holderIdentity: identity,
      leaseDurationSeconds: durationS,
      acquireTime: micro(at),
      renewTime: micro(at),
      leaseTransitions: (seen?.spec.leaseTransitions ?? -1) + 1,
    };
    try {
      const written = seen
        ? await leases.updateLease(namespace, { ...seen, spec }, {})
        : await leases.createLease(namespace, { metadata: { name, labels: labels('shard') }, spec }, {});
      observe(written, at);
      heldSlots.set(name, { shard, lease: written });
      log.info(
        {
          event: 'bridge.shard_acquired',
          shard,
          slot,
          previousHolder: seen?.spec.holderIdentity || undefined,
        },
        `now serving shard ${shard}`,
      );
      return true;
    } catch (err) {
      if (isConflict(err)) return false; // another replica was faster: fine, it serves the shard
      throw err;
    }
  }

  async function release(name: string, reason: string, signal?: AbortSignal): Promise<void> {
    const held = heldSlots.get(name);
    if (!held) return;
    heldSlots.delete(name);
    try {
      // As client-go releases: an empty holder and the shortest duration, so others take it at once.
      const written = await leases.updateLease(
        namespace,
        { ...held.lease, spec: { ...held.lease.spec, holderIdentity: '', leaseDurationSeconds: 1 } },
        { signal },
      );
      observe(written, now());
    } catch (err) {
      // Taken meanwhile or unreachable: either way it expires on its own. Still naming us, it must not be adopted
      // back (below) while it is the version we let go.
      releasedVersions.set(name, held.lease.metadata.resourceVersion);
      log.debug({ event: 'bridge.shard_release_failed', reason: (err as Error).message }, 'release failed');
    }
    log.info(
      { event: 'bridge.shard_released', shard: held.shard, reason },
      `stopped serving shard ${held.shard}`,
    );
  }

  async function round(): Promise<void> {
    const at = now();
    const listed = await leases.listLeases(namespace, {
      labelSelector: `${LABEL_GROUP}=${prefix}`,
    });
    // Blind since the last list: the previous round failed (the API server may have refused every replica's
    // renewals too) or no list answered for a whole duration (an outage between two rounds, a stalled process).
    const blind = lastError !== undefined || (lastListedAt !== undefined && at - lastListedAt > durationMs);
    lastListedAt = at;
    const present = new Set<string>();
    for (const lease of listed) {
      present.add(lease.metadata.name);
      observe(lease, at, blind);
    }
    for (const name of [...observed.keys()]) if (!present.has(name)) observed.delete(name);
    // A released version that changed or went away no longer needs remembering.
    for (const [name, version] of releasedVersions)
      if (observed.get(name)?.lease.metadata.resourceVersion !== version) releasedVersions.delete(name);

    await renewMember(at);

    // A slot Lease naming this replica that it does not hold: a take the API server applied whose answer was lost
    // (a deadline, a reset). Every peer counts it as held, so unless this replica serves and renews it, nobody does.
    for (const lease of listed) {
      const name = lease.metadata.name;
      const slot = parseSlotName(name);
      if (!slot || lease.spec.holderIdentity !== identity || heldSlots.has(name)) continue;
      if (releasedVersions.get(name) === lease.metadata.resourceVersion) continue;
      // Never two slots of one shard: a second one stays unrenewed and expires for another replica.
      if (heldShards().has(slot.shard)) continue;
      heldSlots.set(name, { shard: slot.shard, lease });
      log.info(
        { event: 'bridge.shard_adopted', shard: slot.shard, slot: slot.slot },
        `now serving shard ${slot.shard} (its Lease already named this replica)`,
      );
    }

    // Live members: this replica and every other member Lease seen changing within its duration.
    const memberNames = listed
      .filter((l) => l.metadata.labels?.[LABEL_KIND] === 'member')
      .map((l) => l.metadata.name);
    const liveMembers = [
      identity,
      ...memberNames
        .filter((name) => name !== memberName && !isFree(name, at))
        .map((name) => observed.get(name)?.lease.spec.holderIdentity)
        .filter((holder): holder is string => typeof holder === 'string' && holder !== ''),
    ];
    members = liveMembers.length;
    const slots = options.shards * replicasPerShard;
    target = Math.min(options.shards, Math.ceil(slots / members));
    // Who holds which shard, as the list shows it (live holders only): decides which releases can be taken up by
    // another replica and who adopts a slot that stays free.
    const holdersOf = new Map<number, Set<string>>();
    const slotsHeldBy = new Map<string, number>();
    for (let shard = 0; shard < options.shards; shard++) {
      const holders = new Set<string>();
      for (let slot = 0; slot < replicasPerShard; slot++) {
        const name = slotName(shard, slot);
        if (isFree(name, at)) {
          if (!freeSince.has(name)) freeSince.set(name, at);
          continue;
        }
        freeSince.delete(name);
        const holder = observed.get(name)?.lease.spec.holderIdentity;
        if (holder) {
          holders.add(holder);
          slotsHeldBy.set(holder, (slotsHeldBy.get(holder) ?? 0) + 1);
        }
      }
      holdersOf.set(shard, holders);
    }
    /** Whether another live replica under its share holds no slot of the shard (so it takes it when released). */
    const othersCouldTake = (shard: number) =>
      liveMembers.some(
        (member) =>
          member !== identity &&
          (slotsHeldBy.get(member) ?? 0) < target &&
          !holdersOf.get(shard)?.has(member),
      );

    // Renew what we hold; a Lease someone else wrote since (a conflict) is lost.
    for (const [name, held] of [...heldSlots]) {
      const current = observed.get(name)?.lease;
      if (!current || current.spec.holderIdentity !== identity) {
        heldSlots.delete(name);
        log.warn(
          {
            event: 'bridge.shard_lost',
            shard: held.shard,
            holder: current?.spec.holderIdentity || undefined,
          },
          `shard ${held.shard} is held by another replica now`,
        );
        continue;
      }
      try {
        const written = await leases.updateLease(
          namespace,
          { ...current, spec: { ...current.spec, renewTime: micro(at), leaseDurationSeconds: durationS } },
          {},
        );
        observe(written, at);
        heldSlots.set(name, { shard: held.shard, lease: written });
      } catch (err) {
        if (!isConflict(err)) throw err;
        heldSlots.delete(name);
        log.warn(
          { event: 'bridge.shard_lost', shard: held.shard },
          `shard ${held.shard} was taken by another replica`,
        );
      }
    }

    // Over the fair share (a replica joined): give back the extras, the ones we rank lowest first, but only
    // shards another live replica can take (it holds no slot of them): a slot nobody else may hold would stay free.
    const byPreference = (a: number, b: number) => rank[b] - rank[a];
    if (heldSlots.size > target) {
      const extras = [...heldSlots.entries()]
        .sort(([, a], [, b]) => byPreference(b.shard, a.shard))
        .filter(([, held]) => othersCouldTake(held.shard))
        .slice(0, heldSlots.size - target);
      for (const [name] of extras)
        await release(name, `rebalancing: ${members} replicas share ${slots} slots`);
    }

    // Under it: take free slots, shards this replica ranks highest first (rendezvous hashing, so replicas prefer
    // different shards and seldom race for the same Lease), never two slots of one shard.
    if (heldSlots.size < target) {
      const mine = heldShards();
      const candidates = [...Array(options.shards).keys()].filter((s) => !mine.has(s)).sort(byPreference);
      for (const shard of candidates) {
        if (heldSlots.size >= target || stop.signal.aborted) break;
        for (let slot = 0; slot < replicasPerShard; slot++) {
          if (!isFree(slotName(shard, slot), at)) continue;
          if (await take(shard, slot, at)) break;
        }
      }
    }

    // A slot that stays free although replicas run: the replicas under their share may all hold the other slot of
    // its shard already (a joining replica with two slots per shard), or fail to take it. After a Lease duration
    // the live replica holding no slot of the shard that ranks it highest takes it, whatever its share; after each
    // further duration the next one may too, so one replica that keeps failing does not leave it free.
    if (!stop.signal.aborted) {
      for (const [name, since] of freeSince) {
        const parsed = parseSlotName(name);
        if (!parsed || heldShards().has(parsed.shard)) continue;
        const { shard, slot } = parsed;
        const eligible = liveMembers
          .filter((member) => !holdersOf.get(shard)?.has(member))
          .sort((x, y) => shardPreference(y, shard) - shardPreference(x, shard));
        const turn = Math.floor((at - since) / durationMs) - 1;
        const mine = eligible.indexOf(identity);
        if (turn < 0 || mine < 0 || mine > turn) continue;
        if (await take(shard, slot, at)) freeSince.delete(name);
      }
    }

    // Member Leases of pods gone for good: delete them so the list stays the size of the live fleet.
    for (const name of memberNames) {
      const seen = observed.get(name);
      if (name === memberName || !seen) continue;
      if (at - seen.seenChangingAt > MEMBER_GC_DURATIONS * durationMs)
        await leases
          .deleteLease(namespace, name, {
            resourceVersion: seen.lease.metadata.resourceVersion,
          })
          .catch(() => undefined);
    }
  }

  async function runRound(): Promise<void> {
    try {
      await round();
      lastRoundAt = new Date(now()).toISOString();
      if (lastError) log.info({ event: 'bridge.shards_recovered' }, 'Lease rounds work again');
      lastError = undefined;
      lastErrorLogged = undefined;
    } catch (err) {
      if (stop.signal.aborted) return;
      const error = isCloudtaserError(err) ? err : new CloudtaserError('CT_INTERNAL', String(err));
      lastError = error.toLine();
      // Fail static: keep serving the shards held (duplicate service is safe, none is an outage); one line per cause.
      if (lastErrorLogged !== error.code) {
        lastErrorLogged = error.code;
        log.warn(
          { event: 'bridge.shards_round_failed', code: error.code, reason: error.message, held: [...served] },
          'could not renew the shard Leases; serving the shards held until the API server answers again',
        );
      }
    }
    // After a failed round, fail static covers what it took before failing too: a slot it now renews is one no
    // other replica takes, so serving it is what keeps its clusters served.
    const next = lastError === undefined ? heldShards() : new Set([...served, ...heldShards()]);
    if (!sameSet(next, served)) {
      served = next;
      options.onChange?.(served);
    }
  }

  let current: Promise<void> = runRound();
  await current;
  const loop = (async () => {
    while (!stop.signal.aborted) {
      await sleep(renewMs, stop.signal);
      if (stop.signal.aborted) break;
      current = runRound();
      await current;
    }
  })();

  let closing: Promise<void> | undefined;
  return {
    serves: (fingerprint) => served.has(shardOf(fingerprint, options.shards)),
    holderAddresses(fingerprint) {
      const shard = shardOf(fingerprint, options.shards);
      const at = now();
      const addresses: string[] = [];
      for (let slot = 0; slot < replicasPerShard; slot++) {
        const name = slotName(shard, slot);
        const holder = observed.get(name)?.lease.spec.holderIdentity;
        if (!holder || holder === identity || isFree(name, at)) continue;
        const member = observed.get(`${prefix}-member-${holder}`)?.lease;
        const address = member?.metadata.annotations?.[ADDRESS_ANNOTATION];
        if (!address) return undefined;
        addresses.push(address);
      }
      return addresses;
    },
    async roundNow() {
      await current;
      current = runRound();
      await current;
    },
    status: () => {
      const at = now();
      return {
        shards: options.shards,
        replicasPerShard,
        held: [...served].sort((a, b) => a - b),
        members,
        target,
        lastRoundAt,
        lastError,
        identity,
        leaseNamespace: options.namespace,
        leasePrefix: prefix,
        holders: Array.from({ length: options.shards }, (_, shard) => {
          // This replica as `held` says (what it serves), the others as their Leases say.
          const holders = new Set<string>(served.has(shard) ? [identity] : []);
          for (let slot = 0; slot < replicasPerShard; slot++) {
            const name = slotName(shard, slot);
            const holder = observed.get(name)?.lease.spec.holderIdentity;
            if (holder && holder !== identity && !isFree(name, at)) holders.add(holder);
          }
          return [...holders];
        }),
      };
    },
    close() {
      closing ??= (async () => {
        stop.abort();
        await loop;
        await current.catch(() => undefined);
        // All at once and bounded: with the API server down a release would wait out the client's timeout per
        // Lease, and a pod being stopped has a grace period; unreleased Leases simply expire.
        const giveUp = AbortSignal.timeout(RELEASE_ON_CLOSE_MS);
        // One listener per held Lease plus the member's, once: bounded by the slot count, not a leak (Node warns
        // past 10 listeners on one signal).
        setMaxListeners(heldSlots.size + 4, giveUp);
        const mine = observed.get(memberName);
        await Promise.race([
          Promise.all([
            ...[...heldSlots.keys()].map((name) => release(name, 'the bridge is shutting down', giveUp)),
            mine
              ? leases
                  .deleteLease(namespace, memberName, {
                    resourceVersion: mine.lease.metadata.resourceVersion,
                    signal: giveUp,
                  })
                  .catch(() => undefined)
              : undefined,
          ]),
          new Promise((resolve) => giveUp.addEventListener('abort', resolve, { once: true })),
        ]);
      })();
      return closing;
    },
  };
}

/**
 * Milliseconds on a monotonic clock (no NTP or VM-resume steps), near the wall clock only so that the renewTime
 * written into a Lease for people to read looks right.
 */
export function monotonicNow(): number {
  return performance.timeOrigin + performance.now();
}

function sameSet(a: ReadonlySet<number>, b: ReadonlySet<number>): boolean {
  return a.size === b.size && [...a].every((v) => b.has(v));
}
