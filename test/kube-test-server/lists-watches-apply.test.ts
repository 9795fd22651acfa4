/**
 * The Kubernetes test server's list paging, watches, server-side apply and OpenAPI documents, on the wire, as
 * kube-apiserver answers them: continue tokens that hold the list's resourceVersion and last key, watch streams
 * of JSON events, apply patches that create and merge, and the documents kubectl reads before `apply`.
 */
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { KubeClient } from '../../runtime/kube/index.js';
import { uniqueName } from '../support/expect-code.js';
import { waitUntil } from '../support/wait.js';

let server: KubeTestServer;
let kube: KubeClient;
/** One agent per server: each test server has its own dev CA. */
const agents = new Map<KubeTestServer, Agent>();

function dispatcherFor(s: KubeTestServer): Agent {
  let agent = agents.get(s);
  if (agent === undefined) {
    agent = new Agent({ connect: { ca: s.caCertPem } });
    agents.set(s, agent);
  }
  return agent;
}

beforeAll(async () => {
  // A short bookmark interval, so the bookmark test waits for a fraction of a second, not a minute.
  server = await startKubeTestServer({ watchBookmarkIntervalMs: 100 });
  kube = clientFor(server);
});

afterAll(async () => {
  kube?.close();
  for (const agent of agents.values()) await agent.close();
  await server?.close();
});

function clientFor(s: KubeTestServer): KubeClient {
  return KubeClient.fromConnection({
    kind: 'token',
    host: s.url,
    token: s.adminToken,
    clusterCaCertificate: s.caCertPem,
  });
}

/** A decoded JSON reply; tests read the members they assert on. */
// biome-ignore lint/suspicious/noExplicitAny: the bodies are Kubernetes objects of many shapes
type Json = Record<string, any>;

interface Reply {
  status: number;
  json: Json;
}

async function call(
  method: 'GET' | 'PATCH' | 'DELETE',
  path: string,
  opts: { body?: string; contentType?: string; on?: KubeTestServer } = {},
): Promise<Reply> {
  const target = opts.on ?? server;
  const res = await request(`${target.url}${path}`, {
    method,
    headers: {
      accept: 'application/json',
      authorization: `Bearer ${target.adminToken}`,
      ...(opts.contentType === undefined ? {} : { 'content-type': opts.contentType }),
    },
    body: opts.body,
    dispatcher: dispatcherFor(target),
  });
  return { status: res.statusCode, json: JSON.parse(await res.body.text()) };
}

interface WatchEvent {
  type: string;
  object: Json;
}

/** Opens a watch and collects its events as they arrive; `ended` resolves when the server ends the stream. */
async function openWatch(path: string, on: KubeTestServer = server) {
  const res = await request(`${on.url}${path}`, {
    headers: { accept: 'application/json', authorization: `Bearer ${on.adminToken}` },
    dispatcher: dispatcherFor(on),
  });
  const events: WatchEvent[] = [];
  let buffered = '';
  res.body.setEncoding('utf8');
  res.body.on('data', (chunk: string) => {
    buffered += chunk;
    let newline = buffered.indexOf('\n');
    while (newline >= 0) {
      events.push(JSON.parse(buffered.slice(0, newline)));
      buffered = buffered.slice(newline + 1);
      newline = buffered.indexOf('\n');
    }
  });
  const ended = new Promise<void>((resolve) => {
    res.body.on('end', () => resolve());
    res.body.on('close', () => resolve());
  });
  const summary = () => events.map((e) => `${e.type} ${e.object.metadata?.name ?? ''}`.trim());
  return {
    status: res.statusCode,
    contentType: res.headers['content-type'],
    events,
    summary,
    ended,
    close: () => res.body.destroy(),
    /** Waits until the stream has delivered `count` events. */
    waitFor: (count: number) =>
      waitUntil(() => events.length >= count, { what: `${count} watch events, got ${summary()}` }),
  };
}

async function createSecrets(namespace: string, names: string[], labels: Record<string, string> = {}) {
  await server.createNamespace(namespace);
  for (const name of names)
    await kube.createSecret(namespace, { metadata: { name, labels }, stringData: { k: 'v' } });
}

