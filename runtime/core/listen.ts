/**
 * One way to put an HTTP(S) server on a port, for every listener a process has (probes, pod API, webhook):
 * the same listen error (CT_LISTEN_FAILED naming the flag's purpose), the same `<scheme>://host:port` URL and
 * the same close, which also ends keep-alive connections so shutdown never waits on an idle client.
 */

import {
  createServer as createHttpServer,
  type Server as HttpServer,
  type RequestListener,
  STATUS_CODES,
} from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { type AddressInfo, createServer as createTcpServer } from 'node:net';
import type { Duplex } from 'node:stream';
import { timerDelay } from './backoff.js';
import { CloudtaserError } from './errors.js';
import { type Logger, silentLogger } from './log.js';
import { createLogSummarizer } from './log-summary.js';

export interface ListeningServer {
  /** `http(s)://host:port` as bound (IPv6 hosts in brackets). */
  readonly url: string;
  readonly port: number;
  /**
   * Stops accepting connections and closes idle keep-alive ones at once; requests in flight get `graceMs` to
   * finish (their connections close after the answer), then every connection is cut. Without `graceMs`: cut now.
   */
  close(graceMs?: number): Promise<void>;
}

/**
 * HTTPS with the given certificate (TLS 1.2 at least), HTTPS whose certificate `setSecureContext` gives later
 * (`'later'`: handshakes fail until then), or plain HTTP when `tls` is false (probes, tests, local use). Every
 * listener of ours is made here, so requests Node's parser refuses are answered with a coded body everywhere
 * (answerParserRefusals), told to `onRefused`.
 */
export function createHttpOrHttpsServer(
  tls: { readonly certPem: string; readonly keyPem: string } | 'later' | false,
  handler: RequestListener,
  onRefused?: (refusal: ParserRefusal) => void,
): HttpServer | HttpsServer {
  const server =
    tls === false
      ? createHttpServer(handler)
      : createHttpsServer(
          tls === 'later'
            ? { minVersion: 'TLSv1.2' }
            : { cert: tls.certPem, key: tls.keyPem, minVersion: 'TLSv1.2' },
          handler,
        );
  answerParserRefusals(server, onRefused);
  return server;
}

/** A request Node's HTTP parser refused, as answered (see answerParserRefusals). */
export interface ParserRefusal {
  readonly status: number;
  readonly code: 'CT_HTTP_REFUSED';
  /** The answer's error line without the code. */
  readonly reason: string;
  /** llhttp's or Node's code: HPE_INVALID_METHOD, HPE_HEADER_OVERFLOW, ERR_HTTP_REQUEST_TIMEOUT... */
  readonly parserCode: string;
  readonly remoteAddress: string;
}

/**
 * Node's parser answers what it refuses (a request line or header that is not HTTP/1.1, a smuggling-shaped
 * Content-Length with Transfer-Encoding, headers over 16 KiB, a request too slow) with a bare status and no body,
 * before any handler runs: nothing in the answer or the log said which listener refused what (outside drills, stops
 * 37 to 39). This answers it the way OpenBao's clients read errors, `{"errors":["CT_HTTP_REFUSED: ..."]}`, with the
 * status Node would have sent, and tells `onRefused` (the caller's log line and metric). As Node does, a connection
 * whose answer to an earlier request has started is cut without a word (a second answer would corrupt it).
 */
function answerParserRefusals(
  server: HttpServer | HttpsServer,
  onRefused?: (refusal: ParserRefusal) => void,
): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    const { status, reason } = describeParserRefusal(err);
    const body = JSON.stringify({ errors: [`CT_HTTP_REFUSED: ${reason}`] });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
    // A client that never reads its answer must not keep the socket: the answer is small, a second is plenty.
    setTimeout(() => socket.destroy(), 1_000).unref();
    const remoteAddress = (socket as { remoteAddress?: string }).remoteAddress ?? '';
    onRefused?.({
      status,
      code: 'CT_HTTP_REFUSED',
      reason,
      parserCode: err.code ?? 'unknown',
      remoteAddress,
    });
  });
}

/**
 * The log line of a listener whose refusals have no line of their own (webhook, TokenReview listener): `event` at
 * warn, once per client address a minute and then a summary, since a stranger can send malformed requests at will.
 */
export function logParserRefusals(
  log: Logger,
  event: string,
  what: string,
): { onRefused(refusal: ParserRefusal): void; close(): void } {
  // 100 addresses a minute in full, then one shared summary (a flood from thousands of addresses: an outside drill).
  const lines = createLogSummarizer(log, {
    summaryEvent: `${event}_summary`,
    keyFields: ['remoteAddress'],
    maxKeys: 100,
  });
  return {
    onRefused: (refusal) =>
      lines.warn(
        refusal.remoteAddress,
        { event, ...refusal },
        `${what}: a request refused by the HTTP parser`,
      ),
    close: () => lines.close(),
  };
}

