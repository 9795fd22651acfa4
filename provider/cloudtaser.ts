/** The cloudtaser provider: one definition that the executable, the docs and the CDKTF bindings share. */
import type { ProviderDefinition } from './framework/provider.js';
import { beaconClientCaResource } from './resources/beacon-client-ca.js';
import { clusterFingerprintDataSource } from './resources/cluster-fingerprint.js';
import { clusterRegistrationResource } from './resources/cluster-registration.js';
import {
  type CloudtaserProviderClient,
  configureCloudtaser,
  type providerBlock,
  providerSchema,
} from './resources/provider-config.js';

export const PROVIDER_ADDRESS = 'registry.terraform.io/cloudtaser/cloudtaser';
export const PROVIDER_VERSION = '0.1.0';

export function createCloudtaserProvider(
  options: { env?: NodeJS.ProcessEnv } = {},
): ProviderDefinition<typeof providerBlock, CloudtaserProviderClient> {
  return {
    address: PROVIDER_ADDRESS,
    version: PROVIDER_VERSION,
    schema: providerSchema,
    configure: ({ config }) => configureCloudtaser(config, options.env ?? process.env),
    resources: [clusterRegistrationResource, beaconClientCaResource],
    dataSources: [clusterFingerprintDataSource],
  };
}

/** Every schema of the provider, for docs and binding generators. */
export const cloudtaserSchemas = {
  provider: providerSchema,
  resources: {
    [clusterRegistrationResource.typeName]: clusterRegistrationResource.schema,
    [beaconClientCaResource.typeName]: beaconClientCaResource.schema,
  },
  dataSources: { [clusterFingerprintDataSource.typeName]: clusterFingerprintDataSource.schema },
} as const;
