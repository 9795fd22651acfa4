/**
 * The cloudtaser provider the constructs of a stack share: one per secret-store settings (address, CA, namespace
 * root), a child of the stack aliased by a hash of those settings. It does not belong to the construct that made
 * it first, so removing or renaming one RegisteredCluster (or BridgeIdentity) leaves the provider its orphaned
 * registration is destroyed through, as long as another construct of the stack uses the same settings.
 */
import { CloudtaserProvider } from './bindings/index.js';
import { type Construct, TerraformStack } from './cdktf.js';
import { settingsAlias } from './helm-chart.js';
import type { SecretStoreProps } from './registered-cluster.js';
import { warnIfPlainHttp } from './validation.js';

/** The secret-store settings a provider is made from; the token is never one (the environment holds it). */
type SecretStoreSettings = Pick<SecretStoreProps, 'address' | 'caCertPem' | 'namespaceRoot'>;

/**
 * The stack's cloudtaser provider for these settings, made on first use. A plain-http address is a warning on
 * the construct that makes the provider, once per provider: a fleet of 40 clusters on one OpenBao says it once.
 */
export function secretStoreProvider(scope: Construct, settings: SecretStoreSettings): CloudtaserProvider {
  const stack = TerraformStack.of(scope);
  const config = {
    secretstoreAddress: settings.address,
    secretstoreCaCert: settings.caCertPem,
    namespaceRoot: settings.namespaceRoot,
  };
  const alias = settingsAlias(scope, 'cloudtaser', config);
  const id = `CloudtaserProvider-${alias}`;
  const existing = stack.node.tryFindChild(id) as CloudtaserProvider | undefined;
  if (existing) return existing;
  warnIfPlainHttp(
    scope,
    'secretStore.address',
    settings.address,
    "the provider's OpenBao token would travel in clear (one provider serves every construct of this stack with this address)",
  );
  return new CloudtaserProvider(stack, id, { alias, ...config });
}
