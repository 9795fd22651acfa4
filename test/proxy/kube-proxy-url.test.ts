/**
 * The Kubernetes client keeps a kubeconfig's `proxy-url` (clusters[].cluster.proxy-url, as kubectl reads it):
 * @kubernetes/client-node tunnels through it (hpagent), and a proxy refusal gets its CT_PROXY code with the
 * proxy named. Through a real HTTP proxy (proxy-chain) in front of the Kubernetes test server.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { isCloudtaserError } from '../../runtime/core/index.js';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { readClusterFingerprint } from '../../runtime/kube/index.js';
import { startTestProxy, type TestProxy } from './test-proxy.js';

let kube: KubeTestServer;
let proxy: TestProxy;
let dir: string;
let kubePort: number;

beforeAll(async () => {
  kube = await startKubeTestServer();
  kubePort = Number(new URL(kube.url).port);
  proxy = await startTestProxy({ credentials: { username: 'kube', password: 'kube-pass' } });
  dir = await mkdtemp(join(tmpdir(), 'ct-kube-proxy-'));
});

afterEach(() => {
  proxy.log.length = 0;
});

afterAll(async () => {
  await proxy?.close();
  await kube?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The test server's kubeconfig with `proxy-url` set on its cluster. */
async function kubeconfigVia(proxyUrl: string, name: string): Promise<string> {
  const path = join(dir, name);
  await kube.writeKubeconfig(path);
  const config = parse(await readFile(path, 'utf8')) as { clusters: { cluster: Record<string, unknown> }[] };
  for (const entry of config.clusters) entry.cluster['proxy-url'] = proxyUrl;
  await writeFile(path, stringify(config));
  return path;
}

describe('kubeconfig proxy-url', () => {
  it('reads the fingerprint through the proxy named by proxy-url, with its credentials', async () => {
    const path = await kubeconfigVia(proxy.urlWith('kube', 'kube-pass'), 'good');
    const fingerprint = await readClusterFingerprint({ kind: 'kubeconfig', path });
    expect(fingerprint).toBe(kube.kubeSystemUid);
    const tunnels = proxy.log.filter((entry) => entry.port === kubePort);
    expect(tunnels.length).toBeGreaterThanOrEqual(1);
    expect(tunnels.every((entry) => entry.method === 'CONNECT' && entry.outcome === 200)).toBe(true);
    expect(tunnels[0].username).toBe('kube');
  });

  it('fails wrong proxy credentials with CT_PROXY_AUTH naming the proxy, not the API server as unreachable', async () => {
    const path = await kubeconfigVia(proxy.urlWith('kube', 'wrong'), 'wrong');
    const err = await readClusterFingerprint({ kind: 'kubeconfig', path }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isCloudtaserError(err, 'CT_PROXY_AUTH'), String(err)).toBe(true);
    expect((err as Error).message).toContain(`the HTTP proxy ${proxy.url} (the kubeconfig proxy-url)`);
    expect((err as Error).message).not.toContain('wrong');
  });
});
