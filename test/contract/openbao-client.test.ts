/** Unit tests of the OpenBao client's error mapping, retry policy, timeouts, TLS and secrecy of the token. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CloudtaserError } from '../../runtime/core/index.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import {
  namespacesSupportedByVersion,
  OpenBaoClient,
  resolveSecretStoreAddress,
  resolveSecretStoreToken,
} from '../../runtime/openbao/index.js';
import { createCertificateAuthority, issueCertificate } from '../../runtime/pki/index.js';

const TOKEN = 's.SuperSecretTokenValue123456';

async function failure(promise: Promise<unknown>): Promise<CloudtaserError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(CloudtaserError);
    return err as CloudtaserError;
  }
  throw new Error('expected the call to fail');
}

/** Asserts the token appears nowhere a user or a log could see it. */
function expectNoToken(err: CloudtaserError, token = TOKEN): void {
  expect(err.message).not.toContain(token);
  expect(JSON.stringify(err.details)).not.toContain(token);
  expect(err.toLine()).not.toContain(token);
  expect(String(err.stack)).not.toContain(token);
}

let server: OpenBaoTestServer;
const clients: OpenBaoClient[] = [];
function client(options: Partial<ConstructorParameters<typeof OpenBaoClient>[0]> = {}): OpenBaoClient {
  const made = new OpenBaoClient({
    address: server.address,
    token: TOKEN,
    retries: 3,
    retryBaseDelayMs: 1,
    ...options,
  });
  clients.push(made);
  return made;
}

beforeAll(async () => {
  server = await startOpenBaoTestServer({ rootToken: TOKEN });
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});
afterAll(() => server.close());

const countRequests = (pattern: RegExp) => server.requestLog().filter((e) => pattern.test(e.path)).length;

describe('retry policy', () => {
  it('retries 503 sealed and then succeeds', async () => {
    await client().kvWrite('secret', 'retry/sealed', { a: 1 });
    const before = countRequests(/retry\/sealed/);
    server.injectFault({ pathPattern: /retry\/sealed/, sealed: true, times: 2 });
    expect((await client().kvRead('secret', 'retry/sealed'))?.data).toEqual({ a: 1 });
    expect(countRequests(/retry\/sealed/) - before).toBe(3);
  });

  it('retries 500 and standby 503 but gives up after the configured retries', async () => {
    server.injectFault({ pathPattern: /retry\/five/, status: 500, times: 10 });
    const before = countRequests(/retry\/five/);
    const err = await failure(client({ retries: 2 }).kvRead('secret', 'retry/five'));
    expect(err.code).toBe('CT_OPENBAO_ERROR');
    expect(err.details.status).toBe(500);
    expect(countRequests(/retry\/five/) - before).toBe(3);
    server.injectFault({ pathPattern: /retry\/standby/, status: 503, times: 1 });
    await client().kvWrite('secret', 'retry/standby', { ok: true });
  });

  it('never retries 403 or 400', async () => {
    server.injectFault({ pathPattern: /retry\/denied/, status: 403, times: 5 });
    const before = countRequests(/retry\/denied/);
    expect((await failure(client().kvRead('secret', 'retry/denied'))).code).toBe(
      'CT_OPENBAO_PERMISSION_DENIED',
    );
    expect(countRequests(/retry\/denied/) - before).toBe(1);
    server.injectFault({ pathPattern: /retry\/bad/, status: 400, times: 5 });
    expect((await failure(client().kvRead('secret', 'retry/bad'))).code).toBe('CT_OPENBAO_BAD_REQUEST');
    expect(countRequests(/retry\/bad/) - before).toBe(1);
  });

  it('does not retry a lost check-and-set', async () => {
    await client().kvWrite('secret', 'retry/cas', { a: 1 }, { cas: 0 });
    const before = countRequests(/retry\/cas/);
    expect((await failure(client().kvWrite('secret', 'retry/cas', { a: 1 }, { cas: 0 }))).code).toBe(
      'CT_OPENBAO_CAS_MISMATCH',
    );
    expect(countRequests(/retry\/cas/) - before).toBe(1);
  });

  it('retries a connection reset once the server answers again', async () => {
    let calls = 0;
    const flaky = createServer((req, res) => {
      calls++;
      if (calls === 1) {
        (req.socket as Socket).destroy();
        return;
      }
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ data: { keys: ['a'] } }));
    });
    await new Promise<void>((resolve) => flaky.listen(0, '127.0.0.1', resolve));
    try {
      const address = `http://127.0.0.1:${(flaky.address() as AddressInfo).port}`;
      expect(await client({ address }).kvList('secret', 'x')).toEqual(['a']);
      expect(calls).toBe(2);
    } finally {
      flaky.close();
    }
  });
});

