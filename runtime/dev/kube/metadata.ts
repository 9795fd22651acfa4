/**
 * Request-body and object-metadata validation of the Kubernetes test server (dev-only): names, labels and
 * annotations, unknown fields, and the metadata a write keeps.
 */
import { randomBytes } from 'node:crypto';
import type { ResourceRequest, ServerState } from './requests.js';
import { badRequest, type FieldError, invalid, notFound } from './status.js';
import type { KubeObject } from './store.js';

const MAX_ANNOTATIONS_BYTES = 256 * 1024;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** A key of a Secret's or ConfigMap's data. */
export const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/;
export const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** The fields of ObjectMeta; anything else under `metadata` is an unknown field. */
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

export function objectBody(body: unknown, kind: string, apiVersion = 'v1'): Record<string, unknown> {
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

export function resolveName(body: Record<string, unknown>, kind: string, group = ''): string {
  const meta = (isRecord(body.metadata) ? body.metadata : {}) as Record<string, unknown>;
  if (typeof meta.name === 'string' && meta.name !== '') return meta.name;
  if (typeof meta.generateName === 'string' && meta.generateName !== '') {
    return `${meta.generateName}${randomBytes(4).toString('hex').slice(0, 5)}`;
  }
  throw invalid(kind, group, '', [
    { field: 'metadata.name', value: '', why: 'name or generateName is required' },
  ]);
}

export function checkSubdomainName(kind: string, name: string): void {
  const errors = subdomainNameErrors(name);
  if (errors.length > 0) throw invalid(kind, '', name, errors);
}

export function subdomainNameErrors(name: string): FieldError[] {
  if (name.length <= 253 && DNS1123_SUBDOMAIN.test(name)) return [];
  return [
    {
      field: 'metadata.name',
      value: name,
      why: "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
    },
  ];
}

export function requireNamespace(
  state: ServerState,
  req: ResourceRequest,
  body: Record<string, unknown>,
): string {
  const namespace = req.namespace as string;
  const meta = (isRecord(body.metadata) ? body.metadata : {}) as Record<string, unknown>;
  if (meta.namespace !== undefined && meta.namespace !== '' && meta.namespace !== namespace) {
    throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
  }
  if (state.store.get('namespaces', undefined, namespace) === undefined)
    throw notFound('namespaces', namespace);
  return namespace;
}

export function labelsOf(body: Record<string, unknown>): Record<string, string> {
  return stringMap((body.metadata as Record<string, unknown> | undefined)?.labels);
}

export function annotationsOf(body: Record<string, unknown>): Record<string, string> {
  return stringMap((body.metadata as Record<string, unknown> | undefined)?.annotations);
}

/** The metadata a write keeps from the request; the store adds uid, resourceVersion and creationTimestamp. */
export function storedMetadata(
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
  // Written by server-side apply (patch.ts) and carried through updates, as the API server keeps them.
  if (Array.isArray(meta.managedFields) && meta.managedFields.length > 0)
    metadata.managedFields = meta.managedFields;
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

export function validateLabelsAndAnnotations(
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
export function checkFields(
  req: ResourceRequest,
  allowed: ReadonlySet<string>,
  object: unknown = req.body,
  nested: readonly string[] = [],
): string[] {
  const mode = req.query.get('fieldValidation') ?? 'Warn';
  if (mode === 'Ignore' || !isRecord(object)) return [];
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
