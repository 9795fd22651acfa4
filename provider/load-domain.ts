/**
 * Loads domain modules on first use. Each `lazy/*` module becomes a separately compiled chunk in the
 * bundle, so a process that only answers GetProviderSchema never parses the OpenBao or Kubernetes code.
 */
import type * as KubeDomain from './lazy/kube.js';
import type * as SecretStoreDomain from './lazy/secret-store.js';

let secretStore: Promise<typeof SecretStoreDomain> | undefined;
let kube: Promise<typeof KubeDomain> | undefined;

export function loadSecretStoreDomain(): Promise<typeof SecretStoreDomain> {
  secretStore ??= baselineWasmOnly().then(() => import('./lazy/secret-store.js'));
  return secretStore;
}

export function loadKubeDomain(): Promise<typeof KubeDomain> {
  kube ??= baselineWasmOnly().then(() => import('./lazy/kube.js'));
  return kube;
}

let liftoffOnly: Promise<void> | undefined;

/**
 * undici (the HTTP stack of both domains) parses responses with a WebAssembly build of llhttp. V8 compiles it
 * again with TurboFan on background threads, and a process cannot exit before those threads are joined: every
 * provider process that talked to OpenBao took about a second from Terraform's Shutdown to its exit
 * (measured; Terraform waits for it). The baseline compiler alone is ample for a few requests per process.
 * Set here, before a domain (and so llhttp) loads, rather than at start: loading `node:v8` costs ~4 ms, which
 * the processes that never load a domain (schema, validation) need not pay.
 */
function baselineWasmOnly(): Promise<void> {
  liftoffOnly ??= import('node:v8').then(({ setFlagsFromString }) => setFlagsFromString('--liftoff-only'));
  return liftoffOnly;
}
