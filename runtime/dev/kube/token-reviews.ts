/** TokenReview (authentication.k8s.io/v1) in the Kubernetes test server (dev-only), as OpenBao calls it. */
import { authenticateToken } from './authentication.js';
import { isRecord, objectBody } from './metadata.js';
import type { HandlerResult, ResourceRequest, ServerState } from './requests.js';
import { badRequest, internalError, methodNotAllowed } from './status.js';

export function handleTokenReview(state: ServerState, req: ResourceRequest): HandlerResult {
  if (req.verb !== 'create') throw methodNotAllowed();
  // Kind/apiVersion may be absent: OpenBao sends Go's encoding without them (wire-facts A5.2).
  const body = objectBody(req.body, 'TokenReview', 'authentication.k8s.io/v1');
  const spec = (isRecord(body.spec) ? body.spec : {}) as Record<string, unknown>;
  const token = typeof spec.token === 'string' ? spec.token : '';
  if (token === '') throw badRequest('token is required for TokenReview in authentication');
  const requested =
    Array.isArray(spec.audiences) && spec.audiences.length > 0
      ? spec.audiences.filter((a): a is string => typeof a === 'string')
      : [...state.apiAudiences];
  const result = authenticateToken(state, token, requested);
  const metadata = state.minorVersion < 34 ? { creationTimestamp: null } : {};
  const echoedSpec = {
    token,
    ...(Array.isArray(spec.audiences) && spec.audiences.length > 0 ? { audiences: spec.audiences } : {}),
  };
  if (!result.ok) {
    return {
      status: 201,
      body: {
        kind: 'TokenReview',
        apiVersion: 'authentication.k8s.io/v1',
        metadata,
        spec: echoedSpec,
        status: { user: {}, error: result.error },
      },
    };
  }
  if (!result.audiences.some((a) => requested.includes(a))) throw internalError('error validating audiences');
  const { username, uid, groups, extra } = result.user;
  return {
    status: 201,
    body: {
      kind: 'TokenReview',
      apiVersion: 'authentication.k8s.io/v1',
      metadata,
      spec: echoedSpec,
      status: {
        authenticated: true,
        user: {
          username,
          ...(uid === '' ? {} : { uid }),
          groups,
          ...(Object.keys(extra).length === 0 ? {} : { extra }),
        },
        audiences: result.audiences,
      },
    },
  };
}
