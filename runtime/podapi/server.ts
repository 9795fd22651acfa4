/**
 * The broker's pod API: speaks OpenBao's HTTP API to pods for the allow-list in allowlist.ts and carries each
 * request through the tunnel to the bridge, which adds the cluster namespace and forwards it to OpenBao. So an
 * app with VAULT_ADDR, Vault Agent, External Secrets or bank-vaults works unchanged against it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { acceptCustomVerbs } from '../core/custom-verbs.js';
import { CloudtaserError, isCloudtaserError } from '../core/errors.js';
import { linkSignal } from '../core/linked-signal.js';
import { createHttpOrHttpsServer, listenHttp } from '../core/listen.js';
import { type Logger, moduleLogger } from '../core/log.js';
import { createLogSummarizer } from '../core/log-summary.js';
import { MAX_PATH_CHARS } from '../tunnel/heads.js';
import type { RequestHead, TunnelHeaders, TunnelMux, TunnelResponse } from '../tunnel/index.js';
import { AddressCounts } from './address-counts.js';
import {
  type AllowedPodRequest,
  checkConsistencyHeaders,
  checkPodHeaders,
  checkPodRequest,
  checkWrapping,
  isRefusal,
  openBaoErrorBody,
  PASSED_RESPONSE_HEADERS,
  type PodApiRefusal,
  type PodApiRoute,
} from './allowlist.js';
import { DEFAULT_POD_API_LIMITS, POD_API_LIMIT_KINDS, type PodApiLimitKind } from './defaults.js';
import { createRequestGate } from './gate.js';
import {
  leaderAnswer,
  reportedVersion,
  unavailableHealthAnswer,
  unavailableSealStatusAnswer,
} from './health.js';
import { OPENBAO_TUNNEL_PREFIX, POD_ADDRESS_HEADER } from './protocol.js';

export interface PodApiLimits {
  /** Largest request body a pod may send. @default 512 KiB (below the tunnel's 1 MiB) */
  readonly maxBodyBytes: number;
  /**
   * How long sys/health waits for OpenBao's answer through the tunnel before it answers as a sealed server (probes
   * time out after 1 s by default; upstream answers from its own state). @default 2000
   */
  readonly healthAnswerMs: number;
  /** Requests in flight on the tunnel at once; the mux allows 32 per direction. @default 24 */
  readonly maxInFlight: number;
  /** Requests waiting for a slot; beyond that pods get 503 and retry. @default 2000 */
  readonly maxWaiting: number;
  /** Bound for one request through the tunnel. @default 30000 */
  readonly timeoutMs: number;
  /**
   * How long a request waits for a tunnel while the broker reconnects (a bridge or beacon replica restarting)
   * before it is answered 503. @default 5000
   */
  readonly tunnelWaitMs: number;
  /**
   * Request body bytes held at once over all connections (read, waiting for a tunnel slot, or in flight); beyond
   * it a request with a body gets 503 and its connection is closed. Without it, pods holding half-sent or
   * pipelined bodies could push the broker past its memory limit. @default 32 MiB
   */
  readonly maxBufferedBodyBytes: number;
  /**
   * The share of maxBufferedBodyBytes one pod address may hold: one pod stalling bodies cannot spend the budget
   * that every other pod's logins and writes need. @default 4 MiB (eight bodies of the largest size)
   */
  readonly maxBufferedBodyBytesPerAddress: number;
  /**
   * How long a request body may take to arrive once its headers did; then 408 and the connection is closed, so a
   * body that stops arriving holds its share of the budget for seconds, not for the whole request timeout.
   * @default 10000
   */
  readonly bodyTimeoutMs: number;
  /**
   * Connections open at once; beyond it new ones are closed before TLS. Each idle TLS connection costs the
   * broker about 35 KiB, so the default stays well inside the chart's memory limit. @default 2048
   */
  readonly maxConnections: number;
  /** Connections one pod address may hold open at once; beyond it its new ones are closed. @default 128 */
  readonly maxConnectionsPerAddress: number;
  /**
   * Requests one pod address may have in the broker at once (in flight and waiting for a tunnel slot, pipelined
   * ones included); beyond it they are answered 503 at once, so one pod cannot fill the queue every pod shares
   * (waiters take turns by pod address besides, gate.ts). @default 256
   */
  readonly maxRequestsPerAddress: number;
}

export { DEFAULT_POD_API_LIMITS, POD_API_LIMIT_KINDS, type PodApiLimitKind };

