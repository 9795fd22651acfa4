/**
 * The clients pods already run, against the pod API (broker, beacon, bridge, OpenBao test server). Each case
 * replays the exact request sequence of one client, method, path, query and the headers it sends, and names the
 * upstream file it follows. node-vault (a dev dependency) runs for real; the others are replayed request by request.
 */
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createOpenBaoForwarder,
  OPENBAO_TUNNEL_PREFIX,
  startPodApiServer,
} from '../../runtime/podapi/index.js';
import {
  APP_NAMESPACE,
  BOUND_SA,
  type OperationalStack,
  ROLE,
  SECRET_PATH,
  SECRET_VALUE,
  startOperationalStack,
} from './stack.js';

let stack: OperationalStack;
/** A role bound to the same pod whose token may do nothing under secret/. */
const NO_ACCESS_ROLE = 'no-secrets';

beforeAll(async () => {
  stack = await startOperationalStack();
  await stack.clusterAdmin.writeKubernetesAuthRole('kubernetes', NO_ACCESS_ROLE, {
    boundServiceAccountNames: [BOUND_SA],
    boundServiceAccountNamespaces: [APP_NAMESPACE],
    policies: [],
    ttl: '1h',
  });
}, 60_000);
afterAll(async () => {
  await stack?.close();
});

interface Answer {
  readonly status: number;
  readonly text: string;
  readonly json: Record<string, unknown> | undefined;
}

/** One request exactly as a client sends it. */
async function send(
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: string; agent?: Agent; base?: string } = {},
): Promise<Answer> {
  const response = await request(`${options.base ?? stack.podApiUrl}${path}`, {
    method: method as 'GET',
    dispatcher: options.agent ?? stack.podAgent,
    headers: options.headers,
    body: options.body,
  });
  const text = await response.body.text();
  let json: Record<string, unknown> | undefined;
  try {
    json = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
  } catch {
    json = undefined;
  }
  return { status: response.statusCode, text, json };
}

/** What the Go API client (bao/vault CLI, consul-template, Vault Agent, External Secrets) sends on every call. */
const goClient = (token?: string) => ({
  'user-agent': 'OpenBao/v2.5.5 (+https://openbao.org; go1.24)',
  'x-vault-request': 'true',
  ...(token ? { 'x-vault-token': token } : {}),
});

/** hvac's requests session (hvac/adapters.py): token and X-Vault-Request on every call. */
const hvac = (token?: string) => ({
  'user-agent': 'python-requests/2.32.3',
  'x-vault-request': 'true',
  ...(token ? { 'x-vault-token': token } : {}),
});

async function loginAs(role: string, headers: Record<string, string>, method = 'PUT'): Promise<string> {
  const answer = await send(method, '/v1/auth/kubernetes/login', {
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ jwt: stack.podToken(BOUND_SA), role }),
  });
  expect(answer.status).toBe(200);
  return (answer.json!.auth as { client_token: string }).client_token;
}

function kvMountInfo(answer: Answer) {
  expect(answer.status).toBe(200);
  return answer.json!.data as { path: string; type: string; options: { version: string } };
}

