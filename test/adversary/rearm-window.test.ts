/**
 * Attack: someone who knows a cluster's fingerprint waits for a re-arm nobody used. `register --rearm` is meant for
 * the operator's own broker, right before it restarts; before this change a re-arm whose restart did not happen
 * (an upgrade called off, a pod that never came back) stayed open until some broker bootstrapped: days later, the
 * first stranger with the fingerprint to reach the init room got the cluster, silently.
 *
 * Now a re-arm carries a window (`--rearm-window`, 1 h by default) written in the registration record before the
 * initialization record goes; past it, a bridge refuses a bootstrap without attestation (CT_ALREADY_INITIALIZED,
 * saying the re-arm expired), records nothing, and only a new re-arm opens it again.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BrokerHandle } from '../../runtime/broker/index.js';
import {
  deregisterCluster,
  getClusterStatus,
  rearmCluster,
  registerCluster,
} from '../../runtime/registration/index.js';
import { captureLogger } from '../beacon/helpers.js';
import {
  type Replicas,
  type SecretStore,
  startReplicas,
  startSecretStore,
  startTestBridge,
  startTestBroker,
} from '../runtime/fixtures.js';

let store: SecretStore;
let replicas: Replicas;
const running: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  store = await startSecretStore();
  replicas = await startReplicas();
});
afterAll(async () => {
  await replicas?.close();
  await store?.close();
});
afterEach(async () => {
  for (const handle of running.splice(0).reverse()) await handle.close();
});

async function broker(fingerprint: string): Promise<BrokerHandle> {
  const handle = await startTestBroker({ fingerprint, beacons: [replicas.address] });
  running.push(handle);
  return handle;
}

describe('attack: bootstrap through a re-arm left unused past its window', () => {
  it('refuses the stranger after the window, records nothing, keeps refusing after a plain register, and a new re-arm opens it', async () => {
    const cluster = await store.register();
    const log = captureLogger();
    running.push(
      await startTestBridge({ openbao: store.bridge, beacons: [replicas.address], logger: log.logger }),
    );
    const operator = await broker(cluster.fingerprint);
    await operator.waitForPhase('operational', 15_000);
    await operator.close();
    expect(store.initializedWrites(cluster.fingerprint)).toBe(1);

    // Re-armed for a restart that does not happen within the window.
    const rearmed = await rearmCluster(store.registrar, {
      fingerprint: cluster.fingerprint,
      windowMs: 1_000,
    });
    expect(rearmed.wasInitialized).toBe(true);
    expect(Date.parse(rearmed.expiresAt!) - Date.now()).toBeLessThanOrEqual(1_000);
    expect(await getClusterStatus(store.registrar, { fingerprint: cluster.fingerprint })).toMatchObject({
      initialized: false,
      rearmExpiresAt: rearmed.expiresAt,
    });
    await sleep(Math.max(0, Date.parse(rearmed.expiresAt!) - Date.now()) + 100);

    // A stranger who knows the fingerprint (a fresh key, nothing else) reaches the init room later.
    const stranger = await broker(cluster.fingerprint);
    const refused = await stranger.waitForPhase('rejected', 15_000);
    expect(refused.lastErrorCode).toBe('CT_ALREADY_INITIALIZED');
    // Told to whoever holds the fingerprint: the same text as for a cluster that bootstrapped (a security review:
    // a text of its own told them the operator had re-armed and its broker never came), and no time.
    expect(refused.reason).toContain('allows no bootstrap now (it has bootstrapped once, or a re-arm');
    expect(refused.reason).not.toContain('was re-armed');
    expect(refused.reason).toContain('--rearm');
    expect(refused.reason).not.toContain(rearmed.expiresAt!);
    expect(refused.reason).not.toMatch(/\d{4}-\d\d-\d\dT/);
    expect(store.initializedWrites(cluster.fingerprint)).toBe(1);
    expect((await getClusterStatus(store.admin, { fingerprint: cluster.fingerprint })).initialized).toBe(
      false,
    );
    expect(log.lines).toContainEqual(
      expect.objectContaining({ event: 'bridge.rearm_expired', rearmExpiredAt: rearmed.expiresAt }),
    );
    expect(stranger.tunnel()).toBeUndefined();
    expect(stranger.status().brokerKeySha256).toBeUndefined();

    // A plain register re-run (Terraform's apply, a CI job) does not reopen it: the window is kept.
    await registerCluster(store.registrar, { fingerprint: cluster.fingerprint });
    expect(
      (await getClusterStatus(store.registrar, { fingerprint: cluster.fingerprint })).rearmExpiresAt,
    ).toBe(rearmed.expiresAt);
    await sleep(1_000);
    expect(stranger.status().phase).toBe('rejected');
    expect(store.initializedWrites(cluster.fingerprint)).toBe(1);

    // Re-armed again (the admin checked that the refused broker is the operator's own): it bootstraps at its next
    // try, within the new window, and the window of a cluster never bootstrapped since is refreshed, not dropped.
    const again = await rearmCluster(store.registrar, { fingerprint: cluster.fingerprint });
    expect(again.wasInitialized).toBe(false);
    expect(Date.parse(again.expiresAt!)).toBeGreaterThan(Date.now() + 59 * 60_000);
    await stranger.waitForPhase('operational', 15_000);
    expect(store.initializedWrites(cluster.fingerprint)).toBe(2);
  });

  it('bounds a first contact too when re-armed explicitly; a registration never re-armed keeps it open', async () => {
    running.push(await startTestBridge({ openbao: store.bridge, beacons: [replicas.address] }));
    const bounded = await store.register();
    const rearmed = await rearmCluster(store.registrar, { fingerprint: bounded.fingerprint, windowMs: 300 });
    expect(rearmed.wasInitialized).toBe(false);
    expect(rearmed.expiresAt).toBeDefined();
    await sleep(Math.max(0, Date.parse(rearmed.expiresAt!) - Date.now()) + 100);
    const late = await broker(bounded.fingerprint);
    expect((await late.waitForPhase('rejected', 15_000)).reason).toContain("a re-arm's window passed unused");
    expect(store.initializedWrites(bounded.fingerprint)).toBe(0);

    const open = await store.register();
    expect(
      (await getClusterStatus(store.registrar, { fingerprint: open.fingerprint })).rearmExpiresAt,
    ).toBeUndefined();
    await (await broker(open.fingerprint)).waitForPhase('operational', 15_000);
  });

  it('a registration over the namespace a deregistration kept opens its first contact only for the window', async () => {
    // The doctor's advice after a takeover is "deregister and register again"; without --purge the namespace and
    // its workload secrets stay, and the new CA locks the operator's pinned broker out: before this change the
    // fresh first contact stayed open to whoever knew the fingerprint (a security review reached operational).
    const cluster = await store.register();
    running.push(await startTestBridge({ openbao: store.bridge, beacons: [replicas.address] }));
    const operator = await broker(cluster.fingerprint);
    await operator.waitForPhase('operational', 15_000);
    await operator.close();
    await deregisterCluster(store.registrar, { fingerprint: cluster.fingerprint });
    const again = await registerCluster(store.registrar, {
      fingerprint: cluster.fingerprint,
      rearmWindowMs: 500,
    });
    expect(again.operationalHash).not.toBe(cluster.operationalHash);
    expect(again.rearmExpiresAt).toBeDefined();
    expect(
      (await getClusterStatus(store.registrar, { fingerprint: cluster.fingerprint })).rearmExpiresAt,
    ).toBe(again.rearmExpiresAt);
    await sleep(Math.max(0, Date.parse(again.rearmExpiresAt!) - Date.now()) + 100);
    const stranger = await broker(cluster.fingerprint);
    const refused = await stranger.waitForPhase('rejected', 15_000);
    expect(refused.reason).toContain("a re-arm's window passed unused");
    expect(stranger.tunnel()).toBeUndefined();
    // A first registration (no namespace kept) is not bounded: the namespace is new.
    const fresh = await registerCluster(store.registrar, {
      fingerprint: crypto.randomUUID(),
      rearmWindowMs: 500,
    });
    expect(fresh.rearmExpiresAt).toBeUndefined();
  });
});
