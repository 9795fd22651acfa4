/** ConfigMaps in the Kubernetes test server (dev-only). */
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
import { alreadyExists, badRequest, type FieldError, invalid, methodNotAllowed } from './status.js';
import type { KubeObject } from './store.js';

const CONFIG_MAP_FIELDS = new Set(['kind', 'apiVersion', 'metadata', 'data', 'binaryData', 'immutable']);

const CONFIG_MAPS: ResourceNames = {
  resource: 'configmaps',
  kind: 'ConfigMap',
  group: '',
  patchTypes: BUILT_IN_PATCH_TYPES,
  strategy: OBJECT_META_STRATEGY,
};

/** The API server's limit on a ConfigMap's data plus binaryData (k8s.io/api core/v1 validation, 1 MiB). */
const MAX_CONFIG_MAP_BYTES = 1024 * 1024;

export function handleConfigMaps(state: ServerState, req: ResourceRequest): HandlerResult {
  const namespace = req.namespace;
  switch (req.verb) {
    case 'get':
      return { status: 200, body: mustGet(state, 'configmaps', namespace, req.name as string) };
    case 'list':
    case 'watch':
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
      const warnings = checkFields(req, CONFIG_MAP_FIELDS);
      const body = objectBody(req.body, 'ConfigMap');
      const ns = requireNamespace(state, req, body);
      const name = resolveName(body, 'ConfigMap');
      const configMap = normaliseConfigMap(body, name, ns);
      if (state.store.get('configmaps', ns, name) !== undefined) throw alreadyExists('configmaps', name);
      return { status: 201, body: state.store.create('configmaps', configMap), warnings };
    }
    case 'update': {
      const warnings = checkFields(req, CONFIG_MAP_FIELDS);
      const current = mustGet(state, 'configmaps', namespace, req.name as string);
      const body = objectBody(req.body, 'ConfigMap');
      checkUpdatePreconditions(CONFIG_MAPS, current, body);
      const next = normaliseConfigMap(body, current.metadata.name, current.metadata.namespace as string);
      return { status: 200, body: storeConfigMapChange(state, current, next), warnings };
    }
    case 'patch': {
      const create = createByApply(state, req, CONFIG_MAPS);
      if (create !== undefined) return handleConfigMaps(state, create);
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
