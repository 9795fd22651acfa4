/**
 * Attack: anyone who reaches the bridge's TokenReview port asks it to review tokens of a connected cluster (an
 * oracle for stolen pod tokens, run with the broker's cluster rights) and floods it to fill the cluster's
 * per-tunnel gate so OpenBao's real logins fail. Against the real `bridge run` process (built CLI), with an
 * in-process beacon, broker, OpenBao test server and Kubernetes test server.
 *
 * Holds when: a review without OpenBao's reviewer credential, or with a wrong one, is refused with 401 in
 * Kubernetes' Status shape, never reaches the broker (it logs every review it makes: `broker.tokenreview`), and
 * a flood of them leaves OpenBao's own logins working.
 *
 * Written to run unchanged on the code before the fix (which failed it: the unauthenticated review came back
 * 201 with `authenticated: true` after a TokenReview in the cluster): it reads the listener's scheme from the
 * bridge's log and imports nothing the fix added.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrokerHandle } from '../../runtime/broker/index.js';
import { createLogger } from '../../runtime/core/log.js';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { KubeClient } from '../../runtime/kube/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { type RegistrationResult, registerCluster } from '../../runtime/registration/index.js';
import {
  BEACON_NAME,
  beaconCert,
  beaconClientFlags,
  REPLICA_IPS,
  type Replicas,
  startReplicas,
  startTestBroker,
} from '../runtime/fixtures.js';
import { builtCli } from '../support/built-cli.js';
import { waitUntil } from '../support/wait.js';

const _root = resolve(import.meta.dirname, '../..');
const cli = builtCli();

let dir: string;
let openbao: OpenBaoTestServer;
let admin: OpenBaoClient;
let kube: KubeTestServer;
let brokerKube: KubeClient;
let replicas: Replicas;
let bridge: ChildProcess | undefined;
let broker: BrokerHandle;
let cluster: RegistrationResult;
let endpoint: string;
let agent: Agent;
const brokerLogs: string[] = [];

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((done) => probe.listen(0, '127.0.0.1', done));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((done) => probe.close(() => done()));
  return port;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ct-adv-tr-'));
  openbao = await startOpenBaoTestServer();
  admin = new OpenBaoClient({ address: openbao.address, token: openbao.rootToken });
  kube = await startKubeTestServer();
  await kube.createServiceAccount('cloudtaser-system', 'cloudtaser');
  const operator = { namespace: 'cloudtaser-system', name: 'cloudtaser' };
  kube.grant(operator, {
    verbs: ['create'],
    resources: ['tokenreviews'],
    apiGroups: ['authentication.k8s.io'],
  });
  brokerKube = KubeClient.fromConnection({
    kind: 'token',
    host: kube.url,
    token: kube.issueServiceAccountToken('cloudtaser-system', 'cloudtaser', { expirationSeconds: 7200 }),
    clusterCaCertificate: kube.caCertPem,
  });
  await kube.createServiceAccount('apps', 'web');
  replicas = await startReplicas(1);
  const beaconCaFile = join(dir, 'beacon-ca.pem');
  await writeFile(beaconCaFile, beaconCert.certPem);

  // The real bridge process, with its TokenReview listener as the operator would run it.
  const port = await freePort();
  const logLines: string[] = [];
  bridge = spawn(
    process.execPath,
    [
      cli,
      'bridge',
      'run',
      '--secretstore-address',
      openbao.address,
      '--beacon',
      replicas.address,
      '--beacon-ca',
      beaconCaFile,
      ...(await beaconClientFlags(dir)),
      '--poll-interval',
      '200ms',
      '--tokenreview-listen',
      `127.0.0.1:${port}`,
      ...(await flagIfKnown('--tokenreview-dns-name', 'localhost')),
    ],
    {
      env: {
        PATH: process.env.PATH,
        CLOUDTASER_LOG_LEVEL: 'info',
        CLOUDTASER_DEV_RESOLVE: `${BEACON_NAME}=${REPLICA_IPS[0]}`,
        CLOUDTASER_SECRETSTORE_TOKEN: openbao.rootToken,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  bridge.stdout!.on('data', (chunk: Buffer) =>
    logLines.push(...chunk.toString().split('\n').filter(Boolean)),
  );
  bridge.stderr!.on('data', (chunk: Buffer) =>
    logLines.push(...chunk.toString().split('\n').filter(Boolean)),
  );
  const listening = await waitUntil(
    () => logLines.map((l) => safeJson(l)).find((l) => l?.event === 'tokenreview.listening'),
    {
      timeoutMs: 20_000,
      what: `the bridge's TokenReview listener (log so far: ${logLines.slice(-5).join(' | ')})`,
    },
  );
  endpoint = `${listening.scheme}://localhost:${port}`;

  cluster = await registerCluster(admin, { fingerprint: kube.kubeSystemUid, tokenReviewEndpoint: endpoint });
  const ns = admin.withNamespace(cluster.namespace);
  await ns.writePolicy('read', 'path "secret/data/*" { capabilities = ["read"] }');
  await ns.writeKubernetesAuthRole('kubernetes', 'web', {
    boundServiceAccountNames: ['web'],
    boundServiceAccountNamespaces: ['apps'],
    policies: ['read'],
    ttl: '1h',
  });
  // Whatever CA registration gave OpenBao for the listener is what a client needs to reach it at all.
  const config = await ns.request<{ data: { kubernetes_ca_cert: string } }>('GET', 'auth/kubernetes/config');
  agent = new Agent({ connect: { ca: config.body!.data.kubernetes_ca_cert }, connections: 256 });

  const sink = new Writable({
    write(chunk, _encoding, done) {
      brokerLogs.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  broker = await startTestBroker({
    fingerprint: kube.kubeSystemUid,
    beacons: [replicas.address],
    caSha256: cluster.operationalHash,
    kube: brokerKube,
    logger: createLogger('adversary-broker', { level: 'debug', destination: sink }),
  });
  await broker.waitForPhase('operational', 30_000);
  // The listener certificate is issued at the bridge's next poll after registration made its CA.
  await waitUntil(async () => (await openbaoLogin()) === 200, {
    timeoutMs: 20_000,
    what: 'a real login through the bridge',
  });
}, 120_000);

afterAll(async () => {
  await broker?.close();
  if (bridge && bridge.exitCode === null) {
    const exited = new Promise((done) => bridge!.once('exit', done));
    bridge.kill('SIGTERM');
    await exited;
  }
  await agent?.close();
  await replicas?.close();
  brokerKube?.close();
  await kube?.close();
  await admin?.close();
  await openbao?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function openbaoLogin(): Promise<number> {
  const jwt = kube.issueServiceAccountToken('apps', 'web', { expirationSeconds: 600 });
  return request(`${openbao.address}/v1/auth/kubernetes/login`, {
    method: 'POST',
    headers: { 'x-vault-namespace': cluster.namespace, 'content-type': 'application/json' },
    body: JSON.stringify({ role: 'web', jwt }),
  }).then(async (r) => {
    await r.body.dump();
    return r.statusCode;
  });
}

/** A TokenReview of a valid pod token, as an attacker who reaches the port sends it. */
async function attackerReview(
  authorization?: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const token = kube.issueServiceAccountToken('apps', 'web', { expirationSeconds: 600 });
  const response = await request(
    `${endpoint}/clusters/${kube.kubeSystemUid}/apis/authentication.k8s.io/v1/tokenreviews`,
    {
      method: 'POST',
      dispatcher: agent,
      headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
      body: JSON.stringify({ spec: { token } }),
    },
  );
  const text = await response.body.text();
  return { status: response.statusCode, body: text ? (safeJson(text) ?? {}) : {} };
}

