/**
 * MutatingWebhookConfigurations in the Kubernetes test server (dev-only). The webhooks' own validation and
 * defaulting live in webhook-configurations.ts; this file is the CRUD around them.
 */
import {
  BUILT_IN_PATCH_TYPES,
  checkUpdatePreconditions,
  createByApply,
  deleteObject,
  listResult,
  mustGet,
  patchedObject,
  type ResourceNames,
  storeChange,
} from './crud.js';
import {
  annotationsOf,
  checkFields,
  labelsOf,
  objectBody,
  resolveName,
  storedMetadata,
  subdomainNameErrors,
  validateLabelsAndAnnotations,
} from './metadata.js';
import { jsonEqual } from './patch.js';
import type { HandlerResult, ResourceRequest, ServerState } from './requests.js';
import { alreadyExists, type FieldError, invalid, methodNotAllowed } from './status.js';
import type { KubeObject } from './store.js';
import {
  MUTATING_WEBHOOK_CONFIGURATION_KIND,
  normaliseMutatingWebhooks,
  WEBHOOK_CONFIGURATION_API_VERSION,
  WEBHOOK_CONFIGURATION_FIELDS,
  WEBHOOK_CONFIGURATION_GROUP,
  WEBHOOK_CONFIGURATION_STRATEGY,
} from './webhook-configurations.js';

const MUTATING_WEBHOOK_CONFIGURATIONS: ResourceNames = {
  resource: 'mutatingwebhookconfigurations',
  kind: MUTATING_WEBHOOK_CONFIGURATION_KIND,
  group: WEBHOOK_CONFIGURATION_GROUP,
  apiVersion: WEBHOOK_CONFIGURATION_API_VERSION,
  patchTypes: BUILT_IN_PATCH_TYPES,
  strategy: WEBHOOK_CONFIGURATION_STRATEGY,
};

export function handleMutatingWebhookConfigurations(state: ServerState, req: ResourceRequest): HandlerResult {
  const { resource, group } = MUTATING_WEBHOOK_CONFIGURATIONS;
  switch (req.verb) {
    case 'get':
      return { status: 200, body: mustGet(state, resource, undefined, req.name as string, group) };
    case 'list':
    case 'watch':
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
      const create = createByApply(state, req, MUTATING_WEBHOOK_CONFIGURATIONS);
      if (create !== undefined) return handleMutatingWebhookConfigurations(state, create);
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
  const warnings = checkFields(req, WEBHOOK_CONFIGURATION_FIELDS, checkedForUnknownFields, unknownFields);
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