export interface PodApiServerOptions {
  readonly host?: string;
  readonly port: number;
  /** Serving certificate (issued by the cluster CA at bootstrap); `false` serves plain HTTP (tests only). */
  readonly tls: { readonly certPem: string; readonly keyPem: string } | false;
  /**
   * The cluster namespace's name under the namespace root (the fingerprint's first 8 characters): a pod may name
   * its namespace as `<root>/<it>` in X-Vault-Namespace. Unknown: only `root` (or no header) names it.
   */
  readonly clusterNamespaceName?: string;
  /** The live tunnel, if any. */
  readonly tunnel: () => TunnelMux | undefined;
  /**
   * Why this broker holds no tunnel and gets none until someone acts (its bootstrap was refused, another broker
   * replaced it), or undefined. Pods are then answered 503 with that code at once, not "not connected yet,
   * retry in a few seconds" after waiting for a tunnel that does not come (an outside SRE drill).
   */
  readonly refusal?: () => { readonly code: string; readonly reason: string } | undefined;
  /**
   * Why the tunnel is down when it may come back by itself (a broker another one replaced, dialing again on its
   * schedule), or undefined: said to pods once the wait for a tunnel ends, instead of "not connected yet; retry in a
   * few seconds" (a second outside drill read that for over a minute after a replacement).
   */
  readonly noTunnelReason?: () => { readonly code: string; readonly reason: string } | undefined;
  /**
   * The next live tunnel other than `previous`; undefined once `signal` aborts. Without it a request that finds
   * no tunnel is answered 503 at once.
   */
  readonly nextTunnel?: (
    previous: TunnelMux | undefined,
    signal: AbortSignal,
  ) => Promise<TunnelMux | undefined>;
  /**
   * TokenReviews the broker could not do (its API server failed, or refused the broker itself) and the last code;
   * `asked`: every TokenReview and namespace read OpenBao's Kubernetes auth asked the broker for. OpenBao answers
   * a TokenReview that failed, or never reached the broker, as a 403 `permission denied`, exactly what a pod not
   * bound to its role gets: a login refused while `count` moved, or while nothing was `asked`, is told the real
   * cause instead. (OpenBao checks the role's bound names and namespaces first and refuses those with their own
   * text; a bare `permission denied` is its answer to a review that failed. runtime/dev/openbao/auth-kubernetes.ts
   * follows the upstream order.)
   */
  readonly tokenReviewFailures?: () => {
    readonly count: number;
    readonly code?: string;
    readonly asked?: number;
  };
  readonly limits?: Partial<PodApiLimits>;
  /** Told every answered request: allow-list route (`refused` when off it), status and seconds. @default none */
  readonly observe?: (route: string, status: number, seconds: number) => void;
  /**
   * Told every time a bound refuses a pod (`PodApiLimitKind`), also the times the log folds into its summary and
   * the connections closed before any request, which `observe` never sees. @default none
   */
  readonly onLimit?: (limit: PodApiLimitKind) => void;
  readonly logger?: Logger;
}

export interface PodApiServer {
  /** `https://host:port` as bound (tests); pods use the Service name in the certificate. */
  readonly url: string;
  readonly port: number;
  /** No new connection; requests in flight get `graceMs` to be answered, through the tunnel still up. */
  close(graceMs?: number): Promise<void>;
  /** Serves new connections with this certificate (a renewal); connections already open keep theirs. */
  setCertificate(tls: { readonly certPem: string; readonly keyPem: string }): void;
}

const NOT_CONNECTED =
  'the secret-store bridge is not connected yet (cloudtaser broker tunnel down); retry in a few seconds';

/** The refusal that keeps this broker without a tunnel, as a pod reads it (see PodApiServerOptions.refusal). */
function refusedBroker(refusal: { readonly code: string; readonly reason: string }): CloudtaserError {
  return new CloudtaserError(
    'CT_TUNNEL_CLOSED',
    `${refusal.code}: this cluster's cloudtaser broker serves no secrets: ${refusal.reason}`,
    { details: { refusal: refusal.code } },
  );
}

/** The error line a pod gets for a request the tunnel could not carry. */
function tunnelFailureLine(err: unknown, code: string): string {
  if (isCloudtaserError(err) && typeof err.details.refusal === 'string') return err.message;
  return code === 'CT_TUNNEL_CLOSED' ? `${code}: ${NOT_CONNECTED}` : `${code}: retry shortly`;
}

/**
 * A login OpenBao refused while the broker's TokenReview failed. The pod was not judged: an API server that did
 * not answer is worth a retry (503, which the injected init container and agents retry); a broker without the
 * right to review tokens is a setup error (403, with the fix).
 */
function reviewFailureAnswer(code: string | undefined): { status: number; errors: string[] } {
  if (code === 'CT_KUBE_FORBIDDEN')
    return {
      status: 403,
      errors: [
        'permission denied',
        "CT_KUBE_FORBIDDEN: the cloudtaser broker may not create TokenReviews, so no pod can log in; bind its service account to system:auth-delegator (the chart's ClusterRoleBinding)",
      ],
    };
  const failure =
    code === undefined || code === 'CT_KUBE_UNREACHABLE'
      ? "CT_KUBE_UNREACHABLE: the cluster's API server did not answer the TokenReview for this login"
      : `${code}: the TokenReview for this login failed in the cluster`;
  return {
    status: 503,
    errors: ['permission denied', `${failure}, so the pod was not judged; retry shortly`],
  };
}

