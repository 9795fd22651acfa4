/**
 * Cluster discovery for the bridge, at a cost that does not grow with the fleet. A poll reads the discovery
 * journal (one request, see registration/change-journal.ts) and re-reads only the clusters it names; when
 * nothing changed that is the whole poll. The bridge lists every cluster (a full resync) only when it has no
 * view yet, when the journal was recreated (new epoch) or moved backwards, when it fell further behind than the
 * journal reaches, and, as anti-entropy against writers that do not journal, every `resyncIntervalMs`.
 *
 * Never missing a change rests on the writers' order (`begin`, records, `end`):
 *   - an `end` makes the next poll re-read the cluster, after its records were written;
 *   - a `begin` without its `end` (the writer is slow, or died between a record write and the journal update)
 *     is watched: the cluster is re-read once OPEN_CHANGE_WATCH_MS after the bridge first saw it, when any
 *     write of that writer has landed;
 *   - a full resync reads every record after reading the journal, and watches every `begin` still open in it, as
 *     well as every one it was already watching (a `begin` pushed out of the journal by newer entries is still
 *     open, and its writer may still write).
 *
 * Behind one address that spreads reads over OpenBao nodes (standbys answer reads since OpenBao 2.5 and may lag the
 * active node), the journal may come from an up-to-date node and a cluster's records from a lagging one:
 *   - an `end` promises what a read must show (a `register` a record, a `deregister` none, an `initialize` the
 *     cluster initialized, a `rearm` not); a read that contradicts it is read again at the next polls, up to
 *     SETTLE_POLLS, and a `register` that left the CA as it was is read once more (a lagging node shows the
 *     previous record, which looks just like a re-registration that kept its CA);
 *   - a journal read older than the view (lower generation or KV version, same epoch) is most likely a lagging
 *     node: the view is kept, and only STALE_JOURNAL_POLLS such reads in a row make the bridge resync in full.
 *
 * The journal is a hint, never a source of trust: an entry only makes the bridge re-read a cluster's records,
 * so a forged or replayed entry costs a read and cannot bring back a deregistered cluster or an old broker key.
 * What a hostile writer of the journal could try is to hide an entry (a deregistration) by rewriting history.
 * The bridge resyncs in full instead of trusting the journal when history does not hold together:
 *   - the record was recreated or moved backwards (new epoch, lower generation: a restored stale copy);
 *   - the last entry this bridge read is no longer what it was at its generation (rewritten history);
 *   - the record changed more often than entries were added (KV versions are counted by OpenBao, and every
 *     genuine write adds at least one entry, so a write that replaced entries instead of adding them shows).
 *
 * During a rolling upgrade a later version may journal a change kind this one does not know: its `end` makes the
 * bridge re-read the cluster and reload its trust material, as a `register` does. A journal in a newer format
 * cannot be followed at all: the bridge then lists every cluster when it meets it and every `resyncIntervalMs`
 * after, and leaves the journal to the version that wrote it.
 */

import { jitteredInterval } from '../core/backoff.js';
import { type CloudtaserError, isCloudtaserError } from '../core/errors.js';
import { fingerprintPrefix } from '../core/hashes.js';
import type { Logger } from '../core/log.js';
import type { OpenBaoClient } from '../openbao/index.js';
import {
  type ChangeJournal,
  ensureChangeJournal,
  listRegisteredClusters,
  OPEN_CHANGE_WATCH_MS,
  type RegisteredCluster,
  readChangeJournal,
  readRegisteredCluster,
  validateNamespaceRoot,
} from '../registration/index.js';
import { DEFAULT_DISCOVERY_RESYNC_MS } from './defaults.js';

export interface ClusterDiscoveryOptions {
  readonly openbao: OpenBaoClient;
  readonly namespaceRoot: string;
  /** List every cluster this often even when the journal says nothing changed; 0 = never. @default 21600000 (6 h) */
  readonly resyncIntervalMs?: number;
  /** How long an announced change may stay open before the cluster is re-read anyway. @default OPEN_CHANGE_WATCH_MS */
  readonly openChangeWatchMs?: number;
  /** Clusters re-read at once when many changed. @default 8 */
  readonly readConcurrency?: number;
  readonly logger: Logger;
  /** Injectable clock (tests). @default performance.now */
  readonly now?: () => number;
}

