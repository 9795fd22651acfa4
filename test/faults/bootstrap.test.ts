/**
 * Fault injection during the self-bootstrap: OpenBao fails the bridge's one-time `initialized` check-and-set
 * write, or is sealed, while a broker waits in the init room. The bridge must refuse (never hand out
 * certificates it has not recorded), the broker must retry on its own and succeed once the fault clears, and
 * `initialized` must be written exactly once.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type BeaconHandle, createBeacon } from '../../runtime/beacon/index.js';
import { type BridgeHandle, startBridge } from '../../runtime/bridge/index.js';
import { type BrokerHandle, startBroker } from '../../runtime/broker/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { getClusterStatus } from '../../runtime/registration/index.js';
import {
  beaconCert,
  beaconClientCa,
  FAST_BRIDGE_TIMING,
  FAST_BROKER_TIMING,
  type SecretStore,
  startSecretStore,
  testBeaconIdentity,
} from '../runtime/fixtures.js';
import { waitUntil } from '../support/wait.js';
import { type FaultProxy, startFaultProxy } from './openbao-proxy.js';

let store: SecretStore;
let beacon: BeaconHandle;
let proxy: FaultProxy;
const running: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  store = await startSecretStore();
  proxy = await startFaultProxy(store.server.address);
  beacon = await createBeacon({
    host: '127.0.0.1',
    port: 0,
    tls: beaconCert,
    bridgeCaPems: [beaconClientCa.certPem],
    limits: { brokerWaitMs: 2_000, bridgeWaitMs: 5_000, keepaliveIntervalMs: 1_000 },
  });
});
afterAll(async () => {
  await beacon?.close();
  await proxy?.close();
  await store?.close();
});
afterEach(async () => {
  for (const handle of running.splice(0).reverse()) await handle.close();
});

/**
 * The bridge with its own OpenBao client through the fault proxy: one retry, short timeout, so faults show
 * within a second.
 */
async function bridge(timeoutMs = 2_000): Promise<BridgeHandle> {
  const openbao = new OpenBaoClient({
    address: proxy.address,
    token: store.identities.bridgeToken,
    retries: 1,
    retryBaseDelayMs: 1,
    timeoutMs,
  });
  const handle = await startBridge({
    openbao,
    beacons: [`127.0.0.1:${beacon.port}`],
    beaconCaPem: beaconCert.certPem,
    beaconIdentity: testBeaconIdentity,
    timing: FAST_BRIDGE_TIMING,
  });
  running.push({
    close: async () => {
      await handle.close();
      await openbao.close();
    },
  });
  return handle;
}

async function broker(fingerprint: string): Promise<BrokerHandle> {
  const handle = await startBroker({
    fingerprint,
    beacons: [`127.0.0.1:${beacon.port}`],
    beaconCaPem: beaconCert.certPem,
    timing: { ...FAST_BROKER_TIMING, backoffMaxMs: 300 },
  });
  running.push(handle);
  return handle;
}

/** The bridge's one-time check-and-set write (reads of the same path pass). */
function initializedWrite(fingerprint: string) {
  return { method: 'POST', pathPattern: new RegExp(`/data/clusters/${fingerprint}/initialized$`) };
}

