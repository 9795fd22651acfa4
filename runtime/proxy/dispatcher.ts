/**
 * The undici dispatcher for one HTTP(S) origin (OpenBao), honouring the process's proxy rule: undici's own
 * ProxyAgent when a proxy applies, a plain Agent otherwise. The decision is made here (settings.ts), not by
 * undici's EnvHttpProxyAgent, so the OpenBao client and the beacon dialer follow the same rule.
 */
import { Agent, type Dispatcher, ProxyAgent } from 'undici';
import { type ProxyRoute, type ProxySetting, proxySettingFromEnvironment, routeFor } from './settings.js';

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