export interface DiscoveryPoll {
  /** Every cluster registered now. */
  readonly clusters: ReadonlyMap<string, RegisteredCluster>;
  /** Fingerprints whose records were re-read this poll (new, removed or updated; may be unchanged). */
  readonly changed: ReadonlySet<string>;
  /**
   * Those of `changed` whose registration or certificates may have changed (a `register` or `deregister`, or a
   * change of unknown kind): a bootstrap or re-arm leaves the cluster's trust material as it was.
   */
  readonly trustChanged: ReadonlySet<string>;
  /** True when this poll listed every cluster (then `changed` holds all of them, old and new). */
  readonly resynced: boolean;
  /** Why a full resync ran, when it did. */
  readonly resyncReason?:
    | 'start'
    | 'epoch'
    | 'behind'
    | 'rewritten'
    | 'interval'
    | 'no-journal'
    | 'newer-journal';
  /**
   * Journal entries newer than the previous view, also when the journal had run past this view and the poll
   * listed everything (0 after any other full listing): how fast the journal moves, so the bridge can poll sooner
   * before it runs past it.
   */
  readonly followedEntries: number;
}

export interface ClusterDiscovery {
  /** One poll. Throws when OpenBao cannot be read; the view is then left as it was. */
  poll(): Promise<DiscoveryPoll>;
  /** Journal generation the view is current with (undefined before the first successful poll). */
  readonly generation: number | undefined;
  /** Announced changes whose `end` has not been seen yet. */
  readonly openChanges: number;
}

const QUIET = { followedEntries: 0 } as const;

export { DEFAULT_DISCOVERY_RESYNC_MS };
/** Polls at which a cluster whose read contradicted its change's `end` is read again (a lagging node answered). */
export const SETTLE_POLLS = 3;
/** Journal reads in a row older than the view, taken for a lagging node, before the bridge resyncs in full. */
export const STALE_JOURNAL_POLLS = 3;
/** While the journal is of a newer format: the shortest time between two full listings its changes cause. */
export const NEWER_JOURNAL_LIST_MS = 60_000;

/** Whether a read of a cluster contradicts what the `end` of `change` promises: it came from a node behind. */
function contradicts(change: string, cluster: RegisteredCluster | undefined): boolean {
  switch (change) {
    case 'register':
      return cluster === undefined;
    case 'deregister':
      return cluster !== undefined;
    case 'initialize':
      return cluster === undefined || !cluster.initialized;
    case 'rearm':
      return cluster?.initialized === true;
    default:
      // A later version's kind promises nothing this version can check.
      return false;
  }
}

/** Whether a change may have moved a cluster's trust material: all but a bootstrap or re-arm, unknown kinds too. */
function mayChangeTrust(change: string): boolean {
  return change !== 'initialize' && change !== 'rearm';
}

interface JournalView {
  readonly epoch: string;
  readonly generation: number;
  readonly version: number;
  readonly newest?: string;
}

function viewOf(journal: ChangeJournal, version: number): JournalView {
  const newest = journal.entries[journal.entries.length - 1];
  return {
    epoch: journal.epoch,
    generation: journal.generation,
    version,
    newest: newest && entryIdentity(newest),
  };
}

function entryIdentity(entry: ChangeJournal['entries'][number]): string {
  return `${entry.generation}|${entry.writer}|${entry.phase}|${entry.fingerprint}|${entry.change}`;
}

/** Whether `journal` (at KV `version`) extends what `view` saw without rewriting or dropping any of it. */
function extendsView(view: JournalView, journal: ChangeJournal, version: number): boolean {
  if (version < view.version) return false;
  // Every genuine write adds at least one entry.
  if (journal.generation - view.generation < version - view.version) return false;
  if (view.newest === undefined) return true;
  const oldest = journal.entries[0]?.generation ?? journal.generation + 1;
  // Pushed off the journal already: the 'behind' check handles it.
  if (oldest > view.generation) return true;
  const same = journal.entries[view.generation - oldest];
  return same !== undefined && entryIdentity(same) === view.newest;
}

