/**
 * The KV v2 secret API beyond reads and writes, through the pod API: what External Secrets' PushSecret sends
 * (external-secrets providers/v1/vault/client_push.go: PushSecret reads the data, reads the metadata of an existing
 * secret, writes `custom_metadata` {managed-by: external-secrets} to `secret/metadata/<key>` before the data, and
 * DeleteSecret, for deletionPolicy: Delete, DELETEs the data and then the metadata) and `bao kv delete|undelete|
 * destroy|metadata put|delete`. These were refused by the allow-list (403 CT_PODAPI_NOT_ALLOWED), so a
 * PushSecret failed at its metadata write. Now they reach OpenBao, whose policy decides: a pod whose policy allows
 * it runs the whole sequence, a read-only pod gets OpenBao's own 403, and the mount's configuration stays off the
 * list.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NOT_ON_ALLOW_LIST } from '../../runtime/podapi/index.js';
import { APP_NAMESPACE, type OperationalStack, podClientToken, startOperationalStack } from './stack.js';

const PUSHER_SA = 'pusher';
const PUSHER_ROLE = 'pusher';
const KEY = 'pushed/db-credentials';

let stack: OperationalStack;
let pusher: string;

async function loginAs(serviceAccount: string, role: string): Promise<string> {
  const login = await stack.podRequest('POST', '/v1/auth/kubernetes/login', {
    body: { role, jwt: stack.podToken(serviceAccount) },
  });
  if (login.status !== 200) throw new Error(`login answered ${login.status}: ${JSON.stringify(login.body)}`);
  return (login.body.auth as { client_token: string }).client_token;
}

beforeAll(async () => {
  stack = await startOperationalStack({ logLevel: 'info' });
  await stack.kube.createServiceAccount(APP_NAMESPACE, PUSHER_SA);
  // What the External Secrets documentation asks of a PushSecret store's policy, under one prefix.
  await stack.clusterAdmin.writePolicy(
    'pusher',
    [
      'path "secret/data/pushed/*" { capabilities = ["create", "read", "update", "delete"] }',
      'path "secret/metadata/pushed/*" { capabilities = ["create", "read", "update", "delete", "list"] }',
      'path "secret/delete/pushed/*" { capabilities = ["update"] }',
      'path "secret/undelete/pushed/*" { capabilities = ["update"] }',
      'path "secret/destroy/pushed/*" { capabilities = ["update"] }',
    ].join('\n'),
  );
  await stack.clusterAdmin.writeKubernetesAuthRole('kubernetes', PUSHER_ROLE, {
    boundServiceAccountNames: [PUSHER_SA],
    boundServiceAccountNamespaces: [APP_NAMESPACE],
    policies: ['pusher'],
    ttl: '1h',
  });
  pusher = await loginAs(PUSHER_SA, PUSHER_ROLE);
}, 60_000);
afterAll(async () => {
  await stack?.close();
});

const as = (token: string) => ({
  get: (path: string) => stack.podRequest('GET', `/v1/${path}`, { token }),
  post: (path: string, body: unknown) => stack.podRequest('POST', `/v1/${path}`, { token, body }),
  delete: (path: string) => stack.podRequest('DELETE', `/v1/${path}`, { token }),
});

describe('External Secrets PushSecret through the pod API (KV v2)', () => {
  it('pushes a new secret: data read (404), metadata write with custom_metadata, data write', async () => {
    const pod = as(pusher);
    expect((await pod.get(`secret/data/${KEY}`)).status).toBe(404);
    const meta = await pod.post(`secret/metadata/${KEY}`, {
      custom_metadata: { 'managed-by': 'external-secrets' },
    });
    expect(meta.status).toBe(204);
    const data = await pod.post(`secret/data/${KEY}`, { data: { username: 'app', password: 'pushed-1' } });
    expect(data.status).toBe(200);
    expect((data.body.data as { version: number }).version).toBe(1);
    const stored = await stack.clusterAdmin.kvRead('secret', KEY);
    expect(stored?.data).toEqual({ username: 'app', password: 'pushed-1' });
  });

  it('updates it: data and metadata read, then the data write with check-and-set', async () => {
    const pod = as(pusher);
    expect((await pod.get(`secret/data/${KEY}`)).status).toBe(200);
    const metadata = await pod.get(`secret/metadata/${KEY}`);
    expect(metadata.status).toBe(200);
    expect((metadata.body.data as { custom_metadata: Record<string, string> }).custom_metadata).toEqual({
      'managed-by': 'external-secrets',
    });
    const write = await pod.post(`secret/data/${KEY}`, {
      data: { username: 'app', password: 'pushed-2' },
      options: { cas: 1 },
    });
    expect(write.status).toBe(200);
    expect((write.body.data as { version: number }).version).toBe(2);
  });

  it('deletes versions and brings one back (bao kv delete / undelete / destroy)', async () => {
    const pod = as(pusher);
    expect((await pod.delete(`secret/data/${KEY}`)).status).toBe(204);
    expect((await pod.get(`secret/data/${KEY}`)).status).toBe(404);
    expect((await pod.post(`secret/undelete/${KEY}`, { versions: [2] })).status).toBe(204);
    expect((await pod.get(`secret/data/${KEY}`)).status).toBe(200);
    expect((await pod.post(`secret/destroy/${KEY}`, { versions: [1] })).status).toBe(204);
    expect((await pod.get(`secret/data/${KEY}?version=1`)).status).toBe(404);
    expect((await pod.post(`secret/delete/${KEY}`, { versions: [2] })).status).toBe(204);
    expect((await pod.get(`secret/data/${KEY}`)).status).toBe(404);
    expect((await pod.post(`secret/undelete/${KEY}`, { versions: [2] })).status).toBe(204);
  });

  it('removes it for deletionPolicy: Delete: data then metadata, and nothing is left', async () => {
    const pod = as(pusher);
    expect((await pod.delete(`secret/data/${KEY}`)).status).toBe(204);
    expect((await pod.delete(`secret/metadata/${KEY}`)).status).toBe(204);
    expect((await pod.get(`secret/metadata/${KEY}`)).status).toBe(404);
    expect(await stack.clusterAdmin.kvRead('secret', KEY)).toBeUndefined();
  });
});

describe('what still decides', () => {
  it("a read-only pod's delete and metadata write get OpenBao's own 403 (its policy, not the allow-list)", async () => {
    const reader = as(await podClientToken(stack));
    for (const answer of [
      await reader.delete('secret/data/app/db'),
      await reader.delete('secret/metadata/app/db'),
      await reader.post('secret/metadata/app/db', { custom_metadata: { owner: 'someone-else' } }),
      await reader.post('secret/destroy/app/db', { versions: [1] }),
    ]) {
      expect(answer.status, JSON.stringify(answer.body)).toBe(403);
      // OpenBao's wording for an ACL refusal of a logical request ("1 error occurred: * permission denied").
      expect(String((answer.body.errors as string[])[0])).toMatch(/permission denied/);
      expect(answer.body.errors).not.toContain(NOT_ON_ALLOW_LIST);
    }
    expect((await stack.clusterAdmin.kvRead('secret', 'app/db'))?.data).toBeDefined();
  });

  it("the mount's configuration and the mount itself stay off the allow-list, for any token", async () => {
    const pod = as(pusher);
    for (const answer of [
      await pod.post('secret/config', { max_versions: 1 }),
      await stack.podRequest('DELETE', '/v1/sys/mounts/secret', { token: pusher }),
    ]) {
      expect(answer).toEqual({ status: 403, body: { errors: ['permission denied', NOT_ON_ALLOW_LIST] } });
    }
  });
});
