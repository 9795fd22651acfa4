/**
 * OpenBao contract: the same cases run against the in-process test server (default) and against a real OpenBao
 * when CLOUDTASER_TEST_OPENBAO_ADDR and CLOUDTASER_TEST_OPENBAO_TOKEN are set. Server-only cases are skipped there.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { expectCode } from '../support/expect-code.js';
import { waitUntil } from '../support/wait.js';
import {
  AGAINST_REAL_OPENBAO,
  clientFor,
  raw,
  serviceAccountJwt,
  startTarget,
  type Target,
  uniqueName,
} from './openbao-helpers.js';

const ENVELOPE_KEYS = [
  'request_id',
  'lease_id',
  'renewable',
  'lease_duration',
  'data',
  'wrap_info',
  'warnings',
  'auth',
];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const ACL_DENIED = '1 error occurred:\n\t* permission denied\n\n';

let target: Target;
let root: OpenBaoClient;
/** Every namespace this run creates lives under this one. */
let base: string;

beforeAll(async () => {
  target = await startTarget();
  root = clientFor(target);
  base = uniqueName('ct-contract');
  await root.createNamespace(base);
});

afterAll(async () => {
  await root?.close();
  await target?.close();
});

describe('KV v2 paginated LIST (path_metadata.go pathMetadataList: `after`, `limit`)', () => {
  it('answers the keys after `after`, at most `limit`, sorted, folders with a slash; an empty page is 404', async () => {
    const ns = root.withNamespace(base);
    await ns.enableKvV2('paged');
    for (const key of ['a', 'b', 'c', 'sub/x']) await ns.kvWrite('paged', `dir/${key}`, { v: key });
    const page = async (query: string) => {
      const answer = await raw(target, 'LIST', `paged/metadata/dir?${query}`, { namespace: base });
      return [answer.status, (answer.json?.data as { keys?: string[] } | undefined)?.keys ?? answer.json];
    };
    expect(await page('limit=2')).toEqual([200, ['a', 'b']]);
    expect(await page('after=b&limit=2')).toEqual([200, ['c', 'sub/']]);
    expect(await page('after=a')).toEqual([200, ['b', 'c', 'sub/']]);
    expect(await page('limit=0')).toEqual([200, ['a', 'b', 'c', 'sub/']]);
    expect(await page('after=sub%2F')).toEqual([404, { errors: [] }]);
  });
});

describe('envelope and error shapes', () => {
  it('answers a KV read with exactly the eight envelope keys in order, a fresh request_id and a trailing newline', async () => {
    const ns = root.withNamespace(base);
    await ns.enableKvV2('kv');
    await ns.kvWrite('kv', 'envelope/a', { hello: 'world', b: 1, a: 2 });
    const first = await raw(target, 'GET', 'kv/data/envelope/a', { namespace: base });
    const second = await raw(target, 'GET', 'kv/data/envelope/a', { namespace: base });
    expect(first.status).toBe(200);
    expect(Object.keys(first.json!)).toEqual(ENVELOPE_KEYS);
    expect(first.json).not.toHaveProperty('mount_type');
    expect(first.text.endsWith('\n')).toBe(true);
    expect(first.json!.request_id).toMatch(UUID);
    expect(first.json!.request_id).not.toBe(second.json!.request_id);
    expect(first.headers.get('content-type')).toContain('application/json');
    expect(first.headers.get('cache-control')).toBe('no-store');
    expect(first.headers.get('x-vault-namespace')).toBe(base);
    expect((first.json!.data as { data: unknown }).data).toEqual({ a: 2, b: 1, hello: 'world' });
  });

  it('answers a missing secret with 404 and an empty errors list', async () => {
    const answer = await raw(target, 'GET', 'kv/data/never-written', { namespace: base });
    expect(answer.status).toBe(404);
    expect(answer.json).toEqual({ errors: [] });
  });

  it('answers a request without a token with the plain "permission denied" text', async () => {
    const answer = await raw(target, 'GET', 'kv/data/x', { namespace: base, token: null });
    expect(answer.status).toBe(403);
    expect(answer.json).toEqual({ errors: ['permission denied'] });
  });

  it('answers an unknown route in the root with "no handler for route"', async () => {
    const answer = await raw(target, 'GET', 'no-such-mount-xyz/data/x');
    expect(answer.status).toBe(404);
    expect(answer.json).toEqual({
      errors: ['no handler for route "no-such-mount-xyz/data/x". route entry not found.'],
    });
  });

  it('answers a write without data with 400 "no data provided" and a body that is not JSON with 400', async () => {
    expect((await raw(target, 'POST', 'kv/data/x', { namespace: base, body: {} })).json).toEqual({
      errors: ['no data provided'],
    });
    const bad = await raw(target, 'POST', 'kv/data/x', { namespace: base, body: '{"data":' });
    expect(bad.status).toBe(400);
    expect(String((bad.json!.errors as string[])[0])).toMatch(/^failed to decode JSON input: /);
  });
});

