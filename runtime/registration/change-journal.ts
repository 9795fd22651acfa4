/**
 * The discovery journal: one KV v2 record in the root namespace's records mount that tells bridges which
 * clusters changed, so a poll costs one read however large the fleet is (DESIGN.md section 6). OpenBao stays the
 * only store; the journal is updated with check-and-set, so concurrent writers (two registrations, a bridge
 * replica marking a bootstrap) never lose each other's entries.
 *
 * Every change to what a bridge serves is announced twice around the records it touches:
 *   1. `begin` (before the first record write): if the writer dies before step 3, a bridge that saw `begin`
 *      re-reads the cluster once the writer's window has passed, so a crash between a record write and the
 *      journal update is never missed;
 *   2. the record writes themselves;
 *   3. `end` (after the last record write): a bridge re-reads the cluster at its next poll.
 * A writer that needs longer than BEGIN_VALID_MS between `begin` and a record write announces `begin` again, under a
 * new writer id (a bridge watches each `begin` from when it saw it, so the watch then runs from the newest one), and
 * its `end` closes every id it began under.
 * Announcements made at the same time by one process share check-and-set writes (group commit, below).
 *
 * The journal keeps the newest MAX_JOURNAL_ENTRIES entries. A bridge that fell further behind (or meets a new
 * `epoch`: the record was deleted or reset) lists every cluster once instead (a full resync).
 *
 * Several versions share the journal during a rolling upgrade. An entry of a change kind this version does not know
 * is read like any other (a bridge re-reads the cluster it names), and writers keep what they read, fields they do
 * not know included. A journal of a newer `format` is never replaced: readChangeJournal refuses it with
 * CT_DISCOVERY_NEWER_FORMAT, so writers stop and bridges fall back to listing every cluster.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { backoffDelay, sleep } from '../core/backoff.js';
import { CloudtaserError, isCloudtaserError } from '../core/errors.js';
import { fingerprintPrefix } from '../core/hashes.js';
import { type Logger, silentLogger } from '../core/log.js';
import { isFingerprint, parseFingerprint } from '../core/rules.js';
import type { OpenBaoClient } from '../openbao/index.js';
import { DEFAULT_NAMESPACE_ROOT, paths, RECORDS_MOUNT, validateNamespaceRoot } from './layout.js';

/** Entries kept; at ~140 bytes each the record stays near 70 KiB, far below OpenBao's 1 MiB storage entry. */
export const MAX_JOURNAL_ENTRIES = 512;
/** A writer re-announces `begin` when a record write would come later than this after it. */
export const BEGIN_VALID_MS = 30_000;
/**
 * How long a bridge waits for the `end` of a `begin` before it re-reads the cluster anyway: the writer's window
 * plus OpenBao's longest request (90 s by default, `max_request_duration`), so even a write that was slow to
 * land is read after it landed.
 */
export const OPEN_CHANGE_WATCH_MS = BEGIN_VALID_MS + 90_000 + 30_000;
/** Check-and-set attempts before a writer gives up (each loser re-reads and retries after a jittered pause). */
const MAX_APPEND_ATTEMPTS = 40;
/** The record's shape; a later version that changes it incompatibly bumps it, and this one then leaves it alone. */
const FORMAT = 1;
/** Longest change kind read: a later version's kinds are names like this version's. */
const MAX_CHANGE_KIND_LENGTH = 64;

/** The change kinds this version writes. */
export type ClusterChange = 'register' | 'deregister' | 'initialize' | 'rearm';

export interface JournalEntry {
  readonly generation: number;
  readonly fingerprint: string;
  /** A ClusterChange, or a kind a later version added: then anything about the cluster may have changed. */
  readonly change: string;
  /** Random per `begin` of an announcement: pairs an `end` with its `begin`. */
  readonly writer: string;
  readonly phase: 'begin' | 'end';
}

export interface ChangeJournal {
  /** Random per journal record: a new epoch means the record was recreated and bridges resync. */
  readonly epoch: string;
  /** Bumped by one per entry; the newest entry carries it. */
  readonly generation: number;
  /** Oldest first, at most MAX_JOURNAL_ENTRIES. */
  readonly entries: readonly JournalEntry[];
}

export interface StoredJournal {
  readonly journal: ChangeJournal;
  /** KV version of the record: the check-and-set value of the next write. */
  readonly version: number;
  /** The record as read: a writer writes back the fields a later version added along with its own. */
  readonly record: Readonly<Record<string, unknown>>;
}

