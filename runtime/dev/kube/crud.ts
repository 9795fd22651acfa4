/**
 * The CRUD rules every resource kind of the Kubernetes test server shares (dev-only): get-or-404, PUT
 * preconditions, PATCH, no-op writes, DELETE preconditions, lists with selectors and continue tokens, and watches.
 */

import { isRecord } from './metadata.js';
import {
  APPLY_PATCH,
  applyPatch,
  JSON_PATCH,
  jsonEqual,
  MERGE_PATCH,
  type PatchType,
  parseApplyConfiguration,
  patchTypeOf,
  STRATEGIC_MERGE_PATCH,
  type StrategicSchema,
  serverSideApply,
} from './patch.js';
import type { HandlerResult, ResourceRequest, ServerState } from './requests.js';
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector } from './selectors.js';
import { badRequest, conflict, invalid, KubeStatusError, notFound, preconditionConflict } from './status.js';
import type { KubeObject } from './store.js';
import { toTable, wantsTable } from './table.js';
import { watchCollection } from './watch.js';

/** How shared handler code names a resource in messages, and which patches it takes. */
export interface ResourceNames {
  /** Plural, as in URLs and RBAC. */
  readonly resource: string;
  readonly kind: string;
  readonly group: string;
  /** `v1` or `<group>/v1`: the apiVersion managedFields entries record. @default 'v1' */
  readonly apiVersion?: string;
  readonly patchTypes: readonly PatchType[];
  readonly strategy: StrategicSchema;
}

/**
 * Every built-in type takes JSON, merge and strategic merge patches and server-side apply (k8s.io/apiserver
 * pkg/endpoints/handlers/patch.go `PatchResource`; strategic merge is refused only for custom resources).
 */
export const BUILT_IN_PATCH_TYPES: readonly PatchType[] = [
  JSON_PATCH,
  MERGE_PATCH,
  STRATEGIC_MERGE_PATCH,
  APPLY_PATCH,
];

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
  const patched =
    type === APPLY_PATCH
      ? appliedObject(current, req, names)
      : applyPatch(current, req.body, type, names.strategy);
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

/**
 * Server-side apply to an object that does not exist creates it (201), as the API server does since 1.22:
 * returns the create request to hand to the type's own create path, or undefined when this PATCH is anything
 * else.
 */
export function createByApply(
  state: ServerState,
  req: ResourceRequest,
  names: ResourceNames,
): ResourceRequest | undefined {
  if (req.verb !== 'patch' || req.contentType.split(';')[0].trim().toLowerCase() !== APPLY_PATCH)
    return undefined;
  if (!names.patchTypes.includes(APPLY_PATCH)) return undefined;
  if (state.store.get(names.resource, req.namespace, req.name as string) !== undefined) return undefined;
  return {
    ...req,
    verb: 'create',
    body: appliedObject(undefined, req, names),
    contentType: 'application/json',
  };
}