describe('bootstrap under OpenBao faults', () => {
  it('refuses while the initialized write fails with 5xx, hands out no certificate, and succeeds once it clears', async () => {
    const cluster = await store.register();
    const b = await bridge();
    // Two bootstrap attempts' worth of failures (each is one try plus one retry), then OpenBao is healthy.
    proxy.inject({ ...initializedWrite(cluster.fingerprint), status: 500, times: 4 });
    const k = await broker(cluster.fingerprint);
    await waitUntil(() => b.status().bootstrapsRefused >= 1, { timeoutMs: 10_000, what: 'a refusal' });
    // The broker learns of the refusal a moment after the bridge counts it (under load, noticeably later).
    await waitUntil(() => k.status().lastErrorCode === 'CT_BOOTSTRAP_REFUSED', {
      timeoutMs: 10_000,
      what: 'the broker saw the refusal',
    });
    // While refused the broker holds no certificate: no operational room, still bootstrapping.
    expect(k.status().phase).toBe('bootstrapping');
    expect(k.status().operationalHashPrefix).toBeUndefined();
    await k.waitForPhase('operational', 15_000);
    expect(b.status().bootstrapsRefused).toBeGreaterThanOrEqual(2);
    expect(b.status().bootstrapsSigned).toBe(1);
    expect(store.initializedWrites(cluster.fingerprint)).toBe(1);
  });

  it("tells the broker OpenBao's code when the registration cannot be read, and bootstraps once it can", async () => {
    const cluster = await store.register();
    const b = await bridge();
    await waitUntil(() => b.status().clusters.some((c) => c.waiting > 0), {
      timeoutMs: 5_000,
      what: 'bridge waiting',
    });
    // The bridge re-reads the registration for each bootstrap: OpenBao answers that read 503 for a while.
    proxy.inject({
      method: 'GET',
      pathPattern: new RegExp(`/data/clusters/${cluster.fingerprint}/registered$`),
      status: 503,
      times: 4,
    });
    const k = await broker(cluster.fingerprint);
    // Before: the bridge closed the stream, and the broker showed CT_BOOTSTRAP_PROTOCOL "the peer closed before
    // sending a whole bootstrap message", a protocol error nobody could act on.
    await waitUntil(
      () =>
        k.status().lastErrorCode === 'CT_BOOTSTRAP_REFUSED' && /CT_OPENBAO_/.test(k.status().lastError ?? ''),
      { timeoutMs: 10_000, what: "a refusal that names OpenBao's code" },
    );
    expect(k.status().phase).toBe('bootstrapping');
    await k.waitForPhase('operational', 15_000);
    expect(store.initializedWrites(cluster.fingerprint)).toBe(1);
  });

  it('refuses while OpenBao is sealed and bootstraps once it is unsealed, initializing once', async () => {
    const cluster = await store.register();
    const b = await bridge();
    await waitUntil(() => b.status().clusters.some((c) => c.waiting > 0), {
      timeoutMs: 5_000,
      what: 'bridge waiting',
    });
    store.server.seal();
    try {
      const k = await broker(cluster.fingerprint);
      await waitUntil(() => k.status().lastErrorCode !== undefined, {
        timeoutMs: 10_000,
        what: 'a failed attempt',
      });
      expect(k.status().phase).toBe('bootstrapping');
      expect(store.initializedWrites(cluster.fingerprint)).toBe(0);
      store.server.unseal();
      await k.waitForPhase('operational', 15_000);
    } finally {
      store.server.unseal();
    }
    expect(store.initializedWrites(cluster.fingerprint)).toBe(1);
    expect(b.status().bootstrapsSigned).toBe(1);
  });

  it('recognises its own write when OpenBao committed it but the answer was lost, and the broker finishes', async () => {
    const cluster = await store.register();
    const b = await bridge();
    // A proxy in front of OpenBao forwards the write (it commits), then answers 502; the client retries the
    // check-and-set, which now finds the record: it must be recognised as this bootstrap's own.
    proxy.inject({ ...initializedWrite(cluster.fingerprint), afterForward: true, status: 502, times: 1 });
    const k = await broker(cluster.fingerprint);
    await k.waitForPhase('operational', 10_000);
    expect(b.status().bootstrapsSigned).toBe(1);
    expect(b.status().bootstrapsRefused).toBe(0);
    expect(store.initializedWrites(cluster.fingerprint)).toBe(1);
  });

  /** The bridge times out on the write; OpenBao applies it 150 ms later, before the broker's next attempt. */
  async function timedOutWriteThatLands() {
    const cluster = await store.register();
    const b = await bridge(100);
    proxy.inject({ ...initializedWrite(cluster.fingerprint), delayMs: 150, times: 1 });
    const handle = await startBroker({
      fingerprint: cluster.fingerprint,
      beacons: [`127.0.0.1:${beacon.port}`],
      beaconCaPem: beaconCert.certPem,
      timing: { ...FAST_BROKER_TIMING, backoffInitialMs: 600, backoffMaxMs: 600, rejectedRetryMs: 300 },
    });
    running.push(handle);
    return { cluster, b, k: handle };
  }

  it('never hands out a certificate without a record when the initialized write times out and lands late', async () => {
    const { cluster, b, k } = await timedOutWriteThatLands();
    await waitUntil(() => b.status().bootstrapsRefused >= 1, { timeoutMs: 10_000, what: 'a refusal' });
    await waitUntil(async () => (await getClusterStatus(store.admin, cluster)).initialized, {
      timeoutMs: 5_000,
      what: 'late write',
    });
    expect(k.status().operationalHashPrefix).toBeUndefined();
    expect(b.status().bootstrapsSigned).toBe(0);
    expect(store.initializedWrites(cluster.fingerprint)).toBe(1);
  });

  // Was a bug: when the `initialized` write timed out on the client but landed in OpenBao, every retry of the
  // SAME broker (same key) was refused as already initialized. The record now names the broker key's SPKI
  // hash, and the bridge signs again only for that key (whose holder alone can produce the CSR).
  it('lets the same broker finish after an initialized write that timed out but landed', async () => {
    const { k } = await timedOutWriteThatLands();
    await k.waitForPhase('operational', 3_000);
  });
});
