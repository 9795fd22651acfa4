/**
 * Shard membership with Kubernetes Leases, against the in-repo Kubernetes API test server (its Lease semantics
 * follow the API server: optimistic concurrency on resourceVersion, 409 on a stale write). Rounds are driven by
 * `roundNow()` so every step is deterministic; the loop's own timer is set far away.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  type LeaseApi,
  monotonicNow,
  type ShardMembership,
  type ShardMembershipOptions,
  shardOf,
  startShardMembership,
  validateShardSettings,
} from '../../runtime/bridge/shards.js';
import { isCloudtaserError } from '../../runtime/core/errors.js';
import {
  type KubeAuditEntry,
  type KubeTestServer,
  startKubeTestServer,
} from '../../runtime/dev/kube/index.js';
import { KubeClient } from '../../runtime/kube/index.js';
import { captureLogger } from '../beacon/helpers.js';

const NAMESPACE = 'openbao';
let kube: KubeTestServer;
let dir: string;
let client: KubeClient;
const audit: KubeAuditEntry[] = [];
const running: ShardMembership[] = [];

beforeAll(async () => {
  kube = await startKubeTestServer({ audit: (entry) => audit.push(entry) });
  await kube.createNamespace(NAMESPACE);
  dir = await mkdtemp(join(tmpdir(), 'ct-shards-'));
  // As the bridge's service account, with exactly the rights the chart's Role gives it (templates/role.yaml).
  await kube.createServiceAccount(NAMESPACE, 'bridge');
  kube.grant(
    { namespace: NAMESPACE, name: 'bridge' },
    {
      verbs: ['list', 'create', 'update', 'delete'],
      apiGroups: ['coordination.k8s.io'],
      resources: ['leases'],
      namespace: NAMESPACE,
    },
  );
  await kube.writeKubeconfig(join(dir, 'bridge'), {
    token: kube.issueServiceAccountToken(NAMESPACE, 'bridge', { expirationSeconds: 3600 }),
  });
  client = KubeClient.fromConnection({ kind: 'kubeconfig', path: join(dir, 'bridge') });
});
afterAll(async () => {
  client?.close();
  await kube?.close();
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  for (const member of running.splice(0)) await member.close();
});

let prefixCounter = 0;
/** Each test gets its own Lease prefix, so the tests do not see each other's Leases. */
function fleet(defaults: Partial<ShardMembershipOptions> = {}) {
  const prefix = `t${++prefixCounter}-bridge`;
  return async (identity: string, options: Partial<ShardMembershipOptions> = {}) => {
    const member = await startShardMembership({
      leases: client,
      namespace: NAMESPACE,
      shards: 8,
      replicasPerShard: 1,
      identity,
      prefix,
      leaseDurationSeconds: 1,
      renewIntervalMs: 3_600_000,
      ...defaults,
      ...options,
    });
    running.push(member);
    return member;
  };
}

/** Rounds on every member until `done` holds (each round: renew, rebalance). */
async function settle(members: ShardMembership[], done: () => boolean, what: string) {
  await vi.waitFor(
    async () => {
      for (const member of members) await member.roundNow();
      if (!done()) throw new Error(`not yet: ${what}`);
    },
    { timeout: 15_000, interval: 50 },
  );
}

const held = (member: ShardMembership) => member.status().held;

