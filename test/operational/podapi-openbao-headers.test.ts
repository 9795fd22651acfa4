/**
 * What real clients send and read besides paths and bodies, through the whole pod path (pod API, beacon, bridge)
 * to an OpenBao test server whose bridge-facing node is an HA standby lagging the active node, compared with what
 * the same requests get from OpenBao directly. Each case names the client sequence or upstream source it follows.
 */
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NOT_ON_ALLOW_LIST } from '../../runtime/podapi/index.js';
import {
  APP_NAMESPACE,
  BOUND_SA,
  type OperationalStack,
  ROLE,
  SECRET_PATH,
  startOperationalStack,
} from './stack.js';

let stack: OperationalStack;
const WRITER_ROLE = 'writer';
/** How far the standby the bridge reads from is behind the active node. */
const LAG_MS = 1500;

beforeAll(async () => {
  stack = await startOperationalStack({ bridgeThroughStandby: { readLagMs: LAG_MS } });
  await stack.clusterAdmin.writePolicy(
    'writer',
    [
      'path "secret/data/rw/*" { capabilities = ["create", "read", "update"] }',
      'path "secret/metadata/rw/*" { capabilities = ["create", "read", "update", "list"] }',
    ].join('\n'),
  );
  await stack.clusterAdmin.writeKubernetesAuthRole('kubernetes', WRITER_ROLE, {
    boundServiceAccountNames: [BOUND_SA],
    boundServiceAccountNamespaces: [APP_NAMESPACE],
    policies: ['writer'],
    ttl: '1h',
  });
}, 60_000);
afterAll(async () => {
  await stack?.close();
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: Record<string, unknown> | undefined;
}

/** The Go API client's headers (api/client.go sets X-Vault-Request on every request). */
const goClient = (token?: string) => ({
  'x-vault-request': 'true',
  ...(token ? { 'x-vault-token': token } : {}),
});

async function send(
  via: 'pod' | 'direct',
  method: string,
  path: string,
  opts: { headers?: Record<string, string | string[]>; body?: string; agent?: Agent } = {},
): Promise<Answer> {
  const base = via === 'pod' ? stack.podApiUrl : stack.openbao.address;
  const response = await request(`${base}${path}`, {
    method: method as 'GET',
    headers: {
      ...(opts.headers ?? {}),
      // What the bridge adds; the pod API refuses any other namespace.
      ...(via === 'direct' && !path.startsWith('/v1/sys/')
        ? { 'x-vault-namespace': stack.cluster.namespace }
        : {}),
    },
    body: opts.body,
    dispatcher: opts.agent ?? (via === 'pod' ? stack.podAgent : undefined),
  });
  const text = await response.body.text();
  let json: Record<string, unknown> | undefined;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: response.statusCode, headers: response.headers, json };
}

async function login(via: 'pod' | 'direct', role: string): Promise<string> {
  const answer = await send(via, 'PUT', '/v1/auth/kubernetes/login', {
    headers: { ...goClient(), 'content-type': 'application/json' },
    body: JSON.stringify({ role, jwt: stack.podToken(BOUND_SA) }),
  });
  expect(answer.status).toBe(200);
  return (answer.json!.auth as { client_token: string }).client_token;
}

