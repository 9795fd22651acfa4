/**
 * A thin Kubernetes API client: the handful of calls cloudtaser makes, with errors mapped to stable CT_ codes.
 * Credentials (tokens, exec plugins, client certificates, CA) come from @kubernetes/client-node's KubeConfig;
 * the HTTP exchange is ours so that every failure can say what to do. Bearer tokens never reach a log or an error.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { CloudtaserError, type ErrorCode, type Logger, moduleLogger } from '../core/index.js';
import { proxyFailure } from '../proxy/errors.js';
import { parseProxyUrl } from '../proxy/settings.js';
import type { KubeConfig } from './client-node.js';
import { describeConnection, type KubeConnection, loadKubeConfig } from './connection.js';
import { describePermission, type KubeCall } from './permissions.js';
import type {
  JsonPatchOperation,
  KubeConfigMap,
  KubeDeployment,
  KubeEvent,
  KubeList,
  KubeMutatingWebhookConfiguration,
  KubeNamespace,
  KubeSecret,
  KubeVersion,
  NewEvent,
  NewSecret,
  ObjectReference,
  ServiceAccountToken,
  TokenReviewStatus,
} from './types.js';

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

interface RequestSpec extends CallOptions {
  readonly method: 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'PUT';
  readonly path: string;
  readonly query?: Record<string, string | number | undefined>;
  readonly body?: unknown;
  readonly contentType?: string;
  /** The call's row in KUBE_CALLS: what RBAC must allow, said in the Forbidden message. */
  readonly call: KubeCall;
  /** The object named, for that message. */
  readonly target?: { readonly name?: string; readonly namespace?: string };
}

/** Largest response body read; a SecretList page with 500 large secrets stays well below it. */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 15_000;
const NETWORK_ERRORS = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'EPIPE',
  'ECONNABORTED',
]);

export class KubeClient {
  /** The API server URL of the current context. */
  readonly server: string;
  private readonly kubeConfig: KubeConfig;
  private readonly timeoutMs: number;
  private readonly description: string;
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

  static fromConnection(
    connection: KubeConnection,
    options: Omit<KubeClientOptions, 'description'> = {},
  ): KubeClient {
    return new KubeClient(loadKubeConfig(connection), {
      ...options,
      description: describeConnection(connection),
    });
  }

  async getVersion(options?: CallOptions): Promise<KubeVersion> {
    return this.request<KubeVersion>({
      ...options,
      method: 'GET',
      path: '/version',
      call: 'getVersion',
    });
  }

  async getNamespace(name: string, options?: CallOptions): Promise<KubeNamespace> {
    return this.request<KubeNamespace>({
      ...options,
      method: 'GET',
      path: `/api/v1/namespaces/${segment(name, 'namespace name')}`,
      call: 'getNamespace',
      target: { name },
    });
  }

  /** Service-account issuer discovery (`/.well-known/openid-configuration`); served only when the issuer is a URL. */
  async getOpenIdConfiguration(options?: CallOptions): Promise<Record<string, unknown>> {
    return this.request<Record<string, unknown>>({
      ...options,
      method: 'GET',
      path: '/.well-known/openid-configuration',
      call: 'getOpenIdConfiguration',
    });
  }

  /** The public keys that verify the cluster's service-account tokens (`/openid/v1/jwks`). */
  async getServiceAccountJwks(options?: CallOptions): Promise<unknown> {
    return this.request<unknown>({
      ...options,
      method: 'GET',
      path: '/openid/v1/jwks',
      call: 'getServiceAccountJwks',
    });
  }

  /**
   * Asks the API server whether `token` is valid for `audiences` (the server's own when empty). A rejected
   * token is not an error: the status says `authenticated` is not true and carries `error`.
   */
  async createTokenReview(
    token: string,
    audiences: readonly string[] = [],
    options?: CallOptions,
  ): Promise<TokenReviewStatus> {
    if (typeof token !== 'string' || token === '')
      throw new CloudtaserError('CT_INVALID_ARGUMENT', 'createTokenReview needs a non-empty token');
    const response = await this.request<{ status?: TokenReviewStatus }>({
      ...options,
      method: 'POST',
      path: '/apis/authentication.k8s.io/v1/tokenreviews',
      body: {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: { token, ...(audiences.length === 0 ? {} : { audiences: [...audiences] }) },
      },
      call: 'createTokenReview',
    });
    return response.status ?? {};
  }

