/**
 * The credentials that change while a process runs: an exec credential plugin's output (GKE's
 * gke-gcloud-auth-plugin, `aws eks get-token`, AKS's kubelogin) and a token file (`tokenFile`, the in-cluster
 * service-account token). We run these ourselves instead of client-node's authenticators, to behave as client-go
 * (k8s.io/client-go/plugin/pkg/client/auth/exec/exec.go) does where client-node does not:
 *   - one plugin run at a time per connection; concurrent calls share it (client-go holds a mutex);
 *   - the credential is cached until its `expirationTimestamp`, and dropped after a 401 (client-go's
 *     maybeRefreshCreds), so a revoked or re-issued login is picked up on the next call, not an hour later;
 *   - `KUBERNETES_EXEC_INFO` tells the plugin whether it may prompt, and the cluster when `provideClusterInfo`;
 *   - a plugin that waits for a person (kubelogin's device code, a re-login prompt) is stopped at the call's time
 *     limit when nobody can answer it, and what it asked is in the error; a person at a terminal sees it live;
 *   - the returned apiVersion must be the one asked for, and the output must carry a token or a certificate.
 * Secrets (tokens, keys, the plugin's stdout) never reach a message.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { CloudtaserError } from '../core/index.js';
import type { Cluster, User } from './client-node.js';
import { credentialError, type KubeErrorContext } from './errors.js';

/** What a credential source adds to a request. */

/** Process groups of exec plugins still running (spawned in a group of their own). */
const liveGroups = new Set<number>();
let exitHookInstalled = false;

/** Stops every live plugin group when this process exits (once installed, it stays: one listener in all). */
function stopGroupsOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const group of liveGroups) {
      try {
        process.kill(-group, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  });
}

export interface Credential {
  readonly token?: string;
  /** PEM client certificate and key returned by a plugin (instead of or with a token). */
  readonly clientCertificatePem?: string;
  readonly clientKeyPem?: string;
}

export interface CredentialSource {
  /**
   * The credential for one call. `deadline` (epoch ms) bounds a plugin run when nobody can answer it; `signal` is
   * the caller's own cancellation.
   */
  get(options: {
    deadline: number;
    signal?: AbortSignal;
  }): Promise<{ credential: Credential; cached: boolean }>;
  /** The server refused `credential` (401): the next call fetches a new one. */
  invalidate(credential: Credential): void;
}

/** The largest plugin output read: an ExecCredential is a few KiB. */
const MAX_PLUGIN_OUTPUT_BYTES = 1024 * 1024;
/** client-go re-reads a token file at most once a minute (transport/token_source.go, cachingTokenSource). */
const TOKEN_FILE_REREAD_MS = 60_000;
/** What of the plugin's stderr an error quotes. */
const MAX_STDERR_QUOTED = 400;

/** The exec block of a kubeconfig user (client-node keeps kubeconfig field names there). */
export interface ExecBlock {
  readonly apiVersion: string;
  readonly command: string;
  readonly args?: readonly string[] | null;
  readonly env?: ReadonlyArray<{ readonly name: string; readonly value: string }> | null;
  readonly installHint?: string;
  readonly interactiveMode?: 'Never' | 'IfAvailable' | 'Always';
  readonly provideClusterInfo?: boolean;
}

/** The exec block of a user (kubeconfig `exec`, or the legacy `auth-provider` holding one), if any. */
export function execBlockOf(user: User | null): ExecBlock | undefined {
  if (!user) return undefined;
  if (user.exec) return user.exec as ExecBlock;
  const legacy = user.authProvider?.config?.exec;
  return legacy ? (legacy as ExecBlock) : undefined;
}

/** The token file of a user (kubeconfig `tokenFile`, or client-node's in-cluster `auth-provider`), if any. */
export function tokenFileOf(user: User | null): string | undefined {
  const file = user?.authProvider?.config?.tokenFile;
  return typeof file === 'string' && file !== '' && !user?.token ? file : undefined;
}

