/**
 * How the OpenBao client reaches OpenBao: one undici connection pool (direct or through an HTTP proxy), redirects
 * from standbys, timeouts, retries with backoff for what is safe to retry, waits for a lagging HA standby, and
 * the mapping of every failure to a CT_OPENBAO_* code. The API calls (client.ts) know none of this.
 */
import type { Dispatcher } from 'undici';
import {
  backoffDelay,
  CloudtaserError,
  isCloudtaserError,
  type Logger,
  silentLogger,
} from '../core/index.js';
import { createHttpDispatcher, type ProxyEndpoint, type ProxySetting } from '../proxy/index.js';
import { WriteLedger } from './consistency.js';
import {
  isConnectionReset,
  isSealedOrStandby,
  isUnreachableCode,
  mapHttpError,
  mapNetworkError,
  type RequestContext,
  readLagError,
  timeoutError,
} from './errors.js';
import { requestFollowingRedirects } from './redirect.js';

/** One decided OpenBao request: `outcome` is `ok` or the CT_ code it failed with. Never the path or the token. */
export interface OpenBaoRequestEvent {
  readonly method: HttpMethod;
  readonly outcome: string;
  readonly seconds: number;
}

export type OpenBaoRequestObserver = (event: OpenBaoRequestEvent) => void;

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH' | 'LIST';

export interface RequestOptions {
  readonly body?: unknown;
  readonly query?: Record<string, string | number | boolean | undefined>;
  /** Return `{ status: 404 }` instead of throwing CT_OPENBAO_NOT_FOUND. */
  readonly allow404?: boolean;
  /** false = send no token (login paths, sys/health). @default true */
  readonly authenticated?: boolean;
  /** false = never send X-Vault-Namespace (sys/health rejects it). @default true */
  readonly sendNamespace?: boolean;
  /** Accept these statuses as answers with a body instead of errors (sys/health's 429/503/501...). */
  readonly acceptStatuses?: readonly number[];
}

export interface OpenBaoResponse<T> {
  readonly status: number;
  readonly body?: T;
}

/** Who sends a request: the address named in messages, the namespace, the token (never logged). */
export interface OpenBaoCaller {
  readonly address: string;
  readonly namespace: string;
  readonly token: string | undefined;
}

/** How requests travel: the client's options other than where and as whom (client.ts). */
export interface OpenBaoTransportOptions {
  /** PEM of the CA that signed OpenBao's certificate; replaces the system roots for this client. */
  readonly caCertPem?: string;
  /** Per request, including retries' individual attempts. @default 10_000 */
  readonly timeoutMs?: number;
  /** How the caller's user raises `timeoutMs` (a flag, an attribute), named in CT_OPENBAO_TIMEOUT. @default - none */
  readonly timeoutHint?: string;
  /** Retries on 5xx, sealed, standby and connection resets only; never on other 4xx. @default 3 */
  readonly retries?: number;
  /** First backoff step; doubles per attempt with full jitter, capped at 2 s. @default 200 */
  readonly retryBaseDelayMs?: number;
  /** Largest response body read. @default 32 MiB */
  readonly maxResponseBytes?: number;
  /**
   * How to reach OpenBao: as HTTPS_PROXY / HTTP_PROXY / NO_PROXY say (runtime/proxy/settings.ts has the rule),
   * through one proxy, or directly. @default the environment
   */
  readonly proxy?: ProxySetting;
  /**
   * How long after its own write this client waits for an HA standby to show it (a namespace it created, a KV
   * version it wrote) before it reports `CT_OPENBAO_READ_LAG`. @default 10_000
   */
  readonly readAfterWriteTimeoutMs?: number;
  readonly logger?: Logger;
  /**
   * Told about every request once it is decided (after its retries), for metrics; shared with derived clients.
   * @default none
   */
  readonly observer?: OpenBaoRequestObserver;
}

const MAX_BACKOFF_MS = 2_000;
/** A rate-limit quota counts per interval (1 s by default): the first retry waits at least half a second. */
const RATE_LIMIT_FIRST_CEILING_MS = 1_000;
const RATE_LIMIT_MAX_DELAY_MS = 30_000;
/** KV v2 asks clients to retry this 400 right after mounting (the one-time upgrade gate). */
const KV_UPGRADE_TEXT = 'Upgrading from non-versioned to versioned data';

