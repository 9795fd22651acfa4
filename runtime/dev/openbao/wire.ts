/**
 * DEV-ONLY test infrastructure: wire helpers for the OpenBao-compatible test server (envelopes, error
 * shapes, ids). Never used by production code paths. The envelope is sdk/logical/translate_response.go
 * `HTTPResponse` (eight keys, this order, no `mount_type`); error bodies and statuses follow
 * sdk/logical/response_util.go `RespondErrorCommon`; go-multierror formats handler errors on non-login paths;
 * Go's encoding/json escapes <, >, & and U+2028/9 and ends with a newline (wire-facts A0.2, A0.3).
 */
import { randomBytes, randomUUID } from 'node:crypto';

/** What a backend handler returns; the HTTP layer turns it into OpenBao's exact body. */
export type BaoResponse =
  | {
      readonly kind: 'data';
      readonly status?: number;
      readonly data?: unknown;
      readonly warnings?: readonly string[];
      readonly auth?: AuthBlock;
      /** sys/mounts, sys/auth and sys/policy also copy `data` keys to the top level of the body. */
      readonly injectTopLevel?: boolean;
    }
  | { readonly kind: 'empty' }
  | { readonly kind: 'error'; readonly status: number; readonly errors: readonly string[] };

export interface AuthBlock {
  readonly client_token: string;
  readonly accessor: string;
  readonly policies: readonly string[];
  readonly token_policies: readonly string[];
  readonly metadata: Record<string, string> | null;
  readonly lease_duration: number;
  readonly renewable: boolean;
  readonly entity_id: string;
  readonly token_type: string;
  readonly orphan: boolean;
  readonly mfa_requirement: null;
  readonly num_uses: number;
}

/** A handler failure with OpenBao's status and `errors` list. */
export class BaoError extends Error {
  constructor(
    readonly status: number,
    readonly errors: readonly string[],
  ) {
    super(errors[0] ?? `status ${status}`);
  }
}

/** go-multierror's formatting, which OpenBao uses for errors on non-login paths. */
export function multiError(text: string): string {
  return `1 error occurred:\n\t* ${text}\n\n`;
}

export const PERMISSION_DENIED = 'permission denied';
export const SEALED_TEXT = 'Vault is sealed';

export const badRequest = (text: string): BaoError => new BaoError(400, [text]);
export const notFoundEmpty = (): BaoError => new BaoError(404, []);
export const permissionDenied = (): BaoError => new BaoError(403, [PERMISSION_DENIED]);
export const aclDenied = (): BaoError => new BaoError(403, [multiError(PERMISSION_DENIED)]);
export const unsupportedPath = (): BaoError => new BaoError(404, [multiError('unsupported path')]);
export const unsupportedOperation = (login = false): BaoError =>
  new BaoError(405, [login ? 'unsupported operation' : multiError('unsupported operation')]);

export const ok = (
  data: unknown,
  extra: { warnings?: string[]; injectTopLevel?: boolean } = {},
): BaoResponse => ({
  kind: 'data',
  data,
  ...extra,
});
export const noContent = (): BaoResponse => ({ kind: 'empty' });

/** Go's encoding/json sorts map keys; we store maps as plain objects, so sort them on the way out. */
export function sortKeysDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeysDeep);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort())
      out[key] = sortKeysDeep((value as Record<string, unknown>)[key]);
    return out;
  }
  return value;
}

/** JSON as Go writes it: HTML-safe escapes and a trailing newline. */
export function goJson(value: unknown): string {
  return (
    JSON.stringify(value)
      .replace(/</g, '\\u003c')
      .replace(/>/g, '\\u003e')
      .replace(/&/g, '\\u0026')
      .replace(/\u2028/g, '\\u2028')
      .replace(/\u2029/g, '\\u2029') + '\n'
  );
}

/** The eight-key success envelope, keys in OpenBao's order; never a `mount_type` key. */
export function envelope(response: Extract<BaoResponse, { kind: 'data' }>): Record<string, unknown> {
  const data = response.data === undefined || response.data === null ? null : sortKeysDeep(response.data);
  const body: Record<string, unknown> = {
    request_id: randomUUID(),
    lease_id: '',
    renewable: false,
    lease_duration: 0,
    data,
    wrap_info: null,
    warnings: response.warnings && response.warnings.length > 0 ? [...response.warnings] : null,
    auth: response.auth ?? null,
  };
  if (response.injectTopLevel && data && typeof data === 'object') {
    for (const [key, value] of Object.entries(data)) if (!(key in body)) body[key] = value;
  }
  return body;
}

const BASE62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

export function randomBase62(length: number): string {
  const bytes = randomBytes(length * 2);
  let out = '';
  for (let i = 0; i < bytes.length && out.length < length; i++) {
    // 248 = 4 * 62: rejecting the top values keeps the distribution uniform
    if (bytes[i] < 248) out += BASE62[bytes[i] % 62];
  }
  return out.length === length ? out : out + randomBase62(length - out.length);
}

/** RFC 3339 UTC with sub-second digits, as Go prints time.Time. */
export function rfc3339(ms: number): string {
  return new Date(ms).toISOString();
}

/** Parses a Go-style duration ("1h30m", "45s") or plain seconds; returns seconds. */
export function parseDurationSeconds(value: unknown, field: string): number {
  if (value === undefined || value === null || value === '') return 0;
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return Math.floor(value);
  if (typeof value === 'string') {
    if (/^\d+$/.test(value)) return Number(value);
    const match = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(value);
    if (match && value.length > 0) {
      return Number(match[1] ?? 0) * 3600 + Number(match[2] ?? 0) * 60 + Number(match[3] ?? 0);
    }
  }
  throw badRequest(
    `error converting input ${JSON.stringify(value)} for field "${field}": time: invalid duration`,
  );
}

/** A list field that may also arrive as a comma-separated string, as OpenBao's TypeCommaStringSlice allows. */
export function stringList(value: unknown): string[] {
  if (value === undefined || value === null || value === '') return [];
  if (Array.isArray(value)) return value.map((item) => String(item).trim()).filter((item) => item !== '');
  return String(value)
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Go's strconv.ParseBool, which OpenBao uses for query flags such as `list` and `standbyok`. */
export function parseGoBool(value: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  return undefined;
}