/** The object after applying the request's configuration for its field manager (patch.ts serverSideApply). */
function appliedObject(
  current: KubeObject | undefined,
  req: ResourceRequest,
  names: ResourceNames,
): Record<string, unknown> {
  const manager = req.query.get('fieldManager');
  // k8s.io/apiserver pkg/endpoints/handlers/patch.go: an apply patch without a field manager is refused.
  if (manager === null || manager === '') throw badRequest('PATCH apply requires fieldManager');
  const configuration = parseApplyConfiguration(req.body);
  const meta = isRecord(configuration.metadata) ? configuration.metadata : {};
  if (meta.name !== undefined && meta.name !== req.name)
    throw badRequest(
      `the name of the object (${String(meta.name)}) does not match the name on the URL (${req.name})`,
    );
  configuration.metadata = { ...meta, name: req.name };
  return serverSideApply(current, configuration, {
    manager,
    apiVersion: names.apiVersion ?? 'v1',
    schema: names.strategy,
  });
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

/**
 * GET on a collection: a list, or a watch when `watch=true` (watch.ts). Lists page with `limit` and
 * `continue` as the API server does (k8s.io/apiserver pkg/storage/continue.go and the API concepts page,
 * "Retrieving large results sets in chunks"): the continue token holds the list's resourceVersion and the key
 * to start from (just after the last key returned), and every page is read at that resourceVersion, so a
 * change between pages neither skips nor repeats an item. A token whose resourceVersion is compacted is a 410
 * Expired that carries a fresh token resuming at the same key against the current state ("inconsistent
 * continue", resourceVersion -1 in the token).
 */
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
  const labels = parseLabelSelector(req.query.get('labelSelector'));
  const fields = parseFieldSelector(req.query.get('fieldSelector'), selectableFields);
  const matches = (o: KubeObject): boolean =>
    matchesLabels(labels, o.metadata.labels) && matchesFields(fields, fieldsOf(o));
  if (req.verb === 'watch' || req.query.get('watch') === 'true' || req.query.get('watch') === '1') {
    return watchCollection(state, req, {
      resource,
      kind: listKind.replace(/List$/, ''),
      apiVersion,
      namespace,
      matches,
    });
  }
  const limitText = req.query.get('limit');
  const limit = limitText === null ? 0 : Number(limitText);
  if (!Number.isInteger(limit) || limit < 0) throw badRequest(`invalid limit: ${JSON.stringify(limitText)}`);
  const token = decodeContinue(req.query.get('continue'));
  let revision = state.store.currentRevision();
  let items: KubeObject[];
  if (token === undefined || token.rv === INCONSISTENT_REVISION) {
    items = state.store.list(resource, namespace);
  } else {
    const snapshot = state.store.listAt(resource, namespace, token.rv);
    if (snapshot === undefined) return continueExpired(token.start);
    items = snapshot;
    revision = token.rv;
  }
  items = items.filter((o) => (token === undefined || listKey(o, namespace) >= token.start) && matches(o));
  let next: string | undefined;
  if (limit > 0 && items.length > limit) {
    items = items.slice(0, limit);
    next = encodeContinue(revision, `${listKey(items[limit - 1], namespace)}\u0000`);
  }
  const resourceVersion = String(revision);
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

/** A continue token: the list's resourceVersion and the first key of the next page, relative to the collection. */
interface ContinueToken {
  readonly rv: number;
  readonly start: string;
}

const CONTINUE_TOKEN_VERSION = 'meta.k8s.io/v1';
/** The resourceVersion of a token that continues against the current state, after its own had expired. */
const INCONSISTENT_REVISION = -1;

function encodeContinue(rv: number, start: string): string {
  return Buffer.from(JSON.stringify({ v: CONTINUE_TOKEN_VERSION, rv, start })).toString('base64url');
}

function decodeContinue(token: string | null): ContinueToken | undefined {
  if (token === null || token === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw badRequest('continue key is not valid: the token is not base64-encoded JSON');
  }
  if (!isRecord(parsed) || parsed.v !== CONTINUE_TOKEN_VERSION)
    throw badRequest(`continue key is not valid: server does not recognize this encoded key`);
  if (
    !Number.isInteger(parsed.rv) ||
    ((parsed.rv as number) < 1 && parsed.rv !== INCONSISTENT_REVISION) ||
    typeof parsed.start !== 'string' ||
    parsed.start === ''
  )
    throw badRequest('continue key is not valid: incorrect encoded start resourceVersion or key');
  return { rv: parsed.rv as number, start: parsed.start };
}

/** 410 Expired with the text of k8s.io/apiserver pkg/storage/etcd3/errors.go `inconsistentContinue`. */
function continueExpired(start: string): HandlerResult {
  const expired = new KubeStatusError(
    410,
    'Expired',
    'The provided continue parameter is too old to display a consistent list result. You can start a new list ' +
      'without the continue parameter, or use the continue token in this response to retrieve the remainder of ' +
      'the results. Continuing with the provided token results in an inconsistent list - objects that were ' +
      'created, modified, or deleted between the time the first chunk was returned and now may show up in the list.',
  );
  return {
    status: 410,
    body: { ...expired.body, metadata: { continue: encodeContinue(INCONSISTENT_REVISION, start) } },
  };
}

/** An object's key inside the listed collection (`name`, or `namespace/name` across namespaces): etcd's order. */
function listKey(o: KubeObject, namespace: string | undefined): string {
  return namespace === undefined && o.metadata.namespace !== undefined
    ? `${o.metadata.namespace}/${o.metadata.name}`
    : o.metadata.name;
}

export function metaFields(o: KubeObject): Record<string, string> {
  return { 'metadata.name': o.metadata.name, 'metadata.namespace': String(o.metadata.namespace ?? '') };
}
