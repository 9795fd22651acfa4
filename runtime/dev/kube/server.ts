/**
 * Kubernetes-API-compatible test server. DEV-ONLY: test infrastructure and the local demo's stand-in for a
 * cluster; never a production code path. Real `kubectl` and @kubernetes/client-node work against it.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import { type AddressInfo, isIP, type Socket } from 'node:net';
import { type Logger, moduleLogger } from '../../core/index.js';
import { createCertificateAuthority, issueCertificate, LIFETIME_DAYS } from '../../pki/index.js';
import { adminUser, authenticateToken } from './authentication.js';
import { apiGroupDocument, apiGroupList, apiResourceList, apiVersions, findResource } from './discovery.js';
import { handleResource } from './handlers.js';
import { type WriteKubeconfigOptions, writeKubeconfigFile } from './kubeconfig.js';
import { createNamespace } from './namespaces.js';
import { openApiDocument, openApiIndex } from './openapi.js';
import { Authorizer, type PolicyRule } from './rbac.js';
import type { HandlerResult, ResponseStream, ServerState, UserInfo } from './requests.js';
import { createServiceAccountObject } from './service-accounts.js';
import { forwardToService, parseServiceProxyPath, ServiceBackends } from './service-proxy.js';
import { badRequest, forbidden, KubeStatusError, requestEntityTooLarge, unauthorized } from './status.js';
import { DEFAULT_HISTORY_LIMIT, type KubeObject, ObjectStore } from './store.js';
import { toTable, wantsTable } from './table.js';
import { type ServiceAccountSigningAlgorithm, ServiceAccountTokenSigner } from './tokens.js';

export interface KubeTestServerOptions {
  /** @default '127.0.0.1' */
  readonly host?: string;
  /** @default 0 (any free port) */
  readonly port?: number;
  /**
   * Serve HTTPS with this certificate, or plain HTTP with `false` (kubectl then sends no bearer token, so
   * only library clients can use it). @default HTTPS with a fresh in-memory dev CA and a certificate for
   * 127.0.0.1, ::1 and localhost
   */
  readonly tls?: { readonly certPem: string; readonly keyPem: string; readonly caCertPem: string } | false;
  /** UID of `kube-system`, the cluster fingerprint. @default a random v4 UUID */
  readonly kubeSystemUid?: string;
  /** `gitVersion` served at /version; kubectl's dispatcher picks its client from it. @default 'v1.31.0' */
  readonly version?: string;
  /** Service-account token issuer. @default 'https://kubernetes.default.svc.cluster.local' */
  readonly issuer?: string;
  /** Serve /.well-known/openid-configuration and /openid/v1/jwks without a token. @default false, as on a real cluster */
  readonly anonymousIssuerDiscovery?: boolean;
  /**
   * Sees every resource request of a non-admin user with its RBAC attributes and decision, as the API server's
   * audit log records them (`verb`, `objectRef`, `annotations["authorization.k8s.io/decision"]`).
   */
  readonly audit?: (entry: KubeAuditEntry) => void;
  /**
   * How service-account tokens are signed. @default 'RS256', what kubeadm, GKE, EKS and AKS clusters use
   * (an RSA `--service-account-signing-key-file`); ES256/ES384/ES512 stand for a P-256/P-384/P-521 key.
   */
  readonly serviceAccountSigningAlgorithm?: ServiceAccountSigningAlgorithm;
  /**
   * How many changes (revisions) the server keeps for watches and continue tokens, as etcd keeps history until
   * it is compacted; an older resourceVersion is answered with 410 Expired. @default 1000
   */
  readonly historyLimit?: number;
  /** How often a watch with `allowWatchBookmarks=true` gets a BOOKMARK. @default 60000, the API server's minute */
  readonly watchBookmarkIntervalMs?: number;
  readonly logger?: Logger;
}

export interface KubeAuditEntry {
  readonly user: string;
  readonly verb: string;
  readonly group: string;
  readonly resource: string;
  readonly subresource?: string;
  readonly namespace?: string;
  readonly name?: string;
  readonly allowed: boolean;
}

