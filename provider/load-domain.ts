/**
 * Loads domain modules on first use. Each `lazy/*` module becomes a separately compiled chunk in the
 * bundle, so a process that only answers GetProviderSchema never parses the OpenBao or Kubernetes code.
 */
import type * as KubeDomain from './lazy/kube.js';
import type * as SecretStoreDomain from './lazy/secret-store.js';

let secretStore: Promise<typeof SecretStoreDomain> | undefined;
let kube: Promise<typeof KubeDomain> | undefined;

export function loadSecretStoreDomain(): Promise<typeof SecretStoreDomain> {
  secretStore ??= import('./lazy/secret-store.js');
  return secretStore;
}

export function loadKubeDomain(): Promise<typeof KubeDomain> {
  kube ??= import('./lazy/kube.js');
  return kube;
}
