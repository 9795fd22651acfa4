/**
 * Tokens, ACL policies and the two auth methods the project uses (Kubernetes, AppRole): thin calls over the
 * client's `request`, in OpenBao's own terms. `OpenBaoClient` exposes each as a method.
 */
import { CloudtaserError } from '../core/index.js';
import type { OpenBaoClient } from './client.js';
import { assertSegment, trimSlashes } from './paths.js';
import type {
  AppRoleRole,
  AuthResult,
  KubernetesAuthConfig,
  KubernetesAuthRole,
  TokenInfo,
} from './types.js';
import { type RawAuth, toAuthResult } from './wire.js';

// ---- tokens and policies ----

export async function lookupSelf(client: OpenBaoClient): Promise<TokenInfo> {
  const response = await client.request<{ data: Record<string, unknown> }>('GET', 'auth/token/lookup-self');
  const data = response.body?.data ?? {};
  return {
    policies: Array.isArray(data.policies) ? data.policies.map(String) : [],
    ttl: Number(data.ttl ?? 0),
    accessor: String(data.accessor ?? ''),
    displayName: String(data.display_name ?? ''),
    expireTime: typeof data.expire_time === 'string' ? data.expire_time : null,
    renewable: data.renewable === true,
    namespacePath: typeof data.namespace_path === 'string' ? data.namespace_path.replace(/\/$/, '') : '',
    meta: (data.meta as Record<string, string> | null | undefined) ?? null,
  };
}

/** Creates a child token in this client's namespace. */
export async function createToken(
  client: OpenBaoClient,
  options: {
    policies: readonly string[];
    ttl?: number | string;
    displayName?: string;
    noDefaultPolicy?: boolean;
  },
): Promise<AuthResult> {
  const response = await client.request<{ auth: RawAuth }>('POST', 'auth/token/create', {
    body: {
      policies: options.policies,
      ttl: options.ttl,
      display_name: options.displayName,
      no_default_policy: options.noDefaultPolicy,
    },
  });
  return toAuthResult(response.body?.auth, 'auth/token/create', client);
}

/**
 * The token's capabilities on each path (relative to the client's namespace), as OpenBao's ACL decides them:
 * `deny` where no rule grants anything, `root` for a root token. Every token's `default` policy allows it.
 */
export async function capabilitiesSelf(
  client: OpenBaoClient,
  paths: readonly string[],
): Promise<Record<string, string[]>> {
  const response = await client.request<{ data: Record<string, unknown> }>('POST', 'sys/capabilities-self', {
    body: { paths },
  });
  const data = response.body?.data ?? {};
  const answer: Record<string, string[]> = {};
  for (const path of paths) {
    const listed = data[path];
    if (!Array.isArray(listed)) {
      throw new CloudtaserError(
        'CT_OPENBAO_BAD_RESPONSE',
        `OpenBao's answer to sys/capabilities-self names no capabilities for ${JSON.stringify(path)}`,
        { details: { path: 'sys/capabilities-self', address: client.address, namespace: client.namespace } },
      );
    }
    answer[path] = listed.map(String);
  }
  return answer;
}

export async function revokeSelf(client: OpenBaoClient): Promise<void> {
  await client.request('POST', 'auth/token/revoke-self');
}

export async function writePolicy(client: OpenBaoClient, name: string, hcl: string): Promise<void> {
  await client.request('PUT', `sys/policies/acl/${assertSegment(name)}`, { body: { policy: hcl } });
}

export async function readPolicy(client: OpenBaoClient, name: string): Promise<string | undefined> {
  const response = await client.request<{ data: { policy?: string } }>(
    'GET',
    `sys/policies/acl/${assertSegment(name)}`,
    { allow404: true },
  );
  return response.status === 404 ? undefined : (response.body?.data?.policy ?? '');
}

export async function deletePolicy(client: OpenBaoClient, name: string): Promise<void> {
  await client.request('DELETE', `sys/policies/acl/${assertSegment(name)}`);
}

// ---- Kubernetes auth ----

export async function writeKubernetesAuthConfig(
  client: OpenBaoClient,
  mount: string,
  config: KubernetesAuthConfig,
): Promise<void> {
  await client.request('POST', `auth/${trimSlashes(mount)}/config`, {
    body: {
      kubernetes_host: config.kubernetesHost,
      kubernetes_ca_cert: config.kubernetesCaCert,
      token_reviewer_jwt: config.tokenReviewerJwt,
      disable_local_ca_jwt: config.disableLocalCaJwt,
    },
  });
}

export async function writeKubernetesAuthRole(
  client: OpenBaoClient,
  mount: string,
  role: string,
  options: KubernetesAuthRole,
): Promise<void> {
  await client.request('POST', `auth/${trimSlashes(mount)}/role/${assertSegment(role)}`, {
    body: {
      bound_service_account_names: options.boundServiceAccountNames,
      bound_service_account_namespaces: options.boundServiceAccountNamespaces,
      bound_service_account_namespace_selector: options.boundServiceAccountNamespaceSelector,
      token_policies: options.policies,
      token_ttl: options.ttl,
      audience: options.audience,
    },
  });
}

/** Logs a pod in with its service-account JWT (sent to this client's namespace, without a token). */
export async function kubernetesLogin(
  client: OpenBaoClient,
  mount: string,
  role: string,
  jwt: string,
): Promise<AuthResult> {
  const path = `auth/${trimSlashes(mount)}/login`;
  const response = await client.request<{ auth: RawAuth }>('POST', path, {
    body: { role, jwt },
    authenticated: false,
  });
  return toAuthResult(response.body?.auth, path, client);
}

// ---- AppRole ----

export async function writeAppRole(
  client: OpenBaoClient,
  mount: string,
  role: string,
  options: AppRoleRole,
): Promise<void> {
  await client.request('POST', `auth/${trimSlashes(mount)}/role/${assertSegment(role)}`, {
    body: {
      token_policies: options.policies,
      token_ttl: options.tokenTtl,
      token_max_ttl: options.tokenMaxTtl,
      secret_id_ttl: options.secretIdTtl,
    },
  });
}

export async function readAppRoleId(client: OpenBaoClient, mount: string, role: string): Promise<string> {
  const response = await client.request<{ data: { role_id: string } }>(
    'GET',
    `auth/${trimSlashes(mount)}/role/${assertSegment(role)}/role-id`,
  );
  return String(response.body?.data?.role_id ?? '');
}

/** A fresh secret ID: a credential; never log it. */
export async function createAppRoleSecretId(
  client: OpenBaoClient,
  mount: string,
  role: string,
): Promise<string> {
  const response = await client.request<{ data: { secret_id: string } }>(
    'POST',
    `auth/${trimSlashes(mount)}/role/${assertSegment(role)}/secret-id`,
    { body: {} },
  );
  return String(response.body?.data?.secret_id ?? '');
}

export async function appRoleLogin(
  client: OpenBaoClient,
  mount: string,
  roleId: string,
  secretId: string,
): Promise<AuthResult> {
  const path = `auth/${trimSlashes(mount)}/login`;
  const response = await client.request<{ auth: RawAuth }>('POST', path, {
    body: { role_id: roleId, secret_id: secretId },
    authenticated: false,
  });
  return toAuthResult(response.body?.auth, path, client);
}
