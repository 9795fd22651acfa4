/**
 * OpenBao's Kubernetes auth through a bridge with two replicas, as the bridge chart deploys it: OpenBao calls one
 * HTTPS endpoint (the bridge Service; here a TCP proxy that sends every connection to the replica the test
 * chooses), the broker's tunnel lands on one replica, and the other one forwards to its peers (the headless
 * Service's A-records; here two loopback addresses on one port). Every login must succeed whichever replica
 * OpenBao reaches. Also: roles with a namespace selector (OpenBao reads the pod's namespace through the tunnel).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { Writable } from 'node:stream';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BridgeHandle } from '../../runtime/bridge/index.js';
import type { BrokerHandle } from '../../runtime/broker/index.js';
import { createLogger } from '../../runtime/core/log.js';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { KubeClient } from '../../runtime/kube/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import {
  loadTokenReviewCa,
  type RegistrationResult,
  registerCluster,
} from '../../runtime/registration/index.js';
import {
  type Replicas,
  startReplicas,
  startTestBridge,
  startTestBroker,
  testResolve,
} from '../runtime/fixtures.js';

const BRIDGE_IPS = ['127.0.0.3', '127.0.0.4'];
const PEERS_NAME = 'cloudtaser-bridge-peers.test';
const APP_NS = 'team-a';
const OTHER_NS = 'team-b';

let openbao: OpenBaoTestServer;
let admin: OpenBaoClient;
let kube: KubeTestServer;
let kubeAdmin: KubeClient;
let brokerKube: KubeClient;
let replicas: Replicas;
let bridges: BridgeHandle[];
let broker: BrokerHandle;
let cluster: RegistrationResult;
let service: { server: Server; url: string; target: number; connections: number[] };

/** Every line the bridge replicas log at info and above. */
const bridgeLines: string[] = [];
const bridgeLogger = createLogger('tokenreview-test', {
  level: 'info',
  destination: new Writable({
    write(chunk, _encoding, callback) {
      bridgeLines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      callback();
    },
  }),
});
const resolve = async (host: string) => (host === PEERS_NAME ? [...BRIDGE_IPS] : testResolve(host));

beforeAll(async () => {
  openbao = await startOpenBaoTestServer();
  admin = new OpenBaoClient({ address: openbao.address, token: openbao.rootToken });
  kube = await startKubeTestServer();
  kubeAdmin = KubeClient.fromConnection({
    kind: 'token',
    host: kube.url,
    token: kube.adminToken,
    clusterCaCertificate: kube.caCertPem,
  });
  await kube.createServiceAccount('cloudtaser-system', 'cloudtaser');
  const operator = { namespace: 'cloudtaser-system', name: 'cloudtaser' };
  kube.grant(operator, {
    verbs: ['create'],
    resources: ['tokenreviews'],
    apiGroups: ['authentication.k8s.io'],
  });
  kube.grant(operator, { verbs: ['get'], resources: ['namespaces'] });
  brokerKube = KubeClient.fromConnection({
    kind: 'token',
    host: kube.url,
    token: kube.issueServiceAccountToken('cloudtaser-system', 'cloudtaser', { expirationSeconds: 7200 }),
    clusterCaCertificate: kube.caCertPem,
  });
  await createLabelledNamespace(APP_NS, { team: 'a' });
  await createLabelledNamespace(OTHER_NS, { team: 'b' });
  await kube.createServiceAccount(APP_NS, 'app');
  await kube.createServiceAccount(OTHER_NS, 'app');
  replicas = await startReplicas(1);

  // Two replicas on one port, as a Deployment's pods are, with the peers' name resolving to both.
  const port = await freePort(BRIDGE_IPS[0]);
  bridges = [await startBridgeReplica(BRIDGE_IPS[0], port), await startBridgeReplica(BRIDGE_IPS[1], port)];
  service = await startServiceProxy(port);

  cluster = await registerCluster(admin, {
    fingerprint: kube.kubeSystemUid,
    tokenReviewEndpoint: service.url,
  });
  const ns = admin.withNamespace(cluster.namespace);
  await ns.writePolicy('read', 'path "secret/data/app/*" { capabilities = ["read"] }');
  await ns.writeKubernetesAuthRole('kubernetes', 'app', {
    boundServiceAccountNames: ['app'],
    boundServiceAccountNamespaces: [APP_NS],
    policies: ['read'],
    ttl: '1h',
  });
  await ns.writeKubernetesAuthRole('kubernetes', 'by-label', {
    boundServiceAccountNames: ['app'],
    boundServiceAccountNamespaces: [],
    boundServiceAccountNamespaceSelector: '{"matchLabels":{"team":"a"}}',
    policies: ['read'],
    ttl: '1h',
  });
  for (const bridge of bridges) await bridge.pollNow();
  broker = await startTestBroker({
    fingerprint: kube.kubeSystemUid,
    beacons: [replicas.address],
    caSha256: cluster.operationalHash,
    kube: brokerKube,
  });
  await broker.waitForPhase('operational', 20_000);
}, 90_000);

afterAll(async () => {
  await broker?.close();
  for (const bridge of bridges ?? []) await bridge.close();
  await new Promise<void>((done) => (service?.server ? service.server.close(() => done()) : done()));
  await replicas?.close();
  brokerKube?.close();
  kubeAdmin?.close();
  await kube?.close();
  await admin?.close();
  await openbao?.close();
});