describe('shard membership', () => {
  it('splits the shards between replicas without overlap and covers every one', async () => {
    const start = fleet();
    const members = [await start('bridge-a'), await start('bridge-b'), await start('bridge-c')];
    await settle(
      members,
      () => members.flatMap(held).length === 8 && members.every((m) => held(m).length <= 3),
      'every shard held once, at most ceil(8/3) each',
    );
    const all = members.flatMap(held).sort((a, b) => a - b);
    expect(all).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    for (const member of members) {
      expect(member.status()).toMatchObject({ members: 3, target: 3, shards: 8, replicasPerShard: 1 });
      expect(held(member).length).toBeGreaterThanOrEqual(2);
    }
    // Every cluster is served by exactly one replica.
    for (let i = 0; i < 200; i++) {
      const fingerprint = randomUUID();
      expect(members.filter((m) => m.serves(fingerprint))).toHaveLength(1);
    }
  });

  it('with two replicas per shard, serves each shard from two different replicas', async () => {
    const start = fleet({ replicasPerShard: 2 });
    const members = [await start('bridge-a'), await start('bridge-b'), await start('bridge-c')];
    await settle(members, () => members.flatMap(held).length === 16, 'every shard held twice');
    for (let shard = 0; shard < 8; shard++)
      expect(members.filter((m) => held(m).includes(shard))).toHaveLength(2);
    const leases = await client.listLeases(NAMESPACE, { labelSelector: 'cloudtaser.io/lease-kind=shard' });
    const mine = leases.filter((l) => l.metadata.name.startsWith(`t${prefixCounter}-bridge-shard-`));
    expect(mine).toHaveLength(16);
    // No replica holds both slots of one shard: a replica restart never leaves a shard unserved.
    for (let shard = 0; shard < 8; shard++) {
      const holders = mine
        .filter((l) => l.metadata.name.includes(`-shard-${shard}-`))
        .map((l) => l.spec.holderIdentity);
      expect(new Set(holders).size).toBe(2);
    }
  });

  it("names each replica's address on its member Lease, and gives a peer the addresses of a cluster's other holders", async () => {
    const start = fleet({ replicasPerShard: 2 });
    const addresses: Record<string, string> = {
      'bridge-a': '10.0.0.1',
      'bridge-b': '10.0.0.2',
      'bridge-c': '10.0.0.3',
    };
    const members = Object.entries(addresses).map(([identity, address]) => start(identity, { address }));
    const [a, b, c] = await Promise.all(members);
    await settle([a, b, c], () => [a, b, c].flatMap(held).length === 16, 'every shard held twice');
    for (const member of [a, b, c]) await member.roundNow(); // each sees the Leases the others took last
    for (let i = 0; i < 50; i++) {
      const fingerprint = randomUUID();
      const shard = shardOf(fingerprint, 8);
      for (const [member, identity] of [
        [a, 'bridge-a'],
        [b, 'bridge-b'],
        [c, 'bridge-c'],
      ] as const) {
        // The other holders of the shard, never the replica asking.
        const expected = a
          .status()
          .holders[shard].filter((holder) => holder !== identity)
          .map((holder) => addresses[holder])
          .sort();
        expect(member.holderAddresses(fingerprint)?.sort()).toEqual(expected);
        expect(expected).toHaveLength(held(member).includes(shard) ? 1 : 2);
      }
    }
    const leases = await client.listLeases(NAMESPACE, { labelSelector: 'cloudtaser.io/lease-kind=member' });
    const mine = leases.filter((l) => l.metadata.name.startsWith(`t${prefixCounter}-bridge-member-`));
    expect(mine.map((l) => l.metadata.annotations?.['cloudtaser.io/peer-address']).sort()).toEqual(
      Object.values(addresses),
    );

    // A holder that names no address (a replica before 0.2.0): nobody narrows, every peer is asked.
    const start2 = fleet({ replicasPerShard: 1, shards: 2 });
    const [x, y] = [await start2('bridge-x', { address: '10.0.1.1' }), await start2('bridge-y')];
    await settle([x, y], () => held(x).length === 1 && held(y).length === 1, 'one shard each');
    await x.roundNow(); // x sees the Lease y took in the last round
    const onY = Array.from({ length: 100 }, () => randomUUID()).find((fp) => y.serves(fp))!;
    const onX = Array.from({ length: 100 }, () => randomUUID()).find((fp) => x.serves(fp))!;
    expect(x.holderAddresses(onY)).toBeUndefined();
    expect(y.holderAddresses(onX)).toEqual(['10.0.1.1']);
  });

  it('gives a joining replica its share: the others release their extras, it takes them', async () => {
    const start = fleet();
    const a = await start('bridge-a');
    const b = await start('bridge-b');
    await settle([a, b], () => held(a).length + held(b).length === 8, 'two replicas hold everything');
    expect(held(a).length).toBe(4);
    const changes: number[][] = [];
    const c = await start('bridge-c', { onChange: (shards) => changes.push([...shards]) });
    await settle(
      [a, b, c],
      () => held(c).length >= 2 && [a, b, c].flatMap(held).length === 8,
      'the newcomer holds its share and every shard is held',
    );
    expect([a, b, c].flatMap(held).sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(changes.at(-1)).toEqual(held(c));
  });

  it('with two slots per shard, gives a joining replica its share and leaves no slot free', async () => {
    // Before the fix: the two settled replicas released overlapping shards, the newcomer could take only one slot
    // of each, and nobody at its share took the other: [11, 11, 9] of 32 slots, one shard on one replica for good.
    const start = fleet({ shards: 16, replicasPerShard: 2 });
    const a = await start('bridge-a');
    const b = await start('bridge-b');
    await settle([a, b], () => held(a).length === 16 && held(b).length === 16, 'both hold every shard');
    const c = await start('bridge-c');
    await settle(
      [a, b, c],
      () => held(a).length + held(b).length + held(c).length === 32 && held(c).length >= 10,
      'every slot held, the newcomer at its share',
    );
    for (const member of [a, b, c]) expect(held(member).length).toBeLessThanOrEqual(11);
    // A few more rounds: it stays that way (no flapping).
    for (let round = 0; round < 5; round++) for (const member of [a, b, c]) await member.roundNow();
    expect(held(a).length + held(b).length + held(c).length).toBe(32);
  });

  it("takes over a crashed replica's shards once its Leases stop changing for their duration", async () => {
    const start = fleet();
    const a = await start('bridge-a');
    const crashed = await start('bridge-b');
    await settle([a, crashed], () => held(a).length === 4 && held(crashed).length === 4, 'an even split');
    const orphaned = held(crashed);
    // bridge-b stops renewing (no release: a crash). Remove it from the cleanup list so nothing releases for it.
    running.splice(running.indexOf(crashed), 1);
    const takenAt = performance.now();
    await settle([a], () => held(a).length === 8, 'bridge-a serves every shard');
    // Not before the Leases' duration (1 s) on bridge-a's own clock.
    expect(performance.now() - takenAt).toBeGreaterThanOrEqual(900);
    for (const shard of orphaned) expect(held(a)).toContain(shard);
  });

  it('never takes a live Lease because its own clock runs ahead (expiry is judged by what it saw change)', async () => {
    const start = fleet();
    const a = await start('bridge-a');
    await a.roundNow();
    expect(held(a)).toHaveLength(8);
    // bridge-b's clock is an hour ahead: every renewTime bridge-a wrote looks long expired to it.
    const ahead = await start('bridge-b', { now: () => Date.now() + 3_600_000 });
    await ahead.roundNow();
    await a.roundNow();
    await ahead.roundNow();
    // It takes only what bridge-a released for the new fair share, never a Lease bridge-a still renews.
    expect(held(a).length + held(ahead).length).toBe(8);
    expect(held(a).filter((s) => held(ahead).includes(s))).toEqual([]);
  });

  it('judges expiry on a monotonic clock by default, which a step of the wall clock does not move', () => {
    // Before the fix the default was Date.now: an NTP step back of ten minutes right after bridge-a saw a crashed
    // replica's last renewal delayed the takeover by ten minutes (reproduced with an injected stepped clock).
    const realNow = Date.now;
    const first = monotonicNow();
    const stepped = vi.spyOn(Date, 'now').mockImplementation(() => realNow() - 600_000);
    try {
      const second = monotonicNow();
      expect(second).toBeGreaterThanOrEqual(first);
      expect(second - first).toBeLessThan(1_000);
    } finally {
      stepped.mockRestore();
    }
  });

  it('gives each API call a deadline under the Lease duration, so one hung request does not hand its shards away', async () => {
    const start = fleet();
    let hangNext = false;
    // A request that never answers, as a stuck connection does; like the real client it ends when its signal does.
    const hanging: LeaseApi = {
      listLeases: (namespace, options) => {
        if (!hangNext) return client.listLeases(namespace, options);
        hangNext = false;
        return new Promise((_, reject) =>
          options?.signal?.addEventListener('abort', () => reject(options.signal?.reason), { once: true }),
        );
      },
      createLease: (namespace, lease, options) => client.createLease(namespace, lease, options),
      updateLease: (namespace, lease, options) => client.updateLease(namespace, lease, options),
      deleteLease: (namespace, name, options) => client.deleteLease(namespace, name, options),
    };
    const a = await start('bridge-a', { leases: hanging });
    const b = await start('bridge-b');
    await settle([a, b], () => held(a).length === 4 && held(b).length === 4, 'an even split');
    const before = held(a);
    hangNext = true;
    const started = performance.now();
    await a.roundNow(); // ends at the call deadline (a third of the 1 s duration), not the client's 15 s
    expect(performance.now() - started).toBeLessThan(900);
    expect(a.status().lastError).toBeDefined();
    await a.roundNow(); // the next round renews in time
    await b.roundNow();
    expect(held(b).filter((shard) => before.includes(shard))).toEqual([]);
    expect(held(a)).toEqual(before);
  });

  it('serves a shard it took in a round that failed later on, as fail static serves what it holds', async () => {
    const start = fleet();
    let failSecondTake = false;
    let takes = 0;
    // A take writes acquireTime = renewTime; a renewal keeps the old acquireTime. The API server throttles (429)
    // the second take of the round.
    const isTake = (lease: { spec: { acquireTime?: string; renewTime?: string } }) =>
      lease.spec.acquireTime !== undefined && lease.spec.acquireTime === lease.spec.renewTime;
    const throttled: LeaseApi = {
      listLeases: (namespace, options) => client.listLeases(namespace, options),
      createLease: (namespace, lease, options) => client.createLease(namespace, lease, options),
      updateLease: async (namespace, lease, options) => {
        if (failSecondTake && lease.metadata.name.includes('-shard-') && isTake(lease) && ++takes >= 2)
          throw new Error('the Kubernetes API server answered with 429: too many requests');
        return client.updateLease(namespace, lease, options);
      },
      deleteLease: (namespace, name, options) => client.deleteLease(namespace, name, options),
    };
    const a = await start('bridge-a', { leases: throttled });
    const b = await start('bridge-b');
    await settle([a, b], () => held(a).length === 4 && held(b).length === 4, 'an even split');
    // bridge-b leaves (releasing its Leases); bridge-a's next round takes one of them, then fails on the next take.
    await b.close();
    running.splice(running.indexOf(b), 1);
    failSecondTake = true;
    await a.roundNow();
    expect(a.status().lastError).toBeDefined();
    const mine = (await client.listLeases(NAMESPACE))
      .filter((lease) => lease.metadata.name.includes('-shard-') && lease.spec.holderIdentity === 'bridge-a')
      .map((lease) => Number(lease.metadata.name.split('-shard-')[1].split('-')[0]));
    expect(mine).toHaveLength(5);
    // Before the fix: served stayed at the 4 of the last good round while the Leases named bridge-a for 5, and
    // no other replica takes a Lease bridge-a renews.
    expect(held(a)).toEqual([...mine].sort((x, y) => x - y));
  });

  it('loses a shard to a rogue writer of its Lease and says so; capacity only, the shard is taken back once the rogue stops', async () => {
    const logs = captureLogger();
    const start = fleet({ logger: logs.logger });
    const a = await start('bridge-a', { shards: 2 });
    await a.roundNow();
    expect(held(a)).toEqual([0, 1]);
    const name = `t${prefixCounter}-bridge-shard-0-0`;
    const [lease] = (await client.listLeases(NAMESPACE)).filter((l) => l.metadata.name === name);
    await client.updateLease(NAMESPACE, { ...lease, spec: { ...lease.spec, holderIdentity: 'rogue' } });
    await a.roundNow();
    expect(held(a)).toEqual([1]);
    expect(logs.lines.find((l) => l.event === 'bridge.shard_lost')).toMatchObject({
      shard: 0,
      holder: 'rogue',
    });
    // The rogue never renews: after the duration the shard is free again and bridge-a serves it.
    await settle([a], () => held(a).length === 2, 'shard 0 back');
  });

  it('keeps serving what it holds when the API server cannot be reached, and logs it once', async () => {
    const logs = captureLogger();
    const unreachable = await mkdtemp(join(tmpdir(), 'ct-shards-down-'));
    const lone = await startKubeTestServer();
    await lone.createNamespace(NAMESPACE);
    await lone.writeKubeconfig(join(unreachable, 'admin'));
    const loneClient = KubeClient.fromConnection({ kind: 'kubeconfig', path: join(unreachable, 'admin') });
    try {
      const a = await startShardMembership({
        leases: loneClient,
        namespace: NAMESPACE,
        shards: 4,
        replicasPerShard: 1,
        identity: 'bridge-a',
        leaseDurationSeconds: 1,
        renewIntervalMs: 3_600_000,
        logger: logs.logger,
      });
      expect(held(a)).toEqual([0, 1, 2, 3]);
      await lone.close();
      await a.roundNow();
      await a.roundNow();
      expect(held(a)).toEqual([0, 1, 2, 3]);
      const fingerprint = randomUUID();
      expect(a.serves(fingerprint)).toBe(true);
      expect(a.status().lastError).toMatch(/^CT_KUBE_UNREACHABLE: /);
      expect(logs.lines.filter((l) => l.event === 'bridge.shards_round_failed')).toHaveLength(1);
      await a.close();
    } finally {
      loneClient.close();
      await rm(unreachable, { recursive: true, force: true });
    }
  });

  it('closes within a bound when the API server stops answering, leaving its Leases to expire', async () => {
    const start = fleet();
    let blackholed = false;
    // The API server keeps the connection and never answers: every call hangs until its signal gives up.
    const hang = (options?: { signal?: AbortSignal }) =>
      new Promise<never>((_, reject) =>
        options?.signal?.addEventListener('abort', () => reject(new Error('gave up')), { once: true }),
      );
    const leases: LeaseApi = {
      listLeases: (ns, o) => (blackholed ? hang(o) : client.listLeases(ns, o)),
      createLease: (ns, l, o) => (blackholed ? hang(o) : client.createLease(ns, l, o)),
      updateLease: (ns, l, o) => (blackholed ? hang(o) : client.updateLease(ns, l, o)),
      deleteLease: (ns, n, o) => (blackholed ? hang(o) : client.deleteLease(ns, n, o)),
    };
    const a = await start('bridge-a', { leases });
    expect(held(a)).toHaveLength(8);
    blackholed = true;
    const started = performance.now();
    running.splice(running.indexOf(a), 1);
    await a.close();
    const took = performance.now() - started;
    expect(took).toBeGreaterThanOrEqual(2_900);
    expect(took).toBeLessThan(10_000);
    // Nothing was released: another replica gets the shards once the Leases expire (1 s here).
    const b = await start('bridge-b');
    await settle([b], () => held(b).length === 8, 'bridge-b takes the expired Leases');
  });

  it('costs the API server the same few requests per round whatever the fleet size', async () => {
    const start = fleet();
    const a = await start('bridge-a', { shards: 16, replicasPerShard: 2 });
    const b = await start('bridge-b', { shards: 16, replicasPerShard: 2 });
    await settle([a, b], () => held(a).length === 16 && held(b).length === 16, 'both hold every shard');
    audit.length = 0;
    await a.roundNow();
    // One LIST, the member Lease, and the 16 slots it holds: shards are fixed, clusters do not appear here.
    const verbs = audit.map((e) => e.verb);
    expect(verbs.filter((v) => v === 'list')).toHaveLength(1);
    expect(verbs.filter((v) => v === 'update')).toHaveLength(17);
    expect(verbs).toHaveLength(18);
  });

  it('releases its Leases on close, so another replica serves them at once', async () => {
    const start = fleet();
    const a = await start('bridge-a');
    const b = await start('bridge-b');
    await settle([a, b], () => held(a).length === 4 && held(b).length === 4, 'an even split');
    await b.close();
    await a.close(); // a second close of a closed member is harmless
    running.splice(0);
    const c = await start('bridge-c');
    await c.roundNow();
    // bridge-b released its four (holder emptied): free at once; bridge-a's were released too.
    expect(held(c)).toHaveLength(8);
  });
});

describe('shard settings', () => {
  it('refuses shard counts and replica counts outside their range with CT_INVALID_ARGUMENT', () => {
    for (const [shards, replicas] of [
      [0, 1],
      [1025, 1],
      [1.5, 1],
      [16, 0],
      [16, 4],
    ]) {
      let thrown: unknown;
      try {
        validateShardSettings(shards, replicas);
      } catch (err) {
        thrown = err;
      }
      expect(isCloudtaserError(thrown, 'CT_INVALID_ARGUMENT'), `${shards}/${replicas}`).toBe(true);
    }
    expect(() => validateShardSettings(16, 2)).not.toThrow();
  });

  it('refuses to start without an identity', async () => {
    await expect(
      startShardMembership({ leases: client, namespace: NAMESPACE, shards: 4, identity: '' }),
    ).rejects.toMatchObject({ code: 'CT_INVALID_ARGUMENT' });
  });

  it('spreads clusters evenly and stably over the shards', () => {
    const counts = new Array(16).fill(0);
    const fingerprints = Array.from({ length: 16_000 }, () => randomUUID());
    for (const fingerprint of fingerprints) counts[shardOf(fingerprint, 16)]++;
    for (const count of counts) expect(Math.abs(count - 1000)).toBeLessThan(150);
    // Stable: the same fingerprint, in either case, lands in the same shard.
    expect(shardOf(fingerprints[0].toUpperCase(), 16)).toBe(shardOf(fingerprints[0], 16));
  });
});