describe('list paging with continue tokens', () => {
  it('resumes after the last key returned, so a delete between pages skips nothing', async () => {
    const ns = uniqueName('paging');
    await createSecrets(ns, ['a', 'b', 'c']);
    const first = await kube.listSecrets(ns, { limit: 1 });
    expect(first.items.map((s) => s.metadata.name)).toEqual(['a']);
    await kube.deleteSecret(ns, 'a');
    const second = await kube.listSecrets(ns, { limit: 1, continue: first.metadata.continue });
    expect(second.items.map((s) => s.metadata.name)).toEqual(['b']);
  });

  it('serves every page at the first page resourceVersion: later creates and deletes do not show', async () => {
    const ns = uniqueName('snapshot');
    await createSecrets(ns, ['a', 'c', 'e']);
    const first = await kube.listSecrets(ns, { limit: 1 });
    await kube.createSecret(ns, { metadata: { name: 'd' }, stringData: { k: 'v' } });
    await kube.deleteSecret(ns, 'e');
    const rest = await kube.listSecrets(ns, { limit: 10, continue: first.metadata.continue });
    expect(rest.items.map((s) => s.metadata.name)).toEqual(['c', 'e']);
    expect(rest.metadata.resourceVersion).toBe(first.metadata.resourceVersion);
    expect(rest.metadata.continue).toBeUndefined();
  });

  it('pages across namespaces in namespace/name order', async () => {
    const [one, two] = [uniqueName('pa'), uniqueName('pb')].sort();
    await createSecrets(one, ['x', 'y']);
    await createSecrets(two, ['x']);
    const names: string[] = [];
    let token: string | undefined;
    do {
      const page = await call(
        'GET',
        `/api/v1/secrets?limit=1&labelSelector=&${token === undefined ? '' : `continue=${token}`}`,
      );
      names.push(
        ...page.json.items
          .filter((s: Json) => [one, two].includes(s.metadata.namespace))
          .map((s: Json) => `${s.metadata.namespace}/${s.metadata.name}`),
      );
      token = page.json.metadata.continue;
    } while (token !== undefined);
    expect(names).toEqual([`${one}/x`, `${one}/y`, `${two}/x`]);
  });

  it('answers 410 Expired with an inconsistent continue token once the list revision is compacted', async () => {
    const small = await startKubeTestServer({ historyLimit: 3 });
    const client = clientFor(small);
    try {
      await small.createNamespace('p');
      for (const name of ['a', 'b', 'c'])
        await client.createSecret('p', { metadata: { name }, stringData: { k: 'v' } });
      const first = await client.listSecrets('p', { limit: 1 });
      // Four changes push the list's revision out of a three-change history.
      for (const name of ['d', 'e', 'f', 'g'])
        await client.createSecret('p', { metadata: { name }, stringData: { k: 'v' } });
      const expired = await call(
        'GET',
        `/api/v1/namespaces/p/secrets?limit=2&continue=${first.metadata.continue}`,
        {
          on: small,
        },
      );
      expect(expired.status).toBe(410);
      expect(expired.json).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'Expired', code: 410 });
      expect(expired.json.message).toMatch(
        /^The provided continue parameter is too old to display a consistent list result/,
      );
      // The token in the Status resumes after "a" against the current state, which now holds d to g.
      const rest = await client.listSecrets('p', { limit: 10, continue: expired.json.metadata.continue });
      expect(rest.items.map((s) => s.metadata.name)).toEqual(['b', 'c', 'd', 'e', 'f', 'g']);
    } finally {
      client.close();
      await small.close();
    }
  });

  it('refuses a continue token it did not issue with 400', async () => {
    const reply = await call(
      'GET',
      `/api/v1/namespaces/default/secrets?limit=1&continue=${btoa('{"offset":1}')}`,
    );
    expect(reply.status).toBe(400);
    expect(reply.json.message).toMatch(/^continue key is not valid/);
  });
});

