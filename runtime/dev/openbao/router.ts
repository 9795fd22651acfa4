/**
 * DEV-ONLY test infrastructure: the logical request pipeline of the OpenBao-compatible test server, in
 * OpenBao's order: namespace resolution, token check, ACL, mount routing, backend.
 */
import { type Capability, checkAcl, isRootPath, type StoredPolicy } from './acl.js';
import type { BaoRequest, Operation } from './backend.js';
import { type Mount, type Namespace, resolveNamespace } from './namespaces.js';
import type { TokenStore } from './tokens.js';
import { aclDenied, BaoError, type BaoResponse, badRequest, permissionDenied } from './wire.js';

export interface LogicalInput {
  readonly operation: Exclude<Operation, 'create'>;
  /** URL path after `/v1/`, decoded. */
  readonly path: string;
  readonly namespaceHeader: string;
  readonly token: string | undefined;
  readonly body: Record<string, unknown>;
  readonly query: URLSearchParams;
}

export interface RouterContext {
  readonly root: Namespace;
  readonly tokens: TokenStore;
  readonly namespacesEnabled: boolean;
}

function findMount(namespace: Namespace, path: string): { mount: Mount; mountPath: string } | undefined {
  const auth = path.startsWith('auth/');
  const table = auth ? namespace.authMounts : namespace.mounts;
  const relative = auth ? path.slice('auth/'.length) : path;
  let best: Mount | undefined;
  for (const mount of table.values()) {
    const bare = mount.path.slice(0, -1);
    if (
      (relative === bare || relative.startsWith(mount.path)) &&
      (!best || mount.path.length > best.path.length)
    ) {
      best = mount;
    }
  }
  if (!best) return undefined;
  return { mount: best, mountPath: relative.slice(best.path.length) };
}

function policiesOf(namespace: Namespace, names: readonly string[]): StoredPolicy[] {
  return names.map((name) => namespace.policies.get(name)).filter((p): p is StoredPolicy => p !== undefined);
}

export async function routeLogical(context: RouterContext, input: LogicalInput): Promise<BaoResponse> {
  const { namespace, relativePath } = context.namespacesEnabled
    ? resolveNamespace(context.root, input.namespaceHeader, input.path)
    : { namespace: context.root, relativePath: input.path };
  let path = relativePath;
  const listing = input.operation === 'list' || input.operation === 'scan';
  if (listing && !path.endsWith('/')) path += '/';
  const writing = input.operation === 'update' || input.operation === 'patch';
  if (writing && path.endsWith('/')) throw badRequest("cannot write to a path ending in '/'");

  const routed = findMount(namespace, path);
  const unauthenticated =
    routed?.mount.backend.isUnauthenticated?.(routed.mountPath.replace(/\/$/, '')) === true;
  const token = unauthenticated ? undefined : context.tokens.lookup(input.token);
  // Unknown, expired or revoked tokens, and tokens of a namespace that is not an ancestor, all read the same.
  if (!unauthenticated && !token?.namespace.isAncestorOrSelf(namespace)) throw permissionDenied();

  let operation: Operation = input.operation;
  if (operation === 'update' && routed?.mount.backend.exists) {
    const probe = { ...baseRequest(), operation } as BaoRequest;
    if (!routed.mount.backend.exists(probe)) operation = 'create';
  }

  if (token && !token.policies.includes('root')) {
    // Policies are the token namespace's, matched against the path from that namespace (acl.go AllowOperation
    // prefixes both with the namespace path).
    const aclPath = token.namespace.relativePathOf(namespace) + path;
    const policies = policiesOf(token.namespace, token.policies);
    const decision = checkAcl(policies, aclPath, operation as Capability);
    // request_handling.go CheckToken: a root-protected path (router.go RootPath) also needs `sudo`.
    const rootPath = routed !== undefined && isRootPath(routed.mount.backend.rootPaths, routed.mountPath);
    if (!decision.allowed || (rootPath && !decision.sudo)) throw aclDenied();
  }

  if (!routed) throw new BaoError(404, [`no handler for route "${path}". route entry not found.`]);
  const request: BaoRequest = { ...baseRequest(), operation };
  return routed.mount.backend.handle(request);

  function baseRequest(): Omit<BaoRequest, 'operation'> {
    return {
      path,
      mountPath: routed!.mountPath,
      mount: routed!.mount,
      namespace,
      body: input.body,
      query: input.query,
      token,
    };
  }
}
