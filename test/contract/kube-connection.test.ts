/**
 * readClusterFingerprint through every connection kind (kubeconfig + context, token, exec plugin) against
 * the Kubernetes test server, and every way a connection can fail, each with its stable CT_ code.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { isCloudtaserError } from '../../runtime/core/index.js';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import {
  defaultKubeConnection,
  type KubeConnection,
  loadKubeConfig,
  readClusterFingerprint,
} from '../../runtime/kube/index.js';

let server: KubeTestServer;
let dir: string;
let forbiddenToken: string;
let pluginPath: string;
const savedEnv = { ...process.env };

beforeAll(async () => {
  server = await startKubeTestServer();
  dir = await mkdtemp(join(tmpdir(), 'ct-kube-conn-'));
  await server.createServiceAccount('apps', 'nobody');
  forbiddenToken = server.issueServiceAccountToken('apps', 'nobody');
  // A tiny exec credential plugin: prints an ExecCredential with the token from its env, or misbehaves on request.
  pluginPath = join(dir, 'token-plugin.mjs');
  await writeFile(
    pluginPath,
    `#!/usr/bin/env node
const mode = process.env.PLUGIN_MODE ?? 'ok';
if (mode === 'fail') { process.stderr.write('credentials expired: run login\\n'); process.exit(1); }
if (mode === 'garbage') { process.stdout.write('this is not json'); process.exit(0); }
process.stdout.write(JSON.stringify({
  kind: 'ExecCredential',
  apiVersion: 'client.authentication.k8s.io/v1beta1',
  spec: {},
  status: { token: process.env.PLUGIN_TOKEN, expirationTimestamp: new Date(Date.now() + 600000).toISOString() },
}));
`,
  );
  await chmod(pluginPath, 0o755);
});

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

afterEach(() => {
  for (const key of ['KUBECONFIG', 'KUBERNETES_SERVICE_HOST', 'KUBERNETES_SERVICE_PORT']) {
    if (savedEnv[key] === undefined) delete process.env[key];
    else process.env[key] = savedEnv[key];
  }
});

async function failure(
  promise: Promise<unknown>,
  code: string,
): Promise<Error & { details: Record<string, unknown> }> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isCloudtaserError(err), `expected ${code}, got ${String(err)}`).toBe(true);
  expect((err as { code: string }).code).toBe(code);
  return err as Error & { details: Record<string, unknown> };
}

function tokenConnection(token: string): KubeConnection {
  return { kind: 'token', host: server.url, token, clusterCaCertificate: server.caCertPem };
}

/** One kubeconfig with two contexts: `alpha` (admin token) and `beta` (a stale token, the current context). */
async function twoContextKubeconfig(): Promise<string> {
  const alpha = join(dir, 'alpha.yaml');
  const beta = join(dir, 'beta.yaml');
  await server.writeKubeconfig(alpha, { context: 'alpha' });
  await server.writeKubeconfig(beta, { context: 'beta', token: 'stale-token' });
  const a = parse(await (await import('node:fs/promises')).readFile(alpha, 'utf8'));
  const b = parse(await (await import('node:fs/promises')).readFile(beta, 'utf8'));
  const merged = join(dir, 'merged.yaml');
  await writeFile(
    merged,
    stringify({
      ...b,
      clusters: [...a.clusters, ...b.clusters],
      users: [...a.users, ...b.users],
      contexts: [...a.contexts, ...b.contexts],
    }),
  );
  return merged;
}

