/**
 * The bridge's /metrics in a fleet with churn. Per-cluster and per-replica labels are documented, but the series
 * of a cluster the bridge no longer serves (deregistered, or moved to another replica's shard) and of a beacon
 * replica no longer in DNS stayed in every scrape until the bridge restarted: a steady-state cost that grew with
 * every cluster and replica the fleet ever had.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { type BridgeHandle, createBridgeMetrics, startBridge } from '../../runtime/bridge/index.js';
import type { BrokerHandle } from '../../runtime/broker/index.js';
import { fingerprintPrefix } from '../../runtime/core/hashes.js';
import { deregisterCluster } from '../../runtime/registration/index.js';
import { waitUntil } from '../support/wait.js';
import {
  beaconCert,
  type Replicas,
  type SecretStore,
  startReplicas,
  startSecretStore,
  startTestBridge,
  startTestBroker,
  testBeaconIdentity,
} from './fixtures.js';

const scrape = async (url: string) => (await fetch(`${url}/metrics`)).text();

describe('bridge /metrics after clusters leave', () => {
  let store: SecretStore;
  let replicas: Replicas;
  let bridge: BridgeHandle;
  const brokers: BrokerHandle[] = [];
  afterAll(async () => {
    await Promise.all(brokers.map((broker) => broker.close()));
    await bridge?.close();
    await replicas?.close();
    await store?.close();
  });

  it('drops the series of clusters it no longer serves, and keeps those of the one it still does', async () => {
    store = await startSecretStore();
    replicas = await startReplicas(1);
    const fingerprints: string[] = [];
    for (let i = 0; i < 4; i++) fingerprints.push((await store.register()).fingerprint);
    bridge = await startTestBridge({
      openbao: store.admin,
      beacons: [replicas.address],
      metrics: createBridgeMetrics({ processMetrics: false }),
      health: { host: '127.0.0.1', port: 0 },
    });
    for (const fingerprint of fingerprints)
      brokers.push(await startTestBroker({ fingerprint, beacons: [replicas.address] }));
    await Promise.all(brokers.map((broker) => broker.waitForPhase('operational', 30_000)));
    const clusterSeries = async () =>
      (await scrape(bridge.healthUrl!)).split('\n').filter((line) => line.includes('cluster="'));
    expect((await clusterSeries()).length).toBeGreaterThanOrEqual(4 * 3);

    const [kept, ...gone] = fingerprints;
    for (const fingerprint of gone) await deregisterCluster(store.registrar, { fingerprint });
    await bridge.pollNow();
    await waitUntil(() => bridge.status().clusters.length === 1, { what: 'one cluster served' });
    await new Promise((resolve) => setTimeout(resolve, 200)); // the dropped tunnels' last closes

    const after = await clusterSeries();
    const stale = after.filter((line) => !line.includes(`cluster="${fingerprintPrefix(kept)}"`));
    expect(stale).toEqual([]);
    expect(after.some((line) => line.startsWith('cloudtaser_bridge_tunnel_opens_total'))).toBe(true);
  }, 60_000);
});

describe('bridge /metrics after the beacon replicas moved', () => {
  let store: SecretStore;
  let bridge: BridgeHandle;
  afterAll(async () => {
    await bridge?.close();
    await store?.close();
  });

  it('drops the dial series of beacon replicas no longer in DNS', async () => {
    store = await startSecretStore();
    await store.register();
    // Nothing listens on these loopback addresses: every dial fails fast, as a replica being replaced does.
    let generation = 0;
    const ipsOf = (g: number) => [`127.0.${10 + g}.1`, `127.0.${10 + g}.2`];
    bridge = await startBridge({
      openbao: store.admin,
      beacons: ['beacon.test:1'],
      beaconCaPem: beaconCert.certPem,
      beaconIdentity: testBeaconIdentity,
      resolve: async () => ipsOf(generation),
      metrics: createBridgeMetrics({ processMetrics: false }),
      health: { host: '127.0.0.1', port: 0 },
      timing: { pollIntervalMs: 3_600_000, backoffInitialMs: 50, backoffMaxMs: 200 },
    });
    const replicaSeries = async () =>
      (await scrape(bridge.healthUrl!)).split('\n').filter((line) => line.includes('replica="127.0.'));
    for (generation = 0; generation < 3; generation++) {
      await bridge.pollNow();
      const current = ipsOf(generation);
      await waitUntil(
        async () => {
          const series = await replicaSeries();
          return current.every((ip) => series.some((line) => line.includes(`"${ip}"`)));
        },
        { what: `dials to ${current}` },
      );
    }
    const live = ipsOf(2);
    const stale = (await replicaSeries()).filter((line) => !live.some((ip) => line.includes(`"${ip}"`)));
    expect(stale).toEqual([]);
  }, 60_000);
});
