/**
 * A byte tunnel through an HTTP proxy (CONNECT, RFC 9110 §9.3.6) for connections that are not HTTP requests: the
 * beacon's raw TLS door, its plain door, and the socket `ws` runs the WebSocket door over. The CONNECT exchange
 * itself is undici's (`Client#connect`, the same call undici's ProxyAgent tunnels with), so no HTTP is written by
 * hand here; this file adds the error codes that name the proxy.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { Client } from 'undici';
import { CloudtaserError } from '../core/errors.js';
import { authority, type ProxyEndpoint } from './settings.js';

export interface TunnelOptions {
  readonly signal?: AbortSignal;
  /** TCP (and TLS, for an https:// proxy) connect to the proxy. @default 10000 */
  readonly connectTimeoutMs?: number;
}

/** Network codes that mean the proxy itself was not reached (as opposed to refusing). */
const PROXY_UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/**
 * Opens `CONNECT host:port` through the proxy and resolves with the tunnel socket once the proxy answered 2xx.
 * The socket behaves like a fresh TCP connection to the destination: TLS options (servername, client
 * certificate, ALPN) go to whatever the caller layers on top, untouched. Credentials from the proxy URL go in
 * `Proxy-Authorization`; nothing logs them.
 */
export async function openProxyTunnel(
  proxy: ProxyEndpoint,
  destination: { readonly host: string; readonly port: number },
  options: TunnelOptions = {},
): Promise<Socket> {
  const target = authority(destination.host, destination.port);
  if (options.signal?.aborted) throw cancelled(proxy, target);
  const client = new Client(proxy.display, {
    connect: { timeout: options.connectTimeoutMs ?? 10_000 },
  });
  const authorization = proxy.authorization();
  try {
    const { statusCode, headers, socket } = await client.connect({
      path: target,
      headers: { host: target, ...(authorization ? { 'proxy-authorization': authorization } : {}) },
      signal: options.signal,
    });
    // RFC 9110 §9.3.6: any 2xx means the proxy switched to tunnel mode.
    if (statusCode >= 200 && statusCode < 300) return socket as Socket;
    socket.on('error', () => undefined).destroy();
    throw refusal(proxy, target, statusCode, headers);
  } catch (err) {
    if (err instanceof CloudtaserError) throw err;
    if (options.signal?.aborted) throw cancelled(proxy, target, err);
    throw tunnelFailure(proxy, target, err);
  } finally {
    // The tunnel socket left the client at the upgrade; this only ends the client's bookkeeping.
    void client.close().catch(() => undefined);
  }
}

/** The CT_PROXY_* error for a proxy's non-2xx answer to CONNECT. */
export function refusal(
  proxy: ProxyEndpoint,
  target: string,
  status: number,
  headers: Record<string, string | string[] | undefined> = {},
): CloudtaserError {
  const details = { proxy: proxy.display, proxySource: proxy.source, destination: target, status };
  const statusText = `${status}${STATUS_CODES[status] ? ` ${STATUS_CODES[status]}` : ''}`;
  if (status === 407) {
    const offered = [headers['proxy-authenticate'] ?? []]
      .flat()
      .map((challenge) => challenge.trim().split(/\s+/)[0])
      .filter(Boolean);
    const basic = offered.length === 0 || offered.some((scheme) => scheme.toLowerCase() === 'basic');
    const advice = !basic
      ? `it offers ${offered.join(', ')}, and cloudtaser sends Basic credentials only: ask for a Basic account on the proxy`
      : proxy.hasCredentials
        ? 'it refused the user name and password in the proxy URL: check them (percent-encode special characters)'
        : `it wants credentials: put them in the proxy URL, ${proxy.protocol}//user:password@${authority(proxy.host, proxy.port)}`;
    return new CloudtaserError(
      'CT_PROXY_AUTH',
      `the HTTP proxy ${proxy.describe()} answered CONNECT ${target} with ${statusText}: ${advice}`,
      { details: { ...details, offered } },
    );
  }
  const advice =
    status === 403
      ? `its policy does not allow this destination: ask the proxy administrators to allow CONNECT to ${target}`
      : status === 502 || status === 503 || status === 504
        ? `the proxy could not reach ${target} itself: check the destination from the proxy's side`
        : 'check the proxy log for why';
  return new CloudtaserError(
    'CT_PROXY_REFUSED',
    `the HTTP proxy ${proxy.describe()} refused CONNECT ${target} with ${statusText}: ${advice}`,
    { details },
  );
}

/** A failure before any answer: the proxy was not reached, closed without answering, or did not speak HTTP. */
export function tunnelFailure(proxy: ProxyEndpoint, target: string, err: unknown): CloudtaserError {
  const code = (err as { code?: unknown })?.code;
  const details = { proxy: proxy.display, proxySource: proxy.source, destination: target, reason: code };
  if (typeof code === 'string' && PROXY_UNREACHABLE_CODES.has(code)) {
    return new CloudtaserError(
      'CT_PROXY_UNREACHABLE',
      `could not reach the HTTP proxy ${proxy.describe()} to open a tunnel to ${target}: ${code}; check the proxy address and that this host may connect to it`,
      { cause: err, details },
    );
  }
  if (typeof code === 'string' && code.startsWith('HPE_')) {
    return new CloudtaserError(
      'CT_PROXY_REFUSED',
      `${proxy.describe()} answered CONNECT ${target} with something that is not HTTP (${code}); is it an HTTP proxy?`,
      { cause: err, details },
    );
  }
  if (
    typeof code === 'string' &&
    (code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || code.includes('CERT'))
  ) {
    return new CloudtaserError(
      'CT_PROXY_UNREACHABLE',
      `the TLS handshake with the HTTPS proxy ${proxy.describe()} failed: ${code}; trust its CA with NODE_EXTRA_CA_CERTS or use an http:// proxy URL`,
      { cause: err, details },
    );
  }
  return new CloudtaserError(
    'CT_PROXY_REFUSED',
    `the HTTP proxy ${proxy.describe()} closed the connection without answering CONNECT ${target} (${typeof code === 'string' ? code : String((err as Error)?.message ?? err)}): it may refuse or fail to reach the destination; check the proxy log`,
    { cause: err, details },
  );
}

function cancelled(proxy: ProxyEndpoint, target: string, cause?: unknown): CloudtaserError {
  return new CloudtaserError(
    'CT_CANCELLED',
    `opening a tunnel to ${target} through ${proxy.display} was cancelled`,
    {
      cause,
    },
  );
}
