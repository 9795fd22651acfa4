import type { JsonWebKey } from 'node:crypto';
import { parseJwks } from '../attestation/index.js';
import { CloudtaserError, ISSUER_RULE, isCloudtaserError } from '../core/index.js';
import { KubeClient } from './client.js';
import type { KubeConnection } from './connection.js';

/** What attested bootstrap needs from a cluster: who signs its service-account tokens, and with which keys. */
export interface ServiceAccountIssuer {
  /** `iss` of the cluster's service-account tokens (from `/.well-known/openid-configuration`). */
  readonly issuer: string;
  /** The usable public keys of `/openid/v1/jwks` (anything that is not an RSA/EC public key is dropped). */
  readonly jwks: { readonly keys: readonly JsonWebKey[] };
}

/**
 * Reads the cluster's service-account issuer and its public keys, the material registration stores so the bridge
 * can check bootstrap tokens offline. Needs `get` on the non-resource URLs `/.well-known/openid-configuration`
 * and `/openid/v1/jwks`. Kubernetes grants that through the ClusterRole `system:service-account-issuer-discovery`,
 * which its bootstrap RBAC policy binds to the group `system:serviceaccounts` only (by default since 1.20, when
 * ServiceAccountIssuerDiscovery went beta; GA in 1.21): service accounts can read these URLs, a plain
 * authenticated user cannot. An admin kubeconfig (cluster-admin) reads them; any other user needs
 * `kubectl create clusterrolebinding <name> --clusterrole=system:service-account-issuer-discovery --user=<user>`.
 */
export async function readServiceAccountIssuer(
  connection: KubeConnection,
  opts: { signal?: AbortSignal; timeoutMs?: number } = {},
): Promise<ServiceAccountIssuer> {
  const client = KubeClient.fromConnection(connection, { timeoutMs: opts.timeoutMs });
  try {
    const discovery = await client.getOpenIdConfiguration({ signal: opts.signal }).catch((err: unknown) => {
      // 404 means the API server does not serve discovery: its --service-account-issuer is not a URL.
      if (isCloudtaserError(err, 'CT_KUBE_NOT_FOUND')) {
        throw new CloudtaserError(
          'CT_KUBE_NOT_FOUND',
          `the Kubernetes API server at ${client.server} does not serve /.well-known/openid-configuration (its --service-account-issuer is not an https URL); give the issuer and the keys of /openid/v1/jwks explicitly`,
          { cause: err, details: { server: client.server } },
        );
      }
      throw err;
    });
    const issuer = discovery?.issuer;
    // Registration stores it under the same rule the CLI, provider and constructs check.
    if (typeof issuer !== 'string' || !ISSUER_RULE.test(issuer)) {
      throw new CloudtaserError(
        'CT_KUBE_ERROR',
        `the /.well-known/openid-configuration of ${client.server} has no usable "issuer" (a URL of at most 1024 characters, no spaces); is this a Kubernetes API server?`,
        { details: { server: client.server } },
      );
    }
    const document = await client.getServiceAccountJwks({ signal: opts.signal });
    let jwks: { keys: JsonWebKey[] };
    try {
      jwks = parseJwks(document);
    } catch (err) {
      throw new CloudtaserError(
        'CT_KUBE_ERROR',
        `the /openid/v1/jwks of ${client.server} holds no usable service-account public key (${(err as Error).message})`,
        { cause: err, details: { server: client.server } },
      );
    }
    return { issuer, jwks };
  } finally {
    client.close();
  }
}
