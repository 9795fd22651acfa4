/**
 * The bridge's TokenReview listener caches each cluster's reviewer-credential hash (one OpenBao read, then at most
 * one per 10 s after a mismatch). It never dropped an entry: a deregistered cluster stayed cached for the bridge's
 * lifetime (a cost that grew with every cluster a fleet ever registered), and a cluster registered again (a new
 * cluster CA, so a new credential) kept the old hash until a mismatch re-read it, which a recent mismatch (a
 * caller with a wrong credential) postponed by up to 10 s. Now a cluster discovery reports as changed is forgotten
 * on that poll: the cache holds only clusters the bridge serves, and a re-registered one is read afresh.
 */
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BridgeHandle } from '../../runtime/bridge/index.js';
import { TOKENREVIEW_PATH } from '../../runtime/podapi/protocol.js';
import { deregisterCluster, registerCluster, TOKENREVIEW_PATHS } from '../../runtime/registration/index.js';
import {
  type Replicas,
  type SecretStore,
  startReplicas,
  startSecretStore,
  startTestBridge,
} from '../runtime/fixtures.js';

let store: SecretStore;
let replicas: Replicas;
let bridge: BridgeHandle;

beforeAll(async () => {
  store = await startSecretStore();
  replicas = await startReplicas(1);
  bridge = await startTestBridge({
    openbao: store.bridge,
    beacons: [replicas.address],
    // Plain HTTP: the subject is the cache behind the listener, not its TLS.
    tokenReview: { host: '127.0.0.1', port: 0, tls: false },
    timing: { pollIntervalMs: 60_000, stepTimeoutMs: 3_000, backoffInitialMs: 50, backoffMaxMs: 1_000 },
  });
});
afterAll(async () => {
  await bridge?.close();
  await replicas?.close();
  await store?.close();
});

/** A review with a credential that is not the cluster's: refused, after the bridge looked the credential up. */
async function reviewWithWrongCredential(fingerprint: string): Promise<number> {
  const response = await request(`${bridge.tokenReviewUrl}/clusters/${fingerprint}${TOKENREVIEW_PATH}`, {
    method: 'POST',
    headers: { authorization: `Bearer not-the-reviewer-${randomUUID()}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec: { token: 'x' },
    }),
  });
  await response.body.dump();
  return response.statusCode;
}

const cached = () => bridge.status().tokenReview?.cachedReviewers;
/** OpenBao reads of a cluster's reviewer-credential record (in the cluster namespace). */
const reviewerReads = (namespace: string) =>
  store.server
    .requestLog()
    .filter(
      (entry) =>
        entry.method === 'GET' &&
        entry.path.endsWith(`/data/${TOKENREVIEW_PATHS.reviewer}`) &&
        entry.namespace === namespace,
    ).length;

describe("the TokenReview listener's reviewer cache", () => {
  it('holds only registered clusters, and reads a re-registered one afresh even right after a mismatch', async () => {
    const endpoint = { tokenReviewEndpoint: bridge.tokenReviewUrl! };
    const a = await registerCluster(store.registrar, { fingerprint: randomUUID(), ...endpoint });
    const b = await registerCluster(store.registrar, { fingerprint: randomUUID(), ...endpoint });
    await bridge.pollNow();
    expect(cached()).toBe(0);
    expect(await reviewWithWrongCredential(a.fingerprint)).toBe(401);
    expect(await reviewWithWrongCredential(b.fingerprint)).toBe(401);
    expect(cached()).toBe(2);

    await deregisterCluster(store.registrar, { fingerprint: a.fingerprint });
    await bridge.pollNow();
    expect(cached()).toBe(1);

    // B again, with a new cluster CA: its mismatch just now would pace a re-read of a hash still cached.
    await deregisterCluster(store.registrar, { fingerprint: b.fingerprint });
    await bridge.pollNow();
    await registerCluster(store.registrar, { fingerprint: b.fingerprint, ...endpoint });
    await bridge.pollNow();
    expect(cached()).toBe(0);
    const before = reviewerReads(b.namespace);
    expect(await reviewWithWrongCredential(b.fingerprint)).toBe(401);
    expect(reviewerReads(b.namespace)).toBeGreaterThan(before);
    expect(cached()).toBe(1);
  }, 30_000);
});
