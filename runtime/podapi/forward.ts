/**
 * The bridge's half of the pod API: checks the allow-list again, adds the cluster namespace and forwards to
 * OpenBao, returning OpenBao's answer as it is. The pod's token passes through; the bridge's own is never used.
 */

import type { Dispatcher } from 'undici';
import { timerDelay } from '../core/backoff.js';
import { isCloudtaserError } from '../core/errors.js';
import { type Logger, moduleLogger } from '../core/log.js';
import { createLogSummarizer } from '../core/log-summary.js';
import { isConnectionReset } from '../core/net-errors.js';
import { redirectTarget } from '../openbao/index.js';
import { createHttpDispatcher, type ProxySetting, proxyFailure } from '../proxy/index.js';
import type { TunnelReply, TunnelRequest } from '../tunnel/index.js';
import {
  CONSISTENCY_HEADERS,
  checkConsistencyHeaders,
  checkPodRequest,
  isRefusal,
  NOT_ON_ALLOW_LIST,
  openBaoErrorBody,
  PASSED_RESPONSE_HEADERS,
  PERMISSION_DENIED,
} from './allowlist.js';
import { leaderAnswer, unavailableHealthAnswer, unavailableSealStatusAnswer } from './health.js';
import { OPENBAO_TUNNEL_PREFIX, POD_ADDRESS_HEADER, podAddressOf } from './protocol.js';

/** The answer to a request its requester cancelled (as nginx's 499): never sent, and not counted as a failure. */
export const CANCELLED_STATUS = 499;

export interface OpenBaoForwarderOptions {
  /** OpenBao's address, e.g. `https://openbao:8200`. */
  readonly address: string;
  readonly caCertPem?: string;
  /** @default 15000 */
  readonly timeoutMs?: number;
  /** Largest OpenBao answer carried back; the tunnel's body limit is 1 MiB. @default 960 KiB */
  readonly maxResponseBytes?: number;
  /** How to reach OpenBao (the same rule as the OpenBao client). @default the environment */
  readonly proxy?: ProxySetting;
  /**
   * Send the pod's address (as the broker saw it) to OpenBao as `X-Forwarded-For`. Only for an OpenBao whose
   * listener trusts this bridge's addresses (`x_forwarded_for_authorized_addrs`): per-address rate-limit quotas
   * and audit logs then see each pod, not the bridge. @default false
   */
  readonly forwardedFor?: boolean;
  readonly logger?: Logger;
}

export interface OpenBaoForwarder {
  /** Serves one tunnel request for the cluster whose OpenBao namespace is `namespace`. */
  forward(namespace: string, request: TunnelRequest, signal?: AbortSignal): Promise<TunnelReply>;
  close(): Promise<void>;
}

/** Frozen: the tunnel encodes a frozen head once per status (tunnel/heads.ts). */
const JSON_HEADERS = Object.freeze({ 'content-type': 'application/json' });