describe('namespaces', () => {
  it('creates nested namespaces one segment at a time and is idempotent', async () => {
    const ns = root.withNamespace(base);
    await ns.ensureNamespacePath('cloudtaser/0ad50c05');
    await ns.ensureNamespacePath('cloudtaser/0ad50c05');
    const info = await ns.withNamespace(`${base}/cloudtaser`).readNamespace('0ad50c05');
    expect(info?.path).toBe(`${base}/cloudtaser/0ad50c05`);
    expect(info?.tainted).toBe(false);
    expect(info?.id).toMatch(/^[A-Za-z0-9]{5,6}$/);
    expect(await ns.listNamespaces()).toContain('cloudtaser');
  });

  it('reads back custom_metadata null for a namespace created without it, and the map when one was given', async () => {
    const bare = uniqueName('bare');
    const tagged = uniqueName('tagged');
    await raw(target, 'POST', `sys/namespaces/${bare}`, { namespace: base, body: {} });
    await raw(target, 'POST', `sys/namespaces/${tagged}`, {
      namespace: base,
      body: { custom_metadata: { owner: 'team-a' } },
    });
    const bareRead = await raw(target, 'GET', `sys/namespaces/${bare}`, { namespace: base });
    expect((bareRead.json!.data as Record<string, unknown>).custom_metadata).toBeNull();
    const taggedRead = await raw(target, 'GET', `sys/namespaces/${tagged}`, { namespace: base });
    expect((taggedRead.json!.data as Record<string, unknown>).custom_metadata).toEqual({ owner: 'team-a' });
    // The client reads null as "no metadata".
    expect((await root.withNamespace(base).readNamespace(bare))?.customMetadata).toEqual({});
  });

  it('refuses a multi-segment name with 400', async () => {
    const answer = await raw(target, 'POST', 'sys/namespaces/a/b', { namespace: base, body: {} });
    expect(answer.status).toBe(400);
    expect(String((answer.json!.errors as string[])[0])).toMatch(
      /namespace name cannot contain \/|path must not contain \//,
    );
  });

  it('refuses a namespace header that names a missing namespace with 404 "namespace not found"', async () => {
    const answer = await raw(target, 'GET', 'sys/mounts', { namespace: `${base}/missing` });
    expect(answer.status).toBe(404);
    expect(answer.json).toEqual({ errors: ['namespace not found'] });
    await expectCode(root.withNamespace(`${base}/missing`).listMounts(), 'CT_OPENBAO_NAMESPACE_NOT_FOUND');
  });

  it('addresses the same namespace by header and by path prefix (longest existing prefix)', async () => {
    const ns = root.withNamespace(`${base}/cloudtaser/0ad50c05`);
    await ns.enableKvV2('cloudtaser');
    await ns.kvWrite('cloudtaser', 'system/probe', { via: 'header' });
    const byPrefix = await raw(target, 'GET', `${base}/cloudtaser/0ad50c05/cloudtaser/data/system/probe`);
    expect(byPrefix.status).toBe(200);
    const mixed = await raw(target, 'GET', '0ad50c05/cloudtaser/data/system/probe', {
      namespace: `${base}/cloudtaser`,
    });
    expect((mixed.json!.data as { data: unknown }).data).toEqual({ via: 'header' });
  });

  it('gives a fresh namespace no KV mount', async () => {
    const ns = root.withNamespace(base);
    await ns.createNamespace('fresh');
    const mounts = await root.withNamespace(`${base}/fresh`).listMounts();
    expect(Object.values(mounts).filter((m) => m.type === 'kv')).toEqual([]);
    const answer = await raw(target, 'GET', 'secret/data/x', { namespace: `${base}/fresh` });
    expect(answer.status).toBe(404);
  });

  it('lists a subtree with SCAN semantics and direct children with LIST', async () => {
    const scan = await raw(target, 'GET', 'sys/namespaces?scan=true', { namespace: base });
    expect(scan.status).toBe(200);
    const keys = (scan.json!.data as { keys: string[] }).keys;
    expect(keys).toEqual(expect.arrayContaining(['cloudtaser/', 'cloudtaser/0ad50c05/']));
    const list = await raw(target, 'GET', 'sys/namespaces?list=true', { namespace: base });
    expect((list.json!.data as { keys: string[] }).keys).not.toContain('cloudtaser/0ad50c05/');
  });

  it('refuses to delete a namespace that has children with 400', async () => {
    const answer = await raw(target, 'DELETE', 'sys/namespaces/cloudtaser', { namespace: base });
    expect(answer.status).toBe(400);
    expect(answer.json).toEqual({ errors: ['unable to delete namespace containing child namespaces'] });
  });

  it('deletes asynchronously: in-progress first, gone shortly after; a missing one only warns', async () => {
    const ns = root.withNamespace(base);
    await ns.createNamespace('doomed');
    const answer = await raw(target, 'DELETE', 'sys/namespaces/doomed', { namespace: base });
    expect(answer.status).toBe(200);
    expect((answer.json!.data as { status: string }).status).toBe('in-progress');
    await waitUntil(async () => (await ns.readNamespace('doomed')) === undefined, {
      what: 'the deleted namespace gone',
    });
    const missing = await raw(target, 'DELETE', 'sys/namespaces/doomed', { namespace: base });
    expect(missing.status).toBe(200);
    expect(missing.json!.warnings).toEqual(['requested namespace does not exist']);
    await ns.createNamespace('doomed2');
    await ns.deleteNamespace('doomed2', { wait: true });
    expect(await ns.readNamespace('doomed2')).toBeUndefined();
  });

  it('lists no namespaces as an empty array', async () => {
    expect(await root.withNamespace(`${base}/fresh`).listNamespaces()).toEqual([]);
  });
});