/** A login OpenBao refused while no TokenReview for it reached the broker (see tokenReviewFailures). */
const UNREVIEWED_LOGIN =
  "CT_TOKENREVIEW_UNAVAILABLE: OpenBao refused this login without its TokenReview reaching this cluster's broker, so the pod was not judged: the bridge replica OpenBao asked may hold no tunnel to this cluster (give every replica --tokenreview-peers, as the bridge chart does), or OpenBao cannot reach the bridge's TokenReview endpoint; run cloudtaser-cli source doctor";

/** OpenBao's answer to a failed TokenReview: `{"errors":["permission denied"]}`, nothing more. */
function isBarePermissionDenied(body: Buffer): boolean {
  if (body.length > 256) return false;
  try {
    const errors = (JSON.parse(body.toString('utf8')) as { errors?: unknown }).errors;
    return Array.isArray(errors) && errors.length === 1 && errors[0] === 'permission denied';
  } catch {
    return false;
  }
}

/**
 * The first two segments of a request path after `/v1/` (`sys/mounts`, `auth/token`), at most 64 characters: enough
 * to tell a probe from a typo, never a whole path (a token or a secret's name can sit further in it).
 */
function pathStart(url: string | undefined): string {
  const path = (url ?? '/').split('?')[0];
  return path
    .replace(/^\/+(v1\/+)?/i, '')
    .split('/')
    .slice(0, 2)
    .join('/')
    .slice(0, 64);
}

/** Requests that change nothing in OpenBao, so sending one again after a lost answer is harmless. */
const READ_METHODS = new Set(['GET', 'HEAD', 'LIST']);

