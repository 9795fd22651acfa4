/**
 * The operator runs with exactly the RBAC its chart grants, and uses all of it: the chart is rendered with every
 * switch on (attestation, the webhook caBundle kept by the operator, migration in one namespace), its Roles and
 * ClusterRoles are given to the operator's service account in the Kubernetes test server, and every feature is
 * exercised (fingerprint, TokenReview, a namespace-selector login, attested bootstrap, caBundle, a migration).
 * The API server's audit of that service account must show no refusal, only calls the code declares
 * (runtime/kube/permissions.ts), and a use of every grant.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeAuditEntry, PolicyRule } from '../../runtime/dev/kube/index.js';
import { KUBE_CALLS, operatorKubeAccess, type ResourcePermission } from '../../runtime/kube/permissions.js';
import { MIGRATE_ANNOTATION } from '../../runtime/migration/index.js';
import { type K8sObject, objectsOf, only, render } from '../charts/render.js';
import { waitUntil } from '../support/wait.js';
import {
  APP_NAMESPACE,
  BOUND_SA,
  OPERATOR_NAMESPACE,
  OPERATOR_SA,
  type OperationalStack,
  startOperationalStack,
} from './stack.js';

const MIGRATION_NS = 'legacy';
const audit: KubeAuditEntry[] = [];
const operatorUser = `system:serviceaccount:${OPERATOR_NAMESPACE}:${OPERATOR_SA}`;
const rendered = render(
  'cloudtaser',
  { operator: { migration: { enabled: true, namespaces: [MIGRATION_NS] } } },
  { name: 'cloudtaser', namespace: OPERATOR_NAMESPACE },
);
const webhookConfiguration = only(rendered, 'MutatingWebhookConfiguration');
let stack: OperationalStack;

/** What the rendered Roles/ClusterRoles grant the operator, as the test server's authorizer takes it. */
function chartRules(): PolicyRule[] {
  const rules: PolicyRule[] = [];
  const roles = [...objectsOf(rendered, 'Role'), ...objectsOf(rendered, 'ClusterRole')];
  for (const binding of [
    ...objectsOf(rendered, 'RoleBinding'),
    ...objectsOf(rendered, 'ClusterRoleBinding'),
  ]) {
    if (
      !binding.subjects.some((s: K8sObject) => s.name === OPERATOR_SA && s.namespace === OPERATOR_NAMESPACE)
    )
      continue;
    const role = roles.find(
      (r) =>
        r.kind === binding.roleRef.kind &&
        r.metadata.name === binding.roleRef.name &&
        (r.kind === 'ClusterRole' || r.metadata.namespace === binding.metadata.namespace),
    );
    for (const rule of role.rules)
      rules.push({
        verbs: rule.verbs,
        resources: rule.resources,
        apiGroups: rule.apiGroups,
        ...(rule.resourceNames ? { resourceNames: rule.resourceNames } : {}),
        ...(binding.kind === 'RoleBinding' ? { namespace: binding.metadata.namespace } : {}),
      });
  }
  return rules;
}

beforeAll(async () => {
  stack = await startOperationalStack({
    // The bridge serves migration only for a registration that allows it.
    registration: { migration: true },
    operatorRbac: chartRules(),
    kubeAudit: (entry) => {
      if (entry.user === operatorUser) audit.push(entry);
    },
    beforeBroker: async (kube) => {
      await kube.createMutatingWebhookConfiguration(webhookConfiguration);
      await kube.createNamespace(MIGRATION_NS);
    },
    broker: {
      attestation: { serviceAccount: { namespace: OPERATOR_NAMESPACE, name: OPERATOR_SA } },
      webhook: {
        host: '127.0.0.1',
        port: 0,
        dnsNames: ['localhost'],
        injection: { image: 'operator:test' },
        configurationName: webhookConfiguration.metadata.name,
        caBundleIntervalMs: 200,
      },
      migration: { namespaces: [MIGRATION_NS], intervalMs: 100 },
    },
  });
}, 90_000);
afterAll(async () => {
  await stack?.close();
});

describe('operator RBAC as the chart renders it', () => {
  it('is enough for every feature, is never refused, and every grant is used by a call the code declares', async () => {
    // TokenReview (a pod login) and a namespace read (a role with a namespace selector).
    const ns = stack.clusterAdmin;
    await ns.writeKubernetesAuthRole('kubernetes', 'by-label', {
      boundServiceAccountNames: [BOUND_SA],
      boundServiceAccountNamespaces: [],
      boundServiceAccountNamespaceSelector: `{"matchLabels":{"kubernetes.io/metadata.name":"${APP_NAMESPACE}"}}`,
      policies: ['app-read'],
    });
    const login = await stack.podRequest('POST', '/v1/auth/kubernetes/login', {
      body: { role: 'by-label', jwt: stack.podToken(BOUND_SA) },
    });
    expect(login.status).toBe(200);
    // Migration: list, delete, and an Event.
    await stack.kubeAdmin.createSecret(MIGRATION_NS, {
      metadata: { name: 'db', annotations: { [MIGRATE_ANNOTATION]: 'true' } },
      data: { password: Buffer.from('x').toString('base64') },
    });
    await waitUntil(
      () =>
        stack.kubeAdmin.getSecret(MIGRATION_NS, 'db').then(
          () => false,
          () => true,
        ),
      { timeoutMs: 15_000, what: 'the migrated Secret deleted' },
    );
    // The Event on it follows the delete.
    await waitUntil(() => audit.some((e) => e.resource === 'events' && e.namespace === MIGRATION_NS), {
      timeoutMs: 10_000,
      what: 'the migration Event',
    });
    // caBundle kept.
    await waitUntil(() => stack.broker.status().webhookCaBundle?.state === 'current', {
      timeoutMs: 10_000,
      what: 'caBundle current',
    });

    const used = new Set(audit.map(describeEntry));
    expect(audit.filter((e) => !e.allowed).map(describeEntry)).toEqual([]);
    const declared = operatorKubeAccess({
      attestation: { namespace: OPERATOR_NAMESPACE, serviceAccount: OPERATOR_SA },
      webhookConfiguration: webhookConfiguration.metadata.name,
      migration: { namespaces: [MIGRATION_NS] },
    }).map((grant) => {
      const p = KUBE_CALLS[grant.call] as ResourcePermission;
      return `${p.verb} ${p.group || 'core'}/${p.resource}`;
    });
    expect([...used].sort()).toEqual([...new Set(declared)].sort());
  }, 60_000);
});

function describeEntry(entry: KubeAuditEntry): string {
  const resource = entry.subresource ? `${entry.resource}/${entry.subresource}` : entry.resource;
  return `${entry.verb} ${entry.group || 'core'}/${resource}`;
}
