/**
 * Where a Kubernetes connection comes from: a kubeconfig (with exec credential plugins), the pod's own
 * service account, a host + token, or a host + exec block (Terraform's kubernetes-provider shape).
 * Loading goes through @kubernetes/client-node so exec plugins run exactly as it runs them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { CloudtaserError } from '../core/index.js';
import type { Cluster, Context, User } from './client-node.js';
import { KubeConfig } from './client-node.js';

export type KubeConnection =
  /** A kubeconfig file. `path` defaults to the `KUBECONFIG` list, else `~/.kube/config`. */
  | {
      readonly kind: 'kubeconfig';
      readonly path?: string;
      readonly context?: string;
      /** Where `path` came from, as messages name it: 'the --kubeconfig path', 'kubeconfig_path'. @default 'the --kubeconfig path' */
      readonly pathOrigin?: string;
    }
  /** The pod's service account (`KUBERNETES_SERVICE_HOST`/`_PORT` and the mounted token and CA). */
  | { readonly kind: 'inCluster' }
  | {
      readonly kind: 'token';
      readonly host: string;
      readonly token: string;
      /** PEM, or base64 of PEM as kubeconfigs carry it. */
      readonly clusterCaCertificate?: string;
      readonly insecureSkipTlsVerify?: boolean;
    }
  | {
      readonly kind: 'exec';
      readonly host: string;
      readonly clusterCaCertificate?: string;
      readonly exec: ExecCredentialCommand;
    };

/** An exec credential plugin, as in a kubeconfig `users[].user.exec` or Terraform's `exec` block. */
export interface ExecCredentialCommand {
  /** `client.authentication.k8s.io/v1` or `client.authentication.k8s.io/v1beta1`. */
  readonly apiVersion: string;
  readonly command: string;
  readonly args?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** Printed when the command is missing, as kubectl does. */
  readonly installHint?: string;
}

const EXEC_API_VERSIONS = ['client.authentication.k8s.io/v1', 'client.authentication.k8s.io/v1beta1'];
const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
const CONNECTION_NAME = 'cloudtaser';

/**
 * The connection a command should use: an explicit kubeconfig flag or context wins; inside a pod
 * (`KUBERNETES_SERVICE_HOST` set) the pod's service account; otherwise the default kubeconfig.
 */
export function defaultKubeConnection(opts: { kubeconfig?: string; context?: string } = {}): KubeConnection {
  if (opts.kubeconfig !== undefined && opts.kubeconfig !== '')
    return { kind: 'kubeconfig', path: opts.kubeconfig, context: opts.context };
  if (opts.context !== undefined && opts.context !== '') return { kind: 'kubeconfig', context: opts.context };
  if (process.env.KUBERNETES_SERVICE_HOST) return { kind: 'inCluster' };
  return { kind: 'kubeconfig' };
}

/** A short, secret-free description of a connection for messages and logs. */
export function describeConnection(connection: KubeConnection): string {
  switch (connection.kind) {
    case 'kubeconfig':
      return `kubeconfig ${connection.path ?? process.env.KUBECONFIG ?? '~/.kube/config'}${connection.context ? ` (context ${connection.context})` : ''}`;
    case 'inCluster':
      return 'the in-cluster service account';
    case 'token':
      return `host ${connection.host} with a bearer token`;
    case 'exec':
      return `host ${connection.host} with exec plugin ${connection.exec.command}`;
  }
}

/** Builds a client-node KubeConfig for a connection, or throws CT_KUBE_CONFIG saying what to fix. */
export function loadKubeConfig(connection: KubeConnection): KubeConfig {
  switch (connection.kind) {
    case 'kubeconfig':
      return loadFromKubeconfigFiles(connection.path, connection.context, connection.pathOrigin);
    case 'inCluster':
      return loadInCluster();
    case 'token': {
      if (typeof connection.token !== 'string' || connection.token.trim() === '') {
        throw configError(
          'the token connection has an empty token; pass the bearer token of a user or service account',
        );
      }
      const kc = new KubeConfig();
      kc.loadFromClusterAndUser(
        clusterFor(connection.host, connection.clusterCaCertificate, connection.insecureSkipTlsVerify),
        {
          name: CONNECTION_NAME,
          token: connection.token.trim(),
        },
      );
      return kc;
    }
    case 'exec': {
      const exec = connection.exec;
      checkExec(exec as unknown as Record<string, unknown>, 'the exec block');
      const kc = new KubeConfig();
      kc.loadFromClusterAndUser(clusterFor(connection.host, connection.clusterCaCertificate, false), {
        name: CONNECTION_NAME,
        exec: {
          apiVersion: exec.apiVersion,
          command: exec.command,
          args: exec.args === undefined ? [] : [...exec.args],
          env: Object.entries(exec.env ?? {}).map(([name, value]) => ({ name, value })),
          ...(exec.installHint === undefined ? {} : { installHint: exec.installHint }),
          interactiveMode: 'Never',
        },
      } as User);
      return kc;
    }
    default:
      throw configError(
        `unknown connection kind ${JSON.stringify((connection as { kind?: unknown }).kind)}; use kubeconfig, inCluster, token or exec`,
      );
  }
}