export interface KubeTestServer {
  /** `http(s)://127.0.0.1:PORT` */
  readonly url: string;
  /** The CA that signed the serving certificate (undefined over plain HTTP). */
  readonly caCertPem?: string;
  readonly kubeSystemUid: string;
  /** Bearer token with full access (user `kubernetes-admin`, group `system:masters`). */
  readonly adminToken: string;
  /** Service-account token issuer (`iss` of every token this server mints). */
  readonly issuer: string;
  /** PEM public key that verifies service-account tokens (what `pem_keys` in OpenBao's Kubernetes auth takes). */
  readonly serviceAccountPublicKeyPem: string;
  writeKubeconfig(path: string, opts?: WriteKubeconfigOptions): Promise<void>;
  createNamespace(name: string): Promise<{ uid: string }>;
  createServiceAccount(namespace: string, name: string): Promise<{ uid: string }>;
  /**
   * Creates an admissionregistration.k8s.io/v1 MutatingWebhookConfiguration with the validation and
   * defaults of a POST by the admin; a refused object throws its Status message.
   */
  createMutatingWebhookConfiguration(
    configuration: Record<string, unknown>,
  ): Promise<{ uid: string; resourceVersion: string }>;
  /**
   * Places (or replaces) an apps/v1 Deployment with the status given, as the Deployment controller would report
   * it; the API serves Deployments read-only. The namespace is created when missing.
   */
  applyDeployment(deployment: Record<string, unknown>): void;
  /** Mints a real signed JWT for an existing service account (default audience: the API server's). */
  issueServiceAccountToken(
    namespace: string,
    name: string,
    opts?: {
      audiences?: string[];
      expirationSeconds?: number;
      boundPod?: { name: string; uid: string };
      /** Issue time (seconds since the epoch) instead of now: for tokens captured earlier. */
      issuedAt?: number;
    },
  ): string;
  /**
   * Where the service proxy (`services/<name>:<port>/proxy/...`) of a Service port leads, e.g. a broker's health
   * server; `null` registers the Service with no ready endpoint (503 "no endpoints available"). Services never
   * registered are 404.
   */
  registerServiceBackend(
    namespace: string,
    service: string,
    port: string | number,
    backendUrl: string | null,
  ): void;
  /** Forgets a Service registered with registerServiceBackend (its proxy answers 404 again). */
  removeService(namespace: string, service: string): void;
  /** Grants a service account what an RBAC rule allows; without grants a service account may only read discovery. */
  grant(serviceAccount: { namespace: string; name: string }, rule: PolicyRule): void;
  close(): Promise<void>;
}

/** Largest request body accepted; the real API server's limit is about 3 MiB. */
const MAX_BODY_BYTES = 3 * 1024 * 1024;
const PUBLIC_PATHS = new Set(['/version', '/healthz', '/livez', '/readyz']);
const ISSUER_DISCOVERY_PATHS = new Set(['/.well-known/openid-configuration', '/openid/v1/jwks']);
const VERSION_PATTERN = /^v(\d+)\.(\d+)\.(\d+)$/;

