/**
 * Contract cases for Kubernetes access. By default they run against the in-repo Kubernetes test server;
 * with CLOUDTASER_TEST_KUBE_CONFIG=<kubeconfig path> the same client cases run against a real cluster
 * (server-only wire checks are skipped then). CLOUDTASER_TEST_KUBE_NAMESPACE picks the namespace (default
 * `default`); the credentials need get on kube-system, secrets and events there, serviceaccounts/token for
 * the `default` service account, and create on tokenreviews.
 */
import { createPublicKey, randomUUID, verify } from 'node:crypto';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isFingerprint } from '../../runtime/core/index.js';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { KubeClient, type KubeConnection, readClusterFingerprint } from '../../runtime/kube/index.js';
import { expectCode, uniqueName } from '../support/expect-code.js';

const realKubeconfig = process.env.CLOUDTASER_TEST_KUBE_CONFIG;
const namespace = process.env.CLOUDTASER_TEST_KUBE_NAMESPACE ?? 'default';
// Against a real cluster (CLOUDTASER_TEST_KUBE_CONFIG) the cases that inspect the test server's internals or
// exact wire bytes cannot run; every shared contract case still does.
const serverOnly = realKubeconfig ? it.skip : it;

let server: KubeTestServer | undefined;
let connection: KubeConnection;
let client: KubeClient;

beforeAll(async () => {
  if (realKubeconfig) {
    connection = { kind: 'kubeconfig', path: realKubeconfig };
  } else {
    server = await startKubeTestServer();
    connection = {
      kind: 'token',
      host: server.url,
      token: server.adminToken,
      clusterCaCertificate: server.caCertPem,
    };
  }
  client = KubeClient.fromConnection(connection);
});

afterAll(async () => {
  client?.close();
  await server?.close();
});