describe('mounts', () => {
  it('enables KV v2 and auth methods idempotently and reports "path is already in use" on raw re-mount', async () => {
    const ns = root.withNamespace(`${base}/fresh`);
    await ns.enableKvV2('secret');
    await ns.enableKvV2('secret/');
    const mounts = await ns.listMounts();
    expect(mounts['secret/']).toMatchObject({ type: 'kv', options: { version: '2' } });
    const again = await raw(target, 'POST', 'sys/mounts/secret', {
      namespace: `${base}/fresh`,
      body: { type: 'kv', options: { version: '2' } },
    });
    expect(again.status).toBe(400);
    expect(again.json).toEqual({ errors: ['path is already in use at secret/'] });
    await ns.enableAuth('kubernetes', 'kubernetes');
    await ns.enableAuth('kubernetes', 'kubernetes');
    expect((await ns.listAuthMounts())['kubernetes/']?.type).toBe('kubernetes');
  });
});

describe('KV v2', () => {
  const mount = 'kv';
  it('creates with cas=0 once and refuses a second cas=0 with the exact mismatch text', async () => {
    const ns = root.withNamespace(base);
    // The answer carries the version and OpenBao's `created_time` (the clock a re-arm window starts from).
    const first = await ns.kvWrite(mount, 'clusters/fp/registered', { a: 1 }, { cas: 0 });
    expect(first).toEqual({
      version: 1,
      createdTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/),
    });
    expect(Math.abs(Date.parse(first.createdTime!) - Date.now())).toBeLessThan(60_000);
    const err = await expectCode(
      ns.kvWrite(mount, 'clusters/fp/registered', { a: 2 }, { cas: 0 }),
      'CT_OPENBAO_CAS_MISMATCH',
    );
    expect(err.details.status).toBe(400);
    const answer = await raw(target, 'POST', `${mount}/data/clusters/fp/registered`, {
      namespace: base,
      body: { data: { a: 3 }, options: { cas: 0 } },
    });
    expect(answer.json).toEqual({ errors: ['check-and-set parameter did not match the current version'] });
    expect(await ns.kvWrite(mount, 'clusters/fp/registered', { a: 4 }, { cas: 1 })).toMatchObject({
      version: 2,
    });
    expect((await ns.kvRead(mount, 'clusters/fp/registered'))?.data).toEqual({ a: 4 });
    expect((await ns.kvRead(mount, 'clusters/fp/registered', { version: 1 }))?.data).toEqual({ a: 1 });
  });

  it('keeps the version counter after a soft delete, so cas=0 still fails; deleting metadata resets it', async () => {
    const ns = root.withNamespace(base);
    await ns.kvWrite(mount, 'soft/x', { v: 1 });
    await ns.kvDelete(mount, 'soft/x');
    expect(await ns.kvRead(mount, 'soft/x')).toBeUndefined();
    const deleted = await raw(target, 'GET', `${mount}/data/soft/x`, { namespace: base });
    expect(deleted.status).toBe(404);
    expect(Object.keys(deleted.json!)).toEqual(ENVELOPE_KEYS);
    const shape = deleted.json!.data as {
      data: unknown;
      metadata: { deletion_time: string; destroyed: boolean };
    };
    expect(shape.data).toBeNull();
    expect(shape.metadata.deletion_time).not.toBe('');
    await expectCode(ns.kvWrite(mount, 'soft/x', { v: 2 }, { cas: 0 }), 'CT_OPENBAO_CAS_MISMATCH');
    expect(await ns.kvWrite(mount, 'soft/x', { v: 2 }, { cas: 1 })).toMatchObject({ version: 2 });
    expect((await ns.kvReadMetadata(mount, 'soft/x'))?.currentVersion).toBe(2);
    await ns.kvDeleteMetadata(mount, 'soft/x');
    await ns.kvDeleteMetadata(mount, 'soft/x');
    expect(await ns.kvReadMetadata(mount, 'soft/x')).toBeUndefined();
    expect(await ns.kvWrite(mount, 'soft/x', { v: 3 }, { cas: 0 })).toMatchObject({ version: 1 });
  });

  it('lists keys with folders ending in "/" and an empty folder as []', async () => {
    const ns = root.withNamespace(base);
    await ns.kvWrite(mount, 'list/a', { x: 1 });
    await ns.kvWrite(mount, 'list/sub/b', { x: 1 });
    expect(await ns.kvList(mount, 'list')).toEqual(['a', 'sub/']);
    expect(await ns.kvList(mount, 'list/')).toEqual(['a', 'sub/']);
    expect(await ns.kvList(mount, 'nothing-here')).toEqual([]);
  });

  it('refuses a cas that is not a number with 400', async () => {
    const answer = await raw(target, 'POST', `${mount}/data/bad-cas`, {
      namespace: base,
      body: { data: { a: 1 }, options: { cas: 'abc' } },
    });
    expect(answer.status).toBe(400);
    expect(answer.json).toEqual({ errors: ['error parsing check-and-set parameter'] });
  });

  it('destroys a version so reads answer 404 with destroyed=true', async () => {
    const ns = root.withNamespace(base);
    await ns.kvWrite(mount, 'destroy/me', { s: 1 });
    const destroy = await raw(target, 'POST', `${mount}/destroy/destroy/me`, {
      namespace: base,
      body: { versions: [1] },
    });
    expect(destroy.status).toBe(204);
    const read = await raw(target, 'GET', `${mount}/data/destroy/me`, { namespace: base });
    expect(read.status).toBe(404);
    expect((read.json!.data as { metadata: { destroyed: boolean } }).metadata.destroyed).toBe(true);
  });
});

