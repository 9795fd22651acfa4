/**
 * Bridge replicas sharded by Leases (docs/scaling.md), as OpenBao's Kubernetes auth and an SRE with `source doctor`
 * meet them. OpenBao calls the bridge
 * Service, so its TokenReview reaches any replica, also one that does not serve the cluster's shard; that replica
 * must check the reviewer credential and ask its peers, as an unsharded replica without the tunnel does. Before,
 * it knew only the clusters it served, refused the credential as unknown (401), and the pod's login failed.
 *
 * And while a shard is handed to a replica that joined, the cluster's tunnel moves make before break: the giving
 * replica keeps the old tunnel until the broker's next one is up on the taker, and answers reviews on it meanwhile
 * (before, it no longer found that tunnel, asked its peers, none had one yet: 503). A deregistration during the
 * move ends the moving tunnel at once: a move never outlasts trust.
 *
 * `source doctor` asked of a replica that does not hold the cluster's shard says which replica does and to ask
 * that one (before: "the bridge does not serve" the cluster, exit 26, a false diagnosis); asked of one of two
 * replicas holding the shard, without the tunnel, it names the twin (before: "no tunnel", exit 28).
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BridgeHandle,
  type BridgeMetrics,
  type BridgeStatus,
  type BridgeTiming,
  createBridgeMetrics,
} from '../../runtime/bridge/index.js';
import { shardOf, shardPreference } from '../../runtime/bridge/shards.js';
import { type BrokerHandle, createBrokerMetrics } from '../../runtime/broker/index.js';
import { fingerprintPrefix } from '../../runtime/core/hashes.js';
import { type DoctorReport, runSourceDoctor } from '../../runtime/doctor/index.js';
import { KubeClient } from '../../runtime/kube/index.js';
import {
  deregisterCluster,
  loadTokenReviewCa,
  type RegistrationResult,
  registerCluster,
} from '../../runtime/registration/index.js';
import type { TunnelMux } from '../../runtime/tunnel/index.js';
import { freePort } from '../ports.js';
import {
  BEACON_NAME,
  FAST_BRIDGE_TIMING,
  REPLICA_IPS,
  type Replicas,
  startReplicas,
  startTestBridge,
  startTestBroker,
  testResolve,
} from '../runtime/fixtures.js';
import { listenOnLoopback } from '../support/loopback.js';
import { type ServiceProxy, startServiceProxy } from '../support/service-proxy.js';
import { waitUntil } from '../support/wait.js';
import { parseExposition } from './exposition.js';
import { type KubeAuthWorld, startKubeAuthWorld } from './kube-auth-world.js';

/** The replicas' pod IPs: the first replica, the one that joins, and a third that holds no shard. */
const BRIDGE_IPS = ['127.0.0.7', '127.0.0.8', '127.0.0.6'];
const PEERS_NAME = 'cloudtaser-bridge-peers.sharded.test';
const LEASE_NAMESPACE = 'openbao';
const SHARDS = 4;
const APP_NS = 'team-a';
/** The giving replica waits this long for its brokers to move (the chart's 5 s is the default; tests use 1.5 s). */
const MOVE_WAIT: Partial<BridgeTiming> = { closeMoveWaitMs: 8_000 };

let world: KubeAuthWorld;
let leases: KubeClient;
let dir: string;
let replicas: Replicas;
let service: ServiceProxy;
let port: number;
let cluster: RegistrationResult;
let broker: BrokerHandle;
/** While true the broker cannot reach the beacon for a new tunnel (its tunnel open already is unaffected). */
let partitioned = false;
const brokerMetrics = createBrokerMetrics({ processMetrics: false });
/** Replica slots: 0 the first replica (it gives the cluster's shard up), 1 the one that joins, 2 a bystander. */
const bridges: (BridgeHandle | undefined)[] = [undefined, undefined, undefined];
const bridgeMetrics: (BridgeMetrics | undefined)[] = [undefined, undefined, undefined];
let giverIdentity: string;