// The broker logs each TokenReview it makes at debug (one per pod login).
const reviewsMade = () => brokerLogs.filter((l) => l.includes('"event":"broker.tokenreview"')).length;

describe('bridge TokenReview endpoint against callers other than OpenBao', () => {
  it('refuses a review without a credential, or with a pod token or a made-up one as credential, with 401 Status, and never asks the cluster', async () => {
    const before = reviewsMade();
    const podToken = kube.issueServiceAccountToken('apps', 'web', { expirationSeconds: 600 });
    for (const authorization of [
      undefined,
      `Bearer ${podToken}`,
      'Bearer eyJhbGciOiJFUzI1NiJ9.e30.c2ln',
      'Basic YTpi',
    ]) {
      const answer = await attackerReview(authorization);
      expect(answer.status, String(authorization).slice(0, 20)).toBe(401);
      expect(answer.body).toEqual({
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: 'Unauthorized',
        reason: 'Unauthorized',
        code: 401,
      });
    }
    expect(reviewsMade()).toBe(before);
  });

  it('answers a path with a malformed percent-escape with 404, as any unknown path, before any credential check', async () => {
    // Before the fix: decodeURIComponent threw, 500, and an unthrottled warn line per request.
    const response = await request(`${endpoint}/clusters/${kube.kubeSystemUid}/api/v1/namespaces/%E0%A4%A`, {
      dispatcher: agent,
    });
    await response.body.text();
    expect(response.statusCode).toBe(404);
  });

  it('keeps OpenBao logins working through a flood of 1100 unauthenticated reviews (more than the per-tunnel gate holds), none of which reaches the cluster', async () => {
    const before = reviewsMade();
    const flood = Promise.all(Array.from({ length: 1100 }, () => attackerReview().then((a) => a.status)));
    const logins = await Promise.all(Array.from({ length: 5 }, () => openbaoLogin()));
    const statuses = await flood;
    expect(logins).toEqual([200, 200, 200, 200, 200]);
    expect(new Set(statuses)).toEqual(new Set([401]));
    // Only the five real logins were reviewed in the cluster.
    expect(reviewsMade() - before).toBe(5);
  }, 60_000);
});

async function flagIfKnown(flag: string, value: string): Promise<string[]> {
  const help = await new Promise<string>((done) => {
    const child = spawn(process.execPath, [cli, 'bridge', 'run', '--help'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.on('close', () => done(out));
  });
  return help.includes(flag) ? [flag, value] : [];
}

// biome-ignore lint/suspicious/noExplicitAny: log lines are read loosely
function safeJson(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
