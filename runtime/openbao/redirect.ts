/**
 * Standby redirects. An OpenBao standby that cannot forward a request answers 307 with a `Location` on the
 * active node (internal/http/handler.go `respondStandby`: same path and query on the leader's api_addr), and
 * undici does not follow redirects. The same request goes there again: method, body, token and namespace, for a
 * bounded number of hops, and never to another scheme, which would send the token somewhere it was not meant
 * to go (an https client redirected to http) or that the configured CA does not cover.
 */
import type { Dispatcher } from 'undici';
import { CloudtaserError } from '../core/errors.js';

/** Hops a request may take; an HA cluster needs one (standby -> active), more means a loop. */
export const MAX_REDIRECTS = 3;

export interface RedirectableRequest {
  readonly url: URL;
  readonly method: Dispatcher.HttpMethod;
  readonly headers: Record<string, string>;
  readonly body?: string | Buffer;
  readonly signal: AbortSignal;
  readonly timeoutMs: number;
}

/**
 * Sends `request`, following 307/308 answers as described above. Throws `CT_OPENBAO_REDIRECT` for a redirect
 * without a usable `Location`, to another scheme, or beyond `maxRedirects`. `onRedirect` sees each hop (for logs).
 */
export async function requestFollowingRedirects(
  dispatcher: Dispatcher,
  request: RedirectableRequest,
  options: { maxRedirects?: number; onRedirect?: (from: URL, to: URL) => void } = {},
): Promise<Dispatcher.ResponseData> {
  const maxRedirects = options.maxRedirects ?? MAX_REDIRECTS;
  let url = request.url;
  for (let hop = 0; ; hop++) {
    const response = await dispatcher.request({
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method: request.method,
      headers: request.headers,
      body: request.body,
      signal: request.signal,
      headersTimeout: request.timeoutMs,
      bodyTimeout: request.timeoutMs,
    });
    if (response.statusCode !== 307 && response.statusCode !== 308) return response;
    await response.body.dump();
    const next = redirectTarget(url, {
      method: request.method,
      statusCode: response.statusCode,
      location: firstHeader(response.headers.location),
      hop,
      maxRedirects,
    });
    options.onRedirect?.(url, next);
    url = next;
  }
}

/**
 * Where a 307/308 answer to `from` sends the request next, or `CT_OPENBAO_REDIRECT` for a redirect without a
 * usable `Location`, to another scheme, or beyond `maxRedirects` (`hop` counts the redirects already followed).
 * Shared by the OpenBao client and the bridge's pod API forwarder.
 */
export function redirectTarget(
  from: URL,
  answer: {
    readonly method: string;
    readonly statusCode: number;
    readonly location: string | undefined;
    readonly hop: number;
    readonly maxRedirects?: number;
  },
): URL {
  const { location, hop } = answer;
  const maxRedirects = answer.maxRedirects ?? MAX_REDIRECTS;
  const refuse = (why: string): never => {
    throw new CloudtaserError(
      'CT_OPENBAO_REDIRECT',
      `OpenBao at ${from.origin} redirected ${answer.method} ${from.pathname} ${why}; point the client at the active node, or fix the standbys' api_addr`,
      { details: { from: from.origin, location: location?.slice(0, 200), hops: hop } },
    );
  };
  if (!location) return refuse(`(${answer.statusCode}) without a Location header`);
  let next: URL;
  try {
    next = new URL(location, from);
  } catch {
    return refuse(`to ${JSON.stringify(location.slice(0, 200))}, which is not a URL`);
  }
  if (next.protocol !== from.protocol)
    refuse(`to ${next.origin}: another scheme than ${from.protocol.slice(0, -1)}, which is not followed`);
  if (hop >= maxRedirects) refuse(`${hop + 1} times (the last to ${next.origin}): a redirect loop`);
  return next;
}

export function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