describe('readClusterFingerprint through every connection kind', () => {
  it('reads the fingerprint through a kubeconfig and an explicit context', async () => {
    const path = await twoContextKubeconfig();
    expect(await readClusterFingerprint({ kind: 'kubeconfig', path, context: 'alpha' })).toBe(
      server.kubeSystemUid,
    );
    // The file's current context (beta) carries a stale token.
    await failure(readClusterFingerprint({ kind: 'kubeconfig', path }), 'CT_KUBE_UNAUTHORIZED');
  });

  it('reads the fingerprint through KUBECONFIG, skipping listed files that do not exist', async () => {
    const path = join(dir, 'env.yaml');
    await server.writeKubeconfig(path);
    process.env.KUBECONFIG = [join(dir, 'missing.yaml'), path].join(':');
    expect(await readClusterFingerprint({ kind: 'kubeconfig' })).toBe(server.kubeSystemUid);
  });

  it('reads the fingerprint with a host and token, the CA given as PEM or as base64 of PEM', async () => {
    expect(await readClusterFingerprint(tokenConnection(server.adminToken))).toBe(server.kubeSystemUid);
    const base64Ca = Buffer.from(server.caCertPem as string).toString('base64');
    expect(
      await readClusterFingerprint({
        kind: 'token',
        host: server.url,
        token: server.adminToken,
        clusterCaCertificate: base64Ca,
      }),
    ).toBe(server.kubeSystemUid);
    expect(
      await readClusterFingerprint({
        kind: 'token',
        host: server.url,
        token: server.adminToken,
        insecureSkipTlsVerify: true,
      }),
    ).toBe(server.kubeSystemUid);
  });

  it('reads the fingerprint through an exec block that runs a credential plugin', async () => {
    const connection: KubeConnection = {
      kind: 'exec',
      host: server.url,
      clusterCaCertificate: server.caCertPem,
      exec: {
        apiVersion: 'client.authentication.k8s.io/v1beta1',
        command: pluginPath,
        env: { PLUGIN_TOKEN: server.adminToken },
      },
    };
    expect(await readClusterFingerprint(connection)).toBe(server.kubeSystemUid);
  });

  it('reads the fingerprint through a kubeconfig whose user is an exec plugin', async () => {
    const path = join(dir, 'exec.yaml');
    await server.writeKubeconfig(path, {
      exec: { command: pluginPath, env: { PLUGIN_TOKEN: server.adminToken } },
    });
    expect(await readClusterFingerprint({ kind: 'kubeconfig', path })).toBe(server.kubeSystemUid);
  });
});

