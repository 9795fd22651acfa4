/**
 * Resource handlers of the Kubernetes test server (dev-only): namespaces, service accounts and their token
 * subresource, secrets, configmaps, events, TokenReview, MutatingWebhookConfigurations. Behaviour and texts follow
 * wire-facts PART B.
 */
import { randomBytes } from 'node:crypto';
import {
  applyPatch,
  JSON_PATCH,
  jsonEqual,
  MERGE_PATCH,
  OBJECT_META_STRATEGY,
  type PatchType,
  patchTypeOf,
  STRATEGIC_MERGE_PATCH,
  type StrategicSchema,
} from './patch.js';
import type { Authorizer } from './rbac.js';
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector } from './selectors.js';
import {
  alreadyExists,
  badRequest,
  conflict,
  type FieldError,
  internalError,
  invalid,
  KubeStatusError,
  methodNotAllowed,
  notFound,
  preconditionConflict,
} from './status.js';
import type { KubeObject, NewKubeObject, ObjectStore } from './store.js';
import { toTable, wantsTable } from './table.js';
import type { ServiceAccountTokenSigner } from './tokens.js';
import {
  MUTATING_WEBHOOK_CONFIGURATION_KIND,
  normaliseMutatingWebhooks,
  WEBHOOK_CONFIGURATION_API_VERSION,
  WEBHOOK_CONFIGURATION_FIELDS,
  WEBHOOK_CONFIGURATION_GROUP,
  WEBHOOK_CONFIGURATION_STRATEGY,
} from './webhook-configurations.js';

/** Who made the request, after authentication. */
export interface UserInfo {
  readonly username: string;
  readonly uid: string;
  readonly groups: readonly string[];
  readonly extra: Record<string, string[]>;
  readonly isAdmin: boolean;
}

export interface ResourceRequest {
  readonly verb: string;
  readonly group: string;
  readonly version: string;
  readonly resource: string;
  readonly subresource?: string;
  readonly namespace?: string;
  readonly name?: string;
  readonly query: URLSearchParams;
  readonly body: unknown;
  readonly contentType: string;
  readonly accept: string | undefined;
  readonly user: UserInfo;
}

export interface HandlerResult {
  readonly status: number;
  readonly body: unknown;
  readonly warnings?: readonly string[];
}

export interface ServerState {
  readonly store: ObjectStore;
  readonly signer: ServiceAccountTokenSigner;
  readonly authorizer: Authorizer;
  readonly adminToken: string;
  /** The API server's own audiences (used when a TokenRequest or TokenReview names none). */
  readonly apiAudiences: readonly string[];
  /** Minor version served; TokenReview metadata shape depends on it (wire-facts B0). */
  readonly minorVersion: number;
}

/** Secrets larger than this are refused, as the API server does (1 MiB of data). */
const MAX_SECRET_DATA_BYTES = 1024 * 1024;
const MAX_ANNOTATIONS_BYTES = 256 * 1024;
const DEFAULT_TOKEN_SECONDS = 3600;
const MIN_TOKEN_SECONDS = 600;
/** The longest token this server mints; longer requests are shortened with a Warning, as a real server does. */
const MAX_TOKEN_SECONDS = 48 * 3600;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const SECRET_SELECTABLE_FIELDS = ['metadata.name', 'metadata.namespace', 'type'];
const EVENT_SELECTABLE_FIELDS = [
  'metadata.name',
  'metadata.namespace',
  'involvedObject.kind',
  'involvedObject.namespace',
  'involvedObject.name',
  'involvedObject.uid',
  'involvedObject.apiVersion',
  'reason',
  'type',
  'source',
];
const OBJECT_META_FIELDS = new Set([
  'name',
  'generateName',
  'namespace',
  'selfLink',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'labels',
  'annotations',
  'ownerReferences',
  'finalizers',
  'managedFields',
]);
const TOP_LEVEL_FIELDS: Record<string, Set<string>> = {
  secrets: new Set(['kind', 'apiVersion', 'metadata', 'data', 'stringData', 'type', 'immutable']),
  configmaps: new Set(['kind', 'apiVersion', 'metadata', 'data', 'binaryData', 'immutable']),
  serviceaccounts: new Set([
    'kind',
    'apiVersion',
    'metadata',
    'secrets',
    'imagePullSecrets',
    'automountServiceAccountToken',
  ]),
  namespaces: new Set(['kind', 'apiVersion', 'metadata', 'spec', 'status']),
  mutatingwebhookconfigurations: WEBHOOK_CONFIGURATION_FIELDS,
};

export function adminUser(): UserInfo {
  return {
    username: 'kubernetes-admin',
    uid: '',
    groups: ['system:masters', 'system:authenticated'],
    extra: {},
    isAdmin: true,
  };
}

/**
 * Authenticates a bearer token the way the API server's token authenticators do: the static admin token,
 * or a service-account JWT that is signed by this server, unexpired, meant for `audiences` and whose
 * service account still exists with the same uid.
 */