/** One connection pool and one namespace-support verdict, shared by a client and everything derived from it. */
export class OpenBaoTransport {
  readonly origin: string;
  readonly basePath: string;
  readonly agent: Dispatcher;
  /** The HTTP proxy requests go through (undici's ProxyAgent), for messages; undefined when direct. */
  readonly proxy?: ProxyEndpoint;
  readonly logger: Logger;
  readonly timeoutMs: number;
  readonly timeoutHint?: string;
  readonly retries: number;
  readonly retryBaseDelayMs: number;
  readonly maxResponseBytes: number;
  /** What this connection wrote lately, so reads right after can wait out a lagging HA standby. */
  readonly ledger: WriteLedger;
  readonly observer?: OpenBaoRequestObserver;
  /** Whether the server has namespaces, decided once per connection (client.ts). */
  namespaceSupport?: Promise<void>;
  closed = false;
  #closing: Promise<void> | undefined;

  constructor(url: URL, options: OpenBaoTransportOptions) {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const { dispatcher, route } = createHttpDispatcher({
      origin: url.origin,
      caCertPem: options.caCertPem,
      connectTimeoutMs: timeoutMs,
      keepAliveTimeoutMs: 10_000,
      proxy: options.proxy,
    });
    this.origin = url.origin;
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.agent = dispatcher;
    this.proxy = route.proxy;
    this.logger = options.logger ?? silentLogger;
    this.timeoutMs = timeoutMs;
    this.timeoutHint = options.timeoutHint;
    this.retries = options.retries ?? 3;
    this.retryBaseDelayMs = options.retryBaseDelayMs ?? 200;
    this.maxResponseBytes = options.maxResponseBytes ?? 32 * 1024 * 1024;
    this.ledger = new WriteLedger(options.readAfterWriteTimeoutMs ?? 10_000);
    this.observer = options.observer;
  }

