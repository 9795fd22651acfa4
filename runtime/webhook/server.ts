/**
 * The mutating webhook endpoint: `POST /mutate-pods` with an AdmissionReview v1 body. It answers from memory
 * (no call leaves the process), so a refusal while the bridge is away comes back at once instead of stalling
 * pod creation until the API server's timeout.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { CloudtaserError } from '../core/errors.js';
import { createHttpOrHttpsServer, listenHttp, logParserRefusals } from '../core/listen.js';
import { type Logger, moduleLogger } from '../core/log.js';
import {
  admissionReply,
  type InjectionConfig,
  parseAdmissionReview,
  reviewPod,
  type WebhookState,
} from './admission.js';

export const WEBHOOK_PATH = '/mutate-pods';
/** Pods with many containers stay far below this; the API server's own request limit is ~3 MiB. */
const MAX_BODY_BYTES = 3 * 1024 * 1024;

export interface WebhookServerOptions {
  readonly host?: string;
  readonly port: number;
  /** Serving certificate the API server trusts via caBundle; `false` serves plain HTTP (tests only). */
  readonly tls: { readonly certPem: string; readonly keyPem: string } | false;
  readonly state: () => WebhookState;
  readonly injection: InjectionConfig;
  /**
   * Told how every AdmissionReview was answered: mutated, allowed (not ours to change), refused (with the status
   * reason) or invalid (not an AdmissionReview). @default none
   */
  readonly observe?: (outcome: 'mutated' | 'allowed' | 'refused' | 'invalid', reason?: string) => void;
  readonly logger?: Logger;
}

export interface WebhookServer {
  readonly url: string;
  /** Serves new connections with this certificate (a renewed `webhook.tls.secretName`); HTTPS only. */
  setCertificate(pair: { readonly certPem: string; readonly keyPem: string }): void;
  /** No new connection; reviews in flight get `graceMs` to be answered (see listenHttp). */
  close(graceMs?: number): Promise<void>;
}

export async function startWebhookServer(options: WebhookServerOptions): Promise<WebhookServer> {
  const log = moduleLogger(options.logger, 'webhook');

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== WEBHOOK_PATH) {
      req.resume();
      return send(res, 404, { error: `CT_INVALID_ARGUMENT: not found; the webhook path is ${WEBHOOK_PATH}` });
    }
    if (req.method !== 'POST') {
      req.resume();
      return send(res, 405, { error: 'CT_INVALID_ARGUMENT: POST an AdmissionReview' });
    }
    // The API server posts application/json; any other type is not a review, however its body parses.
    const mediaType = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (mediaType !== 'application/json') {
      req.resume();
      options.observe?.('invalid');
      return send(res, 415, {
        error: `CT_INVALID_ARGUMENT: the webhook reads AdmissionReviews posted as application/json, not ${JSON.stringify(mediaType.slice(0, 64))}`,
      });
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('error', () => res.destroy());
    req.on('end', () => {
      if (size > MAX_BODY_BYTES)
        return send(res, 413, { error: 'CT_INVALID_ARGUMENT: AdmissionReview too large' });
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        options.observe?.('invalid');
        return send(res, 400, { error: 'CT_INVALID_ARGUMENT: the body is not JSON' });
      }
      let parsed: ReturnType<typeof parseAdmissionReview>;
      try {
        parsed = parseAdmissionReview(body);
      } catch (err) {
        options.observe?.('invalid');
        return send(res, 400, { error: (err as CloudtaserError).toLine() });
      }
      const response = reviewPod(parsed.uid, parsed.request, options.state(), options.injection);
      options.observe?.(
        !response.allowed ? 'refused' : response.patch !== undefined ? 'mutated' : 'allowed',
        response.allowed ? undefined : response.status?.reason,
      );
      log.info(
        {
          event: 'webhook.reviewed',
          namespace: typeof parsed.request.namespace === 'string' ? parsed.request.namespace : undefined,
          allowed: response.allowed,
          mutated: response.patch !== undefined,
          // `code` is a CT_ code in every log line (docs/error-codes.md); the HTTP status of a refusal is `status`
          // (it was `code: 503`: an outside docs drill).
          ...(response.allowed ? {} : { code: 'CT_WEBHOOK_REFUSED', status: response.status?.code }),
        },
        'admission review answered',
      );
      send(res, 200, admissionReply(response));
    });
  };

  const parserRefusals = logParserRefusals(log, 'webhook.http_refused', 'the webhook');
  const server = createHttpOrHttpsServer(options.tls, handler, parserRefusals.onRefused);
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  const listening = await listenHttp(server, {
    host: options.host,
    port: options.port,
    what: 'the webhook',
    event: 'webhook.listening',
    logger: log,
  });
  return {
    url: listening.url,
    setCertificate(pair) {
      if (options.tls === false)
        throw new CloudtaserError('CT_INTERNAL', 'a plain-HTTP webhook has no certificate');
      (server as HttpsServer).setSecureContext({
        cert: pair.certPem,
        key: pair.keyPem,
        minVersion: 'TLSv1.2',
      });
    },
    async close(graceMs) {
      await listening.close(graceMs);
      parserRefusals.close();
    },
  };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
