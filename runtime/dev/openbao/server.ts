/**
 * DEV-ONLY test infrastructure, never a production code path: an in-memory OpenBao-compatible HTTP(S) server
 * for tests and the local demo, built from the project's wire facts (envelopes, status codes, exact error texts,
 * namespaces, KV v2, tokens, ACL policies, Kubernetes and AppRole auth). It also injects faults on demand.
 * The HTTP layer follows internal/http/: handler.go (404 `{"errors":[]}` outside /v1/, the namespace header
 * echoed back, `restrictedSysAPIsNonLogical`: 400 `operation unavailable in namespaces`, the 32 MiB request
 * limit), logical.go `buildLogicalRequestNoAuth` (methods, LIST/SCAN and `?list=`/`?scan=` as Go booleans, PATCH
 * needing merge-patch or 415, JSON read whatever the content type unless it is a form), sys_health.go,
 * sys_seal.go; HA standbys follow handler.go `handleRequestForwarding`/`respondStandby`.
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { type AddressInfo, BlockList, createServer as createNetServer, isIP, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { withCustomVerbs } from '../../core/custom-verbs.js';
import { type Logger, silentLogger } from '../../core/index.js';
import { unmappedIPv4 } from '../../core/rules.js';
import { decideConsistency, encodeIndex, INDEX_HEADER } from './consistency.js';
import type { MountDeps } from './mounts.js';
import { installBuiltinMounts } from './mounts.js';
import { canonicalNamespaceHeader, Namespace } from './namespaces.js';
import { RateLimitQuotas } from './quotas.js';
import { routeLogical } from './router.js';
import { createSystemBackend, installDefaultPolicy } from './system-backend.js';
import { TokenStore } from './tokens.js';
import {
  BaoError,
  type BaoResponse,
  envelope,
  goJson,
  isRecord,
  parseGoBool,
  randomBase62,
  SEALED_TEXT,
} from './wire.js';

export interface OpenBaoTestServerOptions {
  /** @default '127.0.0.1' */
  readonly host?: string;
  /** @default 0 (a free port) */
  readonly port?: number;
  /** Serve HTTPS with this certificate when given. */
  readonly tls?: { readonly certPem: string; readonly keyPem: string };
  /** @default a random legacy-format token: 's.' + 24 base62 characters */
  readonly rootToken?: string;
  /** false = behave like an OpenBao without namespaces (< 2.3): the header is ignored. @default true */
  readonly namespaces?: boolean;
  /** Version reported by sys/health and sys/seal-status. @default '2.5.5' ('2.2.2' without namespaces) */
  readonly version?: string;
  /** How long a deleted namespace stays visible as tainted before it is gone. @default 50 */
  readonly namespaceDeleteDelayMs?: number;
  /** Largest request body accepted; larger ones get 413. @default 32 MiB, as OpenBao */
  readonly maxRequestBytes?: number;
  /** The listener's `x_forwarded_for_*` settings (see ForwardedForOptions). @default X-Forwarded-For ignored */
  readonly forwardedFor?: ForwardedForOptions;
  readonly logger?: Logger;
}

/**
 * A listener's X-Forwarded-For handling, as OpenBao's `WrapForwardedForHandler` (http/handler.go) runs it around
 * every request once `x_forwarded_for_authorized_addrs` is set: without the header, 400 unless
 * `x_forwarded_for_reject_not_present = false`; from an address outside the list, 400 unless
 * `x_forwarded_for_reject_not_authorized = false` (then the header is ignored); else the client address becomes the
 * entry `hop_skips` from the end of the comma-separated chain (400 when the chain is shorter). That address is what
 * per-address rate-limit quotas count.
 */
export interface ForwardedForOptions {
  /** IP addresses or CIDR blocks trusted to send the header (`x_forwarded_for_authorized_addrs`). */
  readonly authorizedAddrs: readonly string[];
  /** `x_forwarded_for_reject_not_present`. @default true */
  readonly rejectNotPresent?: boolean;
  /** `x_forwarded_for_reject_not_authorized`. @default true */
  readonly rejectNotAuthorized?: boolean;
  /** `x_forwarded_for_hop_skips`. @default 0 */
  readonly hopSkips?: number;
}

