/**
 * The one door to @kubernetes/client-node: its KubeConfig loads kubeconfigs and runs exec credential plugins
 * exactly as kubectl users expect. The package weighs 54 MB (a generated client for every API we never call), so
 * the build bundles this file with what KubeConfig needs into one file (`bundle-client-node.ts`) and installs do
 * not carry the package. Import client-node from here only.
 *
 * The types below are our own: the part of KubeConfig we call, and the kubeconfig entries we read or build.
 * Re-exporting client-node's types would make our published declarations name a package that installs do not
 * have (a TypeScript user without `skipLibCheck` would get "Cannot find module"). The assignment at the end makes
 * the compiler check that client-node's class still fits them.
 */

import type * as https from 'node:https';
import { KubeConfig as ClientNodeKubeConfig } from '@kubernetes/client-node';

/** A kubeconfig `clusters[]` entry, in client-node's field names. */
export interface Cluster {
  readonly name: string;
  readonly server: string;
  readonly caData?: string;
  caFile?: string;
  readonly tlsServerName?: string;
  readonly skipTLSVerify: boolean;
  readonly proxyUrl?: string;
}

/** A kubeconfig `users[]` entry, in client-node's field names. `exec` is the exec credential plugin block. */
export interface User {
  readonly name: string;
  readonly certData?: string;
  certFile?: string;
  readonly keyData?: string;
  keyFile?: string;
  readonly token?: string;
  readonly username?: string;
  readonly password?: string;
  readonly impersonateUser?: string;
  // biome-ignore lint/suspicious/noExplicitAny: client-node types the exec and auth-provider blocks as any.
  readonly exec?: any;
  // biome-ignore lint/suspicious/noExplicitAny: as above.
  readonly authProvider?: any;
}

/** A kubeconfig `contexts[]` entry. */
export interface Context {
  readonly name: string;
  readonly cluster: string;
  readonly user: string;
  readonly namespace?: string;
}

/** What we call on a loaded kubeconfig. */
export interface KubeConfig {
  loadFromString(config: string): void;
  loadFromOptions(options: {
    clusters: readonly Cluster[];
    users: readonly User[];
    contexts: readonly Context[];
    currentContext: string | undefined;
  }): void;
  loadFromClusterAndUser(cluster: Cluster, user: User): void;
  /** In-cluster configuration: the service account's token and CA, KUBERNETES_SERVICE_HOST/PORT. */
  loadFromCluster(): void;
  makePathsAbsolute(rootDirectory: string): void;
  getClusters(): Cluster[];
  getUsers(): User[];
  getContexts(): Context[];
  getCurrentContext(): string;
  getCurrentCluster(): Cluster | null;
  getCurrentUser(): User | null;
  /** Sets CA, client certificate, key, headers (tokens, exec plugin output) and a proxy agent on `opts`. */
  applyToHTTPSOptions(opts: https.RequestOptions): Promise<void>;
}

export const KubeConfig: new () => KubeConfig = ClientNodeKubeConfig;
