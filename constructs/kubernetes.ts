/**
 * The one place that touches the prebuilt hashicorp/kubernetes and hashicorp/helm bindings. Only the submodules
 * we use are loaded, and only when a construct needs them: each file is large (inline source maps), and an app
 * that reads the fingerprint with our own data source and skips the Helm release should not pay for them.
 */
import { createRequire } from 'node:module';
import type * as HelmProviderModule from '@cdktf/provider-helm/lib/provider/index.js';
import type * as ReleaseModule from '@cdktf/provider-helm/lib/release/index.js';
import type * as NamespaceModule from '@cdktf/provider-kubernetes/lib/data-kubernetes-namespace/index.js';
import type * as ServiceModule from '@cdktf/provider-kubernetes/lib/data-kubernetes-service/index.js';
import type * as KubernetesProviderModule from '@cdktf/provider-kubernetes/lib/provider/index.js';
import type { Construct } from 'constructs';

export type { HelmProvider, HelmProviderConfig } from '@cdktf/provider-helm/lib/provider/index.js';
export type { Release, ReleaseConfig, ReleaseSet } from '@cdktf/provider-helm/lib/release/index.js';
export type { DataKubernetesNamespace } from '@cdktf/provider-kubernetes/lib/data-kubernetes-namespace/index.js';
export type {
  KubernetesProvider,
  KubernetesProviderConfig,
} from '@cdktf/provider-kubernetes/lib/provider/index.js';

const load = createRequire(import.meta.url);

export function newHelmProvider(scope: Construct, id: string, config: HelmProviderModule.HelmProviderConfig) {
  const { HelmProvider } = load('@cdktf/provider-helm/lib/provider/index.js') as typeof HelmProviderModule;
  return new HelmProvider(scope, id, config);
}

export function newRelease(scope: Construct, id: string, config: ReleaseModule.ReleaseConfig) {
  const { Release } = load('@cdktf/provider-helm/lib/release/index.js') as typeof ReleaseModule;
  return new Release(scope, id, config);
}

export function newKubernetesProvider(
  scope: Construct,
  id: string,
  config: KubernetesProviderModule.KubernetesProviderConfig,
) {
  const { KubernetesProvider } = load(
    '@cdktf/provider-kubernetes/lib/provider/index.js',
  ) as typeof KubernetesProviderModule;
  return new KubernetesProvider(scope, id, config);
}

export function newDataKubernetesNamespace(
  scope: Construct,
  id: string,
  config: NamespaceModule.DataKubernetesNamespaceConfig,
) {
  const { DataKubernetesNamespace } = load(
    '@cdktf/provider-kubernetes/lib/data-kubernetes-namespace/index.js',
  ) as typeof NamespaceModule;
  return new DataKubernetesNamespace(scope, id, config);
}

export function newDataKubernetesService(
  scope: Construct,
  id: string,
  config: ServiceModule.DataKubernetesServiceConfig,
) {
  const { DataKubernetesService } = load(
    '@cdktf/provider-kubernetes/lib/data-kubernetes-service/index.js',
  ) as typeof ServiceModule;
  return new DataKubernetesService(scope, id, config);
}
