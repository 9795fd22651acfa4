/**
 * The bridge's and the broker's Prometheus metrics, read as a scraper reads them (the text exposition on the probe
 * port), on the whole operational path: each metric's name, type and labels, and that its value moves when the
 * event it counts happens.
 */
import { createServer, type Socket } from 'node:net';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type BridgeMetrics, createBridgeMetrics } from '../../runtime/bridge/index.js';
import { type BrokerMetrics, createBrokerMetrics } from '../../runtime/broker/index.js';
import { fingerprintPrefix } from '../../runtime/core/hashes.js';
import { CLOUDTASER_VERSION } from '../../runtime/core/version.js';
import { MIGRATE_ANNOTATION } from '../../runtime/migration/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { POD_API_LIMIT_KINDS } from '../../runtime/podapi/defaults.js';
import { INJECT_LABEL, WEBHOOK_PATH } from '../../runtime/webhook/index.js';
import { startTestBridge } from '../runtime/fixtures.js';
import { openRaw } from '../support/raw-pod-client.js';
import { waitUntil } from '../support/wait.js';
import { type Exposition, parseExposition, scrape } from './exposition.js';
import {
  APP_NAMESPACE,
  BOUND_SA,
  type OperationalStack,
  POD_API_DNS_NAMES,
  ROLE,
  SECRET_PATH,
  startOperationalStack,
} from './stack.js';

let stack: OperationalStack;
let bridgeMetrics: BridgeMetrics;
let brokerMetrics: BrokerMetrics;
let webhookAgent: Agent;
let cluster: string;
const closers: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  bridgeMetrics = createBridgeMetrics({ processMetrics: false });
  brokerMetrics = createBrokerMetrics({ processMetrics: false });
  stack = await startOperationalStack({
    registration: { migration: true },
    bridge: { health: { host: '127.0.0.1', port: 0 }, metrics: bridgeMetrics },
    broker: {
      metrics: brokerMetrics,
      // A per-address connection bound a test can reach cheaply (the default is 128).
      podApi: {
        host: '127.0.0.1',
        port: 0,
        dnsNames: POD_API_DNS_NAMES,
        limits: { maxConnectionsPerAddress: 8 },
      },
      webhook: {
        host: '127.0.0.1',
        port: 0,
        dnsNames: ['localhost'],
        injection: { image: 'operator:test' },
      },
      migration: { intervalMs: 0 },
    },
  });
  cluster = fingerprintPrefix(stack.cluster.fingerprint);
  webhookAgent = new Agent({ connect: { ca: stack.broker.status().webhookCaPem } });
}, 60_000);
afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await webhookAgent?.close();
  await stack?.close();
});

const bridgeScrape = () => scrape(stack.bridge.healthUrl);
const brokerScrape = () => scrape(stack.broker.healthUrl);

/** Label names a fleet of thousands can afford; anything naming a pod, a path or a full fingerprint is not here. */
const CHEAP_LABELS = new Set([
  'cluster',
  'state',
  'outcome',
  'result',
  'replica',
  'code',
  'source',
  'route',
  'status',
  'kind',
  'reason',
  'phase',
  'le',
  // The pod API bound that refused (six fixed kinds, POD_API_LIMIT_KINDS); never the pod's address.
  'limit',
  // build_info: one series per process, fixed for its life.
  'version',
  'node',
]);

function expectCheapLabels(exposition: Exposition): void {
  for (const sample of exposition.samples) {
    for (const [name, value] of Object.entries(sample.labels)) {
      expect(CHEAP_LABELS, `${sample.name} label ${name}`).toContain(name);
      if (name === 'cluster') expect(value).toMatch(/^[0-9a-f]{8}$/);
    }
  }
}

