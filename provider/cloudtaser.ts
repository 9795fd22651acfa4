/** The cloudtaser provider: one definition that the executable, the docs and the CDKTF bindings share. */
import type { ProviderDefinition } from './framework/provider.js';
import { clusterFingerprintDataSource } from './resources/cluster-fingerprint.js';
import { clusterRegistrationResource } from './resources/cluster-registration.js';
import { cloudtaserFunctions } from './resources/functions.js';
import {
  type CloudtaserProviderClient,
  configureCloudtaser,
  type providerBlock,
  providerSchema,
  validateProviderConfig,
} from './resources/provider-config.js';

/** What users write as `source`; each tool prefixes its own default registry host. */
export const PROVIDER_SOURCE = 'cloudtaser/cloudtaser';
/**
 * Terraform reads `cloudtaser/cloudtaser` as registry.terraform.io/cloudtaser/cloudtaser, OpenTofu as
 * registry.opentofu.org/cloudtaser/cloudtaser; the mirror, the lock entries and --debug cover both.
 */
export const PROVIDER_HOSTS = ['registry.terraform.io', 'registry.opentofu.org'] as const;
export const PROVIDER_ADDRESS = `${PROVIDER_HOSTS[0]}/${PROVIDER_SOURCE}`;
export const PROVIDER_ADDRESSES: readonly string[] = PROVIDER_HOSTS.map(
  (host) => `${host}/${PROVIDER_SOURCE}`,
);
export const PROVIDER_VERSION = '0.1.0';

export function createCloudtaserProvider(
  options: { env?: NodeJS.ProcessEnv } = {},
): ProviderDefinition<typeof providerBlock, CloudtaserProviderClient> {
  return {
    address: PROVIDER_ADDRESS,
    aliases: PROVIDER_ADDRESSES.filter((address) => address !== PROVIDER_ADDRESS),
    version: PROVIDER_VERSION,
    schema: providerSchema,
    validate: (config) => validateProviderConfig(config, options.env ?? process.env),
    configure: ({ config }) => configureCloudtaser(config, options.env ?? process.env),
    resources: [clusterRegistrationResource],
    dataSources: [clusterFingerprintDataSource],
    functions: cloudtaserFunctions,
  };
}

/** Every schema of the provider, for docs and binding generators. */
export const cloudtaserSchemas = {
  provider: providerSchema,
  resources: { [clusterRegistrationResource.typeName]: clusterRegistrationResource.schema },
  dataSources: { [clusterFingerprintDataSource.typeName]: clusterFingerprintDataSource.schema },
  functions: cloudtaserFunctions,
} as const;
