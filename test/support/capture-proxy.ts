/**
 * An HTTP forwarder in front of the OpenBao test server that records every request and, once OpenBao answered,
 * its body and status: what a test needs to know a value OpenBao accepts but never returns (the Kubernetes auth
 * `token_reviewer_jwt`). The bodies hold secrets: for a test's assertions only, never for a log.
 */
import { createServer, request as httpRequest } from 'node:http';
import { listenOnLoopback } from './loopback.js';

export interface CapturedRequest {
  readonly method: string;
  /** URL path without the query. */
  readonly path: string;
  readonly status: number;
  readonly body: string;
}

export interface CaptureProxy {
  readonly address: string;
  /** Requests OpenBao answered, in the order of their answers. */
  readonly answered: readonly CapturedRequest[];
  /** Requests as they arrived, before OpenBao answered them. */
  readonly arrived: readonly { readonly method: string; readonly path: string }[];
  close(): Promise<void>;
}

export async function startCaptureProxy(target: string): Promise<CaptureProxy> {
  const upstream = new URL(target);
  const answered: CapturedRequest[] = [];
  const arrived: { method: string; path: string }[] = [];
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const method = req.method ?? '';
    const path = new URL(req.url ?? '/', 'http://proxy.invalid').pathname;
    arrived.push({ method, path });
    const out = httpRequest(
      {
        host: upstream.hostname,
        port: upstream.port,
        method,
        path: req.url,
        headers: { ...req.headers, host: upstream.host },
      },
      (answer) => {
        const parts: Buffer[] = [];
        answer.on('data', (chunk: Buffer) => parts.push(chunk));
        answer.on('end', () => {
          answered.push({ method, path, status: answer.statusCode ?? 0, body: body.toString() });
          // The client may have given up (its timeout) while OpenBao still applied the request.
          if (res.destroyed) return;
          res.writeHead(answer.statusCode ?? 502, {
            'content-type': String(answer.headers['content-type'] ?? 'application/json'),
          });
          res.end(Buffer.concat(parts));
        });
      },
    );
    out.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
    });
    out.end(body);
  });
  const listening = await listenOnLoopback(server);
  return {
    address: listening.address,
    answered,
    arrived,
    close: listening.close,
  };
}
