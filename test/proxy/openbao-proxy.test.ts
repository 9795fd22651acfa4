/**
 * The OpenBao client (what the CLI, the provider and the bridge construct) and the bridge's pod API forwarder
 * through a real HTTP proxy: undici's ProxyAgent, chosen by the process's proxy rule. OpenBao runs HTTPS with its
 * own CA, so the CONNECT tunnel carries TLS checked end to end.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isCloudtaserError } from '../../runtime/core/index.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { issueSelfSignedSync } from '../../runtime/pki/index.js';
import { createOpenBaoForwarder } from '../../runtime/podapi/forward.js';
import { OPENBAO_TUNNEL_PREFIX } from '../../runtime/podapi/protocol.js';
import { beaconProxySetting, proxySettingFromEnvironment } from '../../runtime/proxy/index.js';
import { startTestProxy, type TestProxy } from './test-proxy.js';

const certificate = issueSelfSignedSync({
  commonName: 'openbao test',
  dnsNames: ['localhost'],
  ipAddresses: ['127.0.0.1'],
});

let openbao: OpenBaoTestServer;
let plainOpenbao: OpenBaoTestServer;
let proxy: TestProxy;
let address: string;
let port: number;
const clients: OpenBaoClient[] = [];
const savedEnv = { ...process.env };

beforeAll(async () => {
  openbao = await startOpenBaoTestServer({ tls: certificate });
  plainOpenbao = await startOpenBaoTestServer();
  port = Number(new URL(openbao.address).port);
  address = `https://localhost:${port}`;
  proxy = await startTestProxy({ credentials: { username: 'bao', password: 'p@ss' } });
});

afterEach(async () => {
  for (const client of clients.splice(0)) await client.close();
  proxy.log.length = 0;
  delete proxy.policy.refusePorts;
  for (const key of ['https_proxy', 'HTTPS_PROXY', 'http_proxy', 'HTTP_PROXY', 'no_proxy', 'NO_PROXY']) {
    if (savedEnv[key] === undefined) delete process.env[key];
    else process.env[key] = savedEnv[key];
  }
});

afterAll(async () => {
  await proxy?.close();
  await openbao?.close();
  await plainOpenbao?.close();
});

function client(options: Partial<ConstructorParameters<typeof OpenBaoClient>[0]> = {}): OpenBaoClient {
  const made = new OpenBaoClient({
    address,
    token: openbao.rootToken,
    caCertPem: certificate.certPem,
    retries: 1,
    retryBaseDelayMs: 1,
    ...options,
  });
  clients.push(made);
  return made;
}

async function failure(promise: Promise<unknown>): Promise<Error & { code: string }> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isCloudtaserError(err), String(err)).toBe(true);
  return err as Error & { code: string };
}

describe('OpenBao client behind an HTTP proxy', () => {
  it('takes HTTPS_PROXY from the environment by default, authenticates to the proxy and checks OpenBao TLS end to end', async () => {
    process.env.HTTPS_PROXY = proxy.urlWith('bao', 'p@ss');
    const bao = client();
    const health = await bao.health();
    expect(health.initialized).toBe(true);
    const tunnels = proxy.tunnelsTo('localhost', port);
    expect(tunnels.length).toBeGreaterThanOrEqual(1);
    expect(tunnels.every((e) => e.outcome === 200 && e.username === 'bao')).toBe(true);
    expect(openbao.requestLog().some((entry) => entry.path.endsWith('sys/health'))).toBe(true);

    // A client that does not trust OpenBao's CA fails on OpenBao's certificate, not on the proxy's.
    const untrusting = client({ caCertPem: undefined });
    const err = await failure(untrusting.health());
    expect(err.code).toBe('CT_OPENBAO_TLS');
    expect(err.message).toContain(`through the HTTP proxy ${proxy.url} (HTTPS_PROXY)`);
  });

  it('fails wrong proxy credentials once with CT_PROXY_AUTH naming the proxy, without retrying or showing them', async () => {
    const bao = client({ proxy: proxySettingFromEnvironment({ https_proxy: proxy.urlWith('bao', 'nope') }) });
    const err = await failure(bao.health());
    expect(err.code).toBe('CT_PROXY_AUTH');
    expect(err.message).toContain(
      `the HTTP proxy ${proxy.url} (https_proxy) answered CONNECT localhost:${port} with 407`,
    );
    expect(err.message).not.toContain('nope');
    expect(proxy.log.filter((e) => e.outcome === 407)).toHaveLength(1);
  });

  it('reports a refused CONNECT as CT_PROXY_REFUSED and an unreachable proxy as CT_PROXY_UNREACHABLE', async () => {
    proxy.policy.refusePorts = [port];
    const refused = await failure(
      client({ proxy: beaconProxySetting(proxy.urlWith('bao', 'p@ss'), {}, 'HTTPS_PROXY') }).health(),
    );
    expect(refused.code).toBe('CT_PROXY_REFUSED');
    expect(refused.message).toContain(`refused CONNECT localhost:${port} with 403 Forbidden`);

    const dead = await startTestProxy();
    await dead.close();
    const unreachable = await failure(
      client({ proxy: proxySettingFromEnvironment({ HTTPS_PROXY: dead.url }) }).health(),
    );
    expect(unreachable.code).toBe('CT_PROXY_UNREACHABLE');
    expect(unreachable.message).toContain(`could not reach the HTTP proxy ${dead.url} (HTTPS_PROXY)`);
    expect(unreachable.message).not.toMatch(/could not reach OpenBao/);
  });

  it('goes direct for a NO_PROXY host and for http:// OpenBao when only HTTPS_PROXY is set; HTTP_PROXY carries http://', async () => {
    process.env.HTTPS_PROXY = proxy.urlWith('bao', 'p@ss');
    process.env.NO_PROXY = 'localhost';
    expect((await client().health()).initialized).toBe(true);
    delete process.env.NO_PROXY;
    const plain = client({
      address: plainOpenbao.address,
      caCertPem: undefined,
      token: plainOpenbao.rootToken,
    });
    expect((await plain.health()).initialized).toBe(true);
    expect(proxy.log).toEqual([]);

    process.env.HTTP_PROXY = proxy.urlWith('bao', 'p@ss');
    const viaHttpProxy = client({
      address: plainOpenbao.address,
      caCertPem: undefined,
      token: plainOpenbao.rootToken,
    });
    expect((await viaHttpProxy.health()).initialized).toBe(true);
    const plainPort = Number(new URL(plainOpenbao.address).port);
    expect(proxy.tunnelsTo('127.0.0.1', plainPort).map((e) => e.outcome)).toEqual([200]);
  });

  it("carries the bridge's pod API forwarding through the proxy too", async () => {
    const forwarder = createOpenBaoForwarder({
      address,
      caCertPem: certificate.certPem,
      proxy: proxySettingFromEnvironment({ HTTPS_PROXY: proxy.urlWith('bao', 'p@ss') }),
    });
    try {
      const reply = await forwarder.forward('cloudtaser/none', {
        method: 'GET',
        path: `${OPENBAO_TUNNEL_PREFIX}secret/data/app`,
        headers: {},
        body: Buffer.alloc(0),
      });
      // OpenBao itself answered (the namespace does not exist), not the forwarder's 503 for "unreachable".
      expect(reply.status).toBe(404);
      expect(openbao.requestLog().some((entry) => entry.path.endsWith('secret/data/app'))).toBe(true);
      expect(proxy.tunnelsTo('localhost', port).map((e) => e.outcome)).toEqual([200]);
    } finally {
      await forwarder.close();
    }
  });
});
