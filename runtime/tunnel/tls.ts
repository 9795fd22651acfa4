/** TLS settings both ends of the inner (end-to-end) TLS agree on. */
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type TLSSocket, type TlsOptions } from 'node:tls';
import { CloudtaserError, type ErrorCode } from '../core/errors.js';

/** ALPN of the init room's TLS: the bootstrap messages follow. */
export const INIT_ALPN = 'cloudtaser-init/1';
/** ALPN of the operational room's mutual TLS: the tunnel multiplexer follows. */
export const TUNNEL_ALPN = 'cloudtaser-tunnel/1';
export const INNER_TLS_MIN_VERSION = 'TLSv1.3' as const;

/** Waits for the inner handshake to finish, or fails with `code` after `timeoutMs`. */
export function awaitSecure(
  socket: TLSSocket,
  options: { timeoutMs: number; code: ErrorCode; what: string; signal?: AbortSignal },
): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('secure', onSecure);
      socket.off('secureConnect', onSecure);
      socket.off('error', onError);
      socket.off('close', onClose);
      options.signal?.removeEventListener('abort', onAbort);
    };
    const onSecure = () => {
      cleanup();
      resolve();
    };
    const fail = (err: CloudtaserError) => {
      cleanup();
      socket.destroy();
      reject(err);
    };
    const onError = (err: Error) =>
      fail(new CloudtaserError(options.code, `${options.what} failed: ${err.message}`, { cause: err }));
    const onClose = () =>
      fail(new CloudtaserError(options.code, `${options.what} failed: the peer closed the connection`));
    const onAbort = () => fail(new CloudtaserError('CT_CANCELLED', `${options.what} was cancelled`));
    const timer = setTimeout(
      () =>
        fail(
          new CloudtaserError(
            options.code,
            `${options.what} did not complete within ${options.timeoutMs} ms`,
          ),
        ),
      options.timeoutMs,
    );
    socket.once('secure', onSecure);
    socket.once('secureConnect', onSecure);
    socket.once('error', onError);
    socket.once('close', onClose);
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Runs the server side of an inner TLS handshake over a paired stream. It goes through a `tls.Server` on
 * purpose: a bare `new TLSSocket({ isServer: true })` neither sets `authorized` nor enforces
 * `rejectUnauthorized`, so client-certificate checks would silently not happen.
 */
export function acceptTls(
  stream: Duplex,
  options: TlsOptions,
  guard: { timeoutMs: number; code: ErrorCode; what: string; signal?: AbortSignal },
): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const server = createTlsServer({ ...options, minVersion: INNER_TLS_MIN_VERSION });
    const cleanup = () => {
      clearTimeout(timer);
      guard.signal?.removeEventListener('abort', onAbort);
      server.removeAllListeners();
      stream.off('close', onClose);
    };
    const fail = (err: CloudtaserError) => {
      cleanup();
      stream.destroy();
      reject(err);
    };
    const onAbort = () => fail(new CloudtaserError('CT_CANCELLED', `${guard.what} was cancelled`));
    const timer = setTimeout(
      () =>
        fail(new CloudtaserError(guard.code, `${guard.what} did not complete within ${guard.timeoutMs} ms`)),
      guard.timeoutMs,
    );
    server.once('secureConnection', (socket: TLSSocket) => {
      cleanup();
      resolve(socket);
    });
    server.once('tlsClientError', (err: Error) =>
      fail(new CloudtaserError(guard.code, `${guard.what} failed: ${err.message}`, { cause: err })),
    );
    const onClose = () =>
      fail(new CloudtaserError(guard.code, `${guard.what} failed: the peer closed the connection`));
    stream.once('close', onClose);
    if (guard.signal?.aborted) return onAbort();
    guard.signal?.addEventListener('abort', onAbort, { once: true });
    server.emit('connection', stream);
  });
}