  async getSecret(namespace: string, name: string, options?: CallOptions): Promise<KubeSecret> {
    return this.request<KubeSecret>({
      ...options,
      method: 'GET',
      path: `${secretsPath(namespace)}/${segment(name, 'secret name')}`,
      call: 'getSecret',
      target: { name, namespace },
    });
  }

  /** Lists secrets in one namespace, or in all when `namespace` is undefined. One page; follow `metadata.continue`. */
  async listSecrets(
    namespace: string | undefined,
    options: CallOptions & {
      labelSelector?: string;
      fieldSelector?: string;
      limit?: number;
      continue?: string;
    } = {},
  ): Promise<KubeList<KubeSecret>> {
    return this.request<KubeList<KubeSecret>>({
      ...options,
      method: 'GET',
      path: namespace === undefined ? '/api/v1/secrets' : secretsPath(namespace),
      query: {
        labelSelector: options.labelSelector,
        fieldSelector: options.fieldSelector,
        limit: options.limit,
        continue: options.continue,
      },
      call: 'listSecrets',
      target: { namespace },
    });
  }

  async createSecret(namespace: string, secret: NewSecret, options?: CallOptions): Promise<KubeSecret> {
    return this.request<KubeSecret>({
      ...options,
      method: 'POST',
      path: secretsPath(namespace),
      body: { apiVersion: 'v1', kind: 'Secret', ...secret },
      call: 'createSecret',
      target: { namespace },
    });
  }

  /**
   * Merge-patches a secret's labels and annotations (a `null` value removes the key). With `resourceVersion`
   * the patch only applies to that version; otherwise CT_KUBE_CONFLICT.
   */
  async patchSecretMetadata(
    namespace: string,
    name: string,
    patch: { labels?: Record<string, string | null>; annotations?: Record<string, string | null> },
    options: CallOptions & { resourceVersion?: string } = {},
  ): Promise<KubeSecret> {
    const metadata: Record<string, unknown> = {};
    if (patch.labels !== undefined) metadata.labels = patch.labels;
    if (patch.annotations !== undefined) metadata.annotations = patch.annotations;
    if (options.resourceVersion !== undefined) metadata.resourceVersion = options.resourceVersion;
    return this.request<KubeSecret>({
      ...options,
      method: 'PATCH',
      path: `${secretsPath(namespace)}/${segment(name, 'secret name')}`,
      body: { metadata },
      contentType: 'application/merge-patch+json',
      call: 'patchSecretMetadata',
      target: { name, namespace },
    });
  }

  async getDeployment(namespace: string, name: string, options?: CallOptions): Promise<KubeDeployment> {
    return this.request<KubeDeployment>({
      ...options,
      method: 'GET',
      path: `/apis/apps/v1/namespaces/${segment(namespace, 'namespace name')}/deployments/${segment(name, 'deployment name')}`,
      call: 'getDeployment',
      target: { name, namespace },
    });
  }

  /** GET through the API server's service proxy (`services/<name>:<port>/proxy/<path>`): a pod's plain-HTTP port. */
  async getServiceProxy(
    namespace: string,
    service: string,
    port: string,
    path: string,
    options?: CallOptions,
  ): Promise<unknown> {
    return this.request<unknown>({
      ...options,
      method: 'GET',
      path: `/api/v1/namespaces/${segment(namespace, 'namespace name')}/services/${segment(`${service}:${port}`, 'service name')}/proxy/${path.replace(/^\/+/, '')}`,
      call: 'getServiceProxy',
      target: { name: service, namespace },
    });
  }

  async getConfigMap(namespace: string, name: string, options?: CallOptions): Promise<KubeConfigMap> {
    return this.request<KubeConfigMap>({
      ...options,
      method: 'GET',
      path: `${configMapsPath(namespace)}/${segment(name, 'configmap name')}`,
      call: 'getConfigMap',
      target: { name, namespace },
    });
  }