beforeAll(async () => {
  world = await startKubeAuthWorld();
  await world.createAppNamespace(APP_NS);
  await world.kube.createNamespace(LEASE_NAMESPACE);
  dir = await mkdtemp(join(tmpdir(), 'ct-tokenreview-sharded-'));
  await world.kube.writeKubeconfig(join(dir, 'admin'));
  leases = KubeClient.fromConnection({ kind: 'kubeconfig', path: join(dir, 'admin') });
  replicas = await startReplicas(1);
  port = await freePort(BRIDGE_IPS[0]);
  service = await startServiceProxy(port, BRIDGE_IPS);
  cluster = await registerCluster(world.admin, {
    fingerprint: world.kube.kubeSystemUid,
    tokenReviewEndpoint: service.url,
  });
  await world.writeAppRole(cluster.namespace, 'app', [APP_NS]);
  // A replica over its share gives back the shards it prefers least: pick a first replica that gives this one up
  // when a second joins (shardOf and the preference are hashes: chosen, not hoped for).
  const shard = shardOf(cluster.fingerprint, SHARDS);
  for (let n = 0; ; n++) {
    const candidate = `bridge-giver-${n}`;
    const below = [...Array(SHARDS).keys()].filter(
      (s) => shardPreference(candidate, s) < shardPreference(candidate, shard),
    );
    if (below.length < SHARDS / 2) {
      giverIdentity = candidate;
      break;
    }
  }
}, 60_000);

afterAll(async () => {
  await broker?.close();
  for (const bridge of bridges) await bridge?.close();
  await service?.close();
  await replicas?.close();
  leases?.close();
  await world?.close();
  await rm(dir, { recursive: true, force: true });
});

const IDENTITIES = () => [giverIdentity, 'bridge-joining', 'bridge-bystander'];

async function startReplica(index: 0 | 1 | 2): Promise<BridgeHandle> {
  bridgeMetrics[index] = createBridgeMetrics({ processMetrics: false });
  const bridge = await startTestBridge({
    metrics: bridgeMetrics[index],
    openbao: world.admin,
    beacons: [replicas.address],
    // One beacon replica runs here: the bridge is given just its address, or its metrics show the other one down.
    resolve: async (host) =>
      host === PEERS_NAME ? [...BRIDGE_IPS] : host === BEACON_NAME ? [REPLICA_IPS[0]] : testResolve(host),
    timing: { ...FAST_BRIDGE_TIMING, ...MOVE_WAIT },
    health: { host: '127.0.0.1', port: 0 },
    tokenReview: {
      host: BRIDGE_IPS[index],
      port,
      dnsNames: ['localhost'],
      peers: `${PEERS_NAME}:${port}`,
    },
    sharding: {
      leases,
      namespace: LEASE_NAMESPACE,
      shards: SHARDS,
      replicasPerShard: 1,
      identity: IDENTITIES()[index],
      leaseDurationSeconds: 1,
      renewIntervalMs: 250,
    },
  });
  bridges[index] = bridge;
  return bridge;
}

const serves = (bridge: BridgeHandle | undefined) =>
  bridge?.status().clusters.some((c) => c.fingerprintPrefix === fingerprintPrefix(cluster.fingerprint)) ??
  false;
const liveTunnels = (bridge: BridgeHandle | undefined): TunnelMux[] =>
  bridge?.tunnels(cluster.fingerprint).filter((t) => !t.closed) ?? [];
const failedMoves = async () => {
  const exposition = parseExposition(await brokerMetrics.registry.metrics());
  const all = exposition.sum('cloudtaser_broker_tunnel_moves_total');
  return all - exposition.sum('cloudtaser_broker_tunnel_moves_total', { outcome: 'moved' });
};

/** source doctor against a stand-in health port serving `bridge`'s /status as `edit` changes it. */
async function doctorAgainstStatus(
  bridge: BridgeHandle,
  edit: (view: BridgeStatus) => BridgeStatus,
): Promise<DoctorReport> {
  const server = createServer((req, res) => {
    if (req.url === '/status') res.end(JSON.stringify(edit(bridge.status())));
    else res.end(req.url === '/readyz' ? 'ok' : '');
  });
  const stand = await listenOnLoopback(server);
  try {
    return await runSourceDoctor({
      openbao: world.admin,
      fingerprint: cluster.fingerprint,
      bridgeHealthUrl: stand.address,
      timeoutMs: 2_000,
    });
  } finally {
    await stand.close();
  }
}