export async function startPodApiServer(options: PodApiServerOptions): Promise<PodApiServer> {
  const limits: PodApiLimits = { ...DEFAULT_POD_API_LIMITS, ...definedOnly(options.limits ?? {}) };
  const log = moduleLogger(options.logger, 'pod-api');
  // One line per code a minute and a summary: with the tunnel down, every pod request failed with its own line.
  const failures = createLogSummarizer(log, { summaryEvent: 'podapi.failures_summary' });
  const refusals = createLogSummarizer(log, {
    summaryEvent: 'podapi.refusals_summary',
    keyFields: ['podAddress', 'code'],
  });
  const gate = createRequestGate({ maxInFlight: limits.maxInFlight, maxWaiting: limits.maxWaiting });
  let bufferedBodyBytes = 0;
  /** Per pod address (the remote address as the socket saw it): body bytes held, requests in the broker. */
  const bufferedByAddress = new AddressCounts();
  const requestsByAddress = new AddressCounts();
  // One line per kind of bound a minute and a summary: a pod flooding the broker must not flood its log.
  const bounds = createLogSummarizer(log, { summaryEvent: 'podapi.limits_summary' });
  const limitHit = (limit: PodApiLimitKind, fields: Record<string, unknown>, message: string) => {
    options.onLimit?.(limit);
    bounds.warn(limit, { event: 'podapi.limit', code: 'CT_PODAPI_LIMIT', limit, ...fields }, message);
  };

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const address = req.socket.remoteAddress ?? '';
    if (requestsByAddress.get(address) >= limits.maxRequestsPerAddress) {
      req.resume();
      limitHit(
        'address_requests',
        { podAddress: address, maxRequestsPerAddress: limits.maxRequestsPerAddress },
        'one pod address has too many requests in the broker at once; answering its next ones 503',
      );
      reply(
        res,
        503,
        openBaoErrorBody([
          `CT_PODAPI_LIMIT: this pod (${address}) has ${limits.maxRequestsPerAddress} requests in the cloudtaser broker already; retry once they are answered`,
        ]),
      );
      observe?.('refused', 503, 0);
      return;
    }
    requestsByAddress.add(address);
    serve(req, res)
      .catch((err: unknown) => {
        log.warn({ event: 'podapi.failed', reason: (err as Error).message }, 'pod API request failed');
        if (!res.headersSent) reply(res, 500, openBaoErrorBody(['internal error in the cloudtaser broker']));
        else res.destroy();
      })
      .finally(() => requestsByAddress.remove(address));
  };

  const observe = options.observe;
  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const method = req.method ?? 'GET';
    const head = method === 'HEAD';
    const refuse = (refusal: PodApiRefusal, route?: PodApiRoute): void => {
      req.resume();
      // Which pod asks for what it may not (sys/, another cluster's namespace, a typo) is what an SRE needs: once
      // per pod address and code a minute, then a summary (it was debug only: an outside hostile drill probed
      // sys/ and other namespaces unseen). The path's first segments only: a token in a path must not reach a log.
      const address = req.socket.remoteAddress ?? '';
      const code = /^(CT_[A-Z0-9_]+)/.exec(refusal.errors.find((e) => e.startsWith('CT_')) ?? '')?.[1];
      refusals.warn(
        `${address}|${code ?? refusal.status}`,
        {
          event: 'podapi.refused',
          podAddress: address,
          method,
          status: refusal.status,
          code,
          pathStart: pathStart(req.url),
          ...(route ? { route } : {}),
        },
        'pod API request refused',
      );
      reply(res, refusal.status, openBaoErrorBody(refusal.errors), head);
      observe?.('refused', refusal.status, (performance.now() - started) / 1000);
    };
    const wrapTtl = firstHeader(req, 'x-vault-wrap-ttl');
    // Before the path: wrapping is refused as such wherever it is asked for (sys/wrapping/wrap included).
    const wrapping = checkWrapping(wrapTtl);
    if (wrapping) return refuse(wrapping);
    const checked = checkPodRequest(method, req.url ?? '/');
    if (isRefusal(checked)) return refuse(checked);
    // A path (a long key, a long LIST `after`) the tunnel head cannot carry: said here, as the bound it is. It used
    // to fail inside the tunnel as a 503 "retry shortly", which a retry never heals, and counted as a pod API error.
    if (tunnelPath(checked).length > MAX_PATH_CHARS)
      return refuse(
        {
          status: 414,
          errors: [
            `CT_PODAPI_LIMIT: the request path and query are longer than the cloudtaser tunnel carries (${MAX_PATH_CHARS} characters in all); a retry gets the same`,
          ],
        },
        checked.route,
      );
    const headerRefusal = checkPodHeaders(checked.route, {
      namespace: firstHeader(req, 'x-vault-namespace'),
      clusterNamespaceName: options.clusterNamespaceName,
      wrapTtl,
    });
    if (headerRefusal) return refuse(headerRefusal, checked.route);
    // OpenBao takes a PATCH only as a JSON merge patch (internal/http/logical.go): answered here as it would be,
    // not forwarded as one whatever the pod said (a client built against the pod API then broke against OpenBao).
    if (checked.method === 'PATCH') {
      const given = firstHeader(req, 'content-type') ?? '';
      const mediaType = given.split(';')[0]!.trim().toLowerCase();
      if (mediaType !== 'application/merge-patch+json')
        return refuse(
          {
            status: 415,
            errors: [
              `PATCH requires Content-Type of application/merge-patch+json, provided ${mediaType.slice(0, 64)}`,
            ],
          },
          checked.route,
        );
    }
    if (checked.route === 'sys-leader') {
      req.resume();
      const answer = leaderAnswer();
      reply(res, answer.status, answer.body);
      observe?.(checked.route, answer.status, (performance.now() - started) / 1000);
      return;
    }
    if (
      checked.route === 'sys-health' ||
      checked.route === 'sys-seal-status' ||
      checked.route === 'sys-init'
    ) {
      req.resume();
      await serveUnauthenticated(checked, res, head);
      observe?.(checked.route, res.statusCode, (performance.now() - started) / 1000);
      return;
    }
    // headersDistinct (repeated headers kept apart) is built on first use: only when a client sent these at all.
    const consistency =
      req.headers['x-vault-index'] === undefined && req.headers['x-vault-inconsistent'] === undefined
        ? { carried: {} }
        : checkConsistencyHeaders(
            req.headersDistinct['x-vault-index'],
            req.headersDistinct['x-vault-inconsistent'],
          );
    if ('status' in consistency) return refuse(consistency, checked.route);
    // Body bytes count against the server-wide budget and the pod address's share of it from the first byte
    // read until the request is done with them: released once, by whichever comes first of the end of this
    // function, the answer's close and the socket's close (not the request's: it closes once its body is read,
    // while the bytes still wait for a tunnel slot). The answer's close alone was not
    // enough: a pipelined request whose client went away never gets its answer attached, so it never closes and
    // its bytes stayed counted for good (found by a security review: a few pods spent the budget permanently).
    const address = req.socket.remoteAddress ?? '';
    let reserved = 0;
    let spent = 'all' as 'all' | 'address';
    const socket = req.socket;
    const release = () => {
      if (reserved === 0) return;
      socket.off('close', release);
      bufferedBodyBytes -= reserved;
      bufferedByAddress.remove(address, reserved);
      reserved = 0;
    };
    try {
      const reserve = (bytes: number): boolean => {
        if (bufferedByAddress.get(address) + bytes > limits.maxBufferedBodyBytesPerAddress) {
          spent = 'address';
          return false;
        }
        if (bufferedBodyBytes + bytes > limits.maxBufferedBodyBytes) return false;
        // The close listeners only for a request that holds bytes: a bodiless read (most traffic) adds none.
        if (reserved === 0) {
          res.once('close', release);
          socket.once('close', release);
        }
        bufferedBodyBytes += bytes;
        bufferedByAddress.add(address, bytes);
        reserved += bytes;
        return true;
      };
      const body = await readBody(req, limits.maxBodyBytes, reserve, limits.bodyTimeoutMs);
      if (body === BUDGET_SPENT || body === BODY_TIMEOUT) {
        const timedOut = body === BODY_TIMEOUT;
        const kind = timedOut ? 'body_timeout' : spent === 'address' ? 'address_body_budget' : 'body_budget';
        limitHit(
          kind,
          {
            route: checked.route,
            podAddress: address,
            ...(timedOut
              ? { bodyTimeoutMs: limits.bodyTimeoutMs }
              : spent === 'address'
                ? { maxBufferedBodyBytesPerAddress: limits.maxBufferedBodyBytesPerAddress }
                : { maxBufferedBodyBytes: limits.maxBufferedBodyBytes }),
          },
          timedOut
            ? 'a request body did not arrive in time; answered 408 and closed its connection'
            : 'too many request body bytes held at once; refusing a request with a body (503) and closing its connection',
        );
        res.setHeader('connection', 'close');
        const status = timedOut ? 408 : 503;
        const message = timedOut
          ? `CT_PODAPI_LIMIT: the request body did not arrive within ${limits.bodyTimeoutMs / 1000} s of its headers`
          : spent === 'address'
            ? `CT_PODAPI_LIMIT: this pod (${address}) holds too many request bodies at once in the cloudtaser broker; finish or close the others, then retry`
            : BUDGET_SPENT_MESSAGE;
        reply(res, status, openBaoErrorBody([message]));
        observe?.(checked.route, status, (performance.now() - started) / 1000);
        return;
      }
      if (body === undefined) {
        // OpenBao's own text first (what clients match), then ours: alone, it sent developers to raise OpenBao's
        // max_request_size (32 MiB by default), which is not what refused it.
        limitHit(
          'body_size',
          { podAddress: address, route: checked.route, maxBodyBytes: limits.maxBodyBytes },
          'a pod request body is larger than the pod API takes; answering 413',
        );
        reply(
          res,
          413,
          openBaoErrorBody([
            'http: request body too large',
            `CT_PODAPI_LIMIT: the cloudtaser pod API takes request bodies up to ${limits.maxBodyBytes / 1024} KiB (the tunnel carries at most 1 MiB per request); OpenBao's max_request_size is not the cause`,
          ]),
        );
        observe?.(checked.route, 413, (performance.now() - started) / 1000);
        return;
      }
      const headers: Record<string, string> = consistency.carried;
      const token = podToken(req);
      if (token) headers['x-vault-token'] = token;
      // As the socket saw it: the bridge checks and unmaps it, and only when it forwards it (--openbao-forwarded-for).
      const podAddress = req.socket.remoteAddress;
      if (podAddress) headers[POD_ADDRESS_HEADER] = podAddress;
      if (body.length > 0) headers['content-type'] = contentType(req, checked.method, body);
      const reviewsBefore =
        checked.route === 'kubernetes-login' ? options.tokenReviewFailures?.() : undefined;
      const reviewFailuresBefore = reviewsBefore?.count;
      const reviewsAskedBefore = reviewsBefore?.asked;
      const abort = new AbortController();
      // Only a client that went away mid-request cancels it (an abort also costs a DOMException).
      res.on('close', () => {
        if (!res.writableFinished) abort.abort();
      });
      let status: number;
      let responseBody: Buffer;
      let responseHeaders: TunnelHeaders | undefined;
      try {
        const response = await throughTunnel(
          {
            method: checked.method,
            path: tunnelPath(checked),
            headers,
          },
          body,
          abort.signal,
          true,
          address,
        );
        status = response.status;
        responseBody = response.body;
        responseHeaders = response.headers;
      } catch (err) {
        const code = err instanceof CloudtaserError ? err.code : 'CT_INTERNAL';
        if (code === 'CT_CANCELLED') return;
        // By route too: a summary carries its first line's fields, so one keyed by code alone named the route of
        // the first failure for every other route's failures (an outside drill: kv-read failures as logins).
        failures.warn(
          `${code}|${checked.route}`,
          { event: 'podapi.tunnel_failed', route: checked.route, code },
          'pod API request failed',
        );
        reply(res, 503, openBaoErrorBody([tunnelFailureLine(err, code)]));
        observe?.(checked.route, 503, (performance.now() - started) / 1000);
        return;
      }
      if (status === 403 && reviewFailuresBefore !== undefined) {
        const reviews = options.tokenReviewFailures!();
        if (reviews.count > reviewFailuresBefore) {
          const answer = reviewFailureAnswer(reviews.code);
          reply(res, answer.status, openBaoErrorBody(answer.errors));
          observe?.(checked.route, answer.status, (performance.now() - started) / 1000);
          return;
        }
        // Refused without a review reaching this broker (nor any other login's meanwhile, which would hide it):
        // OpenBao's TokenReview went to a bridge without this cluster's tunnel, or could not reach a bridge.
        if (
          reviewsAskedBefore !== undefined &&
          reviews.asked === reviewsAskedBefore &&
          isBarePermissionDenied(responseBody)
        ) {
          failures.warn(
            'CT_TOKENREVIEW_UNAVAILABLE',
            { event: 'podapi.login_unreviewed', code: 'CT_TOKENREVIEW_UNAVAILABLE' },
            "a pod login was refused without OpenBao's TokenReview reaching this broker",
          );
          reply(res, 403, openBaoErrorBody(['permission denied', UNREVIEWED_LOGIN]));
          observe?.(checked.route, 403, (performance.now() - started) / 1000);
          return;
        }
      }
      log.debug(
        {
          event: 'podapi.request',
          route: checked.route,
          status,
          ms: Math.round(performance.now() - started),
        },
        'pod API request',
      );
      reply(res, status, responseBody, false, responseHeaders);
      observe?.(checked.route, status, (performance.now() - started) / 1000);
    } finally {
      release();
    }
  }

  /** The version OpenBao last reported on sys/health or sys/seal-status, for the answers made here without it. */
  let openBaoVersion = '';

  /**
   * sys/health, sys/seal-status and sys/init: OpenBao's own answer through the tunnel, without the pod's token or a
   * namespace; while the secret store cannot be reached, sys/health and sys/seal-status answer at once as a sealed
   * server does (see health.ts), and sys/init, after the tunnel wait, 503 as any other request.
   */
  async function serveUnauthenticated(
    checked: AllowedPodRequest,
    res: ServerResponse,
    head: boolean,
  ): Promise<void> {
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    // Upstream answers sys/health from its own state at once; through the tunnel a hanging OpenBao held the probe
    // for the bridge's 15 s forward timeout. Past this the answer is "sealed" (cannot be reached), as with no tunnel.
    let healthTimedOut = false;
    const sealState = checked.route === 'sys-health' || checked.route === 'sys-seal-status';
    const healthDeadline = sealState
      ? setTimeout(() => {
          healthTimedOut = true;
          abort.abort();
        }, limits.healthAnswerMs)
      : undefined;
    try {
      const response = await throughTunnel(
        {
          method: 'GET',
          path: tunnelPath(checked),
          headers: {},
        },
        undefined,
        abort.signal,
        // sys/health and sys/seal-status answer at once either way (sealed while the secret store is
        // unreachable): probes and readiness checks have short timeouts.
        !sealState,
        res.req.socket.remoteAddress ?? '',
      );
      if (sealState) openBaoVersion = reportedVersion(response.body) ?? openBaoVersion;
      reply(res, response.status, response.body, head);
    } catch (err) {
      const code = healthTimedOut
        ? 'CT_OPENBAO_TIMEOUT'
        : err instanceof CloudtaserError
          ? err.code
          : 'CT_INTERNAL';
      if (code === 'CT_CANCELLED') return;
      if (!sealState) {
        reply(res, 503, openBaoErrorBody([tunnelFailureLine(err, code)]));
        return;
      }
      log.debug(
        { event: 'podapi.health_unavailable', code, route: checked.route },
        'secret store unreachable: answered as a sealed server',
      );
      const answer =
        checked.route === 'sys-health'
          ? unavailableHealthAnswer(checked.query, openBaoVersion)
          : unavailableSealStatusAnswer(openBaoVersion);
      reply(res, answer.status, answer.body, head);
    } finally {
      clearTimeout(healthDeadline);
    }
  }

  /**
   * One request through the live tunnel, in a slot of the request gate. With no tunnel (the broker reconnecting
   * after a bridge or beacon replica restart) it waits up to tunnelWaitMs for the next one first, outside the gate:
   * waiting requests hold no slot, so a longer outage answers each of them 503 after its own wait, not in a queue
   * behind the others. A request the tunnel lost unanswered is sent once more on the next tunnel when that is
   * safe: always when the bridge promised it never processed it (it drained the tunnel before closing, mux.ts),
   * otherwise only a read; a login or write that may have reached OpenBao is not.
   */
  function throughTunnel(
    head: RequestHead,
    body: Buffer | undefined,
    signal: AbortSignal,
    waitForTunnel: boolean,
    podAddress: string,
  ): Promise<TunnelResponse> {
    // Waiting requests take turns by pod address (gate.ts): one pod's pile does not delay another pod's request.
    const send = (tunnel: TunnelMux) =>
      gate.run(() => tunnel.request(head, body, { timeoutMs: limits.timeoutMs, signal }), signal, podAddress);
    const current = options.tunnel();
    // The hot path (a live tunnel) adds nothing but the catch below.
    let used = current && !current.closed && !current.draining ? current : undefined;
    const first = used
      ? send(used)
      : liveTunnel(undefined, signal, waitForTunnel).then((tunnel) => {
          used = tunnel;
          return send(tunnel);
        });
    return first.catch((err: unknown) => {
      const resend =
        used !== undefined &&
        isCloudtaserError(err, 'CT_TUNNEL_CLOSED') &&
        (err.details?.unprocessed === true || READ_METHODS.has(head.method));
      if (!resend) throw err;
      return liveTunnel(used, signal, waitForTunnel).then(send);
    });
  }

  async function liveTunnel(
    lost: TunnelMux | undefined,
    signal: AbortSignal,
    wait: boolean,
  ): Promise<TunnelMux> {
    const current = options.tunnel();
    if (current && !current.closed && !current.draining && current !== lost) return current;
    const refusal = options.refusal?.();
    if (refusal) throw refusedBroker(refusal);
    if (wait && options.nextTunnel && !signal.aborted) {
      const waited = linkSignal([signal], limits.tunnelWaitMs);
      const next = await options.nextTunnel(lost, waited.signal).finally(waited.dispose);
      if (next) return next;
      if (signal.aborted) throw new CloudtaserError('CT_CANCELLED', 'the pod went away');
    }
    const why = options.noTunnelReason?.();
    if (why) throw refusedBroker(why);
    throw new CloudtaserError('CT_TUNNEL_CLOSED', NOT_CONNECTED);
  }

  // Refused by Node's parser (smuggling shapes, oversized headers, a slow request): the same podapi.refused line as
  // the allow-list's refusals, and the same metric.
  const server = createHttpOrHttpsServer(options.tls, handler, (refusal) => {
    refusals.warn(
      `${refusal.remoteAddress}|${refusal.code}`,
      {
        event: 'podapi.refused',
        podAddress: refusal.remoteAddress,
        status: refusal.status,
        code: refusal.code,
        parserCode: refusal.parserCode,
      },
      'pod API request refused',
    );
    observe?.('refused', refusal.status, 0);
  });
  // hvac and node-vault list with the HTTP method LIST, which Node's parser would refuse with a bare 400.
  acceptCustomVerbs(server);
  // Connections cost memory before they send anything (TLS state, buffers): bounded in all and per pod address,
  // closed before TLS beyond either bound. Node applies maxConnections itself and reports each drop.
  server.maxConnections = limits.maxConnections;
  // Who holds the connections is what an SRE needs when the total is full (an outside hostile drill filled it
  // from 16 addresses and the line named none): the top holders, worked out at most once a second under a flood.
  let holders: { at: number; top: ReturnType<AddressCounts['top']> } | undefined;
  server.on('drop', (dropped?: { remoteAddress?: string }) => {
    if (!holders || performance.now() - holders.at > 1_000)
      holders = { at: performance.now(), top: connectionsByAddress.top(3) };
    limitHit(
      'connections',
      {
        maxConnections: limits.maxConnections,
        podAddress: dropped?.remoteAddress,
        topHolders: holders.top.map(({ address, count }) => `${address} (${count})`),
      },
      'too many pod API connections open at once; closing new ones (topHolders: the pod addresses holding the most)',
    );
  });
  const connectionsByAddress = new AddressCounts();
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? '';
    if (connectionsByAddress.get(address) >= limits.maxConnectionsPerAddress) {
      limitHit(
        'address_connections',
        { podAddress: address, maxConnectionsPerAddress: limits.maxConnectionsPerAddress },
        'one pod address holds too many pod API connections; closing its new ones',
      );
      socket.destroy();
      return;
    }
    connectionsByAddress.add(address);
    socket.once('close', () => connectionsByAddress.remove(address));
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = limits.timeoutMs + 5_000;
  server.keepAliveTimeout = 30_000;
  const listening = await listenHttp(server, {
    host: options.host,
    port: options.port,
    what: 'the pod API',
    event: 'podapi.listening',
    logger: log,
  });
  return {
    url: listening.url,
    port: listening.port,
    setCertificate(tls) {
      if ('setSecureContext' in server)
        server.setSecureContext({ cert: tls.certPem, key: tls.keyPem, minVersion: 'TLSv1.2' });
    },
    close: async (graceMs) => {
      await listening.close(graceMs);
      failures.close();
      bounds.close();
      refusals.close();
    },
  };
}

