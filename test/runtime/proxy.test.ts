/**
 * Bridge and broker (in-process, through startBridge/startBroker, the libraries `bridge run` and `broker run` are
 * shells over) behind a real HTTP proxy: bootstrap and the operational tunnel on the TLS and WebSocket doors, the
 * broker's /status naming a proxy that refuses, and the bridge's degraded wait by name.
 */
import { once } from 'node:events';
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BridgeOptions } from '../../runtime/bridge/index.js';
import type { BrokerOptions } from '../../runtime/broker/index.js';
import { beaconProxySetting } from '../../runtime/proxy/index.js';
import { getClusterStatus } from '../../runtime/registration/index.js';
import { TUNNEL_INFO_PATH } from '../../runtime/tunnel/index.js';
import { captureLogger } from '../beacon/helpers.js';
import { startTestProxy, type TestProxy } from '../proxy/test-proxy.js';
import { waitUntil } from '../support/wait.js';
import {
  BEACON_NAME,
  REPLICA_IPS,
  type Replicas,
  type SecretStore,
  startReplicas,
  startSecretStore,
  startTestBridge,
  startTestBroker,
} from './fixtures.js';

/** A third address of the beacon name: it listens, so a direct dial would reach it; the proxy refuses it. */
const UNTOUCHED_IP = '127.0.0.3';

let store: SecretStore;
let replicas: Replicas;
let proxy: TestProxy;
let untouched: Server;
const untouchedConnections: Socket[] = [];
const running: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  store = await startSecretStore();
  replicas = await startReplicas();
  proxy = await startTestProxy();
  untouched = createNetServer((socket) => {
    untouchedConnections.push(socket);
    socket.destroy();
  });
  untouched.listen(replicas.port, UNTOUCHED_IP);
  await once(untouched, 'listening');
});

afterAll(async () => {
  untouched?.close();
  await proxy?.close();
  await replicas?.close();
  await store?.close();
});

afterEach(async () => {
  for (const handle of running.splice(0).reverse()) await handle.close();
  proxy.log.length = 0;
  for (const key of Object.keys(proxy.policy)) delete proxy.policy[key as keyof typeof proxy.policy];
});

const everyAddress = async (host: string) => (host === BEACON_NAME ? [...REPLICA_IPS, UNTOUCHED_IP] : [host]);

function address(door: 'tls' | 'wss'): string {
  return door === 'tls' ? replicas.address : `wss://${replicas.address}`;
}

async function bridge(extra: Partial<BridgeOptions> & Pick<BridgeOptions, 'beacons'>) {
  const handle = await startTestBridge({ openbao: store.admin, resolve: everyAddress, ...extra });
  running.push(handle);
  return handle;
}

async function broker(fingerprint: string, extra: Partial<BrokerOptions> & Pick<BrokerOptions, 'beacons'>) {
  const handle = await startTestBroker({ fingerprint, resolve: everyAddress, ...extra });
  running.push(handle);
  return handle;
}

