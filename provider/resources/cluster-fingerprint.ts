/**
 * `data.cloudtaser_cluster_fingerprint`: reads the UID of a cluster's kube-system namespace. The connection
 * is given here (kubeconfig, host + token, or host + exec), never in the provider block. When an input is
 * unknown (a cluster created in the same apply), Terraform defers the read to apply by itself.
 */

import type { KubeConnection } from '../../runtime/kube/index.js';
import { isUnknown } from '../cty/values.js';
import {
  asCloudtaserError,
  attributeError,
  type Diagnostic,
  DiagnosticsError,
} from '../framework/diagnostics.js';
import { defineDataSource } from '../framework/provider.js';
import { loadKubeDomain } from '../load-domain.js';
import { attr, type InferValues, nested } from '../schema/schema.js';
import type { CloudtaserProviderClient } from './provider-config.js';

const execBlock = {
  description: 'Run a credential plugin (client.authentication.k8s.io ExecCredential), as kubectl does.',
  attributes: {
    api_version: attr.string({
      description: 'ExecCredential API version, e.g. `client.authentication.k8s.io/v1beta1`.',
      required: true,
    }),
    command: attr.string({
      description: 'Command to run, e.g. `aws` or `gke-gcloud-auth-plugin`.',
      required: true,
    }),
    args: attr.stringList({ description: 'Arguments for the command.', optional: true }),
    env: attr.stringMap({ description: 'Extra environment variables for the command.', optional: true }),
  },
};

export const clusterFingerprintBlock = {
  description:
    "Reads a cluster's fingerprint (the UID of its `kube-system` namespace). Connect with a kubeconfig " +
    '(`kubeconfig_path`, optional `context`; default: `KUBECONFIG` or `~/.kube/config`), with `host` + `token`, ' +
    'or with `host` + an `exec` block.',
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
    host: attr.string({
      description: 'Kubernetes API server URL, e.g. `https://1.2.3.4`. Use with `token` or an `exec` block.',
      optional: true,
      validate: [
        (v) => (/^https?:\/\//.test(v) ? undefined : 'must be an http(s) URL such as https://203.0.113.10'),
      ],
    }),
    token: attr.string({
      description: 'Bearer token for `host`. Sensitive.',
      optional: true,
      sensitive: true,
    }),
    cluster_ca_certificate: attr.string({
      description: 'PEM CA certificate of the API server for `host` (not base64-wrapped).',
      optional: true,
    }),
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

/** Maps the configuration to one connection kind; exported for unit tests. */
export function toKubeConnection(config: FingerprintConfig): KubeConnection {
  if (set(config.exec)) {
    const exec = config.exec!;
    return {
      kind: 'exec',
      host: config.host!,
      clusterCaCertificate: config.cluster_ca_certificate ?? undefined,
      exec: {
        apiVersion: exec.api_version!,
        command: exec.command!,
        args: exec.args ? [...exec.args] : undefined,
        env: exec.env ? { ...exec.env } : undefined,
      },
    };
  }
  if (set(config.host)) {
    return {
      kind: 'token',
      host: config.host!,
      token: config.token!,
      clusterCaCertificate: config.cluster_ca_certificate ?? undefined,
    };
  }
  return {
    kind: 'kubeconfig',
    path: config.kubeconfig_path ?? undefined,
    context: config.context ?? undefined,
  };
}

export const clusterFingerprintDataSource = defineDataSource<CloudtaserProviderClient>()({
  typeName: 'cloudtaser_cluster_fingerprint',
  schema: { version: 0, block: clusterFingerprintBlock },

  validate(config) {
    const problems: Diagnostic[] = [];
    const conflict = (attribute: string, message: string) =>
      problems.push({
        severity: 'error',
        summary: 'Conflicting cluster connection settings',
        detail: message,
        attribute: [attribute],
      });
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
    const kubeconfigMode = set(config.kubeconfig_path) || set(config.context);
    if (kubeconfigMode && (set(config.host) || set(config.token) || set(config.exec))) {
      conflict(
        set(config.host) ? 'host' : set(config.token) ? 'token' : 'exec',
        'use either kubeconfig_path/context, or host with token or exec, not both',
      );
    }
    if (set(config.token) && set(config.exec))
      conflict('exec', 'use either token or an exec block, not both');
    if ((set(config.token) || set(config.exec)) && !set(config.host)) {
      conflict(set(config.token) ? 'token' : 'exec', 'token and exec need host (the API server URL)');
    }
    if (set(config.host) && !set(config.token) && !set(config.exec)) {
      conflict('host', 'host needs a token or an exec block to authenticate');
    }
    if (set(config.cluster_ca_certificate) && !set(config.host)) {
      conflict('cluster_ca_certificate', 'cluster_ca_certificate only applies with host');
    }
    if (problems.length > 0) throw new DiagnosticsError(problems);
  },

  async read({ config, signal, logger, warn }) {
    signal.throwIfAborted();
    const { readClusterFingerprint, readServiceAccountIssuer } = (await loadKubeDomain()).kube;
    const connection = toKubeConnection(config);
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
      const known = asCloudtaserError(err);
      if (known && !known.details.attribute) {
        const attribute =
          connection.kind === 'kubeconfig'
            ? config.kubeconfig_path
              ? 'kubeconfig_path'
              : undefined
            : 'host';
        if (attribute) throw attributeError([attribute], known.code, known.message, { cause: err });
      }
      throw err;
    }
    const { found: issuer, failure } = await issuerRead;
    if (failure !== undefined) {
      const known = asCloudtaserError(failure);
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
      ...config,
      fingerprint,
      service_account_issuer: issuer?.issuer ?? null,
      service_account_jwks: issuer ? JSON.stringify(issuer.jwks) : null,
    };
  },
});
