/**
 * The OpenBao API the project uses: namespaces, mounts and auth methods, KV v2, tokens and policies, Kubernetes
 * and AppRole auth, health. How requests travel (pool, proxy, redirects, retries, error codes) is transport.ts.
 */
import { CloudtaserError, isCloudtaserError } from '../core/index.js';
import * as auth from './auth.js';
import type { RequestContext } from './errors.js';
import * as kv from './kv.js';
import { assertSegment, NAMESPACE_SEGMENT, trimSlashes } from './paths.js';
import type { OpenBaoTokenSource } from './token-source.js';
import {
  type HttpMethod,
  type OpenBaoResponse,
  OpenBaoTransport,
  type OpenBaoTransportOptions,
  type RequestOptions,
} from './transport.js';
import type {
  AppRoleRole,
  AuthResult,
  HealthInfo,
  KubernetesAuthConfig,
  KubernetesAuthRole,
  KvMetadata,
  KvSecret,
  MountInfo,
  NamespaceInfo,
  TokenInfo,
} from './types.js';
import { type RawNamespace, toNamespaceInfo } from './wire.js';

export type {
  HttpMethod,
  OpenBaoRequestEvent,
  OpenBaoRequestObserver,
  OpenBaoResponse,
  RequestOptions,
} from './transport.js';
export type * from './types.js';

export interface OpenBaoClientOptions extends OpenBaoTransportOptions {
  /** `https://vault.example:8200` (http allowed). */
  readonly address: string;
  /**
   * Never logged, never in an error message. A token source (token-source.ts) for a token that changes while the
   * process runs: a request it sent that OpenBao refuses is sent once more when the source had to replace it.
   */
  readonly token?: string | OpenBaoTokenSource;
  /** Absolute namespace, sent as X-Vault-Namespace; '' (or 'root') = root. @default '' */
  readonly namespace?: string;
}

const SHARED = Symbol('shared');

/** Cleans an absolute namespace: trims slashes; '' and 'root' mean the root namespace. */
export function normaliseNamespace(namespace: string | undefined): string {
  const trimmed = (namespace ?? '').trim().replace(/^\/+|\/+$/g, '');
  if (trimmed === '' || trimmed === 'root') return '';
  for (const segment of trimmed.split('/')) {
    if (!NAMESPACE_SEGMENT.test(segment) || segment === '.' || segment === '..') {
      throw new CloudtaserError(
        'CT_INVALID_ARGUMENT',
        `namespace ${JSON.stringify(namespace)} is not a valid OpenBao namespace path; use segments without spaces, '+' or '*', separated by '/'`,
      );
    }
  }
  return trimmed;
}

/** Versions of servers that have no namespaces: HashiCorp Vault OSS (1.x without +ent) and OpenBao before 2.3. */
export function namespacesSupportedByVersion(version: string): boolean | undefined {
  const match = /^v?(\d+)\.(\d+)/.exec(version.trim());
  if (!match) return undefined;
  const major = Number(match[1]);
  const minor = Number(match[2]);
  if (major === 1) return version.includes('+ent');
  if (major === 2) return minor >= 3;
  return major > 2;
}

/**
 * OpenBao HTTP API client over undici. One connection pool per client; `withNamespace` and `withToken` derive
 * clients that share it. Errors are CloudtaserErrors with stable `CT_OPENBAO_*` codes and never contain the token.
 */
export class OpenBaoClient {
  readonly address: string;
  readonly namespace: string;
  readonly #token: string | OpenBaoTokenSource | undefined;
  readonly #transport: OpenBaoTransport;

