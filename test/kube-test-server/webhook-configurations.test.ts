/**
 * MutatingWebhookConfigurations in the Kubernetes test server: what the API server validates and defaults,
 * update and the three patch formats with their optimistic locks, RBAC with resourceNames, discovery and the
 * Table kubectl prints, and the operator's own caBundle keeper running against it.
 */
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCloudtaserError } from '../../runtime/core/index.js';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { KubeClient } from '../../runtime/kube/index.js';
import { caBundlePatch, keepWebhookCaBundle } from '../../runtime/webhook/index.js';

const GROUP = 'admissionregistration.k8s.io';
const BASE = `/apis/${GROUP}/v1/mutatingwebhookconfigurations`;
const TABLE_ACCEPT = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json';
const CA_PEM = '-----BEGIN CERTIFICATE-----\nMIIBdev\n-----END CERTIFICATE-----\n';
const CA_BUNDLE = Buffer.from(CA_PEM).toString('base64');

let server: KubeTestServer;
let dispatcher: Agent;
let counter = 0;

beforeAll(async () => {
  server = await startKubeTestServer();
  dispatcher = new Agent({ connect: { ca: server.caCertPem } });
});

afterAll(async () => {
  await dispatcher?.close();
  await server?.close();
});

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  // biome-ignore lint/suspicious/noExplicitAny: test assertions walk arbitrary JSON
  json: any;
}

async function call(
  method: string,
  path: string,
  options: { token?: string; body?: unknown; raw?: string; contentType?: string; accept?: string } = {},
): Promise<Reply> {
  const headers: Record<string, string> = {
    accept: options.accept ?? 'application/json',
    authorization: `Bearer ${options.token ?? server.adminToken}`,
  };
  const body = options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  if (body !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
  const res = await request(`${server.url}${path}`, { method: method as 'GET', headers, body, dispatcher });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, json: text === '' ? undefined : JSON.parse(text) };
}

function uniqueName(prefix = 'cfg'): string {
  counter += 1;
  return `${prefix}-${counter}`;
}

function webhook(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name,
    clientConfig: { service: { namespace: 'cloudtaser', name: 'cloudtaser-operator', path: '/mutate' } },
    rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
    sideEffects: 'None',
    admissionReviewVersions: ['v1'],
    ...extra,
  };
}

function configuration(name: string, webhooks: unknown[] = [webhook('inject.cloudtaser.io')]) {
  return {
    apiVersion: `${GROUP}/v1`,
    kind: 'MutatingWebhookConfiguration',
    metadata: { name, labels: { app: 'cloudtaser' } },
    webhooks,
  };
}

async function create(name: string, webhooks?: unknown[]): Promise<Reply> {
  const created = await call('POST', BASE, { body: configuration(name, webhooks) });
  expect(created.status).toBe(201);
  return created;
}

/** POSTs a body that must be refused, then checks nothing was stored under its name. */
async function refused(body: Record<string, unknown>, query = ''): Promise<Reply> {
  const res = await call('POST', `${BASE}${query}`, { body });
  expect(res.status).toBeGreaterThanOrEqual(400);
  const name = (body.metadata as { name?: string } | undefined)?.name;
  if (name) expect((await call('GET', `${BASE}/${name}`)).status).toBe(404);
  return res;
}

