/**
 * Every Kubernetes API call cloudtaser makes, with the RBAC it needs: one table, so the client's Forbidden
 * message, the operator's RBAC in the Helm chart and the tests all read the same rule. A method of KubeClient
 * names its row; a test renders the chart's Roles and ClusterRoles and compares them with what the operator's
 * features call (`operatorKubeAccess`).
 */

/** RBAC for a resource request: verb, API group (`''` = core), resource (`resource/subresource`). */
export interface ResourcePermission {
  readonly verb: 'get' | 'list' | 'create' | 'patch' | 'delete' | 'update';
  readonly group: string;
  readonly resource: string;
  /** Where the object lives: cluster-scoped resources need a ClusterRole. */
  readonly scope: 'cluster' | 'namespace';
}

/** A non-resource URL (discovery, version): granted by default ClusterRoles, never by our charts. */
export interface NonResourcePermission {
  readonly verb: 'get';
  readonly nonResourceUrls: readonly string[];
  /** The default ClusterRole that grants it. */
  readonly grantedBy: string;
}

export const KUBE_CALLS = {
  getVersion: { verb: 'get', nonResourceUrls: ['/version'], grantedBy: 'system:public-info-viewer' },
  getNamespace: { verb: 'get', group: '', resource: 'namespaces', scope: 'cluster' },
  getOpenIdConfiguration: {
    verb: 'get',
    nonResourceUrls: ['/.well-known/openid-configuration'],
    grantedBy: 'system:service-account-issuer-discovery',
  },
  getServiceAccountJwks: {
    verb: 'get',
    nonResourceUrls: ['/openid/v1/jwks'],
    grantedBy: 'system:service-account-issuer-discovery',
  },
  createTokenReview: {
    verb: 'create',
    group: 'authentication.k8s.io',
    resource: 'tokenreviews',
    scope: 'cluster',
  },
  getSecret: { verb: 'get', group: '', resource: 'secrets', scope: 'namespace' },
  listSecrets: { verb: 'list', group: '', resource: 'secrets', scope: 'namespace' },
  createSecret: { verb: 'create', group: '', resource: 'secrets', scope: 'namespace' },
  patchSecretMetadata: { verb: 'patch', group: '', resource: 'secrets', scope: 'namespace' },
  deleteSecret: { verb: 'delete', group: '', resource: 'secrets', scope: 'namespace' },
  getMutatingWebhookConfiguration: {
    verb: 'get',
    group: 'admissionregistration.k8s.io',
    resource: 'mutatingwebhookconfigurations',
    scope: 'cluster',
  },
  patchMutatingWebhookConfiguration: {
    verb: 'patch',
    group: 'admissionregistration.k8s.io',
    resource: 'mutatingwebhookconfigurations',
    scope: 'cluster',
  },
  createEvent: { verb: 'create', group: '', resource: 'events', scope: 'namespace' },
  getConfigMap: { verb: 'get', group: '', resource: 'configmaps', scope: 'namespace' },
  createConfigMap: { verb: 'create', group: '', resource: 'configmaps', scope: 'namespace' },
  patchConfigMapData: { verb: 'patch', group: '', resource: 'configmaps', scope: 'namespace' },
  createServiceAccountToken: {
    verb: 'create',
    group: '',
    resource: 'serviceaccounts/token',
    scope: 'namespace',
  },
  // Read by `cloudtaser-cli target doctor` with the admin's kubeconfig, never by the operator.
  getDeployment: { verb: 'get', group: 'apps', resource: 'deployments', scope: 'namespace' },
  getServiceProxy: { verb: 'get', group: '', resource: 'services/proxy', scope: 'namespace' },
  // Bridge replicas share clusters out by Lease (coordination.k8s.io/v1).
  getLease: { verb: 'get', group: 'coordination.k8s.io', resource: 'leases', scope: 'namespace' },
  listLeases: { verb: 'list', group: 'coordination.k8s.io', resource: 'leases', scope: 'namespace' },
  createLease: { verb: 'create', group: 'coordination.k8s.io', resource: 'leases', scope: 'namespace' },
  updateLease: { verb: 'update', group: 'coordination.k8s.io', resource: 'leases', scope: 'namespace' },
  deleteLease: { verb: 'delete', group: 'coordination.k8s.io', resource: 'leases', scope: 'namespace' },
} as const satisfies Record<string, ResourcePermission | NonResourcePermission>;

export type KubeCall = keyof typeof KUBE_CALLS;

export function isResourcePermission(
  permission: ResourcePermission | NonResourcePermission,
): permission is ResourcePermission {
  return 'resource' in permission;
}

/**
 * What RBAC must allow for one call, as the Forbidden message says it: `list secrets in namespace team-a`,
 * `create tokenreviews.authentication.k8s.io (cluster scope)`.
 */
