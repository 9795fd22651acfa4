/** Service accounts and their `token` subresource (TokenRequest) in the Kubernetes test server (dev-only). */
import { listResult, metaFields, mustGet } from './crud.js';
import {
  checkFields,
  checkSubdomainName,
  isRecord,
  labelsOf,
  objectBody,
  requireNamespace,
  resolveName,
} from './metadata.js';
import type { HandlerResult, ResourceRequest, ServerState } from './requests.js';
import { alreadyExists, badRequest, conflict, invalid, methodNotAllowed, notFound } from './status.js';
import type { KubeObject } from './store.js';

const SERVICE_ACCOUNT_FIELDS = new Set([
  'kind',
  'apiVersion',
  'metadata',
  'secrets',
  'imagePullSecrets',
  'automountServiceAccountToken',
]);
const DEFAULT_TOKEN_SECONDS = 3600;
const MIN_TOKEN_SECONDS = 600;
/** The longest token this server mints; longer requests are shortened with a Warning, as a real server does. */
const MAX_TOKEN_SECONDS = 48 * 3600;

export function handleServiceAccounts(state: ServerState, req: ResourceRequest): HandlerResult {
  const namespace = req.namespace;
  switch (req.verb) {
    case 'get':
      return { status: 200, body: mustGet(state, 'serviceaccounts', namespace, req.name as string) };
    case 'list':
    case 'watch':
      return listResult(
        state,
        req,
        'serviceaccounts',
        'ServiceAccountList',
        namespace,
        ['metadata.name', 'metadata.namespace'],
        metaFields,
      );
    case 'create': {
      const warnings = checkFields(req, SERVICE_ACCOUNT_FIELDS);
      const body = objectBody(req.body, 'ServiceAccount');
      const ns = requireNamespace(state, req, body);
      const name = resolveName(body, 'ServiceAccount');
      checkSubdomainName('ServiceAccount', name);
      return { status: 201, body: createServiceAccountObject(state, ns, name, labelsOf(body)), warnings };
    }
    case 'delete': {
      const existing = mustGet(state, 'serviceaccounts', namespace, req.name as string);
      state.store.delete('serviceaccounts', namespace, existing.metadata.name);
      return { status: 200, body: existing };
    }
    default:
      throw methodNotAllowed();
  }
}

export function createServiceAccountObject(
  state: ServerState,
  namespace: string,
  name: string,
  labels?: Record<string, string>,
): KubeObject {
  if (state.store.get('namespaces', undefined, namespace) === undefined)
    throw notFound('namespaces', namespace);
  if (state.store.get('serviceaccounts', namespace, name) !== undefined)
    throw alreadyExists('serviceaccounts', name);
  return state.store.create('serviceaccounts', {
    kind: 'ServiceAccount',
    apiVersion: 'v1',
    metadata: {
      name,
      namespace,
      ...(labels === undefined || Object.keys(labels).length === 0 ? {} : { labels }),
    },
  });
}

export function handleTokenRequest(state: ServerState, req: ResourceRequest): HandlerResult {
  if (req.verb !== 'create') throw methodNotAllowed();
  const namespace = req.namespace as string;
  const name = req.name as string;
  const body = objectBody(req.body, 'TokenRequest', 'authentication.k8s.io/v1');
  const spec = (isRecord(body.spec) ? body.spec : {}) as Record<string, unknown>;
  const account = state.store.get('serviceaccounts', namespace, name);
  if (account === undefined) throw notFound('serviceaccounts', name);

  const warnings: string[] = [];
  let expirationSeconds = DEFAULT_TOKEN_SECONDS;
  if (spec.expirationSeconds !== undefined && spec.expirationSeconds !== null) {
    const requested = spec.expirationSeconds;
    if (typeof requested !== 'number' || !Number.isInteger(requested))
      throw badRequest('spec.expirationSeconds must be an integer');
    if (requested < MIN_TOKEN_SECONDS) {
      throw invalid('TokenRequest', 'authentication.k8s.io', '', [
        {
          field: 'spec.expirationSeconds',
          value: requested,
          why: 'may not specify a duration less than 10 minutes',
        },
      ]);
    }
    if (requested > 2 ** 32) {
      throw invalid('TokenRequest', 'authentication.k8s.io', '', [
        {
          field: 'spec.expirationSeconds',
          value: requested,
          why: 'may not specify a duration larger than 2^32 seconds',
        },
      ]);
    }
    expirationSeconds = requested;
    if (requested > MAX_TOKEN_SECONDS) {
      expirationSeconds = MAX_TOKEN_SECONDS;
      warnings.push(`requested expiration of ${requested} seconds shortened to ${MAX_TOKEN_SECONDS} seconds`);
    }
  }
  const audiences =
    Array.isArray(spec.audiences) && spec.audiences.length > 0 ? spec.audiences : [...state.apiAudiences];
  if (!audiences.every((a) => typeof a === 'string' && a !== ''))
    throw badRequest('spec.audiences must be non-empty strings');

  let boundPod: { name: string; uid: string } | undefined;
  const ref = spec.boundObjectRef;
  if (ref !== undefined && ref !== null) {
    if (!isRecord(ref)) throw badRequest('spec.boundObjectRef must be an object');
    const kind = String(ref.kind ?? '');
    if (kind === 'Pod') {
      // The test server runs no pods, so a pod binding is taken on trust; its name and uid go into the claims.
      boundPod = { name: String(ref.name ?? ''), uid: String(ref.uid ?? '') };
    } else if (kind === 'Secret') {
      const secret = state.store.get('secrets', namespace, String(ref.name ?? ''));
      if (secret === undefined) throw notFound('secrets', String(ref.name ?? ''));
      if (ref.uid !== undefined && ref.uid !== secret.metadata.uid) {
        throw conflict(
          'secrets',
          secret.metadata.name,
          `the UID in the bound object reference (${String(ref.uid)}) does not match the UID in record. The object might have been deleted and then recreated`,
        );
      }
    } else {
      throw badRequest(`cannot bind token to object of type ${kind}`);
    }
  }

  const { token, claims } = state.signer.mint({
    namespace,
    name,
    uid: account.metadata.uid,
    audiences: audiences as string[],
    expirationSeconds,
    boundPod,
  });
  return {
    status: 201,
    warnings,
    body: {
      kind: 'TokenRequest',
      apiVersion: 'authentication.k8s.io/v1',
      metadata: { name, namespace, uid: account.metadata.uid, creationTimestamp: isoSeconds(claims.iat) },
      spec: { audiences, expirationSeconds, boundObjectRef: ref ?? null },
      status: { token, expirationTimestamp: isoSeconds(claims.exp) },
    },
  };
}

function isoSeconds(epochSeconds: number): string {
  return new Date(epochSeconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
