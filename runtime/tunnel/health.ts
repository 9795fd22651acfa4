/**
 * The small HTTP endpoint the broker and the bridge serve for probes: /healthz (the process is alive),
 * /readyz (the process can do its job, whatever the beacon is doing) and /status (JSON for humans and tests).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CloudtaserError } from '../core/errors.js';
import { type Logger, silentLogger } from '../core/log.js';

export interface HealthServerOptions {
  readonly host?: string;
  readonly port: number;
  readonly status: () => unknown;
  readonly ready?: () => boolean;
  readonly logger?: Logger;
}

export interface HealthServer {
  /** http://host:port */
  readonly url: string;
  close(): Promise<void>;
}

/** Parses `host:port` or `:port` (all interfaces) as the --health-listen flags take it. */
export function parseListenAddress(value: string, flag: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value.trim());
  const port = match ? Number(match[3]) : Number.NaN;
  if (!match || port > 65_535) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `${flag} ${JSON.stringify(value)} must look like host:port or :port`,
    );
  }
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port };
}

export function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const log = options.logger ?? silentLogger;
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const ready = options.ready?.() ?? true;
      res
        .writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' })
        .end(ready ? 'ready\n' : 'not ready\n');
    } else if (path === '/status') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(options.status())}\n`);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;
  return new Promise((resolve, reject) => {
    server.once('error', (err) =>
      reject(
        new CloudtaserError(
          'CT_INVALID_ARGUMENT',
          `cannot listen for health probes on ${options.host ?? '0.0.0.0'}:${options.port}: ${err.message}`,
          { cause: err },
        ),
      ),
    );
    server.listen(options.port, options.host ?? '0.0.0.0', () => {
      const address = server.address() as AddressInfo;
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      log.info({ event: 'health.listening', port: address.port }, 'health endpoint listening');
      resolve({
        url: `http://${host}:${address.port}`,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}