describe('watch streams', () => {
  it('without a resourceVersion sends ADDED for current objects, then changes as they happen', async () => {
    const ns = uniqueName('watch');
    await createSecrets(ns, ['a', 'b']);
    const watch = await openWatch(`/api/v1/namespaces/${ns}/secrets?watch=true`);
    expect(watch.status).toBe(200);
    expect(watch.contentType).toBe('application/json');
    await watch.waitFor(2);
    await kube.createSecret(ns, { metadata: { name: 'c' }, stringData: { k: 'v' } });
    await kube.patchSecretMetadata(ns, 'a', { annotations: { seen: 'yes' } });
    await kube.deleteSecret(ns, 'b');
    await watch.waitFor(5);
    expect(watch.summary()).toEqual(['ADDED a', 'ADDED b', 'ADDED c', 'MODIFIED a', 'DELETED b']);
    // Watch objects carry kind and apiVersion; a DELETED one carries the deletion's resourceVersion.
    expect(watch.events[3].object).toMatchObject({ kind: 'Secret', apiVersion: 'v1' });
    expect(watch.events[3].object.metadata.annotations).toEqual({ seen: 'yes' });
    expect(Number(watch.events[4].object.metadata.resourceVersion)).toBeGreaterThan(
      Number(watch.events[3].object.metadata.resourceVersion),
    );
    watch.close();
  });

  it('from a resourceVersion sends only the changes after it, including ones made before the watch opened', async () => {
    const ns = uniqueName('watchrv');
    await createSecrets(ns, ['a']);
    const list = await kube.listSecrets(ns);
    await kube.createSecret(ns, { metadata: { name: 'b' }, stringData: { k: 'v' } });
    const watch = await openWatch(
      `/api/v1/namespaces/${ns}/secrets?watch=1&resourceVersion=${list.metadata.resourceVersion}`,
    );
    await kube.deleteSecret(ns, 'a');
    await watch.waitFor(2);
    expect(watch.summary()).toEqual(['ADDED b', 'DELETED a']);
    watch.close();
  });

  it('applies label and field selectors to both sides of a change', async () => {
    const ns = uniqueName('watchsel');
    await createSecrets(ns, ['a', 'b'], { tier: 'db' });
    const byLabel = await openWatch(`/api/v1/namespaces/${ns}/secrets?watch=true&labelSelector=tier%3Ddb`);
    const byName = await openWatch(
      `/api/v1/namespaces/${ns}/secrets?watch=true&fieldSelector=metadata.name%3Db`,
    );
    await byLabel.waitFor(2);
    await byName.waitFor(1);
    // A leaves the selection: the label watch sees it DELETED; b's change is seen by both.
    await kube.patchSecretMetadata(ns, 'a', { labels: { tier: null } });
    await kube.patchSecretMetadata(ns, 'b', { annotations: { x: 'y' } });
    await byLabel.waitFor(4);
    await byName.waitFor(2);
    expect(byLabel.summary()).toEqual(['ADDED a', 'ADDED b', 'DELETED a', 'MODIFIED b']);
    expect(byName.summary()).toEqual(['ADDED b', 'MODIFIED b']);
    byLabel.close();
    byName.close();
  });

  it('sends BOOKMARK events carrying the current resourceVersion when bookmarks are allowed', async () => {
    const ns = uniqueName('bookmark');
    await createSecrets(ns, ['a']);
    const list = await kube.listSecrets(ns);
    const watch = await openWatch(
      `/api/v1/namespaces/${ns}/secrets?watch=true&allowWatchBookmarks=true&resourceVersion=${list.metadata.resourceVersion}`,
    );
    await watch.waitFor(1);
    expect(watch.events[0]).toEqual({
      type: 'BOOKMARK',
      object: { kind: 'Secret', apiVersion: 'v1', metadata: { resourceVersion: expect.any(String) } },
    });
    expect(Number(watch.events[0].object.metadata.resourceVersion)).toBeGreaterThanOrEqual(
      Number(list.metadata.resourceVersion),
    );
    watch.close();
  });

  it('answers a resourceVersion older than the kept history with an ERROR event holding a 410 Status', async () => {
    const small = await startKubeTestServer({ historyLimit: 2 });
    try {
      await small.createNamespace('w1');
      await small.createNamespace('w2');
      await small.createNamespace('w3');
      const watch = await openWatch('/api/v1/namespaces?watch=true&resourceVersion=2', small);
      await watch.ended;
      expect(watch.status).toBe(200);
      expect(watch.events).toHaveLength(1);
      expect(watch.events[0].type).toBe('ERROR');
      expect(watch.events[0].object).toMatchObject({
        kind: 'Status',
        status: 'Failure',
        reason: 'Expired',
        code: 410,
        message: expect.stringMatching(/^too old resource version: 2 \(\d+\)$/),
      });
    } finally {
      await small.close();
    }
  });

  it('ends the stream after timeoutSeconds, and when the server closes', async () => {
    const timed = await openWatch('/api/v1/namespaces?watch=true&timeoutSeconds=1');
    await timed.ended;
    expect(timed.summary()).toContain('ADDED kube-system');

    const other = await startKubeTestServer();
    const open = await openWatch('/api/v1/namespaces?watch=true', other);
    await open.waitFor(4);
    await other.close();
    await open.ended;
  });

  it('refuses a watch to a user without the watch verb', async () => {
    await server.createServiceAccount('default', 'lister');
    server.grant({ namespace: 'default', name: 'lister' }, { verbs: ['list'], resources: ['secrets'] });
    const token = server.issueServiceAccountToken('default', 'lister');
    const res = await request(`${server.url}/api/v1/namespaces/default/secrets?watch=true`, {
      headers: { authorization: `Bearer ${token}` },
      dispatcher: dispatcherFor(server),
    });
    expect(res.statusCode).toBe(403);
    expect(JSON.parse(await res.body.text()).message).toContain('cannot watch resource "secrets"');
  });
});

