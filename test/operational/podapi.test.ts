import { generateKeyPairSync, sign } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  NAMESPACE_TUNNEL_PREFIX,
  NOT_ON_ALLOW_LIST,
  OPENBAO_TUNNEL_PREFIX,
  TOKENREVIEW_TUNNEL_PATH,
} from '../../runtime/podapi/index.js';
import { fetchPodSecrets } from '../../runtime/webhook/index.js';
import { runProcess } from '../run-process.js';
import { builtCli } from '../support/built-cli.js';
import {
  APP_NAMESPACE,
  BOUND_SA,
  type OperationalStack,
  ROLE,
  SECRET_PATH,
  SECRET_VALUE,
  startOperationalStack,
  UNBOUND_SA,
} from './stack.js';

let stack: OperationalStack;
const seenTokens: string[] = [];
/** The user the webhook's init container runs as. */
const CONTAINER_UID = 65532;
/** Root may write over a 0444 file, so a root runner plays the container's user; any other already is non-root. */
const asContainerUser = process.getuid?.() === 0;

beforeAll(async () => {
  stack = await startOperationalStack();
}, 60_000);
afterAll(async () => {
  await stack?.close();
});

async function login(jwt: string) {
  return stack.podRequest('POST', '/v1/auth/kubernetes/login', { body: { role: ROLE, jwt } });
}

async function loginToken(serviceAccount = BOUND_SA): Promise<string> {
  const jwt = stack.podToken(serviceAccount);
  seenTokens.push(jwt);
  const answer = await login(jwt);
  expect(answer.status).toBe(200);
  const token = (answer.body.auth as { client_token: string }).client_token;
  seenTokens.push(token);
  return token;
}

/** A JWT with pod A's claims, signed by a key the cluster never issued. */
function forgedJwt(): string {
  const real = stack.podToken(BOUND_SA);
  const [header, claims] = real.split('.');
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const signature = sign('sha256', Buffer.from(`${header}.${claims}`), {
    key: privateKey,
    dsaEncoding: 'ieee-p1363',
  });
  return `${header}.${claims}.${signature.toString('base64url')}`;
}