describe('bridge and broker behind an HTTP proxy', () => {
  it.each(['tls', 'wss'] as const)(
    'bootstraps and holds the operational tunnel through the proxy on the %s door, with credentials, dialling nothing directly',
    async (door) => {
      proxy.policy.refuseHosts = [UNTOUCHED_IP];
      proxy.policy.credentials = { username: 'relay', password: 's3cret!' };
      const beaconProxy = beaconProxySetting(proxy.urlWith('relay', 's3cret!'), {});
      const cluster = await store.register();
      const before = untouchedConnections.length;
      const b = await bridge({ beacons: [address(door)], beaconProxy });
      const k = await broker(cluster.fingerprint, {
        beacons: [address(door)],
        beaconProxy,
        caSha256: cluster.operationalHash,
      });
      const status = await k.waitForPhase('operational', 20_000);
      expect(REPLICA_IPS).toContain(status.beaconIp);
      expect((await getClusterStatus(store.admin, { fingerprint: cluster.fingerprint })).initialized).toBe(
        true,
      );
      const reply = await k.tunnel()!.request({ method: 'GET', path: TUNNEL_INFO_PATH });
      expect(JSON.parse(reply.body.toString())).toMatchObject({ role: 'bridge' });
      await waitUntil(() => b.tunnels(cluster.fingerprint).length === 1, {
        timeoutMs: 5_000,
        what: 'bridge tunnel',
      });

      // Both rooms were reached through the proxy, on every replica address, with the credentials.
      for (const ip of REPLICA_IPS) {
        const tunnels = proxy.tunnelsTo(ip, replicas.port);
        expect(tunnels.filter((e) => e.outcome === 200).length).toBeGreaterThanOrEqual(2);
        expect(tunnels.every((e) => e.username === 'relay')).toBe(true);
      }
      expect(proxy.tunnelsTo(UNTOUCHED_IP, replicas.port).every((e) => e.outcome === 403)).toBe(true);
      expect(proxy.tunnelsTo(UNTOUCHED_IP, replicas.port).length).toBeGreaterThan(0);
      expect(untouchedConnections.length).toBe(before);
    },
  );

  it("puts a proxy refusal in the broker's /status with the proxy's name and a CT_PROXY code, never as beacon unreachable", async () => {
    proxy.policy.credentials = { username: 'relay', password: 'right' };
    const cluster = await store.register();
    const k = await broker(cluster.fingerprint, {
      beacons: [address('wss')],
      beaconProxy: beaconProxySetting(undefined, { HTTPS_PROXY: proxy.urlWith('relay', 'wrong') }),
      health: { host: '127.0.0.1', port: 0 },
    });
    const status = (await waitUntil(
      async () => {
        const body = (await (await fetch(`${k.healthUrl}/status`)).json()) as Record<string, string>;
        return body.lastErrorCode ? body : undefined;
      },
      { timeoutMs: 10_000 },
    )) as Record<string, string>;
    expect(status.lastErrorCode).toBe('CT_PROXY_AUTH');
    // Between retries the reason names the current step and still carries the last failure; lastError keeps it.
    expect(status.lastError).toContain(`the HTTP proxy ${proxy.url} (HTTPS_PROXY) answered CONNECT`);
    expect(status.reason).toContain(`the HTTP proxy ${proxy.url} (HTTPS_PROXY) answered CONNECT`);
    expect(status.reason).toContain('refused the user name and password in the proxy URL');
    expect(status.reason).not.toMatch(/unreachable|wrong/);
  });

  it('waits on the beacon by name when the proxy tunnels to names only, pairs with a broker doing the same, and logs the reduced fan-out once', async () => {
    // One replica behind the name in the proxy's own DNS, so both sides meet there.
    proxy.policy.refuseIpLiterals = true;
    proxy.policy.hosts = { [BEACON_NAME]: REPLICA_IPS[0] };
    const beaconProxy = beaconProxySetting(proxy.url, {});
    const bridgeLogs = captureLogger();
    const cluster = await store.register();
    await bridge({ beacons: [address('tls')], beaconProxy, logger: bridgeLogs.logger });
    const k = await broker(cluster.fingerprint, { beacons: [address('tls')], beaconProxy });
    const status = await k.waitForPhase('operational', 20_000);
    expect(status.beaconIp).toBe(BEACON_NAME);
    const reduced = bridgeLogs.lines.filter((line) => line.event === 'beacon.fanout_reduced');
    expect(reduced).toHaveLength(1);
    expect(reduced[0]).toMatchObject({
      module: 'bridge',
      proxy: proxy.url,
      reason: expect.stringContaining(
        'the proxy refused CONNECT to every replica address of beacon.test (3 addresses; 403)',
      ),
    });
    expect(proxy.tunnelsTo(BEACON_NAME, replicas.port).some((e) => e.outcome === 200)).toBe(true);
  });

  it('waits by name when only the proxy can resolve the beacon, and says so', async () => {
    proxy.policy.hosts = { [BEACON_NAME]: REPLICA_IPS[1] };
    const unresolvable = async (host: string): Promise<string[]> => {
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    };
    const beaconProxy = beaconProxySetting(undefined, { https_proxy: proxy.url });
    const bridgeLogs = captureLogger();
    const cluster = await store.register();
    await bridge({
      beacons: [address('wss')],
      beaconProxy,
      resolve: unresolvable,
      logger: bridgeLogs.logger,
    });
    const k = await broker(cluster.fingerprint, {
      beacons: [address('wss')],
      beaconProxy,
      resolve: unresolvable,
    });
    await k.waitForPhase('operational', 20_000);
    const reduced = bridgeLogs.lines.filter((line) => line.event === 'beacon.fanout_reduced');
    expect(reduced).toHaveLength(1);
    expect(reduced[0].reason).toMatch(/this host cannot resolve beacon\.test/);
    expect(bridgeLogs.lines.find((line) => line.event === 'beacon.route')).toMatchObject({
      proxy: proxy.url,
      proxySource: 'https_proxy',
    });
  });
});