describe('the bao/vault CLI (kv get, kv list, kv metadata get)', () => {
  // openbao command/kv_get.go, kv_list.go, kv_metadata_get.go; each first calls kvPreflightVersionRequest
  // (command/kv_helpers.go): GET sys/internal/ui/mounts/<path>, fatal unless 200 (or 404 = KV v1).
  let token: string;
  beforeAll(async () => {
    token = await loginAs(ROLE, goClient());
  });

  it('`bao kv get -mount=secret app/db`: preflight on the mount, then GET secret/data/app/db', async () => {
    const preflight = kvMountInfo(
      await send('GET', '/v1/sys/internal/ui/mounts/secret', { headers: goClient(token) }),
    );
    expect(preflight).toMatchObject({ path: 'secret/', type: 'kv', options: { version: '2' } });
    // addPrefixToKVPath(mount "secret/", "data") then Logical().ReadWithDataWithContext (api/logical.go).
    const read = await send('GET', `/v1/secret/data/${SECRET_PATH}`, { headers: goClient(token) });
    expect(read.status).toBe(200);
    expect((read.json!.data as { data: { password: string } }).data.password).toBe(SECRET_VALUE);
  });

  it('`bao kv get secret/app/db`: preflight on the full path, then the data path', async () => {
    const preflight = kvMountInfo(
      await send('GET', `/v1/sys/internal/ui/mounts/secret/${SECRET_PATH}`, { headers: goClient(token) }),
    );
    expect(preflight.path).toBe('secret/');
    const read = await send('GET', `/v1/secret/data/${SECRET_PATH}?version=1`, { headers: goClient(token) });
    expect(read.status).toBe(200);
  });

  it('`bao kv list secret/app`: preflight, then GET secret/metadata/app?list=true (Logical().List)', async () => {
    kvMountInfo(await send('GET', '/v1/sys/internal/ui/mounts/secret/app', { headers: goClient(token) }));
    // api/logical.go ListWithContext: method LIST turned into GET with list=true for proxies.
    const list = await send('GET', '/v1/secret/metadata/app?list=true', { headers: goClient(token) });
    expect(list.status).toBe(200);
    expect((list.json!.data as { keys: string[] }).keys).toEqual(['db']);
  });

  it('`bao kv metadata get secret/app/db`: preflight, then GET secret/metadata/app/db', async () => {
    kvMountInfo(
      await send('GET', `/v1/sys/internal/ui/mounts/secret/${SECRET_PATH}`, { headers: goClient(token) }),
    );
    const metadata = await send('GET', `/v1/secret/metadata/${SECRET_PATH}`, { headers: goClient(token) });
    expect(metadata.status).toBe(200);
    expect(metadata.json!.data).toMatchObject({ current_version: 1 });
  });

  it('answers the preflight with 403 (as OpenBao does) for a token that may do nothing under secret/, and for no token', async () => {
    const powerless = await loginAs(NO_ACCESS_ROLE, goClient());
    const denied = await send('GET', `/v1/sys/internal/ui/mounts/secret/${SECRET_PATH}`, {
      headers: goClient(powerless),
    });
    expect(denied.status).toBe(403);
    expect(String((denied.json!.errors as string[])[0])).toContain('preflight capability check returned 403');
    const anonymous = await send('GET', '/v1/sys/internal/ui/mounts/secret', { headers: goClient() });
    expect(anonymous.status).toBe(403);
  });

  it('keeps the preflight to the secret/ mount: other mounts are refused before OpenBao', async () => {
    const before = stack.openbao.requestLog().length;
    for (const path of ['cloudtaser', 'sys', 'auth/kubernetes', 'cubbyhole', 'secretx/a', 'secret/../sys']) {
      const answer = await send('GET', `/v1/sys/internal/ui/mounts/${path}`, { headers: goClient(token) });
      expect({ path, status: answer.status }).toEqual({ path, status: 403 });
    }
    const reached = stack.openbao
      .requestLog()
      .slice(before)
      .filter((entry) => entry.path.includes('internal/ui'));
    expect(reached).toEqual([]);
  });
});