async function review(body: unknown): Promise<{ status: number; allowed?: boolean }> {
  const url = new URL(stack.broker.webhookUrl!);
  const response = await request(`https://localhost:${url.port}${WEBHOOK_PATH}`, {
    method: 'POST',
    dispatcher: webhookAgent,
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.body.text();
  return {
    status: response.statusCode,
    allowed: text.startsWith('{"api') ? JSON.parse(text).response.allowed : undefined,
  };
}

function admissionOf(name: string) {
  return {
    kind: 'AdmissionReview',
    apiVersion: 'admission.k8s.io/v1',
    request: {
      uid: `uid-${name}`,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: APP_NAMESPACE,
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' },
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name,
          namespace: APP_NAMESPACE,
          labels: { [INJECT_LABEL]: 'true' },
          annotations: { 'cloudtaser.io/secret-db': SECRET_PATH, 'cloudtaser.io/role': ROLE },
        },
        spec: { serviceAccountName: BOUND_SA, containers: [{ name: 'app', image: 'app:1' }] },
      },
    },
  };
}

async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('bridge metrics', () => {
  it('exports the tunnel, bootstrap, beacon dial and poll metrics with their types, labelled by the 8-character cluster prefix only', async () => {
    const m = await bridgeScrape();
    expect(m.types.get('cloudtaser_bridge_tunnel_up')).toBe('gauge');
    expect(m.types.get('cloudtaser_bridge_tunnel_opens_total')).toBe('counter');
    expect(m.types.get('cloudtaser_bridge_bootstraps_total')).toBe('counter');
    expect(m.types.get('cloudtaser_bridge_beacon_dials_total')).toBe('counter');
    expect(m.types.get('cloudtaser_bridge_beacon_replica_up')).toBe('gauge');
    expect(m.types.get('cloudtaser_bridge_openbao_request_duration_seconds')).toBe('histogram');
    expect(m.types.get('cloudtaser_bridge_refusals_total')).toBe('counter');
    expect(m.value('cloudtaser_bridge_tunnel_up', { cluster })).toBe(1);
    expect(m.value('cloudtaser_bridge_clusters', { state: 'initialized' })).toBe(1);
    expect(m.value('cloudtaser_bridge_tunnel_opens_total', { cluster })).toBe(1);
    expect(m.value('cloudtaser_bridge_bootstraps_total', { cluster, outcome: 'signed' })).toBe(1);
    expect(
      m.sum('cloudtaser_bridge_beacon_dials_total', { replica: '127.0.0.1', result: 'paired' }),
    ).toBeGreaterThan(0);
    expect(m.value('cloudtaser_bridge_beacon_replica_up', { replica: '127.0.0.1' })).toBe(1);
    expect(m.value('cloudtaser_bridge_polls_total', { outcome: 'ok' })).toBeGreaterThan(0);
    // The start is the one full listing; every later poll followed the journal.
    expect(m.types.get('cloudtaser_bridge_discovery_listings_total')).toBe('counter');
    expect(m.value('cloudtaser_bridge_discovery_listings_total', { reason: 'start' })).toBe(1);
    expect(m.sum('cloudtaser_bridge_discovery_listings_total', {})).toBe(1);
    // The full fingerprint never appears: a cluster is its prefix.
    const text = await (await fetch(`${stack.bridge.healthUrl}/metrics`)).text();
    expect(text).not.toContain(stack.cluster.fingerprint);
    expectCheapLabels(m);
  });

  it('marks a beacon replica unreachable when its dial fails, with the CT_ code of the failure', async () => {
    const metrics = createBridgeMetrics({ processMetrics: false });
    const port = await deadPort();
    const bridge = await startTestBridge({
      openbao: stack.bridgeOpenBao,
      beacons: [`127.0.0.1:${port}`],
      health: { host: '127.0.0.1', port: 0 },
      metrics,
    });
    closers.push(() => bridge.close());
    await vi.waitFor(
      async () => {
        const m = await scrape(bridge.healthUrl);
        expect(m.value('cloudtaser_bridge_beacon_replica_up', { replica: '127.0.0.1' })).toBe(0);
        expect(
          m.value('cloudtaser_bridge_beacon_dials_total', {
            replica: '127.0.0.1',
            result: 'CT_BEACON_UNREACHABLE',
          }),
        ).toBeGreaterThan(0);
      },
      { timeout: 10_000, interval: 50 },
    );
    // Its own registry: the stack's bridge still sees its replica up.
    expect(
      (await bridgeScrape()).value('cloudtaser_bridge_beacon_replica_up', { replica: '127.0.0.1' }),
    ).toBe(1);
    await bridge.close();
  });

  it("counts the bridge's own OpenBao requests by outcome with their latency, through the client's observer", async () => {
    const metrics = createBridgeMetrics({ processMetrics: false });
    const good = new OpenBaoClient({
      address: stack.openbao.address,
      token: stack.openbao.rootToken,
      observer: metrics.openbaoObserver,
    });
    const bad = good.withToken('not-a-token');
    closers.push(() => good.close());
    await good.request('GET', 'sys/mounts');
    await expect(bad.request('GET', 'sys/mounts')).rejects.toMatchObject({
      code: 'CT_OPENBAO_PERMISSION_DENIED',
    });
    const m = parseExposition(await metrics.registry.metrics());
    expect(m.value('cloudtaser_bridge_openbao_requests_total', { source: 'bridge', outcome: 'ok' })).toBe(1);
    expect(
      m.value('cloudtaser_bridge_openbao_requests_total', {
        source: 'bridge',
        outcome: 'CT_OPENBAO_PERMISSION_DENIED',
      }),
    ).toBe(1);
    expect(m.value('cloudtaser_bridge_openbao_request_duration_seconds_count', { source: 'bridge' })).toBe(2);
  });
});