  constructor(options: OpenBaoClientOptions);
  /** @internal derived clients share the connection */
  constructor(options: OpenBaoClientOptions, shared: typeof SHARED, connection: OpenBaoTransport);
  constructor(options: OpenBaoClientOptions, shared?: typeof SHARED, connection?: OpenBaoTransport) {
    let url: URL;
    try {
      url = new URL(options.address);
    } catch {
      throw new CloudtaserError(
        'CT_INVALID_ARGUMENT',
        `secret-store address ${JSON.stringify(options.address)} is not a URL; use https://host:8200`,
      );
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new CloudtaserError(
        'CT_INVALID_ARGUMENT',
        `secret-store address ${JSON.stringify(options.address)} must start with https:// or http://`,
      );
    }
    this.address = `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
    this.namespace = normaliseNamespace(options.namespace);
    this.#token = options.token === undefined || options.token === '' ? undefined : options.token;
    if (typeof this.#token === 'string') checkTokenCharacters(this.#token);
    this.#transport = shared === SHARED && connection ? connection : new OpenBaoTransport(url, options);
  }

  /** A client for an absolute namespace (e.g. `cloudtaser/0ad50c05`) sharing this client's connections and token. */
  withNamespace(namespace: string): OpenBaoClient {
    return new OpenBaoClient(
      { address: this.address, token: this.#token, namespace },
      SHARED,
      this.#transport,
    );
  }

  /** A client that authenticates with `token`, sharing this client's connections and namespace. */
  withToken(token: string | OpenBaoTokenSource): OpenBaoClient {
    return new OpenBaoClient(
      { address: this.address, token, namespace: this.namespace },
      SHARED,
      this.#transport,
    );
  }

  /** Whether a token is configured (the token itself is never exposed). */
  get hasToken(): boolean {
    return this.#token !== undefined;
  }

  /** How long reads right after this connection's writes wait for a lagging HA standby. */
  get readAfterWriteTimeoutMs(): number {
    return this.#transport.ledger.boundMs;
  }

  /** Low-level call: maps errors to CT_ codes, retries what is safe to retry. */
  async request<T>(
    method: HttpMethod,
    path: string,
    options: RequestOptions = {},
  ): Promise<OpenBaoResponse<T>> {
    if (this.#transport.closed) {
      throw new CloudtaserError('CT_INTERNAL', 'OpenBao client used after close(); create a new client');
    }
    const observer = this.#transport.observer;
    const sendNamespace = options.sendNamespace !== false && this.namespace !== '';
    if (!observer) {
      if (sendNamespace) await this.#ensureNamespaceSupport();
      return this.#send<T>(method, path, options, sendNamespace);
    }
    const started = performance.now();
    try {
      if (sendNamespace) await this.#ensureNamespaceSupport();
      const response = await this.#send<T>(method, path, options, sendNamespace);
      observer({ method, outcome: 'ok', seconds: (performance.now() - started) / 1000 });
      return response;
    } catch (err) {
      const outcome = err instanceof CloudtaserError ? err.code : 'CT_INTERNAL';
      observer({ method, outcome, seconds: (performance.now() - started) / 1000 });
      throw err;
    }
  }

  /** Sends once more with a new token when a token source replaced the one OpenBao refused. */
  async #send<T>(
    method: HttpMethod,
    path: string,
    options: RequestOptions,
    sendNamespace: boolean,
  ): Promise<OpenBaoResponse<T>> {
    const caller = this.#caller();
    try {
      return await this.#transport.send<T>(caller, method, path, options, sendNamespace);
    } catch (err) {
      const source = this.#token;
      if (
        typeof source !== 'object' ||
        options.authenticated === false ||
        caller.token === undefined ||
        !isCloudtaserError(err, 'CT_OPENBAO_PERMISSION_DENIED') ||
        !(await source.refused(caller.token))
      ) {
        throw err;
      }
      return this.#transport.send<T>(this.#caller(), method, path, options, sendNamespace);
    }
  }

  #caller() {
    const token = typeof this.#token === 'object' ? this.#token.current() : this.#token;
    return { address: this.address, namespace: this.namespace, token };
  }

  #context(method: string, path: string): RequestContext {
    return { method, path, address: this.address, namespace: this.namespace };
  }

  /**
   * Refuses, before any namespaced request, a server that has no namespaces: such a server silently ignores
   * X-Vault-Namespace and would write into its root. Decided once per connection from sys/health's version.
   */
  async #ensureNamespaceSupport(): Promise<void> {
    const shared = this.#transport;
    shared.namespaceSupport ??= (async () => {
      let version: string;
      try {
        version = (await this.health()).version;
      } catch (err) {
        // A proxy that hides sys/health must not block real work: only network failures stop us here.
        const network = [
          'CT_OPENBAO_UNREACHABLE',
          'CT_OPENBAO_TIMEOUT',
          'CT_OPENBAO_TLS',
          'CT_PROXY_UNREACHABLE',
          'CT_PROXY_AUTH',
          'CT_PROXY_REFUSED',
        ];
        if (err instanceof CloudtaserError && network.includes(err.code)) throw err;
        return;
      }
      if (namespacesSupportedByVersion(version) === false) throw namespacesUnsupported(version);
    })();
    try {
      await shared.namespaceSupport;
    } catch (err) {
      // Only a definite "no" is cached; a network failure is tried again next time.
      if (!(err instanceof CloudtaserError && err.code === 'CT_OPENBAO_NAMESPACES_UNSUPPORTED')) {
        shared.namespaceSupport = undefined;
      }
      throw err;
    }
  }

  /** Requests to sys/namespaces, with "this server has no such API" turned into a clear error. */
  async #namespaceRequest<T>(method: HttpMethod, path: string, options: RequestOptions = {}) {
    await this.#ensureNamespaceSupport();
    try {
      return await this.request<T>(method, path, options);
    } catch (err) {
      if (
        err instanceof CloudtaserError &&
        (err.code === 'CT_OPENBAO_NOT_FOUND' || err.code === 'CT_OPENBAO_ERROR') &&
        [404, 405].includes(Number(err.details.status)) &&
        JSON.stringify(err.details.errors ?? []).includes('unsupported')
      ) {
        throw namespacesUnsupported(undefined, err);
      }
      throw err;
    }
  }

  // ---- namespaces (relative to this client's namespace) ----

  /**
   * Creates a direct child namespace with optional custom metadata; an existing one is returned unchanged
   * (its metadata is kept, because OpenBao's create would reset it).
   */
  async createNamespace(
    name: string,
    options: { customMetadata?: Record<string, string> } = {},
  ): Promise<NamespaceInfo> {
    assertSegment(name);
    const existing = await this.readNamespace(name);
    if (existing && !existing.tainted) return existing;
    if (existing?.tainted) {
      throw new CloudtaserError(
        'CT_OPENBAO_BAD_REQUEST',
        `OpenBao namespace "${existing.path}" is being deleted; wait until it is gone and retry`,
        { details: { path: `sys/namespaces/${name}`, address: this.address, namespace: this.namespace } },
      );
    }
    const response = await this.#namespaceRequest<{ data: RawNamespace }>('POST', `sys/namespaces/${name}`, {
      body: options.customMetadata ? { custom_metadata: options.customMetadata } : {},
    });
    this.#transport.ledger.namespaceCreated(this.#childPath(name));
    return toNamespaceInfo(response.body?.data);
  }

  #childPath(name: string): string {
    return this.namespace ? `${this.namespace}/${name}` : name;
  }

  /** Creates every missing namespace along `path` (e.g. `cloudtaser/0ad50c05`) below this client's namespace. */
  async ensureNamespacePath(path: string): Promise<void> {
    const segments = normaliseNamespace(path).split('/').filter(Boolean);
    let client: OpenBaoClient = this;
    for (const segment of segments) {
      await client.createNamespace(segment);
      client = client.withNamespace(client.namespace ? `${client.namespace}/${segment}` : segment);
    }
  }

  async readNamespace(name: string): Promise<NamespaceInfo | undefined> {
    assertSegment(name);
    const response = await this.#namespaceRequest<{ data: RawNamespace }>('GET', `sys/namespaces/${name}`, {
      allow404: true,
    });
    return response.status === 404 ? undefined : toNamespaceInfo(response.body?.data);
  }

  /** Direct children, names without the trailing '/'; [] when there are none. */
  async listNamespaces(): Promise<string[]> {
    const response = await this.#namespaceRequest<{ data: { keys?: string[] } }>('LIST', 'sys/namespaces', {
      allow404: true,
    });
    if (response.status === 404) return [];
    return (response.body?.data?.keys ?? []).map((key) => key.replace(/\/$/, ''));
  }

  /** Starts OpenBao's asynchronous delete; with `wait`, polls until the namespace is gone. Missing = ok. */
  async deleteNamespace(
    name: string,
    options: { wait?: boolean; waitTimeoutMs?: number } = {},
  ): Promise<void> {
    assertSegment(name);
    await this.#namespaceRequest('DELETE', `sys/namespaces/${name}`);
    this.#transport.ledger.namespaceDeleted(this.#childPath(name));
    if (!options.wait) return;
    const deadline = Date.now() + (options.waitTimeoutMs ?? 30_000);
    for (let delay = 20; ; delay = Math.min(delay * 2, 500)) {
      if ((await this.readNamespace(name)) === undefined) return;
      if (Date.now() > deadline) {
        throw new CloudtaserError(
          'CT_OPENBAO_TIMEOUT',
          `OpenBao namespace "${name}" under "${this.namespace || 'root'}" was still being deleted after ${options.waitTimeoutMs ?? 30_000} ms; check OpenBao's logs`,
          { details: { path: `sys/namespaces/${name}`, address: this.address, namespace: this.namespace } },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  // ---- mounts and auth methods ----

  /** Secret engine mounts keyed by path with trailing '/', e.g. `secret/`. */
  async listMounts(): Promise<Record<string, MountInfo>> {
    return this.#listMountTable('secret', 'sys/mounts');
  }

  /** A mount table, waiting (bounded) until it shows the mounts this connection made or saw in use. */
  async #listMountTable(kind: 'secret' | 'auth', path: string): Promise<Record<string, MountInfo>> {
    const read = async () =>
      (await this.request<{ data: Record<string, MountInfo> }>('GET', path)).body?.data ?? {};
    const expected = this.#transport.ledger.expectedMounts(this.namespace, kind);
    if (!expected) return read();
    const table = await this.#transport.readConsistent(
      `the ${kind === 'auth' ? 'auth methods' : 'mounts'} ${expected.paths.join(', ')}`,
      expected.deadline,
      this.#context('GET', path),
      read,
      (listed) => expected.paths.every((mount) => listed[mount] !== undefined),
    );
    this.#transport.ledger.mountsSeen(this.namespace, kind);
    return table;
  }

  /**
   * Mounts KV v2 at `path`; an existing KV v2 mount there is fine, anything else there is an error.
   * Resolves true when this call created the mount.
   */
  async enableKvV2(path: string, listed?: Record<string, MountInfo>): Promise<boolean> {
    const key = `${trimSlashes(path)}/`;
    const check = (mount: MountInfo | undefined): boolean => {
      if (!mount) return false;
      if (mount.type === 'kv' && String(mount.options?.version) === '2') return true;
      throw new CloudtaserError(
        'CT_OPENBAO_BAD_REQUEST',
        `OpenBao already has a ${mount.type}${mount.options?.version ? ` v${mount.options.version}` : ''} mount at ${key} in namespace "${this.namespace || 'root'}"; KV v2 is needed there`,
        { details: { path: `sys/mounts/${key}`, address: this.address, namespace: this.namespace } },
      );
    };
    // `listed`: a table the caller just read for several mounts (one request instead of one per mount).
    if (check((listed ?? (await this.listMounts()))[key])) return false;
    try {
      await this.request('POST', `sys/mounts/${trimSlashes(path)}`, {
        body: { type: 'kv', options: { version: '2' } },
      });
      this.#transport.ledger.mounted(this.namespace, 'secret', key);
      return true;
    } catch (err) {
      // Lost a race with another writer: accept it if what is there now is KV v2 (once a standby shows it).
      if (!isAlreadyInUse(err)) throw err;
      this.#transport.ledger.mounted(this.namespace, 'secret', key);
      if (check((await this.listMounts())[key])) return false;
      throw err;
    }
  }

  async listAuthMounts(): Promise<Record<string, MountInfo>> {
    return this.#listMountTable('auth', 'sys/auth');
  }

  /** Enables an auth method at `path`; the same type already there is fine. Resolves true when created. */
  async enableAuth(path: string, type: string): Promise<boolean> {
    const key = `${trimSlashes(path)}/`;
    const check = (mount: MountInfo | undefined): boolean => {
      if (!mount) return false;
      if (mount.type === type) return true;
      throw new CloudtaserError(
        'CT_OPENBAO_BAD_REQUEST',
        `OpenBao already has a ${mount.type} auth method at auth/${key} in namespace "${this.namespace || 'root'}"; ${type} is needed there`,
        { details: { path: `sys/auth/${key}`, address: this.address, namespace: this.namespace } },
      );
    };
    if (check((await this.listAuthMounts())[key])) return false;
    try {
      await this.request('POST', `sys/auth/${trimSlashes(path)}`, { body: { type } });
      this.#transport.ledger.mounted(this.namespace, 'auth', key);
      return true;
    } catch (err) {
      if (!isAlreadyInUse(err)) throw err;
      this.#transport.ledger.mounted(this.namespace, 'auth', key);
      if (check((await this.listAuthMounts())[key])) return false;
      throw err;
    }
  }

  // ---- KV v2 (kv.ts) ----

  /**
   * The secret's data, or undefined when missing, deleted or destroyed; right after this connection wrote it,
   * waits (bounded) for a lagging standby. `changedByOthers`: see kv.ts.
   */
  kvRead(
    mount: string,
    path: string,
    options: { version?: number; changedByOthers?: boolean } = {},
  ): Promise<KvSecret | undefined> {
    return kv.kvRead(this.#kvHost(), mount, path, options);
  }

  /** Writes a new version. With `cas`, only if the current version equals it (0 = never written); else CT_OPENBAO_CAS_MISMATCH. */
  kvWrite(
    mount: string,
    path: string,
    data: Record<string, unknown>,
    options: { cas?: number } = {},
  ): Promise<{ version: number; createdTime?: string }> {
    return kv.kvWrite(this.#kvHost(), mount, path, data, options);
  }

  /** Keys directly under `prefix` (folders end in '/'); [] when there are none. */
  kvList(mount: string, prefix: string): Promise<string[]> {
    return kv.kvList(this.#kvHost(), mount, prefix);
  }

  kvReadMetadata(mount: string, path: string): Promise<KvMetadata | undefined> {
    return kv.kvReadMetadata(this.#kvHost(), mount, path);
  }

  /** Sets a key's custom metadata (the whole map: pass every key to keep). */
  kvWriteMetadata(
    mount: string,
    path: string,
    options: { customMetadata: Record<string, string> },
  ): Promise<void> {
    return kv.kvWriteMetadata(this.#kvHost(), mount, path, options);
  }

  /** Removes every version and the metadata (afterwards cas=0 works again). Missing = ok. */
  kvDeleteMetadata(mount: string, path: string): Promise<void> {
    return kv.kvDeleteMetadata(this.#kvHost(), mount, path);
  }

  /** Soft-deletes the latest version (recoverable with undelete). Missing = ok. */
  kvDelete(mount: string, path: string): Promise<void> {
    return kv.kvDelete(this.#kvHost(), mount, path);
  }

  #kvHost(): kv.KvHost {
    const transport = this.#transport;
    return {
      namespace: this.namespace,
      request: (method, path, options) => this.request(method, path, options),
      ledger: transport.ledger,
      readConsistent: transport.readConsistent.bind(transport),
      context: (method, path) => this.#context(method, path),
    };
  }

  // ---- tokens, policies, Kubernetes auth, AppRole (auth.ts) ----

  lookupSelf(): Promise<TokenInfo> {
    return auth.lookupSelf(this);
  }

  /** Creates a child token in this client's namespace. */
  createToken(options: Parameters<typeof auth.createToken>[1]): Promise<AuthResult> {
    return auth.createToken(this, options);
  }

  /** The token's capabilities on each path (relative to this client's namespace): sys/capabilities-self. */
  capabilitiesSelf(paths: readonly string[]): Promise<Record<string, string[]>> {
    return auth.capabilitiesSelf(this, paths);
  }

  revokeSelf(): Promise<void> {
    return auth.revokeSelf(this);
  }

  writePolicy(name: string, hcl: string): Promise<void> {
    return auth.writePolicy(this, name, hcl);
  }

  readPolicy(name: string): Promise<string | undefined> {
    return auth.readPolicy(this, name);
  }

  deletePolicy(name: string): Promise<void> {
    return auth.deletePolicy(this, name);
  }

  writeKubernetesAuthConfig(mount: string, config: KubernetesAuthConfig): Promise<void> {
    return auth.writeKubernetesAuthConfig(this, mount, config);
  }

  writeKubernetesAuthRole(mount: string, role: string, options: KubernetesAuthRole): Promise<void> {
    return auth.writeKubernetesAuthRole(this, mount, role, options);
  }

  /** Logs a pod in with its service-account JWT (sent to this client's namespace, without a token). */
  kubernetesLogin(mount: string, role: string, jwt: string): Promise<AuthResult> {
    return auth.kubernetesLogin(this, mount, role, jwt);
  }

  writeAppRole(mount: string, role: string, options: AppRoleRole): Promise<void> {
    return auth.writeAppRole(this, mount, role, options);
  }

  readAppRoleId(mount: string, role: string): Promise<string> {
    return auth.readAppRoleId(this, mount, role);
  }

  /** A fresh secret ID: a credential; never log it. */
  createAppRoleSecretId(mount: string, role: string): Promise<string> {
    return auth.createAppRoleSecretId(this, mount, role);
  }

  appRoleLogin(mount: string, roleId: string, secretId: string): Promise<AuthResult> {
    return auth.appRoleLogin(this, mount, roleId, secretId);
  }

  // ---- health ----

  /** sys/health, never with the namespace header (OpenBao refuses it there) and without a token. */
  async health(): Promise<HealthInfo> {
    const response = await this.#transport.send<Record<string, unknown>>(
      this.#caller(),
      'GET',
      'sys/health',
      { authenticated: false, acceptStatuses: [429, 472, 473, 501, 503] },
      false,
    );
    const body = response.body ?? {};
    return {
      initialized: body.initialized === true,
      sealed: body.sealed === true,
      standby: body.standby === true,
      version: String(body.version ?? ''),
      status: response.status,
    };
  }

  /** Closes the shared connection pool: derived clients (withNamespace/withToken) stop working too. */
  close(): Promise<void> {
    return this.#transport.close();
  }
}

function isAlreadyInUse(err: unknown): boolean {
  return (
    err instanceof CloudtaserError &&
    err.code === 'CT_OPENBAO_BAD_REQUEST' &&
    /already in use/.test(err.message)
  );
}

function namespacesUnsupported(version: string | undefined, cause?: unknown): CloudtaserError {
  return new CloudtaserError(
    'CT_OPENBAO_NAMESPACES_UNSUPPORTED',
    `namespaces need OpenBao >= 2.3 (found ${version || 'a server without the sys/namespaces API'}); upgrade OpenBao`,
    { cause, details: { version } },
  );
}

/**
 * OpenBao tokens are printable ASCII without spaces. One with a line break or a non-ASCII character (a token file
 * pasted with its prompt, a copy from a rich-text page) cannot go into a header at all; said here, before any
 * request, instead of surfacing as "address could not be reached". The token itself is never repeated.
 */
function checkTokenCharacters(token: string): void {
  const bad = /[^\x21-\x7e]/.exec(token);
  if (!bad) return;
  const what =
    bad[0] === '\n' || bad[0] === '\r'
      ? 'a line break'
      : /\s/.test(bad[0])
        ? 'a space'
        : 'a non-ASCII or control character';
  throw new CloudtaserError(
    'CT_INVALID_ARGUMENT',
    `the OpenBao token has ${what} at position ${bad.index + 1}, which no token has; check where it is set (--secretstore-token, CLOUDTASER_SECRETSTORE_TOKEN, BAO_TOKEN or VAULT_TOKEN, or the provider's secretstore_token)`,
  );
}