export function createOpenBaoForwarder(options: OpenBaoForwarderOptions): OpenBaoForwarder {
  const base = new URL(options.address);
  const basePath = base.pathname.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? 15_000;
  const maxResponseBytes = options.maxResponseBytes ?? 960 * 1024;
  const log = moduleLogger(options.logger, 'bridge-podapi');
  // Per pod request, so one per code a minute and a summary: an outage of OpenBao met by a fleet's pods wrote a
  // line per request (400 in a second), and a broker sending what is off the allow-list could write as many.
  const summary = createLogSummarizer(log, { summaryEvent: 'podapi.failures_summary' });
  const { dispatcher: agent, route } = createHttpDispatcher({
    origin: base.origin,
    caCertPem: options.caCertPem,
    connectTimeoutMs: timeoutMs,
    keepAliveTimeoutMs: 10_000,
    proxy: options.proxy,
  });

  return {
    async forward(namespace, request, signal) {
      if (!request.path.startsWith(OPENBAO_TUNNEL_PREFIX)) {
        return { status: 404, headers: JSON_HEADERS, body: openBaoErrorBody([]) };
      }
      const podPath = `/v1/${request.path.slice(OPENBAO_TUNNEL_PREFIX.length)}`;
      const method = request.method === 'LIST' ? 'GET' : request.method;
      const checked = checkPodRequest(method, request.method === 'LIST' ? withList(podPath) : podPath);
      if (isRefusal(checked) || checked.method !== request.method) {
        summary.warn(
          'refused',
          {
            event: 'podapi.bridge_refused',
            code: 'CT_PODAPI_NOT_ALLOWED',
            method: request.method,
            namespace,
          },
          'refused a pod API request',
        );
        return {
          status: 403,
          headers: JSON_HEADERS,
          body: openBaoErrorBody([PERMISSION_DENIED, NOT_ON_ALLOW_LIST]),
        };
      }
      // Never OpenBao's own answer (it names OpenBao's addresses): what the broker answers itself.
      if (checked.route === 'sys-leader') {
        const answer = leaderAnswer();
        return { status: answer.status, headers: JSON_HEADERS, body: Buffer.from(answer.body) };
      }
      const health = checked.route === 'sys-health';
      const headers: Record<string, string | string[]> = { accept: 'application/json' };
      // sys/health, sys/seal-status and sys/init are global and unauthenticated: OpenBao refuses a namespace header
      // on two of them, and no token needs to travel for any.
      if (!health && checked.route !== 'sys-seal-status' && checked.route !== 'sys-init') {
        headers['x-vault-namespace'] = namespace;
        const token = request.headers['x-vault-token'];
        if (token) headers['x-vault-token'] = token;
        // Only an address (what the broker's socket saw); a broker that sends anything else forwards nothing.
        if (options.forwardedFor) {
          const podAddress = podAddressOf(request.headers[POD_ADDRESS_HEADER]);
          if (podAddress) headers['x-forwarded-for'] = podAddress;
        }
        // Read-your-writes headers, checked again as the broker checked them; the policies travel as separate
        // header lines, as the client sent them (a comma-joined line means something else to OpenBao).
        const index = request.headers[CONSISTENCY_HEADERS.index];
        const inconsistent = request.headers[CONSISTENCY_HEADERS.inconsistent];
        if (index !== undefined || inconsistent !== undefined) {
          const consistency = checkConsistencyHeaders(
            index === undefined ? undefined : [index],
            inconsistent === undefined ? undefined : inconsistent.split(','),
          );
          if ('status' in consistency) {
            return {
              status: consistency.status,
              headers: JSON_HEADERS,
              body: openBaoErrorBody(consistency.errors),
            };
          }
          if (index !== undefined) headers[CONSISTENCY_HEADERS.index] = index;
          if (inconsistent !== undefined) headers[CONSISTENCY_HEADERS.inconsistent] = inconsistent.split(',');
        }
      }
      if (request.body.length > 0) {
        headers['content-type'] = request.headers['content-type'] ?? 'application/json';
      }
      const query = checked.query ? `?${checked.query}` : '';
      let outcome: Awaited<ReturnType<typeof dispatchOnce>>;
      try {
        // A standby that cannot forward answers 307: the pod must never see (or be sent to) that address, so the
        // bridge follows it with the same request (redirectTarget: same scheme, at most MAX_REDIRECTS hops).
        let url = new URL(`${base.origin}${basePath}/v1/${checked.path}${query}`);
        for (let hop = 0; ; hop++) {
          outcome = await dispatchRetryingStaleSocket(
            agent,
            {
              origin: url.origin,
              path: `${url.pathname}${url.search}`,
              method: (checked.method === 'LIST' ? 'GET' : checked.method) as Dispatcher.HttpMethod,
              headers,
              body: request.body.length > 0 ? request.body : undefined,
              headersTimeout: timeoutMs,
              bodyTimeout: timeoutMs,
            },
            { timeoutMs, maxResponseBytes, signal },
          );
          if (outcome === 'too-large' || (outcome.status !== 307 && outcome.status !== 308)) break;
          const next = redirectTarget(url, {
            method: checked.method,
            statusCode: outcome.status,
            location: outcome.location,
            hop,
          });
          log.debug(
            { event: 'podapi.redirected', route: checked.route, from: url.origin, to: next.origin },
            'OpenBao standby redirected a pod API request to the active node',
          );
          url = next;
        }
      } catch (err) {
        const timedOut = (err as { timedOut?: boolean }).timedOut === true;
        if (signal?.aborted && !timedOut) {
          // The pod (or its broker) gave up: nothing is known about OpenBao, and nobody reads this answer. Not a
          // warning naming OpenBao, and not a failure in its error ratio (observePodForward skips CANCELLED_STATUS).
          log.debug(
            { event: 'podapi.cancelled', route: checked.route },
            'the pod cancelled a pod API request',
          );
          return { status: CANCELLED_STATUS, headers: JSON_HEADERS, body: openBaoErrorBody(['cancelled']) };
        }
        if (health || checked.route === 'sys-seal-status') {
          const answer = health ? unavailableHealthAnswer(checked.query) : unavailableSealStatusAnswer();
          return { status: answer.status, headers: JSON_HEADERS, body: answer.body };
        }
        if (isCloudtaserError(err, 'CT_OPENBAO_REDIRECT')) {
          log.warn(
            {
              event: 'podapi.openbao_redirect_refused',
              code: err.code,
              route: checked.route,
              reason: err.message,
            },
            'OpenBao redirected a pod API request in a way the bridge does not follow',
          );
          return {
            status: 502,
            headers: JSON_HEADERS,
            body: openBaoErrorBody([
              'CT_OPENBAO_REDIRECT: the secret store redirected the cloudtaser bridge to another scheme or in a loop; the bridge operator must point it at the active OpenBao node',
            ]),
          };
        }
        const proxied = route.proxy ? proxyFailure(err, route.proxy, base.host) : undefined;
        const code = timedOut ? 'CT_OPENBAO_TIMEOUT' : (proxied?.code ?? 'CT_OPENBAO_UNREACHABLE');
        summary.warn(
          code,
          {
            event: 'podapi.openbao_unreachable',
            code,
            // Which cluster's pods met it first (the summary counts the rest, of any cluster).
            namespace,
            route: checked.route,
            reason: timedOut
              ? `no answer within ${timeoutMs} ms`
              : (proxied?.message ?? (err as Error).message),
            proxy: route.proxy?.display,
          },
          timedOut
            ? 'OpenBao did not answer a pod API request in time'
            : 'OpenBao could not be reached for a pod API request',
        );
        return {
          status: 503,
          headers: JSON_HEADERS,
          body: openBaoErrorBody([
            // The code the bridge's log line carries, so an app team can quote it to the platform team.
            timedOut
              ? `${code}: the secret store did not answer the cloudtaser bridge in time; retry shortly`
              : `${code}: the secret store did not answer the cloudtaser bridge; retry shortly`,
          ]),
        };
      }
      if (outcome === 'too-large') {
        return {
          status: 502,
          headers: JSON_HEADERS,
          // Not CT_TUNNEL_PROTOCOL: nothing is wrong with the tunnel, and a retry gets the same answer.
          body: openBaoErrorBody([
            `CT_PODAPI_RESPONSE_TOO_LARGE: OpenBao's answer is larger than one cloudtaser tunnel answer carries (${maxResponseBytes / 1024} KiB); a retry gets the same: read a smaller secret, or list a narrower path`,
          ]),
        };
      }
      log.debug(
        { event: 'podapi.forwarded', route: checked.route, status: outcome.status },
        'pod API request forwarded',
      );
      return {
        status: outcome.status,
        headers: outcome.passed ? { ...JSON_HEADERS, ...outcome.passed } : JSON_HEADERS,
        body: outcome.body,
      };
    },
    close: async () => {
      summary.close();
      await agent.close();
    },
  };
}

