/**
 * `data.cloudtaser_cluster_fingerprint`: reads the UID of a cluster's kube-system namespace. The connection
 * is given here (kubeconfig, host + token, or host + exec) or, for credentials that must never be persisted,
 * in the provider's `kubernetes` block. When an input is unknown (a cluster created in the same apply),
 * Terraform defers the read to apply by itself.
 *
 * Terraform stores a data source's result in state, so the result carries no credential: `token` and the
 * `exec` block's `args` and `env` come back null (Terraform accepts a data source result that differs from
 * its configuration, and plans no change for it).
 */

import { CloudtaserError, isCloudtaserError } from '../../runtime/core/errors.js';
import type { KubeConnection } from '../../runtime/kube/index.js';
import { isUnknown } from '../cty/values.js';
import { attributeError, type Diagnostic, DiagnosticsError } from '../framework/diagnostics.js';
import { defineDataSource } from '../framework/provider.js';
import { loadKubeDomain } from '../load-domain.js';
import { attr, type InferValues, nested } from '../schema/schema.js';
import {
  clusterCaAttribute,
  execBlock,
  hostAttribute,
  hostConnection,
  hostConnectionProblems,
  tokenAttribute,
} from './kube-connection.js';
import type { CloudtaserProviderClient } from './provider-config.js';

export const clusterFingerprintBlock = {
  description:
    "Reads a cluster's fingerprint (the UID of its `kube-system` namespace). Connect with a kubeconfig " +
    '(`kubeconfig_path`, optional `context`; default: `KUBECONFIG` or `~/.kube/config`), with `host` + `token`, ' +
    "with `host` + an `exec` block, or leave all of them out to use the provider's `kubernetes` block. " +
    'Credentials (`token`, `exec` arguments and environment) are never written to state.',
  attributes: {
    kubeconfig_path: attr.string({
      description:
        'Path to a kubeconfig file; use an absolute path (`abspath(...)`) so it does not depend on the working directory.',
      optional: true,
    }),
    context: attr.string({
      description: 'Kubeconfig context to use instead of the current one.',
      optional: true,
    }),
    host: hostAttribute,
    token: tokenAttribute,
    cluster_ca_certificate: clusterCaAttribute,
    fingerprint: attr.string({ description: 'The UID of the `kube-system` namespace.', computed: true }),
    service_account_issuer: attr.string({
      description:
        "The cluster's service-account token issuer (`issuer` of `/.well-known/openid-configuration`), for " +
        '`attestation_issuer` of `cloudtaser_cluster_registration`. Null (with a warning) when the cluster ' +
        'does not serve issuer discovery to these credentials.',
      computed: true,
    }),
    service_account_jwks: attr.string({
      description:
        "The public keys of the cluster's service-account tokens (`/openid/v1/jwks`) as JSON text, for " +
        '`attestation_jwks` of `cloudtaser_cluster_registration`. Null (with a warning) when unreadable.',
      computed: true,
    }),
  },
  blocks: { exec: nested.single(execBlock) },
};

type FingerprintConfig = InferValues<typeof clusterFingerprintBlock>;

const set = (v: unknown) => v !== null && v !== undefined;

/** True when the data source names a connection of its own (otherwise the provider's `kubernetes` block applies). */
export function hasOwnConnection(config: FingerprintConfig): boolean {
  return [
    config.kubeconfig_path,
    config.context,
    config.host,
    config.token,
    config.exec,
    config.cluster_ca_certificate,
  ].some(set);
}

/** Maps the data source's own configuration to one connection kind; exported for unit tests. */
export function toKubeConnection(config: FingerprintConfig): KubeConnection {
  if (set(config.host) || set(config.exec)) return hostConnection(config);
  return {
    kind: 'kubeconfig',
    path: config.kubeconfig_path ?? undefined,
    context: config.context ?? undefined,
    ...(config.kubeconfig_path ? { pathOrigin: 'kubeconfig_path' } : {}),
  };
}

/** The result as stored in state: the configuration with every credential-carrying value null. */
export function withoutCredentials(config: FingerprintConfig): FingerprintConfig {
  return {
    ...config,
    token: null,
    exec: config.exec ? { ...config.exec, args: null, env: null } : null,
  };
}