describe('creating MutatingWebhookConfigurations', () => {
  it('stores the object with the defaults a real API server fills in', async () => {
    const name = uniqueName();
    const created = await create(name);
    expect(created.json).toMatchObject({
      kind: 'MutatingWebhookConfiguration',
      apiVersion: `${GROUP}/v1`,
      metadata: { name, generation: 1, labels: { app: 'cloudtaser' } },
    });
    expect(created.json.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.json.metadata.namespace).toBeUndefined();
    expect(created.json.webhooks).toEqual([
      {
        name: 'inject.cloudtaser.io',
        clientConfig: {
          service: { namespace: 'cloudtaser', name: 'cloudtaser-operator', path: '/mutate', port: 443 },
        },
        rules: [
          { operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: '*' },
        ],
        failurePolicy: 'Fail',
        matchPolicy: 'Equivalent',
        namespaceSelector: {},
        objectSelector: {},
        sideEffects: 'None',
        timeoutSeconds: 10,
        admissionReviewVersions: ['v1'],
        reinvocationPolicy: 'Never',
      },
    ]);
    const read = await call('GET', `${BASE}/${name}`);
    expect(read.json).toEqual(created.json);
  });

  it('keeps explicit values, a URL client, and a caBundle in canonical base64', async () => {
    const name = uniqueName();
    const wrapped = `${CA_BUNDLE.slice(0, 20)}\n${CA_BUNDLE.slice(20)}`;
    const created = await create(name, [
      webhook('url.cloudtaser.io', {
        clientConfig: { url: 'https://webhook.example.com:8443/mutate', caBundle: wrapped },
        failurePolicy: 'Ignore',
        timeoutSeconds: 3,
        reinvocationPolicy: 'IfNeeded',
        objectSelector: { matchLabels: { 'cloudtaser.io/inject': 'true' } },
      }),
    ]);
    expect(created.json.webhooks[0]).toMatchObject({
      clientConfig: { url: 'https://webhook.example.com:8443/mutate', caBundle: CA_BUNDLE },
      failurePolicy: 'Ignore',
      timeoutSeconds: 3,
      reinvocationPolicy: 'IfNeeded',
      objectSelector: { matchLabels: { 'cloudtaser.io/inject': 'true' } },
    });
  });

  it('accepts a configuration without webhooks and leaves the empty list out', async () => {
    const name = uniqueName();
    const created = await create(name, []);
    expect(created.json.webhooks).toBeUndefined();
  });

  it('refuses a duplicate name with 409 AlreadyExists naming the group', async () => {
    const name = uniqueName();
    await create(name);
    const again = await call('POST', BASE, { body: configuration(name) });
    expect(again.status).toBe(409);
    expect(again.json).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: `mutatingwebhookconfigurations.${GROUP} "${name}" already exists`,
      reason: 'AlreadyExists',
      details: { name, group: GROUP, kind: 'mutatingwebhookconfigurations' },
      code: 409,
    });
  });

  it('refuses an invalid caBundle with 422 Invalid naming webhooks[i].clientConfig.caBundle', async () => {
    const hooks = [
      webhook('a.cloudtaser.io'),
      webhook('b.cloudtaser.io', {
        clientConfig: { service: { namespace: 'n', name: 's' }, caBundle: 'not base64!' },
      }),
    ];
    const res = await refused(configuration('bad-ca', hooks));
    expect(res.status).toBe(422);
    expect(res.json.reason).toBe('Invalid');
    expect(res.json.message).toBe(
      `MutatingWebhookConfiguration.${GROUP} "bad-ca" is invalid: webhooks[1].clientConfig.caBundle: Invalid value: "not base64!": must be standard base64 (with padding) of the PEM CA bundle`,
    );
    expect(res.json.details).toEqual({
      name: 'bad-ca',
      group: GROUP,
      kind: 'MutatingWebhookConfiguration',
      causes: [
        {
          reason: 'FieldValueInvalid',
          message:
            'Invalid value: "not base64!": must be standard base64 (with padding) of the PEM CA bundle',
          field: 'webhooks[1].clientConfig.caBundle',
        },
      ],
    });
    for (const caBundle of ['QUJD', 'QUJDRA=', 'QUJD RA==']) {
      const hook = webhook('c.cloudtaser.io', { clientConfig: { url: 'https://x.example', caBundle } });
      const outcome = await call('POST', BASE, { body: configuration(uniqueName(), [hook]) });
      expect(outcome.status, caBundle).toBe(caBundle === 'QUJD' ? 201 : 422);
    }
  });

  it('requires exactly one of url or service in clientConfig', async () => {
    const without = { ...webhook('a.cloudtaser.io') };
    delete without.clientConfig;
    const both = webhook('a.cloudtaser.io', {
      clientConfig: { url: 'https://x.example/m', service: { namespace: 'n', name: 's' } },
    });
    const empty = webhook('a.cloudtaser.io', { clientConfig: {} });
    for (const hook of [without, both, empty]) {
      const res = await refused(configuration('client-config', [hook]));
      expect(res.status).toBe(422);
      expect(res.json.message).toBe(
        `MutatingWebhookConfiguration.${GROUP} "client-config" is invalid: webhooks[0].clientConfig: Required value: exactly one of url or service is required`,
      );
      expect(res.json.details.causes).toEqual([
        {
          reason: 'FieldValueRequired',
          message: 'Required value: exactly one of url or service is required',
          field: 'webhooks[0].clientConfig',
        },
      ]);
    }
  });

  it('refuses duplicate webhook names with a Duplicate cause on the second one', async () => {
    const res = await refused(
      configuration('dupes', [
        webhook('same.cloudtaser.io'),
        webhook('other.cloudtaser.io'),
        webhook('same.cloudtaser.io'),
      ]),
    );
    expect(res.status).toBe(422);
    expect(res.json.details.causes).toEqual([
      {
        reason: 'FieldValueDuplicate',
        message: 'Duplicate value: "same.cloudtaser.io"',
        field: 'webhooks[2].name',
      },
    ]);
  });

  it('validates webhook fields with the API server texts and reports every problem in one 422', async () => {
    const res = await refused(
      configuration('many', [
        webhook('inject', {
          sideEffects: 'Some',
          admissionReviewVersions: [],
          timeoutSeconds: 31,
          failurePolicy: 'Sometimes',
          clientConfig: { url: 'http://user@x.example/m?q=1' },
          rules: [
            { operations: ['PATCH'], apiGroups: [], apiVersions: ['v1'], resources: ['pods'], scope: 'Both' },
          ],
        }),
      ]),
    );
    expect(res.status).toBe(422);
    const causes = res.json.details.causes.map(
      (c: { field: string; message: string }) => `${c.field}: ${c.message}`,
    );
    expect(causes).toEqual([
      'webhooks[0].name: Invalid value: "inject": should be a domain with at least three segments separated by dots',
      'webhooks[0].clientConfig.url: Invalid value: "http": \'https\' is the only allowed URL scheme; desired format: https://host[/path]',
      'webhooks[0].clientConfig.url: Invalid value: "user": user information is not permitted in the URL',
      'webhooks[0].clientConfig.url: Invalid value: "q=1": query parameters are not permitted in the URL',
      'webhooks[0].rules[0].operations[0]: Unsupported value: "PATCH": supported values: "*", "CONNECT", "CREATE", "DELETE", "UPDATE"',
      'webhooks[0].rules[0].apiGroups: Required value',
      'webhooks[0].rules[0].scope: Unsupported value: "Both": supported values: "*", "Cluster", "Namespaced"',
      'webhooks[0].failurePolicy: Unsupported value: "Sometimes": supported values: "Fail", "Ignore"',
      'webhooks[0].sideEffects: Unsupported value: "Some": supported values: "None", "NoneOnDryRun"',
      'webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds',
      'webhooks[0].admissionReviewVersions: Required value: must specify one of v1, v1beta1',
    ]);
    expect(res.json.message).toMatch(
      /^MutatingWebhookConfiguration\.admissionregistration\.k8s\.io "many" is invalid: \[/,
    );

    const noSideEffects = { ...webhook('a.cloudtaser.io') };
    delete noSideEffects.sideEffects;
    const missing = await refused(configuration('no-side-effects', [noSideEffects]));
    expect(missing.json.details.causes).toEqual([
      {
        reason: 'FieldValueRequired',
        message: 'Required value: must specify one of None, NoneOnDryRun',
        field: 'webhooks[0].sideEffects',
      },
    ]);
    const service = await refused(
      configuration('bad-service', [
        webhook('a.cloudtaser.io', { clientConfig: { service: { namespace: '', name: 's', port: 70000 } } }),
      ]),
    );
    expect(service.json.details.causes.map((c: { field: string }) => c.field)).toEqual([
      'webhooks[0].clientConfig.service.namespace',
      'webhooks[0].clientConfig.service.port',
    ]);
    const versions = await refused(
      configuration('versions', [webhook('a.cloudtaser.io', { admissionReviewVersions: ['v2', 'v2'] })]),
    );
    expect(versions.json.details.causes.map((c: { message: string }) => c.message)).toEqual([
      'Invalid value: "v2": duplicate version',
      'Invalid value: ["v2","v2"]: must include at least one of v1, v1beta1',
    ]);
    const metadata = await refused(configuration('Bad_Name'));
    expect(metadata.json.details.causes[0].field).toBe('metadata.name');
  });

  it('refuses bodies it cannot decode with 400, before validating', async () => {
    const cases: [string, unknown][] = [
      ['webhooks is not a list', { ...configuration('decode'), webhooks: { name: 'a.b.c' } }],
      ['a webhook is not an object', { ...configuration('decode'), webhooks: ['a.b.c'] }],
      ['a name is not a string', configuration('decode', [webhook('x', { name: 7 })])],
      [
        'timeoutSeconds is not an integer',
        configuration('decode', [webhook('a.b.c', { timeoutSeconds: 1.5 })]),
      ],
      [
        'caBundle is not a string',
        configuration('decode', [webhook('a.b.c', { clientConfig: { url: 'https://x', caBundle: 1 } })]),
      ],
      ['the kind is another type', { ...configuration('decode'), kind: 'ValidatingWebhookConfiguration' }],
      ['the body is a list', [configuration('decode')]],
    ];
    for (const [why, body] of cases) {
      const res = await call('POST', BASE, { body });
      expect(res.status, why).toBe(400);
      expect(res.json.reason, why).toBe('BadRequest');
    }
    expect((await call('POST', BASE, { raw: '{"webhooks": [' })).status).toBe(400);
    expect((await call('GET', `${BASE}/decode`)).status).toBe(404);
  });

  it('refuses unknown nested fields under fieldValidation=Strict and warns about them otherwise', async () => {
    const hook = webhook('a.cloudtaser.io', {
      clientConfig: { service: { namespace: 'n', name: 's' }, bogus: true },
    });
    const strict = await refused(configuration('strict', [hook]), '?fieldValidation=Strict');
    expect(strict.status).toBe(400);
    expect(strict.json.message).toBe('strict decoding error: unknown field "webhooks[0].clientConfig.bogus"');
    const name = uniqueName();
    const warned = await call('POST', BASE, { body: configuration(name, [hook]) });
    expect(warned.status).toBe(201);
    expect(String(warned.headers.warning)).toContain('unknown field \\"webhooks[0].clientConfig.bogus\\"');
    expect(warned.json.webhooks[0].clientConfig.bogus).toBeUndefined();
  });
});