  async createConfigMap(
    namespace: string,
    configMap: {
      metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
      data?: Record<string, string>;
    },
    options?: CallOptions,
  ): Promise<KubeConfigMap> {
    return this.request<KubeConfigMap>({
      ...options,
      method: 'POST',
      path: configMapsPath(namespace),
      body: { apiVersion: 'v1', kind: 'ConfigMap', ...configMap },
      call: 'createConfigMap',
      target: { name: configMap.metadata.name, namespace },
    });
  }

  /**
   * Merge-patches a ConfigMap's data (a `null` value removes the key), leaving its labels and annotations (Helm's
   * ownership among them) as they are. With `resourceVersion` the patch only applies to that version; otherwise
   * CT_KUBE_CONFLICT.
   */
  async patchConfigMapData(
    namespace: string,
    name: string,
    data: Record<string, string | null>,
    options: CallOptions & { resourceVersion?: string } = {},
  ): Promise<KubeConfigMap> {
    return this.request<KubeConfigMap>({
      ...options,
      method: 'PATCH',
      path: `${configMapsPath(namespace)}/${segment(name, 'configmap name')}`,
      body: {
        ...(options.resourceVersion !== undefined
          ? { metadata: { resourceVersion: options.resourceVersion } }
          : {}),
        data,
      },
      contentType: 'application/merge-patch+json',
      call: 'patchConfigMapData',
      target: { name, namespace },
    });
  }

  async getMutatingWebhookConfiguration(
    name: string,
    options?: CallOptions,
  ): Promise<KubeMutatingWebhookConfiguration> {
    return this.request<KubeMutatingWebhookConfiguration>({
      ...options,
      method: 'GET',
      path: `${WEBHOOK_CONFIGURATIONS_PATH}/${segment(name, 'MutatingWebhookConfiguration name')}`,
      call: 'getMutatingWebhookConfiguration',
      target: { name },
    });
  }

  /** Applies an RFC 6902 JSON patch; start it with a `test` of /metadata/resourceVersion to make it conditional. */
  async patchMutatingWebhookConfiguration(
    name: string,
    operations: readonly JsonPatchOperation[],
    options?: CallOptions,
  ): Promise<KubeMutatingWebhookConfiguration> {
    return this.request<KubeMutatingWebhookConfiguration>({
      ...options,
      method: 'PATCH',
      path: `${WEBHOOK_CONFIGURATIONS_PATH}/${segment(name, 'MutatingWebhookConfiguration name')}`,
      body: operations,
      contentType: 'application/json-patch+json',
      call: 'patchMutatingWebhookConfiguration',
      target: { name },
    });
  }

  /** Deletes a secret only if it still has the given resourceVersion/uid (CT_KUBE_CONFLICT otherwise). */
  async deleteSecret(
    namespace: string,
    name: string,
    preconditions: { resourceVersion?: string; uid?: string } = {},
    options?: CallOptions,
  ): Promise<void> {
    const hasPreconditions = preconditions.resourceVersion !== undefined || preconditions.uid !== undefined;
    await this.request<unknown>({
      ...options,
      method: 'DELETE',
      path: `${secretsPath(namespace)}/${segment(name, 'secret name')}`,
      body: {
        apiVersion: 'v1',
        kind: 'DeleteOptions',
        propagationPolicy: 'Background',
        ...(hasPreconditions ? { preconditions } : {}),
      },
      call: 'deleteSecret',
      target: { name, namespace },
    });
  }