/**
 * dispatchOnce, sent once more on a fresh connection when a read met a reset before any answer: a pooled
 * keep-alive socket OpenBao (or a load balancer in front of it) dropped while idle, after a restart or a leader
 * change. Only reads: a KV write that may have arrived must never be sent twice (it would make a second version).
 */
async function dispatchRetryingStaleSocket(
  agent: Dispatcher,
  options: Dispatcher.DispatchOptions,
  limits: { timeoutMs: number; maxResponseBytes: number; signal?: AbortSignal },
): ReturnType<typeof dispatchOnce> {
  try {
    return await dispatchOnce(agent, options, limits);
  } catch (err) {
    const idempotent = options.method === 'GET' || options.method === 'HEAD';
    if (!idempotent || (err as { answered?: boolean }).answered || !isConnectionReset(err)) throw err;
    return dispatchOnce(agent, options, limits);
  }
}

/**
 * One request on the pooled connections, answered as a whole: undici's dispatch with a handler that keeps the
 * chunks, instead of `request()` with its response stream, async iterator and extra copies (this runs for every
 * pod read). Rejects with `timedOut` set when `timeoutMs` passed, and with the error when OpenBao could not be
 * reached; resolves 'too-large' (after abandoning the answer) when it exceeds `maxResponseBytes`.
 */