export interface InjectedFault {
  /** Tested against the URL path, e.g. `/v1/secret/data/app`. */
  readonly pathPattern: RegExp;
  /** Only requests with this HTTP method (e.g. `POST`). @default any */
  readonly method?: string;
  /** Answer with this status and OpenBao's error body for it. */
  readonly status?: number;
  /** The `errors` list to answer with instead of the usual text for `status`. */
  readonly errors?: readonly string[];
  /** Wait this long before answering (or before handling normally when no status is given). */
  readonly delayMs?: number;
  /** How many matching requests the fault applies to. @default 1 */
  readonly times?: number;
  /** Answer 503 `Vault is sealed`. */
  readonly sealed?: boolean;
}

export interface RequestLogEntry {
  readonly method: string;
  /** URL path without the query. */
  readonly path: string;
  /** The X-Vault-Namespace header as sent ('' when absent). */
  readonly namespace: string;
  /** The client address OpenBao acts on: the socket's, or X-Forwarded-For's under `forwardedFor`. */
  readonly clientAddress: string;
  readonly status: number;
}

/**
 * An HA standby node in front of the same storage (OpenBao >= 2.5 serves reads on standbys). Reads see the state
 * as it was `readLagMs` ago; writes are forwarded to the active node, or, without request forwarding, answered
 * with 307 and a `Location` on the active node (internal/http/handler.go `handleRequestForwarding`,
 * `respondStandby`). sys/health says `standby: true` (429 unless `standbyok`).
 */
export interface StandbyOptions {
  /** How far behind the active node reads are. @default 0 */
  readonly readLagMs?: number;
  /** Forward what the standby cannot serve; false = answer 307 to `redirectAddress`. @default true */
  readonly requestForwarding?: boolean;
  /** Serve reads locally (with the lag); false = reads go the way of writes. @default true */
  readonly serveReads?: boolean;
  /**
   * Where a 307 points (scheme, host and port; the request's path and query are kept), or a function giving it
   * (so a standby can point at itself, for a loop). @default the active node
   */
  readonly redirectAddress?: string | (() => string);
}

export interface OpenBaoStandby {
  readonly address: string;
  close(): Promise<void>;
}

export interface OpenBaoTestServer {
  readonly address: string;
  readonly rootToken: string;
  /** Starts a standby node sharing this server's storage, on its own port. */
  startStandby(options?: StandbyOptions): Promise<OpenBaoStandby>;
  seal(): void;
  unseal(): void;
  /** The next `times` requests whose path matches answer with `status` (and the OpenBao error body), or are delayed. */
  injectFault(fault: InjectedFault): void;
  /** No bodies, no tokens. */
  requestLog(): ReadonlyArray<RequestLogEntry>;
  close(): Promise<void>;
}

/** Texts OpenBao sends with these statuses, used for injected faults. */
const FAULT_TEXTS: Record<number, string> = {
  400: 'injected bad request',
  403: 'permission denied',
  429: 'request path "injected": rate limit quota exceeded',
  500: 'internal error',
  502: 'error during request forwarding',
  503: 'Vault is in standby mode and request forwarding is unavailable',
};

const ROOT_ONLY_WITH_HEADER = new Set([
  'raw',
  'generate-recovery-token',
  'init',
  'seal',
  'step-down',
  'unseal',
  'health',
  'rekey-recovery-key',
  'rekey',
  'storage',
  'generate-root',
  'metrics',
  'pprof',
  'in-flight-req',
]);

type NodeRole =
  | { readonly kind: 'active' }
  | ({ readonly kind: 'standby'; readonly redirectTo: () => string } & Required<
      Omit<StandbyOptions, 'redirectAddress'>
    >);

const ACTIVE: NodeRole = { kind: 'active' };
/** How long `X-Vault-Inconsistent: await-state` waits on a standby before its fallback (a server setting upstream). */
const CONSISTENCY_AWAIT_MS = 2_000;