describe('readClusterFingerprint failures', () => {
  it('names the host when the API server is unreachable', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const err = await failure(
      readClusterFingerprint({ kind: 'token', host: `https://127.0.0.1:${port}`, token: 't' }),
      'CT_KUBE_UNREACHABLE',
    );
    expect(err.message).toContain(`https://127.0.0.1:${port}`);
    expect(err.message).toContain('ECONNREFUSED');
  });

  it('gives up on a server that accepts but never answers, within the time limit', async () => {
    const silent: Server = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const host = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    try {
      const err = await failure(
        readClusterFingerprint(
          { kind: 'token', host, token: 't', insecureSkipTlsVerify: true },
          { timeoutMs: 200 },
        ),
        'CT_KUBE_UNREACHABLE',
      );
      expect(err.message).toContain('did not answer within 200 ms');
    } finally {
      silent.closeAllConnections();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  it('stops when the caller aborts', async () => {
    const controller = new AbortController();
    controller.abort();
    await failure(
      readClusterFingerprint(tokenConnection(server.adminToken), { signal: controller.signal }),
      'CT_CANCELLED',
    );
  });

  it('reports a bad token as CT_KUBE_UNAUTHORIZED without echoing the token', async () => {
    const secretToken = 'very-secret-bearer-token-value';
    const err = await failure(readClusterFingerprint(tokenConnection(secretToken)), 'CT_KUBE_UNAUTHORIZED');
    expect(err.message).toMatch(/expired or is invalid/);
    expect(`${err.message} ${JSON.stringify(err.details)}`).not.toContain(secretToken);
  });

  it('reports a token without RBAC as CT_KUBE_FORBIDDEN and says what RBAC must allow', async () => {
    const err = await failure(readClusterFingerprint(tokenConnection(forbiddenToken)), 'CT_KUBE_FORBIDDEN');
    expect(err.message).toContain('get namespaces kube-system');
    expect(err.message).toContain('User "system:serviceaccount:apps:nobody"');
    expect(err.message).not.toContain(forbiddenToken);
  });

  it('refuses a server whose certificate is not signed by the given CA', async () => {
    const err = await failure(
      readClusterFingerprint({ kind: 'token', host: server.url, token: server.adminToken }),
      'CT_KUBE_TLS',
    );
    expect(err.message).toContain('cluster CA certificate');
  });

  it('reports a missing kubeconfig file as CT_KUBE_CONFIG naming the path', async () => {
    const path = join(dir, 'does-not-exist.yaml');
    const err = await failure(readClusterFingerprint({ kind: 'kubeconfig', path }), 'CT_KUBE_CONFIG');
    expect(err.message).toContain(path);
  });

  it('reports an unknown context as CT_KUBE_CONFIG listing the contexts that exist', async () => {
    const path = await twoContextKubeconfig();
    const err = await failure(
      readClusterFingerprint({ kind: 'kubeconfig', path, context: 'gamma' }),
      'CT_KUBE_CONFIG',
    );
    expect(err.message).toContain('"gamma"');
    expect(err.message).toContain('alpha, beta');
  });

  it('reports a kubeconfig that is not YAML as CT_KUBE_CONFIG', async () => {
    const path = join(dir, 'broken.yaml');
    await writeFile(path, 'clusters: [unclosed\n  - : :');
    await failure(readClusterFingerprint({ kind: 'kubeconfig', path }), 'CT_KUBE_CONFIG');
  });

  it('reports a missing exec plugin as CT_KUBE_CONFIG with its install hint', async () => {
    const path = join(dir, 'missing-plugin.yaml');
    await server.writeKubeconfig(path, {
      exec: {
        command: 'gke-gcloud-auth-plugin-not-installed',
        installHint: 'Install gke-gcloud-auth-plugin: https://cloud.google.com/kubernetes-engine',
      },
    });
    const err = await failure(readClusterFingerprint({ kind: 'kubeconfig', path }), 'CT_KUBE_CONFIG');
    expect(err.message).toContain('gke-gcloud-auth-plugin-not-installed');
    expect(err.message).toContain('Install gke-gcloud-auth-plugin');
  });

  it('reports a failing or garbled exec plugin as CT_KUBE_CREDENTIAL_PLUGIN, not as a 401 of the API server', async () => {
    // The API server never saw a request: CT_KUBE_UNAUTHORIZED ("rejected the credentials (401)") sent people to
    // RBAC and token expiry on the server side; kubectl says "getting credentials: exec: ..." here.
    for (const mode of ['fail', 'garbage']) {
      const err = await failure(
        readClusterFingerprint({
          kind: 'exec',
          host: server.url,
          clusterCaCertificate: server.caCertPem,
          exec: {
            apiVersion: 'client.authentication.k8s.io/v1',
            command: pluginPath,
            env: { PLUGIN_MODE: mode },
          },
        }),
        'CT_KUBE_CREDENTIAL_PLUGIN',
      );
      if (mode === 'fail') expect(err.message).toContain('credentials expired: run login');
    }
  });

  it('refuses an exec block with an apiVersion kubectl would refuse', async () => {
    const err = await failure(
      readClusterFingerprint({
        kind: 'exec',
        host: server.url,
        exec: { apiVersion: 'client.authentication.k8s.io/v1alpha1', command: pluginPath },
      }),
      'CT_KUBE_CONFIG',
    );
    expect(err.message).toContain('invalid apiVersion');
  });

  it('refuses a token connection without a usable host or token', () => {
    for (const bad of [
      { kind: 'token', host: '', token: 't' },
      { kind: 'token', host: 'ftp://x', token: 't' },
      { kind: 'token', host: server.url, token: ' ' },
      { kind: 'token', host: server.url, token: 't', clusterCaCertificate: 'not a certificate' },
    ] as KubeConnection[]) {
      expect(() => loadKubeConfig(bad)).toThrow(expect.objectContaining({ code: 'CT_KUBE_CONFIG' }));
    }
  });

  it('reports a server that is not Kubernetes as CT_KUBE_ERROR', async () => {
    const web = createServer((_req, res) => res.end('<html>hello</html>'));
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    const host = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
    try {
      await failure(
        readClusterFingerprint({ kind: 'token', host, token: 't', insecureSkipTlsVerify: true }),
        'CT_KUBE_ERROR',
      );
    } finally {
      await new Promise<void>((r) => web.close(() => r()));
    }
  });

  it('refuses in-cluster loading outside a pod', () => {
    delete process.env.KUBERNETES_SERVICE_HOST;
    delete process.env.KUBERNETES_SERVICE_PORT;
    expect(() => loadKubeConfig({ kind: 'inCluster' })).toThrow(
      expect.objectContaining({ code: 'CT_KUBE_CONFIG' }),
    );
  });
});

describe('defaultKubeConnection', () => {
  it('prefers a kubeconfig flag, then in-cluster inside a pod, then the default kubeconfig', () => {
    process.env.KUBERNETES_SERVICE_HOST = '10.0.0.1';
    expect(defaultKubeConnection({ kubeconfig: '/k', context: 'c' })).toEqual({
      kind: 'kubeconfig',
      path: '/k',
      context: 'c',
    });
    expect(defaultKubeConnection({ context: 'c' })).toEqual({ kind: 'kubeconfig', context: 'c' });
    expect(defaultKubeConnection({})).toEqual({ kind: 'inCluster' });
    delete process.env.KUBERNETES_SERVICE_HOST;
    expect(defaultKubeConnection({})).toEqual({ kind: 'kubeconfig' });
  });
});
