/**
 * Leases (coordination.k8s.io/v1) through KubeClient against the Kubernetes test server: the compare-and-swap
 * semantics bridge replicas shard on (create races, stale updates, conditional deletes), and the server's
 * refusals of malformed Leases as the real API server words them.
 */
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { KubeClient, type KubeLease } from '../../runtime/kube/index.js';
import { expectCode, uniqueName } from '../support/expect-code.js';

const NAMESPACE = 'bridge-shards';
const RENEWED = '2026-12-05T06:30:00.000000Z';

let server: KubeTestServer;
let client: KubeClient;
let dispatcher: Agent;

beforeAll(async () => {
  server = await startKubeTestServer();
  await server.createNamespace(NAMESPACE);
  client = KubeClient.fromConnection({
    kind: 'token',
    host: server.url,
    token: server.adminToken,
    clusterCaCertificate: server.caCertPem,
  });
  dispatcher = new Agent({ connect: { ca: server.caCertPem } });
});

afterAll(async () => {
  client?.close();
  await dispatcher?.close();
  await server?.close();
});

/** A raw API call as the admin, to see the exact Status body the client turns into an error. */
async function call(method: string, path: string, body?: unknown, contentType = 'application/json') {
  const res = await request(`${server.url}${path}`, {
    method: method as 'GET',
    headers: {
      accept: 'application/json',
      authorization: `Bearer ${server.adminToken}`,
      ...(body === undefined ? {} : { 'content-type': contentType }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    dispatcher,
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, json: text === '' ? undefined : JSON.parse(text) };
}

const leasesPath = `/apis/coordination.k8s.io/v1/namespaces/${NAMESPACE}/leases`;

describe('Leases through KubeClient', () => {
  it('creates a lease and reads it back with the spec as the API server stores it', async () => {
    const name = uniqueName('shard');
    const created = await client.createLease(NAMESPACE, {
      metadata: { name, labels: { 'cloudtaser.io/shard-set': 'bridge' } },
      spec: {
        holderIdentity: 'bridge-a',
        leaseDurationSeconds: 15,
        acquireTime: RENEWED,
        renewTime: RENEWED,
        leaseTransitions: 0,
      },
    });
    expect(created.metadata).toMatchObject({
      name,
      namespace: NAMESPACE,
      labels: { 'cloudtaser.io/shard-set': 'bridge' },
    });
    expect(created.metadata.resourceVersion).toMatch(/^\d+$/);
    expect(created.metadata.uid).toBeTruthy();
    const read = await client.getLease(NAMESPACE, name);
    expect(read).toMatchObject({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease' });
    expect(read.spec).toEqual({
      holderIdentity: 'bridge-a',
      leaseDurationSeconds: 15,
      acquireTime: RENEWED,
      renewTime: RENEWED,
      leaseTransitions: 0,
    });
    expect(read.metadata.resourceVersion).toBe(created.metadata.resourceVersion);
  });

  it('stores a MicroTime given with an offset in UTC, keeping the microseconds', async () => {
    const name = uniqueName('offset');
    const created = await client.createLease(NAMESPACE, {
      metadata: { name },
      spec: { renewTime: '2026-12-05T08:30:00.123456+02:00' },
    });
    expect(created.spec.renewTime).toBe('2026-12-05T06:30:00.123456Z');
  });

  it('refuses a second create of the same lease with CT_KUBE_CONFLICT (AlreadyExists)', async () => {
    const name = uniqueName('race');
    await client.createLease(NAMESPACE, { metadata: { name }, spec: { holderIdentity: 'bridge-a' } });
    const err = await expectCode(
      client.createLease(NAMESPACE, { metadata: { name }, spec: { holderIdentity: 'bridge-b' } }),
      'CT_KUBE_CONFLICT',
    );
    expect(err.message).toContain(`leases.coordination.k8s.io "${name}" already exists`);
    expect((await client.getLease(NAMESPACE, name)).spec.holderIdentity).toBe('bridge-a');
  });

  it('updates with the current resourceVersion and refuses a stale one with CT_KUBE_CONFLICT', async () => {
    const name = uniqueName('renew');
    const first = await client.createLease(NAMESPACE, {
      metadata: { name },
      spec: { holderIdentity: 'bridge-a', leaseDurationSeconds: 15 },
    });
    const renewed = await client.updateLease(NAMESPACE, {
      ...first,
      spec: { ...first.spec, renewTime: RENEWED },
    });
    expect(renewed.spec.renewTime).toBe(RENEWED);
    expect(renewed.metadata.resourceVersion).not.toBe(first.metadata.resourceVersion);

    // Another replica still holding the first read loses the compare-and-swap.
    const err = await expectCode(
      client.updateLease(NAMESPACE, { ...first, spec: { ...first.spec, holderIdentity: 'bridge-b' } }),
      'CT_KUBE_CONFLICT',
    );
    expect(err.message).toContain(
      `Operation cannot be fulfilled on leases.coordination.k8s.io "${name}": the object has been modified`,
    );
    expect((await client.getLease(NAMESPACE, name)).spec.holderIdentity).toBe('bridge-a');
  });

  it('answers a stale PUT with the real API server Status body (409, reason Conflict)', async () => {
    const name = uniqueName('status');
    const first = await client.createLease(NAMESPACE, { metadata: { name }, spec: {} });
    await client.updateLease(NAMESPACE, { ...first, spec: { holderIdentity: 'bridge-a' } });
    const res = await call('PUT', `${leasesPath}/${name}`, {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name, resourceVersion: first.metadata.resourceVersion },
      spec: { holderIdentity: 'bridge-b' },
    });
    expect(res.status).toBe(409);
    expect(res.json).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: `Operation cannot be fulfilled on leases.coordination.k8s.io "${name}": the object has been modified; please apply your changes to the latest version and try again`,
      reason: 'Conflict',
      details: { name, group: 'coordination.k8s.io', kind: 'leases' },
      code: 409,
    });
  });

  it('refuses an update without a resourceVersion before sending it', async () => {
    const name = uniqueName('unversioned');
    const created = await client.createLease(NAMESPACE, { metadata: { name }, spec: {} });
    await expectCode(
      client.updateLease(NAMESPACE, { metadata: { name }, spec: { holderIdentity: 'bridge-a' } }),
      'CT_INVALID_ARGUMENT',
    );
    expect((await client.getLease(NAMESPACE, name)).metadata.resourceVersion).toBe(
      created.metadata.resourceVersion,
    );
  });

  it('answers a missing lease with CT_KUBE_NOT_FOUND on get and delete', async () => {
    const name = uniqueName('missing');
    const err = await expectCode(client.getLease(NAMESPACE, name), 'CT_KUBE_NOT_FOUND');
    expect(err.message).toContain(`leases.coordination.k8s.io "${name}" not found`);
    await expectCode(client.deleteLease(NAMESPACE, name), 'CT_KUBE_NOT_FOUND');
  });

  it('creates a missing lease on update, whatever resourceVersion it carries, as the API server does for Leases', async () => {
    const name = uniqueName('recreated');
    const first = await client.createLease(NAMESPACE, {
      metadata: { name },
      spec: { holderIdentity: 'bridge-a' },
    });
    await client.deleteLease(NAMESPACE, name);
    const res = await call('PUT', `${leasesPath}/${name}`, {
      ...first,
      spec: { holderIdentity: 'bridge-b' },
    });
    expect(res.status).toBe(201);
    expect(res.json.metadata.uid).not.toBe(first.metadata.uid);
    expect(res.json.metadata.resourceVersion).not.toBe(first.metadata.resourceVersion);
    await client.deleteLease(NAMESPACE, name);
    const again = await client.updateLease(NAMESPACE, { ...first, spec: { holderIdentity: 'bridge-c' } });
    expect(again.spec.holderIdentity).toBe('bridge-c');
    expect((await client.getLease(NAMESPACE, name)).metadata.uid).toBe(again.metadata.uid);
    // The URL names the lease: a body naming another is refused, as on any PUT.
    const renamed = await call('PUT', `${leasesPath}/${uniqueName('url')}`, { metadata: { name }, spec: {} });
    expect(renamed.status).toBe(400);
  });

  it('deletes only at the given resourceVersion, then reports the lease gone', async () => {
    const name = uniqueName('release');
    const first = await client.createLease(NAMESPACE, { metadata: { name }, spec: {} });
    const renewed = await client.updateLease(NAMESPACE, { ...first, spec: { holderIdentity: 'bridge-a' } });
    const err = await expectCode(
      client.deleteLease(NAMESPACE, name, { resourceVersion: first.metadata.resourceVersion }),
      'CT_KUBE_CONFLICT',
    );
    expect(err.message).toContain('the ResourceVersion in the precondition');
    await client.deleteLease(NAMESPACE, name, { resourceVersion: renewed.metadata.resourceVersion });
    await expectCode(client.getLease(NAMESPACE, name), 'CT_KUBE_NOT_FOUND');
    await expectCode(client.deleteLease(NAMESPACE, name), 'CT_KUBE_NOT_FOUND');
  });

  it('lists every lease matching a label selector across continue pages', async () => {
    const namespace = 'many-shards';
    await server.createNamespace(namespace);
    // One more than the client's page size, so the list needs a second page.
    const names = Array.from({ length: 501 }, (_, i) => `shard-${String(i).padStart(3, '0')}`);
    for (let i = 0; i < names.length; i += 25) {
      await Promise.all(
        names
          .slice(i, i + 25)
          .map((name) =>
            client.createLease(namespace, { metadata: { name, labels: { set: 'bridge' } }, spec: {} }),
          ),
      );
    }
    await client.createLease(namespace, { metadata: { name: 'other', labels: { set: 'other' } }, spec: {} });
    const listed = await client.listLeases(namespace, { labelSelector: 'set=bridge' });
    expect(listed.map((l: KubeLease) => l.metadata.name).sort()).toEqual(names);
    expect(listed.every((l) => l.metadata.namespace === namespace && l.spec !== undefined)).toBe(true);
    expect((await client.listLeases(namespace)).length).toBe(502);
    expect(await client.listLeases(NAMESPACE, { labelSelector: 'set=none' })).toEqual([]);
  });

  it('merge-patches a lease spec', async () => {
    const name = uniqueName('patch');
    await client.createLease(NAMESPACE, { metadata: { name }, spec: { holderIdentity: 'bridge-a' } });
    const res = await call(
      'PATCH',
      `${leasesPath}/${name}`,
      { spec: { holderIdentity: 'bridge-b', leaseTransitions: 1 } },
      'application/merge-patch+json',
    );
    expect(res.status).toBe(200);
    expect(res.json.spec).toEqual({ holderIdentity: 'bridge-b', leaseTransitions: 1 });
  });
});

describe('Lease validation in the Kubernetes test server', () => {
  it('refuses out-of-range durations and transitions with one 422 Invalid naming each field', async () => {
    const name = uniqueName('invalid');
    const res = await call('POST', leasesPath, {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name },
      spec: { leaseDurationSeconds: 0, leaseTransitions: -1 },
    });
    expect(res.status).toBe(422);
    expect(res.json).toMatchObject({
      kind: 'Status',
      status: 'Failure',
      reason: 'Invalid',
      code: 422,
      message: `Lease.coordination.k8s.io "${name}" is invalid: [spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0, spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0]`,
      details: {
        name,
        group: 'coordination.k8s.io',
        kind: 'Lease',
        causes: [
          {
            reason: 'FieldValueInvalid',
            message: 'Invalid value: 0: must be greater than 0',
            field: 'spec.leaseDurationSeconds',
          },
          {
            reason: 'FieldValueInvalid',
            message: 'Invalid value: -1: must be greater than or equal to 0',
            field: 'spec.leaseTransitions',
          },
        ],
      },
    });
    await expectCode(client.getLease(NAMESPACE, name), 'CT_KUBE_NOT_FOUND');
  });

  it('refuses an invalid update through the client as CT_KUBE_ERROR carrying the 422 message', async () => {
    const name = uniqueName('badupdate');
    const created = await client.createLease(NAMESPACE, { metadata: { name }, spec: {} });
    const err = await expectCode(
      client.updateLease(NAMESPACE, { ...created, spec: { leaseDurationSeconds: -5 } }),
      'CT_KUBE_ERROR',
    );
    expect(err.message).toContain('with 422');
    expect(err.message).toContain('spec.leaseDurationSeconds: Invalid value: -5: must be greater than 0');
    expect((err as { details?: { reason?: string } }).details?.reason).toBe('Invalid');
  });

  it('refuses an invalid lease name with 422', async () => {
    const res = await call('POST', leasesPath, { metadata: { name: 'Not_A_Name' }, spec: {} });
    expect(res.status).toBe(422);
    expect(res.json.details.causes[0].field).toBe('metadata.name');
  });

  it('refuses values of the wrong type and times that are not MicroTime with 400, as the decoder does', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ holderIdentity: 7 }, 'spec.holderIdentity of type string'],
      [{ leaseDurationSeconds: '15' }, 'spec.leaseDurationSeconds of type int32'],
      [{ leaseDurationSeconds: 1.5 }, 'spec.leaseDurationSeconds of type int32'],
      [{ leaseTransitions: 2 ** 31 }, 'spec.leaseTransitions of type int32'],
      // Millisecond precision (what Date#toISOString gives) is not a MicroTime.
      [{ renewTime: '2026-12-05T06:30:00.000Z' }, 'parsing time "2026-12-05T06:30:00.000Z"'],
      [{ acquireTime: '2026-12-05T06:30:00Z' }, 'parsing time'],
      [{ acquireTime: '2026-02-30T06:30:00.000000Z' }, 'parsing time'],
    ];
    for (const [spec, expected] of cases) {
      const res = await call('POST', leasesPath, { metadata: { name: uniqueName('type') }, spec });
      expect(res.status, JSON.stringify(spec)).toBe(400);
      expect(res.json.reason).toBe('BadRequest');
      expect(res.json.message).toContain('Lease in version "v1" cannot be handled as a Lease');
      expect(res.json.message).toContain(expected);
    }
  });

  it('warns about unknown fields by default and refuses them under fieldValidation=Strict', async () => {
    const body = (name: string) => ({
      metadata: { name },
      spec: { holderIdentity: 'bridge-a', holder: 'typo' },
      status: {},
    });
    const warned = await call('POST', leasesPath, body(uniqueName('warn')));
    expect(warned.status).toBe(201);
    expect(String(warned.headers.warning)).toContain('unknown field \\"status\\"');
    expect(String(warned.headers.warning)).toContain('unknown field \\"spec.holder\\"');
    expect(warned.json.spec).toEqual({ holderIdentity: 'bridge-a' });

    const strict = await call('POST', `${leasesPath}?fieldValidation=Strict`, body(uniqueName('strict')));
    expect(strict.status).toBe(400);
    expect(strict.json.message).toBe(
      'strict decoding error: unknown field "status", unknown field "spec.holder"',
    );
  });

  it('authorizes leases by RBAC like every other kind', async () => {
    const name = uniqueName('rbac');
    await client.createLease(NAMESPACE, { metadata: { name }, spec: {} });
    await server.createServiceAccount(NAMESPACE, 'bridge');
    const limited = KubeClient.fromConnection({
      kind: 'token',
      host: server.url,
      token: server.issueServiceAccountToken(NAMESPACE, 'bridge'),
      clusterCaCertificate: server.caCertPem,
    });
    try {
      await expectCode(limited.getLease(NAMESPACE, name), 'CT_KUBE_FORBIDDEN');
      server.grant(
        { namespace: NAMESPACE, name: 'bridge' },
        { verbs: ['get'], apiGroups: ['coordination.k8s.io'], resources: ['leases'], namespace: NAMESPACE },
      );
      const read = await limited.getLease(NAMESPACE, name);
      const err = await expectCode(
        limited.updateLease(NAMESPACE, { ...read, spec: { holderIdentity: 'bridge' } }),
        'CT_KUBE_FORBIDDEN',
      );
      expect(err.message).toContain(
        `cannot update resource "leases" in API group "coordination.k8s.io" in the namespace "${NAMESPACE}"`,
      );
      expect(err.message).toContain(
        `RBAC must allow: update leases.coordination.k8s.io ${name} in namespace ${NAMESPACE}`,
      );
    } finally {
      limited.close();
    }
  });
});
