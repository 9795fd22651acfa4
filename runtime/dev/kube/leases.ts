/**
 * Leases (coordination.k8s.io/v1) in the Kubernetes test server (dev-only), for leader election and sharding.
 * Fields and types follow the Kubernetes API reference for Lease v1 (kubernetes.io/docs/reference/kubernetes-api/
 * cluster-resources/lease-v1): LeaseSpec holds holderIdentity (string), leaseDurationSeconds and leaseTransitions
 * (int32), acquireTime and renewTime (MicroTime). The range checks are the API server's ValidateLeaseSpec
 * (K8S pkg/apis/coordination/validation): leaseDurationSeconds "must be greater than 0", leaseTransitions "must be
 * greater than or equal to 0". A value of the wrong JSON type never reaches validation: the decoder refuses it with
 * 400, as it does for the other kinds. The alpha coordinated-leader-election fields (strategy, preferredHolder)
 * are not served; they are unknown fields here.
 */
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
  checkFields,
  isRecord,
  labelsOf,
  objectBody,
  requireNamespace,
  resolveName,
  storedMetadata,
  subdomainNameErrors,
  validateLabelsAndAnnotations,
} from './metadata.js';
import { OBJECT_META_STRATEGY } from './patch.js';
import type { HandlerResult, ResourceRequest, ServerState } from './requests.js';
import { alreadyExists, badRequest, type FieldError, invalid, methodNotAllowed } from './status.js';
import type { KubeObject } from './store.js';

export const LEASE_GROUP = 'coordination.k8s.io';
const LEASE_API_VERSION = `${LEASE_GROUP}/v1`;
const LEASE_FIELDS = new Set(['kind', 'apiVersion', 'metadata', 'spec']);
const LEASE_SPEC_FIELDS = new Set([
  'holderIdentity',
  'leaseDurationSeconds',
  'acquireTime',
  'renewTime',
  'leaseTransitions',
]);
const INT32_MAX = 2 ** 31 - 1;
/**
 * MicroTime on the wire: RFC 3339 with exactly six fractional digits (Go's layout
 * "2006-01-02T15:04:05.000000Z07:00", which the decoder parses with and the encoder writes in UTC).
 */
const MICRO_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{6})(Z|[+-]\d{2}:\d{2})$/;

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

const LEASES: ResourceNames = {
  resource: 'leases',
  kind: 'Lease',
  group: LEASE_GROUP,
  apiVersion: LEASE_API_VERSION,
  patchTypes: BUILT_IN_PATCH_TYPES,
  strategy: OBJECT_META_STRATEGY,
};

export function handleLeases(state: ServerState, req: ResourceRequest): HandlerResult {
  const namespace = req.namespace;
  switch (req.verb) {
    case 'get':
      return { status: 200, body: mustGet(state, 'leases', namespace, req.name as string, LEASE_GROUP) };
    case 'list':
    case 'watch':
      return listResult(
        state,
        req,
        'leases',
        'LeaseList',
        namespace,
        ['metadata.name', 'metadata.namespace'],
        metaFields,
        LEASE_API_VERSION,
      );
    case 'create': {
      const body = objectBody(req.body, 'Lease', LEASE_API_VERSION);
      const warnings = checkFields(req, LEASE_FIELDS, req.body, unknownSpecFields(body));
      const ns = requireNamespace(state, req, body);
      const name = resolveName(body, 'Lease', LEASE_GROUP);
      const lease = normaliseLease(body, name, ns);
      if (state.store.get('leases', ns, name) !== undefined) throw alreadyExists('leases', name, LEASE_GROUP);
      return { status: 201, body: state.store.create('leases', lease), warnings };
    }
    case 'update': {
      const body = objectBody(req.body, 'Lease', LEASE_API_VERSION);
      const warnings = checkFields(req, LEASE_FIELDS, req.body, unknownSpecFields(body));
      const current = state.store.get('leases', namespace, req.name as string);
      if (current === undefined) return createOnUpdate(state, req, body, warnings);
      checkUpdatePreconditions(LEASES, current, body);
      const next = normaliseLease(body, current.metadata.name, current.metadata.namespace as string);
      return { status: 200, body: storeChange(state, 'leases', current, next), warnings };
    }
    case 'patch': {
      const create = createByApply(state, req, LEASES);
      if (create !== undefined) return handleLeases(state, create);
      const { current, patched } = patchedObject(state, req, LEASES);
      const warnings = checkFields(req, LEASE_FIELDS, patched, unknownSpecFields(patched));
      const next = normaliseLease(patched, current.metadata.name, current.metadata.namespace as string);
      return { status: 200, body: storeChange(state, 'leases', current, next), warnings };
    }
    case 'delete':
      return { status: 200, body: deleteObject(state, req, LEASES) };
    default:
      throw methodNotAllowed();
  }
}

/**
 * Leases allow create on update (K8S pkg/registry/coordination/lease/strategy.go `AllowCreateOnUpdate` is true; the
 * generic store's Update then creates): a PUT to a missing Lease creates it, whatever resourceVersion it carries.
 */
