/**
 * The endpoint OpenBao's Kubernetes auth calls instead of an API server. Registration points each cluster
 * namespace's `kubernetes_host` at `<endpoint>/clusters/<fingerprint>`, so OpenBao sends here:
 *   - `POST <host>/apis/authentication.k8s.io/v1/tokenreviews` on every login, and
 *   - `GET <host>/api/v1/namespaces/<ns>` for roles with `bound_service_account_namespace_selector`
 *     (upstream internal/builtin/credential/kubernetes/{token_review.go,namespace_validator.go}),
 * and the bridge carries each through that cluster's tunnel to its broker, which asks the cluster's API server
 * with its own service account. Nothing else is served.
 *
 * Only OpenBao may ask: every request must carry, as its bearer token, the cluster's reviewer credential that
 * registration set as `token_reviewer_jwt` (compared in constant time against its SHA-256); anything else is
 * refused with 401 in Kubernetes' Status shape before it costs a tunnel stream or a gate slot.
 *
 * Any number of replicas: the broker holds one tunnel, to one replica. A replica without that tunnel forwards the
 * request (same credential, same body) to its peers, the A-records of the bridge's headless Service, over TLS
 * trusted to the listener CA; the peer holding the tunnel answers, the others answer "no tunnel" at once. A
 * forwarded request is never forwarded again. With sharding most reviews land on a replica without the tunnel, so
 * such a replica asks the holders of the cluster's shard first (their addresses from the Leases, only those among
 * the A-records), and the other peers only when none of them answers: one request per review instead of one per
 * replica. It never asks itself when it knows its own address.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { Agent, request as httpRequest } from 'undici';
import { CloudtaserError } from '../core/errors.js';
import { fingerprintPrefix } from '../core/hashes.js';
import { linkSignal } from '../core/linked-signal.js';
import { createHttpOrHttpsServer, listenHttp, logParserRefusals } from '../core/listen.js';
import { type Logger, moduleLogger } from '../core/log.js';
import { isFingerprint } from '../core/rules.js';
import { createRequestGate, type RequestGate } from '../podapi/gate.js';
import { kubeStatusBody } from '../podapi/kube-status.js';
import {
  isNamespaceName,
  NAMESPACE_PATH_PREFIX,
  NAMESPACE_TUNNEL_PREFIX,
  TOKENREVIEW_PATH,
  TOKENREVIEW_TUNNEL_PATH,
} from '../podapi/protocol.js';
import type { RequestHead, TunnelMux } from '../tunnel/index.js';

/** Set on a request one replica forwards to another; a forwarded request is never forwarded again. */
export const FORWARDED_HEADER = 'x-cloudtaser-forwarded';
/** Set on a replica's answer when it holds no tunnel to the cluster, so the forwarder asks the next peer. */
export const TUNNEL_HEADER = 'x-cloudtaser-tunnel';

export interface TokenReviewPeers {
  /** The peers' addresses (the headless Service's A-records; this replica may be among them). */
  resolve(): Promise<string[]>;
  /** The port every replica listens on. */
  readonly port: number;
  /** Name on the replicas' certificates (the Service name OpenBao dials). */
  readonly servername: string;
  /** CA that signed the replicas' certificates, at the time of the call. */
  caPem(): string | undefined;
  /** This replica's own address among the A-records (its pod IP): never asked. @default unknown */
  readonly self?: string;
  /**
   * The addresses of the replicas that should hold the cluster's tunnel (its shard's holders), asked first; the
   * other peers are asked when none of them answers. Undefined: ask every peer at once.
   */
  holdersOf?(fingerprint: string): readonly string[] | undefined;
}

export interface TokenReviewServerOptions {
  readonly host?: string;
  readonly port: number;
  /**
   * HTTPS with this certificate; `'later'` listens with TLS that fails handshakes until `setCertificate` (the
   * listener CA may not exist before the first registration); `false` serves plain HTTP (local use only: OpenBao
   * would send the reviewer credential in clear).
   */
  readonly tls: { readonly certPem: string; readonly keyPem: string } | 'later' | false;
  /** A live tunnel to the cluster with this fingerprint, if any. */
  readonly tunnelFor: (fingerprint: string) => TunnelMux | undefined;
  /**
   * SHA-256 (hex) of the cluster's reviewer credential, or undefined for a cluster that is not registered.
   * `afterMismatch` lets the owner read it again from OpenBao (a re-registration rotates it), at its own pace.
   */
  readonly reviewerFor: (fingerprint: string, afterMismatch: boolean) => Promise<string | undefined>;
  /**
   * The code of the last failed read of the cluster's reviewer credential, undefined once one succeeds: a refusal
   * then says the bridge could not check the credential (its own OpenBao token or policy), not that the caller's
   * was wrong. @default never unreadable
   */
  readonly reviewerUnreadable?: (fingerprint: string) => string | undefined;
  readonly peers?: TokenReviewPeers;
  /** @default 10000 */
  readonly timeoutMs?: number;
  /** Told how every request was answered (for metrics). @default nothing */
  readonly observe?: (outcome: TokenReviewOutcome) => void;
  readonly logger?: Logger;
}