describe('tokens and policies', () => {
  it('enforces a policy per path and namespace, with the ACL denial text', async () => {
    const ns = root.withNamespace(base);
    await ns.writePolicy(
      'reader',
      'path "kv/data/allowed/*" {\n  capabilities = ["read", "create", "update"]\n}\n# comment\npath "kv/metadata/+/list-me" { capabilities = ["list"] }\n',
    );
    expect(await ns.readPolicy('reader')).toContain('kv/data/allowed/*');
    expect(await ns.readPolicy('does-not-exist')).toBeUndefined();
    const auth = await ns.createToken({ policies: ['reader'], ttl: '1h' });
    expect(auth.policies).toEqual(['default', 'reader']);
    const limited = ns.withToken(auth.clientToken);
    await limited.kvWrite('kv', 'allowed/one', { ok: true });
    expect((await limited.kvRead('kv', 'allowed/one'))?.data).toEqual({ ok: true });
    const err = await expectCode(limited.kvRead('kv', 'other/one'), 'CT_OPENBAO_PERMISSION_DENIED');
    expect(err.details.errors).toEqual([ACL_DENIED]);
    expect(err.message).not.toContain(auth.clientToken);
    expect(JSON.stringify(err.details)).not.toContain(auth.clientToken);
    const self = await limited.lookupSelf();
    expect(self.policies).toEqual(['default', 'reader']);
    expect(self.ttl).toBeGreaterThan(3000);
    expect(self.namespacePath).toBe(base);
  });

  it('lets a namespace token work in child namespaces but not in the parent', async () => {
    const ns = root.withNamespace(base);
    const auth = await ns.createToken({ policies: ['reader'] });
    const child = root.withNamespace(`${base}/cloudtaser`).withToken(auth.clientToken);
    await child.lookupSelf().catch(() => undefined);
    const parentAnswer = await raw(target, 'GET', 'auth/token/lookup-self', { token: auth.clientToken });
    expect(parentAnswer.status).toBe(403);
    expect(parentAnswer.json).toEqual({ errors: ['permission denied'] });
  });

  it('refuses a revoked token with the plain text', async () => {
    const ns = root.withNamespace(base);
    const auth = await ns.createToken({ policies: ['reader'] });
    await ns.withToken(auth.clientToken).revokeSelf();
    const err = await expectCode(ns.withToken(auth.clientToken).lookupSelf(), 'CT_OPENBAO_PERMISSION_DENIED');
    expect(err.details.errors).toEqual(['permission denied']);
  });

  it('logs in with AppRole and refuses a wrong secret ID with 400', async () => {
    const ns = root.withNamespace(base);
    await ns.enableAuth('approle', 'approle');
    await ns.writeAppRole('approle', 'bridge', { policies: ['reader'], tokenTtl: '1h' });
    const roleId = await ns.readAppRoleId('approle', 'bridge');
    const secretId = await ns.createAppRoleSecretId('approle', 'bridge');
    const login = await ns.withToken('').appRoleLogin('approle', roleId, secretId);
    expect(login.policies).toEqual(['default', 'reader']);
    expect(login.leaseDuration).toBe(3600);
    const err = await expectCode(ns.appRoleLogin('approle', roleId, 'wrong'), 'CT_OPENBAO_BAD_REQUEST');
    expect(err.message).toContain('invalid role or secret ID');
  });
});

