/**
 * Records a later cloudtaser writes during a rolling upgrade (a newer CLI, provider or bridge next to this version):
 * the discovery journal with a change kind or a format this version does not know, and a registration record with
 * fields it does not know. This version must not destroy what the newer one wrote, nor make the fleet resync.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClusterDiscovery } from '../../runtime/bridge/discovery.js';
import { silentLogger } from '../../runtime/core/log.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { paths, RECORDS_MOUNT, registerCluster } from '../../runtime/registration/index.js';
import { captureLogger } from '../beacon/helpers.js';
import { expectCode } from '../support/expect-code.js';

let server: OpenBaoTestServer;
let admin: OpenBaoClient;
let root: OpenBaoClient;
/** The bridges' clock (discovery's injectable `now`). */
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

function discovery(logger = silentLogger, resyncIntervalMs = 0) {
  return createClusterDiscovery({
    openbao: admin,
    namespaceRoot: 'cloudtaser',
    logger,
    resyncIntervalMs,
    now: () => clock,
  });
}

async function readJournalRecord() {
  const stored = await root.kvRead(RECORDS_MOUNT, paths.discoveryJournal);
  if (!stored) throw new Error('no journal');
  return {
    ...stored,
    data: stored.data as Record<string, unknown> & {
      format: number;
      epoch: string;
      generation: number;
      entries: Record<string, unknown>[];
    },
  };
}

/** What a newer writer does: append a well-formed `begin` and `end` with check-and-set, in its own vocabulary. */
async function appendAsNewerWriter(
  fingerprint: string,
  change: string,
  extra: { record?: Record<string, unknown>; entry?: Record<string, unknown> } = {},
): Promise<void> {
  const { data, version } = await readJournalRecord();
  const writer = randomBytes(8).toString('hex');
  const entries = [
    ...data.entries,
    { generation: data.generation + 1, fingerprint, change, writer, phase: 'begin', ...extra.entry },
    { generation: data.generation + 2, fingerprint, change, writer, phase: 'end', ...extra.entry },
  ];
  await root.kvWrite(
    RECORDS_MOUNT,
    paths.discoveryJournal,
    { ...data, ...extra.record, generation: data.generation + 2, entries },
    { cas: version },
  );
}

/** Runs `work` with the journal in a format a later version would write, then puts the journal back. */
async function withNewerFormat(work: () => Promise<void>): Promise<void> {
  const { data, version } = await readJournalRecord();
  await root.kvWrite(RECORDS_MOUNT, paths.discoveryJournal, { ...data, format: 2 }, { cas: version });
  try {
    await work();
  } finally {
    const current = await readJournalRecord();
    await root.kvWrite(RECORDS_MOUNT, paths.discoveryJournal, data, { cas: current.version });
  }
}

