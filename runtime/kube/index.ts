/** Kubernetes access for cloudtaser: connection loading, the cluster fingerprint and a thin API client. */
export { type CallOptions, KubeClient, type KubeClientOptions } from './client.js';
export {
  defaultKubeConnection,
  describeConnection,
  type ExecCredentialCommand,
  type KubeConnection,
  loadKubeConfig,
} from './connection.js';
export { readClusterFingerprint } from './fingerprint.js';
export { readServiceAccountIssuer, type ServiceAccountIssuer } from './service-account-issuer.js';
export type * from './types.js';
