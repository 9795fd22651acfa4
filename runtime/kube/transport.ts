/**
 * The HTTP exchange of the Kubernetes API client: credentials from @kubernetes/client-node's KubeConfig (tokens,
 * exec plugins, client certificates, CA), pooled connections, time limits, JSON bodies, and every failure turned
 * into a CT_KUBE_* error (errors.ts). The typed calls live in client.ts. Bearer tokens never reach a log or an error.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { sleep } from '../core/backoff.js';
import { CloudtaserError, type Logger, moduleLogger } from '../core/index.js';
import { linkSignal } from '../core/linked-signal.js';
import { isConnectionReset } from '../core/net-errors.js';
import { KubeConfig, type User } from './client-node.js';
import {
  type Credential,
  type CredentialSource,
  ExecCredentialSource,
  execBlockOf,
  TokenFileSource,
  tokenFileOf,
} from './credential-sources.js';
import {
  cancelledError,
  credentialError,
  type FailedCall,
  type KubeErrorContext,
  statusError,
  transportError,
} from './errors.js';

/** Connections open at once to one API server (per credentials); more requests wait for one of them. */
const MAX_SOCKETS_PER_SERVER = 16;

export interface KubeClientOptions {
  /** Per-call time limit: credentials, the request and its retries. @default 15000 */
  readonly timeoutMs?: number;
  /**
   * A person at a terminal can answer an exec credential plugin's prompt (a device-code login): the plugin gets
   * the terminal and may take its time. Only for commands run by hand; services and the provider leave it off, so a
   * plugin that waits for a person is stopped at the time limit with what it asked in the error. @default false
   */
  readonly interactive?: boolean;
  /** Says where the connection came from in error messages (never secret). */
  readonly description?: string;
  readonly logger?: Logger;
}

export interface CallOptions {
  readonly signal?: AbortSignal;
  /** Overrides the client's per-request time limit. */
  readonly timeoutMs?: number;
}

export interface RequestSpec extends CallOptions, FailedCall {
  readonly method: 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'PUT';
  readonly query?: Record<string, string | number | undefined>;
  readonly body?: unknown;
  readonly contentType?: string;
}

/**
 * Retries of an answer that says when to come back (429 from API Priority and Fairness, or a 5xx with
 * Retry-After), as client-go does (rest/request.go, checkWait, maxRetries 10), within the call's time limit.
 */
const MAX_RETRY_AFTER_RETRIES = 10;

/** Largest response body read; a SecretList page with 500 large secrets stays well below it. */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 15_000;

/** One API server connection (the kubeconfig's current context): sends requests and maps their failures. */
export class KubeTransport implements KubeErrorContext {
  /** The API server URL of the current context. */
  readonly server: string;
  readonly kubeConfig: KubeConfig;
  readonly description: string;
  private readonly timeoutMs: number;
  private readonly logger: Logger;
  private readonly agents = new Map<string, http.Agent>();
  /** Exec plugin or token file of the current user, run by us (credential-sources.ts); undefined for static ones. */
  private readonly credentialSource: CredentialSource | undefined;
  /** The kubeconfig client-node applies (CA, certificates, static tokens, proxy): without what we run ourselves. */
  private readonly staticConfig: KubeConfig;

  constructor(kubeConfig: KubeConfig, options: KubeClientOptions = {}) {
    const cluster = kubeConfig.getCurrentCluster();
    if (cluster === null || !cluster.server) {
      throw new CloudtaserError(
        'CT_KUBE_CONFIG',
        'the Kubernetes configuration has no current cluster with a server; pick a context that names one',
      );
    }
    this.kubeConfig = kubeConfig;
    this.server = cluster.server.replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.description = options.description ?? `context ${kubeConfig.getCurrentContext()}`;
    this.logger = moduleLogger(options.logger, 'kube-client');
    const user = kubeConfig.getCurrentUser();
    const exec = execBlockOf(user);
    const tokenFile = tokenFileOf(user);
    this.credentialSource = exec
      ? new ExecCredentialSource(exec, cluster, this, options.interactive === true)
      : tokenFile
        ? new TokenFileSource(tokenFile, this)
        : undefined;
    this.staticConfig = this.credentialSource ? withoutDynamicCredentials(kubeConfig) : kubeConfig;
  }

  /** Closes pooled connections. The client stays usable; new connections are opened on demand. */
  close(): void {
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
  }