export class ExecCredentialSource implements CredentialSource {
  private cachedCredential: { credential: Credential; expiresAt: number } | undefined;
  private running: Promise<{ credential: Credential; expiresAt: number }> | undefined;

  constructor(
    private readonly exec: ExecBlock,
    private readonly cluster: Cluster | null,
    private readonly ctx: KubeErrorContext,
    /** A person at a terminal can answer the plugin (the CLI run by hand). Never for services or the provider. */
    private readonly interactive: boolean,
  ) {}

  async get(options: { deadline: number; signal?: AbortSignal }) {
    const cached = this.cachedCredential;
    if (cached && cached.expiresAt > Date.now()) return { credential: cached.credential, cached: true };
    this.cachedCredential = undefined;
    // Concurrent calls share one run; a caller that gives up leaves it to the others.
    this.running ??= this.run(options.deadline).finally(() => {
      this.running = undefined;
    });
    // A caller that joined a run started with a later deadline stops waiting at its own (just after, so the
    // starter's run, stopped at the same moment, answers first with what the plugin said).
    const outcome = await abortable(
      withDeadline(this.running, options.deadline + 100, () => this.timedOut(options.deadline, '')),
      options.signal,
    );
    this.cachedCredential = outcome;
    return { credential: outcome.credential, cached: false };
  }

  invalidate(credential: Credential): void {
    if (this.cachedCredential?.credential === credential) this.cachedCredential = undefined;
  }

  private run(deadline: number): Promise<{ credential: Credential; expiresAt: number }> {
    const exec = this.exec;
    const mode = exec.interactiveMode ?? 'IfAvailable';
    const interactive = this.interactive && mode !== 'Never';
    if (mode === 'Always' && !interactive) {
      return Promise.reject(
        new CloudtaserError(
          'CT_KUBE_CREDENTIAL_PLUGIN',
          `exec credential plugin ${JSON.stringify(exec.command)} of ${this.ctx.description} has interactiveMode Always, and nobody can answer it here; log in first with the cloud CLI in a terminal, or set interactiveMode to IfAvailable or Never`,
          { details: { command: exec.command } },
        ),
      );
    }
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const entry of exec.env ?? []) env[entry.name] = entry.value;
    env.KUBERNETES_EXEC_INFO = JSON.stringify({
      apiVersion: exec.apiVersion,
      kind: 'ExecCredential',
      spec: { interactive, ...(exec.provideClusterInfo ? { cluster: clusterInfo(this.cluster) } : {}) },
    });
    return new Promise((resolve, reject) => {
      // A person sees the plugin's prompt live and may answer it; otherwise its stderr is kept for the error.
      // Where nobody can answer, the plugin runs in a process group of its own, so stopping it stops what it
      // started too: plugins are often shell wrappers (kubelogin, az), and a child left behind held the pipes
      // and kept this process alive for its whole life after the call had failed. At a terminal it stays in the
      // foreground group, which it needs to read the person's answer.
      const ownGroup = !interactive && process.platform !== 'win32';
      const child = spawn(exec.command, [...(exec.args ?? [])], {
        env,
        stdio: [interactive ? 'inherit' : 'ignore', 'pipe', interactive ? 'inherit' : 'pipe'],
        detached: ownGroup,
      });
      const stop = () => {
        try {
          if (ownGroup && child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
          else child.kill('SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
        child.stdout?.destroy();
        child.stderr?.destroy();
      };
      // Its own group no longer gets the signals our process group gets: stopped when this process exits too.
      if (ownGroup && child.pid !== undefined) {
        const group = child.pid;
        liveGroups.add(group);
        child.once('close', () => liveGroups.delete(group));
        stopGroupsOnExit();
      }
      const stdout: Buffer[] = [];
      let stdoutBytes = 0;
      let stderr = '';
      let settled = false;
      const finish = (error: Error | undefined, value?: { credential: Credential; expiresAt: number }) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error) reject(error);
        else resolve(value!);
      };
      // With a person at the terminal the plugin may wait for them (a device-code login); otherwise it gets what is
      // left of the call's time limit, as the request itself does.
      const timer = setTimeout(
        () => {
          stop();
          finish(this.timedOut(deadline, stderr));
        },
        interactive ? 2 ** 31 - 1 : Math.max(0, deadline - Date.now()),
      );
      child.stdout!.on('data', (chunk: Buffer) => {
        stdoutBytes += chunk.length;
        if (stdoutBytes > MAX_PLUGIN_OUTPUT_BYTES) {
          stop();
          finish(this.badOutput(`printed more than ${MAX_PLUGIN_OUTPUT_BYTES} bytes`));
          return;
        }
        stdout.push(chunk);
      });
      child.stderr?.setEncoding('utf8');
      child.stderr?.on('data', (chunk: string) => {
        if (stderr.length < 16 * 1024) stderr += chunk;
      });
      child.on('error', (err) => finish(credentialError(this.ctx, err)));
      child.on('close', (code, signal) => {
        if (settled) return;
        if (code !== 0) {
          const said = quoted(stderr);
          finish(
            new CloudtaserError(
              'CT_KUBE_CREDENTIAL_PLUGIN',
              `exec credential plugin ${JSON.stringify(exec.command)} failed for ${this.ctx.description} (${signal ?? `exit ${code}`})${said ? `: ${said}` : ''}; log in again with the cloud CLI (gcloud auth login, aws sso login, az login) and retry`,
              { details: { command: exec.command } },
            ),
          );
          return;
        }
        try {
          finish(undefined, this.parse(Buffer.concat(stdout).toString('utf8')));
        } catch (err) {
          finish(err as Error);
        }
      });
    });
  }