describe('reading MutatingWebhookConfigurations', () => {
  it('lists with label and metadata.name selectors, without kind on items', async () => {
    const name = uniqueName('listed');
    await call('POST', BASE, {
      body: { ...configuration(name), metadata: { name, labels: { run: name } } },
    });
    const list = await call('GET', `${BASE}?labelSelector=${encodeURIComponent(`run=${name}`)}`);
    expect(list.status).toBe(200);
    expect(list.json.kind).toBe('MutatingWebhookConfigurationList');
    expect(list.json.apiVersion).toBe(`${GROUP}/v1`);
    expect(list.json.items.map((i: { metadata: { name: string } }) => i.metadata.name)).toEqual([name]);
    expect(list.json.items[0].kind).toBeUndefined();
    expect(list.json.items[0].apiVersion).toBeUndefined();
    const byField = await call('GET', `${BASE}?fieldSelector=metadata.name%3D${name}`);
    expect(byField.json.items).toHaveLength(1);
    const notField = await call('GET', `${BASE}?fieldSelector=metadata.name!%3D${name}`);
    expect(notField.json.items.some((i: { metadata: { name: string } }) => i.metadata.name === name)).toBe(
      false,
    );
    const unsupported = await call('GET', `${BASE}?fieldSelector=metadata.namespace%3Dx`);
    expect(unsupported.status).toBe(400);
    expect(unsupported.json.message).toBe('field label not supported: metadata.namespace');
  });

  it('answers 404 NotFound naming the group for a missing configuration', async () => {
    const res = await call('GET', `${BASE}/absent`);
    expect(res.status).toBe(404);
    expect(res.json).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: `mutatingwebhookconfigurations.${GROUP} "absent" not found`,
      reason: 'NotFound',
      details: { name: 'absent', group: GROUP, kind: 'mutatingwebhookconfigurations' },
      code: 404,
    });
    const body = [{ op: 'add', path: '/metadata/labels/x', value: 'y' }];
    const patch = await call('PATCH', `${BASE}/absent`, { body, contentType: 'application/json-patch+json' });
    expect(patch.status).toBe(404);
    expect((await call('DELETE', `${BASE}/absent`)).status).toBe(404);
    expect((await call('PUT', `${BASE}/absent`, { body: configuration('absent') })).status).toBe(404);
  });

  it('is cluster-scoped: a namespaced URL is a 400', async () => {
    const res = await call('GET', `/apis/${GROUP}/v1/namespaces/default/mutatingwebhookconfigurations`);
    expect(res.status).toBe(400);
    expect(res.json.message).toBe('namespace is not allowed on this type: default');
  });

  it("answers kubectl's Table request with Name, Webhooks and Age", async () => {
    const name = uniqueName('table');
    await create(name, [webhook('a.cloudtaser.io'), webhook('b.cloudtaser.io')]);
    const one = await call('GET', `${BASE}/${name}`, { accept: TABLE_ACCEPT });
    expect(one.json.kind).toBe('Table');
    expect(one.json.columnDefinitions.map((c: { name: string; type: string }) => [c.name, c.type])).toEqual([
      ['Name', 'string'],
      ['Webhooks', 'integer'],
      ['Age', 'string'],
    ]);
    expect(one.json.rows).toHaveLength(1);
    expect(one.json.rows[0].cells[0]).toBe(name);
    expect(one.json.rows[0].cells[1]).toBe(2);
    expect(one.json.rows[0].cells[2]).toMatch(/^\d+s$/);
    const all = await call('GET', BASE, { accept: TABLE_ACCEPT });
    expect(all.json.rows.map((r: { cells: unknown[] }) => r.cells[0])).toContain(name);
  });

  it('is listed in discovery under admissionregistration.k8s.io/v1', async () => {
    const groups = await call('GET', '/apis');
    expect(groups.json.groups).toContainEqual({
      name: GROUP,
      versions: [{ groupVersion: `${GROUP}/v1`, version: 'v1' }],
      preferredVersion: { groupVersion: `${GROUP}/v1`, version: 'v1' },
    });
    expect((await call('GET', `/apis/${GROUP}`)).json.kind).toBe('APIGroup');
    const resources = await call('GET', `/apis/${GROUP}/v1`);
    expect(resources.json.groupVersion).toBe(`${GROUP}/v1`);
    expect(resources.json.resources).toEqual([
      {
        name: 'mutatingwebhookconfigurations',
        singularName: 'mutatingwebhookconfiguration',
        namespaced: false,
        kind: 'MutatingWebhookConfiguration',
        verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
      },
    ]);
  });
});

