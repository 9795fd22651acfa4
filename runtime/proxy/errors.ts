/**
 * The CT_PROXY_* errors: what a proxy refusal, an unreachable proxy, or a proxy failure reported by undici or
 * hpagent becomes. No undici import here, so the Kubernetes client can use it without pulling undici in.
 */
import { STATUS_CODES } from 'node:http';
import { CloudtaserError } from '../core/errors.js';
import { authority, type ProxyEndpoint } from './settings.js';

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
  // undici's HTTPParserError; its code is sometimes unset, its name is not.
  if ((typeof code === 'string' && code.startsWith('HPE_')) || (err as Error)?.name === 'HTTPParserError') {
    return new CloudtaserError(
      'CT_PROXY_REFUSED',
      `${proxy.describe()} answered CONNECT ${target} with something that is not HTTP (${typeof code === 'string' ? code : (err as Error).message}); is it an HTTP proxy?`,
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
