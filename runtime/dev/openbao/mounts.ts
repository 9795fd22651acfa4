/**
 * DEV-ONLY test infrastructure: builds the mounts of the OpenBao-compatible test server (the built-in ones each
 * namespace starts with, and the secret engines and auth methods users enable). A new namespace gets cubbyhole,
 * sys, identity, the token auth mount and the default policy, and no KV (internal/vault/namespace_store.go
 * `initializeNamespace`, internal/vault/mount.go `requiredMountTable`); the dev server's root also has KV v2 at
 * `secret/` (internal/command/server.go, dev setup). `kv` with `options.version` "2" and `kv-v2` are the same
 * engine (internal/vault/logical_system.go `handleMount`); wire-facts A1.4, A2.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { createAppRoleBackend } from './auth-approle.js';
import { createKubernetesAuthBackend } from './auth-kubernetes.js';
import type { Backend } from './backend.js';
import { createKvV2Backend, KvStore } from './kv-engine.js';
import type { Mount, Namespace } from './namespaces.js';
import { createTokenBackend, type TokenStore } from './tokens.js';
import { badRequest, randomBase62, unsupportedPath } from './wire.js';

export interface MountDeps {
  readonly tokens: TokenStore;
  readonly logger: Logger;
  /** The system backend is built by the server, which owns the namespace tree. */
  readonly systemBackend: Backend;
}

const stubBackend: Backend = {
  handle() {
    throw unsupportedPath();
  },
};

function mount(
  path: string,
  type: string,
  backend: Backend,
  options: Record<string, string> | null = null,
  createdMs = Date.now(),
): Mount {
  const prefix = type.replace(/^ns_/, '');
  return {
    path,
    type,
    options,
    accessor: `${prefix}_${randomBase62(8).toLowerCase()}`,
    uuid: randomUUID(),
    description: '',
    backend,
    local: false,
    createdMs,
  };
}

/** What a fresh namespace contains: cubbyhole, sys, identity, the token auth mount and the `default` policy. */
export function installBuiltinMounts(
  namespace: Namespace,
  deps: MountDeps,
  withDevSecretMount: boolean,
): void {
  const ns = namespace.isRoot() ? '' : 'ns_';
  // Created with the namespace, in the same write: a lagging standby sees the namespace and its built-in mounts
  // together, never the namespace without its `sys/` (which would answer `no handler for route`).
  const at = namespace.createdMs;
  namespace.mounts.set('cubbyhole/', mount('cubbyhole/', `${ns}cubbyhole`, stubBackend, null, at));
  namespace.mounts.set('identity/', mount('identity/', `${ns}identity`, stubBackend, null, at));
  namespace.mounts.set('sys/', mount('sys/', `${ns}system`, deps.systemBackend, null, at));
  namespace.authMounts.set(
    'token/',
    mount('token/', `${ns}token`, createTokenBackend(deps.tokens), null, at),
  );
  if (withDevSecretMount) {
    namespace.mounts.set(
      'secret/',
      mount('secret/', 'kv', createKvV2Backend(new KvStore()), { version: '2' }, at),
    );
  }
}

/** Resolves `{type, options}` of `POST sys/mounts/:path` to a KV v2 engine, or refuses it as OpenBao would. */
export function createSecretMount(
  path: string,
  type: string,
  options: Record<string, unknown> | undefined,
): Mount {
  const version = options?.version === undefined ? undefined : String(options.version);
  if (type === 'kv-v2' || (type === 'kv' && version === '2')) {
    return mount(path, 'kv', createKvV2Backend(new KvStore()), { version: '2' });
  }
  if (type === 'kv' || type === 'kv-v1') {
    throw badRequest('this test server supports KV version 2 only; pass options.version "2"');
  }
  if (version !== undefined) throw badRequest(`secrets engine "${type}" does not allow setting a version`);
  throw badRequest(`plugin not found in the catalog: ${type}`);
}

export function createAuthMount(path: string, type: string, deps: MountDeps, namespace: Namespace): Mount {
  switch (type) {
    case 'kubernetes':
      return mount(
        path,
        type,
        createKubernetesAuthBackend({ tokens: deps.tokens, logger: deps.logger, namespace }),
      );
    case 'approle':
      return mount(path, type, createAppRoleBackend({ tokens: deps.tokens, namespace }));
    case 'token':
    case 'ns_token':
      throw badRequest('token credential backend cannot be instantiated');
    default:
      throw badRequest(`plugin not found in the catalog: ${type}`);
  }
}
