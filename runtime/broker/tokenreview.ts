/**
 * The broker's answer to TokenReviews the bridge carries through the tunnel for OpenBao's Kubernetes auth. Only
 * `POST /kube/apis/authentication.k8s.io/v1/tokenreviews` is served; the review is made with the broker's own
 * service account (ClusterRole system:auth-delegator), never with a credential that came through the tunnel.
 */
import { CloudtaserError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { KubeClient } from '../kube/index.js';
import { kubeStatusBody } from '../podapi/kube-status.js';
import { TOKENREVIEW_TUNNEL_PATH } from '../podapi/protocol.js';
import type { TunnelReply, TunnelRequest } from '../tunnel/index.js';

export type TokenReviewApi = Pick<KubeClient, 'createTokenReview'>;

const JSON_HEADERS = { 'content-type': 'application/json' };
const MAX_TOKEN_CHARS = 16 * 1024;
const MAX_AUDIENCES = 16;

export function isTokenReviewRequest(request: TunnelRequest): boolean {
  return request.path.split('?')[0] === TOKENREVIEW_TUNNEL_PATH;
}

export async function serveTokenReview(
  kube: TokenReviewApi | undefined,
  request: TunnelRequest,
  log: Logger,
  signal?: AbortSignal,
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
    const status = await kube.createTokenReview(spec.token, spec.audiences, { signal });
    log.info(
      { event: 'broker.tokenreview', authenticated: status.authenticated === true },
      'TokenReview answered for OpenBao',
    );
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
    const code = err instanceof CloudtaserError ? err.code : 'CT_INTERNAL';
    log.warn({ event: 'broker.tokenreview_failed', code }, 'TokenReview against the cluster failed');
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