describe('consul-template (Vault/OpenBao Agent templates)', () => {
  it('{{ with secret "secret/app/db" }}: Agent login, isKVv2 preflight, the data read, then renew-self', async () => {
    // Agent auto-auth: api/auth/kubernetes/kubernetes.go Login -> Logical().WriteWithContext = PUT.
    const token = await loginAs(ROLE, goClient());
    // consul-template dependency/vault_common.go isKVv2: GET sys/internal/ui/mounts/<raw path>.
    const preflight = kvMountInfo(
      await send('GET', `/v1/sys/internal/ui/mounts/secret/${SECRET_PATH}`, { headers: goClient(token) }),
    );
    expect(preflight.options.version).toBe('2');
    // dependency/vault_read.go readSecret with shimKVv2Path("secret/app/db", "secret/") = secret/data/app/db.
    const read = await send('GET', `/v1/secret/data/${SECRET_PATH}`, { headers: goClient(token) });
    expect((read.json!.data as { data: { password: string } }).data.password).toBe(SECRET_VALUE);
    // api/lifetime_watcher.go renews with Auth().Token().RenewSelfWithContext: PUT with an increment.
    const renew = await send('PUT', '/v1/auth/token/renew-self', {
      headers: { ...goClient(token), 'content-type': 'application/json' },
      body: JSON.stringify({ increment: 3600 }),
    });
    expect(renew.status).toBe(200);
  });

  it('{{ with secret "secret/data/app/db" }}: the preflight on a data/ path still names the secret/ mount', async () => {
    const token = await loginAs(ROLE, goClient());
    const preflight = kvMountInfo(
      await send('GET', `/v1/sys/internal/ui/mounts/secret/data/${SECRET_PATH}`, {
        headers: goClient(token),
      }),
    );
    expect(preflight.path).toBe('secret/');
  });
});

describe('External Secrets Operator (SecretStore provider vault, version v2)', () => {
  // external-secrets pkg/provider/vault: auth_kubernetes.go (login through the Go client, PUT),
  // client.go checkToken (GET lookup-self) and revokeTokenIfValid (PUT revoke-self), client_get.go readSecret
  // (no preflight for version v2: GET <mount>/data/<key>, ?version= when the ExternalSecret names one).
  it('logs in, checks its token, reads a version, and revokes the token', async () => {
    const token = await loginAs(ROLE, goClient());
    const self = await send('GET', '/v1/auth/token/lookup-self', { headers: goClient(token) });
    expect(self.status).toBe(200);
    expect((self.json!.data as { policies: string[] }).policies).toContain('app-read');
    const read = await send('GET', `/v1/secret/data/${SECRET_PATH}?version=1`, { headers: goClient(token) });
    expect((read.json!.data as { data: { user: string } }).data.user).toBe('app');
    const revoke = await send('PUT', '/v1/auth/token/revoke-self', { headers: goClient(token) });
    expect(revoke.status).toBe(204);
    expect((await send('GET', '/v1/auth/token/lookup-self', { headers: goClient(token) })).status).toBe(403);
  });

  it('dataFrom find: lists the metadata tree with ?list=true and reads each key', async () => {
    const token = await loginAs(ROLE, goClient());
    const list = await send('GET', '/v1/secret/metadata/app/?list=true', { headers: goClient(token) });
    expect((list.json!.data as { keys: string[] }).keys).toEqual(['db']);
    const metadata = await send('GET', '/v1/secret/metadata/app/db', { headers: goClient(token) });
    expect(metadata.status).toBe(200);
  });
});

