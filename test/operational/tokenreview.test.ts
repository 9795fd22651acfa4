/**
 * OpenBao's Kubernetes auth through a bridge with two replicas, as the bridge chart deploys it: OpenBao calls one
 * HTTPS endpoint (the bridge Service; here a TCP proxy that sends every connection to the replica the test
 * chooses), the broker's tunnel lands on one replica, and the other one forwards to its peers (the headless
 * Service's A-records; here two loopback addresses on one port). Every login must succeed whichever replica
 * OpenBao reaches. Also: roles with a namespace selector (OpenBao reads the pod's namespace through the tunnel),
 * and `source doctor` against these two replicas (the broker's one tunnel is on one of them).
 */
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BridgeHandle } from '../../runtime/bridge/index.js';
import type { BrokerHandle } from '../../runtime/broker/index.js';
import { createLogger } from '../../runtime/core/log.js';
import { runSourceDoctor } from '../../runtime/doctor/index.js';
import {
  loadTokenReviewCa,
  type RegistrationResult,
  registerCluster,
} from '../../runtime/registration/index.js';
import { freePort } from '../ports.js';
import {
  type Replicas,
  startReplicas,
  startTestBridge,
  startTestBroker,
  testResolve,
} from '../runtime/fixtures.js';
import { type ServiceProxy, startServiceProxy } from '../support/service-proxy.js';
import { type KubeAuthWorld, startKubeAuthWorld } from './kube-auth-world.js';

const BRIDGE_IPS = ['127.0.0.3', '127.0.0.4'];
const PEERS_NAME = 'cloudtaser-bridge-peers.test';
const APP_NS = 'team-a';
const OTHER_NS = 'team-b';

let world: KubeAuthWorld;
let replicas: Replicas;
let bridges: BridgeHandle[];
let broker: BrokerHandle;
let cluster: RegistrationResult;
let service: ServiceProxy;

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
  world = await startKubeAuthWorld();
  await world.createAppNamespace(APP_NS, { team: 'a' });
  await world.createAppNamespace(OTHER_NS, { team: 'b' });
  replicas = await startReplicas(1);

  // Two replicas on one port, as a Deployment's pods are, with the peers' name resolving to both.
  const port = await freePort(BRIDGE_IPS[0]);
  bridges = [await startBridgeReplica(BRIDGE_IPS[0], port), await startBridgeReplica(BRIDGE_IPS[1], port)];
  service = await startServiceProxy(port, BRIDGE_IPS);

  cluster = await registerCluster(world.admin, {
    fingerprint: world.kube.kubeSystemUid,
    tokenReviewEndpoint: service.url,
  });
  await world.writeAppRole(cluster.namespace, 'app', [APP_NS]);
  await world.admin.withNamespace(cluster.namespace).writeKubernetesAuthRole('kubernetes', 'by-label', {
    boundServiceAccountNames: ['app'],
    boundServiceAccountNamespaces: [],
    boundServiceAccountNamespaceSelector: '{"matchLabels":{"team":"a"}}',
    policies: ['read'],
    ttl: '1h',
  });
  for (const bridge of bridges) await bridge.pollNow();
  broker = await startTestBroker({
    fingerprint: world.kube.kubeSystemUid,
    beacons: [replicas.address],
    caSha256: cluster.operationalHash,
    kube: world.brokerKube,
  });
  await broker.waitForPhase('operational', 20_000);
}, 90_000);

afterAll(async () => {
  await broker?.close();
  for (const bridge of bridges ?? []) await bridge.close();
  await service?.close();
  await replicas?.close();
  await world?.close();
});

function startBridgeReplica(host: string, port: number): Promise<BridgeHandle> {
  return startTestBridge({
    openbao: world.admin,
    beacons: [replicas.address],
    resolve,
    tokenReview: { host, port, dnsNames: ['localhost'], peers: `${PEERS_NAME}:${port}` },
    health: { host: '127.0.0.1', port: 0 },
    logger: bridgeLogger,
  });
}

/** Which replica holds the broker's tunnel now. */
function holder(): number {
  return bridges.findIndex((b) => b.tunnels(world.kube.kubeSystemUid).some((t) => !t.closed));
}

const login = (role: string, namespace = APP_NS) => world.login(cluster.namespace, role, namespace);

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
    const ca = await loadTokenReviewCa(world.admin.withNamespace('cloudtaser'));
    const trusted = new Agent({ connect: { ca: ca!.certPem } });
    try {
      const unauthenticated = await request(
        `${service.url}/clusters/${world.kube.kubeSystemUid}/apis/authentication.k8s.io/v1/tokenreviews`,
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

describe('source doctor with two bridge replicas', () => {
  const doctor = (...replicas: BridgeHandle[]) =>
    runSourceDoctor({
      openbao: world.admin,
      fingerprint: cluster.fingerprint,
      bridgeHealthUrl: replicas.map((replica) => replica.healthUrl!),
      timeoutMs: 2_000,
    });
  const tunnelStep = (report: Awaited<ReturnType<typeof doctor>>) =>
    report.steps.find((step) => step.link === 'tunnel');

  it('finds the tunnel when given every replica, and says to ask every replica when given the one without it', async () => {
    const withTunnel = bridges[holder()];
    const without = bridges[1 - holder()];
    const both = await doctor(without, withTunnel);
    expect(both.exitCode).toBe(0);
    expect(tunnelStep(both)).toMatchObject({
      state: 'ok',
      detail: `1 tunnel(s) up (${withTunnel.healthUrl})`,
    });
    expect(both.steps.find((step) => step.link === 'bridge-cluster')?.detail).toBe(
      `2 of the 2 bridge replicas asked serve ${cluster.fingerprint.slice(0, 8)}`,
    );

    // One replica cannot tell whether the other holds the tunnel: broken, and the fix says how to check both.
    const one = await doctor(without);
    expect(one.exitCode).toBe(28);
    expect(tunnelStep(one)).toMatchObject({
      detail: `the bridge holds no tunnel for ${cluster.fingerprint.slice(0, 8)}`,
      fix: expect.stringContaining('pass --bridge-health-url once per bridge pod'),
    });
    expect((await doctor(withTunnel)).exitCode).toBe(0);
  });
});