export function authenticateToken(
  state: ServerState,
  token: string,
  audiences: readonly string[],
): { ok: true; user: UserInfo; audiences: string[] } | { ok: false; error: string } {
  if (token === state.adminToken) return { ok: true, user: adminUser(), audiences: [...audiences] };
  const checked = state.signer.check(token);
  if (!checked.ok) return { ok: false, error: `[invalid bearer token, ${checked.error}]` };
  const claims = checked.claims;
  const matched = claims.aud.filter((a) => audiences.includes(a));
  if (matched.length === 0) {
    return {
      ok: false,
      error: `[invalid bearer token, token audiences ${JSON.stringify(claims.aud)} is invalid for the target audiences ${JSON.stringify(audiences)}]`,
    };
  }
  const { namespace, serviceaccount, pod } = claims['kubernetes.io'];
  const account = state.store.get('serviceaccounts', namespace, serviceaccount.name);
  if (account === undefined || account.metadata.uid !== serviceaccount.uid) {
    return {
      ok: false,
      error: `[invalid bearer token, service account ${namespace}/${serviceaccount.name} has been deleted or recreated]`,
    };
  }
  const extra: Record<string, string[]> = {
    'authentication.kubernetes.io/credential-id': [`JTI=${claims.jti}`],
  };
  if (pod !== undefined) {
    extra['authentication.kubernetes.io/pod-name'] = [pod.name];
    extra['authentication.kubernetes.io/pod-uid'] = [pod.uid];
  }
  return {
    ok: true,
    audiences: matched,
    user: {
      username: claims.sub,
      uid: serviceaccount.uid,
      groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
      extra,
      isAdmin: false,
    },
  };
}

export function handleResource(state: ServerState, req: ResourceRequest): HandlerResult {
  const key = req.subresource === undefined ? req.resource : `${req.resource}/${req.subresource}`;
  switch (key) {
    case 'namespaces':
      return handleNamespaces(state, req);
    case 'serviceaccounts':
      return handleServiceAccounts(state, req);
    case 'serviceaccounts/token':
      return handleTokenRequest(state, req);
    case 'secrets':
      return handleSecrets(state, req);
    case 'configmaps':
      return handleConfigMaps(state, req);
    case 'events':
      return handleEvents(state, req);
    case 'tokenreviews':
      return handleTokenReview(state, req);
    case 'mutatingwebhookconfigurations':
      return handleMutatingWebhookConfigurations(state, req);
    case 'deployments':
      return handleDeployments(state, req);
    default:
      throw new KubeStatusError(404, 'NotFound', 'the server could not find the requested resource');
  }
}

// ---- namespaces --------------------------------------------------------------------------------------------

function handleNamespaces(state: ServerState, req: ResourceRequest): HandlerResult {
  switch (req.verb) {
    case 'get':
      return { status: 200, body: mustGet(state, 'namespaces', undefined, req.name as string) };
    case 'list':
      return listResult(
        state,
        req,
        'namespaces',
        'NamespaceList',
        undefined,
        ['metadata.name', 'status.phase'],
        (o) => ({
          'metadata.name': o.metadata.name,
          'status.phase': String((o.status as { phase?: string }).phase),
        }),
      );
    case 'create': {
      const warnings = checkFields(req, 'namespaces');
      const body = objectBody(req.body, 'Namespace');
      const name = resolveName(body, 'Namespace');
      if (!DNS1123_LABEL.test(name) || name.length > 63) {
        throw invalid('Namespace', '', name, [
          {
            field: 'metadata.name',
            value: name,
            why: "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
          },
        ]);
      }
      return { status: 201, body: createNamespace(state, name, labelsOf(body)), warnings };
    }
    default:
      throw methodNotAllowed();
  }
}

/** Creates a namespace and its `default` service account, as the namespace and SA controllers would. */
export function createNamespace(
  state: ServerState,
  name: string,
  labels: Record<string, string> = {},
  uid?: string,
): KubeObject {
  if (state.store.get('namespaces', undefined, name) !== undefined) throw alreadyExists('namespaces', name);
  const created = state.store.create(
    'namespaces',
    {
      kind: 'Namespace',
      apiVersion: 'v1',
      metadata: { name, labels: { ...labels, 'kubernetes.io/metadata.name': name } },
      spec: { finalizers: ['kubernetes'] },
      status: { phase: 'Active' },
    },
    uid,
  );
  createServiceAccountObject(state, name, 'default');
  return created;
}

// ---- service accounts --------------------------------------------------------------------------------------

