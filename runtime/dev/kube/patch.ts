/**
 * The PATCH body formats the API server applies to built-in types (dev-only test server code): JSON merge
 * patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch and server-side apply. Pure functions on JSON
 * values; failures are thrown as the Status errors the API server sends for them. Upstream: k8s.io/apiserver
 * pkg/endpoints/handlers/patch.go (`PatchResource`: the content type picks the format, an unknown one is 415;
 * `jsonPatcher` and `smpPatcher`), github.com/evanphx/json-patch (RFC 6902 and 7386 as the API server applies
 * them), k8s.io/apimachinery pkg/util/strategicpatch (`patchMergeKey`, `$patch`, set-like primitive lists).
 */
import { parse as parseYaml } from 'yaml';
import { badRequest, KubeStatusError, requestEntityTooLarge, unsupportedMediaType } from './status.js';

export const MERGE_PATCH = 'application/merge-patch+json';
export const JSON_PATCH = 'application/json-patch+json';
export const STRATEGIC_MERGE_PATCH = 'application/strategic-merge-patch+json';
/** Server-side apply, GA since Kubernetes 1.22 (what `kubectl apply --server-side` sends). */
export const APPLY_PATCH = 'application/apply-patch+yaml';
export type PatchType =
  | typeof MERGE_PATCH
  | typeof JSON_PATCH
  | typeof STRATEGIC_MERGE_PATCH
  | typeof APPLY_PATCH;

/**
 * What strategic merge patch needs to know about a type: which lists merge by a key and which primitive
 * lists merge as sets. Paths are dotted field names without list indices (`webhooks.matchConditions`).
 * Every other list is replaced wholesale, as with a merge patch.
 */
export interface StrategicSchema {
  readonly mergeKeys: Readonly<Record<string, string>>;
  readonly mergedPrimitiveLists?: readonly string[];
}

/** ObjectMeta's own patch strategies, which every type shares. */
export const OBJECT_META_STRATEGY: StrategicSchema = {
  mergeKeys: { 'metadata.ownerReferences': 'uid' },
  mergedPrimitiveLists: ['metadata.finalizers'],
};

/** The API server refuses JSON patches with more operations than this. */
const MAX_JSON_PATCH_OPERATIONS = 10_000;

/** The patch type named by a Content-Type header, or 415 when the resource does not take it. */
export function patchTypeOf(contentType: string, accepted: readonly PatchType[]): PatchType {
  const type = contentType.split(';')[0].trim().toLowerCase();
  if (!(accepted as readonly string[]).includes(type)) throw unsupportedMediaType(type, accepted);
  return type as PatchType;
}

/** Applies a patch body of the given type (not an apply patch: see serverSideApply) to a copy of `document`. */
export function applyPatch(
  document: Record<string, unknown>,
  patch: unknown,
  type: PatchType,
  schema: StrategicSchema = OBJECT_META_STRATEGY,
): Record<string, unknown> {
  let patched: unknown;
  if (type === APPLY_PATCH) throw new TypeError('apply patches go through serverSideApply');
  if (type === JSON_PATCH) {
    patched = applyJsonPatch(document, patch);
  } else {
    if (!isObject(patch)) throw badRequest('the patch must be a JSON object');
    patched =
      type === MERGE_PATCH
        ? mergePatch(structuredClone(document), patch)
        : strategicMergePatch(structuredClone(document), patch, schema);
  }
  if (!isObject(patched)) throw badRequest('the patched object must be a JSON object');
  return patched;
}

// ---- JSON merge patch (RFC 7386) ---------------------------------------------------------------------------

/** RFC 7386: objects merge key by key, `null` deletes, anything else (arrays too) replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else setMember(out, key, mergePatch(member(out, key), value));
  }
  return out;
}

// ---- JSON patch (RFC 6902) ---------------------------------------------------------------------------------

/**
 * RFC 6902 with the semantics of the library the API server uses: a body that is not a list of operation
 * objects is a 400; any operation that cannot be applied (a failed `test`, a missing path) fails the whole
 * patch with the API server's generic 422, whose message does not say which operation failed.
 */
export function applyJsonPatch(document: unknown, operations: unknown): unknown {
  if (!Array.isArray(operations) || !operations.every(isObject)) {
    throw badRequest(
      'error decoding patch: a JSON patch must be a list of operation objects ({"op":…,"path":…})',
    );
  }
  if (operations.length > MAX_JSON_PATCH_OPERATIONS) {
    throw requestEntityTooLarge(
      `The allowed maximum operations in a JSON patch is ${MAX_JSON_PATCH_OPERATIONS}, got ${operations.length}`,
    );
  }
  let current = structuredClone(document);
  for (const operation of operations) {
    try {
      current = applyOperation(current, operation);
    } catch (err) {
      if (!(err instanceof JsonPatchFailure)) throw err;
      throw jsonPatchRejected();
    }
  }
  return current;
}

