/**
 * Fleet behaviour of the bridge (issue 16): what a poll costs OpenBao when nothing changed, how a bootstrap
 * recorded by another bridge replica reaches this one, and a reconnect storm: the beacon every tunnel runs
 * through is killed and restarted, and every cluster must come back without a bootstrap and with at most one
 * OpenBao request per cluster. The storm's timing is measured by the `fleet.reconnect_s` benchmark, not here.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BridgeHandle } from '../../runtime/bridge/index.js';
import { createBridgeMetrics } from '../../runtime/bridge/index.js';
import type { BrokerHandle } from '../../runtime/broker/index.js';
import { markClusterInitialized, paths, RECORDS_MOUNT } from '../../runtime/registration/index.js';
import type { TunnelMux } from '../../runtime/tunnel/index.js';
import { type BeaconProcess, startBeaconProcess } from '../load/processes.js';
import { waitUntil } from '../support/wait.js';
import {
  beaconCert,
  FAST_BEACON_LIMITS,
  FAST_BRIDGE_TIMING,
  FAST_BROKER_TIMING,
  type Replicas,
  type SecretStore,
  startReplicas,
  startSecretStore,
  startTestBridge,
  startTestBroker,
} from './fixtures.js';

let store: SecretStore;
const running: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  store = await startSecretStore();
});
afterAll(async () => {
  await store?.close();
});
afterEach(async () => {
  for (const handle of running.splice(0).reverse()) await handle.close();
});

/** OpenBao requests logged since `mark`. */
const requestsSince = (mark: number) => store.server.requestLog().length - mark;

describe('bridge discovery in a fleet', () => {
  let replicas: Replicas;
  beforeAll(async () => {
    replicas = await startReplicas();
  });
  afterAll(async () => {
    await replicas?.close();
  });

  it('makes one OpenBao request per poll when nothing changed, at any number of registered clusters', async () => {
    for (let i = 0; i < 40; i++) await store.register();
    const bridge = await startTestBridge({
      openbao: store.admin,
      beacons: [replicas.address],
      timing: { pollIntervalMs: 3_600_000 },
    });
    running.push(bridge);
    expect(bridge.status().clusters.length).toBeGreaterThanOrEqual(40);
    const mark = store.server.requestLog().length;
    await bridge.pollNow();
    await bridge.pollNow();
    expect(requestsSince(mark)).toBe(2);
    // A registration made now is served after the next poll, for the price of its two records.
    const added = await store.register();
    const before = store.server.requestLog().length;
    await bridge.pollNow();
    expect(requestsSince(before)).toBe(3);
    await waitUntil(
      () => bridge.status().clusters.find((c) => added.fingerprint.startsWith(c.fingerprintPrefix))?.waiting,
      { timeoutMs: 5_000, what: 'waiters for the new cluster' },
    );
  });

  it('ends the tunnel of a broker that a bootstrap recorded by another bridge replica replaced, and refuses it afterwards', async () => {
    const cluster = await store.register();
    const metrics = createBridgeMetrics({ processMetrics: false });
    const bridge = await startTestBridge({
      openbao: store.admin,
      beacons: [replicas.address],
      timing: { pollIntervalMs: 3_600_000 },
      metrics,
    });
    running.push(bridge);
    const earlier = await startTestBroker({
      fingerprint: cluster.fingerprint,
      beacons: [replicas.address],
      // It keeps trying the operational room with its old certificate instead of asking for a new bootstrap.
      timing: { ...FAST_BROKER_TIMING, reBootstrapAfterFailures: 1_000 },
    });
    running.push(earlier);
    await earlier.waitForPhase('operational', 15_000);
    await waitUntil(() => bridge.tunnels(cluster.fingerprint).length === 1, {
      timeoutMs: 5_000,
      what: 'bridge tunnel',
    });
    const tunnel = bridge.tunnels(cluster.fingerprint)[0];

    // Another replica signs an attested re-bootstrap for a new operator key, as it records it in OpenBao.
    const root = store.admin.withNamespace('cloudtaser');
    const version = (await root.kvRead(RECORDS_MOUNT, paths.initialized(cluster.fingerprint)))!.version;
    await markClusterInitialized(store.admin, {
      fingerprint: cluster.fingerprint,
      brokerCertSha256: '0'.repeat(64),
      brokerKeySha256: '1'.repeat(64),
      replacesVersion: version,
    });
    await bridge.pollNow();
    const why = await tunnel.done;
    expect(why.message).toContain('replaced by a newer bootstrap');
    // Its reconnects are refused: the broker's certificate is still valid, but its key is no longer the one. The
    // log shows the first refusal per cluster and room (repeats fold into a summary line), so the refusals are
    // counted where an SRE counts them: the bridge's refusals_total by code.
    const refused = async () => {
      const text = await metrics.registry.metrics();
      const match = /cloudtaser_bridge_refusals_total\{code="CT_PKI_INVALID_CERT"\} (\d+)/.exec(text);
      return match ? Number(match[1]) : 0;
    };
    await waitUntil(async () => (await refused()) >= 3, {
      timeoutMs: 20_000,
      what: 'three refused reconnects',
    });
    expect(earlier.status().phase).not.toBe('operational');
    expect(bridge.tunnels(cluster.fingerprint).filter((t) => !t.closed)).toHaveLength(0);
  });
});

