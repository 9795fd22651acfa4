/** Unit tests of the dev-only OpenBao test server's pieces: ACL matching, policy parsing, custom HTTP verbs on the wire. */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAllowed, parsePolicy, type StoredPolicy } from '../../runtime/dev/openbao/acl.js';
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

  it('accepts the JSON form and base64 HCL', () => {
    const json = policy('{"path":{"kv/data/a":{"capabilities":["read"]}}}');
    expect(isAllowed([json], 'kv/data/a', 'read')).toBe(true);
    const b64 = policy(Buffer.from('path "kv/data/b" { capabilities = ["read"] }').toString('base64'));
    expect(isAllowed([b64], 'kv/data/b', 'read')).toBe(true);
  });

  it.each([
    'path "x" { capabilities = ["fly"] }',
    'path "x" { capabilities = ["read"] ',
    'path "a/*/b" { capabilities = ["read"] }',
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