/** What the API server answers when a JSON patch does not apply (NewGenericServerResponse with 422). */
function jsonPatchRejected(): KubeStatusError {
  return new KubeStatusError(
    422,
    'Invalid',
    'the server rejected our request due to an error in our request',
    {},
  );
}

class JsonPatchFailure extends Error {}

function applyOperation(document: unknown, operation: Record<string, unknown>): unknown {
  const path = pointer(operation.path, 'path');
  switch (operation.op) {
    case 'add':
      return add(document, path, operationValue(operation));
    case 'remove':
      return remove(document, path);
    case 'replace':
      return replace(document, path, operationValue(operation));
    case 'move': {
      const from = pointer(operation.from, 'from');
      if (path.length > from.length && from.every((segment, i) => segment === path[i]))
        throw new JsonPatchFailure('a value cannot be moved into one of its children');
      const value = get(document, from);
      return add(remove(document, from), path, value);
    }
    case 'copy':
      return add(document, path, structuredClone(get(document, pointer(operation.from, 'from'))));
    case 'test': {
      const expected = operation.value ?? null;
      const found = tryGet(document, path);
      // A missing member passes a test against null, as in the API server's JSON-patch library.
      if (!found.present) {
        if (expected === null) return document;
        throw new JsonPatchFailure('test failed');
      }
      if (!jsonEqual(found.value, expected)) throw new JsonPatchFailure('test failed');
      return document;
    }
    default:
      throw new JsonPatchFailure(`unsupported operation ${JSON.stringify(operation.op)}`);
  }
}

function operationValue(operation: Record<string, unknown>): unknown {
  if (!Object.hasOwn(operation, 'value')) throw new JsonPatchFailure('operation has no value');
  return structuredClone(operation.value);
}

/** RFC 6901 pointer to segments; `~1` is `/` and `~0` is `~`. */
function pointer(value: unknown, member: string): string[] {
  if (typeof value !== 'string') throw new JsonPatchFailure(`operation has no ${member}`);
  if (value === '') return [];
  if (!value.startsWith('/')) throw new JsonPatchFailure(`${member} must start with /`);
  return value
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function arrayIndex(array: unknown[], segment: string, allowEnd: boolean): number {
  if (allowEnd && segment === '-') return array.length;
  if (!/^(0|[1-9][0-9]*)$/.test(segment)) throw new JsonPatchFailure(`invalid array index ${segment}`);
  const index = Number(segment);
  if (index > array.length || (!allowEnd && index === array.length))
    throw new JsonPatchFailure(`array index ${index} out of bounds`);
  return index;
}

function tryGet(document: unknown, path: readonly string[]): { present: boolean; value?: unknown } {
  let node = document;
  for (const segment of path) {
    if (Array.isArray(node)) {
      if (!/^(0|[1-9][0-9]*)$/.test(segment) || Number(segment) >= node.length) return { present: false };
      node = node[Number(segment)];
    } else if (isObject(node) && Object.hasOwn(node, segment)) {
      node = node[segment];
    } else {
      return { present: false };
    }
  }
  return { present: true, value: node };
}

function get(document: unknown, path: readonly string[]): unknown {
  const found = tryGet(document, path);
  if (!found.present) throw new JsonPatchFailure(`path /${path.join('/')} does not exist`);
  return found.value;
}

/** The container that holds the last segment of `path`, which must exist. */
function parentOf(document: unknown, path: readonly string[]): unknown {
  const parent = get(document, path.slice(0, -1));
  if (!Array.isArray(parent) && !isObject(parent))
    throw new JsonPatchFailure(`path /${path.join('/')} does not name a member of an object or array`);
  return parent;
}

function add(document: unknown, path: readonly string[], value: unknown): unknown {
  if (path.length === 0) return value;
  const parent = parentOf(document, path);
  const last = path[path.length - 1];
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, true), 0, value);
  else setMember(parent as Record<string, unknown>, last, value);
  return document;
}

function replace(document: unknown, path: readonly string[], value: unknown): unknown {
  get(document, path);
  if (path.length === 0) return value;
  const parent = parentOf(document, path) as Record<string, unknown> | unknown[];
  const last = path[path.length - 1];
  if (Array.isArray(parent)) parent[arrayIndex(parent, last, false)] = value;
  else setMember(parent, last, value);
  return document;
}