/** The status Node would have answered with, and why in words (llhttp's fixed reason, never the client's bytes). */
function describeParserRefusal(err: NodeJS.ErrnoException): { status: number; reason: string } {
  const given = (err as { reason?: unknown }).reason;
  const said = typeof given === 'string' ? given : '';
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return {
        status: 431,
        reason:
          'the request headers are larger than this server reads (16 KiB in all); send fewer or shorter ones',
      };
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return { status: 413, reason: 'the chunk extensions of the request body are too large' };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { status: 408, reason: 'the request did not arrive in time; send it again' };
    case 'HPE_INVALID_METHOD':
      return {
        status: 400,
        reason:
          'the request line does not start with an HTTP method this server knows (GET, HEAD, POST, PUT, PATCH, DELETE, LIST, SCAN), as when a TLS client dials a plain-HTTP port',
      };
    default:
      return {
        status: 400,
        reason: `the request is not well-formed HTTP/1.1 (${err.code ?? 'parse error'}${said ? `: ${said.slice(0, 80)}` : ''}); nothing was forwarded`,
      };
  }
}

export function listenHttp(
  server: HttpServer | HttpsServer,
  options: {
    readonly host?: string;
    readonly port: number;
    /** What listens, for the error and the log: "the pod API", "health probes". */
    readonly what: string;
    /** Log event on success, e.g. `podapi.listening`. */
    readonly event: string;
    readonly logger?: Logger;
  },
): Promise<ListeningServer> {
  const host = options.host ?? '0.0.0.0';
  const scheme = isTlsServer(server) ? 'https' : 'http';
  const log = options.logger ?? silentLogger;
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(cannotListen(options.what, host, options.port, err)));
    server.listen(options.port, host, () => {
      const address = server.address() as AddressInfo;
      log.info({ event: options.event, port: address.port, scheme }, `${options.what} listening`);
      resolve({
        url: `${scheme}://${formatHost(address.address)}:${address.port}`,
        port: address.port,
        close: (graceMs = 0) =>
          new Promise<void>((done) => {
            // Closed once every connection is: no new ones are accepted, and idle keep-alive ones are closed
            // now and, while requests are answered, as each becomes idle. Nothing is counted per request.
            let sweep: NodeJS.Timeout | undefined;
            let cut: NodeJS.Timeout | undefined;
            server.close(() => {
              clearInterval(sweep);
              clearTimeout(cut);
              done();
            });
            server.closeIdleConnections();
            if (graceMs <= 0) {
              server.closeAllConnections();
              return;
            }
            sweep = setInterval(() => server.closeIdleConnections(), IDLE_SWEEP_MS);
            cut = setTimeout(() => {
              clearInterval(sweep);
              server.closeAllConnections();
            }, timerDelay(graceMs));
          }),
      });
    });
  });
}

/** While a graceful close waits for answers: how often connections that became idle are closed. */
const IDLE_SWEEP_MS = 25;

/** https.Server is a tls.Server underneath; it alone has `setSecureContext`. */
function isTlsServer(server: HttpServer | HttpsServer): boolean {
  return typeof (server as { setSecureContext?: unknown }).setSecureContext === 'function';
}

export function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * Holds a port before the server that will use it can be made (the pod API needs the certificate a bootstrap
 * brings): a port another process holds then fails the process at start, with listenHttp's error, instead of
 * after it has bootstrapped and taken the cluster over from a broker that could serve (an outside drill). The
 * server releases it right before it listens there.
 */
export async function reservePort(options: {
  readonly host?: string;
  readonly port: number;
  readonly what: string;
}): Promise<{ release(): Promise<void> }> {
  const host = options.host ?? '0.0.0.0';
  const holder = createTcpServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    holder.once('error', (err) => reject(cannotListen(options.what, host, options.port, err)));
    holder.listen(options.port, host, () => resolve());
  });
  let released: Promise<void> | undefined;
  return {
    release() {
      released ??= new Promise<void>((done) => holder.close(() => done()));
      return released;
    },
  };
}

/**
 * The one listen error: EADDRINUSE, EACCES and the like are this host's state, not a bug and not a typo (it was
 * `CT_INVALID_ARGUMENT`, exit 2, which sent an outside SRE drill to re-read the flags), named with the purpose and
 * what to do.
 */
export function cannotListen(what: string, host: string, port: number, err: Error): CloudtaserError {
  return new CloudtaserError(
    'CT_LISTEN_FAILED',
    `cannot listen for ${what} on ${host}:${port}: ${err.message}${listenAdvice(err)}`,
    {
      cause: err,
      details: { host, port, errno: (err as NodeJS.ErrnoException).code },
    },
  );
}

function listenAdvice(err: Error): string {
  switch ((err as NodeJS.ErrnoException).code) {
    case 'EADDRINUSE':
      return ' (another process listens there, perhaps an earlier instance still stopping: `ss -ltnp` names it; stop it or choose another port)';
    case 'EACCES':
      return ' (a port below 1024 needs the privilege to bind it, CAP_NET_BIND_SERVICE: grant it or choose a port from 1024)';
    case 'EADDRNOTAVAIL':
      return ' (this host has no such address: listen on 0.0.0.0, :: or one of its own addresses)';
    default:
      return '';
  }
}
