/**
 * Discovery at a cost that does not grow with the fleet (issue 16): the bridge's poll reads the discovery journal
 * and only the clusters it names. Requests are counted on the OpenBao test server, as OpenBao would see them.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClusterDiscovery } from '../../runtime/bridge/discovery.js';
import { silentLogger } from '../../runtime/core/log.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import {
  announceChange,
  deregisterCluster,
  listRegisteredClusters,
  MAX_JOURNAL_ENTRIES,
  markClusterInitialized,
  paths,
  RECORDS_MOUNT,
  readChangeJournal,
  rearmCluster,
  registerCluster,
} from '../../runtime/registration/index.js';

let server: OpenBaoTestServer;
let admin: OpenBaoClient;
let root: OpenBaoClient;
/** A clock the test moves, for the open-change watch. */
let clock = 0;

beforeAll(async () => {
  server = await startOpenBaoTestServer();
  admin = new OpenBaoClient({ address: server.address, token: server.rootToken, retries: 0 });
  root = admin.withNamespace('cloudtaser');
});
afterAll(async () => {
  await admin.close();
  await server.close();
});

function discovery(options: { resyncIntervalMs?: number } = {}) {
  return createClusterDiscovery({
    openbao: admin,
    namespaceRoot: 'cloudtaser',
    logger: silentLogger,
    openChangeWatchMs: 60_000,
    resyncIntervalMs: options.resyncIntervalMs ?? 0,
    now: () => clock,
  });
}

/** Successful writes of the journal record so far. */
const journalWrites = () =>
  server
    .requestLog()
    .filter((e) => e.method === 'POST' && e.path.endsWith(`data/${paths.discoveryJournal}`) && e.status < 300)
    .length;

/** OpenBao requests `work` makes, as the server logged them. */
async function requestsDuring<T>(work: () => Promise<T>): Promise<{ result: T; requests: number }> {
  const before = server.requestLog().length;
  const result = await work();
  return { result, requests: server.requestLog().length - before };
}

describe('discovery before anything is registered', () => {
  it('finds no cluster in one request per poll while the root namespace does not exist yet, then lists the first', async () => {
    const empty = await startOpenBaoTestServer();
    const client = new OpenBaoClient({ address: empty.address, token: empty.rootToken, retries: 0 });
    try {
      const bridge = createClusterDiscovery({
        openbao: client,
        namespaceRoot: 'cloudtaser',
        logger: silentLogger,
      });
      expect((await bridge.poll()).clusters.size).toBe(0);
      const before = empty.requestLog().length;
      expect((await bridge.poll()).clusters.size).toBe(0);
      expect(empty.requestLog().length - before).toBe(1);
      const first = await registerCluster(client, { fingerprint: randomUUID() });
      const seen = await bridge.poll();
      expect(seen.resynced).toBe(true);
      expect([...seen.clusters.keys()]).toEqual([first.fingerprint]);
    } finally {
      await client.close();
      await empty.close();
    }
  });
});