describe('error mapping', () => {
  it('maps a missing token to CT_OPENBAO_PERMISSION_DENIED naming the path but never the token', async () => {
    const err = await failure(client({ token: 'hvs.wrong-token-value' }).kvRead('secret', 'app/config'));
    expect(err.code).toBe('CT_OPENBAO_PERMISSION_DENIED');
    expect(err.message).toContain('secret/data/app/config');
    expect(err.message).toMatch(/missing, expired or revoked, or its policies do not allow/);
    expect(err.details).toMatchObject({
      status: 403,
      path: 'secret/data/app/config',
      address: server.address,
      namespace: '',
    });
    expectNoToken(err, 'hvs.wrong-token-value');
  });

  it('maps namespace not found, bad request and not found', async () => {
    const missing = await failure(client({ namespace: 'nope/deeper' }).kvRead('secret', 'x'));
    expect(missing.code).toBe('CT_OPENBAO_NAMESPACE_NOT_FOUND');
    expect(missing.details.namespace).toBe('nope/deeper');
    const bad = await failure(client().request('POST', 'secret/data/x', { body: {} }));
    expect(bad.code).toBe('CT_OPENBAO_BAD_REQUEST');
    expect(bad.message).toContain('no data provided');
    const notFound = await failure(client().request('GET', 'secret/metadata/never'));
    expect(notFound.code).toBe('CT_OPENBAO_NOT_FOUND');
    for (const err of [missing, bad, notFound]) expectNoToken(err);
  });

  it('maps a closed port to CT_OPENBAO_UNREACHABLE with the address and what to do', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const address = `http://127.0.0.1:${port}`;
    const err = await failure(client({ address }).kvRead('secret', 'x'));
    expect(err.code).toBe('CT_OPENBAO_UNREACHABLE');
    expect(err.message).toBe(
      `could not reach OpenBao at ${address}: ECONNREFUSED; check the address and that OpenBao is running`,
    );
    expectNoToken(err);
  });

  it('maps an unknown host to CT_OPENBAO_UNREACHABLE', async () => {
    const err = await failure(client({ address: 'http://openbao.invalid:8200', retries: 0 }).health());
    expect(err.code).toBe('CT_OPENBAO_UNREACHABLE');
  });

  it('times out against a slow server with CT_OPENBAO_TIMEOUT and does not retry it', async () => {
    server.injectFault({ pathPattern: /slow\/path/, delayMs: 400, times: 1 });
    const err = await failure(client({ timeoutMs: 100 }).kvRead('secret', 'slow/path'));
    expect(err.code).toBe('CT_OPENBAO_TIMEOUT');
    expect(err.details.timeoutMs).toBe(100);
    expectNoToken(err);
  });

  it('refuses a response that is too large or not JSON with CT_OPENBAO_BAD_RESPONSE', async () => {
    const hostile: Server = createServer((req, res) => {
      if (req.url?.includes('big')) res.writeHead(200).end('x'.repeat(200_000));
      else res.writeHead(200, { 'content-type': 'text/html' }).end('<html>login portal</html>');
    });
    await new Promise<void>((resolve) => hostile.listen(0, '127.0.0.1', resolve));
    try {
      const address = `http://127.0.0.1:${(hostile.address() as AddressInfo).port}`;
      const big = await failure(client({ address, maxResponseBytes: 1024 }).request('GET', 'big'));
      expect(big.code).toBe('CT_OPENBAO_BAD_RESPONSE');
      const html = await failure(client({ address }).request('GET', 'secret/data/x'));
      expect(html.code).toBe('CT_OPENBAO_BAD_RESPONSE');
    } finally {
      hostile.close();
    }
  });

  it('refuses path traversal, bad namespaces and bad addresses before sending anything', async () => {
    const c = client();
    expect((await failure(c.kvRead('secret', '../sys/mounts'))).code).toBe('CT_INVALID_ARGUMENT');
    expect((await failure(c.readNamespace('a/b'))).code).toBe('CT_INVALID_ARGUMENT');
    expect((await failure(c.kvWrite('secret', '', {}))).code).toBe('CT_INVALID_ARGUMENT');
    expect(() => c.withNamespace('a/../b')).toThrowError(CloudtaserError);
    expect(() => new OpenBaoClient({ address: 'ftp://x' })).toThrowError(
      /must start with https:\/\/ or http:\/\//,
    );
    expect(() => new OpenBaoClient({ address: 'not a url' })).toThrowError(CloudtaserError);
  });

  it('treats namespace "root" and "" as the root and sends no header there', async () => {
    expect(client({ namespace: 'root' }).namespace).toBe('');
    expect(client({ namespace: '/cloudtaser/abc/' }).namespace).toBe('cloudtaser/abc');
  });
});