  /** An ExecCredential as client-go accepts it (exec.go, refreshCredsLocked). */
  private parse(output: string): { credential: Credential; expiresAt: number } {
    let parsed: unknown;
    try {
      parsed = JSON.parse(output);
    } catch {
      // The output itself is never quoted: it may hold a token.
      throw this.badOutput('printed something that is not JSON');
    }
    const object = parsed as {
      apiVersion?: unknown;
      kind?: unknown;
      status?: {
        token?: unknown;
        clientCertificateData?: unknown;
        clientKeyData?: unknown;
        expirationTimestamp?: unknown;
      };
    };
    if (!object || typeof object !== 'object' || object.kind !== 'ExecCredential')
      throw this.badOutput('printed JSON that is not an ExecCredential');
    if (object.apiVersion !== this.exec.apiVersion) {
      throw this.badOutput(
        `answered apiVersion ${JSON.stringify(object.apiVersion)} where the kubeconfig asks for ${this.exec.apiVersion}`,
      );
    }
    const status = object.status;
    if (!status || typeof status !== 'object')
      throw this.badOutput('printed an ExecCredential without a status');
    const token = typeof status.token === 'string' && status.token !== '' ? status.token : undefined;
    const cert = typeof status.clientCertificateData === 'string' ? status.clientCertificateData : undefined;
    const key = typeof status.clientKeyData === 'string' ? status.clientKeyData : undefined;
    if ((cert === undefined) !== (key === undefined))
      throw this.badOutput('returned a client certificate without its key, or a key without its certificate');
    if (token === undefined && cert === undefined)
      throw this.badOutput('returned neither a token nor a client certificate');
    let expiresAt = Number.POSITIVE_INFINITY;
    if (status.expirationTimestamp !== undefined && status.expirationTimestamp !== null) {
      expiresAt =
        typeof status.expirationTimestamp === 'string' ? Date.parse(status.expirationTimestamp) : Number.NaN;
      if (Number.isNaN(expiresAt)) throw this.badOutput('returned an expirationTimestamp that is not a time');
    }
    return {
      credential: {
        ...(token === undefined ? {} : { token }),
        ...(cert === undefined ? {} : { clientCertificatePem: cert, clientKeyPem: key }),
      },
      expiresAt,
    };
  }

