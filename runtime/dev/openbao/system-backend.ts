/**
 * DEV-ONLY test infrastructure: the `sys/` backend of the OpenBao-compatible test server: namespaces, secret
 * mounts, auth mounts and ACL policies, relative to the namespace a request resolved to.
 */
import {
  capabilitiesOf,
  DEFAULT_POLICY_TEXT,
  hasMountAccess,
  parsePolicy,
  policiesOf,
  type StoredPolicy,
} from './acl.js';
import type { Backend, BaoRequest } from './backend.js';
import { createAuthMount, createSecretMount, installBuiltinMounts, type MountDeps } from './mounts.js';
import { isVisible, type Mount, Namespace, validateNamespaceName } from './namespaces.js';
import type { RateLimitQuotas } from './quotas.js';
import {
  aclDenied as aclDeniedError,
  BaoError,
  type BaoResponse,
  badRequest,
  isRecord,
  noContent,
  notFoundEmpty,
  ok,
  stringList,
  unsupportedOperation,
  unsupportedPath,
} from './wire.js';

export interface SystemContext {
  readonly namespacesEnabled: boolean;
  readonly namespaceDeleteDelayMs: number;
  mountDeps(): MountDeps;
  onNamespaceDeleted(namespace: Namespace): void;
  /** Timers the server must clear on close. */
  track(timer: NodeJS.Timeout): void;
  /** Rate-limit quotas, which the server enforces on every request. */
  readonly quotas: RateLimitQuotas;
}

/** sys/ APIs that only work in the root namespace when reached through a path prefix. */
const ROOT_ONLY = [
  'health',
  'seal',
  'unseal',
  'init',
  'generate-root',
  'rekey',
  'rekey-recovery-key',
  'storage',
  'metrics',
  'pprof',
  'raw',
  'in-flight-req',
  'step-down',
  'generate-recovery-token',
  'audit',
  'audit-hash',
  'config',
  'quotas',
  'loggers',
  'mfa',
];

/**
 * The system backend's root-protected paths (internal/vault/logical_system.go PathsSpecial.Root): enabling or
 * reading an auth method (`sys/auth/<path>`), audit devices, raw storage, lease tooling need `sudo`.
 */
const SYS_ROOT_PATHS = [
  'auth/*',
  'remount',
  'audit',
  'audit/*',
  'raw',
  'raw/*',
  'rotate',
  'rotate/keyring',
  'rotate/root',
  'config/cors',
  'config/auditing/*',
  'config/ui/headers/*',
  'plugins/catalog/*',
  'revoke-prefix/*',
  'revoke-force/*',
  'leases/revoke-prefix/*',
  'leases/revoke-force/*',
  'leases/lookup/*',
  'leases',
  'internal/inspect/*',
];

export function createPolicy(name: string, text: string): StoredPolicy {
  return { name, text, rules: parsePolicy(text), version: 1, modified: Date.now() };
}

export function installDefaultPolicy(namespace: Namespace): void {
  namespace.policies.set('default', createPolicy('default', DEFAULT_POLICY_TEXT));
}

function describeMount(mount: Mount): Record<string, unknown> {
  return {
    accessor: mount.accessor,
    config: { default_lease_ttl: 0, force_no_cache: false, max_lease_ttl: 0 },
    description: mount.description,
    external_entropy_access: false,
    local: mount.local,
    options: mount.options,
    plugin_version: '',
    running_plugin_version: '',
    running_sha256: '',
    seal_wrap: false,
    type: mount.type,
    uuid: mount.uuid,
  };
}

function normaliseMountPath(raw: string): string {
  const trimmed = raw.replace(/^\/+/, '').replace(/\/+$/, '');
  if (trimmed === '') throw badRequest('path cannot be empty');
  return `${trimmed}/`;
}