/** Pod logins through the Service sent to the replica at `target`: their statuses. */
async function loginsThrough(target: number, count: number): Promise<number[]> {
  service.target = target;
  return Promise.all(Array.from({ length: count }, () => world.login(cluster.namespace, 'app', APP_NS)));
}

/** The first replica alone holds every shard, with the broker's tunnel on it. */
async function giverAloneWithTheTunnel(): Promise<BridgeHandle> {
  const giver = bridges[0] ?? (await startReplica(0));
  await waitUntil(() => giver.status().shards?.held.length === SHARDS, {
    timeoutMs: 15_000,
    what: 'the first replica holding every shard',
  });
  await giver.pollNow();
  if (!broker) {
    broker = await startTestBroker({
      fingerprint: cluster.fingerprint,
      beacons: [replicas.address],
      caSha256: cluster.operationalHash,
      kube: world.brokerKube,
      metrics: brokerMetrics,
      resolve: async (host) =>
        host === BEACON_NAME ? (partitioned ? ['127.0.0.9'] : [...REPLICA_IPS]) : testResolve(host),
    });
  }
  await broker.waitForPhase('operational', 20_000);
  await waitUntil(() => liveTunnels(giver).length === 1, {
    timeoutMs: 15_000,
    what: "the first replica's tunnel",
  });
  return giver;
}

/**
 * A second replica joins while the broker cannot reach the beacon for a new tunnel: the first replica hands the
 * cluster's shard over and asks the broker to move, which it cannot yet. Resolves with the tunnel still moving.
 */
async function joinWhileTheMoveCannotComplete(
  giver: BridgeHandle,
): Promise<{ joiner: BridgeHandle; moving: TunnelMux }> {
  const [moving] = liveTunnels(giver);
  partitioned = true;
  const failedBefore = await failedMoves();
  const joiner = await startReplica(1);
  await waitUntil(() => serves(joiner) && !serves(giver), {
    timeoutMs: 15_000,
    what: "the cluster's shard handed to the joining replica",
  });
  await waitUntil(async () => (await failedMoves()) > failedBefore, {
    timeoutMs: 10_000,
    what: 'a move attempt that could not reach the beacon',
  });
  expect(moving.closed).toBe(false);
  expect(liveTunnels(joiner)).toHaveLength(0);
  return { joiner, moving };
}

/** With a third replica holding no shard up: reviews through either replica without the tunnel. */
async function asksTheHolderOnly(bystander: BridgeHandle): Promise<void> {
  const [giver, joiner] = bridges;
  await waitUntil(() => bystander.status().shards?.members === 3 && giver!.status().shards?.members === 3, {
    timeoutMs: 10_000,
    what: 'three replicas seeing each other',
  });
  await giver!.pollNow();
  await bystander.pollNow();
  expect(bystander.status().shards?.held).toEqual([]);
  expect(serves(joiner)).toBe(true);
  expect(liveTunnels(joiner)).toHaveLength(1);
  /** Per replica, its TokenReviews answered so (0 for a replica not running). */
  const counts = (outcome: string) =>
    Promise.all(
      bridgeMetrics.map(async (m) =>
        m
          ? parseExposition(await m.registry.metrics()).sum('cloudtaser_bridge_tokenreviews_total', {
              outcome,
            })
          : 0,
      ),
    );
  const [asked, forwarded] = [await counts('peer_no_tunnel'), await counts('forwarded')];
  // OpenBao's reviews reaching either replica without the tunnel: every login succeeds, and the holder alone is
  // asked. Before, each review asked all three A-records: the asking replica itself and the other one answered
  // "not here" (6 + 6 such answers on each of the two).
  expect(await loginsThrough(0, 6)).toEqual(Array(6).fill(200));
  expect(await loginsThrough(2, 6)).toEqual(Array(6).fill(200));
  const since = (now: number[], before: number[]) => now.map((n, i) => n - before[i]);
  expect(since(await counts('peer_no_tunnel'), asked)).toEqual([0, 0, 0]);
  expect(since(await counts('forwarded'), forwarded)).toEqual([6, 0, 6]);

  // Where the holder is, the joiner's member Lease says (its pod IP).
  const member = await leases.getLease(LEASE_NAMESPACE, 'cloudtaser-bridge-member-bridge-joining');
  expect(member.metadata.annotations?.['cloudtaser.io/peer-address']).toBe(BRIDGE_IPS[1]);
}

