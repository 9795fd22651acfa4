/**
 * Discovery against writers and OpenBao nodes that do not line up: each case was found by an adversarial review
 * of the journal protocol, and each test failed on the code before its fix (named per test).
 *   - a slow writer re-announces `begin`, writes within its window, then dies;
 *   - a deregistration or a re-arm races a registration or a bootstrap of the same cluster;
 *   - a full resync for a burst that pushed a watched `begin` off the journal;
 *   - behind one address that spreads reads over OpenBao nodes, with a standby that lags (OpenBao >= 2.5 answers
 *     reads on standbys): the journal from an up-to-date node, the cluster from a lagging one, and journal reads
 *     that alternate between nodes.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createClusterDiscovery, SETTLE_POLLS } from '../../runtime/bridge/discovery.js';
import { silentLogger } from '../../runtime/core/log.js';
import {
  type OpenBaoStandby,
  type OpenBaoTestServer,
  startOpenBaoTestServer,
} from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import {
  announceChange,
  BEGIN_VALID_MS,
  deregisterCluster,
  MAX_JOURNAL_ENTRIES,
  markClusterInitialized,
  OPEN_CHANGE_WATCH_MS,
  paths,
  RECORDS_MOUNT,
  readChangeJournal,
  rearmCluster,
  registerCluster,
} from '../../runtime/registration/index.js';
import { captureLogger } from '../beacon/helpers.js';

let server: OpenBaoTestServer;
/** The bridge's connection. */
let admin: OpenBaoClient;
/** Another process (an operator's CLI, a Terraform run), with its own connection. */
let other: OpenBaoClient;
let root: OpenBaoClient;
/** The bridges' clock (discovery's injectable `now`). */
let clock = 0;
/** Added to performance.now, the writers' clock. */
let writerClockOffset = 0;

beforeAll(async () => {
  server = await startOpenBaoTestServer();
  admin = new OpenBaoClient({ address: server.address, token: server.rootToken, retries: 0 });
  other = new OpenBaoClient({ address: server.address, token: server.rootToken, retries: 0 });
  root = admin.withNamespace('cloudtaser');
  // Something registered, so the root namespace, the records mount and the journal exist.
  await registerCluster(admin, { fingerprint: randomUUID() });
  const realNow = performance.now.bind(performance);
  vi.spyOn(performance, 'now').mockImplementation(() => realNow() + writerClockOffset);
});
afterAll(async () => {
  vi.restoreAllMocks();
  await admin.close();
  await other.close();
  await server.close();
});

function discovery(client: OpenBaoClient = admin) {
  return createClusterDiscovery({
    openbao: client,
    namespaceRoot: 'cloudtaser',
    logger: silentLogger,
    resyncIntervalMs: 0,
    now: () => clock,
  });
}

/** A registration record as register writes it, for a writer that dies before its `end`. */
const registeredRecord = (fingerprint: string) => ({
  fingerprint,
  namespace: `cloudtaser/${fingerprint.slice(0, 8)}`,
  ca_sha256: 'e'.repeat(64),
  registered_at: new Date().toISOString(),
});

async function journal() {
  const stored = await readChangeJournal(root);
  if (!stored || 'corrupt' in stored) throw new Error('no journal');
  return stored.journal;
}

async function waitForRequest(match: (path: string, method: string) => boolean): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (server.requestLog().some((entry) => match(entry.path, entry.method))) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error('request never seen');
}

describe('a writer slower than BEGIN_VALID_MS', () => {
  it('re-announces `begin` under a new writer id (the same id was taken for a retry and never appended)', async () => {
    const fingerprint = randomUUID();
    const writer = announceChange(admin, { fingerprint, change: 'register' });
    await writer.begin();
    const before = await journal();
    writerClockOffset += BEGIN_VALID_MS + 1_000;
    await writer.begin();
    const after = await journal();
    const begins = after.entries.filter((e) => e.fingerprint === fingerprint && e.phase === 'begin');
    expect(after.generation).toBe(before.generation + 1);
    expect(begins).toHaveLength(2);
    expect(new Set(begins.map((e) => e.writer)).size).toBe(2);
    await writer.end();
    const ends = (await journal()).entries.filter((e) => e.fingerprint === fingerprint && e.phase === 'end');
    // Every id it began under is ended, so no bridge is left watching the first.
    expect(new Set(ends.map((e) => e.writer))).toEqual(new Set(begins.map((e) => e.writer)));
  });

  it('is read by a running bridge after its record write, when it re-announced, wrote within its window and died', async () => {
    const bridge = discovery();
    await bridge.poll();
    const fingerprint = randomUUID();
    const writer = announceChange(admin, { fingerprint, change: 'register' });
    await writer.begin(); // t = 0
    await bridge.poll();
    writerClockOffset += 100_000;
    clock += 100_000;
    await writer.begin(); // t = 100 s: re-announced before a late record write
    await bridge.poll();
    clock += OPEN_CHANGE_WATCH_MS - 100_000 + 1_000; // t = 151 s: the first begin's watch ran out
    await bridge.poll();
    clock += 10_000; // t = 161 s: the record lands (61 s after the newest begin), and the writer dies
    await root.kvWrite(RECORDS_MOUNT, paths.registered(fingerprint), registeredRecord(fingerprint));
    clock += OPEN_CHANGE_WATCH_MS;
    await bridge.poll();
    // Before the fix: false until the 6-hourly resync (the watch ran from the first begin only).
    expect((await bridge.poll()).clusters.has(fingerprint)).toBe(true);
  });
});