  private badOutput(what: string): CloudtaserError {
    return new CloudtaserError(
      'CT_KUBE_CREDENTIAL_PLUGIN',
      `exec credential plugin ${JSON.stringify(this.exec.command)} of ${this.ctx.description} ${what}; update the plugin (gke-gcloud-auth-plugin, aws CLI, kubelogin) or fix the exec block`,
      { details: { command: this.exec.command } },
    );
  }

  private timedOut(deadline: number, stderr: string): CloudtaserError {
    const said = quoted(stderr);
    return new CloudtaserError(
      'CT_KUBE_CREDENTIAL_PLUGIN',
      `exec credential plugin ${JSON.stringify(this.exec.command)} of ${this.ctx.description} did not return a credential within the call's time limit and was stopped${said ? `; it said: ${said}` : ''}. It may be waiting for a login nobody can answer here: log in first with the cloud CLI in a terminal (gcloud auth login, aws sso login, az login / kubelogin), or use a non-interactive login (a service principal, workload identity)`,
      { details: { command: this.exec.command, deadline: new Date(deadline).toISOString() } },
    );
  }
}

/** A token read from a file, re-read at most once a minute and after a 401 (the in-cluster token rotates). */
export class TokenFileSource implements CredentialSource {
  private current: { credential: Credential; readAt: number } | undefined;

  constructor(
    private readonly path: string,
    private readonly ctx: KubeErrorContext,
  ) {}

  async get() {
    const current = this.current;
    if (current && Date.now() - current.readAt < TOKEN_FILE_REREAD_MS)
      return { credential: current.credential, cached: true };
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      throw new CloudtaserError(
        'CT_KUBE_CONFIG',
        `token file ${this.path} of ${this.ctx.description} could not be read (${(err as NodeJS.ErrnoException).code ?? 'error'}); check the path and that this process may read it`,
        { details: { path: this.path } },
      );
    }
    // Files written by hand or by `echo` end with a newline, which is not part of the token.
    const token = text.trim();
    if (token === '') {
      throw new CloudtaserError(
        'CT_KUBE_CONFIG',
        `token file ${this.path} of ${this.ctx.description} is empty`,
        {
          details: { path: this.path },
        },
      );
    }
    this.current = { credential: { token }, readAt: Date.now() };
    return { credential: this.current.credential, cached: false };
  }

  invalidate(credential: Credential): void {
    if (this.current?.credential === credential) this.current = undefined;
  }
}

/** The cluster as `KUBERNETES_EXEC_INFO` carries it for `provideClusterInfo` (client.authentication.k8s.io Cluster). */
function clusterInfo(cluster: Cluster | null): Record<string, unknown> {
  if (!cluster) return {};
  let caData = cluster.caData;
  if (caData === undefined && cluster.caFile) {
    try {
      caData = readFileSync(cluster.caFile).toString('base64');
    } catch {
      // the request itself reports an unreadable CA file
    }
  }
  return {
    server: cluster.server,
    ...(cluster.tlsServerName ? { 'tls-server-name': cluster.tlsServerName } : {}),
    ...(cluster.skipTLSVerify ? { 'insecure-skip-tls-verify': true } : {}),
    ...(caData ? { 'certificate-authority-data': caData } : {}),
    ...(cluster.proxyUrl ? { 'proxy-url': cluster.proxyUrl } : {}),
  };
}

/** The start of what a plugin wrote to stderr, on one line, for a message. */
function quoted(stderr: string): string {
  const text = stderr.trim().replace(/\s*\n\s*/g, ' ');
  return text.length > MAX_STDERR_QUOTED ? `${text.slice(0, MAX_STDERR_QUOTED)}…` : text;
}

function withDeadline<T>(promise: Promise<T>, deadline: number, error: () => Error): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(error()), Math.max(0, deadline - Date.now()));
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
