/**
 * The broker's answer to the Kubernetes API calls the bridge carries through the tunnel for OpenBao's Kubernetes
 * auth: `POST /kube/apis/authentication.k8s.io/v1/tokenreviews` on every login, and `GET /kube/api/v1/namespaces/
 * <ns>` for roles with bound_service_account_namespace_selector. Both are made with the broker's own service
 * account, never with a credential that came through the tunnel; nothing else is served.
 */
import { CloudtaserError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { KubeClient } from '../kube/index.js';
import { kubeStatusBody } from '../podapi/kube-status.js';
import { isNamespaceName, NAMESPACE_TUNNEL_PREFIX, TOKENREVIEW_TUNNEL_PATH } from '../podapi/protocol.js';
import type { TunnelReply, TunnelRequest } from '../tunnel/index.js';

/** The broker's bound for one TokenReview against its API server; the bridge gives the round trip 10 s. */
export const TOKENREVIEW_TIMEOUT_MS = 8_000;

export type TokenReviewApi = Pick<KubeClient, 'createTokenReview'>;
export type NamespaceReadApi = Pick<KubeClient, 'getNamespace'>;

const JSON_HEADERS = { 'content-type': 'application/json' };
const MAX_TOKEN_CHARS = 16 * 1024;
const MAX_AUDIENCES = 16;

export function isTokenReviewRequest(request: TunnelRequest): boolean {
  return request.path.split('?')[0] === TOKENREVIEW_TUNNEL_PATH;
}

/** What the broker keeps of TokenReview outcomes: for /status, a summarized log, and doctor. */
export interface TokenReviewOutcomes {
  answered(): void;
  failed(error: CloudtaserError): void;
}

export async function serveTokenReview(
  kube: TokenReviewApi | undefined,
  request: TunnelRequest,
  log: Logger,
  signal?: AbortSignal,
  outcomes?: TokenReviewOutcomes,
): Promise<TunnelReply> {
  if (request.method !== 'POST') {
    return { status: 405, headers: JSON_HEADERS, body: kubeStatusBody(405, 'MethodNotAllowed', 'only POST') };
  }
  if (!kube) {
    return {
      status: 503,
      headers: JSON_HEADERS,
      body: kubeStatusBody(
        503,
        'ServiceUnavailable',
        'this broker has no Kubernetes API access for TokenReview',
      ),
    };
  }
  const spec = parseSpec(request.body);
  if (!spec) {
    return {
      status: 400,
      headers: JSON_HEADERS,
      body: kubeStatusBody(400, 'BadRequest', 'token is required for TokenReview in authentication'),
    };
  }
  try {
    // Inside the bridge's 10 s for the whole round trip, so a hung API server is answered with its cause
    // (CT_KUBE_UNREACHABLE) rather than cancelled by the bridge as a tunnel timeout.
    const status = await kube.createTokenReview(spec.token, spec.audiences, {
      signal,
      timeoutMs: TOKENREVIEW_TIMEOUT_MS,
    });
    // One per pod login: debug only (the metric counts them); a fleet's logins must not fill the log.
    log.debug(
      { event: 'broker.tokenreview', authenticated: status.authenticated === true },
      'TokenReview answered for OpenBao',
    );
    outcomes?.answered();
    return {
      status: 201,
      headers: JSON_HEADERS,
      // The spec is echoed without the token: OpenBao has it already and reads only `status`.
      body: JSON.stringify({
        kind: 'TokenReview',
        apiVersion: 'authentication.k8s.io/v1',
        metadata: {},
        spec: spec.audiences.length > 0 ? { audiences: spec.audiences } : {},
        status: { user: {}, ...status },
      }),
    };
  } catch (err) {
    const error =
      err instanceof CloudtaserError
        ? err
        : new CloudtaserError('CT_INTERNAL', (err as Error)?.message ?? String(err), { cause: err });
    const code = error.code;
    // The bridge gave up on this review (its time limit, a tunnel cut): nothing is known about the API server, and
    // nobody reads the answer.
    if (signal?.aborted)
      return {
        status: 503,
        headers: JSON_HEADERS,
        body: kubeStatusBody(503, 'ServiceUnavailable', 'the TokenReview was cancelled by its requester'),
      };
    if (outcomes) outcomes.failed(error);
    else
      log.warn(
        { event: 'broker.tokenreview_failed', code, reason: error.message },
        'TokenReview against the cluster failed',
      );
    const httpStatus = code === 'CT_KUBE_FORBIDDEN' ? 403 : 500;
    return {
      status: httpStatus,
      headers: JSON_HEADERS,
      body: kubeStatusBody(
        httpStatus,
        httpStatus === 403 ? 'Forbidden' : 'InternalError',
        httpStatus === 403
          ? 'the cloudtaser broker may not create tokenreviews; bind its service account to system:auth-delegator'
          : 'Internal error occurred: TokenReview failed in the cluster',
      ),
    };
  }
}

function parseSpec(body: Buffer): { token: string; audiences: string[] } | undefined {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  const spec = (value as { spec?: { token?: unknown; audiences?: unknown } } | null)?.spec;
  if (!spec || typeof spec.token !== 'string' || spec.token === '' || spec.token.length > MAX_TOKEN_CHARS) {
    return undefined;
  }
  const audiences = Array.isArray(spec.audiences)
    ? spec.audiences
        .filter((a): a is string => typeof a === 'string' && a.length <= 512)
        .slice(0, MAX_AUDIENCES)
    : [];
  return { token: spec.token, audiences };
}

export function isNamespaceRequest(request: TunnelRequest): boolean {
  return request.path.split('?')[0].startsWith(NAMESPACE_TUNNEL_PREFIX);
}

/**
 * One namespace, as OpenBao's namespace selector reads it (`metadata.labels`), trimmed to its name, uid and
 * labels: annotations and status stay in the cluster.
 */
export async function serveNamespaceRead(
  kube: Partial<NamespaceReadApi> | undefined,
  request: TunnelRequest,
  log: Logger,
  signal?: AbortSignal,
): Promise<TunnelReply> {
  if (request.method !== 'GET') {
    return { status: 405, headers: JSON_HEADERS, body: kubeStatusBody(405, 'MethodNotAllowed', 'only GET') };
  }
  const name = decodeURIComponent(request.path.split('?')[0].slice(NAMESPACE_TUNNEL_PREFIX.length));
  if (!isNamespaceName(name)) {
    return {
      status: 404,
      headers: JSON_HEADERS,
      body: kubeStatusBody(404, 'NotFound', 'the server could not find the requested resource'),
    };
  }
  if (!kube?.getNamespace) {
    return {
      status: 503,
      headers: JSON_HEADERS,
      body: kubeStatusBody(
        503,
        'ServiceUnavailable',
        'this broker has no Kubernetes API access for namespace reads',
      ),
    };
  }
  try {
    const namespace = await kube.getNamespace(name, { signal });
    log.info({ event: 'broker.namespace_read', namespace: name }, 'namespace labels read for OpenBao');
    return {
      status: 200,
      headers: JSON_HEADERS,
      body: JSON.stringify({
        kind: 'Namespace',
        apiVersion: 'v1',
        metadata: {
          name: namespace.metadata?.name ?? name,
          uid: namespace.metadata?.uid,
          labels: namespace.metadata?.labels ?? {},
        },
      }),
    };
  } catch (err) {
    const code = err instanceof CloudtaserError ? err.code : 'CT_INTERNAL';
    if (code === 'CT_KUBE_NOT_FOUND')
      return {
        status: 404,
        headers: JSON_HEADERS,
        body: kubeStatusBody(404, 'NotFound', `namespaces "${name}" not found`),
      };
    log.warn({ event: 'broker.namespace_read_failed', code }, 'namespace read for OpenBao failed');
    const forbidden = code === 'CT_KUBE_FORBIDDEN';
    return {
      status: forbidden ? 403 : 500,
      headers: JSON_HEADERS,
      body: kubeStatusBody(
        forbidden ? 403 : 500,
        forbidden ? 'Forbidden' : 'InternalError',
        forbidden
          ? 'the cloudtaser broker may not get namespaces; the operator chart grants it (ClusterRole)'
          : 'Internal error occurred: namespace read failed in the cluster',
      ),
    };
  }
}
