/**
 * The Kubernetes connection arguments, declared once: the fingerprint data source takes them directly, and
 * the provider's `kubernetes` block takes the credential-carrying ones (host + token or exec), because
 * provider configuration is the one place Terraform never writes to state or plan files and the one place a
 * data source's credentials can come from an ephemeral resource.
 */
import type { KubeConnection } from '../../runtime/kube/connection.js';
import type { Diagnostic } from '../framework/diagnostics.js';
import { attr, type InferValues, nested } from '../schema/schema.js';

export const execBlock = {
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
    args: attr.stringList({
      description:
        'Arguments for the command. Sensitive, since they can carry a credential; never stored in state.',
      optional: true,
      sensitive: true,
    }),
    env: attr.stringMap({
      description:
        'Extra environment variables for the command. Sensitive, since they can carry a credential; never stored in state.',
      optional: true,
      sensitive: true,
    }),
  },
};

const hostOptions = {
  description: 'Kubernetes API server URL, e.g. `https://1.2.3.4`. Use with `token` or an `exec` block.',
  validate: [
    (v: string) =>
      /^https?:\/\/\S+$/.test(v) ? undefined : 'must be an http(s) URL such as https://203.0.113.10',
  ],
};

export const hostAttribute = attr.string({ ...hostOptions, optional: true });

export const tokenAttribute = attr.string({
  description: 'Bearer token for `host`. Sensitive; never stored in state.',
  optional: true,
  sensitive: true,
});

export const clusterCaAttribute = attr.string({
  description: 'PEM CA certificate of the API server for `host` (not base64-wrapped).',
  optional: true,
});

/** The provider block's `kubernetes { ... }`: a host-based connection only. */
export const providerKubernetesBlock = {
  description:
    'Connection to the cluster for `cloudtaser_cluster_fingerprint` data sources that set no connection of their ' +
    'own: `host` with `token` or an `exec` block. Terraform never writes provider configuration to state, and ' +
    'it accepts ephemeral values here (an `ephemeral` variable or resource), which saved plan files do not ' +
    'keep either. One cluster per provider configuration: use `alias` for several. When the block ' +
    'refers to a cluster created in the same run, give the data source `depends_on` on that cluster so Terraform ' +
    'reads it during apply.',
  attributes: {
    host: attr.string({ ...hostOptions, required: true }),
    token: tokenAttribute,
    cluster_ca_certificate: clusterCaAttribute,
  },
  blocks: { exec: nested.single(execBlock) },
};

export type HostConnectionValues = InferValues<typeof providerKubernetesBlock>;

const set = (v: unknown) => v !== null && v !== undefined;

/** host + token or host + exec, as the runtime's KubeConnection. Values must be known. */
export function hostConnection(values: {
  host: string | null;
  token: string | null;
  cluster_ca_certificate: string | null;
  exec: InferValues<typeof execBlock> | null;
}): KubeConnection {
  if (set(values.exec)) {
    const exec = values.exec;
    return {
      kind: 'exec',
      host: values.host!,
      clusterCaCertificate: values.cluster_ca_certificate ?? undefined,
      exec: {
        apiVersion: exec.api_version,
        command: exec.command,
        args: exec.args ? [...exec.args] : undefined,
        env: exec.env ? { ...exec.env } : undefined,
      },
    };
  }
  return {
    kind: 'token',
    host: values.host!,
    token: values.token!,
    clusterCaCertificate: values.cluster_ca_certificate ?? undefined,
  };
}

/** Problems with a host-based connection's combination of arguments (known values only). */
export function hostConnectionProblems(
  values: { host: unknown; token: unknown; exec: unknown },
  path: readonly string[] = [],
): Diagnostic[] {
  const problems: Diagnostic[] = [];
  const conflict = (attribute: string, detail: string) =>
    problems.push({
      severity: 'error',
      summary: 'Conflicting cluster connection settings',
      detail,
      attribute: [...path, attribute],
    });
  if (set(values.token) && set(values.exec)) conflict('exec', 'use either token or an exec block, not both');
  if ((set(values.token) || set(values.exec)) && !set(values.host)) {
    conflict(set(values.token) ? 'token' : 'exec', 'token and exec need host (the API server URL)');
  }
  if (set(values.host) && !set(values.token) && !set(values.exec)) {
    conflict('host', 'host needs a token or an exec block to authenticate');
  }
  return problems;
}
