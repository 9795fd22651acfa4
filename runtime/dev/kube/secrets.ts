/** Secrets in the Kubernetes test server (dev-only): `stringData` folded into `data`, size limit, immutability. */
import {
  BUILT_IN_PATCH_TYPES,
  checkUpdatePreconditions,
  createByApply,
  deleteObject,
  listResult,
  metaFields,
  mustGet,
  patchedObject,
  type ResourceNames,
  storeChange,
} from './crud.js';
import {
  annotationsOf,
  BASE64,
  CONFIG_KEY,
  checkFields,
  checkSubdomainName,
  isRecord,
  labelsOf,
  objectBody,
  requireNamespace,
  resolveName,
  storedMetadata,
  validateLabelsAndAnnotations,
} from './metadata.js';
import { OBJECT_META_STRATEGY } from './patch.js';
import type { HandlerResult, ResourceRequest, ServerState } from './requests.js';
import { alreadyExists, badRequest, invalid, methodNotAllowed } from './status.js';
import type { KubeObject } from './store.js';

/** Secrets larger than this are refused, as the API server does (1 MiB of data). */
const MAX_SECRET_DATA_BYTES = 1024 * 1024;
const SECRET_SELECTABLE_FIELDS = ['metadata.name', 'metadata.namespace', 'type'];
const SECRET_FIELDS = new Set(['kind', 'apiVersion', 'metadata', 'data', 'stringData', 'type', 'immutable']);

const SECRETS: ResourceNames = {
  resource: 'secrets',
  kind: 'Secret',
  group: '',
  patchTypes: BUILT_IN_PATCH_TYPES,
  strategy: OBJECT_META_STRATEGY,
};

export function handleSecrets(state: ServerState, req: ResourceRequest): HandlerResult {
  const namespace = req.namespace;
  switch (req.verb) {
    case 'get':
      return { status: 200, body: mustGet(state, 'secrets', namespace, req.name as string) };
    case 'list':
    case 'watch':
      return listResult(state, req, 'secrets', 'SecretList', namespace, SECRET_SELECTABLE_FIELDS, (o) => ({
        ...metaFields(o),
        type: String(o.type ?? ''),
      }));
    case 'create': {
      const warnings = checkFields(req, SECRET_FIELDS);
      const body = objectBody(req.body, 'Secret');
      const ns = requireNamespace(state, req, body);
      const name = resolveName(body, 'Secret');
      const secret = normaliseSecret(body, name, ns);
      if (state.store.get('secrets', ns, name) !== undefined) throw alreadyExists('secrets', name);
      return { status: 201, body: state.store.create('secrets', secret), warnings };
    }
    case 'update': {
      const warnings = checkFields(req, SECRET_FIELDS);
      const current = mustGet(state, 'secrets', namespace, req.name as string);
      const body = objectBody(req.body, 'Secret');
      checkUpdatePreconditions(SECRETS, current, body);
      const next = normaliseSecret(body, current.metadata.name, current.metadata.namespace as string);
      return { status: 200, body: storeSecretChange(state, current, next), warnings };
    }
    case 'patch': {
      const create = createByApply(state, req, SECRETS);
      if (create !== undefined) return handleSecrets(state, create);
      return { status: 200, body: patchSecret(state, req) };
    }
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