  async request<T>(spec: RequestSpec): Promise<T> {
    if (spec.signal?.aborted) throw cancelledError(this, spec.signal.reason);
    const url = new URL(this.server + spec.path);
    for (const [key, value] of Object.entries(spec.query ?? {})) {
      if (value !== undefined && value !== '') url.searchParams.set(key, String(value));
    }
    const payload = spec.body === undefined ? undefined : Buffer.from(JSON.stringify(spec.body));
    const timeoutMs = spec.timeoutMs ?? this.timeoutMs;
    const deadline = Date.now() + timeoutMs;
    // Not AbortSignal.any/timeout: the caller's signal may live as long as the process (linked-signal.ts).
    const call = linkSignal([spec.signal], timeoutMs);
    const signal = call.signal;
    try {
      let response: { status: number; body: Buffer; retryAfter?: string };
      let retries = 0;
      let refreshedAfter401 = false;
      let staleSocketRetried = false;
      for (;;) {
        const tls = await this.credentials(deadline, signal, spec.signal, timeoutMs);
        const headers: Record<string, string> = {
          ...tls.headers,
          accept: 'application/json',
          'user-agent': 'cloudtaser',
          ...(payload === undefined
            ? {}
            : {
                'content-type': spec.contentType ?? 'application/json',
                'content-length': String(payload.length),
              }),
        };
        try {
          response = await send(
            url,
            { method: spec.method, headers, agent: this.agentFor(url, tls.agentOptions, tls.agent), signal },
            payload,
          );
        } catch (err) {
          if (spec.signal?.aborted) throw cancelledError(this, err);
          if (call.timedOut) throw this.timedOut(timeoutMs);
          // A pooled keep-alive socket the API server (restarted, or a load balancer in front of it) dropped while
          // idle: the request met a reset before any answer. Calls that change nothing go once more, on a new socket.
          if (!staleSocketRetried && STALE_SOCKET_SAFE.has(spec.call) && isResetBeforeAnswer(err)) {
            staleSocketRetried = true;
            continue;
          }
          throw transportError(this, err);
        }
        this.logger.debug(
          { event: 'kube_request', method: spec.method, path: spec.path, status: response.status },
          'Kubernetes API call',
        );
        if (response.status === 401 && tls.dynamic) {
          // As client-go: a refused plugin or file token is dropped, so the next call fetches a fresh one. A cached
          // one (the login was renewed, the file rotated) is retried once at once with a fresh credential.
          this.credentialSource!.invalidate(tls.dynamic.credential);
          if (tls.dynamic.cached && !refreshedAfter401) {
            refreshedAfter401 = true;
            continue;
          }
        }
        const waitMs = retryAfterMs(response);
        if (waitMs !== undefined && retries < MAX_RETRY_AFTER_RETRIES && Date.now() + waitMs < deadline) {
          retries++;
          this.logger.debug(
            {
              event: 'kube_retry_after',
              method: spec.method,
              path: spec.path,
              status: response.status,
              waitMs,
            },
            'Kubernetes API server asked to retry later',
          );
          await sleep(waitMs, signal);
          if (spec.signal?.aborted) throw cancelledError(this, spec.signal.reason);
          if (call.timedOut) throw this.timedOut(timeoutMs);
          continue;
        }
        break;
      }
      const body = parseJson(response.body);
      if (response.status >= 200 && response.status < 300) {
        if (body === undefined && response.body.length > 0) {
          throw new CloudtaserError(
            'CT_KUBE_ERROR',
            `the server at ${this.server} answered ${spec.method} ${spec.path} with a body that is not JSON; is ${this.server} a Kubernetes API server?`,
            {
              details: { server: this.server, status: response.status },
            },
          );
        }
        return body as T;
      }
      throw statusError(this, response.status, body, spec);
    } finally {
      call.dispose();
    }
  }

  private timedOut(timeoutMs: number): CloudtaserError {
    return new CloudtaserError(
      'CT_KUBE_UNREACHABLE',
      `the Kubernetes API server at ${this.server} did not answer within ${timeoutMs} ms; check that the cluster is up and reachable from here (${this.description})`,
      { details: { server: this.server, timeoutMs } },
    );
  }

