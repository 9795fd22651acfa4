/** TLS settings both ends of the inner (end-to-end) TLS agree on. */
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type TLSSocket, type TlsOptions } from 'node:tls';
import { timerDelay } from '../core/backoff.js';
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
  options: {
    timeoutMs: number;
    code: ErrorCode;
    what: string;
    signal?: AbortSignal;
    /** The paired stream under `socket`: its end is the peer leaving, which the TLS socket over it may not report. */
    transport?: Duplex;
  },
): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('secureConnect', onSecure);
      socket.off('error', onError);
      socket.off('close', onClose);
      socket.off('end', onClose);
      options.transport?.off('end', onClose);
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
      // The TLS socket may still report the same end as an error of its own (an 'end' before the handshake is
      // ECONNRESET): with no listener left that would crash the process.
      socket.on('error', ignoreLateError);
      socket.destroy();
      reject(err);
    };
    const onError = (err: Error) =>
      fail(
        isPeerGone(err)
          ? peerLeft(options.code, options.what, err)
          : new CloudtaserError(options.code, `${options.what} failed: ${err.message}`, { cause: err }),
      );
    const onClose = () => fail(peerLeft(options.code, options.what));
    const onAbort = () => fail(new CloudtaserError('CT_CANCELLED', `${options.what} was cancelled`));
    const timer = setTimeout(
      () =>
        fail(
          new CloudtaserError(
            options.code,
            `${options.what} did not complete within ${options.timeoutMs} ms`,
          ),
        ),
      timerDelay(options.timeoutMs),
    );
    socket.once('secureConnect', onSecure);
    socket.once('error', onError);
    socket.once('close', onClose);
    socket.once('end', onClose);
    // Only its end: its close also follows our own destroy after a TLS error, which must keep its reason.
    options.transport?.once('end', onClose);
    // Gone already (while the caller read the cluster's trust from OpenBao, say): no event would come.
    if (options.transport && hasEnded(options.transport)) onClose();
    else if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function ignoreLateError(): void {}

/**
 * The peer went away before the inner handshake completed: `details.peerLeft` marks it. With several beacon replicas
 * this is routine (a peer that paired on two replicas at once keeps one and closes the other), not a failure to
 * report; a peer that answered and then failed gets the TLS error instead.
 */
function peerLeft(code: ErrorCode, what: string, cause?: Error): CloudtaserError {
  return new CloudtaserError(
    code,
    `${what} failed: the peer left before it completed (it paired on another beacon replica too and kept that one, or it went away)`,
    { details: { peerLeft: true }, ...(cause ? { cause } : {}) },
  );
}

function isPeerGone(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ECONNRESET' || code === 'EPIPE' || /socket disconnected before secure/i.test(err.message);
}

function hasEnded(stream: Duplex): boolean {
  return stream.destroyed || stream.readableEnded;
}

/** True for the error of a handshake whose peer left before it completed (see peerLeft). */
export function peerLeftHandshake(err: unknown): boolean {
  return err instanceof CloudtaserError && err.details?.peerLeft === true;
}

/** OpenSSL verification codes an operator meets, in words. */
const CERTIFICATE_ERRORS: Record<string, string> = {
  CERT_HAS_EXPIRED: 'the certificate has expired (or this clock runs ahead)',
  CERT_NOT_YET_VALID: 'the certificate is not valid yet (or this clock runs behind)',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'it is not issued by the cluster CA',
  UNABLE_TO_GET_ISSUER_CERT: 'it is not issued by the cluster CA',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'it is not issued by the cluster CA',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'it is self-signed, not issued by the cluster CA',
  CERT_SIGNATURE_FAILURE: 'its signature does not verify',
  UNABLE_TO_VERIFY_FIRST_CERTIFICATE: 'it is not issued by the cluster CA',
};

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
    // Node's TLS server drops a client whose certificate fails verification without saying why (no
    // 'tlsClientError'), so verification failures are enforced here instead, where the reason is known.
    const enforceClientCert = options.requestCert === true && options.rejectUnauthorized !== false;
    const server = createTlsServer({
      ...options,
      ...(enforceClientCert ? { rejectUnauthorized: false } : {}),
      minVersion: INNER_TLS_MIN_VERSION,
    });
    const cleanup = () => {
      clearTimeout(timer);
      guard.signal?.removeEventListener('abort', onAbort);
      server.removeAllListeners();
      stream.off('close', onClose);
      stream.off('end', onClose);
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
      timerDelay(guard.timeoutMs),
    );
    // The server's TLS socket copies `stream`'s allowHalfOpen and reads through its handle, so `stream` reports
    // nothing once the handshake begins. Half-open, a TLS socket whose peer ended before the handshake completed
    // would wait for our timeout; closed instead, its end reaches us as a tlsClientError at once. What the caller
    // chose is back once the handshake is done.
    const halfOpen = stream.allowHalfOpen;
    stream.allowHalfOpen = false;
    server.once('secureConnection', (socket: TLSSocket) => {
      if (settled) return socket.destroy();
      stream.allowHalfOpen = halfOpen;
      socket.allowHalfOpen = halfOpen;
      if (enforceClientCert && !socket.authorized) {
        socket.destroy();
        const why = String(socket.authorizationError ?? 'no certificate');
        fail(
          new CloudtaserError(
            guard.code,
            `${guard.what} failed: the peer's certificate was refused: ${CERTIFICATE_ERRORS[why] ?? why} (${why})`,
          ),
        );
        return;
      }
      settled = true;
      cleanup();
      resolve(socket);
    });
    server.once('tlsClientError', (err: Error) =>
      fail(
        isPeerGone(err)
          ? peerLeft(guard.code, guard.what, err)
          : new CloudtaserError(guard.code, `${guard.what} failed: ${err.message}`, { cause: err }),
      ),
    );
    const onClose = () => fail(peerLeft(guard.code, guard.what));
    stream.once('close', onClose);
    stream.once('end', onClose);
    if (hasEnded(stream)) return onClose();
    if (guard.signal?.aborted) return onAbort();
    guard.signal?.addEventListener('abort', onAbort, { once: true });
    server.emit('connection', stream);
  });
}
