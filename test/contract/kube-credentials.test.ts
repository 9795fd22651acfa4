/**
 * Credentials that change while a process runs, as the clouds issue them, through KubeClient and
 * readClusterFingerprint (what the CLI, broker, bridge and provider call): exec credential plugins (GKE
 * gke-gcloud-auth-plugin, EKS `aws eks get-token`, AKS kubelogin), played by small node scripts on a temp PATH that
 * print what the real ones print, and kubeconfig token files. The behaviour each test expects is client-go's
 * (k8s.io/client-go/plugin/pkg/client/auth/exec/exec.go; rest/request.go for Retry-After). Also: 429 and 5xx answers
 * with Retry-After, as API Priority and Fairness sends them.
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { KubeClient, readClusterFingerprint } from '../../runtime/kube/index.js';
import { isProcessAlive } from '../support/process-alive.js';
import { waitUntil } from '../support/wait.js';

let server: KubeTestServer;
let dir: string;
const savedPath = process.env.PATH;
const EKS_ARGS = ['--region', 'eu-west-1', 'eks', 'get-token', '--cluster-name', 'prod', '--output', 'json'];

beforeAll(async () => {
  server = await startKubeTestServer();
  dir = await mkdtemp(join(tmpdir(), 'ct-kube-cred-'));
  process.env.PATH = `${dir}${delimiter}${savedPath}`;
  // kubelogin get-token --login devicecode (the default of `az aks get-credentials` on Entra ID clusters): with no
  // cached login it prints the device-code prompt on stderr and waits for a person to sign in (15 min for real).
  await plugin(
    'kubelogin',
    `process.stderr.write('To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code ABCD-EFGH to authenticate.\\n');
setTimeout(() => process.exit(1), 25000);`,
  );
  // aws eks get-token: counts its runs, records KUBERNETES_EXEC_INFO, prints the token held in a file (so a test can
  // "log in again"), and answers the apiVersion held in another.
  await plugin(
    'aws',
    `const fs = require('fs');
const at = (name) => ${JSON.stringify(dir)} + '/' + name;
fs.appendFileSync(at('aws.count'), 'x');
fs.writeFileSync(at('aws.execinfo'), process.env.KUBERNETES_EXEC_INFO ?? '');
const token = fs.readFileSync(at('aws.token'), 'utf8').trim();
let apiVersion = 'client.authentication.k8s.io/v1beta1';
try { apiVersion = fs.readFileSync(at('aws.apiversion'), 'utf8').trim(); } catch {}
setTimeout(() => process.stdout.write(JSON.stringify({
  kind: 'ExecCredential', apiVersion, spec: {},
  status: { expirationTimestamp: new Date(Date.now() + 14 * 60000).toISOString(), token },
})), 200);`,
  );
});

afterAll(async () => {
  process.env.PATH = savedPath;
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

async function plugin(name: string, body: string): Promise<void> {
  const path = join(dir, name);
  await writeFile(path, `#!/usr/bin/env node\n${body}\n`);
  await chmod(path, 0o755);
}

async function kubeconfig(file: string, user: Record<string, unknown>): Promise<string> {
  const path = join(dir, file);
  const cluster = {
    server: server.url,
    'certificate-authority-data': Buffer.from(server.caCertPem!).toString('base64'),
  };
  await writeFile(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster }],
      users: [{ name: 'u', user }],
      contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'c',
    }),
  );
  return path;
}

const eksExec = (extra: Record<string, unknown> = {}) => ({
  apiVersion: 'client.authentication.k8s.io/v1beta1',
  command: 'aws',
  args: EKS_ARGS,
  env: null,
  interactiveMode: 'IfAvailable',
  provideClusterInfo: false,
  ...extra,
});

async function awsRuns(): Promise<number> {
  return (await readFile(join(dir, 'aws.count'), 'utf8')).length;
}

async function resetAws(token: string): Promise<void> {
  await writeFile(join(dir, 'aws.count'), '');
  await writeFile(join(dir, 'aws.token'), token);
  await rm(join(dir, 'aws.apiversion'), { force: true });
}

describe('exec credential plugins', () => {
  it('AKS kubelogin waiting for a device-code login nobody can answer: stopped at the time limit, its prompt in the error', async () => {
    const path = await kubeconfig('aks.yaml', {
      exec: {
        apiVersion: 'client.authentication.k8s.io/v1beta1',
        command: 'kubelogin',
        args: ['get-token', '--login', 'devicecode', '--server-id', '6dae42f8-4368-4678-94ff-3960e28e3630'],
        env: null,
        installHint: 'kubelogin is not installed which is required to connect to AAD enabled cluster.',
        interactiveMode: 'IfAvailable',
        provideClusterInfo: false,
      },
    });
    const started = Date.now();
    const err = await readClusterFingerprint({ kind: 'kubeconfig', path }, { timeoutMs: 2000 }).catch(
      (e: Error & { code?: string }) => e,
    );
    // Before: the 2 s limit did not cover the plugin; the call waited for it (15 minutes for the real one).
    expect(Date.now() - started).toBeLessThan(6000);
    expect(err).toMatchObject({ code: 'CT_KUBE_CREDENTIAL_PLUGIN' });
    expect((err as Error).message).toContain('microsoft.com/devicelogin');
    expect((err as Error).message).toMatch(/log in first/);
  });

  it('stops what a wrapper plugin started, so nothing holds the pipes and keeps the process alive after the call failed', async () => {
    // A shell wrapper (as kubelogin and az installs often are) whose child waits: killing the shell alone left the
    // child holding stdout and stderr, and the CLI ran on until it ended (5 minutes for a `sleep 300`).
    const wrapper = join(dir, 'wrapped-login');
    await writeFile(
      wrapper,
      `#!/bin/sh\necho "To sign in, open https://microsoft.com/devicelogin and enter the code WXYZ-1234" >&2\nsleep 60 &\necho $! > ${JSON.stringify(join(dir, 'sleep.pid'))}\nwait\n`,
    );
    await chmod(wrapper, 0o755);
    const path = await kubeconfig('wrapped.yaml', {
      exec: {
        apiVersion: 'client.authentication.k8s.io/v1beta1',
        command: wrapper,
        interactiveMode: 'IfAvailable',
      },
    });
    const err = await readClusterFingerprint({ kind: 'kubeconfig', path }, { timeoutMs: 1500 }).catch(
      (e: Error & { code?: string }) => e,
    );
    expect(err).toMatchObject({ code: 'CT_KUBE_CREDENTIAL_PLUGIN' });
    expect((err as Error).message).toContain('microsoft.com/devicelogin');
    const pid = Number((await readFile(join(dir, 'sleep.pid'), 'utf8')).trim());
    const alive = () => isProcessAlive(pid);
    await waitUntil(() => !alive(), { timeoutMs: 2_000, what: "the wrapper's child stopped with it" });
  });

  it('EKS: after a 401 the next call runs the plugin again instead of reusing the cached token', async () => {
    await resetAws('k8s-aws-v1.revoked-session');
    const client = KubeClient.fromConnection({
      kind: 'kubeconfig',
      path: await kubeconfig('eks-401.yaml', { exec: eksExec() }),
    });
    try {
      await expect(client.getNamespace('kube-system')).rejects.toMatchObject({
        code: 'CT_KUBE_UNAUTHORIZED',
      });
      // The person logs in again (aws sso login); the plugin now prints a good token.
      await writeFile(join(dir, 'aws.token'), server.adminToken);
      // Before: the refused token was cached for its 14 minutes and every call stayed 401.
      await expect(client.getNamespace('kube-system')).resolves.toMatchObject({
        metadata: { name: 'kube-system' },
      });
      expect(await awsRuns()).toBe(2);
    } finally {
      client.close();
    }
  });

  it('EKS: a cached token the server stops accepting is replaced within the same call (one retry)', async () => {
    await server.createServiceAccount('ci', 'deployer');
    server.grant(
      { namespace: 'ci', name: 'deployer' },
      { apiGroups: [''], resources: ['namespaces'], verbs: ['get'] },
    );
    const now = Math.floor(Date.now() / 1000);
    // The plugin's answer says 14 minutes; the token itself ends in 2 s (a session revoked or cut short).
    const shortLived = server.issueServiceAccountToken('ci', 'deployer', {
      issuedAt: now - 3598,
      expirationSeconds: 3600,
    });
    await resetAws(shortLived);
    const client = KubeClient.fromConnection({
      kind: 'kubeconfig',
      path: await kubeconfig('eks-rotate.yaml', { exec: eksExec() }),
    });
    try {
      await client.getNamespace('kube-system');
      await writeFile(join(dir, 'aws.token'), server.issueServiceAccountToken('ci', 'deployer'));
      await new Promise((resolve) => setTimeout(resolve, 2500));
      await expect(client.getNamespace('kube-system')).resolves.toMatchObject({
        metadata: { name: 'kube-system' },
      });
      expect(await awsRuns()).toBe(2);
    } finally {
      client.close();
    }
  });

  it('EKS: concurrent calls with no cached token run the plugin once', async () => {
    await resetAws(server.adminToken);
    const client = KubeClient.fromConnection({
      kind: 'kubeconfig',
      path: await kubeconfig('eks-concurrent.yaml', { exec: eksExec() }),
    });
    try {
      await Promise.all(Array.from({ length: 10 }, () => client.getNamespace('kube-system')));
      // Before: one plugin process per call (about a second of Python each for the real aws CLI).
      expect(await awsRuns()).toBe(1);
    } finally {
      client.close();
    }
  });

  it('tells the plugin it may not prompt, and the cluster when provideClusterInfo is set (KUBERNETES_EXEC_INFO)', async () => {
    await resetAws(server.adminToken);
    const path = await kubeconfig('eks-info.yaml', { exec: eksExec({ provideClusterInfo: true }) });
    await readClusterFingerprint({ kind: 'kubeconfig', path });
    const info = JSON.parse(await readFile(join(dir, 'aws.execinfo'), 'utf8'));
    expect(info).toMatchObject({
      apiVersion: 'client.authentication.k8s.io/v1beta1',
      kind: 'ExecCredential',
      spec: {
        interactive: false,
        cluster: {
          server: server.url,
          'certificate-authority-data': Buffer.from(server.caCertPem!).toString('base64'),
        },
      },
    });
  });

  it('refuses an answer in another apiVersion than the kubeconfig asks for, without quoting the output', async () => {
    await resetAws(server.adminToken);
    await writeFile(join(dir, 'aws.apiversion'), 'client.authentication.k8s.io/v1');
    const path = await kubeconfig('eks-version.yaml', { exec: eksExec() });
    const err = await readClusterFingerprint({ kind: 'kubeconfig', path }).catch((e: Error) => e);
    expect(err).toMatchObject({ code: 'CT_KUBE_CREDENTIAL_PLUGIN' });
    expect((err as Error).message).toMatch(
      /apiVersion "client.authentication.k8s.io\/v1" where the kubeconfig/,
    );
    expect((err as Error).message).not.toContain(server.adminToken);
  });

  it('refuses interactiveMode Always where nobody can answer, before running the plugin', async () => {
    await resetAws(server.adminToken);
    const path = await kubeconfig('eks-always.yaml', { exec: eksExec({ interactiveMode: 'Always' }) });
    const err = await readClusterFingerprint({ kind: 'kubeconfig', path }).catch((e: Error) => e);
    expect(err).toMatchObject({ code: 'CT_KUBE_CREDENTIAL_PLUGIN' });
    expect((err as Error).message).toMatch(/interactiveMode Always/);
    expect(await awsRuns()).toBe(0);
  });
});

describe('token files', () => {
  it('authenticates with a kubeconfig user tokenFile (client-go field name), a trailing newline and all', async () => {
    const tokenPath = join(dir, 'sa-token');
    await writeFile(tokenPath, `${server.adminToken}\n`);
    const path = await kubeconfig('tokenfile.yaml', { tokenFile: tokenPath });
    // Before: client-node reads only `token-file`; the user had no credentials at all (CT_KUBE_UNAUTHORIZED).
    await expect(readClusterFingerprint({ kind: 'kubeconfig', path })).resolves.toBe(server.kubeSystemUid);
  });

  it('reads a relative tokenFile from the kubeconfig folder, and re-reads a rotated file after a 401', async () => {
    await writeFile(join(dir, 'rotating-token'), 'not-yet-valid');
    const client = KubeClient.fromConnection({
      kind: 'kubeconfig',
      path: await kubeconfig('tokenfile-relative.yaml', { tokenFile: 'rotating-token' }),
    });
    try {
      await expect(client.getNamespace('kube-system')).rejects.toMatchObject({
        code: 'CT_KUBE_UNAUTHORIZED',
      });
      await writeFile(join(dir, 'rotating-token'), server.adminToken);
      await expect(client.getNamespace('kube-system')).resolves.toBeDefined();
    } finally {
      client.close();
    }
  });

  it('says which token file is missing', async () => {
    const path = await kubeconfig('tokenfile-missing.yaml', { tokenFile: join(dir, 'nope') });
    const err = await readClusterFingerprint({ kind: 'kubeconfig', path }).catch((e: Error) => e);
    expect(err).toMatchObject({ code: 'CT_KUBE_CONFIG' });
    expect((err as Error).message).toContain(join(dir, 'nope'));
  });
});

describe('answers that say when to come back (Retry-After)', () => {
  let api: Server | undefined;
  afterEach(async () => {
    await new Promise<void>((resolve) => (api ? api.close(() => resolve()) : resolve()));
    api = undefined;
  });

  /** An API server that answers `rejections` requests with `status` and Retry-After, then a TokenReview. */
  async function rejecting(rejections: number, status: number, retryAfter = '1') {
    let hits = 0;
    api = createServer((req, res) => {
      hits++;
      req.resume();
      req.on('end', () => {
        if (hits <= rejections) {
          // k8s.io/apiserver pkg/server/filters/priority-and-fairness.go: Retry-After and a TooManyRequests Status.
          res.writeHead(status, { 'content-type': 'application/json', 'retry-after': retryAfter });
          res.end(
            JSON.stringify({
              kind: 'Status',
              apiVersion: 'v1',
              status: 'Failure',
              message: 'Too many requests, please try again later.',
              reason: 'TooManyRequests',
              details: { retryAfterSeconds: Number(retryAfter) },
              code: status,
            }),
          );
          return;
        }
        res.writeHead(201, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            kind: 'TokenReview',
            apiVersion: 'authentication.k8s.io/v1',
            status: { authenticated: true, user: { username: 'system:serviceaccount:ns1:app' } },
          }),
        );
      });
    });
    await new Promise<void>((resolve) => api!.listen(0, '127.0.0.1', resolve));
    const client = KubeClient.fromConnection(
      {
        kind: 'token',
        host: `http://127.0.0.1:${(api!.address() as AddressInfo).port}`,
        token: 'reviewer',
        insecureSkipTlsVerify: true,
      },
      { timeoutMs: 4000 },
    );
    return { client, hits: () => hits };
  }

  it('retries a 429 after its Retry-After, a POST too (the server refused it before doing anything)', async () => {
    const { client, hits } = await rejecting(1, 429);
    try {
      // Before: the first 429 failed the broker's TokenReview relay and so the pod's login.
      await expect(client.createTokenReview('x')).resolves.toMatchObject({ authenticated: true });
      expect(hits()).toBe(2);
    } finally {
      client.close();
    }
  });

  it('retries a 503 with Retry-After, but gives up with the status once the wait would pass the time limit', async () => {
    const { client, hits } = await rejecting(100, 503, '3');
    try {
      const started = Date.now();
      const err = await client.createTokenReview('x').catch((e: Error) => e);
      expect(err).toMatchObject({ code: expect.stringMatching(/^CT_KUBE_/) });
      // One retry after 3 s fits in 4 s; a second would not.
      expect(hits()).toBe(2);
      expect(Date.now() - started).toBeLessThan(4500);
    } finally {
      client.close();
    }
  });
});
