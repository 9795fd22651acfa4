/**
 * What the Kubernetes test server accepts as the `webhooks` of an admissionregistration.k8s.io/v1
 * MutatingWebhookConfiguration (dev-only): decoding (type errors are a 400, as when the API server cannot
 * decode a body), the defaults the API server fills in, and the validation that matters to cloudtaser, with
 * the field paths and texts of the API server's own validation.
 */
import { OBJECT_META_STRATEGY, type StrategicSchema } from './patch.js';
import { badRequest, type FieldError, type KubeStatusError } from './status.js';

export const WEBHOOK_CONFIGURATION_GROUP = 'admissionregistration.k8s.io';
export const WEBHOOK_CONFIGURATION_API_VERSION = `${WEBHOOK_CONFIGURATION_GROUP}/v1`;
export const MUTATING_WEBHOOK_CONFIGURATION_KIND = 'MutatingWebhookConfiguration';

/** Top-level fields of the type, for `fieldValidation`. */
export const WEBHOOK_CONFIGURATION_FIELDS = new Set(['kind', 'apiVersion', 'metadata', 'webhooks']);

/** `webhooks` and each webhook's `matchConditions` merge by `name` under strategic merge patch. */
export const WEBHOOK_CONFIGURATION_STRATEGY: StrategicSchema = {
  mergeKeys: { ...OBJECT_META_STRATEGY.mergeKeys, webhooks: 'name', 'webhooks.matchConditions': 'name' },
  mergedPrimitiveLists: OBJECT_META_STRATEGY.mergedPrimitiveLists,
};

const WEBHOOK_FIELDS = [
  'name',
  'clientConfig',
  'rules',
  'failurePolicy',
  'matchPolicy',
  'namespaceSelector',
  'objectSelector',
  'sideEffects',
  'timeoutSeconds',
  'admissionReviewVersions',
  'reinvocationPolicy',
  'matchConditions',
];
const CLIENT_CONFIG_FIELDS = ['url', 'service', 'caBundle'];
const SERVICE_FIELDS = ['namespace', 'name', 'path', 'port'];
const RULE_FIELDS = ['operations', 'apiGroups', 'apiVersions', 'resources', 'scope'];
const SELECTOR_FIELDS = ['matchLabels', 'matchExpressions'];
const MATCH_CONDITION_FIELDS = ['name', 'expression'];

// Supported values are listed sorted, as the API server's messages list them.
const FAILURE_POLICIES = ['Fail', 'Ignore'];
const MATCH_POLICIES = ['Equivalent', 'Exact'];
const REINVOCATION_POLICIES = ['IfNeeded', 'Never'];
const NO_SIDE_EFFECT_CLASSES = ['None', 'NoneOnDryRun'];
const OPERATIONS = ['*', 'CONNECT', 'CREATE', 'DELETE', 'UPDATE'];
const SCOPES = ['*', 'Cluster', 'Namespaced'];
const ADMISSION_REVIEW_VERSIONS = ['v1', 'v1beta1'];

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
// Go's base64 decoder skips CR and LF, so a bundle wrapped over lines still decodes.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export interface WebhooksOutcome {
  /** The decoded webhooks with defaults applied, in the API server's field order; undefined when absent. */
  readonly webhooks: Record<string, unknown>[] | undefined;
  /** Validation problems, for one 422 together with any metadata problems. */
  readonly errors: FieldError[];
  /** `unknown field "webhooks[0].x"` texts, for `fieldValidation`. */
  readonly unknownFields: string[];
}

