/**
 * The Kubernetes API server restarts (or a load balancer in front of it drops idle connections) while a long-running
 * process holds pooled keep-alive sockets to it: the broker's TokenReview relay, the webhook caBundle keeper, shard
 * Leases. A call that changes nothing must not fail on the dead socket (before: the first TokenReview after it failed,
 * and with it a pod's login); a call that changes something is never sent twice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { KubeClient } from '../../runtime/kube/index.js';
import { startTcpProxy } from '../support/tcp-proxy.js';

let server: KubeTestServer;
let proxy: Awaited<ReturnType<typeof startTcpProxy>>;
let client: KubeClient;

beforeAll(async () => {
  server = await startKubeTestServer();
  proxy = await startTcpProxy(new URL(server.url));
  await server.createServiceAccount('apps', 'web');
  client = KubeClient.fromConnection({
    kind: 'token',
    host: `https://127.0.0.1:${new URL(proxy.address).port}`,
    token: server.adminToken,
    clusterCaCertificate: server.caCertPem,
  });
});
afterAll(async () => {
  client?.close();
  await proxy?.close();
  await server?.close();
});

describe('pooled sockets to an API server that went away', () => {
  it('a TokenReview and a read after the sockets died are answered, on a new connection', async () => {
    const token = server.issueServiceAccountToken('apps', 'web');
    await expect(client.createTokenReview(token)).resolves.toMatchObject({ authenticated: true });
    proxy.kill();
    await expect(client.createTokenReview(token)).resolves.toMatchObject({ authenticated: true });
    proxy.kill();
    await expect(client.getNamespace('kube-system')).resolves.toMatchObject({
      metadata: { name: 'kube-system' },
    });
  });

  it('a write on a dead socket fails with CT_KUBE_UNREACHABLE instead of being sent again', async () => {
    await client.getNamespace('kube-system');
    proxy.kill();
    await expect(
      client.createEvent('default', {
        involvedObject: { kind: 'Secret', apiVersion: 'v1', name: 's', namespace: 'default' },
        type: 'Normal',
        reason: 'Test',
        message: 'm',
      } as never),
    ).rejects.toMatchObject({ code: 'CT_KUBE_UNREACHABLE' });
  });
});
