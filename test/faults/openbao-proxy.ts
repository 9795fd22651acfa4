/**
 * A fault-injecting HTTP proxy in front of the OpenBao test server. Unlike the server's own `injectFault`, a
 * rule can match the method (so a read of a path can pass while the write to it fails), and it can fail a
 * request AFTER forwarding it, which is what a load balancer that drops the answer of a committed write does.
 */
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { listenOnLoopback } from '../support/loopback.js';

export interface ProxyFault {
  readonly method?: string;
  readonly pathPattern: RegExp;
  /** Answer this status with an OpenBao-shaped error body. */
  readonly status?: number;
  /** Answer 503 "Vault is sealed". */
  readonly sealed?: boolean;
  /** Wait this long first; with no status, the request is then forwarded normally. */
  readonly delayMs?: number;
  /** Forward the request to OpenBao first (it takes effect), then answer with the fault instead. */
  readonly afterForward?: boolean;
  /** @default 1 */
  readonly times?: number;
}

export interface FaultProxy {
  readonly address: string;
  inject(fault: ProxyFault): void;
  /** How many times each fault fired. */
  fired(): number;
  /** Drops every fault not yet used up: OpenBao answers normally again. */
  clear(): void;
  close(): Promise<void>;
}

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const upstream = new URL(target);
  const faults: { fault: ProxyFault; remaining: number }[] = [];
  let fired = 0;

  const forward = (
    req: IncomingMessage,
    body: Buffer,
  ): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> =>
    new Promise((resolve, reject) => {
      const out = httpRequest(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: upstream.host },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 502,
              headers: { 'content-type': String(res.headers['content-type'] ?? 'application/json') },
              body: Buffer.concat(chunks),
            }),
          );
          res.on('error', reject);
        },
      );
      out.on('error', reject);
      out.end(body);
    });

  const answerFault = (res: ServerResponse, fault: ProxyFault) => {
    const status = fault.sealed ? 503 : (fault.status ?? 500);
    const text = fault.sealed ? 'Vault is sealed' : 'injected fault';
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ errors: [text] }));
  };

  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const path = new URL(req.url ?? '/', 'http://proxy.invalid').pathname;
    const entry = faults.find(
      (f) =>
        f.remaining > 0 &&
        f.fault.pathPattern.test(path) &&
        (!f.fault.method || f.fault.method === req.method),
    );
    try {
      if (entry) {
        entry.remaining--;
        fired++;
        const { fault } = entry;
        if (fault.delayMs) await new Promise((resolve) => setTimeout(resolve, fault.delayMs));
        if (fault.afterForward) await forward(req, body);
        if (fault.status !== undefined || fault.sealed) return answerFault(res, fault);
      }
      const answer = await forward(req, body);
      if (res.destroyed) return;
      res.writeHead(answer.status, answer.headers);
      res.end(answer.body);
    } catch {
      if (!res.headersSent) res.writeHead(502).end();
    }
  });
  const listening = await listenOnLoopback(server);
  return {
    address: listening.address,
    inject: (fault) => faults.push({ fault, remaining: fault.times ?? 1 }),
    fired: () => fired,
    clear: () => {
      faults.length = 0;
    },
    close: listening.close,
  };
}
