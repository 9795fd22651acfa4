export type { OpenBaoRequestEvent, OpenBaoRequestObserver } from './client.js';
export {
  type AppRoleRole,
  type AuthResult,
  type HealthInfo,
  type HttpMethod,
  type KubernetesAuthConfig,
  type KubernetesAuthRole,
  type KvMetadata,
  type KvSecret,
  type MountInfo,
  type NamespaceInfo,
  namespacesSupportedByVersion,
  normaliseNamespace,
  OpenBaoClient,
  type OpenBaoClientOptions,
  type OpenBaoResponse,
  type RequestOptions,
  type TokenInfo,
} from './client.js';
export { resolveSecretStoreAddress, resolveSecretStoreToken } from './env.js';
export {
  MAX_REDIRECTS,
  type RedirectableRequest,
  redirectTarget,
  requestFollowingRedirects,
} from './redirect.js';
export {
  keepStaticTokenAlive,
  OPENBAO_AWAY_CODES,
  type OpenBaoTokenSource,
  type RenewingLogin,
  type RenewingLoginOptions,
  type StaticTokenKeeper,
  startRenewingLogin,
  type TokenLoginState,
} from './token-source.js';