export async function startOpenBaoTestServer(
  options: OpenBaoTestServerOptions = {},
): Promise<OpenBaoTestServer> {
  const logger = options.logger ?? silentLogger;
  const namespacesEnabled = options.namespaces ?? true;
  const version = options.version ?? (namespacesEnabled ? '2.5.5' : '2.2.2');
  const maxRequestBytes = options.maxRequestBytes ?? 32 * 1024 * 1024;
  const clusterName = `vault-cluster-${randomBase62(8).toLowerCase()}`;
  const clusterId = crypto.randomUUID();
  const tokens = new TokenStore();
  const timers = new Set<NodeJS.Timeout>();
  const faults: { fault: InjectedFault; remaining: number }[] = [];
  const log: RequestLogEntry[] = [];
  const quotas = new RateLimitQuotas();
  const forwardedForAuthorized = options.forwardedFor
    ? blockListOf(options.forwardedFor.authorizedAddrs)
    : undefined;
  let sealed = false;

  const root = new Namespace('', undefined);
  const systemBackend = createSystemBackend({
    namespacesEnabled,
    namespaceDeleteDelayMs: options.namespaceDeleteDelayMs ?? 50,
    mountDeps: () => deps,
    onNamespaceDeleted: (namespace) => {
      tokens.revokeNamespace(namespace);
      for (const mount of [...namespace.mounts.values(), ...namespace.authMounts.values()])
        void mount.backend.close?.();
      logger.debug(
        { event: 'openbao_dev.namespace_deleted', namespace: namespace.path },
        'namespace deleted',
      );
    },
    track: (timer) => timers.add(timer),
    quotas,
  });
  const deps: MountDeps = { tokens, logger, systemBackend };
  installBuiltinMounts(root, deps, true);
  installDefaultPolicy(root);
  const rootToken = options.rootToken ?? `s.${randomBase62(24)}`;
  tokens.create({
    namespace: root,
    policies: ['root'],
    displayName: 'root',
    path: 'auth/token/root',
    id: rootToken,
  });

  function send(res: ServerResponse, status: number, body: unknown, head: boolean): void {
    res.statusCode = status;
    res.setHeader('Content-Type', 'application/json');
    res.setHeader('Cache-Control', 'no-store');
    if (body === undefined || head) res.end();
    else res.end(goJson(body));
  }

  function sendBao(res: ServerResponse, response: BaoResponse, head: boolean): void {
    if (response.kind === 'empty') send(res, 204, undefined, head);
    else if (response.kind === 'error') send(res, response.status, { errors: response.errors }, head);
    else send(res, response.status ?? 200, envelope(response), head);
  }

  /** internal/http/sys_health.go `getSysHealth`: the state picks the status, each overridable by a parameter. */
  function health(res: ServerResponse, query: URLSearchParams, head: boolean, node: NodeRole): void {
    const code = (name: string, fallback: number): number => {
      const value = query.get(name);
      if (value === null) return fallback;
      if (!/^\d+$/.test(value)) throw new BaoError(400, []);
      return Number(value);
    };
    const flag = (name: string): boolean => {
      const value = query.get(name);
      if (value === null) return false;
      const parsed = parseGoBool(value);
      if (parsed === undefined) throw new BaoError(400, []);
      return parsed;
    };
    const standbyOk = flag('standbyok');
    flag('perfstandbyok');
    const sealedCode = code('sealedcode', 503);
    const standbyCode = code('standbycode', 429);
    const activeCode = code('activecode', 200);
    code('uninitcode', 501);
    code('drsecondarycode', 472);
    code('performancestandbycode', 473);
    const standby = node.kind === 'standby';
    const status = sealed ? sealedCode : standby && !standbyOk ? standbyCode : activeCode;
    const body: Record<string, unknown> = {
      initialized: true,
      sealed,
      standby,
      performance_standby: false,
      replication_performance_mode: 'disabled',
      replication_dr_mode: 'disabled',
      server_time_utc: Math.floor(Date.now() / 1000),
      version,
    };
    if (!sealed) Object.assign(body, { cluster_name: clusterName, cluster_id: clusterId });
    send(res, status, body, head);
  }

  function sealStatus(res: ServerResponse): void {
    const body: Record<string, unknown> = {
      type: 'shamir',
      initialized: true,
      sealed,
      t: 1,
      n: 1,
      progress: 0,
      nonce: '',
      version,
      build_date: '2026-01-01T00:00:00Z',
      migration: false,
    };
    if (!sealed) Object.assign(body, { cluster_name: clusterName, cluster_id: clusterId });
    Object.assign(body, { recovery_seal: false, storage_type: 'inmem' });
    send(res, 200, body, false);
  }

  async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > maxRequestBytes) return undefined;
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks);
  }

  function parseBody(raw: Buffer, contentType: string): Record<string, unknown> {
    const text = raw.toString('utf8');
    const first = text.trimStart()[0];
    if (text.trim() === '') return {};
    if (contentType.startsWith('application/x-www-form-urlencoded') && first !== '{' && first !== '[') {
      return Object.fromEntries(new URLSearchParams(text));
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new BaoError(400, [`failed to decode JSON input: ${(err as Error).message}`]);
    }
    if (!isRecord(parsed)) {
      throw new BaoError(400, [
        'failed to decode JSON input: json: cannot unmarshal into a map[string]interface {}',
      ]);
    }
    return parsed;
  }

  async function handle(
    req: IncomingMessage,
    res: ServerResponse,
    node: NodeRole,
    client: ForwardedClient,
  ): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://openbao.invalid');
    const method = (req.method ?? 'GET').toUpperCase();
    const head = method === 'HEAD';
    if ('error' in client) {
      req.resume();
      return send(res, 400, { errors: [client.error] }, head);
    }
    const nsHeader = String(req.headers['x-vault-namespace'] ?? '');
    if (nsHeader !== '' && namespacesEnabled) res.setHeader('X-Vault-Namespace', nsHeader);

    const fault = faults.find(
      (entry) =>
        entry.remaining > 0 &&
        entry.fault.pathPattern.test(url.pathname) &&
        (entry.fault.method === undefined || entry.fault.method.toUpperCase() === method),
    );
    if (fault) {
      fault.remaining--;
      if (fault.fault.delayMs) await new Promise((resolve) => setTimeout(resolve, fault.fault.delayMs));
      if (res.destroyed) return;
      if (fault.fault.sealed) return send(res, 503, { errors: [SEALED_TEXT] }, head);
      if (fault.fault.status !== undefined) {
        const text = FAULT_TEXTS[fault.fault.status];
        const errors = fault.fault.errors ?? (text === undefined ? [] : [text]);
        return send(res, fault.fault.status, { errors }, head);
      }
    }

    if (!url.pathname.startsWith('/v1/')) return send(res, 404, { errors: [] }, head);
    let path: string;
    try {
      path = decodeURIComponent(url.pathname.slice('/v1/'.length));
    } catch {
      return send(res, 400, { errors: ['invalid URL escape in the request path'] }, head);
    }

    const sysPath = path.startsWith('sys/') ? path.slice('sys/'.length) : undefined;
    if (
      sysPath !== undefined &&
      nsHeader !== '' &&
      namespacesEnabled &&
      ROOT_ONLY_WITH_HEADER.has(sysPath.split('/')[0])
    ) {
      return send(res, 400, { errors: ['operation unavailable in namespaces'] }, head);
    }
    if (path === 'sys/health') {
      if (method !== 'GET' && !head) return send(res, 405, { errors: [] }, head);
      return health(res, url.searchParams, head, node);
    }
    if (path === 'sys/seal-status') {
      if (method !== 'GET') return send(res, 405, { errors: [] }, head);
      return sealStatus(res);
    }
    // Unauthenticated, sealed or not (internal/http/sys_init.go handleSysInit): GET reads the state; PUT/POST would
    // initialise, which a running server refuses.
    if (path === 'sys/init') {
      if (method === 'GET') return send(res, 200, { initialized: true }, false);
      if (method === 'PUT' || method === 'POST')
        return send(res, 400, { errors: ['Vault is already initialized'] }, false);
      return send(res, 405, { errors: [] }, head);
    }
    if (sealed) return send(res, 503, { errors: [SEALED_TEXT] }, head);

    let operation: 'read' | 'list' | 'scan' | 'update' | 'delete' | 'patch';
    // `list` and `scan` are Go booleans (`list=1` lists); anything else is a 400 (internal/http/logical.go).
    const flag = (name: string): boolean | undefined => {
      const value = url.searchParams.get(name);
      return value === null || value === '' ? false : parseGoBool(value);
    };
    const list = flag('list');
    const scan = flag('scan');
    if ((method === 'GET' || head) && (list === undefined || scan === undefined))
      return send(res, 400, { errors: [] }, head);
    switch (method) {
      case 'GET':
      case 'HEAD':
        if (list && scan) return send(res, 400, { errors: ['cannot use both list and scan'] }, head);
        operation = list ? 'list' : scan ? 'scan' : 'read';
        break;
      case 'LIST':
        operation = 'list';
        break;
      case 'SCAN':
        operation = 'scan';
        break;
      case 'POST':
      case 'PUT':
        operation = 'update';
        break;
      case 'DELETE':
        operation = 'delete';
        break;
      case 'PATCH': {
        const contentType = String(req.headers['content-type'] ?? '');
        if (!contentType.startsWith('application/merge-patch+json')) {
          return send(
            res,
            415,
            {
              errors: [
                `PATCH requires Content-Type of application/merge-patch+json, provided ${contentType}`,
              ],
            },
            head,
          );
        }
        operation = 'patch';
        break;
      }
      default:
        return send(res, 405, { errors: [] }, head);
    }

    // HA: a standby serves reads itself (behind by its lag) and forwards or redirects the rest.
    let visibleAsOf: number | undefined;
    const reading = operation === 'read' || operation === 'list' || operation === 'scan';
    if (node.kind === 'standby') {
      if (reading && node.serveReads) {
        visibleAsOf = Date.now() - node.readLagMs;
      } else if (!node.requestForwarding) {
        req.resume();
        res.setHeader('Location', `${node.redirectTo()}${req.url ?? '/'}`);
        return send(res, 307, undefined, head);
      }
    }
    // Read-your-writes (consistency.ts): an index the view has not reached fails, waits or is served as active.
    if (reading) {
      const lagMs = visibleAsOf === undefined ? 0 : (node as { readLagMs: number }).readLagMs;
      const decision = await decideConsistency(req, clusterId, lagMs, CONSISTENCY_AWAIT_MS);
      if (decision.kind === 'error') {
        req.resume();
        if (decision.retryAfter) res.setHeader('Retry-After', decision.retryAfter);
        return send(res, decision.status, { errors: decision.errors }, head);
      }
      if (visibleAsOf !== undefined)
        visibleAsOf = decision.kind === 'active' ? undefined : Date.now() - lagMs;
    }

    const quota = quotas.check(
      namespacesEnabled
        ? canonicalNamespaceHeader(nsHeader)
            .map((segment) => `${segment}/`)
            .join('')
        : '',
      path,
      client.address,
    );
    for (const [name, value] of Object.entries(quota.headers ?? {})) res.setHeader(name, value);
    if (!quota.allowed) {
      req.resume();
      return send(res, 429, { errors: [`request path "${path}": rate limit quota exceeded`] }, head);
    }

    const raw = await readBody(req);
    if (raw === undefined) {
      res.setHeader('Connection', 'close');
      return send(res, 413, { errors: ['http: request body too large'] }, head);
    }
    const body = parseBody(raw, String(req.headers['content-type'] ?? ''));
    const authorization = String(req.headers.authorization ?? '');
    const token =
      (req.headers['x-vault-token'] as string | undefined) ||
      (authorization.toLowerCase().startsWith('bearer ')
        ? authorization.slice('bearer '.length).trim()
        : undefined);
    const response = await routeLogical(
      { root, tokens, namespacesEnabled },
      { operation, path, namespaceHeader: nsHeader, token, body, query: url.searchParams, visibleAsOf },
    );
    // A write answers the index a later read may ask a standby to have applied.
    if (!reading && response.kind !== 'error')
      res.setHeader(INDEX_HEADER, encodeIndex(clusterId, Date.now()));
    sendBao(res, response, head);
  }

  const listenerFor =
    (node: NodeRole) =>
    (req: IncomingMessage, res: ServerResponse): void => {
      const url = new URL(req.url ?? '/', 'http://openbao.invalid');
      const client = forwardedClient(req, options.forwardedFor, forwardedForAuthorized);
      res.on('finish', () => {
        log.push({
          method: req.method ?? '',
          path: url.pathname,
          namespace: String(req.headers['x-vault-namespace'] ?? ''),
          clientAddress: 'address' in client ? client.address : '',
          status: res.statusCode,
        });
      });
      handle(req, res, node, client).catch((err: unknown) => {
        if (res.headersSent) return;
        if (err instanceof BaoError)
          return send(res, err.status, { errors: err.errors }, req.method === 'HEAD');
        logger.error({ event: 'openbao_dev.internal_error', err }, 'test server bug');
        send(res, 500, { errors: [`1 error occurred:\n\t* internal error\n\n`] }, false);
      });
    };

  /** One node's listener: the HTTP parser never listens itself, connections reach it through the LIST/SCAN rewrite. */
  async function serveNode(node: NodeRole): Promise<{ address: string; close(): Promise<void> }> {
    const http: Server = createHttpServer(listenerFor(node));
    // OpenBao keeps idle keep-alive connections for 5 minutes (tcp listener `http_idle_timeout`, default "5m":
    // website/content/docs/configuration/listener/tcp.mdx); Node's default of 5 s would close them far sooner.
    http.keepAliveTimeout = 300_000;
    const sockets = new Set<Socket>();
    const accept = (socket: Socket): void => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => socket.destroy());
      http.emit('connection', withCustomVerbs(socket));
    };
    const server = options.tls
      ? createTlsServer({ cert: options.tls.certPem, key: options.tls.keyPem }, accept)
      : createNetServer(accept);
    server.on('tlsClientError', (_err: Error, socket: Socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(node.kind === 'active' ? (options.port ?? 0) : 0, options.host ?? '127.0.0.1', () =>
        resolve(),
      );
    });
    const bound = server.address() as AddressInfo;
    const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
    return {
      address: `${options.tls ? 'https' : 'http'}://${host}:${bound.port}`,
      close: async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const socket of sockets) socket.destroy();
        http.close();
        await closed;
      },
    };
  }

  const active = await serveNode(ACTIVE);
  const address = active.address;
  const standbys = new Set<{ close(): Promise<void> }>();
  logger.info(
    { event: 'openbao_dev.started', address, namespaces: namespacesEnabled },
    'OpenBao test server started',
  );

  return {
    address,
    rootToken,
    async startStandby(standby = {}) {
      const node: NodeRole = {
        kind: 'standby',
        readLagMs: standby.readLagMs ?? 0,
        requestForwarding: standby.requestForwarding ?? true,
        serveReads: standby.serveReads ?? true,
        redirectTo: () => {
          const target = standby.redirectAddress ?? address;
          return (typeof target === 'function' ? target() : target).replace(/\/+$/, '');
        },
      };
      const served = await serveNode(node);
      standbys.add(served);
      return {
        address: served.address,
        close: async () => {
          standbys.delete(served);
          await served.close();
        },
      };
    },
    seal: () => {
      sealed = true;
    },
    unseal: () => {
      sealed = false;
    },
    injectFault: (fault) => {
      faults.push({ fault, remaining: fault.times ?? 1 });
    },
    requestLog: () => [...log],
    close: async () => {
      for (const timer of timers) clearTimeout(timer);
      await Promise.all([...standbys].map((standby) => standby.close()));
      await active.close();
      const allNamespaces = [root, ...root.descendants()];
      await Promise.all(
        allNamespaces.flatMap((ns) =>
          [...ns.mounts.values(), ...ns.authMounts.values()].map((m) => m.backend.close?.()),
        ),
      );
    },
  };
}

