/**
 * DEV-ONLY: the two cloudtaser identities on an OpenBao (test) server, set up as docs/openbao-policies.md tells
 * an operator to: the shipped policies written in the root namespace, the bridge as an AppRole, the registrar
 * as a token. `dev up`, the demo and the tests run the bridge and registration with these, never with the root
 * token, so a missing or an excess capability in the shipped table fails a test.
 */
import type { OpenBaoClient } from '../openbao/index.js';
import { POLICY_NAMES, type PolicyRenderOptions, renderPolicyHcl } from '../registration/index.js';

export interface CloudtaserIdentities {
  /** A token with exactly the registrar policy (and `default`). */
  readonly registrarToken: string;
  /** AppRole credentials with exactly the bridge policy, for `bridge run` (env or flags). */
  readonly bridgeRoleId: string;
  readonly bridgeSecretId: string;
  /** A token from an AppRole login with those credentials. */
  readonly bridgeToken: string;
}

export const APPROLE_MOUNT = 'approle';

/**
 * Writes both policies (rendered with `options`) in the root namespace, an AppRole for the bridge and a token
 * for the registrar. `admin` must be a root-namespace client with a root token. Re-running replaces the
 * policies (a test that drops one line) and issues fresh credentials.
 */
export async function provisionIdentities(
  admin: OpenBaoClient,
  options: PolicyRenderOptions & { readonly registrar?: PolicyRenderOptions } = {},
): Promise<CloudtaserIdentities> {
  await admin.writePolicy(POLICY_NAMES.bridge, renderPolicyHcl('bridge', options));
  await admin.writePolicy(POLICY_NAMES.registrar, renderPolicyHcl('registrar', options.registrar ?? options));
  await admin.enableAuth(APPROLE_MOUNT, 'approle');
  await admin.writeAppRole(APPROLE_MOUNT, POLICY_NAMES.bridge, {
    policies: [POLICY_NAMES.bridge],
    tokenTtl: '1h',
  });
  const bridgeRoleId = await admin.readAppRoleId(APPROLE_MOUNT, POLICY_NAMES.bridge);
  const bridgeSecretId = await admin.createAppRoleSecretId(APPROLE_MOUNT, POLICY_NAMES.bridge);
  const login = await admin.appRoleLogin(APPROLE_MOUNT, bridgeRoleId, bridgeSecretId);
  const registrar = await admin.createToken({ policies: [POLICY_NAMES.registrar], ttl: '1h' });
  return {
    registrarToken: registrar.clientToken,
    bridgeRoleId,
    bridgeSecretId,
    bridgeToken: login.clientToken,
  };
}
