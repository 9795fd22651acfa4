import type { Server } from 'node:http';
import { CloudtaserError } from './errors.js';
import { createHttpOrHttpsServer, formatHost, listenHttp } from './listen.js';
import { type Logger, silentLogger } from './log.js';

/** An extra GET route on a health port: `/status` (JSON) on bridge and broker, `/metrics` on the beacon. */
export type HealthRoute = () =>
  | { contentType: string; body: string }
  | Promise<{ contentType: string; body: string }>;

export interface HealthServerOptions {
  readonly host?: string;
  readonly port: number;
  /** `/readyz` answers 200 while this holds. @default always ready */
  readonly ready?: () => boolean;
  readonly routes?: Readonly<Record<string, HealthRoute>>;
  readonly logger?: Logger;
}

export interface HealthServer {
  /** http://host:port */
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
}

/**
 * The probe port every process serves: `/healthz` (the process is alive), `/readyz` (it can do its job) and
 * the routes given. One implementation, so probes behave the same on the beacon, the bridge and the broker.
 */
export function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const log = options.logger ?? silentLogger;
  // Plain HTTP (`false`): an http.Server, what the handle exposes.
  const server = createHttpOrHttpsServer(false, (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const route = options.routes?.[path];
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const ready = options.ready?.() ?? true;
      res
        .writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' })
        .end(ready ? 'ready\n' : 'not ready\n');
    } else if (route) {
      Promise.resolve()
        .then(route)
        .then(
          ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body),
          () => res.writeHead(500).end(),
        );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  }) as Server;
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;
  return listenHttp(server, {
    host: options.host,
    port: options.port,
    what: 'health probes',
    event: 'health.listening',
    logger: log,
  }).then((listening) => ({ url: listening.url, server, close: listening.close }));
}

/** `host:port`, `[v6]:port` or `:port` (all interfaces) from a `--*-listen` flag. */
export function parseListenAddress(value: string, flag: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value.trim());
  const port = match ? Number(match[3]) : Number.NaN;
  if (!match || port > 65_535) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `${flag} ${JSON.stringify(value)} is not host:port (e.g. :443 for every address, or 0.0.0.0:443)`,
    );
  }
  // `:port` is every address of every family: Node binds `::` (dual-stack), or 0.0.0.0 where IPv6 is off, so an
  // IPv6-only cluster (EKS in IPv6 mode) reaches it too. `0.0.0.0:port` stays IPv4 only, as written.
  return { host: match[1] ?? match[2] ?? '', port };
}

export { formatHost };
