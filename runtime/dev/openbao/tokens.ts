/**
 * DEV-ONLY test infrastructure: the token store and the `auth/token/` backend of the OpenBao-compatible test
 * server. Tokens belong to a namespace and work there and below it (internal/vault/request_handling.go
 * `fetchACLTokenEntryAndEntity`). Upstream sources the behaviours follow (openbao/openbao, wire-facts A4):
 * create, lookup(-self), renew(-self), revoke(-self) in internal/vault/token_store.go (`handleCreateCommon`,
 * `handleLookup`, `handleRenewSelf`, `handleRevokeSelf`); the 32-day default TTL in internal/vault/expiration.go;
 * an unknown, expired or revoked token is a plain 403 `permission denied` (internal/vault/request_handling.go
 * `CheckToken`).
 */
import { randomBytes } from 'node:crypto';
import type { Backend, BaoRequest } from './backend.js';
import type { Namespace } from './namespaces.js';
import {
  type AuthBlock,
  type BaoResponse,
  badRequest,
  noContent,
  ok,
  parseDurationSeconds,
  permissionDenied,
  randomBase62,
  rfc3339,
  stringList,
  unsupportedOperation,
  unsupportedPath,
} from './wire.js';

/** OpenBao's default token TTL: 32 days. */
export const DEFAULT_TOKEN_TTL_SECONDS = 2_764_800;

export interface TokenEntry {
  readonly id: string;
  readonly accessor: string;
  readonly policies: readonly string[];
  readonly namespace: Namespace;
  readonly displayName: string;
  readonly meta: Record<string, string> | null;
  readonly path: string;
  readonly createdAtMs: number;
  readonly orphan: boolean;
  readonly renewable: boolean;
  ttlSeconds: number;
  expiresAtMs: number | undefined;
  issuedAtMs: number;
  /** The role's `token_max_ttl`: no renewal takes the token past it. */
  readonly maxExpiresAtMs?: number;
}

export interface TokenCreateOptions {
  readonly namespace: Namespace;
  readonly policies: readonly string[];
  readonly ttlSeconds?: number;
  /** `token_max_ttl` of the role that issued it; 0 or absent = the mount's (no cap here). */
  readonly maxTtlSeconds?: number;
  readonly displayName: string;
  readonly meta?: Record<string, string> | null;
  readonly path: string;
  readonly orphan?: boolean;
  readonly noDefaultPolicy?: boolean;
  readonly id?: string;
}

export class TokenStore {
  private readonly byId = new Map<string, TokenEntry>();
  private readonly byAccessor = new Map<string, TokenEntry>();

  create(options: TokenCreateOptions): TokenEntry {
    const isRoot = options.policies.includes('root');
    const policies = isRoot
      ? ['root']
      : [...new Set([...options.policies, ...(options.noDefaultPolicy ? [] : ['default'])])].sort();
    const maxTtlSeconds = isRoot ? 0 : (options.maxTtlSeconds ?? 0);
    const wantedTtl = isRoot ? 0 : options.ttlSeconds || DEFAULT_TOKEN_TTL_SECONDS;
    const ttlSeconds = maxTtlSeconds > 0 ? Math.min(wantedTtl, maxTtlSeconds) : wantedTtl;
    const now = Date.now();
    const entry: TokenEntry = {
      id: options.id ?? `hvs.${randomBytes(66).toString('base64url')}`,
      accessor: randomBase62(24),
      policies,
      namespace: options.namespace,
      displayName: options.displayName,
      meta: options.meta ?? null,
      path: options.path,
      createdAtMs: now,
      issuedAtMs: now,
      orphan: options.orphan ?? true,
      renewable: !isRoot,
      ttlSeconds,
      expiresAtMs: ttlSeconds > 0 ? now + ttlSeconds * 1000 : undefined,
      ...(maxTtlSeconds > 0 ? { maxExpiresAtMs: now + maxTtlSeconds * 1000 } : {}),
    };
    this.byId.set(entry.id, entry);
    this.byAccessor.set(entry.accessor, entry);
    return entry;
  }

  /** The live token for `id`, or undefined if unknown, expired, revoked or its namespace is gone. */
  lookup(id: string | undefined): TokenEntry | undefined {
    if (!id) return undefined;
    const entry = this.byId.get(id);
    if (!entry) return undefined;
    if (entry.namespace.deleted || (entry.expiresAtMs !== undefined && entry.expiresAtMs <= Date.now())) {
      this.revoke(entry);
      return undefined;
    }
    return entry;
  }

  lookupAccessor(accessor: string): TokenEntry | undefined {
    const entry = this.byAccessor.get(accessor);
    return entry ? this.lookup(entry.id) : undefined;
  }

  revoke(entry: TokenEntry): void {
    this.byId.delete(entry.id);
    this.byAccessor.delete(entry.accessor);
  }

  revokeNamespace(namespace: Namespace): void {
    for (const entry of [...this.byId.values()]) if (entry.namespace === namespace) this.revoke(entry);
  }
}