describe('changing MutatingWebhookConfigurations', () => {
  it('replaces the whole object on update, counting generations only for webhook changes', async () => {
    const name = uniqueName('update');
    const created = (await create(name)).json;
    const changed = {
      ...created,
      webhooks: [webhook('inject.cloudtaser.io', { timeoutSeconds: 5 }), webhook('second.cloudtaser.io')],
    };
    const updated = await call('PUT', `${BASE}/${name}`, { body: changed });
    expect(updated.status).toBe(200);
    expect(updated.json.webhooks.map((w: { timeoutSeconds: number }) => w.timeoutSeconds)).toEqual([5, 10]);
    expect(updated.json.metadata.generation).toBe(2);
    expect(updated.json.metadata.uid).toBe(created.metadata.uid);
    expect(Number(updated.json.metadata.resourceVersion)).toBeGreaterThan(
      Number(created.metadata.resourceVersion),
    );

    const relabelled = await call('PUT', `${BASE}/${name}`, {
      body: { ...updated.json, metadata: { ...updated.json.metadata, labels: { app: 'other' } } },
    });
    expect(relabelled.json.metadata.generation).toBe(2);
    const unchanged = await call('PUT', `${BASE}/${name}`, { body: relabelled.json });
    expect(unchanged.json.metadata.resourceVersion).toBe(relabelled.json.metadata.resourceVersion);
  });

  it('refuses an update with a stale or missing resourceVersion, or that fails validation', async () => {
    const name = uniqueName('update');
    const created = (await create(name)).json;
    await call('PUT', `${BASE}/${name}`, {
      body: { ...created, metadata: { ...created.metadata, labels: {} } },
    });

    const stale = await call('PUT', `${BASE}/${name}`, { body: created });
    expect(stale.status).toBe(409);
    expect(stale.json).toMatchObject({
      reason: 'Conflict',
      message: `Operation cannot be fulfilled on mutatingwebhookconfigurations.${GROUP} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
      details: { name, group: GROUP, kind: 'mutatingwebhookconfigurations' },
    });
    const current = (await call('GET', `${BASE}/${name}`)).json;
    const { resourceVersion: _dropped, ...withoutVersion } = current.metadata;
    const missing = await call('PUT', `${BASE}/${name}`, { body: { ...current, metadata: withoutVersion } });
    expect(missing.status).toBe(422);
    expect(missing.json.details.causes[0].field).toBe('metadata.resourceVersion');
    const renamed = await call('PUT', `${BASE}/${name}`, {
      body: { ...current, metadata: { ...current.metadata, name: 'other' } },
    });
    expect(renamed.status).toBe(400);
    const invalid = await call('PUT', `${BASE}/${name}`, {
      body: { ...current, webhooks: [webhook('a.cloudtaser.io', { sideEffects: 'Unknown' })] },
    });
    expect(invalid.status).toBe(422);
    expect((await call('GET', `${BASE}/${name}`)).json).toEqual(current);
  });

  it('merge patch replaces the webhooks list wholesale and takes a resourceVersion as a lock', async () => {
    const name = uniqueName('merge');
    const created = (await create(name, [webhook('a.cloudtaser.io'), webhook('b.cloudtaser.io')])).json;
    const patched = await call('PATCH', `${BASE}/${name}`, {
      contentType: 'application/merge-patch+json',
      body: { webhooks: [webhook('c.cloudtaser.io', { clientConfig: { url: 'https://c.example/m' } })] },
    });
    expect(patched.status).toBe(200);
    expect(patched.json.webhooks.map((w: { name: string }) => w.name)).toEqual(['c.cloudtaser.io']);
    // The replacement list was defaulted like a new one.
    expect(patched.json.webhooks[0].failurePolicy).toBe('Fail');
    expect(patched.json.metadata.generation).toBe(2);

    const stale = await call('PATCH', `${BASE}/${name}`, {
      contentType: 'application/merge-patch+json',
      body: { metadata: { resourceVersion: created.metadata.resourceVersion, labels: { x: 'y' } } },
    });
    expect(stale.status).toBe(409);
    expect(stale.json.reason).toBe('Conflict');
    const locked = await call('PATCH', `${BASE}/${name}`, {
      contentType: 'application/merge-patch+json',
      body: { metadata: { resourceVersion: patched.json.metadata.resourceVersion, labels: { x: 'y' } } },
    });
    expect(locked.status).toBe(200);
    expect(locked.json.metadata.labels).toEqual({ app: 'cloudtaser', x: 'y' });

    const broken = await call('PATCH', `${BASE}/${name}`, {
      contentType: 'application/merge-patch+json',
      body: { webhooks: [{ name: 'd.cloudtaser.io' }] },
    });
    expect(broken.status).toBe(422);
    const renamed = await call('PATCH', `${BASE}/${name}`, {
      contentType: 'application/merge-patch+json',
      body: { metadata: { name: 'elsewhere' } },
    });
    expect(renamed.status).toBe(422);
    expect((await call('GET', `${BASE}/${name}`)).json).toEqual(locked.json);
  });

  it('JSON patch sets a caBundle behind a resourceVersion test; a failed test is the API server 422', async () => {
    const name = uniqueName('json');
    const created = (await create(name, [webhook('a.cloudtaser.io'), webhook('b.cloudtaser.io')])).json;
    const operations = [
      { op: 'test', path: '/metadata/resourceVersion', value: created.metadata.resourceVersion },
      { op: 'add', path: '/webhooks/0/clientConfig/caBundle', value: CA_BUNDLE },
      { op: 'add', path: '/webhooks/1/clientConfig/caBundle', value: CA_BUNDLE },
    ];
    const patched = await call('PATCH', `${BASE}/${name}`, {
      contentType: 'application/json-patch+json',
      body: operations,
    });
    expect(patched.status).toBe(200);
    expect(
      patched.json.webhooks.map((w: { clientConfig: { caBundle: string } }) => w.clientConfig.caBundle),
    ).toEqual([CA_BUNDLE, CA_BUNDLE]);

    const replayed = await call('PATCH', `${BASE}/${name}`, {
      contentType: 'application/json-patch+json',
      body: operations,
    });
    expect(replayed.status).toBe(422);
    expect(replayed.json).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'the server rejected our request due to an error in our request',
      reason: 'Invalid',
      details: {},
      code: 422,
    });
    const current = (await call('GET', `${BASE}/${name}`)).json;
    expect(current).toEqual(patched.json);

    const jsonPatch = (body: unknown) =>
      call('PATCH', `${BASE}/${name}`, { contentType: 'application/json-patch+json', body });
    expect((await jsonPatch([{ op: 'remove', path: '/metadata/labels/absent' }])).status).toBe(422);
    expect((await jsonPatch([{ op: 'replace', path: '/webhooks/5/name', value: 'x.y.z' }])).status).toBe(422);
    expect((await jsonPatch([{ op: 'frobnicate', path: '/metadata' }])).status).toBe(422);
    expect((await jsonPatch({ op: 'add', path: '/x', value: 1 })).status).toBe(400);
    expect((await jsonPatch(['add'])).status).toBe(400);
    const badBundle = await jsonPatch([
      { op: 'replace', path: '/webhooks/1/clientConfig/caBundle', value: '%%%' },
    ]);
    expect(badBundle.status).toBe(422);
    expect(badBundle.json.details.causes[0].field).toBe('webhooks[1].clientConfig.caBundle');
    const rename = await jsonPatch([{ op: 'replace', path: '/metadata/name', value: 'other' }]);
    expect(rename.status).toBe(422);
    expect(rename.json.details.causes[0]).toMatchObject({ field: 'metadata.name' });
    const lock = await jsonPatch([{ op: 'replace', path: '/metadata/resourceVersion', value: '1' }]);
    expect(lock.status).toBe(409);
    const tooMany = await jsonPatch(
      Array.from({ length: 10_001 }, () => ({
        op: 'test',
        path: '/kind',
        value: 'MutatingWebhookConfiguration',
      })),
    );
    expect(tooMany.status).toBe(413);
    expect((await call('GET', `${BASE}/${name}`)).json).toEqual(current);

    const moved = await jsonPatch([
      { op: 'test', path: '/webhooks/1/name', value: 'b.cloudtaser.io' },
      { op: 'move', from: '/webhooks/1', path: '/webhooks/0' },
      { op: 'copy', from: '/metadata/labels/app', path: '/metadata/labels/copied' },
      { op: 'remove', path: '/webhooks/1/clientConfig/caBundle' },
      { op: 'replace', path: '/webhooks/0/timeoutSeconds', value: 7 },
      { op: 'add', path: '/metadata/labels/x~1y', value: 'slash' },
    ]);
    expect(moved.status).toBe(200);
    expect(moved.json.webhooks.map((w: { name: string }) => w.name)).toEqual([
      'b.cloudtaser.io',
      'a.cloudtaser.io',
    ]);
    expect(moved.json.webhooks[0].timeoutSeconds).toBe(7);
    expect(moved.json.webhooks[1].clientConfig.caBundle).toBeUndefined();
    expect(moved.json.metadata.labels).toEqual({ app: 'cloudtaser', copied: 'cloudtaser', 'x/y': 'slash' });
  });

  it('strategic merge patch merges webhooks by name, deletes with $patch and orders with $setElementOrder', async () => {
    const name = uniqueName('smp');
    await create(name, [webhook('a.cloudtaser.io'), webhook('b.cloudtaser.io')]);
    const smp = (body: unknown) =>
      call('PATCH', `${BASE}/${name}`, { contentType: 'application/strategic-merge-patch+json', body });

    const merged = await smp({ webhooks: [{ name: 'b.cloudtaser.io', timeoutSeconds: 5 }] });
    expect(merged.status).toBe(200);
    expect(
      merged.json.webhooks.map((w: { name: string; timeoutSeconds: number }) => [w.name, w.timeoutSeconds]),
    ).toEqual([
      ['a.cloudtaser.io', 10],
      ['b.cloudtaser.io', 5],
    ]);
    expect(merged.json.webhooks[1].clientConfig.service.name).toBe('cloudtaser-operator');

    const ordered = await smp({
      '$setElementOrder/webhooks': [
        { name: 'c.cloudtaser.io' },
        { name: 'a.cloudtaser.io' },
        { name: 'b.cloudtaser.io' },
      ],
      webhooks: [webhook('c.cloudtaser.io')],
    });
    expect(ordered.json.webhooks.map((w: { name: string }) => w.name)).toEqual([
      'c.cloudtaser.io',
      'a.cloudtaser.io',
      'b.cloudtaser.io',
    ]);

    const deleted = await smp({ webhooks: [{ name: 'a.cloudtaser.io', $patch: 'delete' }] });
    expect(deleted.json.webhooks.map((w: { name: string }) => w.name)).toEqual([
      'c.cloudtaser.io',
      'b.cloudtaser.io',
    ]);

    const replaced = await smp({ webhooks: [{ $patch: 'replace' }, webhook('only.cloudtaser.io')] });
    expect(replaced.json.webhooks.map((w: { name: string }) => w.name)).toEqual(['only.cloudtaser.io']);

    // Lists inside a webhook have no merge key: they are replaced.
    const rules = await smp({
      webhooks: [{ name: 'only.cloudtaser.io', admissionReviewVersions: ['v1beta1', 'v1'] }],
    });
    expect(rules.json.webhooks[0].admissionReviewVersions).toEqual(['v1beta1', 'v1']);

    const keyless = await smp({ webhooks: [{ timeoutSeconds: 3 }] });
    expect(keyless.status).toBe(400);
  });

  it('answers a patch format it does not take with 415 UnsupportedMediaType', async () => {
    const name = uniqueName('apply');
    await create(name);
    // Plain YAML is no patch format (server-side apply's application/apply-patch+yaml is one, see
    // lists-watches-apply.test.ts).
    const res = await call('PATCH', `${BASE}/${name}`, {
      contentType: 'application/yaml',
      raw: 'metadata: {}',
    });
    expect(res.status).toBe(415);
    expect(res.json).toMatchObject({
      kind: 'Status',
      status: 'Failure',
      reason: 'UnsupportedMediaType',
      code: 415,
    });
  });

  it('is not confused by __proto__ keys in patches', async () => {
    const name = uniqueName('proto');
    await create(name);
    const merge = await call('PATCH', `${BASE}/${name}`, {
      contentType: 'application/merge-patch+json',
      raw: '{"metadata":{"__proto__":{"resourceVersion":"1","polluted":true}}}',
    });
    expect(merge.status).toBe(200);
    const json = await call('PATCH', `${BASE}/${name}`, {
      contentType: 'application/json-patch+json',
      raw: '[{"op":"add","path":"/metadata/__proto__","value":{"polluted":true}}]',
    });
    expect(json.status).toBe(200);
    const smp = await call('PATCH', `${BASE}/${name}`, {
      contentType: 'application/strategic-merge-patch+json',
      raw: '{"__proto__":{"polluted":true},"webhooks":[{"name":"inject.cloudtaser.io","__proto__":{"x":1}}]}',
    });
    expect(smp.status).toBe(200);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect((await call('GET', `${BASE}/${name}`)).json.metadata.polluted).toBeUndefined();
  });

  it('deletes with a Success Status naming the group, honouring preconditions', async () => {
    const name = uniqueName('delete');
    const created = (await create(name)).json;
    const stale = await call('DELETE', `${BASE}/${name}`, {
      body: { preconditions: { resourceVersion: '1' } },
    });
    expect(stale.status).toBe(409);
    expect(stale.json.message).toMatch(
      new RegExp(
        `^Operation cannot be fulfilled on MutatingWebhookConfiguration\\.${GROUP.replace(/\./g, '\\.')} "${name}": the ResourceVersion in the precondition \\(1\\)`,
      ),
    );
    const deleted = await call('DELETE', `${BASE}/${name}`);
    expect(deleted.status).toBe(200);
    expect(deleted.json).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Success',
      details: { name, group: GROUP, kind: 'mutatingwebhookconfigurations', uid: created.metadata.uid },
    });
    expect((await call('GET', `${BASE}/${name}`)).status).toBe(404);
  });

  it('creates through the server handle with the same validation', async () => {
    const name = uniqueName('handle');
    const { uid, resourceVersion } = await server.createMutatingWebhookConfiguration(configuration(name));
    const read = (await call('GET', `${BASE}/${name}`)).json;
    expect(read.metadata).toMatchObject({ uid, resourceVersion });
    expect(read.webhooks[0].timeoutSeconds).toBe(10);
    await expect(
      server.createMutatingWebhookConfiguration(configuration(uniqueName('handle'), [webhook('bad')])),
    ).rejects.toThrow(/should be a domain with at least three segments/);
  });
});

describe('RBAC on MutatingWebhookConfigurations', () => {
  it('a grant with resourceNames lets a service account get and patch that one configuration only', async () => {
    await create('cloudtaser');
    await create('someone-else');
    await server.createServiceAccount('cloudtaser', 'operator');
    server.grant(
      { namespace: 'cloudtaser', name: 'operator' },
      {
        verbs: ['get', 'patch'],
        resources: ['mutatingwebhookconfigurations'],
        apiGroups: [GROUP],
        resourceNames: ['cloudtaser'],
      },
    );
    const token = server.issueServiceAccountToken('cloudtaser', 'operator');
    const user = 'system:serviceaccount:cloudtaser:operator';
    const labelPatch = {
      body: { metadata: { labels: { touched: 'yes' } } },
      contentType: 'application/merge-patch+json',
    };

    expect((await call('GET', `${BASE}/cloudtaser`, { token })).status).toBe(200);
    const patched = await call('PATCH', `${BASE}/cloudtaser`, { token, ...labelPatch });
    expect(patched.status).toBe(200);
    expect(patched.json.metadata.labels.touched).toBe('yes');

    const other = await call('PATCH', `${BASE}/someone-else`, { token, ...labelPatch });
    expect(other.status).toBe(403);
    expect(other.json).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: `mutatingwebhookconfigurations.${GROUP} "someone-else" is forbidden: User "${user}" cannot patch resource "mutatingwebhookconfigurations" in API group "${GROUP}" at the cluster scope`,
      reason: 'Forbidden',
      details: { name: 'someone-else', group: GROUP, kind: 'mutatingwebhookconfigurations' },
      code: 403,
    });
    expect((await call('GET', `${BASE}/someone-else`, { token })).status).toBe(403);
    const list = await call('GET', BASE, { token });
    expect(list.status).toBe(403);
    expect(list.json.message).toBe(
      `mutatingwebhookconfigurations.${GROUP} is forbidden: User "${user}" cannot list resource "mutatingwebhookconfigurations" in API group "${GROUP}" at the cluster scope`,
    );
    expect((await call('POST', BASE, { token, body: configuration('sneaky') })).status).toBe(403);
    expect((await call('DELETE', `${BASE}/cloudtaser`, { token })).status).toBe(403);
    const current = (await call('GET', `${BASE}/cloudtaser`, { token })).json;
    expect((await call('PUT', `${BASE}/cloudtaser`, { token, body: current })).status).toBe(403);
    expect((await call('GET', `${BASE}/someone-else`)).json.metadata.labels.touched).toBeUndefined();
  });

  it("the operator's caBundle keeper brings every webhook up to date through the operator's client", async () => {
    const name = uniqueName('keeper');
    await create(name, [
      webhook('a.cloudtaser.io'),
      webhook('b.cloudtaser.io', { clientConfig: { url: 'https://b.example/m', caBundle: 'b2xk' } }),
    ]);
    await server.createServiceAccount('cloudtaser', 'keeper');
    server.grant(
      { namespace: 'cloudtaser', name: 'keeper' },
      {
        verbs: ['get', 'patch'],
        resources: ['mutatingwebhookconfigurations'],
        apiGroups: [GROUP],
        resourceNames: [name],
      },
    );
    const client = KubeClient.fromConnection({
      kind: 'token',
      host: server.url,
      token: server.issueServiceAccountToken('cloudtaser', 'keeper'),
      clusterCaCertificate: server.caCertPem,
    });
    try {
      const before = await client.getMutatingWebhookConfiguration(name);
      const keeper = keepWebhookCaBundle({
        kube: client,
        configurationName: name,
        caPem: CA_PEM,
        intervalMs: 3_600_000,
      });
      await keeper.syncNow();
      await keeper.close();
      expect(keeper.status().state).toBe('current');
      const after = await client.getMutatingWebhookConfiguration(name);
      expect(after.webhooks?.map((w) => w.clientConfig?.caBundle)).toEqual([CA_BUNDLE, CA_BUNDLE]);

      // A patch computed from the old read loses to the keeper's write: the resourceVersion test fails.
      const err = await client
        .patchMutatingWebhookConfiguration(
          name,
          caBundlePatch(before, Buffer.from('other').toString('base64')),
        )
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(isCloudtaserError(err)).toBe(true);
      expect((err as Error).message).toContain('422');
      expect((await client.getMutatingWebhookConfiguration(name)).webhooks?.[0].clientConfig?.caBundle).toBe(
        CA_BUNDLE,
      );
    } finally {
      client.close();
    }
  });
});
