/**
 * Shard Leases while the Kubernetes API server is down or loses answers, against the in-repo Kubernetes API test
 * server. The outage is played in front of the client (every call of a replica is refused while it lasts, as a
 * refused connection is), with Lease durations of a second or two, so an outage longer than the duration takes a
 * few seconds. Rounds are driven by `roundNow()`; the loop's own timer is set far away.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type LeaseApi,
  type ShardMembership,
  type ShardMembershipOptions,
  startShardMembership,
} from '../../runtime/bridge/shards.js';
import { CloudtaserError } from '../../runtime/core/errors.js';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { KubeClient } from '../../runtime/kube/index.js';
import { waitUntil } from '../support/wait.js';

const NAMESPACE = 'openbao';
let kube: KubeTestServer;
let dir: string;
let client: KubeClient;
const running: ShardMembership[] = [];

beforeAll(async () => {
  kube = await startKubeTestServer();
  await kube.createNamespace(NAMESPACE);
  dir = await mkdtemp(join(tmpdir(), 'ct-shards-outage-'));
  await kube.writeKubeconfig(join(dir, 'admin'));
  client = KubeClient.fromConnection({ kind: 'kubeconfig', path: join(dir, 'admin') });
});
afterAll(async () => {
  client?.close();
  await kube?.close();
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  for (const member of running.splice(0)) await member.close();
});

const DURATION_MS = 1_000;
let prefixCounter = 0;

/**
 * Three replicas with two slots per shard (the chart's default) behind switches for the API server: `api.down`
 * refuses every replica's calls, `api.refuseList` a replica's list (its round fails), `dead` a replica's calls for
 * good (its pod is gone).
 */
async function outageFleet() {
  const shards = 8;
  const prefix = `o${++prefixCounter}-bridge`;
  const api = { down: false, refuseList: (_identity: string) => false };
  const dead = new Set<string>();
  const dropped: string[] = [];
  const refuse = (identity: string, list = false) => {
    if (api.down || dead.has(identity) || (list && api.refuseList(identity)))
      throw new CloudtaserError(
        'CT_KUBE_UNREACHABLE',
        'the Kubernetes API server at https://127.0.0.1 could not be reached (ECONNREFUSED)',
      );
  };
  const leasesOf = (identity: string): LeaseApi => ({
    listLeases: async (ns, o) => {
      refuse(identity, true);
      return client.listLeases(ns, o);
    },
    createLease: async (ns, l, o) => {
      refuse(identity);
      return client.createLease(ns, l, o);
    },
    updateLease: async (ns, l, o) => {
      refuse(identity);
      return client.updateLease(ns, l, o);
    },
    deleteLease: async (ns, n, o) => {
      refuse(identity);
      return client.deleteLease(ns, n, o);
    },
  });
  const start = async (identity: string) => {
    let previous = new Set<number>();
    const member = await startShardMembership({
      leases: leasesOf(identity),
      namespace: NAMESPACE,
      shards,
      replicasPerShard: 2,
      identity,
      prefix,
      leaseDurationSeconds: DURATION_MS / 1000,
      renewIntervalMs: 3_600_000,
      // Every shard a replica stops serving closes the tunnels of that shard's clusters on it.
      onChange: (held) => {
        for (const shard of previous)
          if (!held.has(shard)) dropped.push(`${identity} dropped shard ${shard}`);
        previous = new Set(held);
      },
    });
    previous = new Set(member.status().held);
    running.push(member);
    return member;
  };
  const members = [await start('bridge-a'), await start('bridge-b'), await start('bridge-c')];
  const slots = shards * 2;
  await waitUntil(
    async () => {
      for (const member of members) await member.roundNow();
      // 16 slots, a share of ceil(16 / 3) = 6: every slot held, at least 4 each.
      return members.flatMap(held).length === slots && members.every((m) => held(m).length >= 4);
    },
    { what: 'every slot held, a share each', timeoutMs: 15_000, intervalMs: 50 },
  );
  // And stable: a few more rounds move nothing.
  for (let round = 0; round < 5; round++) for (const member of members) await member.roundNow();
  dropped.length = 0;
  return { members, api, dead, dropped, slots };
}

const held = (member: ShardMembership) => member.status().held;

/** The test server's Lease calls, with some of them played otherwise. */
const leasesWith = (played: Partial<LeaseApi>): LeaseApi => ({
  listLeases: (ns, o) => client.listLeases(ns, o),
  createLease: (ns, lease, o) => client.createLease(ns, lease, o),
  updateLease: (ns, lease, o) => client.updateLease(ns, lease, o),
  deleteLease: (ns, name, o) => client.deleteLease(ns, name, o),
  ...played,
});

