/**
 * Long-running processes must not leave something behind on their long-lived signals per event. On Node 20 every
 * AbortSignal.any call leaves an entry on each source signal until it aborts (nodejs/node#55351): the bridge's
 * waiter loop combined the cluster's stop signal anew on every refresh and pairing (~165 bytes each, ~210 MB a day
 * at 1,000 clusters and 3 beacon replicas), and every shard Lease call combined the membership's stop signal
 * (~2.5 KB per round, ~40 MB a day): an out-of-memory kill within days. Refreshes and rounds run here at
 * thousands of times their real pace.
 */
import { getEventListeners } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type BridgeHandle, startBridge } from '../../runtime/bridge/index.js';
import { type ShardMembership, startShardMembership } from '../../runtime/bridge/shards.js';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { KubeClient } from '../../runtime/kube/index.js';
import {
  type AnyTracker,
  type ListenerTracker,
  trackAbortListeners,
  trackAbortSignalAny,
} from '../support/abort-signals.js';
import {
  beaconCert,
  type Replicas,
  type SecretStore,
  startReplicas,
  startSecretStore,
  testBeaconIdentity,
  testResolve,
} from './fixtures.js';

let anyCalls: AnyTracker | undefined;
let listeners: ListenerTracker | undefined;
afterEach(() => {
  anyCalls?.restore();
  listeners?.restore();
  anyCalls = undefined;
  listeners = undefined;
});

/** What is left on long-lived signals: AbortSignal.any entries and abort listeners, 50 or more on one signal. */
function leftBehind(): { dependants: number[]; listeners: number[] } {
  return {
    dependants: (anyCalls?.live() ?? []).filter((s) => s.dependants >= 50).map((s) => s.dependants),
    listeners: (listeners?.crowded(50) ?? []).map((s) => s.listeners),
  };
}

describe('bridge waiters over many refreshes', () => {
  let store: SecretStore;
  let replicas: Replicas;
  let bridge: BridgeHandle | undefined;
  afterAll(async () => {
    await bridge?.close();
    await replicas?.close();
    await store?.close();
  });

  it('leave nothing per refresh on the cluster and waiter signals', async () => {
    store = await startSecretStore();
    replicas = await startReplicas(1);
    for (let i = 0; i < 4; i++) await store.register();
    anyCalls = trackAbortSignalAny();
    listeners = trackAbortListeners(getEventListeners);
    bridge = await startBridge({
      openbao: store.admin,
      beacons: [replicas.address],
      beaconCaPem: beaconCert.certPem,
      beaconIdentity: testBeaconIdentity,
      resolve: testResolve,
      // A refresh every 10-20 ms instead of 270-540 s: the same code path, days of refreshes in seconds.
      timing: {
        pollIntervalMs: 60_000,
        stepTimeoutMs: 3_000,
        backoffInitialMs: 5,
        backoffMaxMs: 50,
        waitRefreshMs: 20,
      },
    });
    const started = listeners.added;
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    // Hundreds of refresh cycles ran (each adds abort listeners and removes them).
    expect(listeners.added - started).toBeGreaterThan(500);
    expect(leftBehind()).toEqual({ dependants: [], listeners: [] });
  }, 30_000);
});

describe('shard membership over many Lease rounds', () => {
  let kube: KubeTestServer;
  let dir: string;
  let client: KubeClient;
  let member: ShardMembership | undefined;
  afterAll(async () => {
    await member?.close();
    client?.close();
    await kube?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('leaves nothing per Lease call on its stop signal', async () => {
    kube = await startKubeTestServer();
    await kube.createNamespace('openbao');
    dir = await mkdtemp(join(tmpdir(), 'ct-signals-shards-'));
    await kube.writeKubeconfig(join(dir, 'admin'), { token: kube.adminToken });
    client = KubeClient.fromConnection({ kind: 'kubeconfig', path: join(dir, 'admin') });
    anyCalls = trackAbortSignalAny();
    listeners = trackAbortListeners(getEventListeners);
    member = await startShardMembership({
      leases: client,
      namespace: 'openbao',
      shards: 16,
      replicasPerShard: 1,
      identity: 'bridge-0',
      leaseDurationSeconds: 15,
      renewIntervalMs: 3_600_000, // rounds are driven below
    });
    // 150 rounds of 18 calls: about 12 minutes of a real replica.
    for (let i = 0; i < 150; i++) await member.roundNow();
    expect(member.status().held).toHaveLength(16);
    expect(leftBehind()).toEqual({ dependants: [], listeners: [] });
  }, 60_000);
});