/** X-Vault-Token wins; `Authorization: Bearer` is the fallback, as in OpenBao. */
function podToken(req: IncomingMessage): string | undefined {
  const header = req.headers['x-vault-token'];
  const direct = Array.isArray(header) ? header[0] : header;
  if (direct) return sanitize(direct);
  const auth = req.headers.authorization;
  const match = auth ? /^Bearer\s+(.+)$/i.exec(auth) : null;
  return match ? sanitize(match[1]) : undefined;
}

/** A token the tunnel head cannot carry is no token at all (OpenBao then says permission denied). */
function sanitize(token: string): string | undefined {
  const trimmed = token.trim();
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  return trimmed.length > 0 && trimmed.length <= 4096 && !/[\u0000-\u001f\u007f]/.test(trimmed)
    ? trimmed
    : undefined;
}

const FORM = 'application/x-www-form-urlencoded';

function contentType(req: IncomingMessage, method: string, body: Buffer): string {
  if (method === 'PATCH') return 'application/merge-patch+json';
  const given = req.headers['content-type'];
  if (given?.startsWith('application/merge-patch+json')) return given;
  // OpenBao reads JSON whatever the type says, except a form post whose body does not start like JSON
  // (internal/http/logical.go parseFormRequest: `curl --data role=..&jwt=..`); that one stays a form.
  if (given?.toLowerCase().startsWith(FORM) && !startsLikeJson(body)) return FORM;
  return 'application/json';
}

