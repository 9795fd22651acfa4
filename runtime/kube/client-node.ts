/**
 * The one door to @kubernetes/client-node: its KubeConfig loads kubeconfigs and runs exec credential plugins
 * exactly as kubectl users expect. The package weighs 54 MB (a generated client for every API we never call), so
 * the build bundles this file with what KubeConfig needs into one file (`bundle-client-node.ts`) and installs do
 * not carry the package. Import client-node from here only.
 */
export type { Cluster, Context, User } from '@kubernetes/client-node';
export { KubeConfig } from '@kubernetes/client-node';