describe('discovery journal written by a later version', () => {
  it('a bridge reads a change kind it does not know as a change of that cluster: re-read with its trust material, same epoch, no full resync', async () => {
    const a = await registerCluster(admin, { fingerprint: randomUUID() });
    const bridge = discovery();
    await bridge.poll();
    const before = await readJournalRecord();

    await appendAsNewerWriter(a.fingerprint, 'rotate-ca');
    const poll = await bridge.poll();

    expect(poll.resynced).toBe(false);
    expect(poll.resyncReason).toBeUndefined();
    expect([...poll.changed]).toEqual([a.fingerprint]);
    expect([...poll.trustChanged]).toEqual([a.fingerprint]);
    expect((await readJournalRecord()).data.epoch).toBe(before.data.epoch);
    expect((await bridge.poll()).changed.size).toBe(0);
  });

  it('a writer appends to a journal holding a change kind it does not know and keeps the fields it does not know', async () => {
    const a = await registerCluster(admin, { fingerprint: randomUUID() });
    await appendAsNewerWriter(a.fingerprint, 'rotate-ca', {
      record: { compacted_through: 7 },
      entry: { reason: 'scheduled' },
    });
    const before = await readJournalRecord();

    const b = await registerCluster(admin, { fingerprint: randomUUID() });
    const after = await readJournalRecord();

    expect(after.data.epoch).toBe(before.data.epoch);
    expect(after.data.compacted_through).toBe(7);
    expect(after.data.entries.slice(0, before.data.entries.length)).toEqual(before.data.entries);
    expect(after.data.entries.filter((e) => e.change === 'rotate-ca').at(-1)).toMatchObject({
      fingerprint: a.fingerprint,
      reason: 'scheduled',
    });
    expect(after.data.entries.at(-1)).toMatchObject({ fingerprint: b.fingerprint, change: 'register' });
  });

  it('a bridge leaves a journal of a newer format as it is: it lists every cluster when it meets it and then periodically, and logs once naming both formats', async () => {
    const log = captureLogger();
    const bridge = discovery(log.logger, 60_000);
    await bridge.poll();
    const a = await registerCluster(admin, { fingerprint: randomUUID() });
    await withNewerFormat(async () => {
      const stored = await readJournalRecord();

      const met = await bridge.poll();
      expect(met.resyncReason).toBe('newer-journal');
      expect(met.clusters.has(a.fingerprint)).toBe(true);
      expect((await bridge.poll()).resynced).toBe(false);
      expect((await bridge.poll()).resynced).toBe(false);
      clock += 60_001;
      expect((await bridge.poll()).resyncReason).toBe('interval');

      expect(await readJournalRecord()).toEqual(stored);
      const warnings = log.lines.filter((line) => line.event === 'discovery.journal_newer_format');
      expect(warnings).toHaveLength(1);
      expect(warnings[0].msg).toMatch(
        /format 2, written by a newer cloudtaser; this one reads and writes format 1/,
      );
      expect(log.lines.filter((line) => line.event === 'discovery.journal_reset')).toEqual([]);
    });
    // A journal it can follow again: followed from a fresh listing on.
    expect((await bridge.poll()).resyncReason).toBe('start');
    expect((await bridge.poll()).resynced).toBe(false);
  });

  it('a bridge meeting a journal of a newer format still sees a deregistration by the newer writer within a minute, not at the 6-hourly listing', async () => {
    const bridge = discovery(silentLogger, 6 * 3_600_000);
    const a = await registerCluster(admin, { fingerprint: randomUUID() });
    await bridge.poll();
    await withNewerFormat(async () => {
      expect((await bridge.poll()).resyncReason).toBe('newer-journal');
      // The newer writer deregisters a: its records go, and its journal write moves the record's version.
      await root.kvDeleteMetadata(RECORDS_MOUNT, paths.registered(a.fingerprint));
      const { data, version } = await readJournalRecord();
      await root.kvWrite(
        RECORDS_MOUNT,
        paths.discoveryJournal,
        { ...data, generation: data.generation + 1 },
        {
          cas: version,
        },
      );
      // Paced: not on every poll, but within a minute.
      expect((await bridge.poll()).resynced).toBe(false);
      clock += 60_001;
      const seen = await bridge.poll();
      expect(seen.resyncReason).toBe('newer-journal');
      expect(seen.clusters.has(a.fingerprint)).toBe(false);
      // Nothing moved since: no more listings until the interval.
      clock += 60_001;
      expect((await bridge.poll()).resynced).toBe(false);
    });
  });

  it('a writer refuses a journal of a newer format with CT_DISCOVERY_NEWER_FORMAT naming both formats, before writing the registration', async () => {
    await discovery().poll();
    const fingerprint = randomUUID();
    await withNewerFormat(async () => {
      const stored = await readJournalRecord();
      const err = await expectCode(registerCluster(admin, { fingerprint }), 'CT_DISCOVERY_NEWER_FORMAT');
      expect(err.message).toMatch(
        /format 2, written by a newer cloudtaser; this one reads and writes format 1/,
      );
      expect(err.message).toMatch(/upgrade/);
      expect(await readJournalRecord()).toEqual(stored);
      expect(await root.kvRead(RECORDS_MOUNT, paths.registered(fingerprint))).toBeUndefined();
    });
  });
});

describe('registration record written by a later version', () => {
  /** What a later version might add: a setting the bridge of that version enforces. */
  const future = { bootstrap_policy: { require_attestation_after: '2027-01-01T00:00:00Z' } };

  async function addFutureField(fingerprint: string): Promise<void> {
    const stored = await root.kvRead(RECORDS_MOUNT, paths.registered(fingerprint));
    await root.kvWrite(RECORDS_MOUNT, paths.registered(fingerprint), { ...stored!.data, ...future });
  }

  it('a settings change by register keeps the fields a later version added to the record', async () => {
    const fingerprint = randomUUID();
    await registerCluster(admin, { fingerprint });
    await addFutureField(fingerprint);

    const result = await registerCluster(admin, { fingerprint, migration: true });

    expect(result.changed).toBe(true);
    const after = await root.kvRead(RECORDS_MOUNT, paths.registered(fingerprint));
    expect(after!.data).toMatchObject({ ...future, migration_enabled: true });
  });

  it('turning migration off removes it from the record and keeps the fields a later version added', async () => {
    const fingerprint = randomUUID();
    await registerCluster(admin, { fingerprint, migration: true });
    await addFutureField(fingerprint);

    const result = await registerCluster(admin, { fingerprint, migration: false });

    expect(result.migrationEnabled).toBe(false);
    const after = await root.kvRead(RECORDS_MOUNT, paths.registered(fingerprint));
    expect(after!.data).toMatchObject(future);
    expect(after!.data).not.toHaveProperty('migration_enabled');
  });
});