export function authBlock(entry: TokenEntry): AuthBlock {
  return {
    client_token: entry.id,
    accessor: entry.accessor,
    policies: entry.policies,
    token_policies: entry.policies,
    metadata: entry.meta,
    lease_duration: entry.ttlSeconds,
    renewable: entry.renewable,
    entity_id: '',
    token_type: 'service',
    orphan: entry.orphan,
    mfa_requirement: null,
    num_uses: 0,
  };
}

function describeToken(entry: TokenEntry): Record<string, unknown> {
  const remaining =
    entry.expiresAtMs === undefined ? 0 : Math.max(0, Math.round((entry.expiresAtMs - Date.now()) / 1000));
  const data: Record<string, unknown> = {
    accessor: entry.accessor,
    creation_time: Math.floor(entry.createdAtMs / 1000),
    creation_ttl: entry.ttlSeconds,
    display_name: entry.displayName,
    entity_id: '',
    expire_time: entry.expiresAtMs === undefined ? null : rfc3339(entry.expiresAtMs),
    explicit_max_ttl: 0,
    id: entry.id,
    meta: entry.meta,
    num_uses: 0,
    orphan: entry.orphan,
    path: entry.path,
    policies: entry.policies,
    renewable: entry.renewable,
    ttl: remaining,
    type: 'service',
  };
  if (entry.expiresAtMs !== undefined) data.issue_time = rfc3339(entry.issuedAtMs);
  if (!entry.namespace.isRoot()) data.namespace_path = entry.namespace.path;
  return data;
}

/** `auth/token/`: create, lookup(-self), renew-self, revoke(-self). */
export function createTokenBackend(store: TokenStore): Backend {
  return {
    // token_store.go PathsSpecial.Root.
    rootPaths: ['revoke-orphan/*', 'accessors*'],
    handle(request: BaoRequest): BaoResponse {
      const token = request.token!;
      const { operation, body } = request;
      const path = request.mountPath;
      const write = operation === 'update' || operation === 'create';
      switch (path) {
        case 'create':
        case 'create-orphan': {
          if (!write) throw unsupportedOperation();
          const requested = stringList(body.policies);
          const parentIsRoot = token.policies.includes('root');
          if (!parentIsRoot) {
            const allowed = new Set(token.policies);
            const extra = requested.filter((p) => p !== 'default' && !allowed.has(p));
            if (extra.length > 0) throw badRequest('child policies must be subset of parent');
          }
          const entry = store.create({
            namespace: request.namespace,
            policies: requested.length > 0 ? requested : token.policies,
            ttlSeconds: parseDurationSeconds(body.ttl, 'ttl'),
            displayName: `token${body.display_name ? `-${String(body.display_name)}` : ''}`,
            meta: body.meta && typeof body.meta === 'object' ? (body.meta as Record<string, string>) : null,
            path: `auth/token/${path}`,
            orphan: path === 'create-orphan' || body.no_parent === true,
            noDefaultPolicy: body.no_default_policy === true,
          });
          return { kind: 'data', auth: authBlock(entry) };
        }
        case 'lookup-self':
          if (operation !== 'read' && !write) throw unsupportedOperation();
          return ok(describeToken(token));
        case 'lookup': {
          if (!write) throw unsupportedOperation();
          const target = store.lookup(typeof body.token === 'string' ? body.token : undefined);
          if (!target) throw badRequest('bad token');
          return ok(describeToken(target));
        }
        case 'renew-self': {
          if (!write) throw unsupportedOperation();
          if (!token.renewable) throw badRequest('lease is not renewable');
          const increment = parseDurationSeconds(body.increment, 'increment') || token.ttlSeconds;
          const now = Date.now();
          // Capped at the role's max TTL, as internal/vault/expiration.go RenewToken does (with a warning).
          const expiresAtMs =
            token.maxExpiresAtMs === undefined
              ? now + increment * 1000
              : Math.min(now + increment * 1000, token.maxExpiresAtMs);
          token.issuedAtMs = now;
          token.ttlSeconds = Math.max(0, Math.floor((expiresAtMs - now) / 1000));
          token.expiresAtMs = expiresAtMs;
          return {
            kind: 'data',
            auth: authBlock(token),
            ...(token.ttlSeconds < increment
              ? {
                  warnings: [
                    `TTL of "${increment}s" exceeded the effective max_ttl of "${token.ttlSeconds}s"; TTL value is capped accordingly`,
                  ],
                }
              : {}),
          };
        }
        case 'revoke-self':
          if (!write) throw unsupportedOperation();
          store.revoke(token);
          return noContent();
        case 'revoke': {
          if (!write) throw unsupportedOperation();
          const target = store.lookup(typeof body.token === 'string' ? body.token : undefined);
          if (target) store.revoke(target);
          return noContent();
        }
        default:
          if (path === '') throw permissionDenied();
          throw unsupportedPath();
      }
    },
  };
}