describe('hvac (Python)', () => {
  it('logs in (POST), checks is_authenticated, reads, lists with the LIST verb, reads metadata, and checks health with HEAD', async () => {
    // hvac/api/auth_methods/kubernetes.py login: POST auth/kubernetes/login {"role","jwt"}.
    const token = await loginAs(ROLE, hvac(), 'POST');
    // hvac/v1/__init__.py is_authenticated -> lookup_token: GET auth/token/lookup-self.
    expect((await send('GET', '/v1/auth/token/lookup-self', { headers: hvac(token) })).status).toBe(200);
    // hvac/api/secrets_engines/kv_v2.py read_secret_version: GET <mount>/data/<path> (no preflight).
    const read = await send('GET', `/v1/secret/data/${SECRET_PATH}`, { headers: hvac(token) });
    expect((read.json!.data as { data: { password: string } }).data.password).toBe(SECRET_VALUE);
    // kv_v2.py list_secrets -> adapter.list: the HTTP method LIST (hvac/adapters.py).
    const list = await send('LIST', '/v1/secret/metadata/app', { headers: hvac(token) });
    expect(list.status).toBe(200);
    expect((list.json!.data as { keys: string[] }).keys).toEqual(['db']);
    // kv_v2.py read_secret_metadata: GET <mount>/metadata/<path>.
    expect((await send('GET', `/v1/secret/metadata/${SECRET_PATH}`, { headers: hvac(token) })).status).toBe(
      200,
    );
    // hvac/api/system_backend/health.py read_health_status: HEAD by default, no token needed.
    const health = await send('HEAD', '/v1/sys/health', { headers: hvac() });
    expect(health.status).toBe(200);
    expect(health.text).toBe('');
  });

  it('answers LIST on a missing folder with 404 and an empty errors list, as OpenBao does', async () => {
    const token = await loginAs(ROLE, hvac(), 'POST');
    const list = await send('LIST', '/v1/secret/metadata/app/nothing-here', { headers: hvac(token) });
    expect(list.status).toBe(404);
    expect(list.json).toEqual({ errors: [] });
  });
});

describe('node-vault (runs for real)', () => {
  async function client(extra: Record<string, unknown> = {}) {
    const { default: nodeVault } = await import('node-vault');
    return nodeVault({
      apiVersion: 'v1',
      endpoint: stack.podApiUrl,
      requestOptions: { ca: stack.podApiCaPem },
      ...extra,
    });
  }

  it('logs in, reads, lists with LIST, looks itself up, renews, and reads health', async () => {
    const vault = await client();
    await vault.kubernetesLogin({ role: ROLE, jwt: stack.podToken(BOUND_SA), mount_point: 'kubernetes' });
    expect((await vault.read(`secret/data/${SECRET_PATH}`)).data.data.password).toBe(SECRET_VALUE);
    expect((await vault.list('secret/metadata/app')).data.keys).toEqual(['db']);
    expect((await vault.tokenLookupSelf()).data.policies).toContain('app-read');
    expect((await vault.tokenRenewSelf()).auth.client_token).toBe(vault.token);
    const health = await vault.health({ standbyok: true });
    expect(health).toMatchObject({ initialized: true, sealed: false, standby: false });
    // GET sys/init and sys/seal-status, as hvac's is_initialized() and is_sealed() send them too.
    expect(await vault.initialized()).toEqual({ initialized: true });
    expect(await vault.status()).toMatchObject({ initialized: true, sealed: false });
  });

  it('lists with noCustomHTTPVerbs (GET ?list=1, which OpenBao parses as a boolean)', async () => {
    const vault = await client({ noCustomHTTPVerbs: true });
    await vault.kubernetesLogin({ role: ROLE, jwt: stack.podToken(BOUND_SA), mount_point: 'kubernetes' });
    expect((await vault.list('secret/metadata/app')).data.keys).toEqual(['db']);
  });
});

