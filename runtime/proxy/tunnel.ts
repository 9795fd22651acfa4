/**
 * A byte tunnel through an HTTP proxy (CONNECT, RFC 9110 §9.3.6) for connections that are not HTTP requests: the
 * beacon's raw TLS door, its plain door, and the socket `ws` runs the WebSocket door over. The CONNECT exchange
 * itself is undici's (`Client#connect`, the same call undici's ProxyAgent tunnels with), so no HTTP is written by
 * hand here; errors.ts turns a refusal into the CT_PROXY_* code that names the proxy.
 */
import type { Socket } from 'node:net';
import { CloudtaserError } from '../core/errors.js';
import { refusal, tunnelFailure } from './errors.js';
import { authority, type ProxyEndpoint } from './settings.js';

export interface TunnelOptions {
  readonly signal?: AbortSignal;
  /** TCP (and TLS, for an https:// proxy) connect to the proxy. @default 10000 */
  readonly connectTimeoutMs?: number;
}

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
  // Loaded on first use: a broker without a proxy never pays for undici at start.
  const { Client } = await import('undici');
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

function cancelled(proxy: ProxyEndpoint, target: string, cause?: unknown): CloudtaserError {
  return new CloudtaserError(
    'CT_CANCELLED',
    `opening a tunnel to ${target} through ${proxy.display} was cancelled`,
    {
      cause,
    },
  );
}
