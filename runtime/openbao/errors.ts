import { CloudtaserError, type ErrorCode } from '../core/index.js';
import { errorCodeOf, isConnectionReset } from '../core/net-errors.js';
import { type ProxyEndpoint, proxyFailure } from '../proxy/index.js';

// Shared with the Kubernetes client and the pod API's forwarder; exported here as before.
export { errorCodeOf, isConnectionReset };

/** Facts about one request, for messages and `details`. Never a token. */
export interface RequestContext {
  readonly method: string;
  readonly path: string;
  readonly address: string;
  readonly namespace: string;
  /** The HTTP proxy between us and OpenBao, when there is one. */
  readonly proxy?: ProxyEndpoint;
}

/** Network error codes that mean "this server could not be reached". */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNRESET',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** Connection resets are the only network failures worth a retry: the server was there a moment ago. */

const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'EPROTO',
]);

function details(ctx: RequestContext, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { path: ctx.path, address: ctx.address, namespace: ctx.namespace, ...extra };
}

function where(ctx: RequestContext): string {
  return `${ctx.method} ${ctx.path}${ctx.namespace ? ` in namespace "${ctx.namespace}"` : ''}`;
}

/** Maps a failure below HTTP (DNS, TCP, TLS, the proxy in between) to a stable code. */
export function mapNetworkError(err: unknown, ctx: RequestContext): CloudtaserError {
  if (ctx.proxy) {
    const proxied = proxyFailure(err, ctx.proxy, new URL(ctx.address).host);
    if (proxied) return proxied;
  }
  const code = errorCodeOf(err);
  // Beyond a proxy, the SRE needs to know the path the request took.
  const via = ctx.proxy ? ` through the HTTP proxy ${ctx.proxy.describe()}` : '';
  const reason = `${(err as Error)?.message ?? String(err)}${via}`;
  if (
    code !== undefined &&
    (TLS_CODES.has(code) || code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL'))
  ) {
    // A server that does not speak TLS at all (plain HTTP at an https:// address) is a scheme to change, not a CA
    // to add (an outside docs drill was told to pass a CA for it).
    const notTls = /WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|HTTP_REQUEST|UNKNOWN_PROTOCOL/.test(
      `${code} ${reason}`,
    );
    return new CloudtaserError(
      'CT_OPENBAO_TLS',
      `TLS handshake with OpenBao at ${ctx.address} failed: ${reason} (${code}); ${
        notTls
          ? `what answered does not speak TLS: if OpenBao listens with plain HTTP there, use http://${new URL(ctx.address).host}; else check the port`
          : "pass --secretstore-ca-cert with the CA that signed OpenBao's certificate"
      }`,
      { cause: err, details: details(ctx, { reason: code }) },
    );
  }
  if (code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new CloudtaserError(
      'CT_OPENBAO_TIMEOUT',
      `connecting to OpenBao at ${ctx.address}${via} timed out; check the address and that nothing drops the traffic`,
      { cause: err, details: details(ctx, { reason: code }) },
    );
  }
  return new CloudtaserError(
    'CT_OPENBAO_UNREACHABLE',
    `could not reach OpenBao at ${ctx.address}${via}: ${code ?? reason}; check the address and that OpenBao is running`,
    { cause: err, details: details(ctx, { reason: code ?? reason }) },
  );
}

export function isUnreachableCode(err: unknown): boolean {
  const code = errorCodeOf(err);
  return code !== undefined && UNREACHABLE_CODES.has(code);
}

/** `hint` names how the user raises the timeout; without one the message promises no setting that may not exist. */
export function timeoutError(ctx: RequestContext, timeoutMs: number, hint?: string): CloudtaserError {
  return new CloudtaserError(
    'CT_OPENBAO_TIMEOUT',
    `OpenBao at ${ctx.address}${ctx.proxy ? ` (through the HTTP proxy ${ctx.proxy.describe()})` : ''} did not answer ${where(ctx)} within ${timeoutMs} ms; check its health${hint ? ` or raise the timeout (${hint})` : ''}`,
    { details: details(ctx, { timeoutMs }) },
  );
}

/** True for answers that mean "sealed, or a standby that cannot serve": worth a retry. */
export function isSealedOrStandby(status: number, errors: readonly string[]): boolean {
  const text = errors.join(' ').toLowerCase();
  return status === 503 && (text.includes('sealed') || text.includes('standby') || errors.length === 0);
}

/** An HA standby did not show a write of this process within the bound. */
export function readLagError(
  what: string,
  waitedMs: number,
  boundMs: number,
  ctx: RequestContext,
): CloudtaserError {
  return new CloudtaserError(
    'CT_OPENBAO_READ_LAG',
    `OpenBao at ${ctx.address} still does not show ${what}, written by this process, after ${waitedMs} ms (bound ${boundMs} ms after the write) for ${where(ctx)}: an HA standby is lagging the active node (or someone undid the write meanwhile); check the standbys' replication, or point the client at the active node`,
    { details: details(ctx, { waitedMs, boundMs }) },
  );
}

/**
 * Maps an OpenBao error answer to a stable code. `errors` is OpenBao's `errors` list (never echoes a token);
 * `retries` says how often the request was already retried.
 */
export function mapHttpError(
  status: number,
  errors: readonly string[],
  ctx: RequestContext,
  retries = 0,
): CloudtaserError {
  const text = errors.map((e) => e.replace(/^1 error occurred:\s*\*\s*/, '').trim()).join('; ');
  const lower = text.toLowerCase();
  const info = details(ctx, { status, errors: [...errors] });
  let code: ErrorCode;
  let message: string;
  if (status === 429) {
    code = 'CT_OPENBAO_RATE_LIMITED';
    message = `OpenBao's rate-limit quota refused ${where(ctx)} (${text || 'status 429'}) after ${retries} retries; raise the quota (sys/quotas/rate-limit) for this path or namespace, or make fewer requests`;
  } else if (status === 403) {
    code = 'CT_OPENBAO_PERMISSION_DENIED';
    message = `OpenBao denied ${where(ctx)} (${text || 'permission denied'}): the token is missing, expired or revoked, or its policies do not allow this path; check the token and its policies`;
  } else if (lower.includes('sealed')) {
    code = 'CT_OPENBAO_SEALED';
    message = `OpenBao at ${ctx.address} is sealed; unseal it and retry`;
  } else if (status === 503 || lower.includes('standby')) {
    code = 'CT_OPENBAO_SEALED';
    message = `OpenBao at ${ctx.address} is a standby that cannot serve ${where(ctx)} (${text || 'status 503'}); point the client at the active node or retry`;
  } else if (lower.includes('namespace not found')) {
    code = 'CT_OPENBAO_NAMESPACE_NOT_FOUND';
    message = `OpenBao namespace "${ctx.namespace}" (or a parent of it) does not exist for ${where(ctx)}; register the cluster first or check the namespace`;
  } else if (lower.includes('check-and-set parameter did not match')) {
    code = 'CT_OPENBAO_CAS_MISMATCH';
    message = `check-and-set write to ${ctx.path} lost: the record changed or already exists`;
  } else if (status === 400) {
    code = 'CT_OPENBAO_BAD_REQUEST';
    message = `OpenBao rejected ${where(ctx)}: ${text || 'bad request'}`;
  } else if (status === 404) {
    code = 'CT_OPENBAO_NOT_FOUND';
    message = `OpenBao has nothing at ${where(ctx)}${text ? ` (${text})` : ''}; check the mount and path`;
  } else {
    code = 'CT_OPENBAO_ERROR';
    message = `OpenBao answered ${status} to ${where(ctx)}${text ? `: ${text}` : ''}`;
  }
  return new CloudtaserError(code, message, { details: info });
}