/** Decodes, defaults and validates `webhooks`; a value of the wrong JSON type throws a 400. */
export function normaliseMutatingWebhooks(value: unknown): WebhooksOutcome {
  const errors: FieldError[] = [];
  const unknownFields: string[] = [];
  if (value === undefined || value === null) return { webhooks: undefined, errors, unknownFields };
  const list = decodeList(value, 'webhooks', '[]v1.MutatingWebhook');
  const names = new Set<string>();
  const webhooks = list.map((item, i) => {
    const path = `webhooks[${i}]`;
    const hook = decodeObject(item, path, 'v1.MutatingWebhook');
    unknownFields.push(...unknownIn(hook, WEBHOOK_FIELDS, path));
    const normalised = normaliseWebhook(hook, path, errors, unknownFields);
    const name = normalised.name as string;
    if (name !== '') {
      if (names.has(name)) errors.push({ type: 'Duplicate', field: `${path}.name`, value: name });
      names.add(name);
    }
    return normalised;
  });
  return { webhooks, errors, unknownFields };
}

function normaliseWebhook(
  hook: Record<string, unknown>,
  path: string,
  errors: FieldError[],
  unknownFields: string[],
): Record<string, unknown> {
  const name = decodeString(hook.name, `${path}.name`) ?? '';
  errors.push(...fullyQualifiedNameErrors(name, `${path}.name`));

  const clientConfig = normaliseClientConfig(
    hook.clientConfig,
    `${path}.clientConfig`,
    errors,
    unknownFields,
  );

  const rules = optionalList(hook.rules, `${path}.rules`, '[]v1.RuleWithOperations')?.map((item, i) =>
    normaliseRule(item, `${path}.rules[${i}]`, errors, unknownFields),
  );

  const failurePolicy = decodeString(hook.failurePolicy, `${path}.failurePolicy`) ?? 'Fail';
  if (!FAILURE_POLICIES.includes(failurePolicy))
    errors.push(notSupported(`${path}.failurePolicy`, failurePolicy, FAILURE_POLICIES));
  const matchPolicy = decodeString(hook.matchPolicy, `${path}.matchPolicy`) ?? 'Equivalent';
  if (!MATCH_POLICIES.includes(matchPolicy))
    errors.push(notSupported(`${path}.matchPolicy`, matchPolicy, MATCH_POLICIES));

  const namespaceSelector = normaliseSelector(
    hook.namespaceSelector,
    `${path}.namespaceSelector`,
    unknownFields,
  );
  const objectSelector = normaliseSelector(hook.objectSelector, `${path}.objectSelector`, unknownFields);

  const sideEffects = decodeString(hook.sideEffects, `${path}.sideEffects`);
  if (sideEffects === undefined) {
    errors.push({
      type: 'Required',
      field: `${path}.sideEffects`,
      why: `must specify one of ${NO_SIDE_EFFECT_CLASSES.join(', ')}`,
    });
  } else if (!NO_SIDE_EFFECT_CLASSES.includes(sideEffects)) {
    errors.push(notSupported(`${path}.sideEffects`, sideEffects, NO_SIDE_EFFECT_CLASSES));
  }

  const timeoutSeconds = decodeInteger(hook.timeoutSeconds, `${path}.timeoutSeconds`) ?? 10;
  if (timeoutSeconds < 1 || timeoutSeconds > 30) {
    errors.push({
      field: `${path}.timeoutSeconds`,
      value: timeoutSeconds,
      why: 'the timeout value must be between 1 and 30 seconds',
    });
  }

  const admissionReviewVersions =
    optionalList(hook.admissionReviewVersions, `${path}.admissionReviewVersions`, '[]string')?.map((v, i) =>
      decodeString(v, `${path}.admissionReviewVersions[${i}]`, true),
    ) ?? [];
  errors.push(
    ...admissionReviewVersionErrors(admissionReviewVersions as string[], `${path}.admissionReviewVersions`),
  );

  const reinvocationPolicy = decodeString(hook.reinvocationPolicy, `${path}.reinvocationPolicy`) ?? 'Never';
  if (!REINVOCATION_POLICIES.includes(reinvocationPolicy))
    errors.push(notSupported(`${path}.reinvocationPolicy`, reinvocationPolicy, REINVOCATION_POLICIES));

  // matchConditions hold CEL expressions; this server stores them without compiling them.
  const matchConditions = optionalList(
    hook.matchConditions,
    `${path}.matchConditions`,
    '[]v1.MatchCondition',
  )?.map((item, i) => {
    const conditionPath = `${path}.matchConditions[${i}]`;
    const condition = decodeObject(item, conditionPath, 'v1.MatchCondition');
    unknownFields.push(...unknownIn(condition, MATCH_CONDITION_FIELDS, conditionPath));
    return {
      name: decodeString(condition.name, `${conditionPath}.name`) ?? '',
      expression: decodeString(condition.expression, `${conditionPath}.expression`) ?? '',
    };
  });

  return withoutUndefined({
    name,
    clientConfig,
    rules,
    failurePolicy,
    matchPolicy,
    namespaceSelector,
    objectSelector,
    sideEffects,
    timeoutSeconds,
    admissionReviewVersions: admissionReviewVersions.length === 0 ? undefined : admissionReviewVersions,
    reinvocationPolicy,
    matchConditions:
      matchConditions === undefined || matchConditions.length === 0 ? undefined : matchConditions,
  });
}