describe('discovery journal', () => {
  const fleet: string[] = [];

  beforeAll(async () => {
    for (let i = 0; i < 60; i++)
      fleet.push((await registerCluster(admin, { fingerprint: randomUUID() })).fingerprint);
  }, 60_000);

  it('polls a fleet where nothing changed with one OpenBao request, where listing costs two per cluster', async () => {
    const bridge = discovery();
    const first = await bridge.poll();
    expect(first.resynced).toBe(true);
    expect(first.clusters.size).toBeGreaterThanOrEqual(fleet.length);
    const steady = await requestsDuring(() => bridge.poll());
    expect(steady.result.resynced).toBe(false);
    expect(steady.result.changed.size).toBe(0);
    expect(steady.requests).toBe(1);
    expect(steady.result.clusters.size).toBe(first.clusters.size);
    // The algorithm it replaces, in the same run: one LIST plus two reads per cluster.
    const listing = await requestsDuring(() => listRegisteredClusters(admin));
    expect(listing.requests).toBe(1 + 2 * first.clusters.size);
  });

  it('sees a new registration, a deregistration, a bootstrap, a re-arm and an attested re-bootstrap within one poll', async () => {
    const bridge = discovery();
    await bridge.poll();
    const fingerprint = randomUUID();
    await registerCluster(admin, { fingerprint });
    let seen = await bridge.poll();
    expect(seen.changed.has(fingerprint)).toBe(true);
    expect(seen.clusters.get(fingerprint)).toMatchObject({ initialized: false });

    await markClusterInitialized(admin, {
      fingerprint,
      brokerCertSha256: 'a'.repeat(64),
      brokerKeySha256: 'b'.repeat(64),
    });
    seen = await bridge.poll();
    expect(seen.clusters.get(fingerprint)).toMatchObject({
      initialized: true,
      brokerKeySha256: 'b'.repeat(64),
    });

    // An attested re-bootstrap rewrites `initialized` for a new broker key: the bridge must see the new key.
    const version = (await root.kvRead(RECORDS_MOUNT, paths.initialized(fingerprint)))!.version;
    await markClusterInitialized(admin, {
      fingerprint,
      brokerCertSha256: 'c'.repeat(64),
      brokerKeySha256: 'd'.repeat(64),
      replacesVersion: version,
    });
    seen = await bridge.poll();
    expect(seen.clusters.get(fingerprint)?.brokerKeySha256).toBe('d'.repeat(64));

    await rearmCluster(admin, { fingerprint });
    seen = await bridge.poll();
    expect(seen.clusters.get(fingerprint)).toMatchObject({ initialized: false });
    expect(seen.clusters.get(fingerprint)?.brokerKeySha256).toBeUndefined();

    await deregisterCluster(admin, { fingerprint });
    seen = await bridge.poll();
    expect(seen.changed.has(fingerprint)).toBe(true);
    expect(seen.clusters.has(fingerprint)).toBe(false);
    expect(seen.resynced).toBe(false);
  });

  it('reads only the clusters that changed: one poll after two changes costs the journal plus two reads each', async () => {
    const bridge = discovery();
    await bridge.poll();
    const a = randomUUID();
    const b = randomUUID();
    await registerCluster(admin, { fingerprint: a });
    await registerCluster(admin, { fingerprint: b });
    const poll = await requestsDuring(() => bridge.poll());
    expect([...poll.result.changed].sort()).toEqual([a, b].sort());
    expect(poll.requests).toBe(1 + 2 * 2);
  });

  it('lands both entries of two registrations racing for the journal, and a poll sees both clusters', async () => {
    const bridge = discovery();
    await bridge.poll();
    const racers = Array.from({ length: 6 }, () => randomUUID());
    await Promise.all(racers.map((fingerprint) => registerCluster(admin, { fingerprint })));
    const journal = await readChangeJournal(root);
    if (!journal || 'corrupt' in journal) throw new Error('journal missing');
    for (const fingerprint of racers) {
      const mine = journal.journal.entries.filter((e) => e.fingerprint === fingerprint).map((e) => e.phase);
      expect(mine).toEqual(['begin', 'end']);
    }
    // Generations are dense: no entry was written over another.
    const generations = journal.journal.entries.map((e) => e.generation);
    expect(generations).toEqual(generations.map((_, i) => generations[0] + i));
    const seen = await bridge.poll();
    for (const fingerprint of racers) expect(seen.clusters.has(fingerprint)).toBe(true);
  });

  it('carries a burst of announcements from one process in a few check-and-set writes (group commit)', async () => {
    const writesBefore = journalWrites();
    const fingerprints = new Set<string>(Array.from({ length: 100 }, () => randomUUID()));
    // Deregistrations of unknown clusters: what the reads show (nothing) agrees with them, so bridges of the later
    // tests do not read these clusters again.
    const burst = [...fingerprints].map((fingerprint) =>
      announceChange(admin, { fingerprint, change: 'deregister' }),
    );
    await Promise.all(burst.map((announcement) => announcement.begin()));
    await Promise.all(burst.map((announcement) => announcement.end()));
    expect(journalWrites() - writesBefore).toBeLessThanOrEqual(6);
    const journal = await readChangeJournal(root);
    if (!journal || 'corrupt' in journal) throw new Error('journal missing');
    expect(journal.journal.entries.filter((e) => fingerprints.has(e.fingerprint))).toHaveLength(200);
  });

  it('appends one begin for writes of one run made together (register writes its auth config and certificate at once)', async () => {
    const fingerprint = randomUUID();
    const announcement = announceChange(admin, { fingerprint, change: 'deregister' });
    await Promise.all([announcement.begin(), announcement.begin(), announcement.begin()]);
    await announcement.begin();
    await announcement.end();
    const journal = await readChangeJournal(root);
    if (!journal || 'corrupt' in journal) throw new Error('journal missing');
    const mine = journal.journal.entries.filter((e) => e.fingerprint === fingerprint);
    expect(mine.map((e) => e.phase)).toEqual(['begin', 'end']);
  });

  it('resyncs in full when it fell further behind than the journal reaches, and misses nothing', async () => {
    const bridge = discovery();
    await bridge.poll();
    const gone = fleet.pop()!;
    await deregisterCluster(admin, { fingerprint: gone });
    // Enough other changes (re-registrations of a cluster that stays registered) to push the deregistration, and
    // everything the bridge has not read, off the journal.
    const noise = fleet[0];
    for (let i = 0; i < MAX_JOURNAL_ENTRIES / 2 + 1; i++) {
      const announcement = announceChange(admin, { fingerprint: noise, change: 'register' });
      await announcement.begin();
      await announcement.end();
    }
    const seen = await bridge.poll();
    expect(seen.resynced).toBe(true);
    expect(seen.resyncReason).toBe('behind');
    expect(seen.clusters.has(gone)).toBe(false);
    expect(seen.clusters.has(fleet[0])).toBe(true);
    const steady = await requestsDuring(() => bridge.poll());
    expect(steady.requests).toBe(1);
  });

  it('after a full resync marks for a trust reload only what may have changed it, so the next reconnect storm does not read every cluster again', async () => {
    const bridge = discovery();
    await bridge.poll();
    const gone = fleet.pop()!;
    await deregisterCluster(admin, { fingerprint: gone });
    const added = randomUUID();
    await registerCluster(admin, { fingerprint: added });
    // Bootstraps and other changes that do not touch trust material push everything off the journal.
    const noise = randomUUID();
    for (let i = 0; i < MAX_JOURNAL_ENTRIES / 2 + 1; i++) {
      const announcement = announceChange(admin, { fingerprint: noise, change: 'initialize' });
      await announcement.begin();
      await announcement.end();
    }
    const seen = await bridge.poll();
    expect(seen.resyncReason).toBe('behind');
    // Every cluster is looked at again; only the new and the deregistered one reload their CA and certificate.
    expect(seen.changed.has(fleet[0])).toBe(true);
    expect([...seen.trustChanged].sort()).toEqual([added, gone].sort());
  });

  it('never misses a writer that died between its record write and the journal update', async () => {
    const bridge = discovery();
    await bridge.poll();
    const fingerprint = randomUUID();
    // The writer announces, and the bridge polls before the record lands (the unlucky interleaving).
    const writer = announceChange(admin, { fingerprint, change: 'register' });
    await writer.begin();
    expect((await bridge.poll()).clusters.has(fingerprint)).toBe(false);
    expect(bridge.openChanges).toBe(1);
    // The record lands; the writer dies before its `end`.
    await root.kvWrite(RECORDS_MOUNT, paths.registered(fingerprint), {
      fingerprint,
      namespace: `cloudtaser/${fingerprint.slice(0, 8)}`,
      ca_sha256: 'e'.repeat(64),
      registered_at: new Date().toISOString(),
    });
    // A bridge that starts now lists it directly (its full resync reads after the write).
    const fresh = discovery();
    expect((await fresh.poll()).clusters.has(fingerprint)).toBe(true);
    // The running bridge re-reads the cluster once the writer's window has passed.
    clock += 30_000;
    expect((await bridge.poll()).clusters.has(fingerprint)).toBe(false);
    clock += 30_001;
    const late = await bridge.poll();
    expect(late.changed.has(fingerprint)).toBe(true);
    expect(late.clusters.get(fingerprint)).toMatchObject({ operationalHash: 'e'.repeat(64) });
    expect(bridge.openChanges).toBe(0);
    await root.kvDeleteMetadata(RECORDS_MOUNT, paths.registered(fingerprint));
  });

  it('watches a change left open when its full resync listed the cluster before the dead writer wrote', async () => {
    const fingerprint = randomUUID();
    const writer = announceChange(admin, { fingerprint, change: 'register' });
    await writer.begin();
    const bridge = discovery();
    const first = await bridge.poll();
    expect(first.resynced).toBe(true);
    expect(first.clusters.has(fingerprint)).toBe(false);
    // Ours, and the dead writer of the test before, whose `begin` is still in the journal.
    expect(bridge.openChanges).toBe(2);
    await root.kvWrite(RECORDS_MOUNT, paths.registered(fingerprint), {
      fingerprint,
      namespace: `cloudtaser/${fingerprint.slice(0, 8)}`,
      ca_sha256: 'f'.repeat(64),
      registered_at: new Date().toISOString(),
    });
    clock += 60_001;
    expect((await bridge.poll()).clusters.has(fingerprint)).toBe(true);
    await root.kvDeleteMetadata(RECORDS_MOUNT, paths.registered(fingerprint));
  });

  it('replaces an unreadable journal with a new epoch, and every bridge resyncs once instead of trusting it', async () => {
    const bridge = discovery();
    await bridge.poll();
    const before = await readChangeJournal(root);
    if (!before || 'corrupt' in before) throw new Error('journal missing');
    for (const hostile of [
      { format: 1, epoch: 'x', generation: 5, entries: 'not a list' },
      {
        format: 1,
        epoch: 'x',
        generation: 5,
        entries: [
          {
            generation: 5,
            fingerprint: '../../sys',
            change: 'register',
            writer: '0'.repeat(16),
            phase: 'end',
          },
        ],
      },
      { format: 1, epoch: 'x', generation: 5, entries: new Array(MAX_JOURNAL_ENTRIES + 1).fill(null) },
      { format: 0, epoch: 'x', generation: 5, entries: [] },
      // An entry taken out of the middle (generations 3 and 5 with no 4): history with a hole is not trusted.
      {
        format: 1,
        epoch: 'x',
        generation: 5,
        entries: [3, 5].map((generation) => ({
          generation,
          fingerprint: fleet[0],
          change: 'deregister',
          writer: `${generation}`.repeat(16),
          phase: 'end',
        })),
      },
    ]) {
      const current = (await root.kvRead(RECORDS_MOUNT, paths.discoveryJournal))!;
      await root.kvWrite(RECORDS_MOUNT, paths.discoveryJournal, hostile, { cas: current.version });
      expect(await readChangeJournal(root)).toMatchObject({ corrupt: true });
      const seen = await bridge.poll();
      expect(seen.resynced).toBe(true);
      expect(seen.clusters.has(fleet[0])).toBe(true);
      const after = await readChangeJournal(root);
      if (!after || 'corrupt' in after) throw new Error('the bridge left the journal unreadable');
      expect(after.journal.epoch).not.toBe(before.journal.epoch);
      expect((await bridge.poll()).resynced).toBe(false);
    }
    // A writer meeting an unreadable journal starts a new one too, and its change is seen.
    const current = (await root.kvRead(RECORDS_MOUNT, paths.discoveryJournal))!;
    await root.kvWrite(RECORDS_MOUNT, paths.discoveryJournal, { junk: true }, { cas: current.version });
    const fingerprint = randomUUID();
    await registerCluster(admin, { fingerprint });
    expect((await bridge.poll()).clusters.has(fingerprint)).toBe(true);
  });

  it('resyncs instead of trusting a restored stale copy of the journal, and sees the deregistration the copy leaves out', async () => {
    const bridge = discovery();
    await bridge.poll();
    const stale = (await root.kvRead(RECORDS_MOUNT, paths.discoveryJournal))!;
    const gone = fleet.pop()!;
    await deregisterCluster(admin, { fingerprint: gone });
    // A rogue (or a restore of a backup) puts the old journal back before the bridge polls: same epoch and the
    // generation the bridge already saw, so nothing looks new, but OpenBao counted the writes.
    const current = (await root.kvRead(RECORDS_MOUNT, paths.discoveryJournal))!;
    await root.kvWrite(RECORDS_MOUNT, paths.discoveryJournal, stale.data, { cas: current.version });
    const seen = await bridge.poll();
    expect(seen.resynced).toBe(true);
    expect(seen.resyncReason).toBe('rewritten');
    expect(seen.clusters.has(gone)).toBe(false);
    expect(seen.trustChanged.has(gone)).toBe(true);
    expect((await bridge.poll()).resynced).toBe(false);
  });

  it('resyncs when a rogue writer replaces the entries of a deregistration with others, instead of missing it', async () => {
    const bridge = discovery();
    await bridge.poll();
    const gone = fleet.pop()!;
    await deregisterCluster(admin, { fingerprint: gone });
    const current = (await root.kvRead(RECORDS_MOUNT, paths.discoveryJournal))!;
    const entries = current.data.entries as Array<Record<string, unknown>>;
    const decoy = randomUUID();
    // The deregistration's begin and end become two harmless-looking entries about another cluster, with the
    // same generations, so the journal parses and moves forward as far as the bridge expects.
    const forged = entries.map((entry) =>
      entry.fingerprint === gone ? { ...entry, fingerprint: decoy, change: 'initialize' } : entry,
    );
    await root.kvWrite(
      RECORDS_MOUNT,
      paths.discoveryJournal,
      { ...current.data, entries: forged },
      { cas: current.version },
    );
    const seen = await bridge.poll();
    expect(seen.resyncReason).toBe('rewritten');
    expect(seen.clusters.has(gone)).toBe(false);
  });

  it('resyncs when the entry it last read was rewritten under the same generation', async () => {
    const bridge = discovery();
    await bridge.poll();
    const current = (await root.kvRead(RECORDS_MOUNT, paths.discoveryJournal))!;
    const entries = current.data.entries as Array<Record<string, unknown>>;
    const newest = entries[entries.length - 1];
    // The newest entry the bridge read now names another writer, and one extra entry pays for the write.
    const forged = [
      ...entries.slice(0, -1),
      { ...newest, writer: 'f'.repeat(16) },
      {
        ...newest,
        generation: (newest.generation as number) + 1,
        writer: 'e'.repeat(16),
        change: 'initialize',
      },
    ];
    await root.kvWrite(
      RECORDS_MOUNT,
      paths.discoveryJournal,
      { ...current.data, generation: (current.data.generation as number) + 1, entries: forged },
      { cas: current.version },
    );
    expect((await bridge.poll()).resyncReason).toBe('rewritten');
  });

  it('re-reads the records for a replayed entry and serves neither a deregistered cluster nor a replaced broker key again', async () => {
    const bridge = discovery();
    const fingerprint = randomUUID();
    await registerCluster(admin, { fingerprint });
    await markClusterInitialized(admin, {
      fingerprint,
      brokerCertSha256: '1'.repeat(64),
      brokerKeySha256: '2'.repeat(64),
    });
    const version = (await root.kvRead(RECORDS_MOUNT, paths.initialized(fingerprint)))!.version;
    await markClusterInitialized(admin, {
      fingerprint,
      brokerCertSha256: '3'.repeat(64),
      brokerKeySha256: '4'.repeat(64),
      replacesVersion: version,
    });
    expect((await bridge.poll()).clusters.get(fingerprint)?.brokerKeySha256).toBe('4'.repeat(64));
    // Replaying the first bootstrap's announcement only makes the bridge read the record: the new key stays.
    for (const change of ['initialize', 'register'] as const) {
      const replay = announceChange(admin, { fingerprint, change });
      await replay.begin();
      await replay.end();
      const seen = await bridge.poll();
      expect(seen.changed.has(fingerprint)).toBe(true);
      expect(seen.clusters.get(fingerprint)?.brokerKeySha256).toBe('4'.repeat(64));
    }
    await deregisterCluster(admin, { fingerprint });
    expect((await bridge.poll()).clusters.has(fingerprint)).toBe(false);
    // Replaying the registration's announcement after the deregistration brings nothing back.
    const replay = announceChange(admin, { fingerprint, change: 'register' });
    await replay.begin();
    await replay.end();
    const seen = await bridge.poll();
    expect(seen.changed.has(fingerprint)).toBe(true);
    expect(seen.clusters.has(fingerprint)).toBe(false);
  });

  it('starts a journal where none exists (an install from before journals) and then polls it in one request', async () => {
    await root.kvDeleteMetadata(RECORDS_MOUNT, paths.discoveryJournal);
    const bridge = discovery();
    const first = await bridge.poll();
    expect(first.resynced).toBe(true);
    expect(await readChangeJournal(root)).toMatchObject({ journal: { generation: 0, entries: [] } });
    expect((await requestsDuring(() => bridge.poll())).requests).toBe(1);
  });

  it('lists everything again after the anti-entropy interval, for writers that do not journal', async () => {
    const bridge = discovery({ resyncIntervalMs: 100_000 });
    await bridge.poll();
    const fingerprint = randomUUID();
    // Written behind the journal's back (an old CLI, a hand edit): invisible until the interval is up.
    await root.kvWrite(RECORDS_MOUNT, paths.registered(fingerprint), {
      fingerprint,
      namespace: `cloudtaser/${fingerprint.slice(0, 8)}`,
      ca_sha256: '1'.repeat(64),
      registered_at: new Date().toISOString(),
    });
    expect((await bridge.poll()).clusters.has(fingerprint)).toBe(false);
    clock += 100_001;
    const seen = await bridge.poll();
    expect(seen.resyncReason).toBe('interval');
    expect(seen.clusters.has(fingerprint)).toBe(true);
    await root.kvDeleteMetadata(RECORDS_MOUNT, paths.registered(fingerprint));
  });
});