/** How the bridge answered one TokenReview (or namespace read) OpenBao sent it. */
export type TokenReviewOutcome =
  | 'relayed'
  | 'forwarded'
  | 'no_tunnel'
  /** A peer's fan-out asked this replica, which has no tunnel of the cluster (the peer answers from another). */
  | 'peer_no_tunnel'
  | 'unauthorized'
  | 'tunnel_failed'
  | 'invalid';

export interface TokenReviewServer {
  /** `http(s)://host:port` as bound. */
  readonly url: string;
  /** Serves new connections with this certificate (renewal, or the first one in `'later'` mode). */
  setCertificate(pair: { readonly certPem: string; readonly keyPem: string }): void;
  close(): Promise<void>;
}

/** TokenReview requests carry one JWT; 64 KiB is generous and bounds memory. */
const MAX_BODY_BYTES = 64 * 1024;
const ROUTE = /^\/clusters\/([0-9a-f-]{36})(\/.*)$/;
const UNAUTHORIZED = kubeStatusBody(401, 'Unauthorized', 'Unauthorized');
/** How long a replica waits for the shard's holders before it asks the other peers as well. */
const HEDGE_MS = 1_000;
/** A refusal is logged at most once per window per cluster, with the count of those not logged. */
const REFUSAL_LOG_WINDOW_MS = 10_000;

type Route =
  | { kind: 'review'; fingerprint: string }
  | { kind: 'namespace'; fingerprint: string; name: string };

