/**
 * What the Kubernetes test server serves, described once: the resource table drives routing, discovery
 * documents (/api, /apis, /api/v1, /apis/<group>/<version>) and scope checks. Dev-only. The documents follow
 * k8s.io/apiserver pkg/endpoints/discovery (`APIVersions`, `APIGroupList`, `APIResourceList` with verbs,
 * shortNames and `<resource>/<subresource>` entries), which kubectl reads to map kinds to resources.
 */

export interface ResourceDefinition {
  readonly group: string;
  readonly version: string;
  readonly name: string;
  readonly singularName: string;
  readonly kind: string;
  readonly namespaced: boolean;
  readonly verbs: readonly string[];
  readonly shortNames?: readonly string[];
  readonly subresources?: readonly SubresourceDefinition[];
}

export interface SubresourceDefinition {
  readonly name: string;
  readonly group: string;
  readonly version: string;
  readonly kind: string;
  readonly verbs: readonly string[];
}

export const RESOURCES: readonly ResourceDefinition[] = [
  {
    group: '',
    version: 'v1',
    name: 'namespaces',
    singularName: 'namespace',
    kind: 'Namespace',
    namespaced: false,
    verbs: ['create', 'get', 'list', 'watch'],
    shortNames: ['ns'],
  },
  {
    group: '',
    version: 'v1',
    name: 'serviceaccounts',
    singularName: 'serviceaccount',
    kind: 'ServiceAccount',
    namespaced: true,
    verbs: ['create', 'delete', 'get', 'list', 'watch'],
    shortNames: ['sa'],
    subresources: [
      {
        name: 'token',
        group: 'authentication.k8s.io',
        version: 'v1',
        kind: 'TokenRequest',
        verbs: ['create'],
      },
    ],
  },
  {
    group: '',
    version: 'v1',
    name: 'secrets',
    singularName: 'secret',
    kind: 'Secret',
    namespaced: true,
    verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
  },
  {
    group: '',
    version: 'v1',
    name: 'configmaps',
    singularName: 'configmap',
    kind: 'ConfigMap',
    namespaced: true,
    verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
    shortNames: ['cm'],
  },
  {
    group: '',
    version: 'v1',
    name: 'events',
    singularName: 'event',
    kind: 'Event',
    namespaced: true,
    verbs: ['create', 'get', 'list', 'watch'],
    shortNames: ['ev'],
  },
  {
    group: 'authentication.k8s.io',
    version: 'v1',
    name: 'tokenreviews',
    singularName: 'tokenreview',
    kind: 'TokenReview',
    namespaced: false,
    verbs: ['create'],
  },
  {
    group: 'admissionregistration.k8s.io',
    version: 'v1',
    name: 'mutatingwebhookconfigurations',
    singularName: 'mutatingwebhookconfiguration',
    kind: 'MutatingWebhookConfiguration',
    namespaced: false,
    verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
  },
  // Read-only here: the test server runs no Deployment controller, so tests place Deployments with their status
  // (applyDeployment), as the controller would have written it.
  {
    group: 'apps',
    version: 'v1',
    name: 'deployments',
    singularName: 'deployment',
    kind: 'Deployment',
    namespaced: true,
    verbs: ['get', 'list', 'watch'],
    shortNames: ['deploy'],
  },
  {
    group: 'coordination.k8s.io',
    version: 'v1',
    name: 'leases',
    singularName: 'lease',
    kind: 'Lease',
    namespaced: true,
    verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
  },
];

export function findResource(group: string, version: string, name: string): ResourceDefinition | undefined {
  return RESOURCES.find((r) => r.group === group && r.version === version && r.name === name);
}

function groupVersion(group: string, version: string): string {
  return group === '' ? version : `${group}/${version}`;
}

export function apiVersions(serverAddress: string): object {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}

function namedGroups(): string[] {
  return [...new Set(RESOURCES.filter((r) => r.group !== '').map((r) => r.group))];
}

function apiGroup(name: string): object {
  const versions = [...new Set(RESOURCES.filter((r) => r.group === name).map((r) => r.version))].map(
    (version) => ({
      groupVersion: groupVersion(name, version),
      version,
    }),
  );
  return { name, versions, preferredVersion: versions[0] };
}

export function apiGroupList(): object {
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: namedGroups().map(apiGroup) };
}

/** The single-group document at /apis/<group>, or undefined when the group is not served. */
export function apiGroupDocument(name: string): object | undefined {
  return namedGroups().includes(name) ? { kind: 'APIGroup', apiVersion: 'v1', ...apiGroup(name) } : undefined;
}

export function apiResourceList(group: string, version: string): object | undefined {
  const served = RESOURCES.filter((r) => r.group === group && r.version === version);
  if (served.length === 0) return undefined;
  const resources: object[] = [];
  for (const r of served) {
    resources.push({
      name: r.name,
      singularName: r.singularName,
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: r.verbs,
      ...(r.shortNames === undefined ? {} : { shortNames: r.shortNames }),
    });
    for (const sub of r.subresources ?? []) {
      resources.push({
        name: `${r.name}/${sub.name}`,
        singularName: '',
        namespaced: r.namespaced,
        group: sub.group,
        version: sub.version,
        kind: sub.kind,
        verbs: sub.verbs,
      });
    }
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: groupVersion(group, version), resources };
}
