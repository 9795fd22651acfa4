/**
 * DEV-ONLY test infrastructure: the namespace tree of the OpenBao-compatible test server, and how a request's
 * header plus URL path resolve to one namespace (longest existing prefix), as OpenBao 2.3+ does.
 */
import { randomUUID } from 'node:crypto';
import type { StoredPolicy } from './acl.js';
import type { Backend } from './backend.js';
import { BaoError, randomBase62 } from './wire.js';

export interface Mount {
  /** With trailing slash, relative to the namespace: `secret/`, `auth/kubernetes/`, `sys/`. */
  readonly path: string;
  readonly type: string;
  readonly options: Record<string, string> | null;
  readonly accessor: string;
  readonly uuid: string;
  readonly description: string;
  readonly backend: Backend;
  readonly local: boolean;
  /** When it was mounted: a lagging HA standby does not see it for a while (see `visibleAsOf`). */
  readonly createdMs: number;
}

/**
 * A read served by an HA standby that lags the active node (OpenBao >= 2.5 serves reads on standbys): it sees
 * namespaces, mounts and KV versions written up to this time (ms) only. Undefined = the current state.
 */
export type VisibleAsOf = number | undefined;

/** Whether something written at `createdMs` is visible to a read as of `asOf`. */
export function isVisible(createdMs: number, asOf: VisibleAsOf): boolean {
  return asOf === undefined || createdMs <= asOf;
}

export class Namespace {
  readonly id: string;
  readonly uuid = randomUUID();
  readonly createdMs = Date.now();
  readonly children = new Map<string, Namespace>();
  /** Secret engine mounts keyed by path (`secret/`), including the built-in `sys/`, `cubbyhole/`, `identity/`. */
  readonly mounts = new Map<string, Mount>();
  /** Auth mounts keyed by their path under `auth/` (`token/`, `kubernetes/`). */
  readonly authMounts = new Map<string, Mount>();
  readonly policies = new Map<string, StoredPolicy>();
  /** null when the namespace was written without custom metadata, as OpenBao stores it (reads back `null`). */
  customMetadata: Record<string, string> | null = null;
  tainted = false;
  /** Set once the async delete finished; tokens of a deleted namespace stop working. */
  deleted = false;

  constructor(
    readonly name: string,
    readonly parent: Namespace | undefined,
  ) {
    this.id = parent ? randomBase62(6) : 'root';
  }

  /** Full path with trailing slash; '' for the root. */
  get path(): string {
    return this.parent ? `${this.parent.path}${this.name}/` : '';
  }

  isRoot(): boolean {
    return this.parent === undefined;
  }

  /** True when `this` is `other` or one of its ancestors. */
  isAncestorOrSelf(other: Namespace): boolean {
    for (let ns: Namespace | undefined = other; ns; ns = ns.parent) if (ns === this) return true;
    return false;
  }

  /** `other`'s path relative to this namespace (this must be an ancestor or self). */
  relativePathOf(other: Namespace): string {
    return other.path.slice(this.path.length);
  }

  /** The namespace object as `sys/namespaces` shows it. */
  describe(): Record<string, unknown> {
    return {
      custom_metadata: this.customMetadata === null ? null : { ...this.customMetadata },
      id: this.id,
      locked: false,
      path: this.path,
      tainted: this.tainted,
      uuid: this.uuid,
    };
  }

  *descendants(): Generator<Namespace> {
    for (const child of this.children.values()) {
      yield child;
      yield* child.descendants();
    }
  }
}

/** Cleans a header value the way OpenBao canonicalises it; '' and 'root' mean the root namespace. */
export function canonicalNamespaceHeader(header: string): string[] {
  const trimmed = header.trim().replace(/^\/+/, '').replace(/\/+$/, '');
  if (trimmed === '' || trimmed === 'root') return [];
  return trimmed.split('/').filter((segment) => segment !== '' && segment !== '.');
}

/**
 * Resolves header + URL path: the header must name an existing namespace (else 404 `namespace not found`);
 * then leading URL segments that name child namespaces are consumed (longest existing prefix).
 */
export function resolveNamespace(
  root: Namespace,
  header: string,
  urlPath: string,
  asOf?: VisibleAsOf,
): { namespace: Namespace; relativePath: string } {
  const childOf = (parent: Namespace, name: string): Namespace | undefined => {
    const child = parent.children.get(name);
    return child && isVisible(child.createdMs, asOf) ? child : undefined;
  };
  let namespace = root;
  for (const segment of canonicalNamespaceHeader(header)) {
    const child = childOf(namespace, segment);
    if (!child) throw new BaoError(404, ['namespace not found']);
    namespace = child;
  }
  let rest = urlPath;
  for (;;) {
    const slash = rest.indexOf('/');
    if (slash <= 0) break;
    const child = childOf(namespace, rest.slice(0, slash));
    if (!child) break;
    namespace = child;
    rest = rest.slice(slash + 1);
  }
  return { namespace, relativePath: rest };
}

const RESERVED_NAMES = new Set(['root', 'sys', 'audit', 'auth', 'cubbyhole', 'identity', '.', '..']);

/** Validates a single-segment namespace name; the texts are OpenBao 2.5.5+'s. */
export function validateNamespaceName(name: string): void {
  if (name === '') throw new BaoError(400, ['namespace name cannot be empty']);
  if (name.includes('/')) throw new BaoError(400, ['namespace name cannot contain /']);
  if (RESERVED_NAMES.has(name)) {
    throw new BaoError(400, [`"${name}/" is a reserved path and cannot be used as a namespace name`]);
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\s\u0000-\u001f\u007f+*]/.test(name)) {
    throw new BaoError(400, [`namespace name "${name}" contains invalid characters`]);
  }
}