  /** Runs the credential machinery (token, token file, exec plugin, client certificate) for one request. */
  private async credentials(
    deadline: number,
    signal: AbortSignal,
    callerSignal: AbortSignal | undefined,
    timeoutMs: number,
  ): Promise<{
    headers: Record<string, string>;
    agent?: http.Agent;
    agentOptions: https.AgentOptions;
    dynamic?: { credential: Credential; cached: boolean };
  }> {
    const opts: https.RequestOptions = {};
    try {
      await this.staticConfig.applyToHTTPSOptions(opts);
    } catch (err) {
      throw credentialError(this, err);
    }
    let dynamic: { credential: Credential; cached: boolean } | undefined;
    if (this.credentialSource) {
      try {
        dynamic = await this.credentialSource.get({ deadline, signal: callerSignal });
      } catch (err) {
        if (callerSignal?.aborted) throw cancelledError(this, err);
        if (err instanceof CloudtaserError) throw err;
        if (signal.aborted) throw this.timedOut(timeoutMs);
        throw credentialError(this, err);
      }
    }
    const headers: Record<string, string> = {};
    for (const [key, value] of Object.entries(opts.headers ?? {}))
      if (value !== undefined) headers[key.toLowerCase()] = String(value);
    if (opts.auth) headers.authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
    if (dynamic?.credential.token) headers.authorization = `Bearer ${dynamic.credential.token}`;
    const cluster = this.kubeConfig.getCurrentCluster();
    return {
      headers,
      dynamic,
      // A proxy agent is used as client-node built it; otherwise we pool connections ourselves.
      agent: cluster?.proxyUrl ? (opts.agent as http.Agent) : undefined,
      agentOptions: {
        ca: opts.ca,
        cert: dynamic?.credential.clientCertificatePem ?? opts.cert,
        key: dynamic?.credential.clientKeyPem ?? opts.key,
        ...(opts.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: opts.rejectUnauthorized }),
        ...(opts.servername === undefined ? {} : { servername: opts.servername }),
      },
    };
  }

  private agentFor(url: URL, options: https.AgentOptions, proxyAgent: http.Agent | undefined): http.Agent {
    if (proxyAgent !== undefined) return proxyAgent;
    // Keyed by a hash of the TLS material so a rotated client certificate gets a fresh pool.
    const key = createHash('sha256')
      .update(url.protocol)
      .update(String(options.ca ?? ''))
      .update(String(options.cert ?? ''))
      .update(String(options.key ?? ''))
      .update(String(options.rejectUnauthorized))
      .update(String(options.servername ?? ''))
      .digest('hex');
    let agent = this.agents.get(key);
    if (agent === undefined) {
      // Bounded: a storm of pod logins makes one TokenReview each, and hundreds of simultaneous handshakes with
      // the API server fail where a few kept-alive connections serve them all (requests queue in the agent).
      agent =
        url.protocol === 'http:'
          ? new http.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS_PER_SERVER })
          : new https.Agent({ ...options, keepAlive: true, maxSockets: MAX_SOCKETS_PER_SERVER });
      this.agents.set(key, agent);
    }
    return agent;
  }
}

function send(
  url: URL,
  options: { method: string; headers: Record<string, string>; agent: http.Agent; signal: AbortSignal },
  payload: Buffer | undefined,
): Promise<{ status: number; body: Buffer; retryAfter?: string }> {
  return new Promise((resolve, reject) => {
    const request = (url.protocol === 'http:' ? http.request : https.request)(url, options, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES) {
          res.destroy(new Error(`response larger than ${MAX_RESPONSE_BYTES} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks),
          ...(typeof res.headers['retry-after'] === 'string'
            ? { retryAfter: res.headers['retry-after'] }
            : {}),
        }),
      );
      // After the answer started, a failure is not a stale socket: the call may have been carried out.
      res.on('error', (err) => reject(Object.assign(err, { answered: true })));
    });
    request.on('error', reject);
    request.end(payload);
  });
}

/** Calls that change nothing in the cluster (reads, and TokenReview, whose create only answers): safe to send again. */
const STALE_SOCKET_SAFE: ReadonlySet<string> = new Set([
  'getVersion',
  'getNamespace',
  'getOpenIdConfiguration',
  'getServiceAccountJwks',
  'createTokenReview',
  'getSecret',
  'listSecrets',
  'getDeployment',
  'getConfigMap',
  'getMutatingWebhookConfiguration',
  'getLease',
  'listLeases',
]);

function isResetBeforeAnswer(err: unknown): boolean {
  return !(err as { answered?: boolean }).answered && isConnectionReset(err);
}

/** The wait an answer asks for: 429 or 5xx with Retry-After in whole seconds (client-go's checkWait). */
function retryAfterMs(response: { status: number; retryAfter?: string }): number | undefined {
  if (response.status !== 429 && (response.status < 500 || response.status > 599)) return undefined;
  if (response.retryAfter === undefined || !/^\d{1,4}$/.test(response.retryAfter.trim())) return undefined;
  return Number(response.retryAfter.trim()) * 1000;
}

/** The kubeconfig without the current user's exec plugin and token file, which credential-sources.ts runs. */
function withoutDynamicCredentials(kubeConfig: KubeConfig): KubeConfig {
  const current = kubeConfig.getCurrentUser();
  const stripped = new KubeConfig();
  stripped.loadFromOptions({
    clusters: kubeConfig.getClusters(),
    users: kubeConfig
      .getUsers()
      .map(
        (user): User =>
          user.name === current?.name ? { ...user, exec: undefined, authProvider: undefined } : user,
      ),
    contexts: kubeConfig.getContexts(),
    currentContext: kubeConfig.getCurrentContext(),
  });
  return stripped;
}

function parseJson(body: Buffer): unknown {
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}