function remove(document: unknown, path: readonly string[]): unknown {
  if (path.length === 0) throw new JsonPatchFailure('the whole document cannot be removed');
  const parent = parentOf(document, path);
  const last = path[path.length - 1];
  if (Array.isArray(parent)) {
    parent.splice(arrayIndex(parent, last, false), 1);
  } else {
    if (!Object.hasOwn(parent as object, last))
      throw new JsonPatchFailure(`path /${path.join('/')} does not exist`);
    delete (parent as Record<string, unknown>)[last];
  }
  return document;
}

/** Structural JSON equality: member order does not matter, list order does. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return (
      Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => jsonEqual(v, b[i]))
    );
  }
  if (!isObject(a) || !isObject(b)) return false;
  const keys = Object.keys(a);
  return (
    keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]))
  );
}

// ---- server-side apply -------------------------------------------------------------------------------------

/** One `metadata.managedFields` entry (k8s.io/apimachinery pkg/apis/meta/v1 `ManagedFieldsEntry`). */
export interface ManagedFieldsEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time: string;
  fieldsType: 'FieldsV1';
  fieldsV1: FieldSet;
}

/** A FieldsV1 set: `f:<field>`, `k:<merge key JSON>` and `v:<value JSON>` members, `{}` for a leaf. */
export type FieldSet = { [member: string]: FieldSet };

/** Fields the field manager never records (k8s.io/apiserver pkg/endpoints/handlers/fieldmanager, stripped fields). */
const UNOWNED_TOP_LEVEL = new Set(['apiVersion', 'kind', 'status']);
const UNOWNED_METADATA = new Set([
  'name',
  'namespace',
  'uid',
  'resourceVersion',
  'creationTimestamp',
  'generation',
  'selfLink',
  'deletionTimestamp',
  'managedFields',
]);

/** An apply patch body: YAML holding one object (JSON, which kubectl sends, is YAML too). */
export function parseApplyConfiguration(body: unknown): Record<string, unknown> {
  let parsed: unknown = body;
  if (typeof body === 'string') {
    try {
      parsed = parseYaml(body);
    } catch (err) {
      throw badRequest(`error decoding YAML: ${(err as Error).message}`);
    }
  }
  if (!isObject(parsed)) throw badRequest('the apply patch must be a YAML or JSON object');
  return parsed;
}

/**
 * Server-side apply (Kubernetes docs, "Server-Side Apply"), simplified: the applied configuration merges into
 * the object as a strategic merge patch would (maps by key, lists with a merge key by that key, other lists
 * replaced), fields this manager applied last time and leaves out now are removed, and the manager's `Apply`
 * entry in `metadata.managedFields` records the fields it now owns. Not modelled: ownership by other managers
 * (this server records no `Update` entries), so there are no apply conflicts and `force` changes nothing.
 * An unchanged field set keeps its entry's time, so a repeated apply is a no-op write.
 */
