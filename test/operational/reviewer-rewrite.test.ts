/**
 * The first `register` of this release rewrites each cluster's TokenReview reviewer credential (derived now, random
 * before), and any re-registration with a new CA changes it. The bridge caches the recorded hash and reads it again
 * after a mismatch at most every 10 s; that pace also counted the bridge's first read, so a bridge that had read
 * the hash seconds before the rewrite refused every pod login (403) for the rest of the 10 s. Found upgrading a
 * live installation: `helm upgrade` of the bridge, then `source register`.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  KUBERNETES_AUTH_MOUNT,
  RECORDS_MOUNT,
  registerCluster,
  reviewerSha256,
  TOKENREVIEW_PATHS,
} from '../../runtime/registration/index.js';
import { type OperationalStack, podLogin, startOperationalStack } from './stack.js';

let stack: OperationalStack;
beforeAll(async () => {
  stack = await startOperationalStack();
}, 60_000);
afterAll(async () => {
  await stack?.close();
});

const login = () => podLogin(stack);

describe('a reviewer credential rewritten seconds after the bridge read it', () => {
  it('keeps pod logins working: the first mismatch reads the recorded hash again at once', async () => {
    // What the previous release left: another (random) credential, consistent with its record.
    const earlier = `e30.${randomBytes(16).toString('base64url')}.x`;
    const config = await stack.clusterAdmin.request<{ data: Record<string, unknown> }>(
      'GET',
      `auth/${KUBERNETES_AUTH_MOUNT}/config`,
    );
    await stack.clusterAdmin.kvWrite(RECORDS_MOUNT, TOKENREVIEW_PATHS.reviewer, {
      reviewer_sha256: reviewerSha256(earlier),
      created_at: new Date().toISOString(),
    });
    await stack.clusterAdmin.writeKubernetesAuthConfig(KUBERNETES_AUTH_MOUNT, {
      kubernetesHost: String(config.body?.data.kubernetes_host),
      kubernetesCaCert: String(config.body?.data.kubernetes_ca_cert),
      disableLocalCaJwt: true,
      tokenReviewerJwt: earlier,
    });
    // The bridge reads the hash now (a mismatch against what it had cached), as one just restarted would.
    expect((await login()).status).toBe(200);
    // The upgrade's `register` rewrites the pair; logins go on at once.
    await registerCluster(stack.registrar, {
      fingerprint: stack.cluster.fingerprint,
      tokenReviewEndpoint: stack.bridge.tokenReviewUrl,
    });
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await login()).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200]);
  });
});