type ForwardedClient = { readonly address: string } | { readonly error: string };

function blockListOf(addresses: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of addresses) {
    const [ip, bits] = entry.split('/');
    const family = isIP(ip ?? '') === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(ip!, family);
    else list.addSubnet(ip!, Number(bits), family);
  }
  return list;
}

/** The client address of one request, after the listener's X-Forwarded-For handling (ForwardedForOptions). */
function forwardedClient(
  req: IncomingMessage,
  options: ForwardedForOptions | undefined,
  authorized: BlockList | undefined,
): ForwardedClient {
  const socketAddress = req.socket.remoteAddress ?? '';
  if (!options || !authorized) return { address: socketAddress };
  const values = req.headersDistinct['x-forwarded-for'];
  if (!values || values.length === 0) {
    if (options.rejectNotPresent === false) return { address: socketAddress };
    return { error: 'missing x-forwarded-for header and configured to reject when not present' };
  }
  const plain = unmappedIPv4(socketAddress);
  const family = isIP(plain) === 6 ? 'ipv6' : 'ipv4';
  if (!isIP(plain) || !authorized.check(plain, family)) {
    if (options.rejectNotAuthorized === false) return { address: socketAddress };
    return { error: 'client address not authorized for x-forwarded-for and configured to reject connection' };
  }
  const chain = values.flatMap((value) => value.split(',').map((part) => part.trim()));
  const hopSkips = options.hopSkips ?? 0;
  const index = chain.length - 1 - hopSkips;
  if (index < 0) {
    return {
      error: `malformed x-forwarded-for configuration or request, hops to skip (${hopSkips}) would skip before earliest chain link (chain length ${values.length})`,
    };
  }
  return { address: chain[index]! };
}
