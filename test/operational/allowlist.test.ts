import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkConsistencyHeaders, checkWrapping } from '../../runtime/podapi/allowlist.js';
import {
  checkPodRequest,
  createRequestGate,
  isRefusal,
  NOT_ON_ALLOW_LIST,
} from '../../runtime/podapi/index.js';

describe('pod API allow-list', () => {
  it.each([
    ['POST', '/v1/auth/kubernetes/login', 'kubernetes-login', 'auth/kubernetes/login', ''],
    ['PUT', '/v1/auth/kubernetes/login', 'kubernetes-login', 'auth/kubernetes/login', ''],
    ['GET', '/v1/secret/data/app/db', 'kv-read', 'secret/data/app/db', ''],
    ['GET', '/v1/secret/data/app/db?version=3&wrap=1', 'kv-read', 'secret/data/app/db', 'version=3'],
    ['POST', '/v1/secret/data/app/db', 'kv-write', 'secret/data/app/db', ''],
    ['PATCH', '/v1/secret/data/app/db', 'kv-write', 'secret/data/app/db', ''],
    ['GET', '/v1/secret/metadata/app/db', 'kv-metadata-read', 'secret/metadata/app/db', ''],
    ['GET', '/v1/secret/metadata/app/?list=true', 'kv-list', 'secret/metadata/app', 'list=true'],
    ['GET', '/v1/auth/token/lookup-self', 'token-lookup-self', 'auth/token/lookup-self', ''],
    ['POST', '/v1/auth/token/renew-self', 'token-renew-self', 'auth/token/renew-self', ''],
    ['POST', '/v1/auth/token/revoke-self', 'token-revoke-self', 'auth/token/revoke-self', ''],
    ['GET', '/v1/sys/internal/ui/mounts/secret', 'kv-mount-info', 'sys/internal/ui/mounts/secret', ''],
    [
      'GET',
      '/v1/sys/internal/ui/mounts/secret/app/db?x=1',
      'kv-mount-info',
      'sys/internal/ui/mounts/secret/app/db',
      '',
    ],
    ['GET', '/v1/secret/metadata/app?list=1', 'kv-list', 'secret/metadata/app', 'list=true'],
    [
      'GET',
      '/v1/sys/health?standbyok=true&bogus=1&sealedcode=299',
      'sys-health',
      'sys/health',
      'standbyok=true&sealedcode=299',
    ],
    ['HEAD', '/v1/sys/health', 'sys-health', 'sys/health', ''],
    ['GET', '/v1/secret/data/a%20b/c', 'kv-read', 'secret/data/a%20b/c', ''],
    // The rest of the KV v2 secret API: `bao kv delete|undelete|destroy|metadata ...`, External Secrets' PushSecret.
    ['DELETE', '/v1/secret/data/app/db', 'kv-delete', 'secret/data/app/db', ''],
    ['POST', '/v1/secret/metadata/app/db', 'kv-metadata-write', 'secret/metadata/app/db', ''],
    ['PUT', '/v1/secret/metadata/app/db', 'kv-metadata-write', 'secret/metadata/app/db', ''],
    ['PATCH', '/v1/secret/metadata/app/db', 'kv-metadata-write', 'secret/metadata/app/db', ''],
    ['DELETE', '/v1/secret/metadata/app/db', 'kv-metadata-delete', 'secret/metadata/app/db', ''],
    ['POST', '/v1/secret/delete/app/db', 'kv-versions', 'secret/delete/app/db', ''],
    ['PUT', '/v1/secret/undelete/app/db', 'kv-versions', 'secret/undelete/app/db', ''],
    ['POST', '/v1/secret/destroy/app/db', 'kv-versions', 'secret/destroy/app/db', ''],
  ])('allows %s %s', (method, path, route, forwarded, query) => {
    const result = checkPodRequest(method, path);
    expect(isRefusal(result)).toBe(false);
    expect(result).toMatchObject({ route, path: forwarded, query });
  });

  it.each([
    ['GET', '/v1/sys/mounts'],
    ['POST', '/v1/sys/policies/acl/x'],
    ['GET', '/v1/secret/data/../../sys/mounts'],
    ['GET', '/v1/secret/data/%2e%2e/x'],
    ['GET', '/v1/secret/data/a%2fb'],
    ['GET', '/v1/secret/data/a%5cb'],
    ['GET', '/v1/secret/data/a%00b'],
    ['GET', '/v1/secret/data//x'],
    ['GET', '/v1/secret/data/%zz'],
    // The mount's configuration, the mount itself, and version operations without a secret path.
    ['POST', '/v1/secret/config'],
    ['GET', '/v1/secret/config'],
    ['DELETE', '/v1/sys/mounts/secret'],
    ['DELETE', '/v1/secret/metadata'],
    ['POST', '/v1/secret/destroy'],
    ['GET', '/v1/secret/destroy/app/db'],
    ['DELETE', '/v1/secret/undelete/app/db'],
    ['GET', '/v1/secret/data'],
    ['GET', '/v1/other/data/x'],
    ['POST', '/v1/auth/token/create'],
    ['GET', '/v1/auth/approle/login'],
    ['GET', '/v1/cloudtaser/abcd1234/secret/data/x'],
    ['GET', `/v1/secret/data/${'a/'.repeat(70)}x`],
    ['GET', '/v1/sys/internal/ui/mounts/cloudtaser'],
    ['GET', '/v1/sys/internal/ui/mounts'],
    ['GET', '/v1/sys/internal/ui/mounts/secret?list=true'],
    ['POST', '/v1/sys/internal/ui/mounts/secret'],
    ['GET', '/v1/secret/metadata/app?scan=true'],
    ['HEAD', '/v1/secret/data/app/db'],
  ])('refuses %s %s with 403 permission denied', (method, path) => {
    expect(checkPodRequest(method, path)).toEqual({
      status: 403,
      errors: ['permission denied', NOT_ON_ALLOW_LIST],
    });
  });

  it("keeps a trailing slash as OpenBao reads it: writes refused with OpenBao's 400, reads and deletes sent as written", () => {
    // Before: the slash was dropped for every verb, so a write to app/db/ replaced app/db and a read of app/db/
    // answered app/db (OpenBao: 400 and 404).
    for (const [method, path] of [
      ['POST', '/v1/secret/data/app/db/'],
      ['PUT', '/v1/secret/data/app/db/'],
      ['PATCH', '/v1/secret/data/app/db/'],
      ['POST', '/v1/secret/metadata/app/db/'],
      ['PUT', '/v1/secret/undelete/app/db/'],
    ])
      expect(checkPodRequest(method, path), `${method} ${path}`).toEqual({
        status: 400,
        errors: ["cannot write to a path ending in '/'"],
      });
    expect(checkPodRequest('GET', '/v1/secret/data/app/db/')).toMatchObject({ path: 'secret/data/app/db/' });
    expect(checkPodRequest('DELETE', '/v1/secret/data/app/db/')).toMatchObject({
      path: 'secret/data/app/db/',
    });
    // A LIST's folder is the same with or without it.
    expect(checkPodRequest('LIST', '/v1/secret/metadata/app/')).toMatchObject({
      path: 'secret/metadata/app',
    });
  });

  it('answers non-/v1 paths with a plain 404 and GET login with 405', () => {
    expect(checkPodRequest('GET', '/ui/')).toEqual({ status: 404, errors: [] });
    // A near miss of /v1/ says so (it was a bare 404 too).
    for (const path of ['/V1/secret/data/app', '//v1/sys/mounts', '/v1'])
      expect(checkPodRequest('GET', path)).toEqual({
        status: 404,
        errors: [expect.stringMatching(/^CT_PODAPI_NOT_ALLOWED: the API is under \/v1\/ exactly/)],
      });
    expect(checkPodRequest('GET', '/v1/auth/kubernetes/login')).toMatchObject({ status: 405 });
  });

  it('never forwards a path that leaves the secret mount or the allowed auth paths, whatever the input', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'),
        fc.string({ maxLength: 80 }),
        (m, tail) => {
          const result = checkPodRequest(m, `/v1/${tail}`);
          if (isRefusal(result)) return;
          // At most one trailing slash, kept only where OpenBao reads it as written (a read or a delete).
          const path = result.path.endsWith('/') ? result.path.slice(0, -1) : result.path;
          if (path !== result.path) expect(['GET', 'HEAD', 'DELETE']).toContain(result.method);
          const segments = path.split('/').map(decodeURIComponent);
          expect(segments.every((s) => s !== '' && s !== '.' && s !== '..' && !s.includes('/'))).toBe(true);
          expect(
            /^secret\/(data|metadata|delete|undelete|destroy)\//.test(path) ||
              path === 'secret/metadata' ||
              [
                'auth/kubernetes/login',
                'auth/token/lookup-self',
                'auth/token/renew-self',
                'auth/token/revoke-self',
                'sys/health',
                'sys/seal-status',
                'sys/init',
                'sys/leader',
              ].includes(path) ||
              /^sys\/internal\/ui\/mounts\/secret(\/|$)/.test(path),
          ).toBe(true);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('request gate', () => {
  it('keeps at most maxInFlight running, queues the rest in order, and refuses beyond maxWaiting', async () => {
    const gate = createRequestGate({ maxInFlight: 2, maxWaiting: 3 });
    let running = 0;
    let peak = 0;
    const order: number[] = [];
    const releases: Array<() => void> = [];
    const job = (n: number) =>
      gate.run(async () => {
        running++;
        peak = Math.max(peak, running);
        order.push(n);
        await new Promise<void>((r) => releases.push(r));
        running--;
        return n;
      });
    const jobs = [1, 2, 3, 4, 5].map(job);
    await expect(job(6)).rejects.toMatchObject({ code: 'CT_TUNNEL_PROTOCOL' });
    while (releases.length > 0 || order.length < 5) {
      await new Promise((r) => setTimeout(r, 1));
      releases.shift()?.();
    }
    expect(await Promise.all(jobs)).toEqual([1, 2, 3, 4, 5]);
    expect(peak).toBe(2);
    expect(order).toEqual([1, 2, 3, 4, 5]);
  });

  it('drops a waiter whose request was cancelled', async () => {
    const gate = createRequestGate({ maxInFlight: 1, maxWaiting: 5 });
    let release!: () => void;
    const first = gate.run(() => new Promise<void>((r) => (release = r)));
    const cancel = new AbortController();
    const second = gate.run(async () => 'ran', cancel.signal);
    cancel.abort();
    await expect(second).rejects.toMatchObject({ code: 'CT_CANCELLED' });
    expect(gate.waiting).toBe(0);
    release();
    await first;
    expect(gate.inFlight).toBe(0);
  });

  it('serves waiters in turn by key, so one pod queuing many requests delays another pod by one turn only', async () => {
    const gate = createRequestGate({ maxInFlight: 1, maxWaiting: 100 });
    const order: string[] = [];
    const releases: Array<() => void> = [];
    const job = (key: string, n: number) =>
      gate.run(
        async () => {
          order.push(`${key}${n}`);
          await new Promise<void>((r) => releases.push(r));
        },
        undefined,
        key,
      );
    const all = [
      job('a', 0),
      ...[1, 2, 3, 4, 5].map((n) => job('a', n)),
      job('b', 1),
      job('b', 2),
      job('a', 6),
    ];
    while (order.length < 9 || releases.length > 0) {
      await new Promise((r) => setTimeout(r, 1));
      releases.shift()?.();
    }
    await Promise.all(all);
    // Before: first come, first served (b waited behind all of a's).
    expect(order).toEqual(['a0', 'a1', 'b1', 'a2', 'b2', 'a3', 'a4', 'a5', 'a6']);
    expect(gate.waiting).toBe(0);
    expect(gate.inFlight).toBe(0);
  });
});

describe('headers the pod API carries or refuses', () => {
  it('carries one X-Vault-Index and up to two known policies (joined for the tunnel head), refuses the rest', () => {
    expect(checkConsistencyHeaders(['eyJhIjoxfQ=='], ['await-state', 'forward-active-node'])).toEqual({
      carried: { 'x-vault-index': 'eyJhIjoxfQ==', 'x-vault-inconsistent': 'await-state,forward-active-node' },
    });
    expect(checkConsistencyHeaders(undefined, undefined)).toEqual({ carried: {} });
    for (const [index, policies] of [
      [['a', 'b'], undefined],
      [['x'.repeat(4097)], undefined],
      [['has space'], undefined],
      [undefined, ['await-state, fail']],
      [undefined, ['fail', 'fail', 'fail']],
      [undefined, ['FAIL']],
    ] as const) {
      expect(checkConsistencyHeaders(index, policies)).toMatchObject({ status: 400 });
    }
  });

  it('passes the version a KV read asks for, and refuses one that is not a number instead of reading the latest', () => {
    // Before, a version that was not 1 to 9 digits was dropped: the pod got the latest version with a 200.
    expect(checkPodRequest('GET', '/v1/secret/data/app/db?version=10000000000')).toMatchObject({
      route: 'kv-read',
      query: 'version=10000000000',
    });
    for (const version of ['abc', '-1', '1.5', '1e3', ' 2', '0x10', '1'.repeat(21)])
      expect(
        checkPodRequest('GET', `/v1/secret/data/app/db?version=${encodeURIComponent(version)}`),
        version,
      ).toEqual({ status: 400, errors: ['error converting input for field "version"'] });
    expect(checkPodRequest('GET', '/v1/secret/data/app/db?version=')).toMatchObject({
      route: 'kv-read',
      query: '',
    });
  });

  it('refuses wrapping with a 400 on any path, sys/wrapping/wrap included', () => {
    expect(checkWrapping(undefined)).toBeUndefined();
    expect(checkWrapping('5m0s')).toMatchObject({ status: 400 });
    expect(checkPodRequest('PUT', '/v1/sys/wrapping/wrap')).toMatchObject({ status: 403 });
  });

  it('serves sys/seal-status to GET only, without a token, like sys/health', () => {
    expect(checkPodRequest('GET', '/v1/sys/seal-status')).toMatchObject({
      route: 'sys-seal-status',
      method: 'GET',
    });
    expect(checkPodRequest('PUT', '/v1/sys/seal-status')).toEqual({ status: 405, errors: [] });
  });
});
