/**
 * The bridge's half of the pod API: checks the allow-list again, adds the cluster namespace and forwards to
 * OpenBao, returning OpenBao's answer as it is. The pod's token passes through; the bridge's own is never used.
 */
import { type Logger, moduleLogger } from '../core/log.js';
import { createHttpDispatcher, type ProxySetting, proxyFailure } from '../proxy/index.js';
import type { TunnelReply, TunnelRequest } from '../tunnel/index.js';
import { checkPodRequest, isRefusal, openBaoErrorBody } from './allowlist.js';
import { OPENBAO_TUNNEL_PREFIX } from './protocol.js';

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
  readonly logger?: Logger;
}

export interface OpenBaoForwarder {
  /** Serves one tunnel request for the cluster whose OpenBao namespace is `namespace`. */
  forward(namespace: string, request: TunnelRequest, signal?: AbortSignal): Promise<TunnelReply>;
  close(): Promise<void>;
}

const JSON_HEADERS = { 'content-type': 'application/json' };

export function createOpenBaoForwarder(options: OpenBaoForwarderOptions): OpenBaoForwarder {
  const base = new URL(options.address);
  const basePath = base.pathname.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? 15_000;
  const maxResponseBytes = options.maxResponseBytes ?? 960 * 1024;
  const log = moduleLogger(options.logger, 'bridge-podapi');
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
        log.warn({ event: 'podapi.bridge_refused', method: request.method }, 'refused a pod API request');
        return { status: 403, headers: JSON_HEADERS, body: openBaoErrorBody(['permission denied']) };
      }
      const headers: Record<string, string> = {
        accept: 'application/json',
        'x-vault-namespace': namespace,
      };
      const token = request.headers['x-vault-token'];
      if (token) headers['x-vault-token'] = token;
      if (request.body.length > 0) {
        headers['content-type'] = request.headers['content-type'] ?? 'application/json';
      }
      const query = checked.query ? `?${checked.query}` : '';
      // A plain controller and timer: AbortSignal.any/timeout cost a millisecond per request on Node 20.
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), timeoutMs);
      const onCancel = () => abort.abort();
      signal?.addEventListener('abort', onCancel, { once: true });
      try {
        const response = await agent.request({
          origin: base.origin,
          path: `${basePath}/v1/${checked.path}${query}`,
          method: checked.method === 'LIST' ? 'GET' : checked.method,
          headers,
          body: request.body.length > 0 ? request.body : undefined,
          signal: abort.signal,
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
        });
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const chunk of response.body) {
          size += (chunk as Buffer).length;
          if (size > maxResponseBytes) {
            response.body.destroy();
            return {
              status: 502,
              headers: JSON_HEADERS,
              body: openBaoErrorBody(['the OpenBao answer is too large for the cloudtaser tunnel']),
            };
          }
          chunks.push(chunk as Buffer);
        }
        log.debug(
          { event: 'podapi.forwarded', route: checked.route, status: response.statusCode },
          'pod API request forwarded',
        );
        return { status: response.statusCode, headers: JSON_HEADERS, body: Buffer.concat(chunks) };
      } catch (err) {
        const timedOut = abort.signal.aborted && !signal?.aborted;
        const proxied = route.proxy ? proxyFailure(err, route.proxy, base.host) : undefined;
        log.warn(
          {
            event: 'podapi.openbao_unreachable',
            code: timedOut ? 'CT_OPENBAO_TIMEOUT' : (proxied?.code ?? 'CT_OPENBAO_UNREACHABLE'),
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
            timedOut
              ? 'the secret store did not answer the cloudtaser bridge in time; retry shortly'
              : 'the secret store did not answer the cloudtaser bridge; retry shortly',
          ]),
        };
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onCancel);
      }
    },
    close: () => agent.close(),
  };
}

function withList(path: string): string {
  return `${path}${path.includes('?') ? '&' : '?'}list=true`;
}
