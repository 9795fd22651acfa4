/** Unit tests of the dev-only OpenBao test server's pieces: ACL matching, policy parsing, custom HTTP verbs on the wire. */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilitiesOf, isAllowed, parsePolicy, type StoredPolicy } from '../../runtime/dev/openbao/acl.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { BaoError } from '../../runtime/dev/openbao/wire.js';

const policy = (text: string): StoredPolicy => ({
  name: 'p',
  text,
  rules: parsePolicy(text),
  version: 1,
  modified: 0,
});

describe('ACL policies', () => {
  // acl.go AllowOperation for a LIST of `x/`: the exact rule without the slash, then the non-exact rules on `x`
  // before those on `x/`; ACL.Capabilities (sys/capabilities-self) asks it as a LIST.
  it('decides a LIST of a path with a trailing slash on the path without it first, as upstream does', () => {
    const folder = policy('path "kv/metadata/clusters" { capabilities = ["list"] }');
    expect(isAllowed([folder], 'kv/metadata/clusters/', 'list')).toBe(true);
    expect(capabilitiesOf([folder], 'kv/metadata/clusters/')).toEqual(['list']);
    // The glob on `a/b` decides before the one on `a/b/`: a deny there is a deny (before: list).
    const globs = policy('path "a/b*" { capabilities = ["deny"] }\npath "a/b/*" { capabilities = ["list"] }');
    expect(isAllowed([globs], 'a/b/', 'list')).toBe(false);
    expect(capabilitiesOf([globs], 'a/b/')).toEqual(['deny']);
    expect(capabilitiesOf([globs], 'a/b/c')).toEqual(['list']);
  });

  it('matches exact paths, trailing * prefixes and + single segments', () => {
    const p = policy(`
      path "secret/data/exact" { capabilities = ["read"] }
      path "secret/data/app/*" { capabilities = ["read", "create"] }
      path "secret/data/+/shared" { capabilities = ["update"] }
    `);
    expect(isAllowed([p], 'secret/data/exact', 'read')).toBe(true);
    expect(isAllowed([p], 'secret/data/exact/more', 'read')).toBe(false);
    expect(isAllowed([p], 'secret/data/app/a/b', 'create')).toBe(true);
    expect(isAllowed([p], 'secret/data/app/a/b', 'delete')).toBe(false);
    expect(isAllowed([p], 'secret/data/team1/shared', 'update')).toBe(true);
    expect(isAllowed([p], 'secret/data/team1/x/shared', 'update')).toBe(false);
  });

  it('lets the most specific rule decide and deny win there', () => {
    const broad = policy('path "secret/*" { capabilities = ["read"] }');
    const narrow = policy('path "secret/data/locked" { capabilities = ["deny"] }');
    expect(isAllowed([broad, narrow], 'secret/data/open', 'read')).toBe(true);
    expect(isAllowed([broad, narrow], 'secret/data/locked', 'read')).toBe(false);
  });

  // The priority order of internal/vault/policy/acl.go (AllowOperation, CheckAllowedFromNonExactPaths).
  it('prefers an exact rule to any glob, and the longest prefix among prefix rules', () => {
    const p = policy(`
      path "secret/*" { capabilities = ["read"] }
      path "secret/data/*" { capabilities = ["deny"] }
      path "secret/data/open" { capabilities = ["read"] }
      path "secret/+/open2" { capabilities = ["deny"] }
    `);
    expect(isAllowed([p], 'secret/data/open', 'read')).toBe(true);
    expect(isAllowed([p], 'secret/data/closed', 'read')).toBe(false);
    expect(isAllowed([p], 'secret/metadata/x', 'read')).toBe(true);
  });

  it('ranks + rules as upstream: later first wildcard, then not a prefix, then fewer +, then longer', () => {
    const later = policy(
      'path "foo/+/bar" { capabilities = ["deny"] }\npath "foo/b*" { capabilities = ["read"] }',
    );
    expect(isAllowed([later], 'foo/bz/bar', 'read')).toBe(true);
    const exactBeatsPrefix = policy(
      'path "foo/+/bar" { capabilities = ["read"] }\npath "foo/+/ba*" { capabilities = ["deny"] }',
    );
    expect(isAllowed([exactBeatsPrefix], 'foo/x/bar', 'read')).toBe(true);
    expect(isAllowed([exactBeatsPrefix], 'foo/x/bat', 'read')).toBe(false);
    const fewer = policy(
      'path "a/+/+/d" { capabilities = ["deny"] }\npath "a/+/c/d" { capabilities = ["read"] }',
    );
    expect(isAllowed([fewer], 'a/b/c/d', 'read')).toBe(true);
    expect(isAllowed([fewer], 'a/b/x/d', 'read')).toBe(false);
    const longer = policy(
      'path "k/+/ab*" { capabilities = ["read"] }\npath "k/+/a*" { capabilities = ["deny"] }',
    );
    expect(isAllowed([longer], 'k/z/abc', 'read')).toBe(true);
  });

  it('matches + against exactly one segment, including a namespace name in a full path', () => {
    const p = policy('path "cloudtaser/+/secret/data/k8s/+/+" { capabilities = ["read"] }');
    expect(isAllowed([p], 'cloudtaser/ab12cd34/secret/data/k8s/ns/name', 'read')).toBe(true);
    expect(isAllowed([p], 'cloudtaser/ab12cd34/secret/data/k8s/ns', 'read')).toBe(false);
    expect(isAllowed([p], 'cloudtaser/ab12cd34/secret/data/k8s/ns/name/x', 'read')).toBe(false);
    expect(isAllowed([p], 'cloudtaser/a/b/secret/data/k8s/ns/name', 'read')).toBe(false);
    expect(isAllowed([p], 'cloudtaser/ab12cd34/secret/data/app/ns/name', 'read')).toBe(false);
  });

  it('lets LIST use a rule written without the trailing slash', () => {
    const p = policy(
      'path "kv/metadata/clusters" { capabilities = ["list"] }\npath "kv/metadata/+" { capabilities = ["list"] }',
    );
    expect(isAllowed([p], 'kv/metadata/clusters/', 'list')).toBe(true);
    expect(isAllowed([p], 'kv/metadata/other/', 'list')).toBe(true);
    expect(isAllowed([p], 'kv/metadata/clusters/', 'read')).toBe(false);
  });

  it('merges rules of the same path across policies, a deny leaving nothing else', () => {
    const a = policy('path "x/y" { capabilities = ["read"] }');
    const b = policy('path "x/y" { capabilities = ["update"] }');
    const c = policy('path "x/y" { capabilities = ["deny"] }');
    expect(isAllowed([a, b], 'x/y', 'update')).toBe(true);
    expect(isAllowed([a, b, c], 'x/y', 'read')).toBe(false);
    expect(isAllowed([c, a], 'x/y', 'read')).toBe(false);
  });

  it('accepts the JSON form and base64 HCL', () => {
    const json = policy('{"path":{"kv/data/a":{"capabilities":["read"]}}}');
    expect(isAllowed([json], 'kv/data/a', 'read')).toBe(true);
    const b64 = policy(Buffer.from('path "kv/data/b" { capabilities = ["read"] }').toString('base64'));
    expect(isAllowed([b64], 'kv/data/b', 'read')).toBe(true);
  });

  it.each([
    'path "x" { capabilities = ["fly"] }',
    'path "x" { capabilities = ["read"] ',
    'path "a/+*" { capabilities = ["read"] }',
    'secret "x" {}',
    'path "unterminated { }',
    'path "x" { capabilities = ["read"] } /* open comment',
  ])('refuses malformed policy %j with 400', (text) => {
    expect(() => parsePolicy(text)).toThrowError(BaoError);
  });
});