async function rootCall(method: 'POST' | 'DELETE', path: string, body?: unknown): Promise<void> {
  const response = await request(`${stack.openbao.address}/v1/${path}`, {
    method,
    headers: { 'x-vault-token': stack.openbao.rootToken, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  await response.body.text();
  expect(response.statusCode).toBeLessThan(300);
}

describe('read-your-writes (OpenBao internal/http/index.go; the Go client ReadYourWrites, External Secrets readYourWrites + forwardInconsistent)', () => {
  const write = (token: string, key: string, value: string) =>
    send('pod', 'PUT', `/v1/secret/data/rw/${key}`, {
      headers: { ...goClient(token), 'content-type': 'application/json' },
      body: JSON.stringify({ data: { value } }),
    });
  const read = (token: string, key: string, headers: Record<string, string | string[]> = {}) =>
    send('pod', 'GET', `/v1/secret/data/rw/${key}`, { headers: { ...goClient(token), ...headers } });
  const secretValue = (answer: Answer) =>
    ((answer.json?.data as { data?: { value?: string } } | undefined)?.data?.value ?? null) as string | null;

  it('a write answers X-Vault-Index; sent back with forward-active-node the next read sees the write at once', async () => {
    const token = await login('pod', WRITER_ROLE);
    await write(token, 'a', 'one');
    await new Promise((resolve) => setTimeout(resolve, LAG_MS + 200));
    const written = await write(token, 'a', 'two');
    expect(written.status).toBe(200);
    // Before: the pod got no index (the bridge dropped OpenBao's headers), so it had nothing to send back.
    const index = written.headers['x-vault-index'];
    expect(typeof index).toBe('string');
    // Without the index the lagging standby serves the old version: the test sees the lag it guards against.
    expect(secretValue(await read(token, 'a'))).toBe('one');
    const consistent = await read(token, 'a', {
      'x-vault-index': index as string,
      'x-vault-inconsistent': 'forward-active-node',
    });
    expect({ status: consistent.status, value: secretValue(consistent) }).toEqual({
      status: 200,
      value: 'two',
    });
  });

  it('with fail the standby answers 429 and Retry-After, which reach the pod; await-state then forward waits or forwards', async () => {
    const token = await login('pod', WRITER_ROLE);
    const written = await write(token, 'b', 'first');
    const index = written.headers['x-vault-index'] as string;
    const failed = await read(token, 'b', { 'x-vault-index': index, 'x-vault-inconsistent': 'fail' });
    expect({ status: failed.status, retryAfter: failed.headers['retry-after'] }).toEqual({
      status: 429,
      retryAfter: '1',
    });
    // Two separate header lines, in order, as the Go client sends them (comma-joined means something else).
    const awaited = await read(token, 'b', {
      'x-vault-index': index,
      'x-vault-inconsistent': ['await-state', 'forward-active-node'],
    });
    expect({ status: awaited.status, value: secretValue(awaited) }).toEqual({ status: 200, value: 'first' });
  });

  it('refuses what it cannot carry exactly: two index headers, a comma-joined or unknown policy (400, OpenBao not asked)', async () => {
    const token = await login('pod', WRITER_ROLE);
    const before = stack.openbao.requestLog().length;
    const refused: Array<Record<string, string | string[]>> = [
      { 'x-vault-index': ['a', 'b'] },
      { 'x-vault-inconsistent': 'await-state, fail' },
      { 'x-vault-inconsistent': 'sometimes' },
    ];
    for (const headers of refused) {
      const answer = await read(token, 'b', headers);
      expect({ headers, status: answer.status }).toEqual({ headers, status: 400 });
      expect(String((answer.json?.errors as string[] | undefined)?.[0])).toMatch(
        /X-Vault-(Index|Inconsistent)/,
      );
    }
    // Only the reads count: the bridge's own background requests (polls, token renewal) may land meanwhile.
    const reached = stack.openbao
      .requestLog()
      .slice(before)
      .filter((entry) => entry.path === '/v1/secret/data/rw/b');
    expect(reached).toEqual([]);
  });
});

describe('rate-limit quotas (openbao-ha-and-upstream-fidelity.md: 429 "rate limit quota exceeded")', () => {
  it('a quota 429 reaches the pod with the Retry-After and X-Ratelimit-* headers OpenBao sent', async () => {
    // internal/http/util.go rateLimitQuotaWrapping: with enable_rate_limit_response_headers the 429 carries
    // Retry-After and X-Ratelimit-{Limit,Remaining,Reset}; retrying clients wait exactly that long.
    await rootCall('POST', 'sys/quotas/config', { enable_rate_limit_response_headers: true });
    await rootCall('POST', 'sys/quotas/rate-limit/headers', {
      path: `${stack.cluster.namespace}/secret/data/app/`,
      rate: 1,
      interval: '30s',
    });
    try {
      const token = await login('pod', ROLE);
      const directAgent = new Agent({ localAddress: '127.0.0.3' });
      let direct: Answer;
      try {
        await send('direct', 'GET', `/v1/secret/data/${SECRET_PATH}`, {
          headers: goClient(token),
          agent: directAgent,
        });
        direct = await send('direct', 'GET', `/v1/secret/data/${SECRET_PATH}`, {
          headers: goClient(token),
          agent: directAgent,
        });
      } finally {
        await directAgent.close();
      }
      await send('pod', 'GET', `/v1/secret/data/${SECRET_PATH}`, { headers: goClient(token) });
      const pod = await send('pod', 'GET', `/v1/secret/data/${SECRET_PATH}`, { headers: goClient(token) });
      expect(direct.status).toBe(429);
      expect(direct.headers['retry-after']).toMatch(/^\d+$/);
      const quotaHeaders = (answer: Answer) => ({
        'retry-after': answer.headers['retry-after'],
        'x-ratelimit-limit': answer.headers['x-ratelimit-limit'],
      });
      expect({ status: pod.status, body: pod.json, ...quotaHeaders(pod) }).toEqual({
        status: 429,
        body: direct.json,
        ...quotaHeaders(direct),
      });
    } finally {
      await rootCall('DELETE', 'sys/quotas/rate-limit/headers');
      await rootCall('POST', 'sys/quotas/config', { enable_rate_limit_response_headers: false });
    }
  });
});

describe('requests the pod API does not carry say so, and the ones clients start with work', () => {
  it('External Secrets PushSecret metadata write: carried, answered as OpenBao answers it directly', async () => {
    // external-secrets providers/v1/vault/client_push.go: PUT secret/metadata/<key> {"custom_metadata":...} first.
    const token = await login('pod', WRITER_ROLE);
    const write = (via: 'direct' | 'pod', key: string) =>
      send(via, 'PUT', `/v1/secret/metadata/rw/${key}`, {
        headers: { ...goClient(token), 'content-type': 'application/json' },
        body: JSON.stringify({ custom_metadata: { 'managed-by': 'external-secrets' } }),
      });
    const direct = await write('direct', 'pushed-direct');
    expect(direct.status).toBe(204);
    // It was refused with 403 CT_PODAPI_NOT_ALLOWED, so every PushSecret failed at its first write.
    const pod = await write('pod', 'pushed');
    expect({ status: pod.status, body: pod.json }).toEqual({ status: 204, body: direct.json });
  });

  it("the KV mount's configuration: 403 with OpenBao's text, then CT_PODAPI_NOT_ALLOWED", async () => {
    const token = await login('pod', WRITER_ROLE);
    const pod = await send('pod', 'POST', '/v1/secret/config', {
      headers: { ...goClient(token), 'content-type': 'application/json' },
      body: JSON.stringify({ max_versions: 1 }),
    });
    expect({ status: pod.status, body: pod.json }).toEqual({
      status: 403,
      body: { errors: ['permission denied', NOT_ON_ALLOW_LIST] },
    });
  });

  it('`bao status` (GET sys/seal-status, no token) answers as OpenBao does', async () => {
    // command/status.go: client.Sys().SealStatus().
    const direct = await send('direct', 'GET', '/v1/sys/seal-status', { headers: goClient() });
    const pod = await send('pod', 'GET', '/v1/sys/seal-status', { headers: goClient() });
    expect(direct.status).toBe(200);
    expect({ status: pod.status, body: pod.json }).toEqual({ status: 200, body: direct.json });
    // With VAULT_NAMESPACE set: seal-status has its own handler upstream, which ignores the header (the pod API
    // answered 400 "operation unavailable in namespaces", as for sys/health, so `bao status` failed).
    for (const namespace of ['team-a', 'root']) {
      const headers = { ...goClient(), 'x-vault-namespace': namespace };
      const directNs = await send('direct', 'GET', '/v1/sys/seal-status', { headers });
      const podNs = await send('pod', 'GET', '/v1/sys/seal-status', { headers });
      expect(directNs.status).toBe(200);
      expect({ namespace, status: podNs.status, body: podNs.json }).toEqual({
        namespace,
        status: 200,
        body: directNs.json,
      });
    }
  });

  it('returns the X-Vault-Namespace the pod sent, unchanged, as OpenBao does (also on a refusal)', async () => {
    const token = await login('pod', ROLE);
    for (const namespace of ['root', stack.cluster.namespace]) {
      const pod = await send('pod', 'GET', `/v1/secret/data/${SECRET_PATH}`, {
        headers: { ...goClient(token), 'x-vault-namespace': namespace },
      });
      expect({ namespace, status: pod.status, echoed: pod.headers['x-vault-namespace'] }).toEqual({
        namespace,
        status: 200,
        echoed: namespace,
      });
    }
    // Directly, OpenBao echoes what it was sent (here the cluster namespace the bridge sends).
    const direct = await send('direct', 'GET', `/v1/secret/data/${SECRET_PATH}`, {
      headers: goClient(token),
    });
    expect(direct.headers['x-vault-namespace']).toBe(stack.cluster.namespace);
    const refused = await send('pod', 'GET', `/v1/secret/data/${SECRET_PATH}`, {
      headers: { ...goClient(token), 'x-vault-namespace': 'elsewhere' },
    });
    expect({ status: refused.status, echoed: refused.headers['x-vault-namespace'] }).toEqual({
      status: 403,
      echoed: 'elsewhere',
    });
    // Without the header, none comes back.
    const plain = await send('pod', 'GET', `/v1/secret/data/${SECRET_PATH}`, { headers: goClient(token) });
    expect(plain.headers['x-vault-namespace']).toBeUndefined();
  });

  it("hvac's sys.is_initialized() (GET sys/init, no token) answers as OpenBao does; a namespace header is refused as there", async () => {
    // internal/http/sys_init.go handleSysInitGet; an outside hvac drill got 403 CT_PODAPI_NOT_ALLOWED here.
    const direct = await send('direct', 'GET', '/v1/sys/init', { headers: goClient() });
    const pod = await send('pod', 'GET', '/v1/sys/init', { headers: goClient() });
    expect({ status: pod.status, body: pod.json }).toEqual({ status: 200, body: { initialized: true } });
    expect({ status: pod.status, body: pod.json }).toEqual({ status: direct.status, body: direct.json });
    // sys/init is on upstream's list of root-only APIs that refuse any namespace header (restrictedSysAPIsNonLogical).
    const headers = { ...goClient(), 'x-vault-namespace': 'root' };
    const directNs = await send('direct', 'GET', '/v1/sys/init', { headers });
    const podNs = await send('pod', 'GET', '/v1/sys/init', { headers });
    expect({ status: podNs.status, body: podNs.json }).toEqual({
      status: directNs.status,
      body: directNs.json,
    });
    expect(podNs.status).toBe(400);
    // Initialising is no pod's business: refused before OpenBao.
    expect((await send('pod', 'PUT', '/v1/sys/init', { headers: goClient() })).status).toBe(405);
  });

  it('OpenBao Agent sink with wrap_ttl (PUT sys/wrapping/wrap + X-Vault-Wrap-TTL) gets the wrapping 400, not a 403', async () => {
    // command/agentproxyshared/sink/sink.go wrapToken: Logical().Write("sys/wrapping/wrap") with X-Vault-Wrap-TTL.
    const token = await login('pod', ROLE);
    const answer = await send('pod', 'PUT', '/v1/sys/wrapping/wrap', {
      headers: { ...goClient(token), 'content-type': 'application/json', 'x-vault-wrap-ttl': '5m0s' },
      body: JSON.stringify({ token }),
    });
    expect(answer.status).toBe(400);
    expect(String((answer.json!.errors as string[])[0])).toMatch(/response wrapping is not available/);
  });

  it('a form-encoded login (curl --data role=..&jwt=..) works as it does directly', async () => {
    // internal/http/logical.go: a form Content-Type whose body does not start with { or [ is parsed as a form.
    const form = new URLSearchParams({ role: ROLE, jwt: stack.podToken(BOUND_SA) }).toString();
    const headers = { 'content-type': 'application/x-www-form-urlencoded' };
    const direct = await send('direct', 'POST', '/v1/auth/kubernetes/login', { headers, body: form });
    const pod = await send('pod', 'POST', '/v1/auth/kubernetes/login', { headers, body: form });
    expect(direct.status).toBe(200);
    expect(pod.status).toBe(200);
    expect((pod.json!.auth as { policies: string[] }).policies).toEqual(
      (direct.json!.auth as { policies: string[] }).policies,
    );
  });
});

describe('paginated LIST (path_metadata.go `after` and `limit`; the Go client Logical().ListPage)', () => {
  it('pages through the pod API as OpenBao pages directly: the same keys, the same end of list, the same 400', async () => {
    const token = await login('pod', WRITER_ROLE);
    for (const key of ['a', 'b', 'c', 'd', 'sub/x'])
      expect(
        (
          await send('pod', 'PUT', `/v1/secret/data/rw/page/${key}`, {
            headers: { ...goClient(token), 'content-type': 'application/json' },
            body: JSON.stringify({ data: { value: key } }),
          })
        ).status,
      ).toBe(200);
    // The standby the bridge reads from lags the active node.
    await new Promise((resolve) => setTimeout(resolve, LAG_MS + 200));
    const keysOf = (answer: Answer) => (answer.json?.data as { keys?: string[] } | undefined)?.keys;
    const pages: Array<[string, string]> = [
      ['LIST', '/v1/secret/metadata/rw/page?limit=2'],
      ['LIST', '/v1/secret/metadata/rw/page?after=b&limit=2'],
      ['GET', '/v1/secret/metadata/rw/page?list=true&after=d&limit=5'],
      ['LIST', '/v1/secret/metadata/rw/page?after=sub%2F'],
      ['LIST', '/v1/secret/metadata/rw/page?limit=two'],
    ];
    const seen: Array<{ path: string; status: number; keys?: string[] }> = [];
    for (const [method, path] of pages) {
      const direct = await send('direct', method, path, { headers: goClient(token) });
      const pod = await send('pod', method, path, { headers: goClient(token) });
      const withoutId = ({ request_id: _id, ...rest }: Record<string, unknown> = {}) => rest;
      expect({ path, status: pod.status, body: withoutId(pod.json) }).toEqual({
        path,
        status: direct.status,
        body: withoutId(direct.json),
      });
      seen.push({ path, status: pod.status, keys: keysOf(pod) });
    }
    // Before: `after` and `limit` were dropped, and every page was the whole list (a paging loop never ended).
    expect(seen.map((page) => [page.status, page.keys])).toEqual([
      [200, ['a', 'b']],
      [200, ['c', 'd']],
      [200, ['sub/']],
      [404, undefined],
      [400, undefined],
    ]);
  });
});
