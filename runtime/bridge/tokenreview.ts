/**
 * The TokenReview endpoint the bridge serves beside OpenBao. Registration points each cluster namespace's
 * Kubernetes auth `kubernetes_host` at `<endpoint>/clusters/<fingerprint>`; OpenBao then POSTs
 * `<host>/apis/authentication.k8s.io/v1/tokenreviews` here, and the bridge carries the review through that
 * cluster's tunnel to its broker, which asks the cluster's API server. Nothing else is served.
 * The Authorization header OpenBao sends (a reviewer or the pod's own JWT) is dropped: the broker reviews
 * with its own service account.
 */
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { CloudtaserError } from '../core/errors.js';
import { fingerprintPrefix, isFingerprint } from '../core/hashes.js';
import { type Logger, moduleLogger } from '../core/log.js';
import { createRequestGate, type RequestGate } from '../podapi/gate.js';
import { kubeStatusBody } from '../podapi/kube-status.js';
import { TOKENREVIEW_PATH, TOKENREVIEW_TUNNEL_PATH } from '../podapi/protocol.js';
import type { TunnelMux } from '../tunnel/index.js';

export interface TokenReviewServerOptions {
  readonly host?: string;
  readonly port: number;
  /** Serve HTTPS with this certificate (give its CA to registration); plain HTTP when absent. */
  readonly tls?: { readonly certPem: string; readonly keyPem: string };
  /** A live tunnel to the cluster with this fingerprint, if any. */
  readonly tunnelFor: (fingerprint: string) => TunnelMux | undefined;
  /** @default 10000 */
  readonly timeoutMs?: number;
  readonly logger?: Logger;
}

export interface TokenReviewServer {
  /** `http(s)://host:port`: what registration's `--tokenreview-endpoint` should name (as OpenBao reaches it). */
  readonly url: string;
  close(): Promise<void>;
}

/** TokenReview requests carry one JWT; 64 KiB is generous and bounds memory. */
const MAX_BODY_BYTES = 64 * 1024;
const ROUTE = /^\/clusters\/([0-9a-f-]{36})(\/apis\/authentication\.k8s\.io\/v1\/tokenreviews)\/?$/;

export function startTokenReviewServer(options: TokenReviewServerOptions): Promise<TokenReviewServer> {
  const log = moduleLogger(options.logger, 'bridge-tokenreview');
  const timeoutMs = options.timeoutMs ?? 10_000;
  // A login storm must queue, not overrun the tunnel's 32 streams per direction (which would fail logins).
  const gates = new WeakMap<TunnelMux, RequestGate>();
  const gateFor = (tunnel: TunnelMux) => {
    let gate = gates.get(tunnel);
    if (!gate) {
      gate = createRequestGate({ maxInFlight: 24, maxWaiting: 1000 });
      gates.set(tunnel, gate);
    }
    return gate;
  };

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    serve(req, res).catch((err: unknown) => {
      log.warn({ event: 'tokenreview.failed', reason: (err as Error).message }, 'TokenReview relay failed');
      if (!res.headersSent) send(res, 500, kubeStatusBody(500, 'InternalError', 'Internal error occurred'));
      else res.destroy();
    });
  };

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    const match = ROUTE.exec(path);
    if (!match || !isFingerprint(match[1]) || match[2] !== TOKENREVIEW_PATH) {
      req.resume();
      send(
        res,
        404,
        kubeStatusBody(404, 'NotFound', 'the cloudtaser bridge serves only cluster TokenReviews'),
      );
      return;
    }
    if (req.method !== 'POST') {
      req.resume();
      send(res, 405, kubeStatusBody(405, 'MethodNotAllowed', 'only POST is served'));
      return;
    }
    const fingerprint = match[1];
    const body = await readBody(req);
    if (body === undefined) {
      send(res, 413, kubeStatusBody(413, 'RequestEntityTooLarge', 'the TokenReview body is too large'));
      return;
    }
    const tunnel = options.tunnelFor(fingerprint);
    const clusterLog = log.child({ fingerprintPrefix: fingerprintPrefix(fingerprint) });
    if (!tunnel || tunnel.closed) {
      clusterLog.info({ event: 'tokenreview.no_tunnel' }, 'TokenReview for a cluster without a live tunnel');
      send(
        res,
        503,
        kubeStatusBody(
          503,
          'ServiceUnavailable',
          'the cluster broker is not connected; the login fails until it is',
        ),
      );
      return;
    }
    try {
      const response = await gateFor(tunnel).run(() =>
        tunnel.request(
          { method: 'POST', path: TOKENREVIEW_TUNNEL_PATH, headers: { 'content-type': 'application/json' } },
          body,
          { timeoutMs },
        ),
      );
      clusterLog.debug({ event: 'tokenreview.relayed', status: response.status }, 'TokenReview relayed');
      send(res, response.status, response.body);
    } catch (err) {
      const code = err instanceof CloudtaserError ? err.code : 'CT_INTERNAL';
      clusterLog.warn({ event: 'tokenreview.tunnel_failed', code }, 'TokenReview through the tunnel failed');
      send(
        res,
        503,
        kubeStatusBody(503, 'ServiceUnavailable', `the cluster broker did not answer (${code})`),
      );
    }
  }

  const server = options.tls
    ? createHttpsServer({ cert: options.tls.certPem, key: options.tls.keyPem }, handler)
    : createHttpServer(handler);
  server.headersTimeout = 10_000;
  server.requestTimeout = timeoutMs + 5_000;
  const scheme = options.tls ? 'https' : 'http';
  return new Promise((resolve, reject) => {
    server.once('error', (err) =>
      reject(
        new CloudtaserError(
          'CT_INVALID_ARGUMENT',
          `cannot listen for TokenReviews on ${options.host ?? '0.0.0.0'}:${options.port}: ${err.message}`,
          { cause: err },
        ),
      ),
    );
    server.listen(options.port, options.host ?? '0.0.0.0', () => {
      const address = server.address() as AddressInfo;
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      log.info(
        { event: 'tokenreview.listening', port: address.port, scheme },
        'TokenReview endpoint listening',
      );
      resolve({
        url: `${scheme}://${host}:${address.port}`,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('end', () => resolve(size > MAX_BODY_BYTES ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: string | Buffer): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
