/**
 * DEV-ONLY Kubernetes-API-compatible test server: test infrastructure and the local demo's stand-in for a
 * cluster. Never use it as a production code path.
 */
export type { KubeconfigExec, WriteKubeconfigOptions } from './kubeconfig.js';
export type { PolicyRule } from './rbac.js';
export {
  type KubeAuditEntry,
  type KubeTestServer,
  type KubeTestServerOptions,
  startKubeTestServer,
} from './server.js';
