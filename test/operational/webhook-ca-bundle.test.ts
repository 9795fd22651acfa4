/**
 * The operator keeps its own MutatingWebhookConfiguration's caBundle current, against the Kubernetes test server
 * with the RBAC the chart grants (get/patch on that one name): after a start, after `helm upgrade` drops the
 * bundle, after a restart with a new in-memory CA; and the API server's view (the bundle) really verifies the
 * webhook's serving certificate. No bridge is needed: the webhook and the bundle do not wait for the tunnel.
 */
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrokerHandle } from '../../runtime/broker/index.js';
import { startBroker } from '../../runtime/broker/index.js';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { KubeClient } from '../../runtime/kube/index.js';
import { NOT_CONNECTED_MESSAGE, WEBHOOK_PATH } from '../../runtime/webhook/index.js';
import { waitUntil } from '../support/wait.js';

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes JSON is read loosely in assertions
type Loose = any;

const OPERATOR = { namespace: 'cloudtaser-system', name: 'cloudtaser' };
const CONFIGURATION = 'cloudtaser';
const API = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations';

let kube: KubeTestServer;
let admin: Agent;
let operatorKube: KubeClient;

/** What `helm install` (or `helm upgrade`) applies: the chart's configuration, without a caBundle. */
const chartConfiguration = {
  apiVersion: 'admissionregistration.k8s.io/v1',
  kind: 'MutatingWebhookConfiguration',
  metadata: { name: CONFIGURATION },
  webhooks: [
    {
      name: 'inject.cloudtaser.io',
      admissionReviewVersions: ['v1'],
      sideEffects: 'None',
      clientConfig: { service: { name: 'cloudtaser', namespace: OPERATOR.namespace, path: WEBHOOK_PATH } },
      rules: [
        {
          apiGroups: [''],
          apiVersions: ['v1'],
          operations: ['CREATE'],
          resources: ['pods'],
          scope: 'Namespaced',
        },
      ],
    },
  ],
};