/**
 * Reads the journal: undefined when it does not exist yet; `corrupt` when the record is there but unreadable
 * (its KV version is still returned, so a writer can replace it with check-and-set). Throws
 * CT_DISCOVERY_NEWER_FORMAT for a journal a later version wrote in a format this one cannot follow.
 */
export async function readChangeJournal(
  root: OpenBaoClient,
): Promise<StoredJournal | { readonly corrupt: true; readonly version: number } | undefined> {
  const secret = await root.kvRead(RECORDS_MOUNT, paths.discoveryJournal);
  if (!secret) return undefined;
  const { format } = secret.data;
  // Not corrupt, only newer: replacing it would throw away every newer writer's entries and resync the fleet.
  if (typeof format === 'number' && Number.isSafeInteger(format) && format > FORMAT)
    throw newerFormat(format, secret.version);
  const journal = parseJournal(secret.data);
  return journal
    ? { journal, version: secret.version, record: secret.data }
    : { corrupt: true, version: secret.version };
}

/** Validates a journal record; undefined when anything in it is not what writers write. */
export function parseJournal(data: Record<string, unknown>): ChangeJournal | undefined {
  const { format, epoch, generation, entries } = data;
  if (format !== FORMAT || typeof epoch !== 'string' || epoch.length === 0 || epoch.length > 64)
    return undefined;
  if (!Number.isSafeInteger(generation) || (generation as number) < 0) return undefined;
  if (!Array.isArray(entries) || entries.length > MAX_JOURNAL_ENTRIES) return undefined;
  const parsed: JournalEntry[] = [];
  let previous = 0;
  for (const raw of entries as unknown[]) {
    const entry = raw as Partial<JournalEntry> | null;
    if (
      !entry ||
      typeof entry !== 'object' ||
      !Number.isSafeInteger(entry.generation) ||
      // Dense: writers number every entry one above the last, so a gap means an entry was taken out.
      (previous !== 0 && entry.generation !== previous + 1) ||
      (entry.generation as number) > (generation as number) ||
      typeof entry.fingerprint !== 'string' ||
      !isFingerprint(entry.fingerprint) ||
      typeof entry.change !== 'string' ||
      entry.change.length === 0 ||
      entry.change.length > MAX_CHANGE_KIND_LENGTH ||
      typeof entry.writer !== 'string' ||
      !/^[0-9a-f]{16}$/.test(entry.writer) ||
      (entry.phase !== 'begin' && entry.phase !== 'end')
    )
      return undefined;
    previous = entry.generation as number;
    // Kept as read, fields a later version added included, so that appending writes them back.
    parsed.push({
      ...entry,
      generation: entry.generation as number,
      fingerprint: entry.fingerprint,
      change: entry.change,
      writer: entry.writer,
      phase: entry.phase,
    });
  }
  if (parsed.length > 0 && parsed[parsed.length - 1].generation !== generation) return undefined;
  return { epoch: epoch as string, generation: generation as number, entries: parsed };
}

/**
 * Creates an empty journal when none exists (cas=0), so that every writer and bridge agrees on one epoch from
 * here on. Returns what is stored afterwards (ours, or the one a concurrent writer created first).
 */
export async function ensureChangeJournal(
  root: OpenBaoClient,
  logger: Logger = silentLogger,
): Promise<StoredJournal> {
  let deletedVersion = 0;
  for (let attempt = 0; attempt < MAX_APPEND_ATTEMPTS; attempt++) {
    const stored = await readChangeJournal(root);
    if (stored && !('corrupt' in stored)) return stored;
    const journal: ChangeJournal = { epoch: randomUUID(), generation: 0, entries: [] };
    if (stored) logCorrupt(logger);
    const record = toRecord(journal);
    try {
      const written = await root.kvWrite(RECORDS_MOUNT, paths.discoveryJournal, record, {
        cas: stored?.version ?? deletedVersion,
      });
      return { journal, version: written.version, record };
    } catch (err) {
      if (!isCloudtaserError(err, 'CT_OPENBAO_CAS_MISMATCH')) throw err;
      if (!stored) deletedVersion = await lastVersion(root);
      await sleep(backoffDelay(attempt, APPEND_BACKOFF));
    }
  }
  throw contended();
}

