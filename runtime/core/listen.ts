/**
 * One way to put an HTTP(S) server on a port, for every listener a process has (probes, pod API, webhook):
 * the same listen error (CT_LISTEN_FAILED naming the flag's purpose), the same `<scheme>://host:port` URL and
 * the same close, which also ends keep-alive connections so shutdown never waits on an idle client.
 */

import { createServer as createHttpServer, type Server as HttpServer, type RequestListener } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { type AddressInfo, createServer as createTcpServer } from 'node:net';
import { timerDelay } from './backoff.js';
import { CloudtaserError } from './errors.js';
import { type Logger, silentLogger } from './log.js';

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

/** HTTPS with the given certificate (TLS 1.2 at least), or plain HTTP when `tls` is false (tests, local use). */
export function createHttpOrHttpsServer(
  tls: { readonly certPem: string; readonly keyPem: string } | false,
  handler: RequestListener,
): HttpServer | HttpsServer {
  return tls === false
    ? createHttpServer(handler)
    : createHttpsServer({ cert: tls.certPem, key: tls.keyPem, minVersion: 'TLSv1.2' }, handler);
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