describe('TokenReview with bridge replicas sharded by Leases', () => {
  it('answers reviews on the tunnel still moving off the replica that gave the shard up, through either replica, and the move completes', async () => {
    const giver = await giverAloneWithTheTunnel();
    const phases = new Set<string>();
    const watch = setInterval(() => phases.add(broker.status().phase), 10);
    try {
      const { joiner, moving } = await joinWhileTheMoveCannotComplete(giver);
      // OpenBao reaching the giver: it still has the broker's tunnel, moving. Reaching the joiner: it has none
      // yet and asks its peers, the giver answers.
      expect(await loginsThrough(0, 6)).toEqual(Array(6).fill(200));
      expect(await loginsThrough(1, 6)).toEqual(Array(6).fill(200));
      expect(moving.closed).toBe(false);

      partitioned = false;
      await waitUntil(() => liveTunnels(joiner).length === 1 && moving.closed, {
        timeoutMs: 15_000,
        what: 'the tunnel moved to the joining replica',
      });
      // The broker closed it once its next tunnel was up (GOAWAY CT_TUNNEL_DRAINED), not this replica's wait.
      expect((await moving.done).details?.peerCode).toBe('CT_TUNNEL_DRAINED');
    } finally {
      clearInterval(watch);
      partitioned = false;
    }
    // Made before broken: the broker never lacked a tunnel.
    expect([...phases]).toEqual(['operational']);
  }, 60_000);

  it('a replica that does not serve the cluster checks the credential and asks its peers (it used to answer 401)', async () => {
    const [giver, joiner] = bridges;
    expect(serves(giver)).toBe(false);
    expect(serves(joiner)).toBe(true);
    expect(liveTunnels(giver)).toHaveLength(0);
    expect(await loginsThrough(0, 6)).toEqual(Array(6).fill(200));
    expect(await loginsThrough(1, 6)).toEqual(Array(6).fill(200));
    // Its metrics: it serves no cluster, and sees the whole fleet (what the dashboard's "Clusters registered" reads).
    const exposition = parseExposition(await bridgeMetrics[0]!.registry.metrics());
    expect(exposition.value('cloudtaser_bridge_clusters', { state: 'initialized' })).toBe(0);
    expect(exposition.value('cloudtaser_bridge_fleet_clusters', { state: 'initialized' })).toBe(1);
    // It knows the cluster now, and still refuses a caller without the reviewer credential, before asking anyone.
    service.target = 0;
    const ca = await loadTokenReviewCa(world.admin.withNamespace('cloudtaser'));
    const trusting = new Agent({ connect: { ca: ca!.certPem } });
    try {
      const wrong = await request(
        `${service.url}/clusters/${cluster.fingerprint}/apis/authentication.k8s.io/v1/tokenreviews`,
        {
          method: 'POST',
          dispatcher: trusting,
          headers: { authorization: 'Bearer not-the-reviewer', 'content-type': 'application/json' },
          body: '{"spec":{"token":"x"}}',
        },
      );
      await wrong.body.dump();
      expect(wrong.statusCode).toBe(401);
    } finally {
      await trusting.close();
    }
  }, 30_000);

  it('source doctor asked of a replica without the shard names the replica that holds it, asked of that one finds the tunnel, and names a twin slot that may hold it', async () => {
    const [giver, joiner] = bridges;
    const shard = shardOf(cluster.fingerprint, SHARDS);
    const doctor = (bridge: BridgeHandle) =>
      runSourceDoctor({
        openbao: world.admin,
        fingerprint: cluster.fingerprint,
        bridgeHealthUrl: bridge.healthUrl,
        timeoutMs: 2_000,
      });
    const step = (report: DoctorReport, id: string) => report.steps.find((s) => s.link === id);

    const asked = await doctor(giver!);
    expect(asked.exitCode).toBe(0);
    expect(step(asked, 'bridge-cluster')).toMatchObject({
      state: 'warn',
      detail: expect.stringContaining(
        `shard ${shard}, which serves ${fingerprintPrefix(cluster.fingerprint)}, is held by bridge replica bridge-joining, not by the one asked (${giverIdentity})`,
      ),
      fix: expect.stringContaining('kubectl port-forward pod/bridge-joining'),
    });
    expect(step(asked, 'tunnel')).toMatchObject({
      state: 'warn',
      detail: expect.stringContaining('bridge-joining'),
    });

    const holder = await doctor(joiner!);
    expect(holder.exitCode).toBe(0);
    expect(step(holder, 'bridge-cluster')).toMatchObject({ state: 'ok' });
    expect(step(holder, 'tunnel')).toMatchObject({ state: 'ok', detail: '1 tunnel(s) up' });

    // A replica whose view has nobody holding the shard (Leases it cannot write, say): a broken link, not a hint.
    const orphaned = await doctorAgainstStatus(giver!, (view) => ({
      ...view,
      shards: { ...view.shards!, holders: view.shards!.holders.map((h, i) => (i === shard ? [] : h)) },
    }));
    expect(orphaned.exitCode).toBe(26);
    expect(step(orphaned, 'bridge-cluster')).toMatchObject({
      state: 'broken',
      detail: expect.stringContaining(`no bridge replica holds shard ${shard}`),
      fix: expect.stringContaining(
        `kubectl -n ${LEASE_NAMESPACE} get leases -l cloudtaser.io/bridge-leases=cloudtaser-bridge`,
      ),
    });

    // Two slots per shard (the chart's default): the replica asked holds the shard with a twin, and the broker's one
    // tunnel is on the twin. Before: "the bridge holds no tunnel" (exit 28) about a healthy cluster.
    const twin = await doctorAgainstStatus(joiner!, (view) => ({
      ...view,
      clusters: view.clusters.map((c) =>
        c.fingerprintPrefix === fingerprintPrefix(cluster.fingerprint) ? { ...c, tunnels: 0 } : c,
      ),
      shards: {
        ...view.shards!,
        holders: view.shards!.holders.map((h, i) => (i === shard ? [...h, 'bridge-twin'] : h)),
      },
    }));
    expect(twin.exitCode).toBe(0);
    expect(step(twin, 'bridge-cluster')?.state).toBe('ok');
    expect(step(twin, 'tunnel')).toMatchObject({
      state: 'warn',
      detail: expect.stringContaining(`shard ${shard} is also held by bridge replica bridge-twin`),
      fix: expect.stringContaining('kubectl port-forward pod/bridge-twin'),
    });
  }, 30_000);

  it("a replica without the cluster's tunnel asks the shard's holder only, not every replica nor itself", async () => {
    // A third replica joins; with 4 slots among 3 replicas the two others keep their 2 each, so it holds none.
    const bystander = await startReplica(2);
    try {
      await asksTheHolderOnly(bystander);
    } finally {
      await bystander.close();
      bridges[2] = undefined;
    }
  }, 60_000);

  it('ends a tunnel still moving off the giving replica as soon as the cluster is deregistered', async () => {
    // The joiner leaves (the shard comes back to the first replica), then joins again while the broker cannot
    // move: the same shard is handed over again.
    await bridges[1]!.close();
    bridges[1] = undefined;
    const giver = await giverAloneWithTheTunnel();
    const { moving } = await joinWhileTheMoveCannotComplete(giver);
    try {
      await deregisterCluster(world.admin, { fingerprint: cluster.fingerprint });
      const deregisteredAt = performance.now();
      await giver.pollNow();
      await waitUntil(() => moving.closed, { timeoutMs: 5_000, what: 'the moving tunnel closed' });
      // Well before the move's wait (8 s) and its close once idle: trust does not wait for a move.
      expect(performance.now() - deregisteredAt).toBeLessThan(3_000);
      expect((await moving.done).details?.code).toBe('CT_NOT_REGISTERED');
      expect(await loginsThrough(0, 2)).not.toContain(200);
    } finally {
      partitioned = false;
    }
  }, 60_000);
});
