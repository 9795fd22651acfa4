/** The cloudtaser provider: one definition that the executable, the docs and the CDKTF bindings share. */
import type { ProviderDefinition } from './framework/provider.js';
import { PROVIDER_ADDRESS, PROVIDER_ADDRESSES, PROVIDER_VERSION } from './identity.js';
import { beaconClientCaResource } from './resources/beacon-client-ca.js';
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

export {
  PROVIDER_ADDRESS,
  PROVIDER_ADDRESSES,
  PROVIDER_HOSTS,
  PROVIDER_SOURCE,
  PROVIDER_VERSION,
} from './identity.js';

export function createCloudtaserProvider(
  options: { env?: NodeJS.ProcessEnv } = {},
): ProviderDefinition<typeof providerBlock, CloudtaserProviderClient> {
  return {
    address: PROVIDER_ADDRESS,
    aliases: PROVIDER_ADDRESSES.filter((address) => address !== PROVIDER_ADDRESS),
    version: PROVIDER_VERSION,
    schema: providerSchema,
    validate: (config) => validateProviderConfig(config, options.env ?? process.env),
    configure: ({ config, logger }) => configureCloudtaser(config, options.env ?? process.env, logger),
    resources: [clusterRegistrationResource, beaconClientCaResource],
    dataSources: [clusterFingerprintDataSource],
    functions: cloudtaserFunctions,
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
  functions: cloudtaserFunctions,
} as const;