export async function startTokenReviewServer(options: TokenReviewServerOptions): Promise<TokenReviewServer> {
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
  const refusals = new Map<string, { since: number; suppressed: number }>();
  let peerAgent: { caPem: string; agent: Agent } | undefined;

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    serve(req, res).catch((err: unknown) => {
      log.warn({ event: 'tokenreview.failed', reason: (err as Error).message }, 'TokenReview relay failed');
      if (!res.headersSent) send(res, 500, kubeStatusBody(500, 'InternalError', 'Internal error occurred'));
      else res.destroy();
    });
  };

  const observe = options.observe ?? (() => undefined);

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const route = parseRoute((req.url ?? '/').split('?')[0]);
    if (!route) {
      req.resume();
      observe('invalid');
      send(
        res,
        404,
        kubeStatusBody(404, 'NotFound', 'the cloudtaser bridge serves only cluster TokenReviews'),
      );
      return;
    }
    const method = route.kind === 'review' ? 'POST' : 'GET';
    if (req.method !== method) {
      req.resume();
      observe('invalid');
      send(res, 405, kubeStatusBody(405, 'MethodNotAllowed', `only ${method} is served here`));
      return;
    }
    const { fingerprint } = route;
    // Authentication first: an unauthenticated request reads no body, opens no stream, takes no gate slot.
    const credential = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
    if (!(await authorized(fingerprint, credential))) {
      req.resume();
      const unreadable = credential === undefined ? undefined : options.reviewerUnreadable?.(fingerprint);
      refused(
        fingerprint,
        credential === undefined
          ? 'no bearer token'
          : unreadable
            ? `the reviewer credential could not be read from OpenBao (${unreadable})`
            : 'wrong credential',
        unreadable,
      );
      observe('unauthorized');
      send(res, 401, UNAUTHORIZED);
      return;
    }
    const body = route.kind === 'review' ? await readBody(req) : Buffer.alloc(0);
    if (route.kind === 'namespace') req.resume();
    if (body === undefined) {
      observe('invalid');
      send(res, 413, kubeStatusBody(413, 'RequestEntityTooLarge', 'the TokenReview body is too large'));
      return;
    }
    const clusterLog = log.child({ fingerprintPrefix: fingerprintPrefix(fingerprint) });
    const forwarded = req.headers[FORWARDED_HEADER] !== undefined;
    /** Asks the other replicas (unless a peer asked us); true once one of them answered. */
    const answeredByPeer = async (): Promise<boolean> => {
      if (forwarded || !options.peers) return false;
      const answer = await askPeers(fingerprint, req, body, credential!);
      if (!answer) return false;
      clusterLog.debug({ event: 'tokenreview.forwarded', status: answer.status }, 'answered by a peer');
      observe('forwarded');
      send(res, answer.status, answer.body);
      return true;
    };
    const found = options.tunnelFor(fingerprint);
    // A tunnel that is closing takes nothing new: its broker has moved, or is moving, to a tunnel that may be on
    // another replica.
    const tunnel = found && !found.closed && !found.draining ? found : undefined;
    if (!tunnel) {
      if (await answeredByPeer()) return;
      // A peer's fan-out reaches every replica, this one included: "not here" is its designed cheap answer, not an
      // event (it was a line per login on the replica without the tunnel). Only a review nobody could answer is.
      if (forwarded) {
        clusterLog.debug(
          { event: 'tokenreview.not_here' },
          'a peer asked; the tunnel is not on this replica',
        );
        observe('peer_no_tunnel');
      } else {
        clusterLog.info(
          { event: 'tokenreview.no_tunnel' },
          'TokenReview for a cluster whose broker is not connected here (nor to any peer asked)',
        );
        observe('no_tunnel');
      }
      send(
        res,
        503,
        kubeStatusBody(
          503,
          'ServiceUnavailable',
          'the cluster broker is not connected; the login fails until it is',
        ),
        { [TUNNEL_HEADER]: 'absent' },
      );
      return;
    }
    try {
      const request: RequestHead =
        route.kind === 'review'
          ? {
              method: 'POST' as const,
              path: TOKENREVIEW_TUNNEL_PATH,
              headers: { 'content-type': 'application/json' },
            }
          : { method: 'GET' as const, path: `${NAMESPACE_TUNNEL_PREFIX}${route.name}`, headers: {} };
      const response = await gateFor(tunnel).run(() => tunnel.request(request, body, { timeoutMs }));
      clusterLog.debug(
        { event: 'tokenreview.relayed', kind: route.kind, status: response.status },
        'relayed through the tunnel',
      );
      observe('relayed');
      send(res, response.status, response.body);
    } catch (err) {
      // The tunnel closed or started closing under the request (the broker moved to a tunnel that may be on another
      // replica, or it was cut). A TokenReview or namespace read changes nothing, so asking again is safe.
      if ((tunnel.closed || tunnel.draining) && (await answeredByPeer())) return;
      const code = err instanceof CloudtaserError ? err.code : 'CT_INTERNAL';
      clusterLog.warn({ event: 'tokenreview.tunnel_failed', code }, 'TokenReview through the tunnel failed');
      observe('tunnel_failed');
      send(
        res,
        503,
        kubeStatusBody(503, 'ServiceUnavailable', `the cluster broker did not answer (${code})`),
      );
    }
  }

  async function authorized(fingerprint: string, credential: string | undefined): Promise<boolean> {
    if (credential === undefined || credential.length > 16 * 1024) return false;
    const presented = createHash('sha256').update(credential, 'utf8').digest();
    const matches = (hex: string | undefined) =>
      hex !== undefined && timingSafeEqual(presented, Buffer.from(hex, 'hex'));
    if (matches(await options.reviewerFor(fingerprint, false))) return true;
    return matches(await options.reviewerFor(fingerprint, true));
  }

  function refused(fingerprint: string, why: string, unreadable?: string): void {
    const now = Date.now();
    // Apart by kind: a caller's bad request each minute must not keep "this bridge cannot read the credential"
    // out of the log (a security review).
    const key = unreadable ? `${fingerprint}|unreadable` : fingerprint;
    const seen = refusals.get(key);
    if (seen && now - seen.since < REFUSAL_LOG_WINDOW_MS) {
      seen.suppressed++;
      return;
    }
    refusals.set(key, { since: now, suppressed: 0 });
    log.warn(
      {
        event: 'tokenreview.unauthorized',
        fingerprintPrefix: fingerprintPrefix(fingerprint),
        reason: why,
        ...(unreadable ? { code: unreadable } : {}),
        suppressedSinceLast: seen?.suppressed ?? 0,
      },
      // The bridge's own OpenBao access failing is not OpenBao's config being replaced (an outside drill revoked
      // the bridge's token and was told to re-run registration).
      unreadable
        ? "refused a TokenReview: this bridge cannot read the cluster's reviewer credential from OpenBao to check it; fix the bridge's OpenBao token or policy (cloudtaser-cli source doctor says which), every pod login of the cluster fails until then"
        : "refused a TokenReview without the cluster's reviewer credential: only OpenBao (token_reviewer_jwt set by registration) may ask; re-run registration if OpenBao's config was replaced",
    );
    if (refusals.size > 10_000) refusals.clear();
  }

  /** The first peer answer from a replica that holds the tunnel; undefined when none does. */
  async function askPeers(
    fingerprint: string,
    req: IncomingMessage,
    body: Buffer,
    credential: string,
  ): Promise<{ status: number; body: Buffer } | undefined> {
    const peers = options.peers!;
    const caPem = peers.caPem();
    if (!caPem) return undefined;
    if (peerAgent?.caPem !== caPem) {
      void peerAgent?.agent.close();
      peerAgent = { caPem, agent: new Agent({ connect: { ca: caPem, servername: peers.servername } }) };
    }
    const dispatcher = peerAgent.agent;
    let addresses: string[];
    try {
      addresses = await peers.resolve();
    } catch (err) {
      log.warn(
        { event: 'tokenreview.peers_unresolved', reason: (err as Error).message },
        'peers did not resolve',
      );
      return undefined;
    }
    // One signal for every ask: the first answer or the time limit ends the others.
    const fanOut = linkSignal([], timeoutMs);
    const ask = async (address: string) => {
      const host = address.includes(':') ? `[${address}]` : address;
      const response = await httpRequest(`https://${host}:${peers.port}${req.url}`, {
        method: req.method as 'GET' | 'POST',
        dispatcher,
        headers: {
          authorization: `Bearer ${credential}`,
          'content-type': 'application/json',
          [FORWARDED_HEADER]: '1',
        },
        body: req.method === 'POST' ? body : undefined,
        signal: fanOut.signal,
      });
      const answer = Buffer.from(await response.body.arrayBuffer());
      if (response.headers[TUNNEL_HEADER] === 'absent') throw new Error('no tunnel there');
      return { status: response.statusCode, body: answer };
    };
    const others = addresses.filter((address) => address !== peers.self);
    // Holders only when every one of them is a peer: an address the Leases name that the Service does not is asked
    // nothing (the Leases narrow whom to ask, they never add anyone).
    const named = peers.holdersOf?.(fingerprint);
    const holders = named?.length && named.every((a) => others.includes(a)) ? named : undefined;
    try {
      if (!holders) return await Promise.any(others.map(ask));
      const first = Promise.any(holders.map(ask));
      // The rest once every holder said "not here" (a tunnel moving off a replica that gave the shard up, Leases
      // seen a round late), or once a holder is slow to answer at all (hung): never later than HEDGE_MS.
      const askRest = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(true), Math.min(HEDGE_MS, timeoutMs / 4));
        const settle = (askThem: boolean) => {
          clearTimeout(timer);
          resolve(askThem);
        };
        first.then(
          () => settle(false),
          () => settle(true),
        );
      });
      const rest = askRest.then((askThem) =>
        askThem
          ? Promise.any(others.filter((a) => !holders.includes(a)).map(ask))
          : Promise.reject(new Error('a holder answered')),
      );
      return await Promise.any([first, rest]);
    } catch {
      return undefined;
    } finally {
      fanOut.abort();
    }
  }

  // `'later'`: TLS with no certificate yet; handshakes fail until setCertificate gives one.
  const parserRefusals = logParserRefusals(log, 'tokenreview.http_refused', 'the TokenReview listener');
  const server = createHttpOrHttpsServer(options.tls, handler, parserRefusals.onRefused);
  server.headersTimeout = 10_000;
  server.requestTimeout = timeoutMs + 5_000;
  const listening = await listenHttp(server, {
    host: options.host,
    port: options.port,
    what: 'TokenReviews',
    event: 'tokenreview.listening',
    logger: log,
  });
  return {
    url: listening.url,
    setCertificate(pair) {
      if (options.tls === false)
        throw new CloudtaserError('CT_INTERNAL', 'a plain-HTTP listener has no certificate');
      (server as HttpsServer).setSecureContext({
        cert: pair.certPem,
        key: pair.keyPem,
        minVersion: 'TLSv1.2',
      });
    },
    async close() {
      await listening.close();
      parserRefusals.close();
      await peerAgent?.agent.close();
    },
  };
}

function parseRoute(path: string): Route | undefined {
  const match = ROUTE.exec(path);
  if (!match || !isFingerprint(match[1])) return undefined;
  const rest = match[2].replace(/\/$/, '');
  if (rest === TOKENREVIEW_PATH) return { kind: 'review', fingerprint: match[1] };
  if (rest.startsWith(NAMESPACE_PATH_PREFIX)) {
    const name = decodePathSegment(rest.slice(NAMESPACE_PATH_PREFIX.length));
    if (name !== undefined && isNamespaceName(name))
      return { kind: 'namespace', fingerprint: match[1], name };
  }
  return undefined;
}

/** Undefined for a malformed escape (e.g. `%E0%A4%A`): an unknown path (404), not a failure of ours (500). */
function decodePathSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
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

function send(
  res: ServerResponse,
  status: number,
  body: string | Buffer,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
}
