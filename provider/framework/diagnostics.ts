/**
 * Diagnostics: what Terraform shows the user. Every exception a handler throws becomes exactly one ERROR
 * diagnostic with a short summary, an actionable detail and, when known, the attribute it is about.
 */
import { CloudtaserError, type ErrorCode, ErrorCodes } from '../../runtime/core/errors.js';

export type AttributePathStep = string | number;
export type AttributePath = readonly AttributePathStep[];

export interface Diagnostic {
  readonly severity: 'error' | 'warning';
  readonly summary: string;
  readonly detail: string;
  readonly attribute?: AttributePath;
}

/** Throw this to report several diagnostics at once (validation). */
export class DiagnosticsError extends Error {
  constructor(readonly diagnostics: readonly Diagnostic[]) {
    super(diagnostics.map((d) => d.summary).join('; '));
    this.name = 'DiagnosticsError';
  }
}

/** A CloudtaserError about one attribute: the framework points Terraform at that line of config. */
export function attributeError(
  attribute: AttributePath,
  code: ErrorCode,
  message: string,
  options: { cause?: unknown } = {},
): CloudtaserError {
  return new CloudtaserError(code, message, { ...options, details: { attribute } });
}

export function summaryForCode(code: ErrorCode): string {
  const text: string = ErrorCodes[code] ?? 'the provider failed';
  return `${text.charAt(0).toUpperCase()}${text.slice(1)} (${code})`;
}

/**
 * Recognises a CloudtaserError by shape, not by class: in the bundle the domain code carries its own copy
 * of the class (it is compiled separately and lazily), so `instanceof` would miss its errors.
 */
export function asCloudtaserError(err: unknown): CloudtaserError | undefined {
  if (err instanceof CloudtaserError) return err;
  if (
    err instanceof Error &&
    err.name === 'CloudtaserError' &&
    typeof (err as { code?: unknown }).code === 'string' &&
    Object.hasOwn(ErrorCodes, (err as unknown as { code: string }).code)
  ) {
    const shaped = err as Error & { code: ErrorCode; details?: Record<string, unknown> };
    return new CloudtaserError(shaped.code, shaped.message, { cause: err, details: shaped.details ?? {} });
  }
  return undefined;
}

/** Turns anything thrown into one diagnostic; `context` names the operation for unexpected errors. */
export function errorToDiagnostic(err: unknown, context: string, attribute?: AttributePath): Diagnostic {
  const known = asCloudtaserError(err);
  if (known) {
    const err = known;
    const path = (err.details.attribute as AttributePath | undefined) ?? attribute;
    return { severity: 'error', summary: summaryForCode(err.code), detail: err.message, attribute: path };
  }
  const message = err instanceof Error ? err.message : String(err);
  return {
    severity: 'error',
    summary: `Unexpected error while ${context}`,
    detail: `${message}\n\nThis is a bug in terraform-provider-cloudtaser; please report it with the command you ran.`,
    attribute,
  };
}

export function errorToDiagnostics(err: unknown, context: string, attribute?: AttributePath): Diagnostic[] {
  if (err instanceof DiagnosticsError) return [...err.diagnostics];
  return [errorToDiagnostic(err, context, attribute)];
}

export function pathToWire(path: AttributePath): Record<string, unknown> {
  return {
    steps: path.map((step) => (typeof step === 'number' ? { elementKeyInt: step } : { attributeName: step })),
  };
}

export function diagnosticToWire(d: Diagnostic): Record<string, unknown> {
  return {
    severity: d.severity === 'error' ? 1 : 2,
    summary: d.summary,
    detail: d.detail,
    attribute: d.attribute && d.attribute.length > 0 ? pathToWire(d.attribute) : undefined,
  };
}