// What cloudtaser's identities rely on (runtime/registration/policies.ts): a policy in the ROOT namespace whose
// full paths reach child namespaces through `+`, sudo on sys/auth/<path>, create vs update on KV v2.
describe('ACL policies of root-namespace tokens in child namespaces', () => {
  const tokens = new Map<OpenBaoClient, string>();
  async function tokenWith(hcl: string): Promise<OpenBaoClient> {
    const name = uniqueName('ct-policy');
    await root.writePolicy(name, hcl);
    const auth = await root.createToken({ policies: [name], ttl: '10m' });
    const client = root.withToken(auth.clientToken);
    tokens.set(client, auth.clientToken);
    return client;
  }

  it('reaches every child namespace through + in a full path, and nothing the path does not name', async () => {
    const parent = root.withNamespace(base);
    await parent.createNamespace('acl-a');
    await parent.createNamespace('acl-b');
    for (const child of ['acl-a', 'acl-b']) {
      await root.withNamespace(`${base}/${child}`).enableKvV2('kv');
      await root.withNamespace(`${base}/${child}`).kvWrite('kv', 'shared/x', { v: child });
      await root.withNamespace(`${base}/${child}`).kvWrite('kv', 'private/x', { v: child });
    }
    await parent.enableKvV2('kv').catch(() => false);
    await parent.kvWrite('kv', 'shared/x', { v: 'parent' });
    const reader = await tokenWith(`path "${base}/+/kv/data/shared/+" { capabilities = ["read"] }`);
    expect((await reader.withNamespace(`${base}/acl-a`).kvRead('kv', 'shared/x'))?.data).toEqual({
      v: 'acl-a',
    });
    // `+` stands for one namespace below the parent: the parent itself is not reached.
    await expectCode(reader.withNamespace(base).kvRead('kv', 'shared/x'), 'CT_OPENBAO_PERMISSION_DENIED');
    const denied = await expectCode(
      reader.withNamespace(`${base}/acl-b`).kvRead('kv', 'private/x'),
      'CT_OPENBAO_PERMISSION_DENIED',
    );
    expect(denied.details.errors).toEqual([ACL_DENIED]);
    // The namespace given as a URL prefix instead of the header is the same full path to the ACL.
    const viaPrefix = await raw(target, 'GET', `${base}/acl-b/kv/data/shared/x`, {
      token: tokens.get(reader),
    });
    expect(viaPrefix.status).toBe(200);
  });

  it('needs sudo to enable an auth method (sys/auth/* is root-protected), not to list them', async () => {
    const parent = root.withNamespace(base);
    await parent.createNamespace('acl-sudo');
    const ns = `${base}/acl-sudo`;
    const withoutSudo = await tokenWith(
      `path "${ns}/sys/auth" { capabilities = ["read"] }\npath "${ns}/sys/auth/*" { capabilities = ["update"] }`,
    );
    expect(Object.keys(await withoutSudo.withNamespace(ns).listAuthMounts())).toContain('token/');
    const denied = await expectCode(
      withoutSudo.withNamespace(ns).enableAuth('kubernetes', 'kubernetes'),
      'CT_OPENBAO_PERMISSION_DENIED',
    );
    expect(denied.details.errors).toEqual([ACL_DENIED]);
    const withSudo = await tokenWith(
      `path "${ns}/sys/auth" { capabilities = ["read"] }\npath "${ns}/sys/auth/*" { capabilities = ["update", "sudo"] }`,
    );
    expect(await withSudo.withNamespace(ns).enableAuth('kubernetes', 'kubernetes')).toBe(true);
  });

  it('asks create for the first KV v2 write of a key and update for the next ones', async () => {
    const ns = root.withNamespace(base);
    const createOnly = await tokenWith(`path "${base}/kv/data/acl-cu/*" { capabilities = ["create"] }`);
    await createOnly.withNamespace(base).kvWrite('kv', 'acl-cu/a', { n: 1 });
    await expectCode(
      createOnly.withNamespace(base).kvWrite('kv', 'acl-cu/a', { n: 2 }),
      'CT_OPENBAO_PERMISSION_DENIED',
    );
    const updateOnly = await tokenWith(`path "${base}/kv/data/acl-cu/*" { capabilities = ["update"] }`);
    await expectCode(
      updateOnly.withNamespace(base).kvWrite('kv', 'acl-cu/b', { n: 1 }),
      'CT_OPENBAO_PERMISSION_DENIED',
    );
    await updateOnly.withNamespace(base).kvWrite('kv', 'acl-cu/a', { n: 3 });
    expect((await ns.kvRead('kv', 'acl-cu/a'))?.version).toBe(2);
  });

  it('answers sys/capabilities-self per path from the request namespace: the deciding rule, sorted, or deny', async () => {
    const checker = await tokenWith(
      `path "${base}/cap/+/x" { capabilities = ["update", "read", "sudo"] }\n` +
        `path "${base}/cap/b/x" { capabilities = ["deny"] }`,
    );
    const paths = [`${base}/cap/a/x`, `${base}/cap/b/x`, `${base}/elsewhere`];
    expect(await checker.capabilitiesSelf(paths)).toEqual({
      [paths[0]]: ['read', 'sudo', 'update'],
      [paths[1]]: ['deny'],
      [paths[2]]: ['deny'],
    });
    // Paths are relative to the namespace of the request, as every other path is: here a token of namespace
    // `base` (whose own default policy allows the endpoint there) asks from that namespace.
    const inBase = root.withNamespace(base);
    const policyName = uniqueName('ct-policy');
    await inBase.writePolicy(policyName, 'path "cap/+/x" { capabilities = ["read", "update"] }');
    const local = await inBase.createToken({ policies: [policyName], ttl: '10m' });
    expect(await inBase.withToken(local.clientToken).capabilitiesSelf(['cap/a/x', 'cap/a/y'])).toEqual({
      'cap/a/x': ['read', 'update'],
      'cap/a/y': ['deny'],
    });
    // One path also answers as `capabilities` (upstream keeps it for old clients), in data and at the top level.
    const one = await raw(target, 'POST', 'sys/capabilities-self', {
      token: tokens.get(checker),
      body: { paths: [paths[0]] },
    });
    expect(one.status).toBe(200);
    expect((one.json!.data as Record<string, unknown>).capabilities).toEqual(['read', 'sudo', 'update']);
    expect(one.json!.capabilities).toEqual(['read', 'sudo', 'update']);
    expect(await root.capabilitiesSelf([paths[1]])).toEqual({ [paths[1]]: ['root'] });
    const none = await raw(target, 'POST', 'sys/capabilities-self', { token: tokens.get(checker), body: {} });
    expect(none.status).toBe(400);
    expect(none.json!.errors).toEqual(['paths must be supplied']);
    // The endpoint is granted by the default policy: a token created without it is refused.
    const name = uniqueName('ct-policy');
    await root.writePolicy(name, `path "${base}/cap/+/x" { capabilities = ["read"] }`);
    const bare = await root.createToken({ policies: [name], ttl: '10m', noDefaultPolicy: true });
    await expectCode(
      root.withToken(bare.clientToken).capabilitiesSelf(paths),
      'CT_OPENBAO_PERMISSION_DENIED',
    );
  });

  it('lets LIST use a rule on the folder written without the trailing slash', async () => {
    await root.withNamespace(base).kvWrite('kv', 'acl-list/one', { n: 1 });
    const lister = await tokenWith(`path "${base}/kv/metadata/acl-list" { capabilities = ["list"] }`);
    expect(await lister.withNamespace(base).kvList('kv', 'acl-list')).toEqual(['one']);
  });
});