  /** Records a core/v1 Event about an object, as controllers do. */
  async createEvent(namespace: string, event: NewEvent, options?: CallOptions): Promise<KubeEvent> {
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    const reference: ObjectReference = {
      ...event.involvedObject,
      namespace: event.involvedObject.namespace ?? namespace,
    };
    return this.request<KubeEvent>({
      ...options,
      method: 'POST',
      path: `/api/v1/namespaces/${segment(namespace, 'namespace name')}/events`,
      body: {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { generateName: `${event.involvedObject.name}.`, namespace },
        involvedObject: reference,
        reason: event.reason,
        message: event.message,
        type: event.type ?? 'Normal',
        source: { component: event.component },
        reportingComponent: event.component,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
      call: 'createEvent',
      target: { namespace },
    });
  }

  /** TokenRequest: a short-lived token for a service account (`kubectl create token`). */
  async createServiceAccountToken(
    namespace: string,
    name: string,
    request: {
      audiences?: readonly string[];
      expirationSeconds?: number;
      boundObjectRef?: ObjectReference;
    } = {},
    options?: CallOptions,
  ): Promise<ServiceAccountToken> {
    const response = await this.request<{ status?: Partial<ServiceAccountToken> }>({
      ...options,
      method: 'POST',
      path: `/api/v1/namespaces/${segment(namespace, 'namespace name')}/serviceaccounts/${segment(name, 'service account name')}/token`,
      body: {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: {
          audiences: request.audiences === undefined ? null : [...request.audiences],
          expirationSeconds: request.expirationSeconds ?? null,
          boundObjectRef: request.boundObjectRef ?? null,
        },
      },
      call: 'createServiceAccountToken',
      target: { name, namespace },
    });
    const status = response.status;
    if (typeof status?.token !== 'string' || status.token === '') {
      throw new CloudtaserError(
        'CT_KUBE_ERROR',
        `the API server at ${this.server} returned a TokenRequest without a token`,
      );
    }
    return { token: status.token, expirationTimestamp: String(status.expirationTimestamp ?? '') };
  }

  /** Closes pooled connections. The client stays usable; new connections are opened on demand. */
  close(): void {
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
  }

  private async request<T>(spec: RequestSpec): Promise<T> {
    if (spec.signal?.aborted) throw this.cancelled(spec.signal.reason);
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
      if (spec.signal?.aborted) throw this.cancelled(err);
      if (timeout.aborted) {
        throw new CloudtaserError(
          'CT_KUBE_UNREACHABLE',
          `the Kubernetes API server at ${this.server} did not answer within ${timeoutMs} ms; check that the cluster is up and reachable from here (${this.description})`,
          {
            details: { server: this.server, timeoutMs },
          },
        );
      }
      throw this.transportError(err);
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
    throw this.statusError(response.status, body, spec);
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
      throw this.credentialError(err);
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
      agent =
        url.protocol === 'http:'
          ? new http.Agent({ keepAlive: true })
          : new https.Agent({ ...options, keepAlive: true });
      this.agents.set(key, agent);
    }
    return agent;
  }

  private cancelled(cause: unknown): CloudtaserError {
    return new CloudtaserError(
      'CT_CANCELLED',
      `request to the Kubernetes API server at ${this.server} was cancelled`,
      { cause },
    );
  }

  private credentialError(err: unknown): CloudtaserError {
    const error = err as NodeJS.ErrnoException & { path?: string; spawnargs?: string[] };
    const user = this.kubeConfig.getCurrentUser();
    const exec = (user?.exec ?? undefined) as { command?: string; installHint?: string } | undefined;
    if (exec?.command !== undefined) {
      if (error.code === 'ENOENT' || error.code === 'EACCES') {
        const hint = exec.installHint
          ? ` ${exec.installHint.trim()}`
          : ' Install it or fix the command path in the kubeconfig or exec block.';
        return new CloudtaserError(
          'CT_KUBE_CONFIG',
          `exec credential plugin ${JSON.stringify(exec.command)} could not be run (${error.code}) for ${this.description}.${hint}`,
          {
            cause: err,
            details: { command: exec.command },
          },
        );
      }
      return new CloudtaserError(
        'CT_KUBE_UNAUTHORIZED',
        `exec credential plugin ${JSON.stringify(exec.command)} failed for ${this.description}: ${firstLine(error.message)}; log in again with the cloud CLI (gcloud auth login, aws sso login, az login) and retry`,
        { cause: err, details: { command: exec.command } },
      );
    }
    if (/HTTP protocol is not allowed/.test(error.message ?? '')) {
      return new CloudtaserError(
        'CT_KUBE_CONFIG',
        `the server ${this.server} uses http://; use https:// or set insecure-skip-tls-verify explicitly (${this.description})`,
        { cause: err },
      );
    }
    return new CloudtaserError(
      'CT_KUBE_CONFIG',
      `credentials for ${this.description} could not be loaded: ${firstLine(error.message)}`,
      {
        cause: err,
        details: error.path === undefined ? {} : { path: error.path },
      },
    );
  }

