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

/** The secret-store settings a provider is made from; the token is never one (the environment holds it). */
type SecretStoreSettings = Pick<SecretStoreProps, 'address' | 'caCertPem' | 'namespaceRoot'>;

/** The stack's cloudtaser provider for these settings, made on first use. */
export function secretStoreProvider(scope: Construct, settings: SecretStoreSettings): CloudtaserProvider {
  const stack = TerraformStack.of(scope);
  const config = {
    secretstoreAddress: settings.address,
    secretstoreCaCert: settings.caCertPem,
    namespaceRoot: settings.namespaceRoot,
  };
  const alias = settingsAlias(scope, 'cloudtaser', config);
  const id = `CloudtaserProvider-${alias}`;
  return (
    (stack.node.tryFindChild(id) as CloudtaserProvider | undefined) ??
    new CloudtaserProvider(stack, id, { alias, ...config })
  );
}