describe('a deregistration or re-arm racing a registration or bootstrap of the same cluster', () => {
  it('announces the deregistration even when its first read found nothing, so a running bridge drops the cluster', async () => {
    const bridge = discovery();
    await bridge.poll();
    const fingerprint = randomUUID();
    // The deregistration's deletes are slow, after its read found no registration.
    server.injectFault({
      pathPattern: new RegExp(`metadata/${paths.registered(fingerprint)}$`),
      method: 'DELETE',
      delayMs: 1500,
    });
    const deregistering = deregisterCluster(other, { fingerprint });
    await waitForRequest(
      (path, method) => method === 'GET' && path.endsWith(`data/${paths.registered(fingerprint)}`),
    );
    // Meanwhile the cluster is registered (Terraform, a CI job), announced, and the bridge serves it.
    await registerCluster(admin, { fingerprint });
    expect((await bridge.poll()).clusters.has(fingerprint)).toBe(true);
    await deregistering;
    expect((await discovery().poll()).clusters.has(fingerprint)).toBe(false);
    // Before the fix: still served (no journal entry for the deletes).
    expect((await bridge.poll()).clusters.has(fingerprint)).toBe(false);
  });

  it('announces the re-arm even when its first read found nothing, so a running bridge sees the cluster uninitialized', async () => {
    const fingerprint = randomUUID();
    await registerCluster(admin, { fingerprint });
    const bridge = discovery();
    await bridge.poll();
    server.injectFault({
      pathPattern: new RegExp(`metadata/${paths.initialized(fingerprint)}$`),
      method: 'DELETE',
      delayMs: 1500,
    });
    const rearming = rearmCluster(other, { fingerprint });
    await waitForRequest(
      (path, method) => method === 'GET' && path.endsWith(`data/${paths.initialized(fingerprint)}`),
    );
    await markClusterInitialized(admin, { fingerprint, brokerCertSha256: 'a'.repeat(64) });
    expect((await bridge.poll()).clusters.get(fingerprint)?.initialized).toBe(true);
    await rearming;
    expect((await discovery().poll()).clusters.get(fingerprint)?.initialized).toBe(false);
    // Before the fix: still initialized, with the old broker key.
    expect((await bridge.poll()).clusters.get(fingerprint)?.initialized).toBe(false);
  });
});

describe('a change whose reads never show it', () => {
  it('costs a bounded number of reads and one warning: a forged `end` for a cluster nobody registered', async () => {
    // A server of its own: the journal of the other tests holds announcements of their own.
    const own = await startOpenBaoTestServer();
    const client = new OpenBaoClient({ address: own.address, token: own.rootToken, retries: 0 });
    const log = captureLogger();
    const bridge = createClusterDiscovery({
      openbao: client,
      namespaceRoot: 'cloudtaser',
      logger: log.logger,
      resyncIntervalMs: 0,
      now: () => clock,
    });
    const reads: number[] = [];
    const nobody = randomUUID();
    try {
      await registerCluster(client, { fingerprint: randomUUID() });
      await bridge.poll();
      const forged = announceChange(client, { fingerprint: nobody, change: 'register' });
      await forged.begin();
      await forged.end();
      for (let poll = 0; poll < SETTLE_POLLS + 3; poll++) {
        const before = own.requestLog().length;
        const seen = await bridge.poll();
        expect(seen.clusters.has(nobody)).toBe(false);
        reads.push(own.requestLog().length - before);
      }
    } finally {
      await client.close();
      await own.close();
    }
    // The journal each poll; the cluster (registration and initialization records) at the poll that saw the
    // `end` and at SETTLE_POLLS more; then one request per poll again.
    expect(reads).toEqual([
      ...Array.from({ length: SETTLE_POLLS + 1 }, () => 3),
      ...Array.from({ length: 2 }, () => 1),
    ]);
    const warnings = log.lines.filter((line) => line.event === 'discovery.changes_not_visible');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ clusters: 1, first: [`${nobody.slice(0, 8)} (register)`] });
  });
});

