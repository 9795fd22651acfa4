/**
 * Kubernetes `Status` error objects, shaped as the API server writes them (wire-facts B0.1).
 * Dev-only: part of the Kubernetes-API-compatible test server.
 */

export interface StatusCause {
  readonly reason: string;
  readonly message: string;
  readonly field?: string;
}

export interface StatusDetails {
  readonly name?: string;
  readonly group?: string;
  /** The plural resource name, except for delete-precondition conflicts, which carry the Kind. */
  readonly kind?: string;
  readonly uid?: string;
  readonly causes?: StatusCause[];
}

export interface StatusBody {
  readonly kind: 'Status';
  readonly apiVersion: 'v1';
  readonly metadata: Record<string, never>;
  readonly status: 'Failure' | 'Success';
  readonly message?: string;
  readonly reason?: string;
  readonly details?: StatusDetails;
  readonly code?: number;
}

/** Thrown inside request handlers; the router turns it into the HTTP response. */
export class KubeStatusError extends Error {
  readonly httpStatus: number;
  readonly body: StatusBody;

  constructor(httpStatus: number, reason: string, message: string, details?: StatusDetails) {
    super(message);
    this.httpStatus = httpStatus;
    this.body = {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message,
      reason,
      ...(details === undefined ? {} : { details }),
      code: httpStatus,
    };
  }
}

/** `"group"` prefix used in messages: `secrets` for the core group, `tokenreviews.authentication.k8s.io` otherwise. */
export function qualifiedResource(resource: string, group: string): string {
  return group === '' ? resource : `${resource}.${group}`;
}

export function unauthorized(): KubeStatusError {
  return new KubeStatusError(401, 'Unauthorized', 'Unauthorized');
}

export function notFound(resource: string, name: string, group = ''): KubeStatusError {
  return new KubeStatusError(404, 'NotFound', `${qualifiedResource(resource, group)} "${name}" not found`, {
    name,
    ...(group === '' ? {} : { group }),
    kind: resource,
  });
}

export function alreadyExists(resource: string, name: string, group = ''): KubeStatusError {
  return new KubeStatusError(
    409,
    'AlreadyExists',
    `${qualifiedResource(resource, group)} "${name}" already exists`,
    {
      name,
      ...(group === '' ? {} : { group }),
      kind: resource,
    },
  );
}

/** Optimistic-lock conflicts on update/patch: `Operation cannot be fulfilled on secrets "db": ...`. */
export function conflict(resource: string, name: string, detail: string, group = ''): KubeStatusError {
  return new KubeStatusError(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${qualifiedResource(resource, group)} "${name}": ${detail}`,
    { name, ...(group === '' ? {} : { group }), kind: resource },
  );
}

/** Delete-precondition conflicts name the Kind (`Secret`), not the plural resource (wire-facts B4). */
export function preconditionConflict(
  kind: string,
  name: string,
  detail: string,
  group = '',
): KubeStatusError {
  return new KubeStatusError(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${qualifiedResource(kind, group)} "${name}": ${detail}`,
    { name, ...(group === '' ? {} : { group }), kind },
  );
}

export function badRequest(message: string): KubeStatusError {
  return new KubeStatusError(400, 'BadRequest', message);
}

/** How a field is wrong, as apimachinery's field.ErrorType names it (the Status cause reason is `FieldValue<type>`). */
export type FieldErrorType = 'Invalid' | 'Required' | 'Duplicate' | 'NotSupported';

/** One field problem of a 422; `type` defaults to `Invalid`. */
export interface FieldError {
  readonly type?: FieldErrorType;
  readonly field: string;
  readonly value?: unknown;
  /** The explanation after the value (`Invalid`, `Required`). */
  readonly why?: string;
  /** The accepted values (`NotSupported`). */
  readonly supported?: readonly string[];
}

const FIELD_ERROR_TEXT: Record<FieldErrorType, string> = {
  Invalid: 'Invalid value',
  Required: 'Required value',
  Duplicate: 'Duplicate value',
  NotSupported: 'Unsupported value',
};

/** The message after `<field>: `, formatted as field.Error.ErrorBody() does. */
function fieldErrorBody(error: FieldError): string {
  const type = error.type ?? 'Invalid';
  let body =
    type === 'Required'
      ? FIELD_ERROR_TEXT[type]
      : `${FIELD_ERROR_TEXT[type]}: ${JSON.stringify(error.value)}`;
  if (type === 'NotSupported' && error.supported !== undefined)
    body += `: supported values: ${error.supported.map((v) => JSON.stringify(v)).join(', ')}`;
  else if (error.why !== undefined && error.why !== '') body += `: ${error.why}`;
  return body;
}

/** 422 Invalid: `<Kind>.<group> "<name>" is invalid: <field>: <problem>`, with one cause per field error. */
export function invalid(
  kind: string,
  group: string,
  name: string,
  errors: readonly FieldError[],
): KubeStatusError {
  const kindName = group === '' ? kind : `${kind}.${group}`;
  const messages = errors.map((e) => `${e.field}: ${fieldErrorBody(e)}`);
  const text = messages.length === 1 ? messages[0] : `[${messages.join(', ')}]`;
  return new KubeStatusError(422, 'Invalid', `${kindName} "${name}" is invalid: ${text}`, {
    name,
    ...(group === '' ? {} : { group }),
    kind,
    causes: errors.map((e) => ({
      reason: `FieldValue${e.type ?? 'Invalid'}`,
      message: fieldErrorBody(e),
      field: e.field,
    })),
  });
}

export function forbidden(options: {
  user: string;
  verb: string;
  resource: string;
  subresource?: string;
  group: string;
  name?: string;
  namespace?: string;
}): KubeStatusError {
  const { user, verb, resource, subresource, group, name, namespace } = options;
  const subject =
    name === undefined
      ? qualifiedResource(resource, group)
      : `${qualifiedResource(resource, group)} "${name}"`;
  const fullResource = subresource === undefined ? resource : `${resource}/${subresource}`;
  const scope = namespace === undefined ? 'at the cluster scope' : `in the namespace "${namespace}"`;
  return new KubeStatusError(
    403,
    'Forbidden',
    `${subject} is forbidden: User "${user}" cannot ${verb} resource "${fullResource}" in API group "${group}" ${scope}`,
    { ...(name === undefined ? {} : { name }), ...(group === '' ? {} : { group }), kind: resource },
  );
}

export function methodNotAllowed(): KubeStatusError {
  return new KubeStatusError(
    405,
    'MethodNotAllowed',
    'the server does not allow this method on the requested resource',
  );
}

export function unsupportedMediaType(
  contentType: string,
  accepted: readonly string[] = [
    'application/json',
    'application/merge-patch+json',
    'application/strategic-merge-patch+json',
  ],
): KubeStatusError {
  return new KubeStatusError(
    415,
    'UnsupportedMediaType',
    `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}; got ${JSON.stringify(contentType)}`,
  );
}

export function requestEntityTooLarge(limit: number | string): KubeStatusError {
  const detail = typeof limit === 'number' ? `limit is ${limit}` : limit;
  return new KubeStatusError(413, 'RequestEntityTooLarge', `Request entity too large: ${detail}`);
}

export function internalError(message: string): KubeStatusError {
  return new KubeStatusError(500, 'InternalError', `Internal error occurred: ${message}`, {
    causes: [{ reason: '', message }],
  });
}