/** Rounds on the members, one each about every 100 ms, until `ms` have passed or `done` holds. */
async function roundsFor(members: ShardMembership[], ms: number, done: () => boolean = () => false) {
  const started = performance.now();
  await waitUntil(
    async () => {
      for (const member of members) await member.roundNow();
      return done() || performance.now() - started >= ms;
    },
    { what: `rounds for ${ms} ms`, timeoutMs: ms + 15_000, intervalMs: 100 },
  );
  return performance.now() - started;
}

/**
 * Rounds on two survivors from the moment the API server answers again until they serve every slot between them:
 * when the first of the dead replica's slots moved to them, and when the last did.
 */
async function replacement(survivors: ShardMembership[], slots: number) {
  const count = () => survivors.reduce((sum, member) => sum + held(member).length, 0);
  const before = count();
  const firstMs = await roundsFor(survivors, 10 * DURATION_MS, () => count() > before);
  const allMs = firstMs + (await roundsFor(survivors, 10 * DURATION_MS, () => count() === slots));
  expect(count()).toBe(slots);
  return { firstMs, allMs };
}

describe('shard Leases across an API server outage', () => {
  it('moves no shard when the API server comes back after an outage longer than the Lease duration that every replica saw', async () => {
    const { members, api, dropped } = await outageFleet();
    const [a] = members;
    const before = members.map(held);
    // The outage starts right after a round of bridge-a, so it saw the others' last renewals before going blind
    // (in a live fleet the rounds interleave: some replica always has).
    await a.roundNow();
    api.down = true;
    await roundsFor(members, 3 * DURATION_MS);
    expect(members.map(held)).toEqual(before); // fail static while down
    api.down = false;
    // bridge-a lists first. Before the fix it judged the others by changes it saw before the outage, counted
    // itself the only live replica and took their slots; they dropped them, and got them back a round later.
    await roundsFor(members, 2 * DURATION_MS);
    expect(dropped).toEqual([]);
    expect(members.map(held)).toEqual(before);
  }, 30_000);

  it('replaces a replica that died during the outage about one Lease duration after the API server answers again', async () => {
    const { members, api, dead, dropped, slots } = await outageFleet();
    const [a, b, c] = members;
    const survivorsBefore = [held(a), held(b)];
    await a.roundNow(); // bridge-a saw every peer's last renewal before the outage, as in the test above
    api.down = true;
    await roundsFor(members, DURATION_MS / 2);
    dead.add('bridge-c'); // its pod is gone: it never renews again
    await roundsFor([a, b], 3 * DURATION_MS);
    api.down = false;
    const orphaned = held(c);
    const { firstMs, allMs } = await replacement([a, b], slots);
    // Each survivor gave bridge-c's Leases a full duration to change once it could see them again, and no more.
    // Before the fix bridge-a took slots at its first round after the outage, judging by what it saw before.
    expect(firstMs).toBeGreaterThanOrEqual(0.9 * DURATION_MS);
    expect(allMs).toBeLessThan(3 * DURATION_MS);
    for (const shard of orphaned) expect([...held(a), ...held(b)]).toContain(shard);
    // The survivors kept what they served: only bridge-c's slots moved.
    expect(dropped).toEqual([]);
    for (const [i, survivor] of [a, b].entries())
      for (const shard of survivorsBefore[i]) expect(held(survivor)).toContain(shard);
  }, 40_000);

  it('replaces a replica that died during the outage even while the API server keeps failing every other round', async () => {
    const { members, api, dead, dropped, slots } = await outageFleet();
    const [a, b] = members;
    await a.roundNow(); // bridge-a saw every peer's last renewal before the outage
    api.down = true;
    dead.add('bridge-c');
    await roundsFor([a, b], 3 * DURATION_MS);
    // Back, but flapping: every second round of each survivor is refused, so every answered round follows a
    // failed one. Each Lease version gets its fresh duration once, not after every failure.
    const listsOf = new Map<string, number>();
    api.refuseList = (identity) => {
      listsOf.set(identity, (listsOf.get(identity) ?? 0) + 1);
      return (listsOf.get(identity) ?? 0) % 2 === 0;
    };
    api.down = false;
    const { firstMs, allMs } = await replacement([a, b], slots);
    expect(firstMs).toBeGreaterThanOrEqual(0.9 * DURATION_MS);
    expect(allMs).toBeLessThan(4 * DURATION_MS);
    expect(dropped).toEqual([]);
  }, 40_000);
});