function startBridgeReplica(host: string, port: number): Promise<BridgeHandle> {
  return startTestBridge({
    openbao: admin,
    beacons: [replicas.address],
    resolve,
    tokenReview: { host, port, dnsNames: ['localhost'], peers: `${PEERS_NAME}:${port}` },
    logger: bridgeLogger,
  });
}

/** Which replica holds the broker's tunnel now. */
function holder(): number {
  return bridges.findIndex((b) => b.tunnels(kube.kubeSystemUid).some((t) => !t.closed));
}

async function login(role: string, namespace = APP_NS): Promise<number> {
  const jwt = kube.issueServiceAccountToken(namespace, 'app', { expirationSeconds: 600 });
  const response = await request(`${openbao.address}/v1/auth/kubernetes/login`, {
    method: 'POST',
    headers: { 'x-vault-namespace': cluster.namespace, 'content-type': 'application/json' },
    body: JSON.stringify({ role, jwt }),
  });
  await response.body.dump();
  return response.statusCode;
}

describe('TokenReview with two bridge replicas behind one Service', () => {
  it('logs every pod in whichever replica OpenBao reaches: the one holding the tunnel answers, the other forwards to it', async () => {
    const withTunnel = holder();
    expect(withTunnel).toBeGreaterThanOrEqual(0);
    for (const target of [withTunnel, 1 - withTunnel]) {
      service.target = target;
      const before = service.connections[target];
      const statuses = await Promise.all(Array.from({ length: 12 }, () => login('app')));
      expect(statuses).toEqual(Array(12).fill(200));
      // OpenBao really went through the replica chosen.
      expect(service.connections[target]).toBeGreaterThan(before);
    }
  });

  it('logs no line per login on the replica without the tunnel (a peer asking it is not an event)', async () => {
    // Its fan-out asks every replica, itself included; "not here" used to be an info line per login.
    service.target = 1 - holder();
    const before = bridgeLines.length;
    const statuses = await Promise.all(Array.from({ length: 8 }, () => login('app')));
    expect(statuses).toEqual(Array(8).fill(200));
    expect(
      bridgeLines.slice(before).filter((line) => line.includes('"event":"tokenreview.no_tunnel"')),
    ).toEqual([]);
  });

  it('still logs pods in after the tunnel moves to the other replica', async () => {
    const before = holder();
    await bridges[before].close();
    bridges[before] = await startBridgeReplica(
      BRIDGE_IPS[before],
      Number(new URL(bridges[1 - before].tokenReviewUrl!).port),
    );
    await bridges[before].pollNow();
    await broker.waitForPhase('operational', 20_000);
    for (const target of [0, 1]) {
      service.target = target;
      expect(await login('app')).toBe(200);
    }
  });

  it('serves roles with a namespace selector: OpenBao reads the pod namespace labels through the tunnel', async () => {
    service.target = 1 - holder();
    expect(await login('by-label', APP_NS)).toBe(200);
    expect(await login('by-label', OTHER_NS)).toBe(403);
  });

  it('refuses over TLS a client that does not trust the listener CA, and serves one that does', async () => {
    const ca = await loadTokenReviewCa(admin.withNamespace('cloudtaser'));
    const trusted = new Agent({ connect: { ca: ca!.certPem } });
    try {
      const unauthenticated = await request(
        `${service.url}/clusters/${kube.kubeSystemUid}/apis/authentication.k8s.io/v1/tokenreviews`,
        { method: 'POST', dispatcher: trusted, body: '{"spec":{"token":"x"}}' },
      );
      expect(unauthenticated.statusCode).toBe(401);
      await unauthenticated.body.dump();
    } finally {
      await trusted.close();
    }
    await expect(
      request(`${service.url}/clusters/${randomUUID()}/apis/authentication.k8s.io/v1/tokenreviews`, {
        method: 'POST',
      }),
    ).rejects.toThrow(/certificate/);
  });
});

async function freePort(host: string): Promise<number> {
  const probe = createServer();
  await new Promise<void>((done) => probe.listen(0, host, done));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((done) => probe.close(() => done()));
  return port;
}

async function createLabelledNamespace(name: string, labels: Record<string, string>): Promise<void> {
  const agent = new Agent({ connect: { ca: kube.caCertPem } });
  const response = await request(`${kube.url}/api/v1/namespaces`, {
    method: 'POST',
    dispatcher: agent,
    headers: { authorization: `Bearer ${kube.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } }),
  });
  expect(response.statusCode).toBe(201);
  await response.body.dump();
  await agent.close();
}

/**
 * A ClusterIP Service stand-in: a TCP proxy that sends each connection to the replica `target` names. Setting a
 * target ends the open connections (OpenBao keeps them alive), so the next review surely goes there.
 */
async function startServiceProxy(port: number) {
  const open = new Set<Socket>();
  let target = 0;
  const state = {
    connections: [0, 0],
    get target() {
      return target;
    },
    set target(value: number) {
      target = value;
      for (const socket of open) socket.destroy();
    },
  };
  const server = createServer((client: Socket) => {
    const index = target;
    state.connections[index]++;
    open.add(client);
    client.on('close', () => open.delete(client));
    const upstream = tcpConnect(port, BRIDGE_IPS[index]);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address() as { port: number };
  return Object.assign(state, { server, url: `https://localhost:${address.port}` });
}