describe('pod API through broker, beacon and bridge', () => {
  it('lets pod A (bound service account) log in and read its secret, with TokenReview carried through the tunnel', async () => {
    const jwt = stack.podToken(BOUND_SA);
    seenTokens.push(jwt);
    const answer = await login(jwt);
    expect(answer.status).toBe(200);
    const auth = answer.body.auth as {
      client_token: string;
      policies: string[];
      metadata: Record<string, string>;
    };
    seenTokens.push(auth.client_token);
    expect(auth.policies).toContain('app-read');
    expect(auth.metadata).toMatchObject({
      service_account_name: BOUND_SA,
      service_account_namespace: APP_NAMESPACE,
    });

    const read = await stack.podRequest('GET', `/v1/secret/data/${SECRET_PATH}`, {
      token: auth.client_token,
    });
    expect(read.status).toBe(200);
    expect((read.body.data as { data: Record<string, string> }).data.password).toBe(SECRET_VALUE);

    const self = await stack.podRequest('GET', '/v1/auth/token/lookup-self', { token: auth.client_token });
    expect(self.status).toBe(200);
    expect((self.body.data as { namespace_path: string }).namespace_path).toBe(`${stack.cluster.namespace}/`);
    // The login really reviewed the token in the cluster: the broker logged a TokenReview.
    expect(stack.logs.some((line) => line.includes('"event":"broker.tokenreview"'))).toBe(true);
  });

  it('refuses pod B (service account not bound to the role) with 403', async () => {
    const jwt = stack.podToken(UNBOUND_SA);
    seenTokens.push(jwt);
    const answer = await login(jwt);
    expect(answer.status).toBe(403);
    expect(answer.body).toEqual({ errors: ['service account name not authorized'] });
  });

  it('refuses a forged token (right claims, wrong signature) with 403 permission denied, because TokenReview says no', async () => {
    const jwt = forgedJwt();
    seenTokens.push(jwt);
    const answer = await login(jwt);
    expect(answer.status).toBe(403);
    expect(answer.body).toEqual({ errors: ['permission denied'] });
  });

  it('refuses an expired token with 403', async () => {
    const [header, claims] = stack.podToken(BOUND_SA).split('.');
    const decoded = JSON.parse(Buffer.from(claims, 'base64url').toString()) as Record<string, number>;
    const past = Math.floor(Date.now() / 1000) - 7200;
    const expiredClaims = Buffer.from(
      JSON.stringify({ ...decoded, iat: past - 600, nbf: past - 600, exp: past }),
    ).toString('base64url');
    const answer = await login(`${header}.${expiredClaims}.c2ln`);
    expect(answer.status).toBe(403);
    expect(JSON.stringify(answer.body.errors)).toContain('expired');
  });

  it('refuses paths outside the allow-list with OpenBao error shapes and never reaches OpenBao for them', async () => {
    const token = await loginToken();
    const before = stack.openbao.requestLog().length;
    for (const path of [
      '/v1/sys/mounts',
      '/v1/sys/policies/acl/app-read',
      '/v1/cloudtaser/secret/data/app/db',
      '/v1/secret/data/../../sys/mounts',
      '/v1/secret/data/%2e%2e/%2e%2e/sys/mounts',
      '/v1/secret/data/app%2Fdb',
      '/v1/auth/token/create',
      '/v1/cubbyhole/x',
    ]) {
      const answer = await stack.podRequest('GET', path, { token });
      expect({ path, status: answer.status, body: answer.body }).toEqual({
        path,
        status: 403,
        // OpenBao's text first (clients handle it), then that the allow-list refused, not an OpenBao policy.
        body: { errors: ['permission denied', NOT_ON_ALLOW_LIST] },
      });
    }
    const notV1 = await stack.podRequest('GET', '/ui/', { token });
    expect(notV1).toEqual({ status: 404, body: { errors: [] } });
    const disableMount = await stack.podRequest('DELETE', '/v1/sys/mounts/secret', { token });
    expect(disableMount.status).toBe(403);
    // The bridge keeps polling OpenBao in the background; none of the refused requests may be among the new ones.
    const reachedOpenBao = stack.openbao
      .requestLog()
      .slice(before)
      .filter(
        (entry) =>
          /sys\/mounts|sys\/policies|token\/create|cubbyhole|secret\/data/.test(entry.path) ||
          entry.method === 'DELETE',
      );
    expect(reachedOpenBao).toEqual([]);
  });

  it('lets policy decide KV writes: denied for a read-only pod, with OpenBao answering', async () => {
    const token = await loginToken();
    const write = await stack.podRequest('POST', `/v1/secret/data/${SECRET_PATH}`, {
      token,
      body: { data: { password: 'overwritten' } },
    });
    expect(write.status).toBe(403);
    expect(String((write.body.errors as string[])[0])).toContain('permission denied');
    const read = await stack.admin.withNamespace(stack.cluster.namespace).kvRead('secret', SECRET_PATH);
    expect(read?.data.password).toBe(SECRET_VALUE);
  });

  it('renews and revokes a token; a revoked (replayed) token is refused', async () => {
    const token = await loginToken();
    expect((await stack.podRequest('POST', '/v1/auth/token/renew-self', { token, body: {} })).status).toBe(
      200,
    );
    expect((await stack.podRequest('POST', '/v1/auth/token/revoke-self', { token })).status).toBe(204);
    const replay = await stack.podRequest('GET', `/v1/secret/data/${SECRET_PATH}`, { token });
    expect(replay.status).toBe(403);
  });

  it('refuses an oversized body with 413 before it reaches the tunnel, saying it is the pod API bound, not OpenBao', async () => {
    const answer = await stack.podRequest('POST', '/v1/auth/kubernetes/login', {
      body: { role: ROLE, jwt: 'x'.repeat(600 * 1024) },
    });
    expect(answer.status).toBe(413);
    // OpenBao's own text alone sent developers to raise OpenBao's max_request_size, which changes nothing.
    expect(answer.body.errors).toEqual([
      'http: request body too large',
      "CT_PODAPI_LIMIT: the cloudtaser pod API takes request bodies up to 512 KiB (the tunnel carries at most 1 MiB per request); OpenBao's max_request_size is not the cause",
    ]);
  });

  it('the bridge refuses an OpenBao path outside the allow-list even when a broker sends it', async () => {
    const tunnel = stack.broker.tunnel()!;
    const answer = await tunnel.request({ method: 'GET', path: `${OPENBAO_TUNNEL_PREFIX}sys/mounts` });
    expect(answer.status).toBe(403);
    expect(JSON.parse(answer.body.toString())).toEqual({ errors: ['permission denied', NOT_ON_ALLOW_LIST] });
  });

  it('the broker serves the bridge only TokenReview and namespace reads (trimmed to name, uid and labels)', async () => {
    const fromBridge = stack.bridge.tunnels(stack.cluster.fingerprint)[0];
    const other = await fromBridge.request({ method: 'GET', path: '/kube/api/v1/secrets' });
    expect(other.status).toBe(404);
    const wrongVerb = await fromBridge.request({ method: 'GET', path: TOKENREVIEW_TUNNEL_PATH });
    expect(wrongVerb.status).toBe(405);
    const noToken = await fromBridge.request(
      { method: 'POST', path: TOKENREVIEW_TUNNEL_PATH },
      '{"spec":{}}',
    );
    expect(noToken.status).toBe(400);
    const namespace = await fromBridge.request({
      method: 'GET',
      path: `${NAMESPACE_TUNNEL_PREFIX}${APP_NAMESPACE}`,
    });
    expect(namespace.status).toBe(200);
    const read = JSON.parse(namespace.body.toString());
    expect(Object.keys(read.metadata).sort()).toEqual(['labels', 'name', 'uid']);
    expect(read.metadata.labels).toMatchObject({ 'kubernetes.io/metadata.name': APP_NAMESPACE });
    const missing = await fromBridge.request({ method: 'GET', path: `${NAMESPACE_TUNNEL_PREFIX}no-such-ns` });
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body.toString())).toMatchObject({ kind: 'Status', reason: 'NotFound' });
    const write = await fromBridge.request({
      method: 'DELETE',
      path: `${NAMESPACE_TUNNEL_PREFIX}${APP_NAMESPACE}`,
    });
    expect(write.status).toBe(405);
    const traversal = await fromBridge.request({
      method: 'GET',
      path: `${NAMESPACE_TUNNEL_PREFIX}a/secrets`,
    });
    expect(traversal.status).toBe(404);
  });

  it('works with an independent client: node-vault logs in and reads through the pod API', async () => {
    const { default: nodeVault } = await import('node-vault');
    const vault = nodeVault({
      apiVersion: 'v1',
      endpoint: stack.podApiUrl,
      requestOptions: { ca: stack.podApiCaPem },
    });
    const jwt = stack.podToken(BOUND_SA);
    seenTokens.push(jwt);
    // node-vault builds the login path from `mount_point` (without it the path is auth//login).
    const auth = await vault.kubernetesLogin({ role: ROLE, jwt, mount_point: 'kubernetes' });
    seenTokens.push(auth.auth.client_token);
    vault.token = auth.auth.client_token;
    const read = await vault.read(`secret/data/${SECRET_PATH}`);
    expect(read.data.data.password).toBe(SECRET_VALUE);
  });

  it('serves 200 concurrent pod reads without an error', async () => {
    const token = await loginToken();
    const answers = await Promise.all(
      Array.from({ length: 200 }, () => stack.podRequest('GET', `/v1/secret/data/${SECRET_PATH}`, { token })),
    );
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    expect(
      answers.every((a) => (a.body.data as { data: { password: string } }).data.password === SECRET_VALUE),
    ).toBe(true);
  });

  it('the injected init container logic (pod fetch-secrets) writes the secret and the CA into its volume', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ct-fetch-'));
    try {
      const jwt = stack.podToken(BOUND_SA);
      seenTokens.push(jwt);
      const result = await fetchPodSecrets({
        podApiUrl: stack.podApiUrl,
        caPem: stack.podApiCaPem,
        role: ROLE,
        secrets: { db: SECRET_PATH },
        outputDir: dir,
        jwt,
      });
      expect(result.written).toEqual(['db']);
      expect(JSON.parse(await readFile(join(dir, 'db.json'), 'utf8')).password).toBe(SECRET_VALUE);
      // Readable by an app container running as another user than the init container (0o440 before: EACCES).
      expect((await stat(join(dir, 'db.json'))).mode & 0o777).toBe(0o444);
      expect(await readFile(join(dir, 'ca.crt'), 'utf8')).toBe(stack.podApiCaPem);
      const refused = fetchPodSecrets({
        podApiUrl: stack.podApiUrl,
        caPem: stack.podApiCaPem,
        role: ROLE,
        secrets: { db: SECRET_PATH },
        outputDir: dir,
        jwt: stack.podToken(UNBOUND_SA),
      });
      await expect(refused).rejects.toMatchObject({ code: 'CT_OPENBAO_PERMISSION_DENIED' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  // The injected container runs as 65532, and only root may write over a read-only file: a root runner (CI) runs
  // the CLI as 65532; any other runner is a non-root user already and runs it as itself. Never skipped.
  it('pod fetch-secrets run again in the same volume as the non-root container user succeeds (a restarted init container after a failed first try)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ct-fetch-again-'));
    try {
      const volume = join(dir, 'volume');
      await mkdir(volume);
      if (asContainerUser) await chown(volume, CONTAINER_UID, CONTAINER_UID);
      const tokenFile = join(dir, 'token');
      const jwt = stack.podToken(BOUND_SA);
      seenTokens.push(jwt);
      await writeFile(tokenFile, jwt, { mode: 0o444 });
      await chmod(dir, 0o755);
      const run = (role: string) =>
        runProcess(process.execPath, [builtCli(), 'pod', 'fetch-secrets'], {
          ...(asContainerUser ? { uid: CONTAINER_UID, gid: CONTAINER_UID } : {}),
          timeoutMs: 30_000,
          env: {
            PATH: process.env.PATH,
            CLOUDTASER_POD_API_URL: stack.podApiUrl,
            CLOUDTASER_POD_API_CA_PEM: stack.podApiCaPem,
            CLOUDTASER_ROLE: role,
            CLOUDTASER_OUTPUT_DIR: volume,
            CLOUDTASER_TOKEN_FILE: tokenFile,
            CLOUDTASER_SECRETS: JSON.stringify({ db: SECRET_PATH }),
          },
        });
      // A first try that fails after writing the CA (the pod's role is not written yet), then two that succeed:
      // before, every try after the first ended in EACCES on ca.crt and the pod never started.
      const failed = await run('no-such-role');
      expect(failed.code).not.toBe(0);
      expect(failed.stderr).not.toContain('EACCES');
      for (let attempt = 0; attempt < 2; attempt++) {
        const ok = await run(ROLE);
        expect(ok.stderr).toBe('');
        expect(ok.code).toBe(0);
      }
      expect(JSON.parse(await readFile(join(volume, 'db.json'), 'utf8')).password).toBe(SECRET_VALUE);
      expect((await stat(join(volume, 'db.json'))).mode & 0o777).toBe(0o444);
      // Nothing half-written is left beside the files.
      expect((await readdir(volume)).sort()).toEqual(['ca.crt', 'db.json']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('pod fetch-secrets refuses secret names that are not file names and paths that are not KV paths, writing nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ct-fetch-names-'));
    try {
      for (const secrets of [
        { '../../escaped': SECRET_PATH },
        { db: '../sys/x' },
        { db: 5 },
        ['app/db'],
        null,
      ]) {
        const refused = fetchPodSecrets({
          podApiUrl: stack.podApiUrl,
          caPem: stack.podApiCaPem,
          role: ROLE,
          secrets: secrets as unknown as Record<string, string>,
          outputDir: dir,
          jwt: 'unused',
        });
        await expect(refused, JSON.stringify(secrets)).rejects.toMatchObject({ code: 'CT_INVALID_ARGUMENT' });
      }
      expect(await readdir(dir)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('pod fetch-secrets names the file and annotation of a secret that is not there', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ct-fetch-missing-'));
    try {
      const jwt = stack.podToken(BOUND_SA);
      seenTokens.push(jwt);
      const missing = fetchPodSecrets({
        podApiUrl: stack.podApiUrl,
        caPem: stack.podApiCaPem,
        role: ROLE,
        secrets: { db: SECRET_PATH, cache: 'app/no-such-secret' },
        outputDir: dir,
        jwt,
      });
      await expect(missing).rejects.toMatchObject({
        code: 'CT_OPENBAO_ERROR',
        message: expect.stringContaining(
          'cache.json (annotation cloudtaser.io/secret-cache: app/no-such-secret)',
        ),
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('serves a storm of 60 concurrent logins, each with its TokenReview through the tunnel, without an error', async () => {
    const jwt = stack.podToken(BOUND_SA);
    seenTokens.push(jwt);
    const answers = await Promise.all(Array.from({ length: 60 }, () => login(jwt)));
    expect(answers.map((a) => a.status).filter((s) => s !== 200)).toEqual([]);
    for (const answer of answers)
      seenTokens.push((answer.body.auth as { client_token: string }).client_token);
  });

  it('shows podApiUrl and podApiCaPem on /status once operational', async () => {
    const response = await request(`${stack.broker.healthUrl}/status`);
    const status = (await response.body.json()) as Record<string, string>;
    expect(status.phase).toBe('operational');
    expect(status.podApiUrl).toMatch(/^https:\/\/localhost:\d+$/);
    expect(status.podApiCaPem).toBe(stack.cluster.caCertPem);
  });

  it('wrote no token, JWT or secret value to any log line (runs last)', () => {
    expect(stack.logs.length).toBeGreaterThan(20);
    expect(seenTokens.length).toBeGreaterThan(5);
    const all = stack.logs.join('\n');
    expect(all).not.toContain(SECRET_VALUE);
    for (const token of seenTokens) {
      expect(all).not.toContain(token);
      // A JWT's signature part alone would also be a leak.
      const signature = token.split('.').at(-1) ?? token;
      if (signature.length > 16) expect(all).not.toContain(signature);
    }
  });
});