describe('shard Leases when an answer is lost', () => {
  it('serves and renews at its next round a Lease the API server wrote for it whose answer was lost', async () => {
    // The take's create reaches the API server and is applied, but the answer is lost (the call's deadline ends
    // first on a slow connection). The Lease names bridge-a, so no other replica takes it before it expires.
    const prefix = `lost${++prefixCounter}-bridge`;
    let loseNextCreate = true;
    const leases = leasesWith({
      createLease: async (ns, lease, o) => {
        const written = await client.createLease(ns, lease, o);
        if (loseNextCreate && lease.metadata.name.includes('-shard-')) {
          loseNextCreate = false;
          throw new CloudtaserError(
            'CT_KUBE_UNREACHABLE',
            'the Kubernetes API server did not answer within 666 ms',
          );
        }
        return written;
      },
    });
    const common: Omit<ShardMembershipOptions, 'identity' | 'leases'> = {
      namespace: NAMESPACE,
      shards: 2,
      replicasPerShard: 1,
      prefix,
      leaseDurationSeconds: 2,
      renewIntervalMs: 3_600_000,
    };
    const a = await startShardMembership({ ...common, leases, identity: 'bridge-a' });
    running.push(a);
    const b = await startShardMembership({ ...common, leases: client, identity: 'bridge-b' });
    running.push(b);
    const slotLeases = async () =>
      (await client.listLeases(NAMESPACE)).filter((l) => l.metadata.name.startsWith(`${prefix}-shard-`));
    const shardOfLease = (name: string) => Number(name.slice(`${prefix}-shard-`.length).split('-')[0]);
    const lost = (await slotLeases()).find((l) => l.spec.holderIdentity === 'bridge-a');
    if (!lost) throw new Error('the lost create left no Lease naming bridge-a');
    const lostShard = shardOfLease(lost.metadata.name);
    expect(held(a)).not.toContain(lostShard);
    // Its very next round lists the Lease that names it: it serves the shard from then on, and renews it.
    await a.roundNow();
    expect(held(a)).toContain(lostShard);
    const renewed = (await slotLeases()).find((l) => l.metadata.name === lost.metadata.name);
    expect(renewed?.spec.holderIdentity).toBe('bridge-a');
    expect(renewed?.metadata.resourceVersion).not.toBe(lost.metadata.resourceVersion);
    // Longer than the Lease's duration later it is still bridge-a's: renewed, so bridge-b never took it.
    await roundsFor([a, b], 2_500);
    expect(held(a)).toContain(lostShard);
    expect(held(b)).not.toContain(lostShard);
    expect(held(a).length + held(b).length).toBe(2);
  }, 30_000);

  it('does not adopt back a slot whose release failed: it expires and the replica under its share takes it', async () => {
    // bridge-a holds all 4 shards alone; when bridge-b joins, a is over its share and releases 2, but every
    // release (an update that empties the holder) fails: those Leases still name bridge-a. They must expire for
    // bridge-b, not be adopted back by bridge-a's next round (which would renew them, so b never gets its share).
    const prefix = `rel${++prefixCounter}-bridge`;
    const leases = leasesWith({
      updateLease: async (ns, lease, o) => {
        if (lease.spec.holderIdentity === '')
          throw new CloudtaserError('CT_KUBE_UNREACHABLE', 'the Kubernetes API server did not answer');
        return client.updateLease(ns, lease, o);
      },
    });
    const common: Omit<ShardMembershipOptions, 'identity' | 'leases'> = {
      namespace: NAMESPACE,
      shards: 4,
      replicasPerShard: 1,
      prefix,
      leaseDurationSeconds: 1,
      renewIntervalMs: 3_600_000,
    };
    const a = await startShardMembership({ ...common, leases, identity: 'bridge-a' });
    running.push(a);
    await waitUntil(
      async () => {
        await a.roundNow();
        return held(a).length === 4;
      },
      { what: 'bridge-a holds every shard', intervalMs: 50 },
    );
    const b = await startShardMembership({ ...common, leases: client, identity: 'bridge-b' });
    running.push(b);
    await roundsFor([a, b], 5_000, () => held(a).length === 2 && held(b).length === 2);
    expect([held(a).length, held(b).length]).toEqual([2, 2]);
  }, 30_000);
});