describe('Kubernetes access contract', () => {
  it('reads the cluster fingerprint as the kube-system namespace UID', async () => {
    const fingerprint = await readClusterFingerprint(connection);
    expect(isFingerprint(fingerprint)).toBe(true);
    if (server) expect(fingerprint).toBe(server.kubeSystemUid);
    expect(await readClusterFingerprint(connection)).toBe(fingerprint);
  });

  it('reports a missing namespace as CT_KUBE_NOT_FOUND', async () => {
    const err = await expectCode(client.getNamespace(uniqueName('absent')), 'CT_KUBE_NOT_FOUND');
    expect(err.message).toMatch(/namespaces "absent-[0-9a-f]+" not found/);
  });

  it('creates, reads, lists by label and field, and refuses a duplicate secret', async () => {
    const name = uniqueName('ct-contract');
    const label = uniqueName('run');
    const created = await client.createSecret(namespace, {
      metadata: { name, labels: { 'cloudtaser.io/test': label } },
      stringData: { password: 's3cr3t' },
    });
    expect(created.type).toBe('Opaque');
    expect(created.data?.password).toBe(Buffer.from('s3cr3t').toString('base64'));
    expect((created as unknown as Record<string, unknown>).stringData).toBeUndefined();

    const read = await client.getSecret(namespace, name);
    expect(read.metadata.uid).toBe(created.metadata.uid);

    const byLabel = await client.listSecrets(namespace, { labelSelector: `cloudtaser.io/test=${label}` });
    expect(byLabel.items.map((s) => s.metadata.name)).toEqual([name]);
    expect((byLabel.items[0] as unknown as Record<string, unknown>).kind).toBeUndefined();
    const bySetSelector = await client.listSecrets(namespace, {
      labelSelector: `cloudtaser.io/test in (${label},other)`,
    });
    expect(bySetSelector.items).toHaveLength(1);
    const byField = await client.listSecrets(namespace, { fieldSelector: `metadata.name=${name}` });
    expect(byField.items.map((s) => s.metadata.name)).toEqual([name]);
    const negated = await client.listSecrets(namespace, {
      labelSelector: `cloudtaser.io/test=${label}`,
      fieldSelector: `metadata.name!=${name}`,
    });
    expect(negated.items).toHaveLength(0);

    await expectCode(
      client.createSecret(namespace, { metadata: { name }, stringData: { a: 'b' } }),
      'CT_KUBE_CONFLICT',
    );
    await client.deleteSecret(namespace, name);
  });

  it('refuses an unsupported field selector with a 400 that names the field', async () => {
    const err = await expectCode(
      client.listSecrets(namespace, { fieldSelector: 'data.password=x' }),
      'CT_KUBE_ERROR',
    );
    expect(err.message).toContain('field label not supported: data.password');
  });

  it('patches annotations and labels, bumping the resourceVersion, and honours an optimistic lock', async () => {
    const name = uniqueName('ct-patch');
    const created = await client.createSecret(namespace, {
      metadata: { name, annotations: { keep: 'me' } },
      stringData: { k: 'v' },
    });
    const patched = await client.patchSecretMetadata(namespace, name, {
      annotations: { 'cloudtaser.io/migrated': 'true' },
      labels: { tier: 'db' },
    });
    expect(patched.metadata.annotations).toEqual({ keep: 'me', 'cloudtaser.io/migrated': 'true' });
    expect(patched.metadata.labels).toEqual({ tier: 'db' });
    expect(patched.metadata.resourceVersion).not.toBe(created.metadata.resourceVersion);
    expect(patched.data).toEqual(created.data);

    const removed = await client.patchSecretMetadata(namespace, name, { annotations: { keep: null } });
    expect(removed.metadata.annotations).toEqual({ 'cloudtaser.io/migrated': 'true' });

    const stale = created.metadata.resourceVersion;
    await expectCode(
      client.patchSecretMetadata(namespace, name, { labels: { x: 'y' } }, { resourceVersion: stale }),
      'CT_KUBE_CONFLICT',
    );
    await client.deleteSecret(namespace, name);
  });

  it('deletes a secret only when the resourceVersion and uid preconditions still hold', async () => {
    const name = uniqueName('ct-delete');
    const created = await client.createSecret(namespace, { metadata: { name }, stringData: { k: 'v' } });
    const changed = await client.patchSecretMetadata(namespace, name, { annotations: { touched: 'yes' } });

    const rvErr = await expectCode(
      client.deleteSecret(namespace, name, { resourceVersion: created.metadata.resourceVersion }),
      'CT_KUBE_CONFLICT',
    );
    expect(rvErr.message).toContain('the ResourceVersion in the precondition');
    await expectCode(client.deleteSecret(namespace, name, { uid: randomUUID() }), 'CT_KUBE_CONFLICT');
    await client.getSecret(namespace, name);

    await client.deleteSecret(namespace, name, {
      resourceVersion: changed.metadata.resourceVersion,
      uid: created.metadata.uid,
    });
    await expectCode(client.getSecret(namespace, name), 'CT_KUBE_NOT_FOUND');
    await expectCode(client.deleteSecret(namespace, name), 'CT_KUBE_NOT_FOUND');
  });

  it('records an event about an object, named after it', async () => {
    const name = uniqueName('ct-event');
    const secret = await client.createSecret(namespace, { metadata: { name }, stringData: { k: 'v' } });
    const event = await client.createEvent(namespace, {
      involvedObject: { kind: 'Secret', apiVersion: 'v1', name, uid: secret.metadata.uid },
      reason: 'Migrated',
      message: 'secret copied to OpenBao and verified',
      component: 'cloudtaser-broker',
    });
    expect(event.metadata.name.startsWith(`${name}.`)).toBe(true);
    await client.deleteSecret(namespace, name);
  });

  it('mints a service-account token that TokenReview accepts for its audience and rejects for another', async () => {
    const audience = `cloudtaser-contract-${randomUUID().slice(0, 8)}`;
    const minted = await client.createServiceAccountToken(namespace, 'default', {
      audiences: [audience],
      expirationSeconds: 600,
    });
    expect(minted.token.split('.')).toHaveLength(3);
    expect(Date.parse(minted.expirationTimestamp)).toBeGreaterThan(Date.now());

    const accepted = await client.createTokenReview(minted.token, [audience]);
    expect(accepted.authenticated).toBe(true);
    expect(accepted.user?.username).toBe(`system:serviceaccount:${namespace}:default`);
    expect(accepted.user?.groups).toEqual(
      expect.arrayContaining([
        'system:serviceaccounts',
        `system:serviceaccounts:${namespace}`,
        'system:authenticated',
      ]),
    );
    expect(accepted.audiences).toEqual([audience]);

    const wrongAudience = await client.createTokenReview(minted.token, ['someone-else']);
    expect(wrongAudience.authenticated).not.toBe(true);
    expect(wrongAudience.error).toBeTruthy();

    const garbage = await client.createTokenReview('not-a-token', [audience]);
    expect(garbage.authenticated).not.toBe(true);
  });

  it('refuses a TokenRequest shorter than ten minutes', async () => {
    const err = await expectCode(
      client.createServiceAccountToken(namespace, 'default', { expirationSeconds: 60 }),
      'CT_KUBE_ERROR',
    );
    expect(err.message).toContain('may not specify a duration less than 10 minutes');
  });

  it('reports a TokenRequest for a missing service account as CT_KUBE_NOT_FOUND', async () => {
    await expectCode(client.createServiceAccountToken(namespace, uniqueName('nobody')), 'CT_KUBE_NOT_FOUND');
  });

  it('refuses invalid names before sending anything', async () => {
    await expectCode(client.getSecret(namespace, ''), 'CT_INVALID_ARGUMENT');
    await expectCode(client.getSecret(namespace, '..'), 'CT_INVALID_ARGUMENT');
    // A slash is escaped, so it cannot walk to another path.
    await expectCode(client.getSecret(namespace, 'a/../../x'), 'CT_KUBE_NOT_FOUND');
  });
});

