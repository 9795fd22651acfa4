/**
 * DEV-ONLY test infrastructure: the AppRole auth method of the OpenBao-compatible test server (roles, role IDs,
 * secret IDs, login), enough for the bridge's own credentials. Follows internal/builtin/credential/approle/
 * (path_role.go for roles, role-id and secret-id; path_login.go for login, whose wrong or expired credentials
 * are 400 `invalid role or secret ID` and missing ones 400 `missing role_id` / `missing secret_id`; wire-facts A6).
 */
import { randomUUID } from 'node:crypto';
import type { Backend, BaoRequest } from './backend.js';
import type { Namespace } from './namespaces.js';
import { authBlock, type TokenStore } from './tokens.js';
import {
  type BaoResponse,
  badRequest,
  noContent,
  notFoundEmpty,
  ok,
  parseDurationSeconds,
  stringList,
  unsupportedOperation,
  unsupportedPath,
} from './wire.js';

interface AppRole {
  roleId: string;
  policies: string[];
  ttlSeconds: number;
  maxTtlSeconds: number;
  secretIdTtlSeconds: number;
  bindSecretId: boolean;
  readonly secretIds: Map<string, { accessor: string; expiresAtMs: number | undefined }>;
}

export function createAppRoleBackend(deps: {
  readonly tokens: TokenStore;
  readonly namespace: Namespace;
}): Backend {
  const roles = new Map<string, AppRole>();

  function login(body: Record<string, unknown>): BaoResponse {
    const roleId = typeof body.role_id === 'string' ? body.role_id : '';
    const secretId = typeof body.secret_id === 'string' ? body.secret_id : '';
    if (roleId === '') throw badRequest('missing role_id');
    const found = [...roles.entries()].find(([, role]) => role.roleId === roleId);
    if (!found) throw badRequest('invalid role or secret ID');
    const [name, role] = found;
    if (role.bindSecretId) {
      if (secretId === '') throw badRequest('missing secret_id');
      const entry = role.secretIds.get(secretId);
      if (!entry || (entry.expiresAtMs !== undefined && entry.expiresAtMs <= Date.now())) {
        throw badRequest('invalid role or secret ID');
      }
    }
    const token = deps.tokens.create({
      namespace: deps.namespace,
      policies: role.policies,
      ttlSeconds: role.ttlSeconds,
      maxTtlSeconds: role.maxTtlSeconds,
      displayName: 'approle',
      meta: { role_name: name },
      path: 'auth/approle/login',
    });
    return { kind: 'data', auth: authBlock(token) };
  }

  return {
    isUnauthenticated: (path) => path === 'login',
    handle(request: BaoRequest) {
      const { operation, body } = request;
      const write = operation === 'create' || operation === 'update';
      const path = request.mountPath.replace(/\/$/, '');
      if (path === 'login') {
        if (!write) throw unsupportedOperation(true);
        return login(body);
      }
      if (path === 'role' && operation === 'list') {
        if (roles.size === 0) throw notFoundEmpty();
        return ok({ keys: [...roles.keys()].sort() });
      }
      const match = /^role\/([^/]+)(?:\/(role-id|secret-id))?$/.exec(path);
      if (!match) throw unsupportedPath();
      const name = match[1].toLowerCase();
      const sub = match[2];
      const role = roles.get(name);
      if (sub === undefined) {
        if (write) {
          const next: AppRole = role ?? {
            roleId: randomUUID(),
            policies: [],
            ttlSeconds: 0,
            maxTtlSeconds: 0,
            secretIdTtlSeconds: 0,
            bindSecretId: true,
            secretIds: new Map(),
          };
          if ('token_policies' in body || 'policies' in body) {
            next.policies = stringList(body.token_policies ?? body.policies);
          }
          if ('token_ttl' in body) next.ttlSeconds = parseDurationSeconds(body.token_ttl, 'token_ttl');
          if ('token_max_ttl' in body)
            next.maxTtlSeconds = parseDurationSeconds(body.token_max_ttl, 'token_max_ttl');
          if ('secret_id_ttl' in body) {
            next.secretIdTtlSeconds = parseDurationSeconds(body.secret_id_ttl, 'secret_id_ttl');
          }
          if ('bind_secret_id' in body) next.bindSecretId = body.bind_secret_id !== false;
          roles.set(name, next);
          return noContent();
        }
        if (operation === 'delete') {
          roles.delete(name);
          return noContent();
        }
        if (operation !== 'read') throw unsupportedOperation();
        if (!role) throw notFoundEmpty();
        return ok({
          bind_secret_id: role.bindSecretId,
          secret_id_ttl: role.secretIdTtlSeconds,
          token_policies: role.policies,
          token_ttl: role.ttlSeconds,
          token_max_ttl: role.maxTtlSeconds,
        });
      }
      if (!role) throw badRequest(`role "${name}" does not exist`);
      if (sub === 'role-id') {
        if (operation === 'read') return ok({ role_id: role.roleId });
        if (!write) throw unsupportedOperation();
        if (typeof body.role_id !== 'string' || body.role_id === '') throw badRequest('missing role_id');
        role.roleId = body.role_id;
        return noContent();
      }
      if (!write) throw unsupportedOperation();
      const secretId = randomUUID();
      const accessor = randomUUID();
      role.secretIds.set(secretId, {
        accessor,
        expiresAtMs: role.secretIdTtlSeconds > 0 ? Date.now() + role.secretIdTtlSeconds * 1000 : undefined,
      });
      return ok({
        secret_id: secretId,
        secret_id_accessor: accessor,
        secret_id_num_uses: 0,
        secret_id_ttl: role.secretIdTtlSeconds,
      });
    },
  };
}
