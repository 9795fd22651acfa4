/**
 * OpenBao's Kubernetes auth pointed at a bridge replica that holds no tunnel to the cluster and has no
 * `--tokenreview-peers` to ask (a bridge Deployment scaled to two without the chart's peers setting, or an endpoint
 * changed by hand). OpenBao's TokenReview never reaches the broker and OpenBao refuses the login with a bare 403
 * `permission denied`, what a pod its role does not bind gets: the pod was told nothing it could act on, and only
 * the bridge replica's log line (`tokenreview.no_tunnel`) said why. Now the broker, which saw no review for the
 * login, adds CT_TOKENREVIEW_UNAVAILABLE with where to look.
 */
import { Writable } from 'node:stream';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { BridgeHandle } from '../../runtime/bridge/index.js';
import { createLogger } from '../../runtime/core/log.js';
import { registerCluster } from '../../runtime/registration/index.js';
import { startTestBridge } from '../runtime/fixtures.js';
import { type OperationalStack, podLogin, startOperationalStack } from './stack.js';

let stack: OperationalStack;
let replicaWithoutTunnel: BridgeHandle;

beforeAll(async () => {
  stack = await startOperationalStack({ logLevel: 'info' });
  replicaWithoutTunnel = await startTestBridge({
    openbao: stack.bridgeOpenBao,
    beacons: [stack.replicas.address],
    tokenReview: { host: '127.0.0.1', port: 0 },
  });
  await replicaWithoutTunnel.pollNow();
}, 60_000);

afterAll(async () => {
  await replicaWithoutTunnel?.close();
  await stack?.close();
});

/** Points the cluster's Kubernetes auth at `endpoint`, as `source register --tokenreview-endpoint` does. */
const reviewAt = (endpoint: string) =>
  registerCluster(stack.registrar, { fingerprint: stack.kube.kubeSystemUid, tokenReviewEndpoint: endpoint });

it('a login whose TokenReview reached no broker is refused with CT_TOKENREVIEW_UNAVAILABLE, then works again', async () => {
  expect((await podLogin(stack)).status).toBe(200);
  expect(replicaWithoutTunnel.tunnels(stack.kube.kubeSystemUid).some((t) => !t.closed)).toBe(false);

  await reviewAt(replicaWithoutTunnel.tokenReviewUrl!);
  const refused = await podLogin(stack);
  expect(refused.status).toBe(403);
  expect(refused.body.errors).toEqual([
    'permission denied',
    expect.stringMatching(/^CT_TOKENREVIEW_UNAVAILABLE: OpenBao refused this login without its TokenReview/),
  ]);
  const unreviewed = stack.logs.filter((line) => line.includes('"event":"podapi.login_unreviewed"'));
  expect(unreviewed.length).toBeGreaterThanOrEqual(1);
  expect(unreviewed[0]).toContain('"code":"CT_TOKENREVIEW_UNAVAILABLE"');

  // A pod its role does not bind, once reviews reach the broker again, still gets OpenBao's own answer.
  await reviewAt(stack.bridge.tokenReviewUrl!);
  expect((await podLogin(stack)).status).toBe(200);
  const unbound = await stack.podRequest('POST', '/v1/auth/kubernetes/login', {
    body: { role: 'app', jwt: stack.podToken('app-b') },
  });
  expect(unbound).toEqual({ status: 403, body: { errors: ['service account name not authorized'] } });
});

it("a bridge that cannot read the cluster's reviewer credential says so, not that OpenBao's was wrong", async () => {
  // An outside drill revoked a bridge's OpenBao token: pods got a bare 403, and the bridge logged "wrong
  // credential ... re-run registration if OpenBao's config was replaced", which sends the SRE to the wrong place.
  const created = await stack.admin.request('POST', 'auth/token/create', {
    body: { policies: ['cloudtaser-bridge'], no_default_policy: false },
  });
  const token = (created.body as { auth: { client_token: string } }).auth.client_token;
  const lines: string[] = [];
  const revokedReplica = await startTestBridge({
    openbao: stack.bridgeOpenBao.withToken(token),
    beacons: [stack.replicas.address],
    tokenReview: { host: '127.0.0.1', port: 0 },
    logger: createLogger('revoked-bridge', {
      level: 'info',
      destination: new Writable({
        write(chunk, _encoding, callback) {
          lines.push(...String(chunk).split('\n').filter(Boolean));
          callback();
        },
      }),
    }),
  });
  try {
    await revokedReplica.pollNow();
    await stack.admin.request('POST', 'auth/token/revoke', { body: { token } });
    await reviewAt(revokedReplica.tokenReviewUrl!);
    // A caller without the credential first (anyone who can reach the endpoint): its refusal is logged, and must
    // not keep the bridge's own failure out of the log for the minute that follows.
    const stranger = new Agent({ connect: { rejectUnauthorized: false } });
    const unauthenticated = await request(
      `${revokedReplica.tokenReviewUrl}/clusters/${stack.kube.kubeSystemUid}/apis/authentication.k8s.io/v1/tokenreviews`,
      { method: 'POST', body: '{}', dispatcher: stranger },
    );
    await unauthenticated.body.dump();
    await stranger.close();
    expect(unauthenticated.statusCode).toBe(401);
    const refused = await podLogin(stack);
    expect(refused.status).toBe(403);
    expect((refused.body.errors as string[])[1]).toMatch(/^CT_TOKENREVIEW_UNAVAILABLE: /);
    const unauthorized = lines.filter((line) => line.includes('"event":"tokenreview.unauthorized"'));
    expect(unauthorized[0]).toContain('no bearer token');
    const unreadable = unauthorized.filter((line) => line.includes('"code":"CT_OPENBAO_PERMISSION_DENIED"'));
    expect(unreadable.length).toBeGreaterThanOrEqual(1);
    expect(unreadable[0]).toContain("fix the bridge's OpenBao token or policy");
    expect(unreadable[0]).not.toContain('wrong credential');
  } finally {
    await reviewAt(stack.bridge.tokenReviewUrl!);
    await revokedReplica.close();
  }
});
