/** Namespaces in the Kubernetes test server (dev-only); creating one also creates its `default` service account. */
import { listResult, mustGet } from './crud.js';
import { checkFields, DNS1123_LABEL, labelsOf, objectBody, resolveName } from './metadata.js';
import type { HandlerResult, ResourceRequest, ServerState } from './requests.js';
import { createServiceAccountObject } from './service-accounts.js';
import { alreadyExists, invalid, methodNotAllowed } from './status.js';
import type { KubeObject } from './store.js';

const NAMESPACE_FIELDS = new Set(['kind', 'apiVersion', 'metadata', 'spec', 'status']);

export function handleNamespaces(state: ServerState, req: ResourceRequest): HandlerResult {
  switch (req.verb) {
    case 'get':
      return { status: 200, body: mustGet(state, 'namespaces', undefined, req.name as string) };
    case 'list':
    case 'watch':
      return listResult(
        state,
        req,
        'namespaces',
        'NamespaceList',
        undefined,
        ['metadata.name', 'status.phase'],
        (o) => ({
          'metadata.name': o.metadata.name,
          'status.phase': String((o.status as { phase?: string }).phase),
        }),
      );
    case 'create': {
      const warnings = checkFields(req, NAMESPACE_FIELDS);
      const body = objectBody(req.body, 'Namespace');
      const name = resolveName(body, 'Namespace');
      if (!DNS1123_LABEL.test(name) || name.length > 63) {
        throw invalid('Namespace', '', name, [
          {
            field: 'metadata.name',
            value: name,
            why: "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
          },
        ]);
      }
      return { status: 201, body: createNamespace(state, name, labelsOf(body)), warnings };
    }
    default:
      throw methodNotAllowed();
  }
}

/** Creates a namespace and its `default` service account, as the namespace and SA controllers would. */
export function createNamespace(
  state: ServerState,
  name: string,
  labels: Record<string, string> = {},
  uid?: string,
): KubeObject {
  if (state.store.get('namespaces', undefined, name) !== undefined) throw alreadyExists('namespaces', name);
  const created = state.store.create(
    'namespaces',
    {
      kind: 'Namespace',
      apiVersion: 'v1',
      metadata: { name, labels: { ...labels, 'kubernetes.io/metadata.name': name } },
      spec: { finalizers: ['kubernetes'] },
      status: { phase: 'Active' },
    },
    uid,
  );
  createServiceAccountObject(state, name, 'default');
  return created;
}