describe('test server over raw sockets', () => {
  let server: OpenBaoTestServer;
  beforeAll(async () => {
    server = await startOpenBaoTestServer({ rootToken: 'root-token-for-raw' });
  });
  afterAll(() => server.close());

  function rawHttp(payload: string): Promise<string> {
    const { hostname, port } = new URL(server.address);
    return new Promise((resolve, reject) => {
      const socket = connect(Number(port), hostname, () => socket.end(payload));
      let out = '';
      socket.on('data', (chunk) => {
        out += chunk.toString();
      });
      socket.on('end', () => resolve(out));
      socket.on('error', reject);
    });
  }

  it('serves the LIST verb pipelined right after a request with a JSON body', async () => {
    await fetch(`${server.address}/v1/secret/data/raw/a`, {
      method: 'POST',
      headers: { 'x-vault-token': 'root-token-for-raw' },
      body: JSON.stringify({ data: { a: 1 } }),
    });
    // Node runs pipelined requests concurrently (Go serves them one by one), so the first one only reads.
    const patch = JSON.stringify({ data: { b: 2 } });
    const answer = await rawHttp(
      `PATCH /v1/secret/data/raw/a HTTP/1.1\r\nHost: x\r\nX-Vault-Token: root-token-for-raw\r\nContent-Type: application/json\r\nContent-Length: ${patch.length}\r\n\r\n${patch}` +
        'LIST /v1/secret/metadata/raw HTTP/1.1\r\nHost: x\r\nX-Vault-Token: root-token-for-raw\r\nConnection: close\r\n\r\n',
    );
    expect(answer).toMatch(/^HTTP\/1.1 415/);
    expect(answer).toContain('HTTP/1.1 200');
    expect(answer).toContain('"keys":["a"]');
  });

  it('answers a malformed request line with 400 and stays up', async () => {
    const answer = await rawHttp('NOT HTTP AT ALL\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1.1 400/);
    const health = await fetch(`${server.address}/v1/sys/health`);
    expect(health.status).toBe(200);
  });

  it('refuses a policy with malformed HCL with 400 and keeps the old one', async () => {
    const put = (body: unknown) =>
      fetch(`${server.address}/v1/sys/policies/acl/p1`, {
        method: 'PUT',
        headers: { 'x-vault-token': 'root-token-for-raw' },
        body: JSON.stringify(body),
      });
    expect((await put({ policy: 'path "a" { capabilities = ["read"] }' })).status).toBe(204);
    const bad = await put({ policy: 'path "a" { capabilities = ["nope"] }' });
    expect(bad.status).toBe(400);
    const empty = await put({ policy: '' });
    expect(await empty.json()).toEqual({ errors: ["'policy' parameter not supplied or empty"] });
    const read = await fetch(`${server.address}/v1/sys/policies/acl/p1`, {
      headers: { 'x-vault-token': 'root-token-for-raw' },
    });
    expect(((await read.json()) as { data: { policy: string } }).data.policy).toContain('"read"');
  });
});
