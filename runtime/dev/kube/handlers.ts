/**
 * Resource handlers of the Kubernetes test server (dev-only): one file per resource kind, dispatched from one
 * table keyed by `resource` or `resource/subresource`. Behaviour and texts follow wire-facts PART B.
 */
import { handleConfigMaps } from './config-maps.js';
import { handleDeployments } from './deployments.js';
import { handleEvents } from './events.js';
import { handleLeases } from './leases.js';
import { handleMutatingWebhookConfigurations } from './mutating-webhook-configurations.js';
import { handleNamespaces } from './namespaces.js';
import type { HandlerResult, ResourceRequest, ServerState } from './requests.js';
import { handleSecrets } from './secrets.js';
import { handleServiceAccounts, handleTokenRequest } from './service-accounts.js';
import { KubeStatusError } from './status.js';
import { handleTokenReview } from './token-reviews.js';

type ResourceHandler = (state: ServerState, req: ResourceRequest) => HandlerResult;

const HANDLERS: Readonly<Record<string, ResourceHandler>> = {
  namespaces: handleNamespaces,
  serviceaccounts: handleServiceAccounts,
  'serviceaccounts/token': handleTokenRequest,
  secrets: handleSecrets,
  configmaps: handleConfigMaps,
  events: handleEvents,
  tokenreviews: handleTokenReview,
  mutatingwebhookconfigurations: handleMutatingWebhookConfigurations,
  deployments: handleDeployments,
  leases: handleLeases,
};

export function handleResource(state: ServerState, req: ResourceRequest): HandlerResult {
  const key = req.subresource === undefined ? req.resource : `${req.resource}/${req.subresource}`;
  // Own properties only: a resource named like an Object.prototype member is just an unknown resource.
  const handler = Object.hasOwn(HANDLERS, key) ? HANDLERS[key] : undefined;
  if (handler === undefined)
    throw new KubeStatusError(404, 'NotFound', 'the server could not find the requested resource');
  return handler(state, req);
}