describe('headers the pod API honours or refuses', () => {
  let token: string;
  beforeAll(async () => {
    token = await loginAs(ROLE, goClient());
  });

  it('accepts Authorization: Bearer like X-Vault-Token, and X-Vault-Token wins when both come', async () => {
    const bearer = await send('GET', `/v1/secret/data/${SECRET_PATH}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(bearer.status).toBe(200);
    const both = await send('GET', `/v1/secret/data/${SECRET_PATH}`, {
      headers: { authorization: `Bearer ${token}`, 'x-vault-token': 'not-a-token' },
    });
    expect(both.status).toBe(403);
  });

  it('refuses X-Vault-Wrap-TTL with a clear 400 instead of returning the plaintext, before OpenBao', async () => {
    const before = stack.openbao.requestLog().length;
    const wrapped = await send('GET', `/v1/secret/data/${SECRET_PATH}`, {
      headers: { ...goClient(token), 'x-vault-wrap-ttl': '5m' },
    });
    expect(wrapped.status).toBe(400);
    expect(wrapped.text).not.toContain(SECRET_VALUE);
    expect(String((wrapped.json!.errors as string[])[0])).toMatch(
      /^CT_PODAPI_NOT_ALLOWED: response wrapping is not available.*VAULT_WRAP_TTL/,
    );
    expect(
      stack.openbao
        .requestLog()
        .slice(before)
        .filter((e) => e.path.includes('secret/')),
    ).toEqual([]);
  });

  it('never lets X-Vault-Namespace widen the cluster namespace; root (or empty), and its own path, are the cluster namespace itself', async () => {
    const other = stack.cluster.namespace.replace(/[0-9a-f]{8}$/, '00000000');
    await stack.admin.withNamespace(other.split('/')[0]).createNamespace(other.split('/')[1]);
    const before = stack.openbao.requestLog().length;
    for (const namespace of [
      'cloudtaser',
      other,
      '..',
      '../..',
      'x/../..',
      `${stack.cluster.namespace}/child`,
      `../${stack.cluster.namespace.split('/')[1]}`,
    ]) {
      const answer = await send('GET', `/v1/secret/data/${SECRET_PATH}`, {
        headers: { ...goClient(token), 'x-vault-namespace': namespace },
      });
      // 403, as upstream answers a token outside its namespace: a 404 reads as "no such secret" in the Go client
      // (api/logical.go), so External Secrets and the CSI provider hid the refusal.
      expect({ namespace, status: answer.status }).toEqual({ namespace, status: 403 });
      expect(answer.json!.errors).toEqual([
        'permission denied',
        expect.stringMatching(/^CT_PODAPI_NOT_ALLOWED: .*VAULT_NAMESPACE/),
      ]);
    }
    expect(
      stack.openbao
        .requestLog()
        .slice(before)
        .filter((e) => e.path.includes('secret/')),
    ).toEqual([]);
    // The cluster's own path is what lookup-self shows (namespace_path) and what the platform team writes secrets
    // with (`bao kv put -namespace=cloudtaser/<fp8>`): upstream serves a token's own namespace by it (a 404 before).
    for (const namespace of ['root', '/', '', stack.cluster.namespace, `${stack.cluster.namespace}/`]) {
      const answer = await send('GET', `/v1/secret/data/${SECRET_PATH}`, {
        headers: { ...goClient(token), 'x-vault-namespace': namespace },
      });
      expect({ namespace, status: answer.status }).toEqual({ namespace, status: 200 });
    }
  });

  it('answers a list flag that is not a boolean with 400 and keeps SCAN off the allow-list', async () => {
    expect(
      (await send('GET', '/v1/secret/metadata/app?list=maybe', { headers: goClient(token) })).status,
    ).toBe(400);
    expect((await send('SCAN', '/v1/secret/metadata/app', { headers: goClient(token) })).status).toBe(403);
    expect(
      (await send('GET', '/v1/secret/metadata/app?scan=true', { headers: goClient(token) })).status,
    ).toBe(403);
    expect((await send('LIST', '/v1/secret/data/app', { headers: goClient(token) })).status).toBe(403);
    expect((await send('LIST', '/v1/sys/namespaces', { headers: goClient(token) })).status).toBe(403);
  });
});

describe('sys/health through the pod API', () => {
  it('is unauthenticated and answers OpenBao own body and status, honouring its code parameters', async () => {
    const plain = await send('GET', '/v1/sys/health');
    expect(plain.status).toBe(200);
    expect(plain.json).toMatchObject({ initialized: true, sealed: false, standby: false });
    expect(plain.json!.cluster_name).toEqual(expect.any(String));
    expect((await send('GET', '/v1/sys/health?activecode=299')).status).toBe(299);
    stack.openbao.seal();
    try {
      const sealed = await send('GET', '/v1/sys/health');
      expect(sealed.status).toBe(503);
      expect(sealed.json).toMatchObject({ sealed: true });
      expect((await send('GET', '/v1/sys/health?sealedcode=200')).status).toBe(200);
    } finally {
      stack.openbao.unseal();
    }
  });

  it('refuses bad code values and a namespace header with 400, as OpenBao does', async () => {
    expect((await send('GET', '/v1/sys/health?sealedcode=abc')).status).toBe(400);
    expect((await send('GET', '/v1/sys/health?standbyok=maybe')).status).toBe(400);
    expect((await send('GET', '/v1/sys/health?activecode=2000')).status).toBe(400);
    expect((await send('POST', '/v1/sys/health')).status).toBe(405);
    const namespaced = await send('GET', '/v1/sys/health', { headers: { 'x-vault-namespace': 'root' } });
    expect(namespaced).toMatchObject({
      status: 400,
      json: { errors: ['operation unavailable in namespaces'] },
    });
  });

  it('answers like a sealed server while the tunnel is down (503, or sealedcode), for GET and HEAD', async () => {
    const podApi = await startPodApiServer({
      host: '127.0.0.1',
      port: 0,
      tls: false,
      tunnel: () => undefined,
      // A tunnel that does not come back: ordinary requests wait this long for one, sys/health and seal-status not.
      nextTunnel: (_lost, signal) =>
        new Promise((resolve) => signal.addEventListener('abort', () => resolve(undefined), { once: true })),
      limits: { tunnelWaitMs: 3_000 },
    });
    const agent = new Agent();
    try {
      const down = await send('GET', '/v1/sys/health', { base: podApi.url, agent });
      expect(down.status).toBe(503);
      expect(down.json).toMatchObject({ initialized: true, sealed: true, standby: false });
      expect(
        (await send('GET', '/v1/sys/health?sealedcode=299&standbyok=true', { base: podApi.url, agent }))
          .status,
      ).toBe(299);
      const head = await send('HEAD', '/v1/sys/health', { base: podApi.url, agent });
      expect(head).toMatchObject({ status: 503, text: '' });
      // sys/seal-status agrees, at once: 200 with sealed true, as a sealed server answers (hvac's is_sealed() got
      // VaultDown after the tunnel wait while sys/health said sealed: an outside hvac drill).
      const started = performance.now();
      const seal = await send('GET', '/v1/sys/seal-status', { base: podApi.url, agent });
      expect(performance.now() - started).toBeLessThan(1_000);
      expect(seal).toMatchObject({ status: 200, json: { initialized: true, sealed: true, type: 'shamir' } });
      // sys/init is not a seal state: after the tunnel wait, 503 as every other request.
      expect((await send('GET', '/v1/sys/init', { base: podApi.url, agent })).status).toBe(503);
    } finally {
      await agent.close();
      await podApi.close();
    }
  });

  it('the bridge answers like a sealed server when OpenBao cannot be reached from it', async () => {
    const forwarder = createOpenBaoForwarder({ address: 'http://127.0.0.1:9', timeoutMs: 2_000 });
    try {
      const answer = await forwarder.forward('cloudtaser/x', {
        method: 'GET',
        path: `${OPENBAO_TUNNEL_PREFIX}sys/health?sealedcode=299`,
        headers: {},
        body: Buffer.alloc(0),
      });
      expect(answer.status).toBe(299);
      expect(JSON.parse(String(answer.body))).toMatchObject({ sealed: true });
      const seal = await forwarder.forward('cloudtaser/x', {
        method: 'GET',
        path: `${OPENBAO_TUNNEL_PREFIX}sys/seal-status`,
        headers: {},
        body: Buffer.alloc(0),
      });
      expect({ status: seal.status, body: JSON.parse(String(seal.body)) }).toMatchObject({
        status: 200,
        body: { sealed: true, initialized: true },
      });
    } finally {
      await forwarder.close();
    }
  });
});
