/**
 * Socket-level failures every client of ours tells apart (OpenBao, Kubernetes, the pod API's forwarder): the `code`
 * of an error or of one of its causes (undici and Node wrap the socket's error).
 */

const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET']);

/** The first `code` on the error or its causes (at most five deep). */
export function errorCodeOf(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** The connection was reset: for a pooled keep-alive socket, the peer (or a load balancer) dropped it while idle. */
export function isConnectionReset(err: unknown): boolean {
  const code = errorCodeOf(err);
  return code !== undefined && RESET_CODES.has(code);
}
