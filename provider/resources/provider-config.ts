/**
 * Provider configuration: where the secret store (OpenBao) is and how to authenticate, plus an optional
 * Kubernetes connection for fingerprint reads. Terraform never persists provider configuration, which is why
 * credentials belong here and not on resources or data sources.
 *
 * Any argument may be unknown during plan (e.g. an address computed from a resource created in the same run).
 * The client then says so (`secretStoreUnknown`), and resources keep their stored state instead of failing.
 */

import { CloudtaserError } from '../../runtime/core/errors.js';
import type { KubeConnection } from '../../runtime/kube/connection.js';
import { resolveSecretStoreAddress, resolveSecretStoreToken } from '../../runtime/openbao/env.js';
import type { OpenBaoClient } from '../../runtime/openbao/index.js';
import { validateNamespaceRoot } from '../../runtime/registration/layout.js';
import { isWhollyKnown, type Value } from '../cty/values.js';
import { attributeError, type Diagnostic, DiagnosticsError } from '../framework/diagnostics.js';
import { loadSecretStoreDomain } from '../load-domain.js';
import { attr, type InferValues, nested, type Schema } from '../schema/schema.js';
import { type ProviderLogger, silentProviderLogger } from '../wire/hclog.js';
import { hostConnection, hostConnectionProblems, providerKubernetesBlock } from './kube-connection.js';

export const DEFAULT_NAMESPACE_ROOT = 'cloudtaser';

const ADDRESS_ENV = ['CLOUDTASER_SECRETSTORE_ADDRESS', 'BAO_ADDR', 'VAULT_ADDR'] as const;
const TOKEN_ENV = ['CLOUDTASER_SECRETSTORE_TOKEN', 'BAO_TOKEN', 'VAULT_TOKEN'] as const;

/** Why an address is not usable, or undefined when it is. Same rule for the argument and the environment. */
export function secretStoreAddressProblem(value: string): string | undefined {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || !url.hostname || /\s/.test(value)) {
    return `"${value.slice(0, 80)}" is not an http(s) URL such as https://openbao.example.eu:8200`;
  }
  return undefined;
}

