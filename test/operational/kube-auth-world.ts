/**
 * What OpenBao's Kubernetes auth through cloudtaser needs around the bridges under test: an OpenBao test server, a
 * Kubernetes test server (the cluster) with the operator's service account allowed TokenReviews and namespace
 * reads, a broker client for it, and pod logins as OpenBao's clients make them.
 */
import { Agent, request } from 'undici';
import { expect } from 'vitest';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { KubeClient } from '../../runtime/kube/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';

export interface KubeAuthWorld {
  readonly openbao: OpenBaoTestServer;
  /** Root token: registration and roles. */
  readonly admin: OpenBaoClient;
  readonly kube: KubeTestServer;
  /** The operator's service account (TokenReviews, namespace reads): what the broker uses. */
  readonly brokerKube: KubeClient;
  /** Creates a namespace with labels and a service account `app` in it. */
  createAppNamespace(name: string, labels?: Record<string, string>): Promise<void>;
  /** Role `role` of the cluster namespace lets service account `app` of `namespaces` read secret/data/app/*. */
  writeAppRole(clusterNamespace: string, role: string, namespaces: readonly string[]): Promise<void>;
  /** A pod of `podNamespace` logs in to OpenBao with its service account token; the HTTP status. */
  login(clusterNamespace: string, role: string, podNamespace: string): Promise<number>;
  close(): Promise<void>;
}

export async function startKubeAuthWorld(): Promise<KubeAuthWorld> {
  const openbao = await startOpenBaoTestServer();
  const admin = new OpenBaoClient({ address: openbao.address, token: openbao.rootToken });
  const kube = await startKubeTestServer();
  await kube.createServiceAccount('cloudtaser-system', 'cloudtaser');
  const operator = { namespace: 'cloudtaser-system', name: 'cloudtaser' };
  kube.grant(operator, {
    verbs: ['create'],
    resources: ['tokenreviews'],
    apiGroups: ['authentication.k8s.io'],
  });
  kube.grant(operator, { verbs: ['get'], resources: ['namespaces'] });
  const brokerKube = KubeClient.fromConnection({
    kind: 'token',
    host: kube.url,
    token: kube.issueServiceAccountToken('cloudtaser-system', 'cloudtaser', { expirationSeconds: 7200 }),
    clusterCaCertificate: kube.caCertPem,
  });
  return {
    openbao,
    admin,
    kube,
    brokerKube,
    async createAppNamespace(name, labels = {}) {
      const agent = new Agent({ connect: { ca: kube.caCertPem } });
      try {
        const response = await request(`${kube.url}/api/v1/namespaces`, {
          method: 'POST',
          dispatcher: agent,
          headers: { authorization: `Bearer ${kube.adminToken}`, 'content-type': 'application/json' },
          body: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } }),
        });
        expect(response.statusCode).toBe(201);
        await response.body.dump();
      } finally {
        await agent.close();
      }
      await kube.createServiceAccount(name, 'app');
    },
    async writeAppRole(clusterNamespace, role, namespaces) {
      const ns = admin.withNamespace(clusterNamespace);
      await ns.writePolicy('read', 'path "secret/data/app/*" { capabilities = ["read"] }');
      await ns.writeKubernetesAuthRole('kubernetes', role, {
        boundServiceAccountNames: ['app'],
        boundServiceAccountNamespaces: [...namespaces],
        policies: ['read'],
        ttl: '1h',
      });
    },
    async login(clusterNamespace, role, podNamespace) {
      const jwt = kube.issueServiceAccountToken(podNamespace, 'app', { expirationSeconds: 600 });
      const response = await request(`${openbao.address}/v1/auth/kubernetes/login`, {
        method: 'POST',
        headers: { 'x-vault-namespace': clusterNamespace, 'content-type': 'application/json' },
        body: JSON.stringify({ role, jwt }),
      });
      await response.body.dump();
      return response.statusCode;
    },
    async close() {
      brokerKube.close();
      await kube.close();
      await admin.close();
      await openbao.close();
    },
  };
}