async function api(method: string, path: string, body?: unknown, contentType = 'application/json') {
  const response = await request(`${kube.url}${path}`, {
    method: method as 'GET',
    dispatcher: admin,
    headers: { authorization: `Bearer ${kube.adminToken}`, 'content-type': contentType },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.statusCode, body: (await response.body.json()) as Record<string, Loose> };
}

async function storedBundle(name = CONFIGURATION): Promise<string | undefined> {
  const got = await api('GET', `${API}/${name}`);
  expect(got.status).toBe(200);
  return got.body.webhooks[0].clientConfig.caBundle;
}

async function startOperator(configurationName = CONFIGURATION): Promise<BrokerHandle> {
  return startBroker({
    fingerprint: kube.kubeSystemUid,
    // Nothing listens here: the tunnel stays down, which the webhook must not need.
    beacons: ['127.0.0.1:9'],
    kube: operatorKube,
    webhook: {
      host: '127.0.0.1',
      port: 0,
      dnsNames: ['localhost'],
      injection: { image: 'ghcr.io/cloudtaser/cloudtaser-operator:test' },
      configurationName,
      caBundleIntervalMs: 200,
    },
  });
}

beforeAll(async () => {
  kube = await startKubeTestServer();
  admin = new Agent({ connect: { ca: kube.caCertPem } });
  await kube.createServiceAccount(OPERATOR.namespace, OPERATOR.name);
  // Exactly the chart's rule (rbac.yaml): get and patch on the one configuration it names.
  kube.grant(OPERATOR, {
    verbs: ['get', 'patch'],
    apiGroups: ['admissionregistration.k8s.io'],
    resources: ['mutatingwebhookconfigurations'],
    resourceNames: [CONFIGURATION],
  });
  operatorKube = KubeClient.fromConnection({
    kind: 'token',
    host: kube.url,
    token: kube.issueServiceAccountToken(OPERATOR.namespace, OPERATOR.name, { expirationSeconds: 7200 }),
    clusterCaCertificate: kube.caCertPem,
  });
  expect((await api('POST', API, chartConfiguration)).status).toBe(201);
});
afterAll(async () => {
  operatorKube?.close();
  await admin?.close();
  await kube?.close();
});

describe('webhook caBundle kept by the operator', () => {
  it('sets the bundle on start, and the bundle verifies the webhook as the API server would call it', async () => {
    const operator = await startOperator();
    try {
      await waitUntil(() => operator.status().webhookCaBundle?.state === 'current', {
        timeoutMs: 10_000,
        what: 'caBundle current',
      });
      const bundle = await storedBundle();
      expect(Buffer.from(bundle!, 'base64').toString()).toBe(operator.status().webhookCaPem);

      // Call the webhook trusting only what the configuration says, like the API server.
      const asApiServer = new Agent({ connect: { ca: Buffer.from(bundle!, 'base64').toString() } });
      try {
        const response = await request(
          `${operator.webhookUrl!.replace('127.0.0.1', 'localhost')}${WEBHOOK_PATH}`,
          {
            method: 'POST',
            dispatcher: asApiServer,
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({
              kind: 'AdmissionReview',
              apiVersion: 'admission.k8s.io/v1',
              request: {
                uid: 'ca-bundle-check',
                kind: { group: '', version: 'v1', kind: 'Pod' },
                resource: { group: '', version: 'v1', resource: 'pods' },
                namespace: 'team-a',
                operation: 'CREATE',
                object: {
                  apiVersion: 'v1',
                  kind: 'Pod',
                  metadata: { name: 'p', namespace: 'team-a', labels: { 'cloudtaser.io/inject': 'true' } },
                  spec: { containers: [{ name: 'app', image: 'busybox' }] },
                },
              },
            }),
          },
        );
        expect(response.statusCode).toBe(200);
        const review = (await response.body.json()) as {
          response: { uid: string; allowed: boolean; status?: { message: string } };
        };
        expect(review.response.uid).toBe('ca-bundle-check');
        // The tunnel is down, so the answer is the fast, explicit refusal rather than a TLS failure.
        expect(review.response.allowed).toBe(false);
        expect(review.response.status?.message).toBe(NOT_CONNECTED_MESSAGE);
      } finally {
        await asApiServer.close();
      }

      // `helm upgrade` re-applies the chart's configuration, which has no caBundle: put back within a round.
      const current = await api('GET', `${API}/${CONFIGURATION}`);
      const replaced = await api('PUT', `${API}/${CONFIGURATION}`, {
        ...chartConfiguration,
        metadata: { name: CONFIGURATION, resourceVersion: current.body.metadata.resourceVersion },
      });
      expect(replaced.status).toBe(200);
      expect(await storedBundle()).toBeUndefined();
      await waitUntil(async () => (await storedBundle()) === bundle, {
        timeoutMs: 10_000,
        what: 'caBundle restored',
      });
    } finally {
      await operator.close();
    }
  });

  it('a restarted operator (new in-memory CA) replaces the previous bundle', async () => {
    const first = await startOperator();
    await waitUntil(() => first.status().webhookCaBundle?.state === 'current', {
      timeoutMs: 10_000,
      what: 'first',
    });
    const firstCa = first.status().webhookCaPem;
    await first.close();
    const second = await startOperator();
    try {
      await waitUntil(() => second.status().webhookCaBundle?.state === 'current', {
        timeoutMs: 10_000,
        what: 'second',
      });
      expect(second.status().webhookCaPem).not.toBe(firstCa);
      expect(Buffer.from((await storedBundle())!, 'base64').toString()).toBe(second.status().webhookCaPem);
    } finally {
      await second.close();
    }
  });

  it('reports in /status what RBAC it lacks when the configuration is not the one it may patch', async () => {
    expect(
      (await api('POST', API, { ...chartConfiguration, metadata: { name: 'someone-elses' } })).status,
    ).toBe(201);
    const operator = await startOperator('someone-elses');
    try {
      const status = await waitUntil(
        () => (operator.status().webhookCaBundle?.state === 'failing' ? operator.status() : undefined),
        { timeoutMs: 10_000, what: 'failing' },
      );
      expect(status?.webhookCaBundle?.lastErrorCode).toBe('CT_KUBE_FORBIDDEN');
      expect(status?.webhookCaBundle?.reason).toMatch(
        /get and patch on mutatingwebhookconfigurations with resourceNames \[someone-elses\]/,
      );
      expect(await storedBundle('someone-elses')).toBeUndefined();
    } finally {
      await operator.close();
    }
  });
});
