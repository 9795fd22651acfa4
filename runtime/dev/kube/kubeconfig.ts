/**
 * Writes a kubeconfig that points at the Kubernetes test server (dev-only). kubectl and
 * @kubernetes/client-node both read it.
 */
import { writeFile } from 'node:fs/promises';
import { stringify } from 'yaml';

export interface KubeconfigExec {
  /** @default 'client.authentication.k8s.io/v1beta1' */
  readonly apiVersion?: string;
  readonly command: string;
  readonly args?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly installHint?: string;
  /** @default 'Never' */
  readonly interactiveMode?: 'Never' | 'IfAvailable' | 'Always';
}

export interface WriteKubeconfigOptions {
  /** Context (and cluster/user) name. @default 'cloudtaser-test' */
  readonly context?: string;
  /** Bearer token for the user. @default the server's admin token */
  readonly token?: string;
  /** Authenticate through an exec credential plugin instead of a token. */
  readonly exec?: KubeconfigExec;
  /** Namespace of the context. @default 'default' */
  readonly namespace?: string;
}

export function renderKubeconfig(
  server: { url: string; caCertPem?: string; adminToken: string },
  options: WriteKubeconfigOptions = {},
): string {
  const name = options.context ?? 'cloudtaser-test';
  const cluster: Record<string, unknown> = { server: server.url };
  if (server.caCertPem !== undefined)
    cluster['certificate-authority-data'] = Buffer.from(server.caCertPem).toString('base64');
  let user: Record<string, unknown>;
  if (options.exec !== undefined) {
    const exec = options.exec;
    user = {
      exec: {
        apiVersion: exec.apiVersion ?? 'client.authentication.k8s.io/v1beta1',
        command: exec.command,
        ...(exec.args === undefined ? {} : { args: [...exec.args] }),
        ...(exec.env === undefined
          ? {}
          : { env: Object.entries(exec.env).map(([n, value]) => ({ name: n, value })) }),
        ...(exec.installHint === undefined ? {} : { installHint: exec.installHint }),
        interactiveMode: exec.interactiveMode ?? 'Never',
        provideClusterInfo: false,
      },
    };
  } else {
    user = { token: options.token ?? server.adminToken };
  }
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name, cluster }],
    users: [{ name, user }],
    contexts: [{ name, context: { cluster: name, user: name, namespace: options.namespace ?? 'default' } }],
    'current-context': name,
    preferences: {},
  });
}

export async function writeKubeconfigFile(
  path: string,
  server: { url: string; caCertPem?: string; adminToken: string },
  options?: WriteKubeconfigOptions,
): Promise<void> {
  // 0600: the file holds a bearer token.
  await writeFile(path, renderKubeconfig(server, options), { mode: 0o600 });
}
