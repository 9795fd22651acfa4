/**
 * How the constructs reach a cluster: the same three shapes the hashicorp/kubernetes and hashicorp/helm
 * providers and our `cloudtaser_cluster_fingerprint` data source accept, mapped to each of them.
 */
import { isAbsolute, resolve } from 'node:path';
import type { Construct } from 'constructs';
import type { DataCloudtaserClusterFingerprintConfig } from './bindings/index.js';
import { Annotations } from './cdktf.js';
import type { HelmProviderConfig, KubernetesProviderConfig } from './kubernetes.js';
import {
  ConstructRefusal,
  isUnresolved,
  refuseProp,
  requireHttpUrl,
  requireNonEmpty,
  warnIfPlainHttp,
} from './validation.js';

/** An ExecCredential plugin, as kubectl runs it (`gke-gcloud-auth-plugin`, `aws eks get-token`, `kubelogin`). */
export interface KubernetesExecCredential {
  /** ExecCredential API version. @default 'client.authentication.k8s.io/v1beta1' */
  readonly apiVersion?: string;
  /** Command to run. */
  readonly command: string;
  /** Arguments for the command. @default - none */
  readonly args?: string[];
  /** Extra environment variables for the command. @default - none */
  readonly env?: { [name: string]: string };
}

/** API server URL, its CA and a bearer token (pass a reference such as a cloud data source attribute). */
export interface KubernetesTokenConnection {
  /** API server URL, e.g. `https://203.0.113.10`. */
  readonly host: string;
  /** PEM CA certificate of the API server (decode base64 first, e.g. with `Fn.base64decode`). @default - system roots */
  readonly clusterCaCertificate?: string;
  /** Bearer token. Written to `cdktf.out` as given, so pass a reference, not a literal. */
  readonly token: string;
}

/** API server URL, its CA and a credential plugin run at apply time (nothing secret in `cdktf.out`). */
export interface KubernetesExecConnection {
  /** API server URL, e.g. `https://203.0.113.10`. */
  readonly host: string;
  /** PEM CA certificate of the API server. @default - system roots */
  readonly clusterCaCertificate?: string;
  /** The credential plugin. */
  readonly exec: KubernetesExecCredential;
}

/** A kubeconfig file on the machine that runs Terraform. */
export interface KubeconfigConnection {
  /**
   * Path to the kubeconfig. A relative path is resolved at synth against the directory the app runs in (Terraform
   * runs in `cdktf.out/stacks/<stack>`, where it would not be found); `~/...` and tokens are passed as they are.
   */
  readonly configPath: string;
  /** Context to use. @default - the kubeconfig's current context */
  readonly configContext?: string;
}

export type KubernetesConnection =
  | KubernetesTokenConnection
  | KubernetesExecConnection
  | KubeconfigConnection;

const DEFAULT_EXEC_API_VERSION = 'client.authentication.k8s.io/v1beta1';

/** Checks that exactly one shape is used; `prop` is the prop's name for messages ("kubernetes"). */
export function validateKubernetesConnection(
  scope: Construct,
  prop: string,
  connection: KubernetesConnection,
): void {
  const c = connection as Partial<
    KubernetesTokenConnection & KubernetesExecConnection & KubeconfigConnection
  >;
  if (c.configPath !== undefined) {
    refuseProp(`${prop}.host`, c.host, `'${prop}.configPath' is used; the kubeconfig names the server`);
    refuseProp(
      `${prop}.token`,
      c.token,
      `'${prop}.configPath' is used; the kubeconfig holds the credentials`,
    );
    refuseProp(`${prop}.exec`, c.exec, `'${prop}.configPath' is used; the kubeconfig holds the credentials`);
    requireNonEmpty(`${prop}.configPath`, c.configPath);
    return;
  }
  if (c.host === undefined) {
    throw new ConstructRefusal(`'${prop}' needs 'host' with 'token' or 'exec', or 'configPath'`);
  }
  requireHttpUrl(
    `${prop}.host`,
    c.host,
    'https://203.0.113.10 or https://my-cluster.example.com:6443 (the API server URL)',
  );
  warnIfPlainHttp(
    scope,
    `${prop}.host`,
    c.host,
    'the Kubernetes providers would send the bearer token or exec credential in clear',
  );
  if (c.token !== undefined && c.exec !== undefined) {
    throw new ConstructRefusal(`'${prop}.token' is not supported if '${prop}.exec' is used`);
  }
  if (c.token === undefined && c.exec === undefined) {
    throw new ConstructRefusal(`'${prop}' needs 'token' or 'exec' next to 'host'`);
  }
  if (c.exec !== undefined) requireNonEmpty(`${prop}.exec.command`, c.exec.command);
  if (c.token !== undefined && !isUnresolved(c.token)) {
    Annotations.of(scope).addWarning(
      `'${prop}.token' is a literal string and will be written to cdktf.out; pass a reference (a data source attribute) or use '${prop}.exec'`,
    );
  }
}

export function isKubeconfig(connection: KubernetesConnection): connection is KubeconfigConnection {
  return (connection as KubeconfigConnection).configPath !== undefined;
}

function execOf(connection: KubernetesConnection) {
  const exec = (connection as KubernetesExecConnection).exec;
  if (exec === undefined) return undefined;
  return {
    apiVersion: exec.apiVersion ?? DEFAULT_EXEC_API_VERSION,
    command: exec.command,
    args: exec.args,
    env: exec.env,
  };
}

export function toKubernetesProviderConfig(connection: KubernetesConnection): KubernetesProviderConfig {
  if (isKubeconfig(connection))
    return { configPath: absoluteConfigPath(connection.configPath), configContext: connection.configContext };
  const exec = execOf(connection);
  return {
    host: connection.host,
    clusterCaCertificate: connection.clusterCaCertificate,
    token: (connection as KubernetesTokenConnection).token,
    exec: exec === undefined ? undefined : [exec],
  };
}

export function toHelmKubernetesConfig(
  connection: KubernetesConnection,
): NonNullable<HelmProviderConfig['kubernetes']> {
  if (isKubeconfig(connection))
    return { configPath: absoluteConfigPath(connection.configPath), configContext: connection.configContext };
  return {
    host: connection.host,
    clusterCaCertificate: connection.clusterCaCertificate,
    token: (connection as KubernetesTokenConnection).token,
    exec: execOf(connection),
  };
}

export function toFingerprintDataSourceConfig(
  connection: KubernetesConnection,
): Omit<DataCloudtaserClusterFingerprintConfig, 'provider'> {
  if (isKubeconfig(connection))
    return { kubeconfigPath: absoluteConfigPath(connection.configPath), context: connection.configContext };
  return {
    host: connection.host,
    clusterCaCertificate: connection.clusterCaCertificate,
    token: (connection as KubernetesTokenConnection).token,
    exec: execOf(connection),
  };
}

/**
 * `configPath` as Terraform must get it: absolute. A relative path meant the app's directory to the person who
 * wrote it and `cdktf.out/stacks/<stack>` to Terraform (CT_KUBE_CONFIG "does not exist" at plan, an outside test).
 */
function absoluteConfigPath(configPath: string): string {
  if (isUnresolved(configPath) || configPath.startsWith('~') || isAbsolute(configPath)) return configPath;
  return resolve(configPath);
}
