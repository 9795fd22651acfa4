/** Deployments in the Kubernetes test server (dev-only): read-only; tests seed them through the store. */
import { listResult, metaFields, mustGet } from './crud.js';
import type { HandlerResult, ResourceRequest, ServerState } from './requests.js';
import { methodNotAllowed } from './status.js';

export function handleDeployments(state: ServerState, req: ResourceRequest): HandlerResult {
  switch (req.verb) {
    case 'get':
      return { status: 200, body: mustGet(state, 'deployments', req.namespace, req.name as string) };
    case 'list':
    case 'watch':
      return listResult(
        state,
        req,
        'deployments',
        'DeploymentList',
        req.namespace,
        ['metadata.name', 'metadata.namespace'],
        metaFields,
      );
    default:
      throw methodNotAllowed();
  }
}