  private transportError(err: unknown): CloudtaserError {
    const proxied = this.proxyError(err);
    if (proxied) return proxied;
    const error = err as NodeJS.ErrnoException;
    const code = error.code ?? '';
    if (NETWORK_ERRORS.has(code)) {
      return new CloudtaserError(
        'CT_KUBE_UNREACHABLE',
        `the Kubernetes API server at ${this.server} could not be reached (${code}); check the server address in ${this.description} and that the cluster is running`,
        {
          cause: err,
          details: { server: this.server, errno: code },
        },
      );
    }
    if (
      /CERT|SSL|TLS|SIGNATURE|ALTNAME|EPROTO/i.test(code) ||
      /certificate|ssl|tls/i.test(error.message ?? '')
    ) {
      return new CloudtaserError(
        'CT_KUBE_TLS',
        `TLS with the Kubernetes API server at ${this.server} failed (${code || firstLine(error.message)}); check the cluster CA certificate in ${this.description}`,
        {
          cause: err,
          details: { server: this.server, errno: code },
        },
      );
    }
    return new CloudtaserError(
      'CT_KUBE_UNREACHABLE',
      `the Kubernetes API server at ${this.server} could not be reached: ${firstLine(error.message)}`,
      {
        cause: err,
        details: { server: this.server, errno: code },
      },
    );
  }

  /** With the kubeconfig's http(s) proxy-url (client-node tunnels through it), a failure the proxy caused. */
  private proxyError(err: unknown): CloudtaserError | undefined {
    const proxyUrl = this.kubeConfig.getCurrentCluster()?.proxyUrl;
    if (!proxyUrl || !/^https?:\/\//i.test(proxyUrl)) return undefined;
    try {
      return proxyFailure(
        err,
        parseProxyUrl(proxyUrl, 'the kubeconfig proxy-url'),
        new URL(this.server).host,
      );
    } catch {
      return undefined; // a proxy-url we cannot read: the plain transport error says what happened
    }
  }

  private statusError(status: number, body: unknown, spec: RequestSpec): CloudtaserError {
    const kubeStatus = (typeof body === 'object' && body !== null ? body : {}) as {
      message?: unknown;
      reason?: unknown;
    };
    const serverMessage =
      typeof kubeStatus.message === 'string' ? kubeStatus.message.slice(0, 500) : `HTTP ${status}`;
    const details = {
      server: this.server,
      status,
      reason: typeof kubeStatus.reason === 'string' ? kubeStatus.reason : undefined,
    };
    const make = (code: ErrorCode, message: string) => new CloudtaserError(code, message, { details });
    switch (status) {
      case 401:
        return make(
          'CT_KUBE_UNAUTHORIZED',
          `the Kubernetes API server at ${this.server} rejected the credentials of ${this.description} (401 Unauthorized): the token has expired or is invalid, or the exec plugin returned a bad token; refresh the credentials and retry`,
        );
      case 403:
        return make(
          'CT_KUBE_FORBIDDEN',
          `${serverMessage}; RBAC must allow: ${describePermission(spec.call, spec.target)}`,
        );
      case 404:
        return make('CT_KUBE_NOT_FOUND', serverMessage);
      case 409:
        return make('CT_KUBE_CONFLICT', `${serverMessage}; read the object again and retry`);
      default:
        return make(
          'CT_KUBE_ERROR',
          `the Kubernetes API server at ${this.server} answered ${spec.method} ${spec.path} with ${status}: ${serverMessage}`,
        );
    }
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

function segment(value: string, what: string): string {
  if (typeof value !== 'string' || value === '' || value === '.' || value === '..' || value.length > 253) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `${what} ${JSON.stringify(value)} is not a valid Kubernetes name`,
    );
  }
  return encodeURIComponent(value);
}

const WEBHOOK_CONFIGURATIONS_PATH = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations';

function secretsPath(namespace: string): string {
  return `/api/v1/namespaces/${segment(namespace, 'namespace name')}/secrets`;
}

function configMapsPath(namespace: string): string {
  return `/api/v1/namespaces/${segment(namespace, 'namespace name')}/configmaps`;
}

function firstLine(text: string | undefined): string {
  return (text ?? '').trim().split('\n')[0].slice(0, 300) || 'no message';
}