function startsLikeJson(body: Buffer): boolean {
  for (const byte of body) {
    if (byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d) continue;
    return byte === 0x7b || byte === 0x5b; // { or [
  }
  return false;
}

const NO_BODY = Buffer.alloc(0);

const BUDGET_SPENT = Symbol('body budget spent');
const BODY_TIMEOUT = Symbol('body timeout');
const BUDGET_SPENT_MESSAGE =
  'CT_PODAPI_LIMIT: the cloudtaser broker holds too many request bodies at once; retry in a few seconds';

/**
 * The body, undefined when it is over `limit` (read to its end and discarded), BUDGET_SPENT when `reserve`
 * refuses a chunk, or BODY_TIMEOUT when it has not ended within `timeoutMs` (in both, the rest is not read: the
 * caller answers and closes the connection).
 */
function readBody(
  req: IncomingMessage,
  limit: number,
  reserve: (bytes: number) => boolean,
  timeoutMs: number,
): Promise<Buffer | undefined | typeof BUDGET_SPENT | typeof BODY_TIMEOUT> {
  // A request that announces no body (the reads that make up most traffic) has none to wait for; Node discards
  // the empty request stream itself once the response ends.
  const length = req.headers['content-length'];
  if (req.headers['transfer-encoding'] === undefined && (length === undefined || length === '0'))
    return Promise.resolve(NO_BODY);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    const timer = setTimeout(() => {
      req.off('data', onData);
      req.pause();
      chunks.length = 0;
      resolve(BODY_TIMEOUT);
    }, timeoutMs);
    timer.unref();
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        return;
      }
      if (over) return;
      if (!reserve(chunk.length)) {
        clearTimeout(timer);
        req.off('data', onData);
        req.pause();
        chunks.length = 0;
        resolve(BUDGET_SPENT);
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.on('end', () => {
      clearTimeout(timer);
      resolve(over ? undefined : Buffer.concat(chunks));
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

function reply(
  res: ServerResponse,
  status: number,
  body: string | Buffer,
  head = false,
  passed?: TunnelHeaders,
): void {
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(body),
  };
  // OpenBao returns a request's X-Vault-Namespace unchanged on every answer (internal/http/handler.go), also on
  // refusals; the pod's own value, not the cluster namespace the bridge sent on (an outside hvac drill missed it).
  const namespace = res.req?.headers['x-vault-namespace'];
  if (typeof namespace === 'string' && namespace !== '') headers['x-vault-namespace'] = namespace;
  // Only the OpenBao headers a client acts on (read-your-writes index, rate-limit answers); see allowlist.ts.
  if (passed !== undefined) {
    for (const name of PASSED_RESPONSE_HEADERS) {
      const value = passed[name];
      if (value !== undefined) headers[name] = value;
    }
  }
  res.writeHead(status, headers);
  res.end(status === 204 || head ? undefined : body);
}

function firstHeader(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The path a pod request travels under through the tunnel: the OpenBao prefix, the checked path and query. */
function tunnelPath(checked: AllowedPodRequest): string {
  return `${OPENBAO_TUNNEL_PREFIX}${checked.path}${checked.query ? `?${checked.query}` : ''}`;
}