export async function startKubeTestServer(options: KubeTestServerOptions = {}): Promise<KubeTestServer> {
  const logger = moduleLogger(options.logger, 'kube-test-server');
  const gitVersion = options.version ?? 'v1.31.0';
  const versionMatch = VERSION_PATTERN.exec(gitVersion);
  if (versionMatch === null)
    throw new TypeError(`version ${JSON.stringify(gitVersion)} must look like v1.31.0`);
  const issuer = options.issuer ?? 'https://kubernetes.default.svc.cluster.local';
  const kubeSystemUid = options.kubeSystemUid ?? randomUUID();
  const tls = options.tls === undefined ? devServingCertificate(options.host) : options.tls;

  const state: ServerState = {
    store: new ObjectStore(options.historyLimit ?? DEFAULT_HISTORY_LIMIT),
    signer: new ServiceAccountTokenSigner(issuer, options.serviceAccountSigningAlgorithm),
    authorizer: new Authorizer(),
    adminToken: randomBytes(32).toString('base64url'),
    apiAudiences: [issuer],
    minorVersion: Number(versionMatch[2]),
    watchBookmarkIntervalMs: options.watchBookmarkIntervalMs ?? 60_000,
  };
  /** Open watch streams, ended when the server closes. */
  const openStreams = new Set<() => void>();
  const serviceBackends = new ServiceBackends();
  for (const name of ['default', 'kube-node-lease', 'kube-public']) createNamespace(state, name);
  createNamespace(state, 'kube-system', {}, kubeSystemUid);

  let url = '';
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    serve(req, res).catch((err: unknown) => {
      logger.error({ event: 'request_failed', err }, 'unexpected error while serving a request');
      if (!res.headersSent)
        writeJson(res, 500, new KubeStatusError(500, 'InternalError', 'Internal error occurred').body);
      else res.destroy();
    });
  };

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const parsed = new URL(req.url ?? '/', 'http://placeholder');
    const path = parsed.pathname.length > 1 ? parsed.pathname.replace(/\/+$/, '') : parsed.pathname;
    const method = req.method ?? 'GET';
    let result: HandlerResult;
    let username = '';
    try {
      const body = await readBody(req);
      if (PUBLIC_PATHS.has(path)) {
        result = publicEndpoint(path);
      } else if (ISSUER_DISCOVERY_PATHS.has(path) && options.anonymousIssuerDiscovery === true) {
        result = issuerDiscovery(path);
      } else {
        const user = authenticate(req);
        username = user.username;
        const proxy = parseServiceProxyPath(parsed.pathname);
        if (proxy !== undefined) {
          const name = decodeURIComponent(parsed.pathname.split('/')[6]);
          authorize(user, {
            verb: verbFor(method, name, new URLSearchParams()),
            group: '',
            resource: 'services',
            subresource: 'proxy',
            namespace: proxy.namespace,
            name,
          });
          const backend = serviceBackends.resolve(proxy);
          logger.debug({ event: 'service_proxy', method, path, user: username }, 'proxying');
          await forwardToService(req, res, body, backend, proxy, parsed.search);
          return;
        }
        result = route(method, path, parsed.searchParams, body, req, user);
      }
    } catch (err) {
      if (!(err instanceof KubeStatusError)) throw err;
      result = { status: err.httpStatus, body: err.body };
    }
    logger.debug({ event: 'request', method, path, status: result.status, user: username }, 'served');
    if (result.stream !== undefined) writeStream(res, result.stream);
    else writeJson(res, result.status, result.body, result.warnings);
  }

  /** A watch: 200 with chunked JSON lines until the stream, the client or the server ends it. */
  function writeStream(res: ServerResponse, stream: ResponseStream): void {
    res.writeHead(200, { 'content-type': stream.contentType, 'cache-control': 'no-cache, private' });
    res.flushHeaders();
    let stop: () => void = () => undefined;
    const finish = (): void => {
      stop();
      openStreams.delete(finish);
      if (!res.writableEnded) res.end();
    };
    openStreams.add(finish);
    res.on('close', finish);
    stop = stream.open({
      write: (chunk) => {
        if (!res.writableEnded) res.write(chunk);
      },
      end: finish,
    });
  }

  function authenticate(req: IncomingMessage): UserInfo {
    const header = req.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match === null) throw unauthorized();
    const outcome = authenticateToken(state, match[1], state.apiAudiences);
    if (!outcome.ok) throw unauthorized();
    return outcome.user;
  }

  function publicEndpoint(path: string): HandlerResult {
    if (path === '/version') {
      return {
        status: 200,
        body: {
          major: versionMatch?.[1],
          minor: versionMatch?.[2],
          gitVersion,
          gitCommit: '0000000000000000000000000000000000000000',
          gitTreeState: 'clean',
          buildDate: '2026-01-01T00:00:00Z',
          goVersion: 'go1.23.0',
          compiler: 'gc',
          platform: 'linux/amd64',
        },
      };
    }
    return { status: 200, body: 'ok' };
  }

  function issuerDiscovery(path: string): HandlerResult {
    if (path === '/openid/v1/jwks') return { status: 200, body: state.signer.jwks() };
    return {
      status: 200,
      body: {
        issuer,
        jwks_uri: `${url}/openid/v1/jwks`,
        response_types_supported: ['id_token'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: [state.signer.algorithm],
      },
    };
  }

  function route(
    method: string,
    path: string,
    query: URLSearchParams,
    rawBody: Buffer,
    req: IncomingMessage,
    user: UserInfo,
  ): HandlerResult {
    const host = new URL(url).host;
    if (method === 'GET') {
      if (path === '/api') return { status: 200, body: apiVersions(host) };
      if (path === '/apis') return { status: 200, body: apiGroupList() };
      if (path === '/openapi/v3') return { status: 200, body: openApiIndex() };
      if (path.startsWith('/openapi/v3/')) {
        const document = openApiDocument(path.slice('/openapi/v3/'.length));
        if (document === undefined) throw notFoundPath();
        return { status: 200, body: JSON.parse(document) };
      }
      if (ISSUER_DISCOVERY_PATHS.has(path)) {
        // kube-apiserver's bootstrap policy (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go) binds the
        // ClusterRole system:service-account-issuer-discovery to the group system:serviceaccounts (by default
        // since 1.20); the admin (system:masters) may read anything. Those are the only users this server has.
        return issuerDiscovery(path);
      }
    }
    const segments = path
      .split('/')
      .filter((s) => s !== '')
      .map(decodeURIComponent);
    let group: string;
    let version: string;
    let rest: string[];
    if (segments[0] === 'api' && segments.length >= 2) {
      [group, version, rest] = ['', segments[1], segments.slice(2)];
    } else if (segments[0] === 'apis' && segments.length >= 2) {
      if (segments.length === 2 && method === 'GET') {
        const doc = apiGroupDocument(segments[1]);
        if (doc !== undefined) return { status: 200, body: doc };
      }
      [group, version, rest] = [segments[1], segments[2] ?? '', segments.slice(3)];
    } else {
      throw notFoundPath();
    }
    if (rest.length === 0) {
      const list = method === 'GET' ? apiResourceList(group, version) : undefined;
      if (list === undefined) throw notFoundPath();
      return { status: 200, body: list };
    }

    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const [resourceName, name, subresource, ...extra] = rest;
    if (extra.length > 0) throw notFoundPath();
    const definition = findResource(group, version, resourceName);
    if (definition === undefined) throw notFoundPath();
    if (namespace !== undefined && !definition.namespaced) {
      throw badRequest(`namespace is not allowed on this type: ${namespace}`);
    }
    if (subresource !== undefined && !(definition.subresources ?? []).some((s) => s.name === subresource))
      throw notFoundPath();
    if (definition.namespaced && namespace === undefined && name !== undefined) throw notFoundPath();

    const verb = verbFor(method, name, query);
    authorize(user, { verb, group, resource: resourceName, subresource, namespace, name });
    const contentType = String(req.headers['content-type'] ?? 'application/json');
    const result = handleResource(state, {
      verb,
      group,
      version,
      resource: resourceName,
      subresource,
      namespace,
      name,
      query,
      // A PATCH's content type picks its format, so a non-JSON one (apply-patch+yaml) must reach the
      // handler's 415 instead of failing here as unparsable JSON.
      body: method === 'PATCH' && !/json/i.test(contentType) ? rawBody.toString('utf8') : parseBody(rawBody),
      contentType,
      accept: req.headers.accept,
      user,
    });
    if (verb === 'get' && result.status === 200 && wantsTable(req.headers.accept)) {
      const table = toTable(resourceName, [result.body as KubeObject], state.store.currentResourceVersion());
      if (table !== undefined) return { status: 200, body: table };
    }
    return result;
  }

  /** RBAC for a non-admin user's resource request, audited as the API server's audit log records it. */
  function authorize(
    user: UserInfo,
    attrs: {
      verb: string;
      group: string;
      resource: string;
      subresource?: string;
      namespace?: string;
      name?: string;
    },
  ): void {
    if (user.isAdmin) return;
    const allowed = state.authorizer.allows(user.username, false, attrs);
    options.audit?.({ user: user.username, ...attrs, allowed });
    if (!allowed) {
      throw forbidden({
        user: user.username,
        ...attrs,
        name: attrs.verb === 'create' && attrs.subresource === undefined ? undefined : attrs.name,
      });
    }
  }

  const server =
    tls === false
      ? http.createServer(handler)
      : https.createServer({ cert: tls.certPem, key: tls.keyPem }, handler);
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const hostText = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  url = `${tls === false ? 'http' : 'https'}://${hostText}:${address.port}`;
  logger.info({ event: 'listening', url, kubeSystemUid }, 'Kubernetes test server listening (dev-only)');

  const handle: KubeTestServer = {
    url,
    ...(tls === false ? {} : { caCertPem: tls.caCertPem }),
    kubeSystemUid,
    adminToken: state.adminToken,
    issuer,
    serviceAccountPublicKeyPem: state.signer.publicKeyPem(),
    writeKubeconfig: (path, opts) => writeKubeconfigFile(path, handle, opts),
    createNamespace: async (name) => {
      const existing = state.store.get('namespaces', undefined, name);
      return { uid: (existing ?? createNamespace(state, name)).metadata.uid };
    },
    createServiceAccount: async (namespace, name) => {
      if (state.store.get('namespaces', undefined, namespace) === undefined)
        createNamespace(state, namespace);
      const existing = state.store.get('serviceaccounts', namespace, name);
      return { uid: (existing ?? createServiceAccountObject(state, namespace, name)).metadata.uid };
    },
    applyDeployment: (deployment) => {
      const metadata = (deployment.metadata ?? {}) as { name?: string; namespace?: string };
      if (!metadata.name || !metadata.namespace)
        throw new TypeError('applyDeployment needs metadata.name and metadata.namespace');
      if (state.store.get('namespaces', undefined, metadata.namespace) === undefined)
        createNamespace(state, metadata.namespace);
      const object = {
        ...structuredClone(deployment),
        kind: 'Deployment',
        apiVersion: 'apps/v1',
      } as unknown as KubeObject;
      const existing = state.store.get('deployments', metadata.namespace, metadata.name);
      if (existing)
        state.store.update('deployments', {
          ...object,
          metadata: { ...existing.metadata, ...(object.metadata as object) },
        } as KubeObject);
      else state.store.create('deployments', object as never);
    },
    createMutatingWebhookConfiguration: async (configuration) => {
      const created = handleResource(state, {
        verb: 'create',
        group: 'admissionregistration.k8s.io',
        version: 'v1',
        resource: 'mutatingwebhookconfigurations',
        query: new URLSearchParams(),
        body: structuredClone(configuration),
        contentType: 'application/json',
        accept: undefined,
        user: adminUser(),
      }).body as KubeObject;
      return { uid: created.metadata.uid, resourceVersion: created.metadata.resourceVersion };
    },
    issueServiceAccountToken: (namespace, name, opts = {}) => {
      const account = state.store.get('serviceaccounts', namespace, name);
      if (account === undefined)
        throw new TypeError(`service account ${namespace}/${name} does not exist; create it first`);
      return state.signer.mint({
        namespace,
        name,
        uid: account.metadata.uid,
        audiences: opts.audiences ?? state.apiAudiences,
        expirationSeconds: opts.expirationSeconds ?? 3600,
        boundPod: opts.boundPod,
        now: opts.issuedAt,
      }).token;
    },
    registerServiceBackend: (namespace, service, port, backendUrl) =>
      serviceBackends.register(namespace, service, port, backendUrl),
    removeService: (namespace, service) => serviceBackends.remove(namespace, service),
    grant: (serviceAccount, rule) => {
      state.authorizer.grant(
        `system:serviceaccount:${serviceAccount.namespace}:${serviceAccount.name}`,
        rule,
      );
    },
    close: async () => {
      for (const finish of [...openStreams]) finish();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      logger.info({ event: 'closed' }, 'Kubernetes test server closed');
    },
  };
  return handle;
}

