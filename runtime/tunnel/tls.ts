/** TLS settings both ends of the inner (end-to-end) TLS agree on. */
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type TLSSocket, type TlsOptions } from 'node:tls';
import { CloudtaserError, type ErrorCode } from '../core/errors.js';

/** ALPN of the init room's TLS: the bootstrap messages follow. */
export const INIT_ALPN = 'cloudtaser-init/1';
/** ALPN of the operational room's mutual TLS: the tunnel multiplexer follows. */
export const TUNNEL_ALPN = 'cloudtaser-tunnel/1';
export const INNER_TLS_MIN_VERSION = 'TLSv1.3' as const;

/**
 * Waits for the client side of an inner handshake to finish AND the peer certificate to verify, or fails with
 * `code` after `timeoutMs`. Only `secureConnect` counts: `secure` fires before Node checks the peer's chain and
 * validity, and a verification failure (expired, not yet valid, unknown CA) then arrives as a later `error`.
 */
export function awaitSecure(
  socket: TLSSocket,
  options: { timeoutMs: number; code: ErrorCode; what: string; signal?: AbortSignal },
): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('secureConnect', onSecure);
      socket.off('error', onError);
      socket.off('close', onClose);
      options.signal?.removeEventListener('abort', onAbort);
    };
    const onSecure = () => {
      cleanup();
      // A socket error after this point belongs to whoever uses the socket next; until they attach their own
      // listener, a stray one must not crash the process.
      socket.on('error', ignoreLateError);
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
    socket.once('secureConnect', onSecure);
    socket.once('error', onError);
    socket.once('close', onClose);
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function ignoreLateError(): void {}

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
    let settled = false;
    const fail = (err: CloudtaserError) => {
      if (settled) return;
      settled = true;
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
      if (settled) return socket.destroy();
      settled = true;
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