function normaliseClientConfig(
  value: unknown,
  path: string,
  errors: FieldError[],
  unknownFields: string[],
): Record<string, unknown> {
  const config =
    value === undefined || value === null ? {} : decodeObject(value, path, 'v1.WebhookClientConfig');
  unknownFields.push(...unknownIn(config, CLIENT_CONFIG_FIELDS, path));
  const url = decodeString(config.url, `${path}.url`);
  let service: Record<string, unknown> | undefined;
  if (config.service !== undefined && config.service !== null) {
    const raw = decodeObject(config.service, `${path}.service`, 'v1.ServiceReference');
    unknownFields.push(...unknownIn(raw, SERVICE_FIELDS, `${path}.service`));
    service = withoutUndefined({
      namespace: decodeString(raw.namespace, `${path}.service.namespace`) ?? '',
      name: decodeString(raw.name, `${path}.service.name`) ?? '',
      path: decodeString(raw.path, `${path}.service.path`),
      port: decodeInteger(raw.port, `${path}.service.port`) ?? 443,
    });
  }

  if ((url === undefined) === (service === undefined)) {
    errors.push({ type: 'Required', field: path, why: 'exactly one of url or service is required' });
  } else if (url !== undefined) {
    errors.push(...webhookUrlErrors(url, `${path}.url`));
  } else if (service !== undefined) {
    errors.push(...webhookServiceErrors(service, `${path}.service`));
  }

  let caBundle: string | undefined;
  if (config.caBundle !== undefined && config.caBundle !== null) {
    const text = decodeString(config.caBundle, `${path}.caBundle`) as string;
    const compact = text.replace(/[\r\n]/g, '');
    if (BASE64.test(compact)) {
      // Stored as the bytes it decodes to, so it reads back in canonical form; empty bytes are omitted.
      caBundle = compact === '' ? undefined : Buffer.from(compact, 'base64').toString('base64');
    } else {
      errors.push({
        field: `${path}.caBundle`,
        value: text.length > 64 ? `${text.slice(0, 64)}...` : text,
        why: 'must be standard base64 (with padding) of the PEM CA bundle',
      });
    }
  }
  return withoutUndefined({ url, service, caBundle });
}

function webhookUrlErrors(url: string, path: string): FieldError[] {
  const form = '; desired format: https://host[/path]';
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (err) {
    return [
      { type: 'Required', field: path, why: `url must be a valid URL: ${(err as Error).message}${form}` },
    ];
  }
  const errors: FieldError[] = [];
  const scheme = parsed.protocol.replace(/:$/, '');
  if (scheme !== 'https')
    errors.push({ field: path, value: scheme, why: `'https' is the only allowed URL scheme${form}` });
  if (parsed.host === '') errors.push({ field: path, value: '', why: `host must be specified${form}` });
  if (parsed.username !== '' || parsed.password !== '')
    errors.push({ field: path, value: parsed.username, why: 'user information is not permitted in the URL' });
  if (parsed.hash !== '')
    errors.push({ field: path, value: parsed.hash.slice(1), why: 'fragments are not permitted in the URL' });
  if (parsed.search !== '')
    errors.push({
      field: path,
      value: parsed.search.slice(1),
      why: 'query parameters are not permitted in the URL',
    });
  return errors;
}