function handleServiceAccounts(state: ServerState, req: ResourceRequest): HandlerResult {
  const namespace = req.namespace;
  switch (req.verb) {
    case 'get':
      return { status: 200, body: mustGet(state, 'serviceaccounts', namespace, req.name as string) };
    case 'list':
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
      const warnings = checkFields(req, 'serviceaccounts');
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

function handleTokenRequest(state: ServerState, req: ResourceRequest): HandlerResult {
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

// ---- secrets -----------------------------------------------------------------------------------------------

function handleSecrets(state: ServerState, req: ResourceRequest): HandlerResult {
  const namespace = req.namespace;
  switch (req.verb) {
    case 'get':
      return { status: 200, body: mustGet(state, 'secrets', namespace, req.name as string) };
    case 'list':
      return listResult(state, req, 'secrets', 'SecretList', namespace, SECRET_SELECTABLE_FIELDS, (o) => ({
        ...metaFields(o),
        type: String(o.type ?? ''),
      }));
    case 'create': {
      const warnings = checkFields(req, 'secrets');
      const body = objectBody(req.body, 'Secret');
      const ns = requireNamespace(state, req, body);
      const name = resolveName(body, 'Secret');
      const secret = normaliseSecret(body, name, ns);
      if (state.store.get('secrets', ns, name) !== undefined) throw alreadyExists('secrets', name);
      return { status: 201, body: state.store.create('secrets', secret), warnings };
    }
    case 'update': {
      const warnings = checkFields(req, 'secrets');
      const current = mustGet(state, 'secrets', namespace, req.name as string);
      const body = objectBody(req.body, 'Secret');
      checkUpdatePreconditions(SECRETS, current, body);
      const next = normaliseSecret(body, current.metadata.name, current.metadata.namespace as string);
      return { status: 200, body: storeSecretChange(state, current, next), warnings };
    }
    case 'patch':
      return { status: 200, body: patchSecret(state, req) };
    case 'delete':
      return { status: 200, body: deleteObject(state, req, SECRETS) };
    default:
      throw methodNotAllowed();
  }
}

/** Builds the stored form of a Secret: `stringData` merged into `data`, type defaulted, fields validated. */
function normaliseSecret(body: Record<string, unknown>, name: string, namespace: string): KubeObject {
  checkSubdomainName('Secret', name);
  // No prototype: a key named `__proto__` is a valid Secret key and must be stored like any other.
  const data: Record<string, string> = Object.create(null);
  const causes: { field: string; value: unknown; why: string }[] = [];
  if (body.data !== undefined && body.data !== null) {
    if (!isRecord(body.data)) throw badRequest('data must be a map of base64 strings');
    for (const [key, value] of Object.entries(body.data)) {
      if (!CONFIG_KEY.test(key))
        causes.push({
          field: `data[${key}]`,
          value: key,
          why: "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
        });
      if (typeof value !== 'string' || !BASE64.test(value)) {
        throw badRequest(
          `Secret in version "v1" cannot be handled as a Secret: illegal base64 data at data[${key}]`,
        );
      }
      data[key] = value;
    }
  }
  if (body.stringData !== undefined && body.stringData !== null) {
    if (!isRecord(body.stringData)) throw badRequest('stringData must be a map of strings');
    for (const [key, value] of Object.entries(body.stringData)) {
      if (!CONFIG_KEY.test(key))
        causes.push({
          field: `stringData[${key}]`,
          value: key,
          why: "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
        });
      data[key] = Buffer.from(String(value), 'utf8').toString('base64');
    }
  }
  const size = Object.values(data).reduce((sum, v) => sum + Buffer.from(v, 'base64').length, 0);
  if (size > MAX_SECRET_DATA_BYTES)
    causes.push({
      field: 'data',
      value: '',
      why: `Too long: must have at most ${MAX_SECRET_DATA_BYTES} bytes`,
    });
  const labels = labelsOf(body);
  const annotations = annotationsOf(body);
  validateLabelsAndAnnotations('Secret', name, labels, annotations, causes);
  if (causes.length > 0) throw invalid('Secret', '', name, causes);
  const type = typeof body.type === 'string' && body.type !== '' ? body.type : 'Opaque';
  return {
    kind: 'Secret',
    apiVersion: 'v1',
    metadata: storedMetadata(body, name, namespace, labels, annotations),
    ...(body.immutable === undefined ? {} : { immutable: Boolean(body.immutable) }),
    ...(Object.keys(data).length === 0 ? {} : { data }),
    type,
  };
}

/** Stores a changed secret once the Secret-only update rules (immutability, fixed type) allow it. */
function storeSecretChange(state: ServerState, current: KubeObject, next: KubeObject): KubeObject {
  if (current.immutable === true) {
    const causes: { field: string; value: unknown; why: string }[] = [];
    if (JSON.stringify(current.data ?? {}) !== JSON.stringify(next.data ?? {}))
      causes.push({ field: 'data', value: '', why: 'field is immutable when `immutable` is set' });
    if (next.immutable !== true)
      causes.push({
        field: 'immutable',
        value: next.immutable ?? false,
        why: 'field is immutable when `immutable` is set',
      });
    if (causes.length > 0) throw invalid('Secret', '', current.metadata.name, causes);
  }
  if (current.type !== next.type) {
    throw invalid('Secret', '', current.metadata.name, [
      { field: 'type', value: next.type, why: 'field is immutable' },
    ]);
  }
  return storeChange(state, 'secrets', current, next);
}

function patchSecret(state: ServerState, req: ResourceRequest): KubeObject {
  const { current, patched } = patchedObject(state, req, SECRETS);
  const next = normaliseSecret(patched, current.metadata.name, current.metadata.namespace as string);
  return storeSecretChange(state, current, next);
}

// ---- deployments (read-only) ------------------------------------------------------------------------------

function handleDeployments(state: ServerState, req: ResourceRequest): HandlerResult {
  switch (req.verb) {
    case 'get':
      return { status: 200, body: mustGet(state, 'deployments', req.namespace, req.name as string) };
    case 'list':
      return listResult(
        state,
        req,
        'deployments',
        'DeploymentList',
        req.namespace,
        ['metadata.name', 'metadata.namespace'],
        metaFields,
      );
    default:
      throw methodNotAllowed();
  }
}

// ---- configmaps --------------------------------------------------------------------------------------------

/** The API server's limit on a ConfigMap's data plus binaryData (k8s.io/api core/v1 validation, 1 MiB). */
const MAX_CONFIG_MAP_BYTES = 1024 * 1024;

function handleConfigMaps(state: ServerState, req: ResourceRequest): HandlerResult {
  const namespace = req.namespace;
  switch (req.verb) {
    case 'get':
      return { status: 200, body: mustGet(state, 'configmaps', namespace, req.name as string) };
    case 'list':
      return listResult(
        state,
        req,
        'configmaps',
        'ConfigMapList',
        namespace,
        ['metadata.name', 'metadata.namespace'],
        metaFields,
      );
    case 'create': {
      const warnings = checkFields(req, 'configmaps');
      const body = objectBody(req.body, 'ConfigMap');
      const ns = requireNamespace(state, req, body);
      const name = resolveName(body, 'ConfigMap');
      const configMap = normaliseConfigMap(body, name, ns);
      if (state.store.get('configmaps', ns, name) !== undefined) throw alreadyExists('configmaps', name);
      return { status: 201, body: state.store.create('configmaps', configMap), warnings };
    }
    case 'update': {
      const warnings = checkFields(req, 'configmaps');
      const current = mustGet(state, 'configmaps', namespace, req.name as string);
      const body = objectBody(req.body, 'ConfigMap');
      checkUpdatePreconditions(CONFIG_MAPS, current, body);
      const next = normaliseConfigMap(body, current.metadata.name, current.metadata.namespace as string);
      return { status: 200, body: storeConfigMapChange(state, current, next), warnings };
    }
    case 'patch': {
      const { current, patched } = patchedObject(state, req, CONFIG_MAPS);
      const next = normaliseConfigMap(patched, current.metadata.name, current.metadata.namespace as string);
      return { status: 200, body: storeConfigMapChange(state, current, next) };
    }
    case 'delete':
      return { status: 200, body: deleteObject(state, req, CONFIG_MAPS) };
    default:
      throw methodNotAllowed();
  }
}

/**
 * The stored form of a ConfigMap: string `data`, base64 `binaryData`, keys valid and not in both, at most 1 MiB in
 * all (K8S pkg/apis/core/validation/validation.go `ValidateConfigMap`: `IsConfigMapKey`, "duplicate of key present
 * in data", `MaxSecretSize`). Updates and patches with a stale resourceVersion are 409 Conflicts (patchedObject).
 */
function normaliseConfigMap(body: Record<string, unknown>, name: string, namespace: string): KubeObject {
  checkSubdomainName('ConfigMap', name);
  const causes: FieldError[] = [];
  const data: Record<string, string> = Object.create(null);
  const binaryData: Record<string, string> = Object.create(null);
  if (body.data !== undefined && body.data !== null) {
    if (!isRecord(body.data)) throw badRequest('data must be a map of strings');
    for (const [key, value] of Object.entries(body.data)) {
      if (typeof value !== 'string')
        throw badRequest(
          `ConfigMap in version "v1" cannot be handled as a ConfigMap: data[${key}] is not a string`,
        );
      if (!CONFIG_KEY.test(key))
        causes.push({
          field: `data[${key}]`,
          value: key,
          why: "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
        });
      data[key] = value;
    }
  }
  if (body.binaryData !== undefined && body.binaryData !== null) {
    if (!isRecord(body.binaryData)) throw badRequest('binaryData must be a map of base64 strings');
    for (const [key, value] of Object.entries(body.binaryData)) {
      if (typeof value !== 'string' || !BASE64.test(value))
        throw badRequest(
          `ConfigMap in version "v1" cannot be handled as a ConfigMap: illegal base64 data at binaryData[${key}]`,
        );
      if (key in data)
        causes.push({ field: `binaryData[${key}]`, value: key, why: 'duplicate of key present in data' });
      binaryData[key] = value;
    }
  }
  const size =
    Object.entries(data).reduce((sum, [k, v]) => sum + k.length + Buffer.byteLength(v), 0) +
    Object.entries(binaryData).reduce((sum, [k, v]) => sum + k.length + Buffer.from(v, 'base64').length, 0);
  if (size > MAX_CONFIG_MAP_BYTES)
    causes.push({ field: '', value: '', why: `Too long: must have at most ${MAX_CONFIG_MAP_BYTES} bytes` });
  const labels = labelsOf(body);
  const annotations = annotationsOf(body);
  validateLabelsAndAnnotations('ConfigMap', name, labels, annotations, causes);
  if (causes.length > 0) throw invalid('ConfigMap', '', name, causes);
  return {
    kind: 'ConfigMap',
    apiVersion: 'v1',
    metadata: storedMetadata(body, name, namespace, labels, annotations),
    ...(body.immutable === undefined ? {} : { immutable: Boolean(body.immutable) }),
    ...(Object.keys(data).length === 0 ? {} : { data: { ...data } }),
    ...(Object.keys(binaryData).length === 0 ? {} : { binaryData: { ...binaryData } }),
  };
}

/** An immutable ConfigMap keeps its data (upstream: "field is immutable when `immutable` is set"). */
function storeConfigMapChange(state: ServerState, current: KubeObject, next: KubeObject): KubeObject {
  if (current.immutable === true) {
    const same =
      JSON.stringify(current.data ?? {}) === JSON.stringify(next.data ?? {}) &&
      JSON.stringify(current.binaryData ?? {}) === JSON.stringify(next.binaryData ?? {}) &&
      next.immutable === true;
    if (!same)
      throw invalid('ConfigMap', '', current.metadata.name, [
        { field: 'data', value: '', why: 'field is immutable when `immutable` is set' },
      ]);
  }
  return storeChange(state, 'configmaps', current, next);
}

// ---- MutatingWebhookConfigurations ------------------------------------------------------------------------

function handleMutatingWebhookConfigurations(state: ServerState, req: ResourceRequest): HandlerResult {
  const { resource, group } = MUTATING_WEBHOOK_CONFIGURATIONS;
  switch (req.verb) {
    case 'get':
      return { status: 200, body: mustGet(state, resource, undefined, req.name as string, group) };
    case 'list':
      return listResult(
        state,
        req,
        resource,
        'MutatingWebhookConfigurationList',
        undefined,
        ['metadata.name'],
        (o) => ({ 'metadata.name': o.metadata.name }),
        WEBHOOK_CONFIGURATION_API_VERSION,
      );
    case 'create': {
      const body = objectBody(
        req.body,
        MUTATING_WEBHOOK_CONFIGURATION_KIND,
        WEBHOOK_CONFIGURATION_API_VERSION,
      );
      const name = resolveName(body, MUTATING_WEBHOOK_CONFIGURATION_KIND, group);
      const { object, warnings } = buildWebhookConfiguration(req, body, name);
      if (state.store.get(resource, undefined, name) !== undefined)
        throw alreadyExists(resource, name, group);
      object.metadata.generation = 1;
      return { status: 201, body: state.store.create(resource, object), warnings };
    }
    case 'update': {
      const current = mustGet(state, resource, undefined, req.name as string, group);
      const body = objectBody(
        req.body,
        MUTATING_WEBHOOK_CONFIGURATION_KIND,
        WEBHOOK_CONFIGURATION_API_VERSION,
      );
      checkUpdatePreconditions(MUTATING_WEBHOOK_CONFIGURATIONS, current, body);
      const { object, warnings } = buildWebhookConfiguration(req, body, current.metadata.name);
      return { status: 200, body: storeWebhookConfigurationChange(state, current, object), warnings };
    }
    case 'patch': {
      const { current, patched } = patchedObject(state, req, MUTATING_WEBHOOK_CONFIGURATIONS);
      const body = objectBody(
        patched,
        MUTATING_WEBHOOK_CONFIGURATION_KIND,
        WEBHOOK_CONFIGURATION_API_VERSION,
      );
      const { object, warnings } = buildWebhookConfiguration(req, body, current.metadata.name, patched);
      return { status: 200, body: storeWebhookConfigurationChange(state, current, object), warnings };
    }
    case 'delete':
      return { status: 200, body: deleteObject(state, req, MUTATING_WEBHOOK_CONFIGURATIONS) };
    default:
      throw methodNotAllowed();
  }
}

/**
 * The stored form of a MutatingWebhookConfiguration, in the API server's order of checks: body decoding
 * (400), unknown fields under `fieldValidation`, then one 422 with every field problem.
 */
function buildWebhookConfiguration(
  req: ResourceRequest,
  body: Record<string, unknown>,
  name: string,
  checkedForUnknownFields: unknown = req.body,
): { object: KubeObject; warnings: string[] } {
  const { webhooks, errors, unknownFields } = normaliseMutatingWebhooks(body.webhooks);
  const labels = labelsOf(body);
  const annotations = annotationsOf(body);
  const warnings = checkFields(
    req,
    MUTATING_WEBHOOK_CONFIGURATIONS.resource,
    checkedForUnknownFields,
    unknownFields,
  );
  const metadataErrors: FieldError[] = subdomainNameErrors(name);
  validateLabelsAndAnnotations(
    MUTATING_WEBHOOK_CONFIGURATION_KIND,
    name,
    labels,
    annotations,
    metadataErrors,
  );
  const all = [...metadataErrors, ...errors];
  if (all.length > 0)
    throw invalid(MUTATING_WEBHOOK_CONFIGURATION_KIND, WEBHOOK_CONFIGURATION_GROUP, name, all);
  const object: KubeObject = {
    kind: MUTATING_WEBHOOK_CONFIGURATION_KIND,
    apiVersion: WEBHOOK_CONFIGURATION_API_VERSION,
    metadata: storedMetadata(body, name, undefined, labels, annotations),
    // An empty list is left out, as the API server's omitempty does.
    ...(webhooks === undefined || webhooks.length === 0 ? {} : { webhooks }),
  };
  return { object, warnings };
}

/** `metadata.generation` counts changes to the webhooks, as the API server's strategy does. */
function storeWebhookConfigurationChange(
  state: ServerState,
  current: KubeObject,
  next: KubeObject,
): KubeObject {
  const generation = typeof current.metadata.generation === 'number' ? current.metadata.generation : 1;
  next.metadata.generation = jsonEqual(current.webhooks, next.webhooks) ? generation : generation + 1;
  return storeChange(state, MUTATING_WEBHOOK_CONFIGURATIONS.resource, current, next);
}

// ---- events ------------------------------------------------------------------------------------------------

function handleEvents(state: ServerState, req: ResourceRequest): HandlerResult {
  const namespace = req.namespace;
  switch (req.verb) {
    case 'get':
      return { status: 200, body: mustGet(state, 'events', namespace, req.name as string) };
    case 'list':
      return listResult(state, req, 'events', 'EventList', namespace, EVENT_SELECTABLE_FIELDS, (o) => {
        const ref = (isRecord(o.involvedObject) ? o.involvedObject : {}) as Record<string, unknown>;
        const source = (isRecord(o.source) ? o.source : {}) as Record<string, unknown>;
        return {
          ...metaFields(o),
          'involvedObject.kind': String(ref.kind ?? ''),
          'involvedObject.namespace': String(ref.namespace ?? ''),
          'involvedObject.name': String(ref.name ?? ''),
          'involvedObject.uid': String(ref.uid ?? ''),
          'involvedObject.apiVersion': String(ref.apiVersion ?? ''),
          reason: String(o.reason ?? ''),
          type: String(o.type ?? ''),
          source: String(source.component ?? ''),
        };
      });
    case 'create': {
      const body = objectBody(req.body, 'Event');
      const ns = requireNamespace(state, req, body);
      const name = resolveName(body, 'Event');
      checkSubdomainName('Event', name);
      if (!isRecord(body.involvedObject)) {
        throw invalid('Event', '', name, [
          { field: 'involvedObject', value: '', why: 'involvedObject is required' },
        ]);
      }
      if (state.store.get('events', ns, name) !== undefined) throw alreadyExists('events', name);
      const { metadata: _ignored, ...rest } = body;
      const event = {
        ...rest,
        kind: 'Event',
        apiVersion: 'v1',
        metadata: {
          name,
          namespace: ns,
          ...(Object.keys(labelsOf(body)).length > 0 ? { labels: labelsOf(body) } : {}),
        },
      } as NewKubeObject;
      return { status: 201, body: state.store.create('events', event) };
    }
    default:
      throw methodNotAllowed();
  }
}

// ---- TokenReview -------------------------------------------------------------------------------------------

function handleTokenReview(state: ServerState, req: ResourceRequest): HandlerResult {
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

// ---- shared helpers ----------------------------------------------------------------------------------------

/** How shared handler code names a resource in messages, and which patches it takes. */
interface ResourceNames {
  /** Plural, as in URLs and RBAC. */
  readonly resource: string;
  readonly kind: string;
  readonly group: string;
  readonly patchTypes: readonly PatchType[];
  readonly strategy: StrategicSchema;
}

const SECRETS: ResourceNames = {
  resource: 'secrets',
  kind: 'Secret',
  group: '',
  // Every built-in type takes JSON, merge and strategic merge patches (k8s.io/apiserver
  // pkg/endpoints/handlers/patch.go `PatchResource`; strategic merge is refused only for custom resources).
  patchTypes: [JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH],
  strategy: OBJECT_META_STRATEGY,
};

const CONFIG_MAPS: ResourceNames = {
  resource: 'configmaps',
  kind: 'ConfigMap',
  group: '',
  patchTypes: [JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH],
  strategy: OBJECT_META_STRATEGY,
};

const MUTATING_WEBHOOK_CONFIGURATIONS: ResourceNames = {
  resource: 'mutatingwebhookconfigurations',
  kind: MUTATING_WEBHOOK_CONFIGURATION_KIND,
  group: WEBHOOK_CONFIGURATION_GROUP,
  patchTypes: [JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH],
  strategy: WEBHOOK_CONFIGURATION_STRATEGY,
};

function mustGet(
  state: ServerState,
  resource: string,
  namespace: string | undefined,
  name: string,
  group = '',
): KubeObject {
  const found = state.store.get(resource, namespace, name);
  if (found === undefined) throw notFound(resource, name, group);
  return found;
}

/** PUT rules every type shares: the URL names the object, and the body carries the current resourceVersion. */
function checkUpdatePreconditions(
  names: ResourceNames,
  current: KubeObject,
  body: Record<string, unknown>,
): void {
  const meta = (isRecord(body.metadata) ? body.metadata : {}) as Record<string, unknown>;
  if (meta.name !== undefined && meta.name !== current.metadata.name) {
    throw badRequest('the name of the object does not match the name on the URL');
  }
  if (meta.resourceVersion === undefined || meta.resourceVersion === '') {
    throw invalid(names.kind, names.group, current.metadata.name, [
      { field: 'metadata.resourceVersion', value: '', why: 'must be specified for an update' },
    ]);
  }
  if (meta.resourceVersion !== current.metadata.resourceVersion) {
    throw conflict(
      names.resource,
      current.metadata.name,
      'the object has been modified; please apply your changes to the latest version and try again',
      names.group,
    );
  }
}

/**
 * The common part of every PATCH: the content type picks the patch format (415 when the type takes no
 * such patch), the object must exist, and the patched object may not move or rename it. A resourceVersion
 * left in the patched object is an optimistic lock, as on a real server.
 */
function patchedObject(
  state: ServerState,
  req: ResourceRequest,
  names: ResourceNames,
): { current: KubeObject; patched: Record<string, unknown> } {
  const type = patchTypeOf(req.contentType, names.patchTypes);
  const current = mustGet(state, names.resource, req.namespace, req.name as string, names.group);
  const patched = applyPatch(current, req.body, type, names.strategy);
  const meta = isRecord(patched.metadata) ? patched.metadata : {};
  if (
    typeof meta.resourceVersion === 'string' &&
    meta.resourceVersion !== '' &&
    meta.resourceVersion !== current.metadata.resourceVersion
  ) {
    throw conflict(
      names.resource,
      current.metadata.name,
      'the object has been modified; please apply your changes to the latest version and try again',
      names.group,
    );
  }
  for (const field of ['name', 'namespace', 'uid'] as const) {
    if (meta[field] !== undefined && meta[field] !== current.metadata[field]) {
      throw invalid(names.kind, names.group, current.metadata.name, [
        { field: `metadata.${field}`, value: meta[field], why: 'field is immutable' },
      ]);
    }
  }
  return { current, patched };
}

/** Stores `next` in place of `current`; an unchanged object keeps its resourceVersion (no-op writes). */
function storeChange(
  state: ServerState,
  resource: string,
  current: KubeObject,
  next: KubeObject,
): KubeObject {
  next.metadata.uid = current.metadata.uid;
  next.metadata.creationTimestamp = current.metadata.creationTimestamp;
  next.metadata.resourceVersion = current.metadata.resourceVersion;
  if (jsonEqual(current, next)) return current;
  return state.store.update(resource, next);
}

/** DELETE with optional uid/resourceVersion preconditions; 200 with a Success Status. */
function deleteObject(state: ServerState, req: ResourceRequest, names: ResourceNames): object {
  const current = mustGet(state, names.resource, req.namespace, req.name as string, names.group);
  const options = isRecord(req.body) ? req.body : {};
  const preconditions = isRecord(options.preconditions) ? options.preconditions : {};
  const name = current.metadata.name;
  if (typeof preconditions.uid === 'string' && preconditions.uid !== current.metadata.uid) {
    throw preconditionConflict(
      names.kind,
      name,
      `the UID in the precondition (${preconditions.uid}) does not match the UID in record (${current.metadata.uid}). The object might have been deleted and then recreated`,
      names.group,
    );
  }
  if (
    typeof preconditions.resourceVersion === 'string' &&
    preconditions.resourceVersion !== current.metadata.resourceVersion
  ) {
    throw preconditionConflict(
      names.kind,
      name,
      `the ResourceVersion in the precondition (${preconditions.resourceVersion}) does not match the ResourceVersion in record (${current.metadata.resourceVersion}). The object might have been modified`,
      names.group,
    );
  }
  if (options.dryRun === undefined && req.query.get('dryRun') === null)
    state.store.delete(names.resource, req.namespace, name);
  // No `code` key: the API server leaves it at 0 for an immediate delete (wire-facts B4).
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Success',
    details: {
      name,
      ...(names.group === '' ? {} : { group: names.group }),
      kind: names.resource,
      uid: current.metadata.uid,
    },
  };
}

function listResult(
  state: ServerState,
  req: ResourceRequest,
  resource: string,
  listKind: string,
  namespace: string | undefined,
  selectableFields: readonly string[],
  fieldsOf: (o: KubeObject) => Record<string, string>,
  apiVersion = 'v1',
): HandlerResult {
  if (req.query.get('watch') === 'true' || req.query.get('watch') === '1') {
    throw new KubeStatusError(
      405,
      'MethodNotAllowed',
      'watch is not supported by the cloudtaser Kubernetes test server',
    );
  }
  const labels = parseLabelSelector(req.query.get('labelSelector'));
  const fields = parseFieldSelector(req.query.get('fieldSelector'), selectableFields);
  const resourceVersion = state.store.currentResourceVersion();
  let items = state.store
    .list(resource, namespace)
    .filter((o) => matchesLabels(labels, o.metadata.labels) && matchesFields(fields, fieldsOf(o)));
  const offset = decodeContinue(req.query.get('continue'));
  const limitText = req.query.get('limit');
  const limit = limitText === null ? 0 : Number(limitText);
  if (!Number.isInteger(limit) || limit < 0) throw badRequest(`invalid limit: ${JSON.stringify(limitText)}`);
  items = items.slice(offset);
  let next: string | undefined;
  if (limit > 0 && items.length > limit) {
    next = Buffer.from(JSON.stringify({ offset: offset + limit })).toString('base64url');
    items = items.slice(0, limit);
  }
  if (wantsTable(req.accept)) {
    const table = toTable(resource, items, resourceVersion);
    if (table !== undefined) return { status: 200, body: table };
  }
  return {
    status: 200,
    body: {
      kind: listKind,
      apiVersion,
      metadata: { resourceVersion, ...(next === undefined ? {} : { continue: next }) },
      items: items.map(({ kind: _k, apiVersion: _a, ...rest }) => rest),
    },
  };
}

function decodeContinue(token: string | null): number {
  if (token === null || token === '') return 0;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (isRecord(parsed) && Number.isInteger(parsed.offset) && (parsed.offset as number) >= 0)
      return parsed.offset as number;
  } catch {
    // fall through to the error below
  }
  throw badRequest('continue key is not valid');
}

function metaFields(o: KubeObject): Record<string, string> {
  return { 'metadata.name': o.metadata.name, 'metadata.namespace': String(o.metadata.namespace ?? '') };
}

function objectBody(body: unknown, kind: string, apiVersion = 'v1'): Record<string, unknown> {
  if (!isRecord(body)) throw badRequest(`the body of the request must be a ${kind} object`);
  if (body.kind !== undefined && body.kind !== kind) {
    throw badRequest(
      `${kind} in version "${apiVersion.split('/').pop()}" cannot be handled as a ${kind}: unexpected kind ${JSON.stringify(body.kind)}`,
    );
  }
  if (body.metadata !== undefined && body.metadata !== null && !isRecord(body.metadata))
    throw badRequest('metadata must be an object');
  return body;
}

function resolveName(body: Record<string, unknown>, kind: string, group = ''): string {
  const meta = (isRecord(body.metadata) ? body.metadata : {}) as Record<string, unknown>;
  if (typeof meta.name === 'string' && meta.name !== '') return meta.name;
  if (typeof meta.generateName === 'string' && meta.generateName !== '') {
    return `${meta.generateName}${randomBytes(4).toString('hex').slice(0, 5)}`;
  }
  throw invalid(kind, group, '', [
    { field: 'metadata.name', value: '', why: 'name or generateName is required' },
  ]);
}

function checkSubdomainName(kind: string, name: string): void {
  const errors = subdomainNameErrors(name);
  if (errors.length > 0) throw invalid(kind, '', name, errors);
}

function subdomainNameErrors(name: string): FieldError[] {
  if (name.length <= 253 && DNS1123_SUBDOMAIN.test(name)) return [];
  return [
    {
      field: 'metadata.name',
      value: name,
      why: "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
    },
  ];
}

function requireNamespace(state: ServerState, req: ResourceRequest, body: Record<string, unknown>): string {
  const namespace = req.namespace as string;
  const meta = (isRecord(body.metadata) ? body.metadata : {}) as Record<string, unknown>;
  if (meta.namespace !== undefined && meta.namespace !== '' && meta.namespace !== namespace) {
    throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
  }
  if (state.store.get('namespaces', undefined, namespace) === undefined)
    throw notFound('namespaces', namespace);
  return namespace;
}

function labelsOf(body: Record<string, unknown>): Record<string, string> {
  return stringMap((body.metadata as Record<string, unknown> | undefined)?.labels);
}

function annotationsOf(body: Record<string, unknown>): Record<string, string> {
  return stringMap((body.metadata as Record<string, unknown> | undefined)?.annotations);
}

/** The metadata a write keeps from the request; the store adds uid, resourceVersion and creationTimestamp. */
function storedMetadata(
  body: Record<string, unknown>,
  name: string,
  namespace: string | undefined,
  labels: Record<string, string>,
  annotations: Record<string, string>,
): KubeObject['metadata'] {
  const meta = (isRecord(body.metadata) ? body.metadata : {}) as Record<string, unknown>;
  const metadata: Record<string, unknown> = namespace === undefined ? { name } : { name, namespace };
  if (Object.keys(labels).length > 0) metadata.labels = labels;
  if (Object.keys(annotations).length > 0) metadata.annotations = annotations;
  for (const field of ['ownerReferences', 'finalizers'] as const)
    if (meta[field] !== undefined) metadata[field] = meta[field];
  return metadata as KubeObject['metadata'];
}

function stringMap(value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (!isRecord(value)) throw badRequest('labels and annotations must be maps of strings');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw badRequest(`label or annotation ${JSON.stringify(k)} must be a string`);
    out[k] = v;
  }
  return out;
}

const QUALIFIED_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

function validateLabelsAndAnnotations(
  _kind: string,
  _name: string,
  labels: Record<string, string>,
  annotations: Record<string, string>,
  causes: FieldError[],
): void {
  for (const [k, v] of Object.entries(labels)) {
    if (!QUALIFIED_KEY.test(k))
      causes.push({
        field: 'metadata.labels',
        value: k,
        why: 'name part must consist of alphanumeric characters',
      });
    if (!LABEL_VALUE.test(v))
      causes.push({
        field: 'metadata.labels',
        value: v,
        why: 'a valid label must be an empty string or consist of alphanumeric characters',
      });
  }
  let size = 0;
  for (const [k, v] of Object.entries(annotations)) {
    if (!QUALIFIED_KEY.test(k))
      causes.push({
        field: 'metadata.annotations',
        value: k,
        why: 'name part must consist of alphanumeric characters',
      });
    size += k.length + v.length;
  }
  if (size > MAX_ANNOTATIONS_BYTES)
    causes.push({
      field: 'metadata.annotations',
      value: '',
      why: `Too long: must have at most ${MAX_ANNOTATIONS_BYTES} bytes`,
    });
}

/**
 * `fieldValidation=Strict` refuses unknown fields; the default (`Warn`) reports them in Warning headers.
 * `nested` carries unknown fields a type's own decoder found below the top level.
 */
function checkFields(
  req: ResourceRequest,
  resource: string,
  object: unknown = req.body,
  nested: readonly string[] = [],
): string[] {
  const mode = req.query.get('fieldValidation') ?? 'Warn';
  if (mode === 'Ignore' || !isRecord(object)) return [];
  const allowed = TOP_LEVEL_FIELDS[resource];
  const unknown = Object.keys(object)
    .filter((k) => !allowed.has(k))
    .map((k) => `unknown field "${k}"`);
  if (isRecord(object.metadata)) {
    for (const k of Object.keys(object.metadata))
      if (!OBJECT_META_FIELDS.has(k)) unknown.push(`unknown field "metadata.${k}"`);
  }
  unknown.push(...nested);
  if (unknown.length > 0 && mode === 'Strict')
    throw badRequest(`strict decoding error: ${unknown.join(', ')}`);
  return unknown;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isoSeconds(epochSeconds: number): string {
  return new Date(epochSeconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