describe('sys/health, sys/seal-status and sys/init', () => {
  it('refuses sys/health with a namespace header, and the client never sends one there', async () => {
    const answer = await raw(target, 'GET', 'sys/health', { namespace: base });
    expect(answer.status).toBe(400);
    expect(answer.json).toEqual({ errors: ['operation unavailable in namespaces'] });
    const health = await root.withNamespace(base).health();
    expect(health).toMatchObject({ initialized: true, sealed: false, standby: false });
    expect(health.version).toMatch(/^\d+\.\d+/);
  });

  it('serves sys/seal-status whatever the namespace header says', async () => {
    const answer = await raw(target, 'GET', 'sys/seal-status', { namespace: base, token: null });
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ sealed: false, initialized: true, type: 'shamir' });
  });

  it('serves GET sys/init without a token, and refuses it with a namespace header (internal/http/sys_init.go)', async () => {
    const answer = await raw(target, 'GET', 'sys/init', { token: null });
    expect({ status: answer.status, json: answer.json }).toEqual({
      status: 200,
      json: { initialized: true },
    });
    const namespaced = await raw(target, 'GET', 'sys/init', { namespace: base, token: null });
    expect({ status: namespaced.status, json: namespaced.json }).toEqual({
      status: 400,
      json: { errors: ['operation unavailable in namespaces'] },
    });
  });
});

// Skipped against a real OpenBao: the cases point its Kubernetes auth at a TokenReview endpoint in this process,
// which a remote OpenBao cannot reach. The same login path runs for real through the bridge in test/operational.
describe.skipIf(AGAINST_REAL_OPENBAO)('Kubernetes auth against a fake TokenReview endpoint', () => {
  let kube: Server;
  let kubeUrl: string;
  const reviews: { authorization: string | undefined; body: Record<string, unknown> }[] = [];
  /** `GET /api/v1/namespaces/<ns>` reads, and the labels each namespace answers with. */
  const namespaceReads: { authorization: string | undefined; name: string }[] = [];
  const namespaceLabels = new Map<string, Record<string, string>>([['labelled', { team: 'web' }]]);
  let answer: (body: Record<string, unknown>) => { status: number; body: unknown } = () => ({
    status: 201,
    body: {},
  });
  const sa = { namespace: 'apps', name: 'web', uid: '7b1c2d3e-0000-4000-8000-000000000001' };

  beforeAll(async () => {
    kube = createServer(async (req: IncomingMessage, res) => {
      const read = /^\/api\/v1\/namespaces\/([^/]+)$/.exec(req.url ?? '');
      if (req.method === 'GET' && read) {
        namespaceReads.push({ authorization: req.headers.authorization, name: read[1] });
        const labels = namespaceLabels.get(read[1]);
        const status = labels ? 200 : 404;
        const body = labels
          ? { kind: 'Namespace', apiVersion: 'v1', metadata: { name: read[1], labels } }
          : { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 };
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
        return;
      }
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      reviews.push({ authorization: req.headers.authorization, body });
      const reply = answer(body);
      res.writeHead(reply.status, { 'content-type': 'application/json' }).end(JSON.stringify(reply.body));
    });
    await new Promise<void>((resolve) => kube.listen(0, '127.0.0.1', resolve));
    kubeUrl = `http://127.0.0.1:${(kube.address() as AddressInfo).port}`;
    const ns = root.withNamespace(`${base}/fresh`);
    await ns.writePolicy('app', 'path "secret/data/apps/*" { capabilities = ["read"] }');
    await ns.writeKubernetesAuthConfig('kubernetes', {
      kubernetesHost: kubeUrl,
      kubernetesCaCert: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
      tokenReviewerJwt: 'reviewer-jwt',
    });
    await ns.writeKubernetesAuthRole('kubernetes', 'web', {
      boundServiceAccountNames: ['web'],
      boundServiceAccountNamespaces: ['apps'],
      policies: ['app'],
      ttl: '1h',
      audience: 'openbao',
    });
  });

  afterAll(() => new Promise<void>((resolve) => kube.close(() => resolve())));

  const approve = (body: Record<string, unknown>) => ({
    status: 201,
    body: {
      kind: 'TokenReview',
      apiVersion: 'authentication.k8s.io/v1',
      metadata: {},
      spec: body.spec,
      status: {
        authenticated: true,
        user: {
          username: `system:serviceaccount:${sa.namespace}:${sa.name}`,
          uid: sa.uid,
          groups: [
            'system:serviceaccounts',
            `system:serviceaccounts:${sa.namespace}`,
            'system:authenticated',
          ],
        },
        audiences: (body.spec as { audiences?: string[] }).audiences,
      },
    },
  });

  it('logs a pod in only after a real TokenReview call, with the reviewer JWT and the role audience', async () => {
    answer = approve;
    reviews.length = 0;
    const jwt = serviceAccountJwt({ ...sa, aud: ['openbao'] });
    const login = await root
      .withNamespace(`${base}/fresh`)
      .withToken('')
      .kubernetesLogin('kubernetes', 'web', jwt);
    expect(login.policies).toEqual(['app', 'default']);
    expect(login.leaseDuration).toBe(3600);
    expect(login.metadata).toMatchObject({ service_account_name: 'web', service_account_namespace: 'apps' });
    expect(reviews).toHaveLength(1);
    expect(reviews[0].authorization).toBe('Bearer reviewer-jwt');
    expect(reviews[0].body).not.toHaveProperty('kind');
    expect(reviews[0].body.spec).toEqual({ token: jwt, audiences: ['openbao'] });
    const pod = root.withNamespace(`${base}/fresh`).withToken(login.clientToken);
    expect((await pod.lookupSelf()).meta).toMatchObject({ role: 'web' });
  });

  it('refuses a login the reviewer rejects, or answers without a status object, with 403 "permission denied"', async () => {
    const jwt = serviceAccountJwt({ ...sa, aud: ['openbao'] });
    answer = (body) => ({
      status: 201,
      body: { spec: body.spec, status: { user: {}, error: 'invalid bearer token' } },
    });
    const rejected = await raw(target, 'POST', 'auth/kubernetes/login', {
      namespace: `${base}/fresh`,
      token: null,
      body: { role: 'web', jwt },
    });
    expect(rejected.status).toBe(403);
    expect(rejected.json).toEqual({ errors: ['permission denied'] });
    answer = (body) => ({ status: 201, body: { spec: body.spec } });
    await expectCode(
      root.withNamespace(`${base}/fresh`).kubernetesLogin('kubernetes', 'web', jwt),
      'CT_OPENBAO_PERMISSION_DENIED',
    );
    answer = (body) => {
      const ok = approve(body);
      (ok.body.status.user as { uid: string }).uid = 'someone-else';
      return ok;
    };
    await expectCode(
      root.withNamespace(`${base}/fresh`).kubernetesLogin('kubernetes', 'web', jwt),
      'CT_OPENBAO_PERMISSION_DENIED',
    );
  });

  it('reads the pod namespace with the reviewer JWT for a role with a namespace selector, before the review (namespace_validator.go)', async () => {
    // The reviewer vouches for the pod in the namespace its token names.
    answer = (body) => {
      const reply = approve(body);
      (reply.body.status.user as { username: string }).username = `system:serviceaccount:labelled:${sa.name}`;
      return reply;
    };
    const ns = root.withNamespace(`${base}/fresh`);
    await ns.writeKubernetesAuthRole('kubernetes', 'by-label', {
      boundServiceAccountNames: ['web'],
      boundServiceAccountNamespaces: [],
      boundServiceAccountNamespaceSelector: '{"matchLabels":{"team":"web"}}',
      policies: ['app'],
      ttl: '1h',
      audience: 'openbao',
    });
    const login = (namespace: string) =>
      raw(target, 'POST', 'auth/kubernetes/login', {
        namespace: `${base}/fresh`,
        token: null,
        body: { role: 'by-label', jwt: serviceAccountJwt({ ...sa, namespace, aud: ['openbao'] }) },
      });
    namespaceReads.length = 0;
    reviews.length = 0;
    expect((await login('labelled')).status).toBe(200);
    expect(namespaceReads).toEqual([{ authorization: 'Bearer reviewer-jwt', name: 'labelled' }]);
    expect(reviews).toHaveLength(1);
    namespaceLabels.set('other-team', { team: 'db' });
    const other = await login('other-team');
    expect(other.json).toEqual({ errors: ['namespace not authorized'] });
    const missing = await login('gone');
    expect(missing.status).toBe(403);
    expect(String((missing.json!.errors as string[])[0])).toMatch(/^namespace not authorized err=/);
    expect(reviews).toHaveLength(1);
  });

  it('refuses a service account outside the role, an expired token and a wrong audience before any review', async () => {
    answer = approve;
    reviews.length = 0;
    const login = (jwt: string) =>
      raw(target, 'POST', 'auth/kubernetes/login', {
        namespace: `${base}/fresh`,
        token: null,
        body: { role: 'web', jwt },
      });
    const otherName = await login(serviceAccountJwt({ ...sa, name: 'intruder', aud: ['openbao'] }));
    expect(otherName.json).toEqual({ errors: ['service account name not authorized'] });
    const otherNs = await login(serviceAccountJwt({ ...sa, namespace: 'kube-system', aud: ['openbao'] }));
    expect(otherNs.json).toEqual({ errors: ['namespace not authorized'] });
    const old = Math.floor(Date.now() / 1000) - 7200;
    const expired = await login(serviceAccountJwt({ ...sa, aud: ['openbao'], iat: old, exp: old + 60 }));
    expect(expired.status).toBe(403);
    expect(expired.json).toEqual({ errors: ['invalid expiration time (exp) claim: token is expired'] });
    const wrongAud = await login(serviceAccountJwt({ ...sa, aud: ['something-else'] }));
    expect(wrongAud.status).toBe(403);
    expect(String((wrongAud.json!.errors as string[])[0])).toMatch(/^invalid audience \(aud\) claim/);
    const garbage = await login('not.a.jwt');
    expect(garbage.status).toBe(403);
    const unknownRole = await raw(target, 'POST', 'auth/kubernetes/login', {
      namespace: `${base}/fresh`,
      token: null,
      body: { role: 'nope', jwt: 'x' },
    });
    expect(unknownRole.json).toEqual({ errors: ['invalid role name "nope"'] });
    expect(reviews).toHaveLength(0);
  });
});