  /**
   * One API call as `caller` (its address for messages, namespace and token): retries what is safe to retry
   * (connection resets, 5xx, sealed or standby, rate limits, the KV upgrade gate), waits out a namespace this
   * connection created that a standby does not show yet, and maps every failure to a CT_OPENBAO_* error.
   */
  async send<T>(
    caller: OpenBaoCaller,
    method: HttpMethod,
    path: string,
    options: RequestOptions,
    sendNamespace: boolean,
  ): Promise<OpenBaoResponse<T>> {
    const cleanPath = path.replace(/^\/+/, '');
    const ctx: RequestContext = {
      method,
      path: cleanPath,
      address: caller.address,
      namespace: sendNamespace ? caller.namespace : '',
      proxy: this.proxy,
    };
    const query = new URLSearchParams();
    let wireMethod: string = method;
    if (method === 'LIST') {
      // The custom LIST verb trips some proxies; OpenBao treats GET ?list=true the same.
      wireMethod = 'GET';
      query.set('list', 'true');
    }
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) query.set(key, String(value));
    }
    const search = query.size > 0 ? `?${query.toString()}` : '';
    const requestUrl = new URL(`${this.origin}${this.basePath}/v1/${encodePath(cleanPath)}${search}`);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (options.authenticated !== false && caller.token) headers['x-vault-token'] = caller.token;
    if (sendNamespace) headers['x-vault-namespace'] = caller.namespace;
    let body: string | undefined;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] = method === 'PATCH' ? 'application/merge-patch+json' : 'application/json';
    }

    /** Set while a `namespace not found` is waited out as HA lag after this connection created the namespace. */
    let lagWait: { deadline: number; since: number; delayMs: number } | undefined;
    for (let attempt = 0; ; attempt++) {
      let outcome:
        | { status: number; text: string; headers: Record<string, string | string[] | undefined> }
        | { error: unknown; timedOut: boolean };
      const controller = new AbortController();
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, this.timeoutMs);
      try {
        const response = await requestFollowingRedirects(
          this.agent,
          {
            url: requestUrl,
            method: wireMethod as Dispatcher.HttpMethod,
            headers,
            body,
            signal: controller.signal,
            timeoutMs: this.timeoutMs,
          },
          {
            onRedirect: (from, to) =>
              this.logger.info(
                { event: 'openbao.redirected', path: cleanPath, from: from.origin, to: to.origin },
                'OpenBao standby redirected the request to the active node',
              ),
          },
        );
        const text = await readLimited(response.body, this.maxResponseBytes);
        outcome =
          text === undefined
            ? { error: 'too-large', timedOut: false }
            : { status: response.statusCode, text, headers: response.headers };
      } catch (err) {
        if (isCloudtaserError(err, 'CT_OPENBAO_REDIRECT')) {
          err.details.path = cleanPath;
          err.details.namespace = ctx.namespace;
          throw err;
        }
        outcome = { error: err, timedOut };
      } finally {
        clearTimeout(timer);
      }

      if ('error' in outcome) {
        if (outcome.error === 'too-large') {
          throw new CloudtaserError(
            'CT_OPENBAO_BAD_RESPONSE',
            `OpenBao's answer to ${method} ${cleanPath} exceeded ${this.maxResponseBytes} bytes; check the address points at OpenBao`,
            { details: { ...ctx, status: undefined } },
          );
        }
        const code = (outcome.error as { code?: string })?.code;
        if (outcome.timedOut || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
          throw timeoutError(ctx, this.timeoutMs, this.timeoutHint);
        }
        const mapped = mapNetworkError(outcome.error, ctx);
        if (isConnectionReset(outcome.error) && attempt < this.retries) {
          await this.#backoff(attempt, ctx, 'connection_reset');
          continue;
        }
        if (!isUnreachableCode(outcome.error) && mapped.code === 'CT_OPENBAO_UNREACHABLE') {
          this.logger.debug(
            { event: 'openbao.request_failed', path: cleanPath },
            'unclassified network error',
          );
        }
        throw mapped;
      }

      const { status, text } = outcome;
      let parsed: unknown;
      if (text.trim() !== '') {
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = undefined;
          if (status >= 200 && status < 300) {
            throw new CloudtaserError(
              'CT_OPENBAO_BAD_RESPONSE',
              `OpenBao answered ${method} ${cleanPath} with a body that is not JSON; check the address points at OpenBao`,
              { details: { ...ctx, status } },
            );
          }
        }
      }
      if ((status >= 200 && status < 300) || options.acceptStatuses?.includes(status)) {
        if (sendNamespace) this.ledger.namespaceSeen(caller.namespace);
        return { status, body: parsed as T };
      }
      const errors = scrub(extractErrors(parsed), caller.token);
      const namespaceMissing = status === 404 && errors.some((e) => e.includes('namespace not found'));
      if (sendNamespace && !namespaceMissing) this.ledger.namespaceSeen(caller.namespace);
      if (namespaceMissing && sendNamespace) {
        // A namespace this connection created may not have reached the standby that answered yet.
        lagWait ??= startLagWait(this.ledger.createdNamespaceDeadline(caller.namespace));
        if (lagWait) {
          attempt--;
          await this.#waitOutLag(lagWait, `namespace "${caller.namespace}"`, ctx);
          continue;
        }
      }
      if (status === 404 && options.allow404 && !namespaceMissing) {
        // "Not there" only from OpenBao itself: its 404s are JSON (`{"errors":[]}`, or a KV version's `data`).
        // Any other server's 404 page (a wrong address, a proxy's catch-all) read as absent would make a refresh
        // drop resources from Terraform state and a plan create them again.
        if (!isOpenBaoNotFound(parsed))
          throw new CloudtaserError(
            'CT_OPENBAO_BAD_RESPONSE',
            `the server at ${caller.address} answered ${method} ${cleanPath} with 404 but not with OpenBao's JSON; check the address points at OpenBao (not another server, or a proxy's page)`,
            { details: { ...ctx, status } },
          );
        return { status, body: parsed as T };
      }
      if (status === 429 && attempt < this.retries) {
        await this.#rateLimitBackoff(attempt, ctx, outcome.headers['retry-after'], errors);
        continue;
      }
      const retryable =
        status >= 500 ||
        isSealedOrStandby(status, errors) ||
        (status === 400 && errors.some((e) => e.includes(KV_UPGRADE_TEXT)));
      if (retryable && attempt < this.retries) {
        await this.#backoff(attempt, { ...ctx }, `status_${status}`);
        continue;
      }
      throw mapHttpError(status, errors, ctx, attempt);
    }
  }

  /**
   * Repeats `read` until it is `consistent` with what this connection wrote, or `deadline` passes
   * (`CT_OPENBAO_READ_LAG`). For reads right after an own write through an address that may be a lagging standby.
   */
  async readConsistent<V>(
    what: string,
    deadline: number,
    ctx: RequestContext,
    read: () => Promise<V>,
    consistent: (value: V) => boolean,
  ): Promise<V> {
    const wait = { deadline, since: Date.now(), delayMs: 25 };
    for (;;) {
      const value = await read();
      if (consistent(value)) return value;
      await this.#waitOutLag(wait, what, ctx);
    }
  }

  /**
   * Waits after a 429 from a rate-limit quota: `Retry-After` when OpenBao sends it (quotas with response
   * headers), else a backoff whose first step is at least half the default quota interval, so a retry does not
   * land in the same window.
   */
  async #rateLimitBackoff(
    attempt: number,
    ctx: RequestContext,
    retryAfter: string | string[] | undefined,
    errors: readonly string[],
  ): Promise<void> {
    const seconds = Number(Array.isArray(retryAfter) ? retryAfter[0] : retryAfter);
    const ceiling = Math.min(RATE_LIMIT_MAX_DELAY_MS, RATE_LIMIT_FIRST_CEILING_MS * 2 ** attempt);
    const delay =
      Number.isFinite(seconds) && seconds >= 0
        ? Math.min(RATE_LIMIT_MAX_DELAY_MS, seconds * 1000)
        : Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this.logger.warn(
      {
        event: 'openbao.rate_limited',
        path: ctx.path,
        namespace: ctx.namespace,
        attempt: attempt + 1,
        delayMs: delay,
        retryAfter: Number.isFinite(seconds) ? seconds : undefined,
        reason: errors[0]?.slice(0, 200),
      },
      'OpenBao rate-limit quota refused the request; retrying after a pause',
    );
    await new Promise((resolve) => setTimeout(resolve, delay));
  }

  /** One pause while an HA standby catches up with a write of this connection; past the bound, the clear error. */
  async #waitOutLag(
    wait: { deadline: number; since: number; delayMs: number },
    what: string,
    ctx: RequestContext,
  ): Promise<void> {
    const left = wait.deadline - Date.now();
    if (left <= 0) throw readLagError(what, Date.now() - wait.since, this.ledger.boundMs, ctx);
    if (wait.delayMs === 25)
      this.logger.warn(
        { event: 'openbao.read_lag', path: ctx.path, namespace: ctx.namespace, waitUpToMs: left },
        'OpenBao does not show a write of this process yet (HA standby lag); waiting for it',
      );
    await new Promise((resolve) => setTimeout(resolve, Math.min(wait.delayMs, left)));
    wait.delayMs = Math.min(wait.delayMs * 2, 500);
  }

  async #backoff(attempt: number, ctx: RequestContext, reason: string): Promise<void> {
    const delay = backoffDelay(attempt, { initialMs: this.retryBaseDelayMs, maxMs: MAX_BACKOFF_MS });
    this.logger.warn(
      {
        event: 'openbao.retry',
        path: ctx.path,
        namespace: ctx.namespace,
        attempt: attempt + 1,
        reason,
        delayMs: delay,
      },
      'retrying OpenBao request',
    );
    await new Promise((resolve) => setTimeout(resolve, delay));
  }

  /** Closes the pool; every client sharing it stops working. Every call returns the first call's promise. */
  close(): Promise<void> {
    this.closed = true;
    this.#closing ??= this.agent.close();
    return this.#closing;
  }
}

