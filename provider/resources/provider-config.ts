/**
 * Provider configuration: where the secret store (OpenBao) is and how to authenticate. Cluster connection
 * details are never provider configuration; they belong to the data source that reads the fingerprint.
 */

import { CloudtaserError } from '../../runtime/core/errors.js';
import type { OpenBaoClient } from '../../runtime/openbao/index.js';
import { isUnknown } from '../cty/values.js';
import { loadSecretStoreDomain } from '../load-domain.js';
import { attr, type InferValues, type Schema } from '../schema/schema.js';

export const DEFAULT_NAMESPACE_ROOT = 'cloudtaser';

export const providerBlock = {
  description:
    'The cloudtaser provider registers Kubernetes clusters with an EU-hosted OpenBao ("secret store") so their ' +
    'cloudtaser operator can bootstrap through the beacon relay. It talks to OpenBao only; cluster access is ' +
    'configured on the `cloudtaser_cluster_fingerprint` data source.',
  attributes: {
    secretstore_address: attr.string({
      description:
        'OpenBao address, e.g. `https://openbao.example.eu:8200`. Falls back to the environment variables ' +
        '`CLOUDTASER_SECRETSTORE_ADDRESS`, `BAO_ADDR`, `VAULT_ADDR`.',
      optional: true,
      env: ['CLOUDTASER_SECRETSTORE_ADDRESS', 'BAO_ADDR', 'VAULT_ADDR'],
      validate: [
        (v) =>
          /^https?:\/\/[^\s/]+/.test(v)
            ? undefined
            : `"${v.slice(0, 80)}" is not an http(s) URL such as https://openbao.example.eu:8200`,
      ],
    }),
    secretstore_token: attr.string({
      description:
        'OpenBao token allowed to manage namespaces and the `cloudtaser` mounts. Sensitive; prefer the ' +
        'environment: `CLOUDTASER_SECRETSTORE_TOKEN`, then `BAO_TOKEN`, then `VAULT_TOKEN`. Never stored in state.',
      optional: true,
      sensitive: true,
      env: ['CLOUDTASER_SECRETSTORE_TOKEN', 'BAO_TOKEN', 'VAULT_TOKEN'],
    }),
    secretstore_ca_cert: attr.string({
      description:
        'PEM CA certificate(s) to trust for the OpenBao TLS connection, instead of the system roots.',
      optional: true,
      validate: [
        (v) =>
          v.includes('-----BEGIN CERTIFICATE-----')
            ? undefined
            : 'must be a PEM certificate (-----BEGIN CERTIFICATE-----)',
      ],
    }),
    namespace_root: attr.string({
      description:
        'OpenBao namespace under which every cluster namespace (`<namespace_root>/<fingerprint[:8]>`) and the ' +
        'registration records live. Defaults to `cloudtaser`.',
      optional: true,
      validate: [
        (v) =>
          /^[A-Za-z0-9][A-Za-z0-9_-]*(\/[A-Za-z0-9][A-Za-z0-9_-]*)*$/.test(v)
            ? undefined
            : 'must be an OpenBao namespace path such as cloudtaser or team/cloudtaser',
      ],
    }),
  },
};

export const providerSchema: Schema<typeof providerBlock> = { version: 0, block: providerBlock };

/** What resources get from ConfigureProvider. The OpenBao client is built on first use. */
export interface CloudtaserProviderClient {
  /** Undefined when the configuration was not yet known (plan with computed provider arguments). */
  readonly namespaceRoot: string | undefined;
  openBao(): Promise<OpenBaoClient>;
}

type ProviderConfig = InferValues<typeof providerBlock>;

export function configureCloudtaser(
  config: ProviderConfig,
  env: NodeJS.ProcessEnv = process.env,
): CloudtaserProviderClient {
  const known = (v: unknown): v is string | null => v === null || (typeof v === 'string' && !isUnknown(v));
  const allKnown = Object.values(config).every(known);
  let client: Promise<OpenBaoClient> | undefined;
  return {
    namespaceRoot: known(config.namespace_root)
      ? (config.namespace_root ?? DEFAULT_NAMESPACE_ROOT)
      : undefined,
    openBao() {
      if (!allKnown) {
        return Promise.reject(
          new CloudtaserError(
            'CT_PROVIDER_NOT_CONFIGURED',
            'the cloudtaser provider configuration depends on values that are not known yet; Terraform configures it again once they are',
          ),
        );
      }
      client ??= (async () => {
        // Loaded on first use so the schema and validate processes Terraform starts never pay for it.
        const { OpenBaoClient, resolveSecretStoreAddress, resolveSecretStoreToken } = (
          await loadSecretStoreDomain()
        ).openbao;
        const address = resolveSecretStoreAddress(config.secretstore_address ?? undefined, env);
        if (!address) {
          throw new CloudtaserError(
            'CT_INVALID_ARGUMENT',
            'no OpenBao address: set secretstore_address in the cloudtaser provider block or CLOUDTASER_SECRETSTORE_ADDRESS',
            { details: { attribute: ['secretstore_address'] } },
          );
        }
        const token = resolveSecretStoreToken(config.secretstore_token ?? undefined, env);
        if (!token) {
          throw new CloudtaserError(
            'CT_TOKEN_MISSING',
            'no OpenBao token: set CLOUDTASER_SECRETSTORE_TOKEN (or BAO_TOKEN / VAULT_TOKEN) for terraform, or secretstore_token in the provider block',
          );
        }
        return new OpenBaoClient({ address, token, caCertPem: config.secretstore_ca_cert ?? undefined });
      })();
      return client;
    },
  };
}
