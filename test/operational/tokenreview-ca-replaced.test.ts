/**
 * The TokenReview listener CA (`tokenreview/ca`) can be replaced: after `bao kv delete cloudtaser/tokenreview/ca`
 * the next `register` (as an admin) writes a new one and points the cluster's Kubernetes auth at it. The bridge
 * kept serving its certificate from the old CA until its renewal (20 days later) or a restart, so OpenBao refused
 * the listener's TLS and every pod login of that cluster failed. Now the bridge looks at the CA again on every poll
 * that saw a registration change (one OpenBao read on those polls only) and serves a certificate of the new CA.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  loadTokenReviewCa,
  RECORDS_MOUNT,
  registerCluster,
  TOKENREVIEW_PATHS,
} from '../../runtime/registration/index.js';
import { type OperationalStack, podLogin, startOperationalStack } from './stack.js';

let stack: OperationalStack;

beforeAll(async () => {
  stack = await startOperationalStack({ logLevel: 'info' });
  await stack.broker.waitForPhase('operational', 15_000);
}, 60_000);
afterAll(async () => {
  await stack?.close();
});

const login = () => podLogin(stack);

const caReads = () =>
  stack.openbao.requestLog().filter((entry) => entry.path.endsWith(`/data/${TOKENREVIEW_PATHS.listenerCa}`))
    .length;

describe('a replaced TokenReview listener CA', () => {
  it('is served by the bridge from its next poll, so pod logins work again', async () => {
    expect((await login()).status).toBe(200);
    const root = stack.admin.withNamespace('cloudtaser');
    const old = await loadTokenReviewCa(root);
    await root.kvDelete(RECORDS_MOUNT, TOKENREVIEW_PATHS.listenerCa);
    await registerCluster(stack.admin, {
      fingerprint: stack.kube.kubeSystemUid,
      tokenReviewEndpoint: stack.bridge.tokenReviewUrl,
    });
    expect((await loadTokenReviewCa(root))?.certPem).not.toBe(old?.certPem);

    await stack.bridge.pollNow();
    expect((await login()).status).toBe(200);
    expect(
      stack.logs.filter((line) => line.includes('"event":"tokenreview.certificate_issued"')),
    ).toHaveLength(2);
  }, 30_000);

  it('costs no OpenBao request on a poll that saw no change', async () => {
    // Discovery reads a just-registered cluster once more on the poll after (its change settles), on a loaded
    // machine a poll or two later (CI once saw one more read): wait for a poll with no read, then stay quiet.
    for (let settle = 0; settle < 5; settle++) {
      const reads = caReads();
      await stack.bridge.pollNow();
      if (caReads() === reads) break;
    }
    const before = caReads();
    for (let i = 0; i < 3; i++) await stack.bridge.pollNow();
    expect(caReads()).toBe(before);
  });
});