function startLagWait(
  deadline: number | undefined,
): { deadline: number; since: number; delayMs: number } | undefined {
  return deadline === undefined ? undefined : { deadline, since: Date.now(), delayMs: 25 };
}

/** Removes the caller's token from server texts, in case a proxy echoes request headers. */
function scrub(errors: string[], token: string | undefined): string[] {
  return token ? errors.map((e) => e.split(token).join('[redacted]')) : errors;
}

/** Encodes an API path segment by segment; refuses `.`/`..` and control characters so a name cannot climb. */
function encodePath(path: string): string {
  const clean = path.replace(/^\/+/, '');
  const segments = clean.split('/');
  for (const segment of segments) {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we refuse
    if (segment === '.' || segment === '..' || /[\u0000-\u001f\u007f]/.test(segment)) {
      throw new CloudtaserError(
        'CT_INVALID_ARGUMENT',
        `OpenBao path ${JSON.stringify(path.slice(0, 200))} contains '.', '..' or control characters; use plain names`,
      );
    }
  }
  return segments.map(encodeURIComponent).join('/');
}

function extractErrors(body: unknown): string[] {
  const errors = (body as { errors?: unknown })?.errors;
  return Array.isArray(errors) ? errors.map(String) : [];
}

async function readLimited(
  body: AsyncIterable<Buffer | Uint8Array>,
  limit: number,
): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > limit) {
      (body as { destroy?: () => void }).destroy?.();
      return undefined;
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A 404 body as OpenBao writes one: a JSON object with an `errors` array or a `data` member. */
function isOpenBaoNotFound(body: unknown): boolean {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return false;
  const record = body as Record<string, unknown>;
  return Array.isArray(record.errors) || 'data' in record;
}
