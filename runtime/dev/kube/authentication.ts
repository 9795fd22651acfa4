/** Bearer-token authentication of the Kubernetes test server (dev-only), shared by requests and TokenReview. */
import type { ServerState, UserInfo } from './requests.js';

export function adminUser(): UserInfo {
  return {
    username: 'kubernetes-admin',
    uid: '',
    groups: ['system:masters', 'system:authenticated'],
    extra: {},
    isAdmin: true,
  };
}

/**
 * Authenticates a bearer token the way the API server's token authenticators do: the static admin token,
 * or a service-account JWT that is signed by this server, unexpired, meant for `audiences` and whose
 * service account still exists with the same uid.
 */
export function authenticateToken(
  state: ServerState,
  token: string,
  audiences: readonly string[],
): { ok: true; user: UserInfo; audiences: string[] } | { ok: false; error: string } {
  if (token === state.adminToken) return { ok: true, user: adminUser(), audiences: [...audiences] };
  const checked = state.signer.check(token);
  if (!checked.ok) return { ok: false, error: `[invalid bearer token, ${checked.error}]` };
  const claims = checked.claims;
  const matched = claims.aud.filter((a) => audiences.includes(a));
  if (matched.length === 0) {
    return {
      ok: false,
      error: `[invalid bearer token, token audiences ${JSON.stringify(claims.aud)} is invalid for the target audiences ${JSON.stringify(audiences)}]`,
    };
  }
  const { namespace, serviceaccount, pod } = claims['kubernetes.io'];
  const account = state.store.get('serviceaccounts', namespace, serviceaccount.name);
  if (account === undefined || account.metadata.uid !== serviceaccount.uid) {
    return {
      ok: false,
      error: `[invalid bearer token, service account ${namespace}/${serviceaccount.name} has been deleted or recreated]`,
    };
  }
  const extra: Record<string, string[]> = {
    'authentication.kubernetes.io/credential-id': [`JTI=${claims.jti}`],
  };
  if (pod !== undefined) {
    extra['authentication.kubernetes.io/pod-name'] = [pod.name];
    extra['authentication.kubernetes.io/pod-uid'] = [pod.uid];
  }
  return {
    ok: true,
    audiences: matched,
    user: {
      username: claims.sub,
      uid: serviceaccount.uid,
      groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
      extra,
      isAdmin: false,
    },
  };
}