interface OpenChange {
  readonly fingerprint: string;
  /** When this bridge first saw the `begin` (its own clock). */
  readonly seenAt: number;
}

/** A cluster to read again: what its newest change promises, and how many more polls to try. */
interface Settling {
  readonly change: string;
  readonly polls: number;
}

/** The newest ended change per cluster among `entries` (oldest first). */
function endedChanges(entries: ChangeJournal['entries'], after: number): Map<string, string> {
  const changes = new Map<string, string>();
  for (const entry of entries)
    if (entry.generation > after && entry.phase === 'end') changes.set(entry.fingerprint, entry.change);
  return changes;
}

export function createClusterDiscovery(options: ClusterDiscoveryOptions): ClusterDiscovery {
  const namespaceRoot = validateNamespaceRoot(options.namespaceRoot);
  const root = options.openbao.withNamespace(namespaceRoot);
  const now = options.now ?? (() => performance.now());
  const watchMs = options.openChangeWatchMs ?? OPEN_CHANGE_WATCH_MS;
  const resyncMs = options.resyncIntervalMs ?? DEFAULT_DISCOVERY_RESYNC_MS;
  const concurrency = options.readConcurrency ?? 8;
  const log = options.logger;
  let clusters = new Map<string, RegisteredCluster>();
  /**
   * What this bridge last read: the epoch, the generation, the KV version of the record, and the newest entry
   * (writer and phase at that generation) to check the history it extends is still the same.
   */
  let view: JournalView | undefined;
  /** Open announcements by writer id. */
  let open = new Map<string, OpenChange>();
  /** Clusters whose last read contradicted their change's `end` (or may be a lagging copy): read again. */
  let settling = new Map<string, Settling>();
  /** Journal reads in a row older than the view. */
  let staleJournalReads = 0;
  let nextResyncAt = 0;
  /** The format of the newer journal this bridge cannot follow, while it meets one (logged once per format). */
  let newerFormat: unknown;
  /** Its KV version when this bridge last listed every cluster because of it. */
  let newerJournalVersion: unknown;
  let newerJournalListedAt = 0;

  /** What to read again next poll: reads that contradict their change, and registers whose CA looks unchanged. */
  const settleAfter = (
    changes: ReadonlyMap<string, string>,
    before: ReadonlyMap<string, RegisteredCluster>,
    after: ReadonlyMap<string, RegisteredCluster>,
    previous: ReadonlyMap<string, Settling>,
  ): Map<string, Settling> => {
    const next = new Map<string, Settling>();
    const notVisible: string[] = [];
    for (const [fingerprint, change] of changes) {
      const read = after.get(fingerprint);
      const polls = (previous.get(fingerprint)?.polls ?? SETTLE_POLLS + 1) - 1;
      if (contradicts(change, read)) {
        if (polls > 0) next.set(fingerprint, { change, polls });
        else notVisible.push(`${fingerprintPrefix(fingerprint)} (${change})`);
      } else if (
        change === 'register' &&
        !previous.has(fingerprint) &&
        read !== undefined &&
        before.get(fingerprint)?.operationalHash === read.operationalHash
      ) {
        // Once: a lagging node shows the previous record, which reads like a re-registration that kept its CA.
        next.set(fingerprint, { change, polls: SETTLE_POLLS });
      }
    }
    if (notVisible.length > 0)
      log.warn(
        {
          event: 'discovery.changes_not_visible',
          clusters: notVisible.length,
          first: notVisible.slice(0, 5),
        },
        `the discovery journal announced changes that ${SETTLE_POLLS + 1} reads of the clusters did not show; serving what OpenBao shows (a writer before 0.2.0 that keeps no journal: upgrade it; a writer outside cloudtaser; or a forged journal entry)`,
      );
    return next;
  };

  const scheduleResync = () => {
    // Jittered over the second half of the interval, so replicas started together do not resync together.
    nextResyncAt = resyncMs > 0 ? now() + resyncMs - jitteredInterval(Math.floor(resyncMs / 2)) : Infinity;
  };

  /** Lists every cluster; without a journal (one of a newer format) the view is left unset until one returns. */
  async function fullResync(
    journal: ChangeJournal | undefined,
    version: number,
    reason: DiscoveryPoll['resyncReason'],
  ): Promise<DiscoveryPoll> {
    const entries = journal?.entries ?? [];
    const previousGeneration = view?.generation;
    const listed = await listRegisteredClusters(options.openbao, {
      namespaceRoot,
      onCorrupt: (fingerprint, err) =>
        log.warn(
          {
            event: 'discovery.record_corrupt',
            fingerprintPrefix: fingerprintPrefix(fingerprint),
            code: err.code,
            reason: err.message,
          },
          'skipping a cluster whose registration record is unreadable; run `cloudtaser-cli source register` for it again',
        ),
    });
    const next = new Map(listed.map((cluster) => [cluster.fingerprint, cluster]));
    const changed = new Set([...clusters.keys(), ...next.keys()]);
    // Trust material is reloaded only where it may have changed: a cluster new or gone, a new CA, or a
    // register/deregister the journal still shows. A bridge-certificate renewal pushed off the journal is not seen
    // here, and need not be: register renews 30 days before expiry, so the certificate in memory stays valid until
    // the periodic trust refresh (trustRefreshMs) loads the new one. Reloading everything instead would make the
    // next reconnect storm read two records per cluster from OpenBao.
    const trustChanged = new Set<string>();
    for (const fingerprint of changed) {
      const before = clusters.get(fingerprint);
      const after = next.get(fingerprint);
      if (!before || !after || before.operationalHash !== after.operationalHash)
        trustChanged.add(fingerprint);
    }
    for (const entry of entries)
      if ((view === undefined || entry.generation > view.generation) && mayChangeTrust(entry.change))
        trustChanged.add(entry.fingerprint);
    // Writers still between `begin` and `end` may write after the listing read their cluster: watch them.
    const stillOpen = new Map<string, OpenChange>();
    const ended = new Set(entries.filter((e) => e.phase === 'end').map((e) => e.writer));
    for (const entry of entries) {
      if (entry.phase === 'begin' && !ended.has(entry.writer))
        stillOpen.set(
          entry.writer,
          open.get(entry.writer) ?? { fingerprint: entry.fingerprint, seenAt: now() },
        );
    }
    // Changes already watched whose `begin` this journal no longer shows (pushed out, or a new epoch) may still
    // write after the listing: they stay watched until their `end` or their watch runs out.
    for (const [writer, change] of open)
      if (!ended.has(writer) && !stillOpen.has(writer)) stillOpen.set(writer, change);
    // The listing may have come from a node behind the journal's: a change it contradicts is read again.
    const recent = endedChanges(entries, view?.generation ?? 0);
    const contradicted = new Map<string, Settling>();
    for (const [fingerprint, change] of recent)
      if (contradicts(change, next.get(fingerprint)))
        contradicted.set(fingerprint, { change, polls: SETTLE_POLLS });
    // Clusters still being read again when the resync came: the listing is one more read of them.
    for (const [fingerprint, entry] of settling)
      if (!contradicted.has(fingerprint) && contradicts(entry.change, next.get(fingerprint)))
        contradicted.set(fingerprint, entry);
    settling = contradicted;
    clusters = next;
    open = stillOpen;
    view = journal && viewOf(journal, version);
    scheduleResync();
    log[reason === 'rewritten' ? 'warn' : 'info'](
      {
        event: 'discovery.resynced',
        reason,
        clusters: clusters.size,
        generation: journal?.generation,
        openChanges: open.size,
      },
      reason === 'rewritten'
        ? 'the discovery journal was rewritten instead of appended to (a writer outside cloudtaser, or a restored backup); listed every registered cluster instead of trusting it, check who writes discovery/journal'
        : 'listed every registered cluster',
    );
    // Nothing to compare with at the first poll (or across epochs, or without a journal): no pace to report.
    const followedEntries =
      journal && previousGeneration !== undefined && reason === 'behind'
        ? Math.max(0, journal.generation - previousGeneration)
        : 0;
    return {
      clusters,
      changed,
      trustChanged,
      resynced: true,
      resyncReason: reason,
      followedEntries,
    };
  }

  /**
   * A poll while the journal is in a format this version cannot follow (a later cloudtaser wrote it): list every
   * cluster when first meeting it, again whenever the journal's KV version moved (something was registered,
   * deregistered or bootstrapped: a deregistration must not wait hours to be seen), at most once per
   * NEWER_JOURNAL_LIST_MS, and every `resyncIntervalMs`; never write the journal.
   */
  async function pollWithoutJournal(err: CloudtaserError): Promise<DiscoveryPoll> {
    const { format, version } = err.details;
    const first = format !== newerFormat;
    if (first) {
      log.warn(
        { event: 'discovery.journal_newer_format', code: err.code, ...err.details },
        `${err.message}. Until then this bridge lists every registered cluster when the journal changes (at most once a minute) instead of following it`,
      );
      newerFormat = format;
    }
    const moved = version !== newerJournalVersion;
    const due = now() >= nextResyncAt;
    const paced = now() - newerJournalListedAt < NEWER_JOURNAL_LIST_MS;
    if (!first && !due && (!moved || paced))
      return { clusters, changed: new Set(), trustChanged: new Set(), resynced: false, ...QUIET };
    newerJournalVersion = version;
    newerJournalListedAt = now();
    return fullResync(undefined, 0, first || moved ? 'newer-journal' : 'interval');
  }

  async function reread(fingerprints: Set<string>): Promise<Map<string, RegisteredCluster | undefined>> {
    const list = [...fingerprints];
    const out = new Map<string, RegisteredCluster | undefined>();
    let next = 0;
    const worker = async () => {
      while (next < list.length) {
        const fingerprint = list[next++];
        try {
          // The journal named this cluster: another writer may have deleted a record this bridge wrote moments
          // ago (a re-arm or deregistration right after a bootstrap); that is the change, not a lagging standby.
          out.set(fingerprint, await readRegisteredCluster(root, fingerprint, { changedByOthers: true }));
        } catch (err) {
          if (!isCloudtaserError(err, 'CT_REGISTRATION_CORRUPT')) throw err;
          log.warn(
            {
              event: 'discovery.record_corrupt',
              fingerprintPrefix: fingerprintPrefix(fingerprint),
              code: err.code,
              reason: err.message,
            },
            'no longer serving a cluster whose registration record is unreadable; run `cloudtaser-cli source register` for it again',
          );
          out.set(fingerprint, undefined);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, list.length) }, worker));
    return out;
  }

  return {
    async poll() {
      let stored: Awaited<ReturnType<typeof readChangeJournal>>;
      let created = false;
      try {
        stored = await readChangeJournal(root);
        if (!stored || 'corrupt' in stored) {
          // No journal yet (a fresh install, or one from before discovery journals): create it, so that from
          // now on every writer journals against one epoch. A corrupt one is replaced the same way.
          stored = await ensureChangeJournal(root, log);
          created = true;
        }
      } catch (err) {
        if (isCloudtaserError(err, 'CT_DISCOVERY_NEWER_FORMAT')) return pollWithoutJournal(err);
        // No root namespace or records mount yet: nothing is registered. The first registration creates them,
        // and the next poll lists everything from scratch.
        if (
          !isCloudtaserError(err, 'CT_OPENBAO_NAMESPACE_NOT_FOUND') &&
          !isCloudtaserError(err, 'CT_OPENBAO_NOT_FOUND')
        )
          throw err;
        const changed = new Set(clusters.keys());
        clusters = new Map();
        open = new Map();
        view = undefined;
        return { clusters, changed, trustChanged: changed, resynced: false, ...QUIET };
      }
      newerFormat = undefined;
      const { journal, version } = stored;
      if (!view) return fullResync(journal, version, 'start');
      if (created) return fullResync(journal, version, 'no-journal');
      const behindView =
        journal.epoch === view.epoch && (journal.generation < view.generation || version < view.version);
      if (behindView && ++staleJournalReads < STALE_JOURNAL_POLLS) {
        // Most likely a node behind the one the previous poll read: keep the view and read again next poll.
        log.debug(
          {
            event: 'discovery.journal_behind_view',
            generation: journal.generation,
            viewGeneration: view.generation,
          },
          'the discovery journal read is older than what this bridge already saw (a lagging OpenBao node?); keeping the view',
        );
        return { clusters, changed: new Set(), trustChanged: new Set(), resynced: false, ...QUIET };
      }
      staleJournalReads = 0;
      if (journal.epoch !== view.epoch || journal.generation < view.generation)
        return fullResync(journal, version, 'epoch');
      if (!extendsView(view, journal, version)) return fullResync(journal, version, 'rewritten');
      const oldest = journal.entries[0]?.generation ?? journal.generation + 1;
      if (journal.generation > view.generation && oldest > view.generation + 1)
        return fullResync(journal, version, 'behind');
      if (now() >= nextResyncAt) return fullResync(journal, version, 'interval');

      const dirty = new Set<string>();
      const trustChanged = new Set<string>();
      const nextOpen = new Map(open);
      for (const entry of journal.entries) {
        if (entry.generation <= view.generation) continue;
        if (entry.phase === 'begin') {
          // Watched from the newest `begin` of a writer (writers re-announce under a new id; one that repeats its
          // id is watched from the repetition all the same).
          nextOpen.set(entry.writer, { fingerprint: entry.fingerprint, seenAt: now() });
        } else {
          nextOpen.delete(entry.writer);
          dirty.add(entry.fingerprint);
          if (mayChangeTrust(entry.change)) trustChanged.add(entry.fingerprint);
        }
      }
      // Clusters whose last read contradicted their change: read again, unless this poll names them anyway.
      const changes = endedChanges(journal.entries, view.generation);
      const carried = new Map<string, Settling>();
      for (const [fingerprint, entry] of settling) {
        dirty.add(fingerprint);
        if (mayChangeTrust(entry.change)) trustChanged.add(fingerprint);
        if (!changes.has(fingerprint)) {
          changes.set(fingerprint, entry.change);
          carried.set(fingerprint, entry);
        }
      }
      for (const [writer, change] of nextOpen) {
        if (now() - change.seenAt < watchMs) continue;
        log.info(
          {
            event: 'discovery.open_change_expired',
            fingerprintPrefix: fingerprintPrefix(change.fingerprint),
            watchedMs: Math.round(now() - change.seenAt),
          },
          'an announced change never ended (its writer may have died); reading the cluster again',
        );
        nextOpen.delete(writer);
        dirty.add(change.fingerprint);
        trustChanged.add(change.fingerprint);
      }
      const read = dirty.size > 0 ? await reread(dirty) : new Map<string, RegisteredCluster | undefined>();
      // Only now, with every read done, does the view move: a failed read leaves the same entries for next time.
      const before = clusters;
      if (read.size > 0) {
        const next = new Map(clusters);
        for (const [fingerprint, cluster] of read) {
          if (cluster) next.set(fingerprint, cluster);
          else next.delete(fingerprint);
        }
        clusters = next;
      }
      settling = settleAfter(changes, before, clusters, carried);
      open = nextOpen;
      const followedEntries = Math.max(0, journal.generation - view.generation);
      view = viewOf(journal, version);
      return {
        clusters,
        changed: dirty,
        trustChanged,
        resynced: false,
        followedEntries,
      };
    },
    get generation() {
      return view?.generation;
    },
    get openChanges() {
      return open.size;
    },
  };
}
