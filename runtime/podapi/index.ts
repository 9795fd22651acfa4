export {
  type AllowedPodRequest,
  checkPodRequest,
  isRefusal,
  NOT_ON_ALLOW_LIST,
  openBaoErrorBody,
  PASSED_RESPONSE_HEADERS,
  PERMISSION_DENIED,
  type PodApiRefusal,
  type PodApiRoute,
} from './allowlist.js';
export { createOpenBaoForwarder, type OpenBaoForwarder, type OpenBaoForwarderOptions } from './forward.js';
export { createRequestGate, type RequestGate } from './gate.js';
export { kubeStatusBody } from './kube-status.js';
export {
  isKubernetesName,
  isNamespaceName,
  MIGRATION_TUNNEL_PREFIX,
  migrationKvPath,
  NAMESPACE_PATH_PREFIX,
  NAMESPACE_TUNNEL_PREFIX,
  OPENBAO_TUNNEL_PREFIX,
  TOKENREVIEW_PATH,
  TOKENREVIEW_TUNNEL_PATH,
} from './protocol.js';
export {
  DEFAULT_POD_API_LIMITS,
  type PodApiLimits,
  type PodApiServer,
  type PodApiServerOptions,
  startPodApiServer,
} from './server.js';