describe('TLS with a custom CA', () => {
  let tlsServer: OpenBaoTestServer;
  let caPem: string;
  beforeAll(async () => {
    const ca = createCertificateAuthority({ commonName: 'test OpenBao CA' });
    const leaf = issueCertificate(ca, {
      commonName: '127.0.0.1',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
      extKeyUsage: ['serverAuth'],
    });
    caPem = ca.certPem;
    tlsServer = await startOpenBaoTestServer({
      tls: { certPem: leaf.certPem, keyPem: leaf.keyPem! },
      rootToken: TOKEN,
    });
  });
  afterAll(() => tlsServer.close());

  it('talks HTTPS when given the CA that signed the server certificate', async () => {
    expect(tlsServer.address).toMatch(/^https:\/\//);
    const c = client({ address: tlsServer.address, caCertPem: caPem });
    await c.kvWrite('secret', 'tls/a', { ok: 1 });
    expect((await c.kvRead('secret', 'tls/a'))?.data).toEqual({ ok: 1 });
  });

  it('fails with CT_OPENBAO_TLS and the flag to pass when the CA is unknown', async () => {
    const err = await failure(client({ address: tlsServer.address, retries: 0 }).kvRead('secret', 'tls/a'));
    expect(err.code).toBe('CT_OPENBAO_TLS');
    expect(err.message).toContain('pass --secretstore-ca-cert');
    expectNoToken(err);
  });

  it('says to use http:// when an https:// address reaches a server without TLS, not to pass a CA', async () => {
    // An outside docs drill pointed https:// at the plain-HTTP dev OpenBao and was told to pass a CA.
    const plain = server.address.replace(/^http:/, 'https:');
    const err = await failure(client({ address: plain, retries: 0 }).kvRead('secret', 'tls/a'));
    expect(err.code).toBe('CT_OPENBAO_TLS');
    expect(err.message).toContain(`use ${server.address}`);
    expect(err.message).not.toContain('--secretstore-ca-cert');
  });
});

describe('namespace support detection', () => {
  it('knows which versions have namespaces', () => {
    expect(namespacesSupportedByVersion('2.3.1')).toBe(true);
    expect(namespacesSupportedByVersion('2.6.0')).toBe(true);
    expect(namespacesSupportedByVersion('v2.2.2')).toBe(false);
    expect(namespacesSupportedByVersion('1.15.2')).toBe(false);
    expect(namespacesSupportedByVersion('1.15.2+ent')).toBe(true);
    expect(namespacesSupportedByVersion('dev')).toBeUndefined();
  });

  it('checks once per connection, before the first namespaced request', async () => {
    const c = client({ namespace: 'nope' });
    const before = server.requestLog().filter((e) => e.path === '/v1/sys/health').length;
    await failure(c.kvRead('secret', 'a'));
    await failure(c.withNamespace('nope2').kvRead('secret', 'a'));
    expect(server.requestLog().filter((e) => e.path === '/v1/sys/health').length - before).toBe(1);
  });
});

describe('closing', () => {
  it('closes the shared pool once: every close(), from the client or a derived one, is the first one', async () => {
    const c = client();
    await c.kvWrite('secret', 'closing/a', { v: '1' });
    const first = c.close();
    expect(c.withToken('other').close()).toBe(first);
    expect(c.close()).toBe(first);
    await first;
    await expect(c.kvRead('secret', 'closing/a')).rejects.toMatchObject({ code: 'CT_INTERNAL' });
  });
});

describe('secret-store settings from flags and environment', () => {
  it('prefers the flag, then CLOUDTASER_*, then BAO_*, then VAULT_*', () => {
    const env = { VAULT_TOKEN: 'v', BAO_TOKEN: 'b', CLOUDTASER_SECRETSTORE_TOKEN: 'c' };
    expect(resolveSecretStoreToken('f', env)).toBe('f');
    expect(resolveSecretStoreToken(undefined, env)).toBe('c');
    expect(resolveSecretStoreToken('', { VAULT_TOKEN: 'v', BAO_TOKEN: 'b' })).toBe('b');
    expect(resolveSecretStoreToken(undefined, { VAULT_TOKEN: 'v' })).toBe('v');
    expect(resolveSecretStoreToken(undefined, {})).toBeUndefined();
    expect(resolveSecretStoreAddress(undefined, { BAO_ADDR: 'https://b', VAULT_ADDR: 'https://v' })).toBe(
      'https://b',
    );
    expect(resolveSecretStoreAddress(undefined, { CLOUDTASER_SECRETSTORE_ADDRESS: ' https://c ' })).toBe(
      'https://c',
    );
  });
});

describe('token characters', () => {
  it('refuses a token with a line break, a space or a non-ASCII character by saying so, never repeating the token', () => {
    for (const [token, what] of [
      [`${TOKEN}\nextra`, 'a line break'],
      [`${TOKEN} extra`, 'a space'],
      [`${TOKEN}é`, 'a non-ASCII or control character'],
    ] as const) {
      let error: unknown;
      try {
        new OpenBaoClient({ address: server.address, token });
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(CloudtaserError);
      expect((error as CloudtaserError).code).toBe('CT_INVALID_ARGUMENT');
      expect((error as Error).message).toContain(`the OpenBao token has ${what}`);
      expect((error as Error).message).not.toContain(TOKEN);
    }
  });
});
