/**
 * Bridge replicas sharded with Kubernetes Leases (docs/scaling.md): each cluster is served (waiters, tunnels) by
 * the replica holding its shard only; when that replica stops, another takes the shard and the cluster's broker
 * comes back on it without a bootstrap. Leases are capacity, never trust: a replica that serves a shard it does
 * not hold is still held to the cluster CA and the recorded broker key (covered by the trust tests).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  type BridgeHandle,
  type BridgeMetrics,
  type BridgeTiming,
  createBridgeMetrics,
} from '../../runtime/bridge/index.js';
import { shardOf } from '../../runtime/bridge/shards.js';
import type { BrokerHandle } from '../../runtime/broker/index.js';
import { fingerprintPrefix } from '../../runtime/core/hashes.js';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { KubeClient } from '../../runtime/kube/index.js';
import type { RegistrationResult } from '../../runtime/registration/index.js';
import {
  FAST_BRIDGE_TIMING,
  type Replicas,
  type SecretStore,
  startReplicas,
  startSecretStore,
  startTestBridge,
  startTestBroker,
} from './fixtures.js';

const NAMESPACE = 'openbao';
const SHARDS = 4;
let store: SecretStore;
let replicas: Replicas;
let kube: KubeTestServer;
let leases: KubeClient;
let dir: string;
const running: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  store = await startSecretStore();
  replicas = await startReplicas(1);
  kube = await startKubeTestServer();
  await kube.createNamespace(NAMESPACE);
  dir = await mkdtemp(join(tmpdir(), 'ct-sharding-'));
  await kube.writeKubeconfig(join(dir, 'admin'));
  leases = KubeClient.fromConnection({ kind: 'kubeconfig', path: join(dir, 'admin') });
});
afterAll(async () => {
  leases?.close();
  await kube?.close();
  await replicas?.close();
  await store?.close();
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  for (const handle of running.splice(0).reverse()) await handle.close();
});

function bridge(
  identity: string,
  metrics?: BridgeMetrics,
  timing?: Partial<BridgeTiming>,
): Promise<BridgeHandle> {
  return startTestBridge({
    openbao: store.bridge,
    metrics,
    beacons: [replicas.address],
    ...(timing ? { timing: { ...FAST_BRIDGE_TIMING, ...timing } } : {}),
    sharding: {
      leases,
      namespace: NAMESPACE,
      shards: SHARDS,
      replicasPerShard: 1,
      identity,
      leaseDurationSeconds: 1,
      renewIntervalMs: 250,
    },
  }).then((handle) => {
    running.push(handle);
    return handle;
  });
}

const served = (b: BridgeHandle) =>
  b
    .status()
    .clusters.map((c) => c.fingerprintPrefix)
    .sort();

/** At least `count` new registrations, and enough that every shard has some (shardOf is a hash: check, not hope). */
async function clustersInEveryShard(count: number): Promise<RegistrationResult[]> {
  const clusters: RegistrationResult[] = [];
  while (
    clusters.length < count ||
    new Set(clusters.map((c) => shardOf(c.fingerprint, SHARDS))).size < SHARDS
  )
    clusters.push(await store.register());
  return clusters;
}

/** A broker per cluster, each operational (closed after the test). */
async function operationalBrokers(clusters: readonly RegistrationResult[]): Promise<BrokerHandle[]> {
  const brokers: BrokerHandle[] = [];
  for (const cluster of clusters) {
    const broker = await startTestBroker({ fingerprint: cluster.fingerprint, beacons: [replicas.address] });
    running.push(broker);
    brokers.push(broker);
  }
  await Promise.all(brokers.map((broker) => broker.waitForPhase('operational', 30_000)));
  return brokers;
}