function loadFromKubeconfigFiles(
  path: string | undefined,
  context: string | undefined,
  pathOrigin = 'the --kubeconfig path',
): KubeConfig {
  let files: string[];
  let origin: string;
  if (path !== undefined && path !== '') {
    files = [path];
    origin = path;
    if (!existsSync(path))
      throw configError(`kubeconfig file ${path} does not exist; check ${pathOrigin}`, { path });
  } else if (process.env.KUBECONFIG) {
    const listed = process.env.KUBECONFIG.split(delimiter).filter((f) => f !== '');
    // Like kubectl: files in the KUBECONFIG list that do not exist are skipped.
    files = listed.filter((f) => existsSync(f));
    origin = `KUBECONFIG=${process.env.KUBECONFIG}`;
    if (files.length === 0)
      throw configError(
        `none of the files in KUBECONFIG (${process.env.KUBECONFIG}) exists; fix KUBECONFIG or pass --kubeconfig`,
      );
  } else {
    const home = join(homedir(), '.kube', 'config');
    files = [home];
    origin = home;
    if (!existsSync(home)) {
      throw configError(
        `no kubeconfig found: ${home} does not exist and KUBECONFIG is not set; pass --kubeconfig, set KUBECONFIG, or run inside a pod`,
        { path: home },
      );
    }
  }

  // Merge with first-wins per name, as kubectl does for a KUBECONFIG list.
  const clusters: Cluster[] = [];
  const users: User[] = [];
  const contexts: Context[] = [];
  let currentContext: string | undefined;
  for (const file of files) {
    const kc = new KubeConfig();
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw configError(
        `kubeconfig file ${file} could not be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        { path: file },
        err,
      );
    }
    if (text.trim() === '') {
      // kubectl skips an empty file in a KUBECONFIG list; on its own it gives no cluster to talk to.
      if (files.length > 1) continue;
      throw configError(`${file} is empty, not a kubeconfig; check the path`, { path: file });
    }
    try {
      kc.loadFromString(text);
      kc.makePathsAbsolute(dirname(file));
    } catch (err) {
      const yamlError = err as Error & { reason?: string; mark?: { line?: number } };
      const why =
        yamlError.name === 'YAMLException'
          ? `it is not YAML (${yamlError.reason ?? 'parse error'}${yamlError.mark?.line === undefined ? '' : ` on line ${yamlError.mark.line + 1}`})`
          : (err as Error).message.split('\n')[0];
      throw configError(`${file} is not a usable kubeconfig: ${why}`, { path: file }, err);
    }
    // Any YAML loads (a values file, a certificate); without a single cluster, context or user it is not a kubeconfig.
    if (kc.getClusters().length + kc.getContexts().length + kc.getUsers().length === 0) {
      throw configError(
        `${file} is not a kubeconfig: it has no clusters, contexts or users (a kubeconfig is YAML with kind: Config, as kubectl writes to ~/.kube/config); check the path`,
        { path: file },
      );
    }
    const tokenFiles = tokenFilesOf(text, dirname(file));
    for (const c of kc.getClusters() ?? []) if (!clusters.some((x) => x.name === c.name)) clusters.push(c);
    for (const u of kc.getUsers() ?? []) {
      if (users.some((x) => x.name === u.name)) continue;
      const tokenFile = tokenFiles.get(u.name);
      // client-node reads only `token-file`, once, untrimmed; the transport runs client-go's `tokenFile` itself.
      users.push(
        tokenFile !== undefined && !u.token && !u.exec && !u.authProvider
          ? { ...u, authProvider: { name: 'tokenFile', config: { tokenFile } } }
          : u,
      );
    }
    for (const c of kc.getContexts() ?? []) if (!contexts.some((x) => x.name === c.name)) contexts.push(c);
    currentContext ??= kc.getCurrentContext() || undefined;
  }

  const chosen = context !== undefined && context !== '' ? context : currentContext;
  if (chosen === undefined) {
    throw configError(`${origin} has no current-context; pass --context with one of: ${names(contexts)}`, {
      path: origin,
    });
  }
  const ctx = contexts.find((c) => c.name === chosen);
  if (ctx === undefined) {
    throw configError(
      `context ${JSON.stringify(chosen)} is not in ${origin}; available contexts: ${names(contexts)}`,
      { path: origin, context: chosen },
    );
  }
  const cluster = clusters.find((c) => c.name === ctx.cluster);
  if (cluster === undefined || !cluster.server) {
    throw configError(
      `context ${JSON.stringify(chosen)} in ${origin} names cluster ${JSON.stringify(ctx.cluster)}, which is missing or has no server`,
      { path: origin, context: chosen },
    );
  }
  if (ctx.user) {
    const user = users.find((u) => u.name === ctx.user);
    if (user === undefined) {
      throw configError(
        `context ${JSON.stringify(chosen)} in ${origin} names user ${JSON.stringify(ctx.user)}, which is missing`,
        { path: origin, context: chosen },
      );
    }
    if (user.exec)
      checkExec(user.exec as Record<string, unknown>, `user ${JSON.stringify(user.name)} in ${origin}`);
  }
  const kc = new KubeConfig();
  kc.loadFromOptions({ clusters, users, contexts, currentContext: chosen });
  return kc;
}

/** `users[].user.tokenFile` (client-go's field, clientcmd/api/v1 AuthInfo), relative paths from the file's folder. */
function tokenFilesOf(text: string, folder: string): Map<string, string> {
  const found = new Map<string, string>();
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch {
    return found; // client-node accepted it; what it could not read has no tokenFile for us either
  }
  const entries = (document as { users?: unknown } | null)?.users;
  if (!Array.isArray(entries)) return found;
  for (const entry of entries as Array<{ name?: unknown; user?: { tokenFile?: unknown } }>) {
    const tokenFile = entry?.user?.tokenFile;
    if (typeof entry?.name === 'string' && typeof tokenFile === 'string' && tokenFile !== '')
      found.set(entry.name, isAbsolute(tokenFile) ? tokenFile : join(folder, tokenFile));
  }
  return found;
}

function loadInCluster(): KubeConfig {
  const host = process.env.KUBERNETES_SERVICE_HOST;
  const port = process.env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw configError(
      'unable to load in-cluster configuration: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined; run inside a pod or pass --kubeconfig',
    );
  }
  const tokenFile = `${SERVICE_ACCOUNT_DIR}/token`;
  if (!existsSync(tokenFile)) {
    throw configError(
      `in-cluster service-account token ${tokenFile} is missing; mount a service-account token (automountServiceAccountToken: true)`,
    );
  }
  const kc = new KubeConfig();
  kc.loadFromCluster();
  // client-go goes on without the CA file when it is unreadable; client-node would throw on every request.
  const cluster = kc.getCurrentCluster();
  if (cluster?.caFile !== undefined && !existsSync(cluster.caFile)) {
    kc.loadFromOptions({
      clusters: [{ ...cluster, caFile: undefined }],
      users: kc.getUsers(),
      contexts: kc.getContexts(),
      currentContext: kc.getCurrentContext(),
    });
  }
  return kc;
}

function clusterFor(
  host: string,
  caCertificate: string | undefined,
  insecureSkipTlsVerify: boolean | undefined,
): Cluster {
  if (typeof host !== 'string' || host.trim() === '')
    throw configError('the connection has no host; pass the API server URL, e.g. https://203.0.113.10');
  // Terraform users often pass a bare endpoint (GKE's `endpoint` attribute); the API server speaks HTTPS.
  const server = /^[a-z][a-z0-9+.-]*:\/\//i.test(host.trim()) ? host.trim() : `https://${host.trim()}`;
  let url: URL;
  try {
    url = new URL(server);
  } catch (err) {
    throw configError(
      `host ${JSON.stringify(host)} is not a URL; pass the API server URL, e.g. https://203.0.113.10`,
      {},
      err,
    );
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw configError(`host ${JSON.stringify(host)} must use https://`);
  return {
    name: CONNECTION_NAME,
    server: server.replace(/\/+$/, ''),
    skipTLSVerify: insecureSkipTlsVerify === true,
    ...(caCertificate === undefined || caCertificate === '' ? {} : { caData: caDataFor(caCertificate) }),
  };
}

/** kubeconfig `certificate-authority-data` is base64 of PEM; accept PEM too, as Terraform users pass it. */
function caDataFor(ca: string): string {
  const text = ca.trim();
  if (text.startsWith('-----BEGIN')) return Buffer.from(`${text}\n`).toString('base64');
  const decoded = Buffer.from(text, 'base64').toString('utf8');
  if (decoded.includes('-----BEGIN CERTIFICATE-----')) return text;
  throw configError('clusterCaCertificate is neither a PEM certificate nor base64 of one');
}

function checkExec(exec: Record<string, unknown>, where: string): void {
  if (typeof exec.command !== 'string' || exec.command === '')
    throw configError(`exec plugin of ${where} has no command`);
  if (typeof exec.apiVersion !== 'string' || !EXEC_API_VERSIONS.includes(exec.apiVersion)) {
    throw configError(
      `exec plugin: invalid apiVersion ${JSON.stringify(exec.apiVersion)} for ${where}; use one of ${EXEC_API_VERSIONS.join(', ')}`,
    );
  }
}

function names(contexts: readonly Context[]): string {
  return contexts.length === 0 ? '(none)' : contexts.map((c) => c.name).join(', ');
}

function configError(
  message: string,
  details: Record<string, unknown> = {},
  cause?: unknown,
): CloudtaserError {
  return new CloudtaserError('CT_KUBE_CONFIG', message, {
    details,
    ...(cause === undefined ? {} : { cause }),
  });
}