/**
 * One announcement of a change to one cluster. Call `begin()` right before every record write a bridge must
 * see (it appends `begin` the first time, and again when the last one is older than BEGIN_VALID_MS), and `end()`
 * once after the last one. `end()` never throws: the records are written by then, and a bridge that saw `begin`
 * re-reads the cluster after OPEN_CHANGE_WATCH_MS even without it.
 */
export interface ChangeAnnouncement {
  begin(): Promise<void>;
  end(): Promise<void>;
  /** Whether `begin()` was called (so there is something to end). */
  readonly begun: boolean;
}

export function announceChange(
  client: OpenBaoClient,
  options: { namespaceRoot?: string; fingerprint: string; change: ClusterChange; logger?: Logger },
): ChangeAnnouncement {
  const fingerprint = parseFingerprint(options.fingerprint);
  const appender = appenderFor(
    client,
    validateNamespaceRoot(options.namespaceRoot ?? DEFAULT_NAMESPACE_ROOT),
  );
  const logger = options.logger ?? silentLogger;
  /** The writer id of each `begin` appended (or perhaps appended: a write whose answer was lost), oldest first. */
  const writers: string[] = [];
  let begunAt: number | undefined;
  /** The `begin` being appended: callers at the same moment (writes made together) share it. */
  let beginning: Promise<void> | undefined;
  let ended = false;
  const appendBegin = async () => {
    // A new id per `begin`: the same id again would read as a retry of the first one (the append skips entries
    // already in), and a bridge would keep watching from the first.
    const writer = randomBytes(8).toString('hex');
    writers.push(writer);
    await appender.append({ fingerprint, change: options.change, writer, phase: 'begin' }, logger);
    begunAt = performance.now();
  };
  return {
    async begin() {
      if (begunAt !== undefined && performance.now() - begunAt < BEGIN_VALID_MS) return;
      beginning ??= appendBegin().finally(() => {
        beginning = undefined;
      });
      await beginning;
    },
    async end() {
      if (begunAt === undefined || ended) return;
      ended = true;
      try {
        // One write for all of them (group commit): an `end` whose `begin` never landed only costs a bridge a read.
        await Promise.all(
          writers.map((writer) =>
            appender.append({ fingerprint, change: options.change, writer, phase: 'end' }, logger),
          ),
        );
      } catch (err) {
        logger.warn(
          {
            event: 'discovery.announce_end_failed',
            fingerprintPrefix: fingerprintPrefix(fingerprint),
            change: options.change,
            code: isCloudtaserError(err) ? err.code : 'CT_INTERNAL',
            reason: (err as Error).message,
          },
          `the change is recorded, but bridges will only see it within ${Math.round(OPEN_CHANGE_WATCH_MS / 1000)} s instead of their next poll`,
        );
      }
    },
    get begun() {
      return begunAt !== undefined;
    },
  };
}

// --- private helpers ---

const APPEND_BACKOFF = { initialMs: 10, maxMs: 500 };
/** Entries one write may add: well below the journal's size, so a batch never pushes itself out. */
const MAX_BATCH = 128;

interface PendingEntry {
  readonly entry: Omit<JournalEntry, 'generation'>;
  readonly logger: Logger;
  resolve(): void;
  reject(err: unknown): void;
}

/**
 * Group commit: the announcements of one process (a bridge signing a hundred bootstraps at once, a Terraform run
 * registering clusters in parallel) wait in one queue, and each check-and-set write carries every entry queued
 * meanwhile. Writers then compete per process, not per change, and a burst of N changes costs a few writes
 * instead of N contended ones.
 */
interface JournalAppender {
  append(entry: Omit<JournalEntry, 'generation'>, logger: Logger): Promise<void>;
}

const appenders = new WeakMap<OpenBaoClient, Map<string, JournalAppender>>();

function appenderFor(client: OpenBaoClient, namespaceRoot: string): JournalAppender {
  let byRoot = appenders.get(client);
  if (!byRoot) {
    byRoot = new Map();
    appenders.set(client, byRoot);
  }
  let appender = byRoot.get(namespaceRoot);
  if (!appender) {
    appender = createAppender(client.withNamespace(namespaceRoot));
    byRoot.set(namespaceRoot, appender);
  }
  return appender;
}

