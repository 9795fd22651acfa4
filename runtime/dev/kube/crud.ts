/**
 * The CRUD rules every resource kind of the Kubernetes test server shares (dev-only): get-or-404, PUT
 * preconditions, PATCH, no-op writes, DELETE preconditions, and lists with selectors and continue tokens.
 */

import { isRecord } from './metadata.js';
import {
  applyPatch,
  JSON_PATCH,
  jsonEqual,
  MERGE_PATCH,
  type PatchType,
  patchTypeOf,
  STRATEGIC_MERGE_PATCH,
  type StrategicSchema,
} from './patch.js';
import type { HandlerResult, ResourceRequest, ServerState } from './requests.js';
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector } from './selectors.js';
import { badRequest, conflict, invalid, KubeStatusError, notFound, preconditionConflict } from './status.js';
import type { KubeObject } from './store.js';
import { toTable, wantsTable } from './table.js';

/** How shared handler code names a resource in messages, and which patches it takes. */
export interface ResourceNames {
  /** Plural, as in URLs and RBAC. */
  readonly resource: string;
  readonly kind: string;
  readonly group: string;
  readonly patchTypes: readonly PatchType[];
  readonly strategy: StrategicSchema;
}

/**
 * Every built-in type takes JSON, merge and strategic merge patches (k8s.io/apiserver
 * pkg/endpoints/handlers/patch.go `PatchResource`; strategic merge is refused only for custom resources).
 */
export const BUILT_IN_PATCH_TYPES: readonly PatchType[] = [JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH];

export function mustGet(
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
export function checkUpdatePreconditions(
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
export function patchedObject(
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
export function storeChange(
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
export function deleteObject(state: ServerState, req: ResourceRequest, names: ResourceNames): object {
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

export function listResult(
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

export function metaFields(o: KubeObject): Record<string, string> {
  return { 'metadata.name': o.metadata.name, 'metadata.namespace': String(o.metadata.namespace ?? '') };
}
