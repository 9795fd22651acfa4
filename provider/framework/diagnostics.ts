/**
 * Diagnostics: what Terraform shows the user. Every exception a handler throws becomes exactly one ERROR
 * diagnostic with a short summary, an actionable detail and, when known, the attribute it is about.
 */
import { CloudtaserError, type ErrorCode, ErrorCodes, isCloudtaserError } from '../../runtime/core/errors.js';

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

/** Turns anything thrown into one diagnostic; `context` names the operation for unexpected errors. */
export function errorToDiagnostic(err: unknown, context: string, attribute?: AttributePath): Diagnostic {
  // The lazy chunks carry their own copy of the class; isCloudtaserError knows their errors by the brand.
  if (isCloudtaserError(err)) {
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