/** A dev CA and a serving certificate for the loopback names, created in memory for this server only. */
function devServingCertificate(host: string | undefined): {
  certPem: string;
  keyPem: string;
  caCertPem: string;
} {
  const ca = createCertificateAuthority({
    commonName: 'cloudtaser kube test server CA (dev-only)',
    days: LIFETIME_DAYS.devServer,
  });
  const ipAddresses = ['127.0.0.1', '::1'];
  const dnsNames = [
    'localhost',
    'kubernetes',
    'kubernetes.default',
    'kubernetes.default.svc',
    'kubernetes.default.svc.cluster.local',
  ];
  if (host !== undefined && isIP(host) !== 0 && !ipAddresses.includes(host)) ipAddresses.push(host);
  if (host !== undefined && isIP(host) === 0 && !dnsNames.includes(host)) dnsNames.push(host);
  const leaf = issueCertificate(ca, {
    commonName: 'kube-apiserver',
    dnsNames,
    ipAddresses,
    extKeyUsage: ['serverAuth'],
    days: LIFETIME_DAYS.devServer,
  });
  return { certPem: leaf.certPem, keyPem: leaf.keyPem as string, caCertPem: ca.certPem };
}

function verbFor(method: string, name: string | undefined, query: URLSearchParams): string {
  switch (method) {
    case 'GET':
      if (query.get('watch') === 'true' || query.get('watch') === '1') return 'watch';
      return name === undefined ? 'list' : 'get';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return name === undefined ? 'deletecollection' : 'delete';
    default:
      return method.toLowerCase();
  }
}

function notFoundPath(): KubeStatusError {
  return new KubeStatusError(404, 'NotFound', 'the server could not find the requested resource', {});
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) {
    req.resume();
    throw requestEntityTooLarge(MAX_BODY_BYTES);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) {
      req.resume();
      throw requestEntityTooLarge(MAX_BODY_BYTES);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function parseBody(raw: Buffer): unknown {
  if (raw.length === 0) return undefined;
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw badRequest(`couldn't get version/kind; json parse error: ${(err as Error).message}`);
  }
}

function writeJson(res: ServerResponse, status: number, body: unknown, warnings?: readonly string[]): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const headers: Record<string, string | string[]> = {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    'cache-control': 'no-cache, private',
    'content-length': String(Buffer.byteLength(text)),
  };
  if (warnings !== undefined && warnings.length > 0) {
    headers.warning = warnings.map((w) => `299 - ${JSON.stringify(w)}`);
  }
  res.writeHead(status, headers);
  res.end(text);
}