describe('server-side apply (application/apply-patch+yaml)', () => {
  const apply = (ns: string, name: string, body: string, manager = 'ops') =>
    call('PATCH', `/api/v1/namespaces/${ns}/configmaps/${name}?fieldManager=${manager}`, {
      body,
      contentType: 'application/apply-patch+yaml',
    });

  it('creates an absent object with 201 and records the manager in managedFields', async () => {
    const ns = uniqueName('ssa');
    await server.createNamespace(ns);
    const created = await apply(
      ns,
      'trust',
      `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: trust\n  labels: {app: x}\ndata:\n  a: "1"\n`,
    );
    expect(created.status).toBe(201);
    expect(created.json.data).toEqual({ a: '1' });
    expect(created.json.metadata.managedFields).toEqual([
      {
        manager: 'ops',
        operation: 'Apply',
        apiVersion: 'v1',
        time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/),
        fieldsType: 'FieldsV1',
        fieldsV1: { 'f:metadata': { 'f:labels': { 'f:app': {} } }, 'f:data': { 'f:a': {} } },
      },
    ]);
  });

  it('merges a later apply, removes fields the manager stopped applying, and keeps fields set by others', async () => {
    const ns = uniqueName('ssa');
    await server.createNamespace(ns);
    await apply(
      ns,
      'trust',
      JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', data: { a: '1', b: '2' } }),
    );
    await kube.patchConfigMapData(ns, 'trust', { other: 'kept' });
    const again = await apply(
      ns,
      'trust',
      JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', data: { a: '3' } }),
    );
    expect(again.status).toBe(200);
    expect(again.json.data).toEqual({ a: '3', other: 'kept' });
    const before = again.json.metadata.resourceVersion;
    // The same configuration again changes nothing, not even the resourceVersion.
    const same = await apply(
      ns,
      'trust',
      JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', data: { a: '3' } }),
    );
    expect(same.json.metadata.resourceVersion).toBe(before);
  });

  it('requires a field manager', async () => {
    const reply = await call('PATCH', '/api/v1/namespaces/default/configmaps/nobody', {
      body: '{"apiVersion":"v1","kind":"ConfigMap"}',
      contentType: 'application/apply-patch+yaml',
    });
    expect(reply.status).toBe(400);
    expect(reply.json.message).toBe('PATCH apply requires fieldManager');
  });
});

describe('OpenAPI v3 documents', () => {
  it('lists one document per served group-version and describes each kind PATCH with fieldValidation', async () => {
    const index = await call('GET', '/openapi/v3');
    expect(Object.keys(index.json.paths)).toEqual(
      expect.arrayContaining([
        'api/v1',
        'apis/coordination.k8s.io/v1',
        'apis/admissionregistration.k8s.io/v1',
      ]),
    );
    const url: string = index.json.paths['apis/coordination.k8s.io/v1'].serverRelativeURL;
    expect(url).toMatch(/^\/openapi\/v3\/apis\/coordination\.k8s\.io\/v1\?hash=[0-9A-F]+$/);
    const doc = await call('GET', url);
    const patch = doc.json.paths['/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}'].patch;
    expect(patch['x-kubernetes-group-version-kind']).toEqual({
      group: 'coordination.k8s.io',
      version: 'v1',
      kind: 'Lease',
    });
    expect(patch.parameters).toContainEqual(
      expect.objectContaining({ name: 'fieldValidation', in: 'query' }),
    );
    expect(Object.keys(patch.requestBody.content)).toContain('application/apply-patch+yaml');
    expect((await call('GET', '/openapi/v3/apis/example.com/v1')).status).toBe(404);
  });
});
