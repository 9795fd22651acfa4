/**
 * The HTTP exchange of the Kubernetes API client: credentials from @kubernetes/client-node's KubeConfig (tokens,
 * exec plugins, client certificates, CA), pooled connections, time limits, JSON bodies, and every failure turned
 * into a CT_KUBE_* error (errors.ts). The typed calls live in client.ts. Bearer tokens never reach a log or an error.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { CloudtaserError, type Logger, moduleLogger } from '../core/index.js';
import type { KubeConfig } from './client-node.js';
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
  /** Per-request time limit. @default 15000 */
  readonly timeoutMs?: number;
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
    const tls = await this.credentials();
    const payload = spec.body === undefined ? undefined : Buffer.from(JSON.stringify(spec.body));
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
    const timeoutMs = spec.timeoutMs ?? this.timeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = spec.signal === undefined ? timeout : AbortSignal.any([spec.signal, timeout]);

    let response: { status: number; body: Buffer };
    try {
      response = await send(
        url,
        { method: spec.method, headers, agent: this.agentFor(url, tls.agentOptions, tls.agent), signal },
        payload,
      );
    } catch (err) {
      if (spec.signal?.aborted) throw cancelledError(this, err);
      if (timeout.aborted) {
        throw new CloudtaserError(
          'CT_KUBE_UNREACHABLE',
          `the Kubernetes API server at ${this.server} did not answer within ${timeoutMs} ms; check that the cluster is up and reachable from here (${this.description})`,
          {
            details: { server: this.server, timeoutMs },
          },
        );
      }
      throw transportError(this, err);
    }
    this.logger.debug(
      { event: 'kube_request', method: spec.method, path: spec.path, status: response.status },
      'Kubernetes API call',
    );
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
  }

  /** Runs the credential machinery (token, token file, exec plugin, client certificate) for one request. */
  private async credentials(): Promise<{
    headers: Record<string, string>;
    agent?: http.Agent;
    agentOptions: https.AgentOptions;
  }> {
    const opts: https.RequestOptions = {};
    try {
      await this.kubeConfig.applyToHTTPSOptions(opts);
    } catch (err) {
      throw credentialError(this, err);
    }
    const headers: Record<string, string> = {};
    for (const [key, value] of Object.entries(opts.headers ?? {}))
      if (value !== undefined) headers[key.toLowerCase()] = String(value);
    if (opts.auth) headers.authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
    const cluster = this.kubeConfig.getCurrentCluster();
    return {
      headers,
      // A proxy agent is used as client-node built it; otherwise we pool connections ourselves.
      agent: cluster?.proxyUrl ? (opts.agent as http.Agent) : undefined,
      agentOptions: {
        ca: opts.ca,
        cert: opts.cert,
        key: opts.key,
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
): Promise<{ status: number; body: Buffer }> {
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
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    request.on('error', reject);
    request.end(payload);
  });
}

function parseJson(body: Buffer): unknown {
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}
