/** What the OpenBao API calls return and take, in this project's shapes (camelCase, no raw wire names). */

export interface NamespaceInfo {
  readonly id: string;
  /** Full path without the trailing slash, e.g. `cloudtaser/0ad50c05`. */
  readonly path: string;
  readonly uuid?: string;
  readonly tainted: boolean;
  readonly locked: boolean;
  readonly customMetadata: Record<string, string>;
}

export interface MountInfo {
  readonly type: string;
  readonly options?: Record<string, string>;
  readonly accessor?: string;
  readonly description?: string;
}

export interface KvSecret {
  readonly data: Record<string, unknown>;
  readonly version: number;
  readonly createdTime: string;
  readonly customMetadata: Record<string, string> | null;
}

export interface KvMetadata {
  readonly currentVersion: number;
  readonly oldestVersion: number;
  readonly createdTime: string;
  readonly updatedTime: string;
  readonly maxVersions: number;
  readonly casRequired: boolean;
  readonly customMetadata: Record<string, string> | null;
  readonly versions: Record<number, { createdTime: string; deletionTime: string; destroyed: boolean }>;
}

export interface TokenInfo {
  readonly policies: string[];
  /** Seconds left; 0 for tokens that never expire (root). */
  readonly ttl: number;
  readonly accessor: string;
  readonly displayName: string;
  readonly expireTime: string | null;
  readonly renewable: boolean;
  /** Namespace the token belongs to, without trailing slash; '' for root. */
  readonly namespacePath: string;
  readonly meta: Record<string, string> | null;
}

/** What a login or token creation returns. `clientToken` is a secret: never log it. */
export interface AuthResult {
  readonly clientToken: string;
  readonly accessor: string;
  readonly policies: string[];
  readonly leaseDuration: number;
  readonly renewable: boolean;
  readonly metadata: Record<string, string> | null;
}

export interface HealthInfo {
  readonly initialized: boolean;
  readonly sealed: boolean;
  readonly standby: boolean;
  readonly version: string;
  /** HTTP status of sys/health (200 active, 429 standby, 503 sealed, 501 uninitialised). */
  readonly status: number;
}

export interface KubernetesAuthConfig {
  readonly kubernetesHost: string;
  readonly kubernetesCaCert?: string;
  readonly tokenReviewerJwt?: string;
  readonly disableLocalCaJwt?: boolean;
}

export interface KubernetesAuthRole {
  readonly boundServiceAccountNames: readonly string[];
  readonly boundServiceAccountNamespaces: readonly string[];
  /** A label selector (JSON or YAML) over namespace labels; OpenBao then reads the pod's namespace. */
  readonly boundServiceAccountNamespaceSelector?: string;
  readonly policies: readonly string[];
  /** Seconds or a Go duration such as '1h'. */
  readonly ttl?: number | string;
  readonly audience?: string;
}

export interface AppRoleRole {
  readonly policies: readonly string[];
  readonly tokenTtl?: number | string;
  /** No renewal takes a token past this; then the holder logs in again. */
  readonly tokenMaxTtl?: number | string;
  readonly secretIdTtl?: number | string;
}