export function serverSideApply(
  current: Record<string, unknown> | undefined,
  configuration: Record<string, unknown>,
  options: { manager: string; apiVersion: string; schema: StrategicSchema; now?: Date },
): Record<string, unknown> {
  const applied = structuredClone(configuration);
  if (isObject(applied.metadata)) delete applied.metadata.managedFields;
  const fields = fieldSetOf(applied, options.schema, '', true);
  const base = structuredClone(current ?? {});
  const entries = managedFieldsOf(base);
  const previous = entries.find((e) => e.manager === options.manager && e.operation === 'Apply');
  if (previous !== undefined) removeUnapplied(base, previous.fieldsV1, fields);
  const merged = strategicMergePatch(base, applied, options.schema);
  const entry: ManagedFieldsEntry =
    previous !== undefined && jsonEqual(previous.fieldsV1, fields)
      ? previous
      : {
          manager: options.manager,
          operation: 'Apply',
          apiVersion: options.apiVersion,
          time: (options.now ?? new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z'),
          fieldsType: 'FieldsV1',
          fieldsV1: fields,
        };
  const managedFields =
    previous === undefined ? [...entries, entry] : entries.map((e) => (e === previous ? entry : e));
  const metadata = isObject(merged.metadata) ? merged.metadata : {};
  setMember(merged, 'metadata', { ...metadata, managedFields });
  return merged;
}

function managedFieldsOf(object: Record<string, unknown>): ManagedFieldsEntry[] {
  const metadata = isObject(object.metadata) ? object.metadata : {};
  const entries = Array.isArray(metadata.managedFields) ? metadata.managedFields : [];
  return entries.filter(
    (e): e is ManagedFieldsEntry => isObject(e) && typeof e.manager === 'string' && isObject(e.fieldsV1),
  );
}

/** The FieldsV1 set of an applied configuration. */
function fieldSetOf(
  value: Record<string, unknown>,
  schema: StrategicSchema,
  path: string,
  topLevel = false,
): FieldSet {
  const out: FieldSet = {};
  for (const [key, child] of Object.entries(value)) {
    if (topLevel && UNOWNED_TOP_LEVEL.has(key)) continue;
    if (path === 'metadata' && UNOWNED_METADATA.has(key)) continue;
    const fieldPath = childPath(path, key);
    const mergeKey = schema.mergeKeys[fieldPath];
    let members: FieldSet = {};
    if (isObject(child)) {
      members = fieldSetOf(child, schema, fieldPath);
      if (path === '' && key === 'metadata' && Object.keys(members).length === 0) continue;
    } else if (Array.isArray(child) && mergeKey !== undefined) {
      for (const element of child)
        if (isObject(element) && element[mergeKey] !== undefined)
          members[`k:${JSON.stringify({ [mergeKey]: element[mergeKey] })}`] = {
            '.': {},
            ...fieldSetOf(element, schema, fieldPath),
          };
    } else if (Array.isArray(child) && schema.mergedPrimitiveLists?.includes(fieldPath)) {
      for (const element of child) members[`v:${JSON.stringify(element)}`] = {};
    }
    setMember(out, `f:${key}`, members);
  }
  return out;
}

/** Removes from `target` what `before` holds and `after` does not: fields an applier stopped applying. */
function removeUnapplied(target: unknown, before: FieldSet, after: FieldSet | undefined): void {
  for (const [name, inner] of Object.entries(before)) {
    if (name === '.') continue;
    const kept = after !== undefined && Object.hasOwn(after, name) ? after[name] : undefined;
    const kind = name.slice(0, 2);
    const text = name.slice(2);
    if (kind === 'f:' && isObject(target)) {
      if (kept === undefined) delete target[text];
      else if (Object.keys(inner).length > 0) removeUnapplied(member(target, text), inner, kept);
    } else if ((kind === 'k:' || kind === 'v:') && Array.isArray(target)) {
      let wanted: unknown;
      try {
        wanted = JSON.parse(text);
      } catch {
        continue;
      }
      const index = target.findIndex((e) =>
        kind === 'v:'
          ? jsonEqual(e, wanted)
          : isObject(e) && isObject(wanted) && Object.entries(wanted).every(([k, v]) => jsonEqual(e[k], v)),
      );
      if (index < 0) continue;
      if (kept === undefined) target.splice(index, 1);
      else removeUnapplied(target[index], inner, kept);
    }
  }
}

// ---- strategic merge patch ---------------------------------------------------------------------------------

const DIRECTIVE = '$patch';
const RETAIN_KEYS = '$retainKeys';
const SET_ELEMENT_ORDER = '$setElementOrder/';
const DELETE_FROM_PRIMITIVE_LIST = '$deleteFromPrimitiveList/';

/**
 * Strategic merge patch as kubectl apply, edit and patch --type strategic send it: maps merge, `null`
 * deletes, lists named in the schema merge by their key (elements with `$patch: delete` are removed, an
 * element `{"$patch":"replace"}` makes the list replace), merged primitive lists become set unions, other
 * lists are replaced. Understood directives: `$patch` (replace/delete/merge), `$retainKeys`,
 * `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>`.
 */
export function strategicMergePatch(
  original: Record<string, unknown>,
  patch: Record<string, unknown>,
  schema: StrategicSchema,
): Record<string, unknown> {
  return mergeMap(original, patch, schema, '');
}

function childPath(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function mergeMap(
  original: Record<string, unknown>,
  patch: Record<string, unknown>,
  schema: StrategicSchema,
  path: string,
): Record<string, unknown> {
  const directive = patch[DIRECTIVE];
  if (directive === 'replace') return withoutDirectives(patch);
  if (directive === 'delete') return {};
  if (directive !== undefined && directive !== 'merge')
    throw badRequest(`Unknown patch type: ${String(directive)} in map: ${JSON.stringify(patch)}`);

  const out: Record<string, unknown> = { ...original };
  if (patch[RETAIN_KEYS] !== undefined) {
    if (!Array.isArray(patch[RETAIN_KEYS])) throw badRequest(`${RETAIN_KEYS} must be a list of keys`);
    const retained = new Set(patch[RETAIN_KEYS] as unknown[]);
    for (const key of Object.keys(out)) if (!retained.has(key)) delete out[key];
  }
  for (const [key, value] of Object.entries(patch)) {
    if (!key.startsWith(DELETE_FROM_PRIMITIVE_LIST)) continue;
    const field = key.slice(DELETE_FROM_PRIMITIVE_LIST.length);
    if (!Array.isArray(value)) throw badRequest(`${key} must be a list`);
    const list = member(out, field);
    if (Array.isArray(list))
      setMember(
        out,
        field,
        list.filter((v) => !value.some((d) => jsonEqual(d, v))),
      );
  }
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$')) continue;
    const fieldPath = childPath(path, key);
    if (value === null) {
      delete out[key];
    } else if (isObject(value)) {
      const existing = member(out, key);
      setMember(out, key, mergeMap(isObject(existing) ? existing : {}, value, schema, fieldPath));
      if (value[DIRECTIVE] === 'delete') delete out[key];
    } else if (Array.isArray(value)) {
      const existing = member(out, key);
      setMember(out, key, mergeList(Array.isArray(existing) ? existing : [], value, schema, fieldPath));
    } else {
      setMember(out, key, value);
    }
  }
  for (const [key, order] of Object.entries(patch)) {
    if (!key.startsWith(SET_ELEMENT_ORDER)) continue;
    const field = key.slice(SET_ELEMENT_ORDER.length);
    if (!Array.isArray(order)) throw badRequest(`${key} must be a list`);
    const list = member(out, field);
    if (Array.isArray(list))
      setMember(out, field, orderElements(list, order, schema.mergeKeys[childPath(path, field)]));
  }
  return out;
}

function mergeList(original: unknown[], patch: unknown[], schema: StrategicSchema, path: string): unknown[] {
  const mergeKey = schema.mergeKeys[path];
  if (mergeKey !== undefined) return mergeListByKey(original, patch, mergeKey, schema, path);
  if (schema.mergedPrimitiveLists?.includes(path)) {
    const out = [...original];
    for (const value of patch) if (!out.some((v) => jsonEqual(v, value))) out.push(value);
    return out;
  }
  return patch.map((v) => (isObject(v) ? withoutDirectives(v) : v));
}

function mergeListByKey(
  original: unknown[],
  patch: unknown[],
  mergeKey: string,
  schema: StrategicSchema,
  path: string,
): unknown[] {
  if (patch.some((e) => isObject(e) && e[DIRECTIVE] === 'replace')) {
    return patch
      .filter((e) => !(isObject(e) && e[DIRECTIVE] === 'replace'))
      .map((e) => (isObject(e) ? withoutDirectives(e) : e));
  }
  const out = original.map((e) => (isObject(e) ? { ...e } : e));
  for (const element of patch) {
    if (!isObject(element) || !Object.hasOwn(element, mergeKey)) {
      throw badRequest(`map: ${JSON.stringify(element)} does not contain declared merge key: ${mergeKey}`);
    }
    const index = out.findIndex((e) => isObject(e) && jsonEqual(e[mergeKey], element[mergeKey]));
    if (element[DIRECTIVE] === 'delete') {
      if (index >= 0) out.splice(index, 1);
    } else if (index >= 0) {
      out[index] = mergeMap(out[index] as Record<string, unknown>, element, schema, path);
    } else {
      out.push(mergeMap({}, element, schema, path));
    }
  }
  return out;
}

/** `$setElementOrder`: listed elements take the listed order; elements the patch did not list follow. */
function orderElements(list: unknown[], order: unknown[], mergeKey: string | undefined): unknown[] {
  const keyOf = (e: unknown): unknown => (mergeKey !== undefined && isObject(e) ? e[mergeKey] : e);
  const position = (e: unknown): number => order.findIndex((o) => jsonEqual(keyOf(o), keyOf(e)));
  const listed = list.filter((e) => position(e) >= 0).sort((a, b) => position(a) - position(b));
  return [...listed, ...list.filter((e) => position(e) < 0)];
}

function withoutDirectives(value: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).filter(([k]) => !k.startsWith('$')));
}

/** An own member only: a `__proto__` key from a request must not read the prototype. */
function member(object: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(object, key) ? object[key] : undefined;
}

/** Sets an own member even for the key `__proto__`, which plain assignment would make a prototype change. */
function setMember(object: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