function createOnUpdate(
  state: ServerState,
  req: ResourceRequest,
  body: Record<string, unknown>,
  warnings: string[],
): HandlerResult {
  const name = req.name as string;
  const meta = (isRecord(body.metadata) ? body.metadata : {}) as Record<string, unknown>;
  if (meta.name !== undefined && meta.name !== name)
    throw badRequest('the name of the object does not match the name on the URL');
  const ns = requireNamespace(state, req, body);
  return { status: 201, body: state.store.create('leases', normaliseLease(body, name, ns)), warnings };
}

function unknownSpecFields(body: Record<string, unknown>): string[] {
  if (!isRecord(body.spec)) return [];
  return Object.keys(body.spec)
    .filter((k) => !LEASE_SPEC_FIELDS.has(k))
    .map((k) => `unknown field "spec.${k}"`);
}

/** The stored form of a Lease: decoding errors first (400), then every field problem in one 422. */
function normaliseLease(body: Record<string, unknown>, name: string, namespace: string): KubeObject {
  const spec = decodeSpec(body.spec);
  const causes: FieldError[] = subdomainNameErrors(name);
  const labels = labelsOf(body);
  const annotations = annotationsOf(body);
  validateLabelsAndAnnotations('Lease', name, labels, annotations, causes);
  if (spec.leaseDurationSeconds !== undefined && spec.leaseDurationSeconds <= 0)
    causes.push({
      field: 'spec.leaseDurationSeconds',
      value: spec.leaseDurationSeconds,
      why: 'must be greater than 0',
    });
  if (spec.leaseTransitions !== undefined && spec.leaseTransitions < 0)
    causes.push({
      field: 'spec.leaseTransitions',
      value: spec.leaseTransitions,
      why: 'must be greater than or equal to 0',
    });
  if (causes.length > 0) throw invalid('Lease', LEASE_GROUP, name, causes);
  return {
    kind: 'Lease',
    apiVersion: LEASE_API_VERSION,
    metadata: storedMetadata(body, name, namespace, labels, annotations),
    spec,
  };
}

/** Decodes LeaseSpec as the API server's JSON decoder would: null means absent, a wrong type is a 400. */
function decodeSpec(value: unknown): LeaseSpec {
  if (value === undefined || value === null) return {};
  if (!isRecord(value))
    throw decodeError(`cannot unmarshal ${jsonType(value)} into Go struct field Lease.spec`);
  const spec: LeaseSpec = {};
  const holder = value.holderIdentity;
  if (holder !== undefined && holder !== null) {
    if (typeof holder !== 'string') throw typeError('holderIdentity', holder, 'string');
    spec.holderIdentity = holder;
  }
  for (const field of ['leaseDurationSeconds', 'leaseTransitions'] as const) {
    const n = value[field];
    if (n === undefined || n === null) continue;
    if (typeof n !== 'number' || !Number.isInteger(n) || Math.abs(n) > INT32_MAX)
      throw typeError(field, n, 'int32');
    spec[field] = n;
  }
  for (const field of ['acquireTime', 'renewTime'] as const) {
    const t = value[field];
    if (t === undefined || t === null) continue;
    if (typeof t !== 'string') throw typeError(field, t, 'v1.MicroTime');
    spec[field] = microTimeInUtc(t);
  }
  return spec;
}

/** Parses a MicroTime and writes it back in UTC with six fractional digits, as the API server stores it. */
function microTimeInUtc(text: string): string {
  const m = MICRO_TIME.exec(text);
  const refuse = () =>
    decodeError(`parsing time ${JSON.stringify(text)} as "2006-01-02T15:04:05.000000Z07:00": cannot parse`);
  if (m === null) throw refuse();
  const [, y, mo, d, h, mi, s, micro, zone] = m;
  const local = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  const check = new Date(local);
  // Date.UTC rolls 2026-02-30 over into March; the real decoder refuses a day or hour out of range.
  if (
    check.getUTCFullYear() !== Number(y) ||
    check.getUTCMonth() !== Number(mo) - 1 ||
    check.getUTCDate() !== Number(d) ||
    check.getUTCHours() !== Number(h) ||
    check.getUTCMinutes() !== Number(mi) ||
    check.getUTCSeconds() !== Number(s)
  )
    throw refuse();
  let offsetMinutes = 0;
  if (zone !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    offsetMinutes = sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
  }
  const utc = new Date(local - offsetMinutes * 60_000).toISOString().slice(0, 19);
  return `${utc}.${micro}Z`;
}

function typeError(field: string, value: unknown, goType: string): Error {
  return decodeError(
    `json: cannot unmarshal ${jsonType(value)} into Go struct field LeaseSpec.spec.${field} of type ${goType}`,
  );
}

function decodeError(detail: string): Error {
  return badRequest(`Lease in version "v1" cannot be handled as a Lease: ${detail}`);
}

function jsonType(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return 'number';
  if (typeof value === 'boolean') return 'bool';
  return typeof value;
}