describe('Kubernetes test server wire behaviour', () => {
  let dispatcher: Agent;
  beforeAll(() => {
    dispatcher = new Agent({ connect: { ca: server?.caCertPem } });
  });
  afterAll(async () => {
    await dispatcher?.close();
  });

  async function call(
    method: string,
    path: string,
    options: { token?: string | null; body?: unknown; contentType?: string; raw?: string } = {},
  ) {
    const s = server as KubeTestServer;
    const headers: Record<string, string> = { accept: 'application/json' };
    const token = options.token === undefined ? s.adminToken : options.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let body: string | undefined = options.raw;
    if (options.body !== undefined) body = JSON.stringify(options.body);
    if (body !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
    const res = await request(`${s.url}${path}`, { method: method as 'GET', headers, body, dispatcher });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, json: text === '' ? undefined : JSON.parse(text) };
  }

  serverOnly('answers a missing or bad bearer token with the exact 401 Status', async () => {
    const expected = {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'Unauthorized',
      reason: 'Unauthorized',
      code: 401,
    };
    for (const token of [null, 'wrong', 'a.b.c', 'x'.repeat(12_000)]) {
      const res = await call('GET', '/api/v1/namespaces/kube-system', { token });
      expect(res.status).toBe(401);
      expect(res.json).toEqual(expected);
    }
    // Headers beyond Node's 16 KiB limit are refused before authentication; the server stays up.
    expect((await call('GET', '/api/v1/namespaces/kube-system', { token: 'x'.repeat(20_000) })).status).toBe(
      431,
    );
    expect((await call('GET', '/version', { token: null })).status).toBe(200);
  });

  serverOnly(
    'answers a service account without a grant with the exact 403 Status, then obeys a grant',
    async () => {
      const s = server as KubeTestServer;
      await s.createServiceAccount('ns1', 'app');
      const token = s.issueServiceAccountToken('ns1', 'app');
      const denied = await call('GET', '/api/v1/namespaces/kube-system', { token });
      expect(denied.status).toBe(403);
      expect(denied.json).toEqual({
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message:
          'namespaces "kube-system" is forbidden: User "system:serviceaccount:ns1:app" cannot get resource "namespaces" in API group "" at the cluster scope',
        reason: 'Forbidden',
        details: { name: 'kube-system', kind: 'namespaces' },
        code: 403,
      });
      const list = await call('GET', '/api/v1/namespaces/ns1/secrets', { token });
      expect(list.json.message).toBe(
        'secrets is forbidden: User "system:serviceaccount:ns1:app" cannot list resource "secrets" in API group "" in the namespace "ns1"',
      );
      expect(list.json.details).toEqual({ kind: 'secrets' });
      const review = await call('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
        token,
        body: { spec: { token } },
      });
      expect(review.json.message).toBe(
        'tokenreviews.authentication.k8s.io is forbidden: User "system:serviceaccount:ns1:app" cannot create resource "tokenreviews" in API group "authentication.k8s.io" at the cluster scope',
      );
      expect(review.json.details).toEqual({ group: 'authentication.k8s.io', kind: 'tokenreviews' });
      const sub = await call('POST', '/api/v1/namespaces/ns1/serviceaccounts/app/token', { token, body: {} });
      expect(sub.json.message).toBe(
        'serviceaccounts "app" is forbidden: User "system:serviceaccount:ns1:app" cannot create resource "serviceaccounts/token" in API group "" in the namespace "ns1"',
      );

      s.grant(
        { namespace: 'ns1', name: 'app' },
        { verbs: ['get'], resources: ['namespaces'], resourceNames: ['kube-system'] },
      );
      const allowed = await call('GET', '/api/v1/namespaces/kube-system', { token });
      expect(allowed.status).toBe(200);
      expect(allowed.json.metadata.uid).toBe(s.kubeSystemUid);
      expect((await call('GET', '/api/v1/namespaces/default', { token })).status).toBe(403);
    },
  );

  serverOnly('serves kube-system as B1 and lists without kind on items', async () => {
    const ns = await call('GET', '/api/v1/namespaces/kube-system');
    expect(ns.json).toMatchObject({
      kind: 'Namespace',
      apiVersion: 'v1',
      metadata: {
        name: 'kube-system',
        uid: server?.kubeSystemUid,
        labels: { 'kubernetes.io/metadata.name': 'kube-system' },
      },
      spec: { finalizers: ['kubernetes'] },
      status: { phase: 'Active' },
    });
    const list = await call('GET', '/api/v1/namespaces');
    expect(list.json.kind).toBe('NamespaceList');
    expect(
      list.json.items.every(
        (i: Record<string, unknown>) => i.kind === undefined && i.apiVersion === undefined,
      ),
    ).toBe(true);
  });

  serverOnly(
    'answers an immediate delete with a Success Status that has no code, and a precondition conflict naming the Kind',
    async () => {
      await call('POST', '/api/v1/namespaces/default/secrets', {
        body: { metadata: { name: 'wire' }, data: { a: 'Yg==' } },
      });
      const conflict = await call('DELETE', '/api/v1/namespaces/default/secrets/wire', {
        body: { preconditions: { resourceVersion: '1' } },
      });
      expect(conflict.status).toBe(409);
      expect(conflict.json.details).toEqual({ name: 'wire', kind: 'Secret' });
      expect(conflict.json.message).toMatch(
        /^Operation cannot be fulfilled on Secret "wire": the ResourceVersion in the precondition \(1\) does not match the ResourceVersion in record \(\d+\)\. The object might have been modified$/,
      );
      const deleted = await call('DELETE', '/api/v1/namespaces/default/secrets/wire');
      expect(deleted.status).toBe(200);
      expect(deleted.json).toEqual({
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Success',
        details: { name: 'wire', kind: 'secrets', uid: expect.any(String) },
      });
    },
  );

  serverOnly('refuses malformed, oversized and hostile request bodies without falling over', async () => {
    expect((await call('POST', '/api/v1/namespaces/default/secrets', { raw: '{not json' })).status).toBe(400);
    expect((await call('POST', '/api/v1/namespaces/default/secrets', { body: ['array'] })).status).toBe(400);
    expect(
      (await call('POST', '/api/v1/namespaces/default/secrets', { body: { metadata: { name: 'Bad_Name' } } }))
        .status,
    ).toBe(422);
    const badData = await call('POST', '/api/v1/namespaces/default/secrets', {
      body: { metadata: { name: 'b64' }, data: { k: '***' } },
    });
    expect(badData.status).toBe(400);
    const strict = await call('POST', '/api/v1/namespaces/default/secrets?fieldValidation=Strict', {
      body: { metadata: { name: 'strict' }, bogus: 1 },
    });
    expect(strict.json.message).toBe('strict decoding error: unknown field "bogus"');
    const huge = await call('POST', '/api/v1/namespaces/default/secrets', {
      raw: JSON.stringify({ metadata: { name: 'huge' }, stringData: { k: 'x'.repeat(4 * 1024 * 1024) } }),
    });
    expect(huge.status).toBe(413);
    const tooBig = await call('POST', '/api/v1/namespaces/default/secrets', {
      body: { metadata: { name: 'big' }, stringData: { k: 'x'.repeat(1024 * 1024 + 1) } },
    });
    expect(tooBig.status).toBe(422);
    expect((await call('GET', '/api/v1/namespaces/default/secrets?labelSelector=in%20(%20', {})).status).toBe(
      400,
    );
    expect((await call('GET', '/api/v1/namespaces/default/secrets?continue=garbage', {})).status).toBe(400);
    // JSON patch is a patch type every built-in resource takes: a missing Secret is a 404, not a 415.
    expect(
      (
        await call('PATCH', '/api/v1/namespaces/default/secrets/none', {
          body: [],
          contentType: 'application/json-patch+json',
        })
      ).status,
    ).toBe(404);
    expect(
      (
        await call('PATCH', '/api/v1/namespaces/default/secrets/none', {
          body: {},
          contentType: 'text/plain',
        })
      ).status,
    ).toBe(415);
    // A watch is a stream now (it ends at timeoutSeconds), as on a real API server.
    expect(
      (
        await call(
          'GET',
          '/api/v1/namespaces/default/secrets?watch=true&timeoutSeconds=1&fieldSelector=metadata.name%3Dnone',
        )
      ).status,
    ).toBe(200);
    expect((await call('GET', '/api/v1/nodes')).status).toBe(404);
    expect((await call('GET', '/version')).status).toBe(200);
  });

  serverOnly('pages a secret list with limit and continue', async () => {
    for (const n of ['page-a', 'page-b', 'page-c']) {
      await call('POST', '/api/v1/namespaces/default/secrets', {
        body: { metadata: { name: n, labels: { page: 'yes' } } },
      });
    }
    const first = await call('GET', '/api/v1/namespaces/default/secrets?labelSelector=page%3Dyes&limit=2');
    expect(first.json.items.map((i: { metadata: { name: string } }) => i.metadata.name)).toEqual([
      'page-a',
      'page-b',
    ]);
    const second = await call(
      'GET',
      `/api/v1/namespaces/default/secrets?labelSelector=page%3Dyes&limit=2&continue=${first.json.metadata.continue}`,
    );
    expect(second.json.items.map((i: { metadata: { name: string } }) => i.metadata.name)).toEqual(['page-c']);
    expect(second.json.metadata.continue).toBeUndefined();
  });

  serverOnly(
    'applies a JSON patch (RFC 6902) to a Secret like the API server, a failed test op being a 422',
    async () => {
      await call('POST', '/api/v1/namespaces/default/secrets', {
        body: { metadata: { name: 'json-patched' }, stringData: { k: 'v' } },
      });
      const patched = await call('PATCH', '/api/v1/namespaces/default/secrets/json-patched', {
        contentType: 'application/json-patch+json',
        body: [
          { op: 'add', path: '/metadata/labels', value: { tier: 'db' } },
          { op: 'replace', path: '/data/k', value: Buffer.from('w').toString('base64') },
        ],
      });
      expect(patched.status).toBe(200);
      expect(patched.json.metadata.labels).toEqual({ tier: 'db' });
      expect(patched.json.data).toEqual({ k: Buffer.from('w').toString('base64') });
      const failedTest = await call('PATCH', '/api/v1/namespaces/default/secrets/json-patched', {
        contentType: 'application/json-patch+json',
        body: [{ op: 'test', path: '/metadata/labels/tier', value: 'web' }],
      });
      expect(failedTest.status).toBe(422);
    },
  );

  serverOnly(
    'mints RS256 tokens by default (like kubeadm, GKE, EKS, AKS) with a kid and the claims of B3, verifiable with the served JWKS',
    async () => {
      const s = server as KubeTestServer;
      await s.createServiceAccount('ns1', 'app');
      const minted = await call('POST', '/api/v1/namespaces/ns1/serviceaccounts/app/token', {
        body: {
          spec: {
            audiences: ['openbao'],
            expirationSeconds: 3600,
            boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: 'app-1', uid: 'pod-uid' },
          },
        },
      });
      expect(minted.status).toBe(201);
      expect(minted.json.metadata).toMatchObject({ name: 'app', namespace: 'ns1' });
      const [header, payload, signature] = minted.json.status.token.split('.');
      const head = JSON.parse(Buffer.from(header, 'base64url').toString());
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
      expect(head.alg).toBe('RS256');
      expect(claims).toMatchObject({
        aud: ['openbao'],
        iss: s.issuer,
        sub: 'system:serviceaccount:ns1:app',
        'kubernetes.io': {
          namespace: 'ns1',
          serviceaccount: { name: 'app', uid: minted.json.metadata.uid },
          pod: { name: 'app-1', uid: 'pod-uid' },
        },
      });
      expect(claims.exp - claims.iat).toBe(3600);
      const jwks = await call('GET', '/openid/v1/jwks');
      const jwk = jwks.json.keys.find((k: { kid: string }) => k.kid === head.kid);
      expect(jwk).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig' });
      const ok = verify(
        'sha256',
        Buffer.from(`${header}.${payload}`),
        createPublicKey({ key: jwk, format: 'jwk' }),
        Buffer.from(signature, 'base64url'),
      );
      expect(ok).toBe(true);
      const discovery = await call('GET', '/.well-known/openid-configuration');
      expect(discovery.json.issuer).toBe(s.issuer);
      expect((await call('GET', '/openid/v1/jwks', { token: null })).status).toBe(401);
    },
  );

  serverOnly(
    'TokenReview accepts an OpenBao-style body and answers in the v1.31 shape with pod extras',
    async () => {
      const s = server as KubeTestServer;
      await s.createServiceAccount('ns1', 'app');
      const jwt = s.issueServiceAccountToken('ns1', 'app', {
        audiences: ['vault'],
        boundPod: { name: 'p', uid: 'u' },
      });
      const res = await call('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
        body: {
          metadata: { creationTimestamp: null },
          spec: { token: jwt, audiences: ['vault'] },
          status: { user: {} },
        },
      });
      expect(res.status).toBe(201);
      expect(res.json.metadata).toEqual({ creationTimestamp: null });
      expect(res.json.spec).toEqual({ token: jwt, audiences: ['vault'] });
      expect(res.json.status.authenticated).toBe(true);
      expect(res.json.status.user.extra['authentication.kubernetes.io/pod-name']).toEqual(['p']);
      expect(res.json.status.user.extra['authentication.kubernetes.io/credential-id'][0]).toMatch(/^JTI=/);
      const empty = await call('POST', '/apis/authentication.k8s.io/v1/tokenreviews', { body: { spec: {} } });
      expect(empty.status).toBe(400);
      expect(empty.json.message).toBe('token is required for TokenReview in authentication');
      const namespaced = await call('POST', '/apis/authentication.k8s.io/v1/namespaces/ns1/tokenreviews', {
        body: { spec: { token: jwt } },
      });
      expect(namespaced.json.message).toBe('namespace is not allowed on this type: ns1');
    },
  );

  serverOnly('TokenReview rejects expired, tampered, unsigned and orphaned tokens', async () => {
    const s = server as KubeTestServer;
    await s.createServiceAccount('ns2', 'gone');
    const valid = s.issueServiceAccountToken('ns2', 'gone', { audiences: ['vault'] });
    const [h, p, sig] = valid.split('.');
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, sub: 'system:serviceaccount:kube-system:admin' })).toString('base64url')}.${sig}`;
    const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${p}.`;
    const review = async (token: string) =>
      (
        await call('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
          body: { spec: { token, audiences: ['vault'] } },
        })
      ).json.status;
    for (const token of [forged, unsigned, `${h}.${p}`, 'x'.repeat(100_000)]) {
      const status = await review(token);
      expect(status.authenticated).toBeUndefined();
      expect(status.user).toEqual({});
      expect(status.error).toMatch(/^\[invalid bearer token, /);
    }
    expect((await review(valid)).authenticated).toBe(true);
    // Delete and recreate the service account: the old token names the old uid and must stop working.
    await call('DELETE', '/api/v1/namespaces/ns2/serviceaccounts/gone');
    expect((await review(valid)).error).toContain('deleted');
    await s.createServiceAccount('ns2', 'gone');
    expect((await review(valid)).authenticated).toBeUndefined();
  });

  serverOnly('serves discovery documents kubectl needs', async () => {
    expect((await call('GET', '/api')).json).toMatchObject({ kind: 'APIVersions', versions: ['v1'] });
    const groups = (await call('GET', '/apis')).json;
    expect(groups.groups.map((g: { name: string }) => g.name)).toContain('authentication.k8s.io');
    const core = (await call('GET', '/api/v1')).json;
    expect(core.resources).toContainEqual(
      expect.objectContaining({
        name: 'serviceaccounts/token',
        group: 'authentication.k8s.io',
        version: 'v1',
        kind: 'TokenRequest',
      }),
    );
    expect(core.resources).toContainEqual(
      expect.objectContaining({ name: 'secrets', namespaced: true, kind: 'Secret' }),
    );
    const auth = (await call('GET', '/apis/authentication.k8s.io/v1')).json;
    expect(auth.resources).toContainEqual(
      expect.objectContaining({ name: 'tokenreviews', namespaced: false }),
    );
    expect((await call('GET', '/api', { token: null })).status).toBe(401);
  });
});