export function describePermission(
  call: KubeCall,
  target: { name?: string; namespace?: string } = {},
): string {
  const permission: ResourcePermission | NonResourcePermission = KUBE_CALLS[call];
  if (!isResourcePermission(permission))
    return `get nonResourceURLs ${permission.nonResourceUrls.join(' and ')} (ClusterRole ${permission.grantedBy})`;
  const resource = permission.group ? `${permission.resource}.${permission.group}` : permission.resource;
  const name = target.name ? ` ${target.name}` : '';
  const where =
    permission.scope === 'cluster'
      ? ' (cluster scope)'
      : target.namespace
        ? ` in namespace ${target.namespace}`
        : ' (all namespaces)';
  return `${permission.verb} ${resource}${name}${where}`;
}

/** One grant the operator needs: a call, where (a namespace, or every one), and on which names. */
export interface KubeGrant {
  readonly call: KubeCall;
  /** The namespace of a namespaced call; undefined = every namespace (a ClusterRole), or cluster scope. */
  readonly namespace?: string;
  /** Limit to these object names; undefined = every name. */
  readonly resourceNames?: readonly string[];
}

/** The operator's features that decide which Kubernetes calls it makes. */
export interface OperatorFeatures {
  /** Attested bootstrap: a TokenRequest for its own service account. */
  readonly attestation?: { readonly namespace: string; readonly serviceAccount: string };
  /** The MutatingWebhookConfiguration whose caBundle the broker keeps current, when it does. */
  readonly webhookConfiguration?: string;
  /** Secret migration, in these namespaces or (undefined / empty) in every one. */
  readonly migration?: { readonly namespaces?: readonly string[] };
  /** The ConfigMap that records the CA the broker accepted (read and patched, never created: the chart makes it). */
  readonly trustRecord?: { readonly namespace: string; readonly name: string };
}

/**
 * Every Kubernetes call the operator (broker, webhook keeper, migrator) makes with these features, where and on
 * which names. The Helm chart grants exactly this; `test/charts` checks both directions.
 */
export function operatorKubeAccess(features: OperatorFeatures): KubeGrant[] {
  const grants: KubeGrant[] = [
    // The fingerprint (kube-system) and, for OpenBao roles with bound_service_account_namespace_selector, the
    // labels of a pod's namespace (carried through the tunnel like TokenReview).
    { call: 'getNamespace' },
    { call: 'createTokenReview' },
  ];
  if (features.webhookConfiguration) {
    for (const call of ['getMutatingWebhookConfiguration', 'patchMutatingWebhookConfiguration'] as const)
      grants.push({ call, resourceNames: [features.webhookConfiguration] });
  }
  if (features.trustRecord) {
    for (const call of ['getConfigMap', 'patchConfigMapData'] as const)
      grants.push({
        call,
        namespace: features.trustRecord.namespace,
        resourceNames: [features.trustRecord.name],
      });
  }
  if (features.attestation) {
    grants.push({
      call: 'createServiceAccountToken',
      namespace: features.attestation.namespace,
      resourceNames: [features.attestation.serviceAccount],
    });
  }
  if (features.migration) {
    const namespaces: Array<string | undefined> = features.migration.namespaces?.length
      ? [...features.migration.namespaces]
      : [undefined];
    for (const namespace of namespaces)
      for (const call of MIGRATION_CALLS) grants.push({ call, ...(namespace ? { namespace } : {}) });
  }
  return grants;
}

/** What the operator's migrator calls (runtime/migration/migrator.ts types its client with these). */
export const MIGRATION_CALLS = [
  'listSecrets',
  'deleteSecret',
  'createEvent',
] as const satisfies readonly KubeCall[];

/** Every call the operator process may make (the broker types its client with these). */
export const OPERATOR_CALLS = [
  'getNamespace',
  'createTokenReview',
  'getMutatingWebhookConfiguration',
  'patchMutatingWebhookConfiguration',
  'createServiceAccountToken',
  'getConfigMap',
  'patchConfigMapData',
  ...MIGRATION_CALLS,
] as const satisfies readonly KubeCall[];

/** A Kubernetes RBAC rule (a Role's or ClusterRole's `rules` entry) and where it is bound. */
export interface RbacRule {
  readonly verbs: readonly string[];
  readonly apiGroups: readonly string[];
  readonly resources: readonly string[];
  readonly resourceNames?: readonly string[];
  /** The namespace of a Role; undefined = a ClusterRole. */
  readonly namespace?: string;
}

/** The grants as RBAC rules, one per grant (what a chart renders and the Kubernetes test server enforces). */
export function rbacRules(grants: readonly KubeGrant[]): RbacRule[] {
  return grants.map((grant) => {
    const permission = KUBE_CALLS[grant.call] as ResourcePermission;
    return {
      verbs: [permission.verb],
      apiGroups: [permission.group],
      resources: [permission.resource],
      ...(grant.resourceNames ? { resourceNames: grant.resourceNames } : {}),
      ...(permission.scope === 'namespace' && grant.namespace ? { namespace: grant.namespace } : {}),
    };
  });
}
