/**
 * Tunnel paths of the operational phase. Pod API requests and migration writes go broker -> bridge;
 * TokenReviews go bridge -> broker. Each end serves only its own list and refuses everything else.
 */
import { isIP } from 'node:net';
import { isDnsLabel, isDnsSubdomain, unmappedIPv4 } from '../core/rules.js';

/** Broker -> bridge: an allow-listed OpenBao request, e.g. `/openbao/v1/secret/data/app?version=2`. */
export const OPENBAO_TUNNEL_PREFIX = '/openbao/v1/';

/**
 * Broker -> bridge, on pod API requests: the address the pod's connection came from, as the broker's socket saw it
 * (never a header the pod sent). A bridge run with `--openbao-forwarded-for` passes it to OpenBao as
 * `X-Forwarded-For`, so per-address rate-limit quotas and audit logs see pods instead of the bridge.
 */
export const POD_ADDRESS_HEADER = 'x-cloudtaser-pod-address';

/**
 * The textual IP of a socket's remote address (as a broker reports it in POD_ADDRESS_HEADER), IPv4-mapped IPv6
 * (`::ffff:10.0.0.7`) as plain IPv4; undefined for anything that is not one IP address.
 */
export function podAddressOf(remoteAddress: string | undefined): string | undefined {
  if (!remoteAddress) return undefined;
  const plain = unmappedIPv4(remoteAddress);
  return isIP(plain) ? plain : undefined;
}

/** Bridge -> broker: the Kubernetes API calls the broker makes on OpenBao's behalf (its Kubernetes auth). */
export const TOKENREVIEW_PATH = '/apis/authentication.k8s.io/v1/tokenreviews';
export const TOKENREVIEW_TUNNEL_PATH = `/kube${TOKENREVIEW_PATH}`;
/**
 * `GET /api/v1/namespaces/<name>`: OpenBao reads a pod's namespace labels for roles with
 * `bound_service_account_namespace_selector` (upstream internal/builtin/credential/kubernetes/namespace_validator.go).
 */
export const NAMESPACE_PATH_PREFIX = '/api/v1/namespaces/';
export const NAMESPACE_TUNNEL_PREFIX = `/kube${NAMESPACE_PATH_PREFIX}`;

/** A namespace name (DNS-1123 label), the only thing a namespace read may carry. */
export function isNamespaceName(value: string): boolean {
  return isDnsLabel(value);
}

/** Broker -> bridge: migration of one Kubernetes Secret, `/migration/v1/secrets/<namespace>/<name>`. */
export const MIGRATION_TUNNEL_PREFIX = '/migration/v1/secrets/';

/** Where migrated Secrets land in the cluster namespace's `secret` KV v2 mount. */
export function migrationKvPath(namespace: string, name: string): string {
  return `k8s/${namespace}/${name}`;
}

/** Kubernetes object names (DNS-1123 subdomain) and namespaces (label) are all a migration path may hold. */
export function isKubernetesName(value: string): boolean {
  return isDnsSubdomain(value);
}