function createAppender(root: OpenBaoClient): JournalAppender {
  const queue: PendingEntry[] = [];
  let draining = false;
  const drain = async () => {
    draining = true;
    try {
      while (queue.length > 0) {
        const batch = queue.splice(0, MAX_BATCH);
        try {
          await appendEntries(
            root,
            batch.map((pending) => pending.entry),
            batch[0].logger,
          );
          for (const pending of batch) pending.resolve();
        } catch (err) {
          for (const pending of batch) pending.reject(err);
        }
      }
    } finally {
      draining = false;
    }
  };
  return {
    append(entry, logger) {
      return new Promise<void>((resolve, reject) => {
        queue.push({ entry, logger, resolve, reject });
        if (!draining) void drain();
      });
    },
  };
}

async function appendEntries(
  root: OpenBaoClient,
  batch: ReadonlyArray<Omit<JournalEntry, 'generation'>>,
  logger: Logger,
): Promise<void> {
  let deletedVersion = 0;
  for (let attempt = 0; attempt < MAX_APPEND_ATTEMPTS; attempt++) {
    const stored = await readChangeJournal(root);
    const readable = stored && !('corrupt' in stored) ? stored : undefined;
    const current = readable?.journal;
    // A retried write whose answer was lost may already be in: the writer id and phase identify each entry.
    const landed = new Set(current?.entries.map((e) => `${e.writer}|${e.phase}`) ?? []);
    const missing = batch.filter((e) => !landed.has(`${e.writer}|${e.phase}`));
    if (missing.length === 0) return;
    if (stored && 'corrupt' in stored) logCorrupt(logger);
    let generation = current?.generation ?? 0;
    const added = missing.map((entry) => ({ ...entry, generation: ++generation }));
    const next: ChangeJournal = {
      // A missing or unreadable journal starts a new epoch: bridges cannot trust what they knew of the old one.
      epoch: current?.epoch ?? randomUUID(),
      generation,
      entries: [...(current?.entries ?? []), ...added].slice(-MAX_JOURNAL_ENTRIES),
    };
    try {
      await root.kvWrite(RECORDS_MOUNT, paths.discoveryJournal, toRecord(next, readable?.record), {
        cas: stored?.version ?? deletedVersion,
      });
      return;
    } catch (err) {
      if (!isCloudtaserError(err, 'CT_OPENBAO_CAS_MISMATCH')) throw err;
      if (!stored) deletedVersion = await lastVersion(root);
      await sleep(backoffDelay(attempt, APPEND_BACKOFF));
    }
  }
  throw contended();
}

/**
 * The check-and-set value that replaces a record reads cannot see: a soft-deleted one keeps its last version
 * number (wire-facts A3.1), so cas=0 keeps failing there. Only asked after such a failure.
 */
async function lastVersion(root: OpenBaoClient): Promise<number> {
  const metadata = await root.kvReadMetadata(RECORDS_MOUNT, paths.discoveryJournal);
  return metadata?.currentVersion ?? 0;
}

/** The record to write: `read` (the record as stored) with this version's fields set over it. */
function toRecord(
  journal: ChangeJournal,
  read: Readonly<Record<string, unknown>> = {},
): Record<string, unknown> {
  return {
    ...read,
    format: FORMAT,
    epoch: journal.epoch,
    generation: journal.generation,
    entries: journal.entries.map((e) => ({ ...e })),
  };
}

function logCorrupt(logger: Logger): void {
  logger.warn(
    { event: 'discovery.journal_reset', path: paths.discoveryJournal },
    'the discovery journal in OpenBao was unreadable; starting a new one (every bridge lists all clusters once)',
  );
}

function newerFormat(format: number, version: number): CloudtaserError {
  return new CloudtaserError(
    'CT_DISCOVERY_NEWER_FORMAT',
    `the discovery journal (${RECORDS_MOUNT}/${paths.discoveryJournal}) is in format ${format}, written by a newer cloudtaser; this one reads and writes format ${FORMAT} and leaves the journal as it is: upgrade this cloudtaser (CLI, Terraform provider or bridge) to the version that wrote it`,
    { details: { format, supportedFormat: FORMAT, version } },
  );
}

function contended(): CloudtaserError {
  return new CloudtaserError(
    'CT_DISCOVERY_CONTENDED',
    `the discovery journal (${RECORDS_MOUNT}/${paths.discoveryJournal}) changed under ${MAX_APPEND_ATTEMPTS} check-and-set attempts in a row; too many registrations at once, retry the command`,
  );
}