function webhookServiceErrors(service: Record<string, unknown>, path: string): FieldError[] {
  const errors: FieldError[] = [];
  if (service.name === '') errors.push({ type: 'Required', field: `${path}.name`, why: '' });
  if (service.namespace === '') errors.push({ type: 'Required', field: `${path}.namespace`, why: '' });
  const port = service.port as number;
  if (port < 1 || port > 65535) {
    errors.push({
      field: `${path}.port`,
      value: port,
      why: 'port is not valid: must be between 1 and 65535, inclusive',
    });
  }
  const urlPath = service.path as string | undefined;
  if (urlPath !== undefined && urlPath !== '' && urlPath !== '/') {
    if (urlPath === '//')
      errors.push({ field: `${path}.path`, value: urlPath, why: 'segment[0] may not be empty' });
    else if (!urlPath.startsWith('/'))
      errors.push({ field: `${path}.path`, value: urlPath, why: "must start with a '/'" });
  }
  return errors;
}

function normaliseRule(
  item: unknown,
  path: string,
  errors: FieldError[],
  unknownFields: string[],
): Record<string, unknown> {
  const rule = decodeObject(item, path, 'v1.RuleWithOperations');
  unknownFields.push(...unknownIn(rule, RULE_FIELDS, path));
  const strings = (field: string): string[] =>
    (optionalList(rule[field], `${path}.${field}`, '[]string') ?? []).map(
      (v, i) => decodeString(v, `${path}.${field}[${i}]`, true) as string,
    );
  const operations = strings('operations');
  const apiGroups = strings('apiGroups');
  const apiVersions = strings('apiVersions');
  const resources = strings('resources');
  const scope = decodeString(rule.scope, `${path}.scope`) ?? '*';

  if (operations.length === 0) errors.push({ type: 'Required', field: `${path}.operations`, why: '' });
  if (operations.length > 1 && operations.includes('*'))
    errors.push({
      field: `${path}.operations`,
      value: operations,
      why: "if '*' is present, must not specify other operations",
    });
  operations.forEach((op, i) => {
    if (!OPERATIONS.includes(op)) errors.push(notSupported(`${path}.operations[${i}]`, op, OPERATIONS));
  });
  if (apiGroups.length === 0) errors.push({ type: 'Required', field: `${path}.apiGroups`, why: '' });
  if (apiVersions.length === 0) errors.push({ type: 'Required', field: `${path}.apiVersions`, why: '' });
  if (resources.length === 0) errors.push({ type: 'Required', field: `${path}.resources`, why: '' });
  if (!SCOPES.includes(scope)) errors.push(notSupported(`${path}.scope`, scope, SCOPES));
  return withoutUndefined({
    operations: operations.length === 0 ? undefined : operations,
    apiGroups: apiGroups.length === 0 ? undefined : apiGroups,
    apiVersions: apiVersions.length === 0 ? undefined : apiVersions,
    resources: resources.length === 0 ? undefined : resources,
    scope,
  });
}

/** A label selector defaults to `{}` (matches everything); its expressions are stored as given. */
function normaliseSelector(value: unknown, path: string, unknownFields: string[]): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  const selector = decodeObject(value, path, 'v1.LabelSelector');
  unknownFields.push(...unknownIn(selector, SELECTOR_FIELDS, path));
  const out: Record<string, unknown> = {};
  if (selector.matchLabels !== undefined && selector.matchLabels !== null) {
    const labels = decodeObject(selector.matchLabels, `${path}.matchLabels`, 'map[string]string');
    for (const [k, v] of Object.entries(labels)) decodeString(v, `${path}.matchLabels.${k}`, true);
    if (Object.keys(labels).length > 0) out.matchLabels = labels;
  }
  const expressions = optionalList(
    selector.matchExpressions,
    `${path}.matchExpressions`,
    '[]v1.LabelSelectorRequirement',
  );
  if (expressions !== undefined && expressions.length > 0) out.matchExpressions = expressions;
  return out;
}