describe('broker metrics', () => {
  it('exports its phase, tunnel state, bootstrap and beacon dials with their types and no per-pod or per-cluster label', async () => {
    const m = await brokerScrape();
    expect(m.types.get('cloudtaser_broker_phase')).toBe('gauge');
    expect(m.types.get('cloudtaser_broker_tunnel_up')).toBe('gauge');
    expect(m.types.get('cloudtaser_broker_podapi_request_duration_seconds')).toBe('histogram');
    expect(m.types.get('cloudtaser_broker_webhook_admissions_total')).toBe('counter');
    expect(m.value('cloudtaser_broker_phase', { phase: 'operational' })).toBe(1);
    expect(m.value('cloudtaser_broker_phase', { phase: 'bootstrapping' })).toBe(0);
    expect(m.value('cloudtaser_broker_tunnel_up')).toBe(1);
    expect(m.value('cloudtaser_broker_bootstraps_total', { outcome: 'signed' })).toBe(1);
    expect(
      m.value('cloudtaser_broker_beacon_dials_total', { replica: '127.0.0.1', result: 'paired' }),
    ).toBeGreaterThan(0);
    expect(m.value('cloudtaser_broker_beacon_replica_up', { replica: '127.0.0.1' })).toBe(1);
    // Which build answers (an upgrade test found no process saying its version anywhere).
    expect(
      m.value('cloudtaser_broker_build_info', { version: CLOUDTASER_VERSION, node: process.versions.node }),
    ).toBe(1);
    expect(
      (await bridgeScrape()).value('cloudtaser_bridge_build_info', {
        version: CLOUDTASER_VERSION,
        node: process.versions.node,
      }),
    ).toBe(1);
    for (const sample of m.samples) expect(sample.labels.cluster).toBeUndefined();
    expectCheapLabels(m);
  });

  it('forgets a beacon replica not dialed for 15 minutes, so a replica that left DNS does not page forever', async () => {
    let now = 0;
    const metrics = createBrokerMetrics({ processMetrics: false, now: () => now });
    const read = async () => parseExposition(await metrics.registry.metrics());
    metrics.beaconDial('10.0.0.7', 'CT_BEACON_UNREACHABLE');
    metrics.beaconDial('10.0.0.8', 'paired');
    let m = await read();
    expect(m.value('cloudtaser_broker_beacon_replica_up', { replica: '10.0.0.7' })).toBe(0);
    // The broker then holds its tunnel through .8 and dials nothing for a long time; .7 left DNS meanwhile.
    now = 15 * 60_000 + 1;
    m = await read();
    expect(m.samples.filter((s) => s.labels.replica !== undefined)).toEqual([]);
    // A replica dialed again is back.
    metrics.beaconDial('10.0.0.8', 'waiting');
    m = await read();
    expect(m.value('cloudtaser_broker_beacon_replica_up', { replica: '10.0.0.8' })).toBe(1);
    expect(m.value('cloudtaser_broker_beacon_dials_total', { replica: '10.0.0.8', result: 'waiting' })).toBe(
      1,
    );
    expect(m.samples.some((s) => s.labels.replica === '10.0.0.7')).toBe(false);
  });

  it('counts pod API requests by route and status with a latency histogram, and the bridge counts them as pod requests to OpenBao', async () => {
    const before = await brokerScrape();
    const bridgeBefore = await bridgeScrape();
    const denied = await stack.podRequest('GET', `/v1/secret/data/${SECRET_PATH}`);
    expect(denied.status).toBe(403);
    const refused = await stack.podRequest('GET', '/v1/sys/raw/anything');
    expect(refused.status).toBe(403);
    const m = await brokerScrape();
    const delta = (name: string, labels: Record<string, string>) =>
      m.sum(name, labels) - before.sum(name, labels);
    expect(delta('cloudtaser_broker_podapi_requests_total', { route: 'kv-read', status: '403' })).toBe(1);
    expect(delta('cloudtaser_broker_podapi_requests_total', { route: 'refused', status: '403' })).toBe(1);
    expect(delta('cloudtaser_broker_podapi_request_duration_seconds_count', { route: 'kv-read' })).toBe(1);
    expect(
      m.value('cloudtaser_broker_podapi_request_duration_seconds_bucket', { route: 'kv-read', le: '+Inf' }),
    ).toBe(m.value('cloudtaser_broker_podapi_request_duration_seconds_count', { route: 'kv-read' }));
    const b = await bridgeScrape();
    // The refused request never left the broker: only the read reached OpenBao.
    expect(
      b.sum('cloudtaser_bridge_openbao_requests_total', { source: 'pods' }) -
        bridgeBefore.sum('cloudtaser_bridge_openbao_requests_total', { source: 'pods' }),
    ).toBe(1);
  });

  it('counts every refusal by a pod API bound by kind, also those its log folds into one line a minute', async () => {
    const before = await brokerScrape();
    // All kinds are exported from the start, so increase() sees a first refusal.
    for (const limit of POD_API_LIMIT_KINDS)
      expect(before.value('cloudtaser_broker_podapi_limit_refusals_total', { limit }), limit).toBeDefined();
    const port = Number(new URL(stack.podApiUrl).port);
    const sockets: Socket[] = [];
    try {
      // A pod at 127.0.0.9 opens 8 connections (its bound), then 5 more: each of those is closed at accept.
      for (let i = 0; i < 8; i++) await openRaw(port, sockets, '127.0.0.9');
      const refused: Awaited<ReturnType<typeof openRaw>>[] = [];
      for (let i = 0; i < 5; i++) refused.push(await openRaw(port, sockets, '127.0.0.9'));
      await waitUntil(() => refused.every((client) => client.closed), {
        what: 'the 5 extra connections closed',
      });
      const m = await brokerScrape();
      const delta = (limit: string) =>
        m.value('cloudtaser_broker_podapi_limit_refusals_total', { limit })! -
        before.value('cloudtaser_broker_podapi_limit_refusals_total', { limit })!;
      expect(delta('address_connections')).toBe(5);
      expect(delta('connections')).toBe(0);
      // The log said it once (the rest go into the minute's summary); the metric has no pod address label.
      const logged = stack.logs.filter(
        (line) => line.includes('"event":"podapi.limit"') && line.includes('127.0.0.9'),
      );
      expect(logged).toHaveLength(1);
      expect(m.samples.some((sample) => Object.values(sample.labels).includes('127.0.0.9'))).toBe(false);
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  });

  it('counts TokenReviews on both sides when a pod logs in, and an unauthenticated review as unauthorized on the bridge', async () => {
    const login = await stack.podRequest('POST', '/v1/auth/kubernetes/login', {
      body: { role: ROLE, jwt: stack.podToken(BOUND_SA) },
    });
    expect(login.status).toBe(200);
    const m = await brokerScrape();
    expect(m.sum('cloudtaser_broker_tokenreviews_total', { kind: 'review' })).toBeGreaterThan(0);
    expect(
      m.value('cloudtaser_broker_podapi_requests_total', { route: 'kubernetes-login', status: '200' }),
    ).toBe(1);
    const b = await bridgeScrape();
    expect(b.value('cloudtaser_bridge_tokenreviews_total', { outcome: 'relayed' })).toBeGreaterThan(0);

    // A stranger that reaches the listener (it does not need to trust its certificate to try).
    const anyCertificate = new Agent({ connect: { rejectUnauthorized: false } });
    closers.push(() => anyCertificate.close());
    const stranger = await request(
      `${stack.bridge.tokenReviewUrl}/clusters/${stack.cluster.fingerprint}/apis/authentication.k8s.io/v1/tokenreviews`,
      {
        method: 'POST',
        dispatcher: anyCertificate,
        headers: { authorization: 'Bearer not-the-reviewer' },
        body: '{}',
      },
    );
    await stranger.body.text();
    expect(stranger.statusCode).toBe(401);
    expect(
      (await bridgeScrape()).value('cloudtaser_bridge_tokenreviews_total', { outcome: 'unauthorized' }),
    ).toBe(1);
  });

  it('counts webhook admissions by outcome: mutated, invalid', async () => {
    expect((await review(admissionOf('app-1'))).allowed).toBe(true);
    expect((await review('{not json')).status).toBe(400);
    const m = await brokerScrape();
    expect(m.value('cloudtaser_broker_webhook_admissions_total', { outcome: 'mutated' })).toBe(1);
    expect(m.value('cloudtaser_broker_webhook_admissions_total', { outcome: 'invalid' })).toBe(1);
  });

  it('counts migration progress on the broker and the accepted writes on the bridge', async () => {
    await stack.kube.createNamespace('legacy');
    await stack.kubeAdmin.createSecret('legacy', {
      metadata: { name: 'db', annotations: { [MIGRATE_ANNOTATION]: 'true' } },
      data: { password: Buffer.from('hunter2').toString('base64') },
    });
    const outcomes = await stack.broker.migrator!.runOnce();
    expect(outcomes.map((o) => o.result)).toEqual(['migrated']);
    const m = await brokerScrape();
    expect(m.value('cloudtaser_broker_migration_secrets_total', { result: 'migrated' })).toBe(1);
    expect(m.value('cloudtaser_broker_migration_state', { state: 'active' })).toBe(1);
    expect(
      (await bridgeScrape()).sum('cloudtaser_bridge_migration_requests_total', { outcome: 'accepted' }),
    ).toBeGreaterThan(0);
  });

  it('counts a refused bootstrap on both sides by its CT_ code, in its own registry', async () => {
    const second = createBrokerMetrics({ processMetrics: false });
    const intruder = await stack.startBroker({
      metrics: second,
      podApi: undefined,
      webhook: undefined,
      migration: undefined,
    });
    await intruder.waitForPhase('rejected', 20_000);
    const m = parseExposition(await second.registry.metrics());
    expect(
      m.value('cloudtaser_broker_bootstraps_total', { outcome: 'CT_ALREADY_INITIALIZED' }),
    ).toBeGreaterThan(0);
    expect(m.value('cloudtaser_broker_refusals_total', { code: 'CT_ALREADY_INITIALIZED' })).toBeGreaterThan(
      0,
    );
    expect(m.value('cloudtaser_broker_phase', { phase: 'rejected' })).toBe(1);
    // The first broker's registry did not see the second one's bootstrap.
    expect(
      (await brokerScrape()).value('cloudtaser_broker_bootstraps_total', {
        outcome: 'CT_ALREADY_INITIALIZED',
      }),
    ).toBeUndefined();
    const b = await bridgeScrape();
    expect(
      b.value('cloudtaser_bridge_bootstraps_total', { cluster, outcome: 'CT_ALREADY_INITIALIZED' }),
    ).toBeGreaterThan(0);
    expect(b.value('cloudtaser_bridge_refusals_total', { code: 'CT_ALREADY_INITIALIZED' })).toBeGreaterThan(
      0,
    );
    // Someone must act (a re-arm): both sides say so at warn, not at info, which a warn-level log drops.
    const logged = stack.logs.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(logged).toContainEqual(
      expect.objectContaining({
        event: 'bridge.bootstrap_refused',
        level: 'warn',
        code: 'CT_ALREADY_INITIALIZED',
      }),
    );
    expect(logged).toContainEqual(
      expect.objectContaining({
        event: 'broker.phase',
        phase: 'rejected',
        level: 'warn',
        code: 'CT_ALREADY_INITIALIZED',
      }),
    );
    await intruder.close();
  });

  it('shows a tunnel that drops and comes back: state, closes by the code the bridge gave and a second open on both sides', async () => {
    // The bridge's GOAWAY code, not the generic CT_TUNNEL_CLOSED: the dashboard's "closes by code" must tell a drain
    // from a deregistration.
    stack.bridge
      .tunnels(stack.cluster.fingerprint)[0]
      .close({ code: 'CT_TUNNEL_DRAINED', reason: 'test drop' });
    await vi.waitFor(
      async () => {
        const m = await brokerScrape();
        expect(m.value('cloudtaser_broker_tunnel_closes_total', { code: 'CT_TUNNEL_DRAINED' })).toBe(1);
        expect(m.value('cloudtaser_broker_tunnel_opens_total')).toBe(2);
        expect(m.value('cloudtaser_broker_tunnel_up')).toBe(1);
        const b = await bridgeScrape();
        expect(b.value('cloudtaser_bridge_tunnel_closes_total', { cluster })).toBe(1);
        expect(b.value('cloudtaser_bridge_tunnel_opens_total', { cluster })).toBe(2);
        expect(b.value('cloudtaser_bridge_tunnel_up', { cluster })).toBe(1);
      },
      { timeout: 20_000, interval: 50 },
    );
  });

  it('shows the tunnel down and the webhook refusing while the broker has no bridge', async () => {
    await stack.bridge.close();
    await vi.waitFor(
      async () => {
        expect((await brokerScrape()).value('cloudtaser_broker_tunnel_up')).toBe(0);
      },
      { timeout: 10_000, interval: 50 },
    );
    expect((await review(admissionOf('app-2'))).allowed).toBe(false);
    const m = await brokerScrape();
    expect(
      m.value('cloudtaser_broker_webhook_admissions_total', {
        outcome: 'refused',
        reason: 'ServiceUnavailable',
      }),
    ).toBe(1);
    expect(m.value('cloudtaser_broker_refusals_total', { code: 'CT_WEBHOOK_REFUSED' })).toBe(1);
    expect(m.value('cloudtaser_broker_phase', { phase: 'operational' })).toBe(0);
  });
});
