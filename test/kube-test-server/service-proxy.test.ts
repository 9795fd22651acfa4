/**
 * The Kubernetes test server's service proxy (`services/[scheme:]name[:port]/proxy/...`): it reaches the backend a
 * test registers, answers like kube-apiserver when a Service has no endpoint or the backend is down, and
 * authorizes `get services/proxy` by RBAC.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCloudtaserError } from '../../runtime/core/index.js';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { KubeClient } from '../../runtime/kube/index.js';

const NAMESPACE = 'cloudtaser-system';

let server: KubeTestServer;
let client: KubeClient;
let dispatcher: Agent;
let backend: http.Server;
let backendUrl: string;

beforeAll(async () => {
  server = await startKubeTestServer();
  await server.createNamespace(NAMESPACE);
  client = KubeClient.fromConnection({
    kind: 'token',
    host: server.url,
    token: server.adminToken,
    clusterCaCertificate: server.caCertPem,
  });
  dispatcher = new Agent({ connect: { ca: server.caCertPem } });
  // Echoes what reached it, so the tests see what the proxy forwarded.
  backend = http.createServer((req, res) => {
    const text = JSON.stringify({
      method: req.method,
      url: req.url,
      authorization: req.headers.authorization ?? null,
    });
    res.writeHead(req.url?.startsWith('/missing') ? 404 : 200, { 'content-type': 'application/json' });
    res.end(text);
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  backendUrl = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  server.registerServiceBackend(NAMESPACE, 'cloudtaser', 'metrics', backendUrl);
});

afterAll(async () => {
  client?.close();
  await dispatcher?.close();
  await server?.close();
  await new Promise((resolve) => backend?.close(resolve));
});

async function call(path: string, token = server.adminToken) {
  const res = await request(`${server.url}${path}`, {
    headers: { accept: 'application/json', authorization: `Bearer ${token}` },
    dispatcher,
  });
  const text = await res.body.text();
  return { status: res.statusCode, json: JSON.parse(text) };
}

const proxyPath = (service: string, rest: string) =>
  `/api/v1/namespaces/${NAMESPACE}/services/${service}/proxy/${rest}`;

describe('service proxy of the Kubernetes test server', () => {
  it('forwards a GET through KubeClient.getServiceProxy to the registered backend, without the API credentials', async () => {
    expect(await client.getServiceProxy(NAMESPACE, 'cloudtaser', 'metrics', 'status')).toEqual({
      method: 'GET',
      url: '/status',
      authorization: null,
    });
  });

  it('takes the http: scheme prefix, a service without a port, and passes the query string on', async () => {
    expect((await call(proxyPath('http:cloudtaser:metrics', 'status?verbose=1'))).json.url).toBe(
      '/status?verbose=1',
    );
    // A Service with a single port needs none in the path.
    expect((await call(proxyPath('cloudtaser', 'healthz'))).json.url).toBe('/healthz');
  });

  it("passes the backend's own status code through", async () => {
    const res = await call(proxyPath('cloudtaser:metrics', 'missing'));
    expect(res.status).toBe(404);
    expect(res.json.url).toBe('/missing');
  });

  it('answers a Service without endpoints with the API server 503 Status', async () => {
    server.registerServiceBackend(NAMESPACE, 'idle', 'metrics', null);
    const res = await call(proxyPath('idle:metrics', 'status'));
    expect(res.status).toBe(503);
    expect(res.json).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'no endpoints available for service "idle"',
      reason: 'ServiceUnavailable',
      code: 503,
    });
    // A port the Service does not have has no endpoint either.
    expect((await call(proxyPath('cloudtaser:other', 'status'))).status).toBe(503);
    const err = (await client
      .getServiceProxy(NAMESPACE, 'idle', 'metrics', 'status')
      .catch((e: unknown) => e)) as {
      code?: string;
      message: string;
    };
    expect(isCloudtaserError(err)).toBe(true);
    expect(err.code).toBe('CT_KUBE_ERROR');
    expect(err.message).toContain('with 503: no endpoints available for service "idle"');
  });

  it('answers an unknown Service with 404 and an unreachable backend with 503', async () => {
    const missing = await call(proxyPath('nope:metrics', 'status'));
    expect(missing.status).toBe(404);
    expect(missing.json.message).toBe('services "nope" not found');

    const dead = http.createServer();
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
    const port = (dead.address() as AddressInfo).port;
    await new Promise((resolve) => dead.close(resolve));
    server.registerServiceBackend(NAMESPACE, 'down', 'metrics', `http://127.0.0.1:${port}`);
    const down = await call(proxyPath('down:metrics', 'status'));
    expect(down.status).toBe(503);
    expect(down.json.reason).toBe('ServiceUnavailable');
    expect(down.json.message).toContain('error trying to reach service');
    expect(down.json.message).toContain('ECONNREFUSED');
  });

  it('authorizes get on services/proxy by RBAC', async () => {
    await server.createServiceAccount(NAMESPACE, 'viewer');
    const token = server.issueServiceAccountToken(NAMESPACE, 'viewer');
    const denied = await call(proxyPath('cloudtaser:metrics', 'status'), token);
    expect(denied.status).toBe(403);
    expect(denied.json.message).toBe(
      `services "cloudtaser:metrics" is forbidden: User "system:serviceaccount:${NAMESPACE}:viewer" cannot get resource "services/proxy" in API group "" in the namespace "${NAMESPACE}"`,
    );
    server.grant(
      { namespace: NAMESPACE, name: 'viewer' },
      { verbs: ['get'], resources: ['services/proxy'], namespace: NAMESPACE },
    );
    const allowed = await call(proxyPath('cloudtaser:metrics', 'status'), token);
    expect(allowed.status).toBe(200);
    expect(allowed.json.authorization).toBeNull();
  });
});