describe('reconnect storm', () => {
  const CLUSTERS = 50;
  let beacon: BeaconProcess;
  let bridge: BridgeHandle;
  const brokers: BrokerHandle[] = [];
  // The in-process brokers all come from 127.0.0.1; in a fleet each cluster has its own address. The waits keep
  // the default ratio (a broker waits long enough for the bridge to come back, as with the 30 s default).
  const limits = {
    ...FAST_BEACON_LIMITS,
    brokerWaitMs: 10_000,
    bridgeWaitMs: 30_000,
    maxPendingPerAddress: 1_000,
    maxWaitingPerAddress: 10_000,
  };
  // Generous steps: this test is about what happens, not how fast, and shares the machine with other suites.
  const timing = { ...FAST_BROKER_TIMING, stepTimeoutMs: 20_000, pairTimeoutMs: 15_000 };

  afterAll(async () => {
    await Promise.all(brokers.map((broker) => broker.close()));
    await bridge?.close();
    await beacon?.close();
  });

  it('brings every cluster back after the beacon restarts, with no bootstrap and at most one OpenBao request per cluster', async () => {
    beacon = await startBeaconProcess({ host: '127.0.0.1', port: 0, plain: false, tls: beaconCert, limits });
    const address = `127.0.0.1:${beacon.port}`;
    const fingerprints: string[] = [];
    for (let i = 0; i < CLUSTERS; i++) fingerprints.push((await store.register(randomUUID())).fingerprint);
    bridge = await startTestBridge({
      openbao: store.admin,
      beacons: [address],
      // The default poll interval: at the fast test interval the polls alone would be most of the count.
      timing: { ...FAST_BRIDGE_TIMING, stepTimeoutMs: 20_000, pollIntervalMs: 10_000 },
    });
    // The first bootstraps in groups: a fleet rolls its operators out over time, and that is not what is tested.
    for (let i = 0; i < fingerprints.length; i += 10) {
      const group = await Promise.all(
        fingerprints
          .slice(i, i + 10)
          .map((fingerprint) => startTestBroker({ fingerprint, beacons: [address], timing })),
      );
      brokers.push(...group);
      await Promise.all(group.map((broker) => broker.waitForPhase('operational', 60_000)));
    }
    const writes = fingerprints.map((fp) => store.initializedWrites(fp));
    expect(writes).toEqual(fingerprints.map(() => 1));
    const signed = bridge.status().bootstrapsSigned;
    const refused = bridge.status().bootstrapsRefused;
    const tunnels = new Map<BrokerHandle, TunnelMux | undefined>(brokers.map((b) => [b, b.tunnel()]));
    const phases = new Set<string>();
    const watch = setInterval(() => {
      for (const broker of brokers) phases.add(broker.status().phase);
    }, 20);

    // Discovery has read the bootstraps above, so what follows is the storm alone.
    await bridge.pollNow();
    const mark = store.server.requestLog().length;
    await beacon.kill9();
    beacon = await startBeaconProcess({
      host: '127.0.0.1',
      port: Number(address.split(':')[1]),
      plain: false,
      tls: beaconCert,
      limits,
    });
    await waitUntil(
      () =>
        brokers.every(
          (broker) => broker.status().phase === 'operational' && broker.tunnel() !== tunnels.get(broker),
        ),
      { timeoutMs: 120_000, what: 'every broker operational on a new tunnel' },
    );
    clearInterval(watch);
    const requests = store.server.requestLog().slice(mark);
    // Only the discovery polls may have reached OpenBao: the pairings themselves read nothing.
    const polls = requests.filter(
      (r) => r.method === 'GET' && r.path.endsWith(`data/${paths.discoveryJournal}`),
    );

    expect(fingerprints.map((fp) => store.initializedWrites(fp))).toEqual(writes);
    expect(bridge.status().bootstrapsSigned).toBe(signed);
    expect(bridge.status().bootstrapsRefused).toBe(refused);
    expect(phases.has('bootstrapping')).toBe(false);
    const others = requests.filter((r) => !polls.includes(r));
    expect(others).toEqual([]);
    expect(requests.length).toBeLessThanOrEqual(CLUSTERS);
    for (const broker of brokers) expect(await broker.tunnel()!.ping()).toBeGreaterThanOrEqual(0);
  }, 300_000);
});