export function createSystemBackend(context: SystemContext): Backend {
  function namespaces(request: BaoRequest, rest: string): BaoResponse {
    if (!context.namespacesEnabled) throw unsupportedPath();
    const parent = request.namespace;
    const { operation } = request;
    const seen = (ns: Namespace) => isVisible(ns.createdMs, request.visibleAsOf);
    if (operation === 'list' || operation === 'scan') {
      if (rest !== '') throw unsupportedPath();
      const found = (
        operation === 'list'
          ? [...parent.children.values()]
          : [...parent.descendants()].filter((ns) => !ns.deleted)
      ).filter(seen);
      if (found.length === 0) throw notFoundEmpty();
      const keyInfo: Record<string, unknown> = {};
      for (const ns of found) keyInfo[parent.relativePathOf(ns)] = ns.describe();
      return ok({ key_info: keyInfo, keys: Object.keys(keyInfo).sort() });
    }
    if (rest.startsWith('api-lock/'))
      throw badRequest('namespace API locking is not supported by this test server');
    const name = rest;
    const existing = parent.children.get(name);
    switch (operation) {
      case 'read':
        validateNamespaceName(name);
        if (!existing || !seen(existing)) throw notFoundEmpty();
        return ok(existing.describe());
      case 'create':
      case 'update': {
        validateNamespaceName(name);
        const custom = request.body.custom_metadata;
        if (custom !== undefined && custom !== null && !isRecord(custom)) {
          throw badRequest('custom_metadata must be a map of strings');
        }
        if (isRecord(custom) && Object.values(custom).some((value) => typeof value !== 'string')) {
          throw badRequest('custom_metadata values must be strings');
        }
        // A write without custom_metadata stores none, which reads back as null; an explicit {} stays {}
        // (internal/vault/logical_system_namespaces.go reads the field only when it was sent).
        const metadata = isRecord(custom) ? { ...(custom as Record<string, string>) } : null;
        if (existing) {
          if (existing.tainted) throw badRequest('namespace with that name exists and is currently tainted');
          existing.customMetadata = metadata;
          return ok(existing.describe());
        }
        if (parent.mounts.has(`${name}/`))
          throw badRequest(`new namespace conflicts with existing mount: ${name}/`);
        const child = new Namespace(name, parent);
        child.customMetadata = metadata;
        installBuiltinMounts(child, context.mountDeps(), false);
        installDefaultPolicy(child);
        parent.children.set(name, child);
        return ok(child.describe());
      }
      case 'patch': {
        validateNamespaceName(name);
        if (!existing) throw badRequest('namespace not found');
        const custom = request.body.custom_metadata;
        if (custom === null) existing.customMetadata = {};
        else if (isRecord(custom)) {
          const merged = { ...(existing.customMetadata ?? {}) };
          for (const [key, value] of Object.entries(custom)) {
            if (value === null) delete merged[key];
            else if (typeof value !== 'string') throw badRequest('custom_metadata values must be strings');
            else merged[key] = value;
          }
          existing.customMetadata = merged;
        }
        return ok(existing.describe());
      }
      case 'delete': {
        validateNamespaceName(name);
        if (!existing) return ok(null, { warnings: ['requested namespace does not exist'] });
        if (existing.children.size > 0)
          throw badRequest('unable to delete namespace containing child namespaces');
        if (!existing.tainted) {
          existing.tainted = true;
          // Deletion is asynchronous in OpenBao: the namespace stays readable (tainted) for a moment.
          const timer = setTimeout(() => {
            parent.children.delete(name);
            existing.deleted = true;
            context.onNamespaceDeleted(existing);
          }, context.namespaceDeleteDelayMs);
          timer.unref();
          context.track(timer);
        }
        return ok({ status: 'in-progress' });
      }
      default:
        throw unsupportedOperation();
    }
  }

  function mounts(request: BaoRequest, rest: string): BaoResponse {
    const ns = request.namespace;
    const { operation } = request;
    if (rest === '') {
      if (operation !== 'read') throw unsupportedOperation();
      const data: Record<string, unknown> = {};
      for (const mount of ns.mounts.values())
        if (isVisible(mount.createdMs, request.visibleAsOf)) data[mount.path] = describeMount(mount);
      return ok(data, { injectTopLevel: true });
    }
    const path = normaliseMountPath(rest);
    const existing = ns.mounts.get(path);
    if (operation === 'read') {
      if (!existing) throw badRequest(`No secret engine mount at ${path}`);
      return ok(describeMount(existing), { injectTopLevel: true });
    }
    if (operation === 'delete') {
      if (existing && ['sys/', 'cubbyhole/', 'identity/'].includes(path)) {
        throw badRequest(`cannot unmount "${path}"`);
      }
      ns.mounts.delete(path);
      return noContent();
    }
    if (operation !== 'create' && operation !== 'update') throw unsupportedOperation();
    if (existing) throw badRequest(`path is already in use at ${path}`);
    for (const other of ns.mounts.keys()) {
      if (path.startsWith(other) || other.startsWith(path)) throw badRequest(`existing mount at ${other}`);
    }
    if (path.startsWith('auth/') || path === 'auth/') throw badRequest(`existing mount at auth/`);
    if (ns.children.has(path.slice(0, -1).split('/')[0])) {
      throw badRequest(`existing namespace at ${path.slice(0, -1).split('/')[0]}/`);
    }
    const type = typeof request.body.type === 'string' ? request.body.type : '';
    if (type === '') throw badRequest('backend type must be specified as a string');
    const options = isRecord(request.body.options) ? request.body.options : undefined;
    const mount = createSecretMount(path, type, options);
    const description = typeof request.body.description === 'string' ? request.body.description : '';
    ns.mounts.set(path, { ...mount, description });
    return noContent();
  }

  function auth(request: BaoRequest, rest: string): BaoResponse {
    const ns = request.namespace;
    const { operation } = request;
    if (rest === '') {
      if (operation !== 'read') throw unsupportedOperation();
      const data: Record<string, unknown> = {};
      for (const mount of ns.authMounts.values())
        if (isVisible(mount.createdMs, request.visibleAsOf)) data[mount.path] = describeMount(mount);
      return ok(data, { injectTopLevel: true });
    }
    const path = normaliseMountPath(rest);
    const existing = ns.authMounts.get(path);
    if (operation === 'read') {
      if (!existing) throw badRequest(`No auth engine at ${path}`);
      return ok(describeMount(existing), { injectTopLevel: true });
    }
    if (operation === 'delete') {
      if (path === 'token/') throw badRequest('token credential backend cannot be disabled');
      ns.authMounts.delete(path);
      return noContent();
    }
    if (operation !== 'create' && operation !== 'update') throw unsupportedOperation();
    if (existing) throw badRequest(`path is already in use at ${path}`);
    for (const other of ns.authMounts.keys()) {
      if (path.startsWith(other) || other.startsWith(path))
        throw badRequest(`existing mount at auth/${other}`);
    }
    const type = typeof request.body.type === 'string' ? request.body.type : '';
    if (type === '') throw badRequest('backend type must be specified as a string');
    const mount = createAuthMount(path, type, context.mountDeps(), ns);
    ns.authMounts.set(path, mount);
    return noContent();
  }

  function policies(request: BaoRequest, rest: string, legacy: boolean): BaoResponse {
    const ns = request.namespace;
    const { operation } = request;
    if (operation === 'list' || (legacy && rest === '' && operation === 'read')) {
      const keys = [...ns.policies.keys(), 'root'].sort();
      return ok(legacy ? { keys, policies: keys } : { keys }, { injectTopLevel: legacy });
    }
    if (rest === '') throw unsupportedOperation();
    const name = rest.toLowerCase();
    if (operation === 'read') {
      if (name === 'root') {
        return ok(legacy ? { name, rules: '' } : { name, policy: '' }, { injectTopLevel: legacy });
      }
      const policy = ns.policies.get(name);
      if (!policy) throw notFoundEmpty();
      if (legacy) return ok({ name, rules: policy.text }, { injectTopLevel: true });
      return ok({
        allow_slashes_in_identity_templates: false,
        allow_wildcards_in_identity_templates: false,
        cas_required: false,
        name,
        policy: policy.text,
        version: policy.version,
      });
    }
    if (operation === 'delete') {
      if (name === 'root' || name === 'default') throw badRequest(`cannot delete "${name}" policy`);
      ns.policies.delete(name);
      return noContent();
    }
    if (operation !== 'create' && operation !== 'update') throw unsupportedOperation();
    if (name === 'root') throw badRequest('cannot update "root" policy');
    const text = request.body.policy ?? request.body.rules;
    if (typeof text !== 'string' || text.trim() === '') {
      throw badRequest("'policy' parameter not supplied or empty");
    }
    const previous = ns.policies.get(name);
    const policy = createPolicy(name, text);
    policy.version = (previous?.version ?? 0) + 1;
    ns.policies.set(name, policy);
    if (name !== rest) return ok(null, { warnings: [`policy name was converted to ${name}`] });
    return noContent();
  }

  /**
   * `POST sys/capabilities-self` with `paths` (or the deprecated `path`): the caller's capabilities on each path,
   * relative to the request's namespace (internal/vault/logical_system.go `handleCapabilities`). One path also
   * answers as `capabilities`, kept upstream for backwards compatibility; the data is copied to the top level as
   * for every sys/ path (http/handler.go `handleLogicalWithInjector`).
   */
  function capabilitiesSelf(request: BaoRequest, rest: string): BaoResponse {
    if (rest !== '') throw unsupportedPath();
    if (request.operation !== 'update' && request.operation !== 'create') throw unsupportedOperation();
    const token = request.token;
    if (!token) throw badRequest('no token found');
    let paths = stringList(request.body.paths);
    if (paths.length === 0) paths = stringList(request.body.path);
    if (paths.length === 0) throw badRequest('paths must be supplied');
    const root = token.policies.includes('root');
    const policies = policiesOf(token.namespace, token.policies);
    const prefix = token.namespace.isAncestorOrSelf(request.namespace)
      ? token.namespace.relativePathOf(request.namespace)
      : undefined;
    const data: Record<string, string[]> = {};
    for (const path of paths) {
      const relative = path.replace(/^\/+/, '');
      if (root) data[path] = ['root'];
      else data[path] = prefix === undefined ? ['deny'] : capabilitiesOf(policies, prefix + relative);
    }
    if (paths.length === 1) data.capabilities = data[paths[0]];
    return ok(data, { injectTopLevel: true });
  }

  /** `sys/quotas/rate-limit/:name` and `sys/quotas/config` (root namespace only, like every sys/quotas path). */
  function quotas(request: BaoRequest, rest: string): BaoResponse {
    const { operation } = request;
    if (rest === 'config') {
      if (operation === 'read') return ok(context.quotas.config());
      if (operation !== 'create' && operation !== 'update') throw unsupportedOperation();
      context.quotas.configure(request.body);
      return noContent();
    }
    if (rest === 'rate-limit') {
      if (operation !== 'list') throw unsupportedOperation();
      const keys = context.quotas.names();
      if (keys.length === 0) throw notFoundEmpty();
      return ok({ keys });
    }
    if (!rest.startsWith('rate-limit/')) throw unsupportedPath();
    const name = rest.slice('rate-limit/'.length);
    if (name === '' || name.includes('/')) throw badRequest('missing quota name');
    switch (operation) {
      case 'read':
        return ok(context.quotas.read(name));
      case 'create':
      case 'update':
        context.quotas.write(name, request.body);
        return noContent();
      case 'delete':
        context.quotas.delete(name);
        return noContent();
      default:
        throw unsupportedOperation();
    }
  }

  /**
   * `GET sys/internal/ui/mounts/<path>`: the mount `<path>` lies in, for the KV preflight of the CLI and of
   * consul-template. Unauthenticated in routing, it checks the token itself (internal/vault/logical_system.go
   * `pathInternalUIMountRead`): no usable token is `permission denied`; no mount there, or a token whose policies
   * grant nothing on or below the mount, is the preflight 403, so the path cannot be used to probe for mounts.
   */
  function uiMount(request: BaoRequest, rest: string): BaoResponse {
    if (request.operation !== 'read') throw unsupportedOperation();
    const path = `${rest.replace(/^\/+/, '').replace(/\/+$/, '')}/`;
    if (path === '/') throw badRequest('path not set');
    const preflightDenied = new BaoError(403, [
      `preflight capability check returned 403, please ensure client's policies grant access to path "${path}"`,
    ]);
    const ns = request.namespace;
    const auth = path.startsWith('auth/');
    const table = auth ? ns.authMounts : ns.mounts;
    const relative = auth ? path.slice('auth/'.length) : path;
    let mount: Mount | undefined;
    for (const candidate of table.values()) {
      if (
        relative.startsWith(candidate.path) &&
        isVisible(candidate.createdMs, request.visibleAsOf) &&
        (!mount || candidate.path.length > mount.path.length)
      )
        mount = candidate;
    }
    if (!mount) throw preflightDenied;
    const token = request.token;
    if (!token?.namespace.isAncestorOrSelf(ns)) throw aclDeniedError();
    const mountPath = `${auth ? 'auth/' : ''}${mount.path}`;
    if (
      !token.policies.includes('root') &&
      !hasMountAccess(
        policiesOf(token.namespace, token.policies),
        token.namespace.relativePathOf(ns) + mountPath,
      )
    ) {
      throw preflightDenied;
    }
    return ok({ ...describeMount(mount), path: mountPath });
  }

  return {
    rootPaths: SYS_ROOT_PATHS,
    isUnauthenticated: (path) => path === 'internal/ui/mounts' || path.startsWith('internal/ui/mounts/'),
    handle(request) {
      const path = request.mountPath;
      const segments = path.split('/');
      if (!request.namespace.isRoot() && ROOT_ONLY.includes(segments[0])) {
        throw badRequest('operation only available in root namespace');
      }
      const routes: [string, (rest: string) => BaoResponse][] = [
        ['namespaces', (rest) => namespaces(request, rest.replace(/\/$/, ''))],
        ['mounts', (rest) => mounts(request, rest)],
        ['auth', (rest) => auth(request, rest)],
        ['policies/acl', (rest) => policies(request, rest.replace(/\/$/, ''), false)],
        ['policy', (rest) => policies(request, rest.replace(/\/$/, ''), true)],
        ['internal/ui/mounts', (rest) => uiMount(request, rest)],
        ['quotas', (rest) => quotas(request, rest.replace(/\/$/, ''))],
        ['capabilities-self', (rest) => capabilitiesSelf(request, rest)],
      ];
      for (const [prefix, route] of routes) {
        if (path === prefix) return route('');
        if (path.startsWith(`${prefix}/`)) return route(path.slice(prefix.length + 1));
      }
      throw unsupportedPath();
    },
  };
}