function namespaceRootProblem(value: string): string | undefined {
  try {
    validateNamespaceRoot(value);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

export const providerBlock = {
  description:
    'The cloudtaser provider registers Kubernetes clusters with an EU-hosted OpenBao ("secret store") so their ' +
    'cloudtaser operator can bootstrap through the beacon relay. It talks to OpenBao, and to a cluster only to ' +
    'read its fingerprint (`cloudtaser_cluster_fingerprint`).',
  attributes: {
    secretstore_address: attr.string({
      description:
        'OpenBao address, e.g. `https://openbao.example.eu:8200`. Falls back to the environment variables ' +
        '`CLOUDTASER_SECRETSTORE_ADDRESS`, `BAO_ADDR`, `VAULT_ADDR`.',
      optional: true,
      env: ADDRESS_ENV,
      validate: [secretStoreAddressProblem],
    }),
    secretstore_token: attr.string({
      description:
        'OpenBao token allowed to manage namespaces and the `cloudtaser` mounts. Sensitive; prefer the ' +
        'environment: `CLOUDTASER_SECRETSTORE_TOKEN`, then `BAO_TOKEN`, then `VAULT_TOKEN`. Never stored in state.',
      optional: true,
      sensitive: true,
      env: TOKEN_ENV,
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
        'registration records live: one segment of letters, digits, `-`, `_` or `.`. Defaults to `cloudtaser`.',
      optional: true,
      validate: [namespaceRootProblem],
    }),
  },
  blocks: { kubernetes: nested.single(providerKubernetesBlock) },
};

export const providerSchema: Schema<typeof providerBlock> = { version: 0, block: providerBlock };

type ProviderConfig = InferValues<typeof providerBlock>;

/** What resources get from ConfigureProvider. The OpenBao client is built on first use. */
export interface CloudtaserProviderClient {
  /** Undefined when namespace_root was not yet known (plan with computed provider arguments). */
  readonly namespaceRoot: string | undefined;
  /**
   * The OpenBao settings that are unknown in this plan (e.g. ['secretstore_address']); empty when all are known.
   * Terraform configures the provider with final values during apply.
   */
  readonly secretStoreUnknown: readonly string[];
  /** Missing or unusable OpenBao settings (address, token), checked once every setting is known. */
  secretStoreProblem(): CloudtaserError | undefined;
  openBao(): Promise<OpenBaoClient>;
  /** The provider's `kubernetes` block: absent, not yet known, or a connection. */
  readonly kubernetes:
    | { readonly state: 'absent' | 'unknown' }
    | { readonly state: 'known'; readonly connection: KubeConnection };
}

/** Plan-time checks that need the environment too: an address taken from the environment must be a URL. */
export function validateProviderConfig(config: ProviderConfig, env: NodeJS.ProcessEnv = process.env): void {
  const problems: Diagnostic[] = [];
  if (config.secretstore_address === null) {
    const name = ADDRESS_ENV.find((key) => env[key]?.trim());
    const problem = name ? secretStoreAddressProblem(env[name]!.trim()) : undefined;
    if (name && problem) {
      problems.push({
        severity: 'error',
        summary: 'Invalid OpenBao address in the environment',
        detail: `${name} is set to ${problem}; fix the variable or set secretstore_address in the provider block.`,
        attribute: ['secretstore_address'],
      });
    }
  }
  const kubernetes = config.kubernetes;
  if (kubernetes && isWhollyKnown(kubernetes as unknown as Value)) {
    problems.push(...hostConnectionProblems(kubernetes, ['kubernetes']));
  }
  if (problems.length > 0) throw new DiagnosticsError(problems);
}

export function configureCloudtaser(
  config: ProviderConfig,
  env: NodeJS.ProcessEnv = process.env,
  logger: ProviderLogger = silentProviderLogger,
): CloudtaserProviderClient {
  const secretStoreArguments = {
    secretstore_address: config.secretstore_address,
    secretstore_token: config.secretstore_token,
    secretstore_ca_cert: config.secretstore_ca_cert,
    namespace_root: config.namespace_root,
  };
  const secretStoreUnknown = Object.entries(secretStoreArguments)
    .filter(([, value]) => !isWhollyKnown(value as Value))
    .map(([name]) => name);
  const address =
    config.secretstore_address === null || typeof config.secretstore_address === 'string'
      ? resolveSecretStoreAddress(config.secretstore_address ?? undefined, env)
      : undefined;
  const token =
    config.secretstore_token === null || typeof config.secretstore_token === 'string'
      ? resolveSecretStoreToken(config.secretstore_token ?? undefined, env)
      : undefined;

  const secretStoreProblem = (): CloudtaserError | undefined => {
    if (secretStoreUnknown.length > 0) {
      return new CloudtaserError(
        'CT_PROVIDER_CONFIG_UNKNOWN',
        `the cloudtaser provider arguments ${secretStoreUnknown.join(', ')} depend on values Terraform only knows during apply, so this step cannot reach OpenBao; set them from values known at plan time, or create what they depend on first (terraform apply -target=...)`,
        { details: { attribute: [secretStoreUnknown[0]] } },
      );
    }
    if (!address) {
      return attributeError(
        ['secretstore_address'],
        'CT_INVALID_ARGUMENT',
        `no OpenBao address: set secretstore_address in the cloudtaser provider block or ${ADDRESS_ENV.join(' / ')} in terraform's environment`,
      );
    }
    const addressProblem = secretStoreAddressProblem(address);
    if (addressProblem) {
      return attributeError(
        ['secretstore_address'],
        'CT_INVALID_ARGUMENT',
        `OpenBao address ${addressProblem}`,
      );
    }
    if (!token) {
      return attributeError(
        ['secretstore_token'],
        'CT_TOKEN_MISSING',
        `no OpenBao token: set ${TOKEN_ENV[0]} (or ${TOKEN_ENV.slice(1).join(' / ')}) in terraform's environment, or secretstore_token in the cloudtaser provider block`,
      );
    }
    return undefined;
  };

  let client: Promise<OpenBaoClient> | undefined;
  const kubernetes = config.kubernetes;
  return {
    namespaceRoot:
      config.namespace_root === null
        ? DEFAULT_NAMESPACE_ROOT
        : typeof config.namespace_root === 'string'
          ? config.namespace_root
          : undefined,
    secretStoreUnknown,
    secretStoreProblem,
    openBao() {
      const problem = secretStoreProblem();
      if (problem) return Promise.reject(problem);
      client ??= (async () => {
        // Loaded on first use so the schema and validate processes Terraform starts never pay for it.
        const domain = await loadSecretStoreDomain();
        return new domain.openbao.OpenBaoClient({
          address: address!,
          token: token!,
          caCertPem: config.secretstore_ca_cert ?? undefined,
          // The client's lines (a quota's retries, a standby's redirects and lag) as the provider's own hclog
          // lines, which TF_LOG_PROVIDER shows; they were dropped before.
          logger: domain.createLogger('provider', { level: 'debug', destination: hclogSink(logger) }),
        });
      })();
      return client;
    },
    kubernetes:
      kubernetes === null
        ? { state: 'absent' }
        : !isWhollyKnown(kubernetes as unknown as Value)
          ? { state: 'unknown' }
          : { state: 'known', connection: hostConnection(kubernetes) },
  };
}

/** A pino destination that hands each JSON line to the provider's hclog logger, at the line's own level. */
function hclogSink(logger: ProviderLogger): { write(line: string): void } {
  return {
    write(line: string) {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      const { level, msg, event, time: _time, component: _component, ...fields } = entry;
      const method =
        level === 'error' || level === 'fatal'
          ? 'error'
          : level === 'warn' || level === 'info' || level === 'trace'
            ? level
            : 'debug';
      logger[method](
        typeof event === 'string' ? event : 'openbao',
        typeof msg === 'string' ? msg : '',
        fields,
      );
    },
  };
}
