/**
 * The cluster's API server down (connections refused) or black-holed (connections hang) for the broker only:
 * OpenBao, bridge and beacon are fine. The broker's Kubernetes client goes through an outage proxy.
 * - A pod login during the outage used to get 403 `permission denied` (OpenBao's answer to any failed
 *   TokenReview), exactly what a pod not bound to its role gets; the injected init container gave up at once.
 *   Now 503 with the cause (CT_KUBE_UNREACHABLE), which clients retry.
 * - Black-holed, the bridge's 10 s round-trip limit cancelled the broker's own 15 s call first, so /status said
 *   CT_CANCELLED; the broker now gives up at 8 s and names the cause.
 * - A broker started during an outage logged a warn line per retry; now one per code and minute.
 * - The webhook caBundle keeper said when it failed but not when it was current again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrokerOptions } from '../../runtime/broker/index.js';
import { startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { KubeClient } from '../../runtime/kube/index.js';
import { issueSelfSignedSync } from '../../runtime/pki/index.js';
import { keepWebhookCaBundle } from '../../runtime/webhook/ca-bundle.js';
import { captureLogger } from '../beacon/helpers.js';
import { FAST_BROKER_TIMING } from '../runtime/fixtures.js';
import { startOutageProxy } from '../support/outage-proxy.js';
import { webhookConfiguration } from './doctor-stack.js';
import {
  BOUND_SA,
  OPERATOR_NAMESPACE,
  OPERATOR_SA,
  type OperationalStack,
  ROLE,
  startOperationalStack,
} from './stack.js';

type OutageProxy = Awaited<ReturnType<typeof startOutageProxy>>;

/** The operational stack whose broker reaches the API server through an outage proxy. */
async function startOutageStack(
  options: {
    broker?: Partial<BrokerOptions> /** Refused from the broker's start for this long. */;
    downForMs?: number;
  } = {},
): Promise<{ stack: OperationalStack; proxy: OutageProxy; close(): Promise<void> }> {
  const brokerOptions: Partial<BrokerOptions> = { ...options.broker };
  let proxy: OutageProxy | undefined;
  let brokerKube: KubeClient | undefined;
  const stack = await startOperationalStack({
    logLevel: 'info',
    broker: brokerOptions,
    beforeBroker: async (kube) => {
      proxy = await startOutageProxy(new URL(kube.url));
      const client = KubeClient.fromConnection({
        kind: 'token',
        host: proxy.url,
        token: kube.issueServiceAccountToken(OPERATOR_NAMESPACE, OPERATOR_SA, { expirationSeconds: 7200 }),
        clusterCaCertificate: kube.caCertPem,
      });
      brokerKube = client;
      Object.assign(brokerOptions, {
        kube: client,
        fingerprint: async (signal: AbortSignal) =>
          (await client.getNamespace('kube-system', { signal })).metadata?.uid ?? '',
      });
      if (options.downForMs) {
        const down = proxy;
        down.set('refuse');
        setTimeout(() => down.set('up'), options.downForMs);
      }
    },
  });
  return {
    stack,
    proxy: proxy!,
    async close() {
      await stack.close();
      await proxy?.close();
      brokerKube?.close();
    },
  };
}

const events = (stack: OperationalStack) =>
  stack.logs.map((line) => JSON.parse(line) as Record<string, unknown>);

describe('pod logins while the API server is away', () => {
  let env: Awaited<ReturnType<typeof startOutageStack>>;
  beforeAll(async () => {
    env = await startOutageStack();
  }, 60_000);
  afterAll(async () => {
    await env?.close();
  });
  const login = () =>
    env.stack.podRequest('POST', '/v1/auth/kubernetes/login', {
      body: { role: ROLE, jwt: env.stack.podToken(BOUND_SA) },
    });

  it('refused: answers 503 naming CT_KUBE_UNREACHABLE (a retry, not "your role is wrong"), and 200 once it is back', async () => {
    expect((await login()).status).toBe(200);
    env.proxy.set('refuse');
    const down = await login();
    env.proxy.set('up');
    expect(down.status).toBe(503);
    expect(down.body.errors).toEqual([
      'permission denied',
      expect.stringMatching(/^CT_KUBE_UNREACHABLE: the cluster's API server did not answer the TokenReview/),
    ]);
    expect((await login()).status).toBe(200);
  });

  it('black-holed: the broker gives up before the bridge does and /status names CT_KUBE_UNREACHABLE', async () => {
    env.proxy.set('blackhole');
    const started = performance.now();
    const hung = await login();
    const waitedMs = performance.now() - started;
    env.proxy.set('up');
    expect(hung.status).toBe(503);
    expect(waitedMs).toBeLessThan(10_000);
    expect(env.stack.broker.status().tokenReview).toMatchObject({
      state: 'failing',
      lastErrorCode: 'CT_KUBE_UNREACHABLE',
    });
    let status = 0;
    for (let i = 0; i < 20 && status !== 200; i++) status = (await login()).status;
    expect(status).toBe(200);
  }, 30_000);

  it('a pod the role does not bind still gets the plain 403 while TokenReviews work', async () => {
    const answer = await env.stack.podRequest('POST', '/v1/auth/kubernetes/login', {
      body: { role: ROLE, jwt: env.stack.podToken('app-b') },
    });
    expect(answer).toEqual({ status: 403, body: { errors: ['service account name not authorized'] } });
  });
});

describe('a broker started while the API server is down', () => {
  it('comes up by itself once it answers, with one warn line for the outage, not one per retry', async () => {
    // Fast timing: a retry every 50 ms to 1 s, a dozen or more in the 4 s outage.
    const env = await startOutageStack({ broker: { timing: FAST_BROKER_TIMING }, downForMs: 4_000 });
    try {
      expect(env.stack.broker.status().phase).toBe('operational');
      const retries = events(env.stack).filter((line) => line.event === 'broker.retry');
      expect(retries.map((line) => line.code)).toEqual(['CT_KUBE_UNREACHABLE']);
    } finally {
      await env.close();
    }
  }, 60_000);
});

describe('the webhook caBundle keeper', () => {
  it('logs that it is current again after a failure, also when nothing needed patching', async () => {
    const kube = await startKubeTestServer();
    const proxy = await startOutageProxy(new URL(kube.url));
    const client = KubeClient.fromConnection(
      { kind: 'token', host: proxy.url, token: kube.adminToken, clusterCaCertificate: kube.caCertPem },
      { timeoutMs: 2_000 },
    );
    try {
      const ours = issueSelfSignedSync({ commonName: 'ours', dnsNames: ['ours'] }).certPem;
      await kube.createMutatingWebhookConfiguration(webhookConfiguration('flap', ours));
      const logs = captureLogger();
      const keeper = keepWebhookCaBundle({
        kube: client,
        configurationName: 'flap',
        caPem: ours,
        intervalMs: 3_600_000,
        retryMs: 3_600_000,
        logger: logs.logger,
      });
      await keeper.syncNow();
      proxy.set('refuse');
      await keeper.syncNow();
      proxy.set('up');
      await keeper.syncNow();
      await keeper.close();
      expect(keeper.status().state).toBe('current');
      expect(logs.lines.map((line) => line.event)).toEqual([
        'webhook.ca_bundle_failed',
        'webhook.ca_bundle_recovered',
      ]);
    } finally {
      client.close();
      await proxy.close();
      await kube.close();
    }
  });
});