describe('Kubernetes auth config as OpenBao stores it (path_config.go)', () => {
  it('keeps kubernetes_host exactly as given, trailing slash included, and only warns about a CA that is not PEM', async () => {
    const ns = root.withNamespace(`${base}/fresh`);
    await ns.enableAuth('kube-exact', 'kubernetes');
    const write = await raw(target, 'POST', 'auth/kube-exact/config', {
      namespace: `${base}/fresh`,
      body: { kubernetes_host: 'https://bridge.example:8444/clusters/x/', kubernetes_ca_cert: 'not a PEM' },
    });
    expect(write.status).toBe(200);
    expect((write.json!.warnings as string[]).length).toBeGreaterThan(0);
    const read = await raw(target, 'GET', 'auth/kube-exact/config', { namespace: `${base}/fresh` });
    expect((read.json!.data as Record<string, unknown>).kubernetes_host).toBe(
      'https://bridge.example:8444/clusters/x/',
    );
    expect((read.json!.data as Record<string, unknown>).kubernetes_ca_cert).toBe('not a PEM');
  });
});

// Skipped against a real OpenBao: these cases seal the server or inspect its request log, which only the test
// server lets a test do.
describe.skipIf(AGAINST_REAL_OPENBAO)('server-only behaviour', () => {
  it('answers every logical request with 503 "Vault is sealed" while sealed, and the client reports CT_OPENBAO_SEALED', async () => {
    target.server!.seal();
    try {
      const answer = await raw(target, 'GET', 'kv/data/x', { namespace: base });
      expect(answer.status).toBe(503);
      expect(answer.json).toEqual({ errors: ['Vault is sealed'] });
      expect((await raw(target, 'GET', 'sys/health')).status).toBe(503);
      expect((await root.health()).sealed).toBe(true);
      await expectCode(root.withNamespace(base).kvRead('kv', 'x'), 'CT_OPENBAO_SEALED');
    } finally {
      target.server!.unseal();
    }
  });

  it('behaves like an OpenBao without namespaces when asked, and the client refuses to use namespaces there', async () => {
    const old = await startOpenBaoTestServer({ namespaces: false });
    try {
      const unsupported = await raw(
        { ...target, address: old.address, token: old.rootToken },
        'POST',
        'sys/namespaces/x',
        {
          body: {},
        },
      );
      expect(unsupported.status).toBe(404);
      expect(unsupported.json).toEqual({ errors: ['1 error occurred:\n\t* unsupported path\n\n'] });
      // The header is ignored there: a namespaced write would land in the root.
      const ignored = await raw(
        { ...target, address: old.address, token: old.rootToken },
        'POST',
        'secret/data/leak',
        {
          namespace: 'cloudtaser',
          body: { data: { a: 1 } },
        },
      );
      expect(ignored.status).toBe(200);
      const client = new OpenBaoClient({ address: old.address, token: old.rootToken, retries: 0 });
      const err = await expectCode(client.createNamespace('cloudtaser'), 'CT_OPENBAO_NAMESPACES_UNSUPPORTED');
      expect(err.message).toContain('namespaces need OpenBao >= 2.3 (found 2.2.2)');
      await expectCode(
        client.withNamespace('cloudtaser').kvWrite('secret', 'x', { a: 1 }),
        'CT_OPENBAO_NAMESPACES_UNSUPPORTED',
      );
      await client.close();
    } finally {
      await old.close();
    }
  });

  it('refuses hostile HTTP: oversized body 413, PATCH without merge-patch 415, unknown verb 405, outside /v1 404', async () => {
    const small = await startOpenBaoTestServer({ maxRequestBytes: 1024 });
    const t = { ...target, address: small.address, token: small.rootToken };
    try {
      expect(
        (await raw(t, 'POST', 'secret/data/big', { body: { data: { x: 'a'.repeat(4096) } } })).status,
      ).toBe(413);
      const patch = await raw(t, 'PATCH', 'secret/data/x', {
        body: { data: {} },
        headers: { 'content-type': 'application/json' },
      });
      expect(patch.status).toBe(415);
      expect(String((patch.json!.errors as string[])[0])).toMatch(
        /^PATCH requires Content-Type of application\/merge-patch\+json/,
      );
      expect((await raw(t, 'OPTIONS', 'secret/data/x')).status).toBe(405);
      const outside = await fetch(`${small.address}/v2/x`);
      expect(outside.status).toBe(404);
      expect(await outside.json()).toEqual({ errors: [] });
      const arrayBody = await raw(t, 'POST', 'secret/data/x', { body: '[1,2]' });
      expect(arrayBody.status).toBe(400);
      const deep = await raw(t, 'POST', '../../etc/passwd', { body: '{}' });
      expect([400, 403, 404]).toContain(deep.status);
    } finally {
      await small.close();
    }
  });

  it('records requests without bodies or tokens', async () => {
    const log = target.server!.requestLog();
    expect(log.length).toBeGreaterThan(10);
    const serialised = JSON.stringify(log);
    expect(serialised).not.toContain(target.token);
    expect(
      log.every((entry) => Object.keys(entry).sort().join() === 'clientAddress,method,namespace,path,status'),
    ).toBe(true);
    expect(
      log.filter((entry) => entry.path === '/v1/sys/health' && entry.namespace === '' && entry.status === 200)
        .length,
    ).toBeGreaterThan(0);
  });
});