describe('bridge replicas sharded with Leases', () => {
  it('serve disjoint clusters that together cover the fleet, and a stopped replica’s clusters move to the other without a bootstrap', async () => {
    const clusters = await clustersInEveryShard(8);
    const metrics = createBridgeMetrics({ processMetrics: false });
    const a = await bridge('bridge-a', metrics);
    const b = await bridge('bridge-b');
    const prefixes = clusters.map((c) => fingerprintPrefix(c.fingerprint)).sort();
    await vi.waitFor(
      () => {
        const both = [...served(a), ...served(b)].sort();
        expect(both).toEqual(prefixes);
        expect(served(a).length).toBeGreaterThan(0);
        expect(served(b).length).toBeGreaterThan(0);
      },
      { timeout: 15_000, interval: 100 },
    );
    expect(a.status().shards).toMatchObject({ shards: SHARDS, members: 2, target: 2 });
    const exposition = await metrics.registry.metrics();
    expect(exposition).toContain('cloudtaser_bridge_shards{kind="held"} 2');
    expect(exposition).toContain('cloudtaser_bridge_shards{kind="members"} 2');
    expect(exposition).toContain('cloudtaser_bridge_shards{kind="round_failing"} 0');
    expect(served(a).filter((p) => served(b).includes(p))).toEqual([]);

    const brokers = await operationalBrokers(clusters);
    const signedBefore = a.status().bootstrapsSigned + b.status().bootstrapsSigned;
    expect(signedBefore).toBe(clusters.length);
    // Each tunnel is on the replica that serves the cluster, and only there.
    for (const cluster of clusters) {
      const owner = served(a).includes(fingerprintPrefix(cluster.fingerprint)) ? a : b;
      const other = owner === a ? b : a;
      expect(owner.tunnels(cluster.fingerprint)).toHaveLength(1);
      expect(other.tunnels(cluster.fingerprint)).toHaveLength(0);
    }

    // bridge-b stops: it releases its Leases, bridge-a takes them and serves every cluster.
    running.splice(running.indexOf(b), 1);
    await b.close();
    await vi.waitFor(() => expect(served(a)).toEqual(prefixes), { timeout: 15_000, interval: 100 });
    expect(a.status().shards?.held).toEqual([0, 1, 2, 3]);
    for (const cluster of clusters)
      await vi.waitFor(() => expect(a.tunnels(cluster.fingerprint).length).toBeGreaterThan(0), {
        timeout: 30_000,
        interval: 100,
      });
    await Promise.all(brokers.map((broker) => broker.waitForPhase('operational', 30_000)));
    // No broker bootstrapped again: the moved clusters came back on their certificates.
    for (const cluster of clusters) expect(store.initializedWrites(cluster.fingerprint)).toBe(1);
  }, 90_000);

  it('hands clusters to a replica that joins without taking their tunnels away first (make before break)', async () => {
    const clusters = await clustersInEveryShard(6);
    // Long enough for the joining replica to take the released shards and wait for their brokers.
    const timing = { closeMoveWaitMs: 8_000 };
    const a = await bridge('bridge-first', undefined, timing);
    await vi.waitFor(() => expect(a.status().shards?.held).toEqual([0, 1, 2, 3]), {
      timeout: 15_000,
      interval: 100,
    });
    const brokers = await operationalBrokers(clusters);
    const phases = new Set<string>();
    const watch = setInterval(() => {
      for (const broker of brokers) phases.add(broker.status().phase);
    }, 10);
    try {
      // A replica joins: the first gives up half of its shards, and the clusters in them move to the newcomer.
      const b = await bridge('bridge-joining', undefined, timing);
      await vi.waitFor(
        () => {
          // Each of these clusters served by exactly one of the two (the store holds earlier tests' clusters too).
          for (const cluster of clusters) {
            const prefix = fingerprintPrefix(cluster.fingerprint);
            expect(Number(served(a).includes(prefix)) + Number(served(b).includes(prefix))).toBe(1);
          }
          expect(served(b).length).toBeGreaterThan(0);
        },
        { timeout: 15_000, interval: 100 },
      );
      const movedClusters = clusters.filter((c) => served(b).includes(fingerprintPrefix(c.fingerprint)));
      expect(movedClusters.length).toBeGreaterThan(0);
      for (const cluster of movedClusters)
        await vi.waitFor(
          () => {
            expect(b.tunnels(cluster.fingerprint).filter((t) => !t.closed)).toHaveLength(1);
            expect(a.tunnels(cluster.fingerprint)).toHaveLength(0);
          },
          { timeout: 20_000, interval: 100 },
        );
    } finally {
      clearInterval(watch);
    }
    // Every broker opened its tunnel to the newcomer before the first replica's tunnel closed: none was ever
    // without one (before: the first replica cut them, and their brokers were 'reconnecting').
    expect([...phases]).toEqual(['operational']);
    for (const cluster of clusters) expect(store.initializedWrites(cluster.fingerprint)).toBe(1);
  }, 90_000);
});