describe('a full resync', () => {
  it("keeps watching a `begin` it saw when a 'behind' resync no longer finds it in the journal", async () => {
    const bridge = discovery();
    await bridge.poll();
    const fingerprint = randomUUID();
    const writer = announceChange(admin, { fingerprint, change: 'register' });
    await writer.begin();
    await bridge.poll();
    const watched = bridge.openChanges;
    // A burst of re-registrations elsewhere pushes that begin off the journal before the next poll.
    const registered = randomUUID();
    await registerCluster(admin, { fingerprint: registered });
    const burst = Array.from({ length: MAX_JOURNAL_ENTRIES / 2 + 1 }, () =>
      announceChange(admin, { fingerprint: registered, change: 'register' }),
    );
    await Promise.all(burst.map((announcement) => announcement.begin()));
    await Promise.all(burst.map((announcement) => announcement.end()));
    clock += 10_000;
    expect((await bridge.poll()).resyncReason).toBe('behind');
    expect(bridge.openChanges).toBe(watched);
    // The slow writer's record lands after that listing (within its window), and it dies before `end`.
    await root.kvWrite(RECORDS_MOUNT, paths.registered(fingerprint), registeredRecord(fingerprint));
    clock += 2 * OPEN_CHANGE_WATCH_MS;
    await bridge.poll();
    // Before the fix: the watch was dropped with the resync, and the registration never seen.
    expect((await bridge.poll()).clusters.has(fingerprint)).toBe(true);
  });
});

describe('behind one address that spreads reads over an active node and a lagging standby', () => {
  let standby: OpenBaoStandby;
  let proxy: http.Server;
  let proxyAddress: string;
  /** Which node the next journal read goes to; cluster records always come from the standby. */
  let journalTo: 'active' | 'standby' = 'active';

  beforeAll(async () => {
    standby = await server.startStandby({ readLagMs: 1500 });
    // The load balancer, deterministic for the test: it routes each request by path.
    proxy = http.createServer((req, res) => {
      const url = req.url ?? '/';
      const to = new URL(
        url.includes(paths.discoveryJournal)
          ? journalTo === 'active'
            ? server.address
            : standby.address
          : url.includes('/clusters/')
            ? standby.address
            : server.address,
      );
      const upstream = http.request(
        { host: to.hostname, port: to.port, method: req.method, path: url, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    proxyAddress = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    await new Promise((resolve) => setTimeout(resolve, 1600)); // the standby catches up with the setup
  });
  afterAll(async () => {
    await new Promise((resolve) => proxy.close(resolve));
    await standby.close();
  });

  it('reads a registration again whose `end` came from an up-to-date node and whose record from the lagging one', async () => {
    const client = new OpenBaoClient({ address: proxyAddress, token: server.rootToken, retries: 0 });
    try {
      const bridge = discovery(client);
      journalTo = 'active';
      await bridge.poll();
      const fingerprint = randomUUID();
      await registerCluster(admin, { fingerprint });
      const first = await bridge.poll(); // the journal from the active node, the record from the standby
      expect(first.changed.has(fingerprint)).toBe(true);
      expect(first.clusters.has(fingerprint)).toBe(false); // the standby does not show it yet
      await new Promise((resolve) => setTimeout(resolve, 1600));
      // Before the fix: never read again (nothing new in the journal), so never served until the 6-hourly resync.
      expect((await bridge.poll()).clusters.has(fingerprint)).toBe(true);
      // Once it shows, it is not read again.
      expect((await bridge.poll()).changed.has(fingerprint)).toBe(false);
    } finally {
      await client.close();
    }
  });

  it('does not list the whole fleet when journal reads alternate between nodes at different points', async () => {
    const client = new OpenBaoClient({ address: proxyAddress, token: server.rootToken, retries: 0 });
    try {
      const bridge = discovery(client);
      journalTo = 'active';
      await bridge.poll();
      await registerCluster(admin, { fingerprint: randomUUID() });
      let resyncs = 0;
      for (const to of ['active', 'standby', 'active', 'standby'] as const) {
        journalTo = to;
        if ((await bridge.poll()).resynced) resyncs++;
      }
      // Before the fix: 2 (each read from the standby looked like a restored stale copy).
      expect(resyncs).toBe(0);
    } finally {
      await client.close();
    }
  });
});