// Skipped against a real OpenBao: it cross-checks the test server's wire format with a second client; against a
// real OpenBao there is nothing to cross-check.
describe.skipIf(AGAINST_REAL_OPENBAO)('an independent client (node-vault) against the test server', () => {
  it('writes, reads and lists KV v2 and reads health through node-vault', async () => {
    const { default: nodeVault } = await import('node-vault');
    const vault = nodeVault({ apiVersion: 'v1', endpoint: target.address, token: target.token });
    await vault.write('secret/data/node-vault/a', { data: { from: 'node-vault' } });
    const read = await vault.read('secret/data/node-vault/a');
    expect(read.data.data).toEqual({ from: 'node-vault' });
    expect(read.data.metadata.version).toBe(1);
    const listed = await vault.list('secret/metadata/node-vault');
    expect(listed.data.keys).toEqual(['a']);
    const health = await vault.health();
    expect(health.sealed).toBe(false);
    const status = await vault.status();
    expect(status.sealed).toBe(false);
    await vault.addPolicy({ name: 'nv', rules: 'path "secret/data/nv/*" { capabilities = ["read"] }' });
    expect((await vault.getPolicy({ name: 'nv' })).rules).toContain('secret/data/nv/*');
    await expect(vault.read('secret/data/node-vault/missing')).rejects.toMatchObject({
      response: { statusCode: 404 },
    });
  });
});