/** apimachinery's IsFullyQualifiedName: a DNS subdomain with at least three dot-separated segments. */
function fullyQualifiedNameErrors(name: string, path: string): FieldError[] {
  if (name === '') return [{ type: 'Required', field: path, why: '' }];
  if (name.length > 253 || !DNS1123_SUBDOMAIN.test(name)) {
    return [
      {
        field: path,
        value: name,
        why: "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
      },
    ];
  }
  if (name.split('.').length < 3)
    return [
      { field: path, value: name, why: 'should be a domain with at least three segments separated by dots' },
    ];
  return [];
}

function admissionReviewVersionErrors(versions: readonly string[], path: string): FieldError[] {
  if (versions.length === 0)
    return [
      { type: 'Required', field: path, why: `must specify one of ${ADMISSION_REVIEW_VERSIONS.join(', ')}` },
    ];
  const errors: FieldError[] = [];
  const seen = new Set<string>();
  versions.forEach((v, i) => {
    if (seen.has(v)) {
      errors.push({ field: `${path}[${i}]`, value: v, why: 'duplicate version' });
      return;
    }
    seen.add(v);
    if (v.length > 63 || !DNS1035_LABEL.test(v)) {
      errors.push({
        field: `${path}[${i}]`,
        value: v,
        why: "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
      });
    }
  });
  if (!versions.some((v) => ADMISSION_REVIEW_VERSIONS.includes(v))) {
    errors.push({
      field: path,
      value: versions,
      why: `must include at least one of ${ADMISSION_REVIEW_VERSIONS.join(', ')}`,
    });
  }
  return errors;
}

function notSupported(field: string, value: string, supported: readonly string[]): FieldError {
  return { type: 'NotSupported', field, value, supported };
}

// ---- decoding: a wrong JSON type is a 400, as when the API server's decoder rejects the body -------------

function decodeFailure(path: string, goType: string, value: unknown): KubeStatusError {
  const jsonType = Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value;
  return badRequest(
    `${MUTATING_WEBHOOK_CONFIGURATION_KIND} in version "v1" cannot be handled as a ${MUTATING_WEBHOOK_CONFIGURATION_KIND}: json: cannot unmarshal ${jsonType} into Go struct field ${path} of type ${goType}`,
  );
}

function decodeObject(value: unknown, path: string, goType: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw decodeFailure(path, goType, value);
  return value as Record<string, unknown>;
}

function decodeList(value: unknown, path: string, goType: string): unknown[] {
  if (!Array.isArray(value)) throw decodeFailure(path, goType, value);
  return value;
}

function optionalList(value: unknown, path: string, goType: string): unknown[] | undefined {
  return value === undefined || value === null ? undefined : decodeList(value, path, goType);
}

function decodeString(value: unknown, path: string, required = false): string | undefined {
  if (value === undefined || value === null) {
    if (required) throw decodeFailure(path, 'string', value);
    return undefined;
  }
  if (typeof value !== 'string') throw decodeFailure(path, 'string', value);
  return value;
}

function decodeInteger(value: unknown, path: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || Math.abs(value) > 2 ** 31 - 1)
    throw decodeFailure(path, 'int32', value);
  return value;
}

function unknownIn(object: Record<string, unknown>, known: readonly string[], path: string): string[] {
  return Object.keys(object)
    .filter((k) => !known.includes(k))
    .map((k) => `unknown field "${path}.${k}"`);
}

function withoutUndefined(object: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(object).filter(([, v]) => v !== undefined));
}