export const clusterFingerprintDataSource = defineDataSource<CloudtaserProviderClient>()({
  typeName: 'cloudtaser_cluster_fingerprint',
  schema: { version: 0, block: clusterFingerprintBlock },

  validate(config) {
    // Module variables reach validation as unknowns; Terraform validates again once they are known, so
    // judge the combination only then (an unknown may still turn out null).
    const connectionInputs = [
      config.kubeconfig_path,
      config.context,
      config.host,
      config.token,
      config.exec,
      config.cluster_ca_certificate,
    ];
    if (connectionInputs.some((value) => isUnknown(value))) return;
    const problems: Diagnostic[] = [];
    const conflict = (attribute: string, message: string) =>
      problems.push({
        severity: 'error',
        summary: 'Conflicting cluster connection settings',
        detail: message,
        attribute: [attribute],
      });
    const kubeconfigMode = set(config.kubeconfig_path) || set(config.context);
    if (kubeconfigMode && (set(config.host) || set(config.token) || set(config.exec))) {
      conflict(
        set(config.host) ? 'host' : set(config.token) ? 'token' : 'exec',
        'use either kubeconfig_path/context, or host with token or exec, not both',
      );
    } else {
      problems.push(...hostConnectionProblems(config));
    }
    if (set(config.cluster_ca_certificate) && !set(config.host)) {
      conflict('cluster_ca_certificate', 'cluster_ca_certificate only applies with host');
    }
    if (problems.length > 0) throw new DiagnosticsError(problems);
  },

  async read({ config, client, signal, logger, warn }) {
    signal.throwIfAborted();
    const providerConnection = client.kubernetes;
    const own = hasOwnConnection(config);
    if (!own && providerConnection.state === 'unknown') {
      throw new CloudtaserError(
        'CT_PROVIDER_CONFIG_UNKNOWN',
        "this data source uses the cloudtaser provider's kubernetes block, which depends on values Terraform only " +
          'knows during apply (a cluster created in this run), but Terraform reads data sources during plan unless ' +
          'they depend on a pending change: add depends_on = [<the resource that creates the cluster>] to this ' +
          'data source so Terraform reads it during apply',
      );
    }
    const fromProvider = !own && providerConnection.state === 'known';
    const connection: KubeConnection =
      providerConnection.state === 'known' && fromProvider
        ? providerConnection.connection
        : toKubeConnection(config);
    const { readClusterFingerprint, readServiceAccountIssuer } = (await loadKubeDomain()).kube;
    // Both reads run at once; the issuer is optional, so its failure must not fail the fingerprint read.
    const issuerRead = readServiceAccountIssuer(connection, { signal }).then(
      (found) => ({ found, failure: undefined }),
      (failure: unknown) => ({ found: undefined, failure }),
    );
    let fingerprint: string;
    try {
      fingerprint = await readClusterFingerprint(connection, { signal });
    } catch (err) {
      await issuerRead;
      const known = isCloudtaserError(err) ? err : undefined;
      if (known && !known.details.attribute && !fromProvider) {
        const attribute =
          connection.kind === 'kubeconfig'
            ? config.kubeconfig_path
              ? 'kubeconfig_path'
              : undefined
            : 'host';
        if (attribute) throw attributeError([attribute], known.code, known.message, { cause: err });
      }
      if (known && fromProvider) {
        throw new CloudtaserError(
          known.code,
          `${known.message} (connection from the provider's kubernetes block)`,
          {
            cause: err,
          },
        );
      }
      throw err;
    }
    const { found: issuer, failure } = await issuerRead;
    if (failure !== undefined) {
      const known = isCloudtaserError(failure) ? failure : undefined;
      logger.warn('service_account_issuer_unreadable', 'could not read the service-account issuer', {
        code: known?.code,
      });
      warn({
        summary: 'Service-account issuer keys not readable',
        detail:
          `${known?.message ?? 'unexpected error'}. service_account_issuer and service_account_jwks are null, so ` +
          'a registration fed from them runs without attested bootstrap; grant these credentials the ClusterRole ' +
          'system:service-account-issuer-discovery, or give the issuer and keys explicitly.',
      });
    }
    return {
      ...withoutCredentials(config),
      fingerprint,
      service_account_issuer: issuer?.issuer ?? null,
      service_account_jwks: issuer ? JSON.stringify(issuer.jwks) : null,
    };
  },
});