function dispatchOnce(
  agent: Dispatcher,
  options: Dispatcher.DispatchOptions,
  limits: { timeoutMs: number; maxResponseBytes: number; signal?: AbortSignal },
): Promise<
  { status: number; body: Buffer; location?: string; passed?: Record<string, string> } | 'too-large'
> {
  return new Promise((resolve, reject) => {
    let controller: Dispatcher.DispatchController | undefined;
    let settled = false;
    let stopReason: Error | undefined;
    let status = 0;
    /** Whether OpenBao started answering: a failure after that is not a stale socket to retry on. */
    let answered = false;
    let location: string | undefined;
    let passed: Record<string, string> | undefined;
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      limits.signal?.removeEventListener('abort', onCancel);
      outcome();
    };
    const stop = (reason: Error) => {
      stopReason ??= reason;
      controller?.abort(reason);
    };
    // A plain timer and listener: AbortSignal.any/timeout cost a millisecond per request on Node 20.
    const timer = setTimeout(
      () => stop(Object.assign(new Error('timed out'), { timedOut: true })),
      timerDelay(limits.timeoutMs),
    );
    const onCancel = () => stop(new Error('the pod cancelled the request'));
    limits.signal?.addEventListener('abort', onCancel, { once: true });
    agent.dispatch(options, {
      onRequestStart(started) {
        controller = started;
        if (stopReason) started.abort(stopReason);
      },
      onResponseStart(_controller, statusCode, headers) {
        status = statusCode;
        answered = true;
        const byName = headers as Record<string, string | string[] | undefined>;
        // A redirect's Location is followed here; of OpenBao's own headers the pod gets only those a client acts
        // on (PASSED_RESPONSE_HEADERS), printable and short, and most answers carry none of them.
        if (statusCode === 307 || statusCode === 308) {
          const value = byName.location;
          location = Array.isArray(value) ? value[0] : value;
        }
        for (const name of PASSED_RESPONSE_HEADERS) {
          const raw = byName[name];
          const value = Array.isArray(raw) ? raw[0] : raw;
          if (value !== undefined && value.length <= 4096 && /^[\x20-\x7e]*$/.test(value)) {
            passed ??= {};
            passed[name] = value;
          }
        }
      },
      onResponseData(current, chunk) {
        size += chunk.length;
        if (size > limits.maxResponseBytes) {
          finish(() => resolve('too-large'));
          current.abort(new Error('answer too large'));
          return;
        }
        chunks.push(chunk);
      },
      onResponseEnd() {
        finish(() =>
          resolve({
            status,
            body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size),
            ...(location === undefined ? {} : { location }),
            ...(passed === undefined ? {} : { passed }),
          }),
        );
      },
      onResponseError(_controller, err) {
        const code = (err as { code?: string }).code;
        const timedOut =
          (stopReason as { timedOut?: boolean } | undefined)?.timedOut === true ||
          code === 'UND_ERR_HEADERS_TIMEOUT' ||
          code === 'UND_ERR_BODY_TIMEOUT';
        finish(() =>
          reject(
            timedOut
              ? Object.assign(err, { timedOut: true })
              : (stopReason ?? (answered ? Object.assign(err, { answered: true }) : err)),
          ),
        );
      },
    });
  });
}

function withList(path: string): string {
  return `${path}${path.includes('?') ? '&' : '?'}list=true`;
}
