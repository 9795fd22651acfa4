/**
 * `/status` of the broker and the bridge is served on a probe port more pods can reach than their owners. It never
 * shows the cluster fingerprint (the init room's key) nor a full room hash, in any phase or reason: the 8-character
 * fingerprint prefix (the OpenBao namespace name) and 12-character hash prefixes are enough to act on.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initHash } from '../../runtime/core/hashes.js';
import { RECORDS_MOUNT } from '../../runtime/registration/index.js';
import {
  type Replicas,
  type SecretStore,
  startReplicas,
  startSecretStore,
  startTestBridge,
  startTestBroker,
} from './fixtures.js';

let replicas: Replicas;
let store: SecretStore;
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  replicas = await startReplicas();
  store = await startSecretStore();
});
afterAll(async () => {
  for (const close of closers.reverse()) await close();
  await replicas?.close();
  await store?.close();
});

async function statusText(url: string | undefined): Promise<string> {
  return (await fetch(`${url}/status`)).text();
}

describe('/status shows prefixes, never the fingerprint or a full hash', () => {
  it('in the broker: operational, then a second broker rejected as already initialized', async () => {
    const cluster = await store.register();
    const bridge = await startTestBridge({ openbao: store.admin, beacons: [replicas.address] });
    closers.push(() => bridge.close());
    const first = await startTestBroker({
      fingerprint: cluster.fingerprint,
      beacons: [replicas.address],
      health: { host: '127.0.0.1', port: 0 },
    });
    closers.push(() => first.close());
    await first.waitForPhase('operational', 15_000);
    const second = await startTestBroker({
      fingerprint: cluster.fingerprint,
      beacons: [replicas.address],
      health: { host: '127.0.0.1', port: 0 },
    });
    closers.push(() => second.close());
    await second.waitForPhase('rejected', 15_000);
    for (const handle of [first, second]) {
      const text = await statusText(handle.healthUrl);
      expect(text).not.toContain(cluster.fingerprint);
      expect(text).not.toContain(cluster.operationalHash);
      expect(text).not.toContain(cluster.initHash);
      expect(JSON.stringify(handle.status())).not.toContain(cluster.fingerprint);
    }
    // The rejection still says what to do, with the prefix that names the cluster's namespace.
    const rejected = JSON.parse(await statusText(second.healthUrl)) as { reason: string };
    expect(rejected.reason).toContain(`${cluster.fingerprint.slice(0, 8)}…`);
    expect(rejected.reason).toMatch(/--rearm/);
  });

  it('in the bridge: a corrupt registration record neither fails the poll nor puts the fingerprint in /status', async () => {
    const fingerprint = randomUUID();
    // A registration record without its fields: discovery skips that one cluster (logging its prefix) and serves
    // the rest, so /status has no poll error, and nothing in it names the cluster in full.
    await store.register(fingerprint);
    await store.admin
      .withNamespace('cloudtaser')
      .kvWrite(RECORDS_MOUNT, `clusters/${fingerprint}/registered`, {
        fingerprint,
      });
    const bridge = await startTestBridge({
      openbao: store.admin,
      beacons: [replicas.address],
      health: { host: '127.0.0.1', port: 0 },
    });
    closers.push(() => bridge.close());
    expect(bridge.status().lastPollError).toBeUndefined();
    const text = await statusText(bridge.healthUrl);
    expect(text).not.toContain(fingerprint);
    expect(text).not.toContain(initHash(fingerprint));
  });
});
