/**
 * The undici dispatcher for one HTTP(S) origin (OpenBao), honouring the process's proxy rule: undici's own
 * ProxyAgent when a proxy applies, a plain Agent otherwise. The decision is made here (settings.ts), not by
 * undici's EnvHttpProxyAgent, so the OpenBao client and the beacon dialer follow the same rule.
 */
import { Agent, type Dispatcher, ProxyAgent } from 'undici';
import type { CloudtaserError } from '../core/errors.js';
import type { ProxyEndpoint } from './settings.js';
import { type ProxyRoute, type ProxySetting, proxySettingFromEnvironment, routeFor } from './settings.js';
import { refusal, tunnelFailure } from './tunnel.js';

export interface HttpDispatcherOptions {
  /** The one origin this dispatcher is for, e.g. `https://openbao.example.eu:8200`. */
  readonly origin: string;
  /** PEM of the CA that signed the origin's certificate; replaces the system roots. @default system roots */
  readonly caCertPem?: string;
  /** TCP + TLS connect bound (to the proxy, and through it to the origin). */
  readonly connectTimeoutMs: number;
  /** @default 10000 */
  readonly keepAliveTimeoutMs?: number;
  /** @default the environment (HTTPS_PROXY, HTTP_PROXY, NO_PROXY) */
  readonly proxy?: ProxySetting;
}

/** A dispatcher for `origin` and the route it takes (for messages: which proxy, or why none). */
export function createHttpDispatcher(options: HttpDispatcherOptions): {
  dispatcher: Dispatcher;
  route: ProxyRoute;
} {
  const url = new URL(options.origin);
  const secure = url.protocol === 'https:';
  const route = routeFor(options.proxy ?? proxySettingFromEnvironment(), {
    secure,
    host: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
    port: url.port === '' ? (secure ? 443 : 80) : Number(url.port),
  });
  const tls = { ...(options.caCertPem ? { ca: options.caCertPem } : {}), timeout: options.connectTimeoutMs };
  const keepAliveTimeout = options.keepAliveTimeoutMs ?? 10_000;
  if (!route.proxy) {
    return { dispatcher: new Agent({ connect: tls, keepAliveTimeout }), route };
  }
  const proxy = route.proxy;
  return {
    dispatcher: new ProxyAgent({
      // The URL without credentials; they go in `token`, so undici never holds them in a URL it might print.
      uri: proxy.display,
      ...(proxy.authorization() ? { token: proxy.authorization() } : {}),
      requestTls: tls,
      proxyTls: { timeout: options.connectTimeoutMs },
      keepAliveTimeout,
    }),
    route,
  };
}

/** Codes that, with a proxy in the path, can only come from the connection to the proxy. */
const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * The CT_PROXY_* error for a failure that the proxy caused, or undefined when the failure lies beyond it.
 * undici's ProxyAgent reports a non-2xx CONNECT answer only in its message ("Proxy response (407) !== 200 when
 * HTTP Tunneling", lib/dispatcher/proxy-agent.js), and so does hpagent, which @kubernetes/client-node uses for a
 * kubeconfig's proxy-url ("Bad response: 407", index.js); the tests in test/proxy pin both wordings.
 */
export function proxyFailure(
  err: unknown,
  proxy: ProxyEndpoint,
  destination: string,
): CloudtaserError | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const message = (e as { message?: unknown }).message;
    const match =
      typeof message === 'string'
        ? /Proxy response \((\d{3})\)|^Bad response: (\d{3})$/.exec(message)
        : undefined;
    const status = match?.[1] ?? match?.[2];
    if (status) return refusal(proxy, destination, Number(status));
    const code = (e as { code?: unknown }).code;
    // Through a proxy every TCP connection the dispatcher opens goes to the proxy.
    if (typeof code === 'string' && CONNECT_CODES.has(code)) return tunnelFailure(proxy, destination, e);
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}
