/**
 * The JSON heads carried by OPEN, RESPONSE, RESET and GOAWAY frames, validated strictly: unknown fields, wrong
 * types and oversized values are protocol errors, so a peer cannot smuggle anything a later version would read.
 */
import { CloudtaserError, type ErrorCode, ErrorCodes } from '../core/errors.js';

export type TunnelHeaders = Readonly<Record<string, string>>;

export interface RequestHead {
  /** Upper-case HTTP-style method, e.g. GET, POST. */
  readonly method: string;
  /** Absolute path with optional query, e.g. `/v1/tunnel/info`. */
  readonly path: string;
  readonly headers?: TunnelHeaders;
}

export interface ResponseHead {
  readonly status: number;
  readonly headers?: TunnelHeaders;
}

export interface ResetReason {
  readonly code: ErrorCode;
  readonly reason: string;
}

export const MAX_HEADERS = 64;
/** The longest path (query included) a tunnel request head carries. */
export const MAX_PATH_CHARS = 4096;
const MAX_HEADER_VALUE_CHARS = 8192;
const MAX_REASON_CHARS = 500;
const METHOD = /^[A-Z]{1,16}$/;
const HEADER_NAME = /^[a-z0-9][a-z0-9!#$%&'*+.^_`|~-]{0,63}$/;

export function encodeRequestHead(head: RequestHead): Buffer {
  // Validate our own output too: a bad head is caught at the caller, not reported as the peer's fault.
  const normalized = checkRequestHead(
    { method: head.method, path: head.path, headers: head.headers ?? {} },
    'CT_INVALID_ARGUMENT',
  );
  return Buffer.from(JSON.stringify(normalized), 'utf8');
}

export function decodeRequestHead(payload: Buffer): RequestHead {
  return checkRequestHead(parseObject(payload, 'OPEN'), 'CT_TUNNEL_PROTOCOL');
}

/**
 * Encoded heads of answers whose headers object is frozen (a shared constant), per status: the bridge answers
 * nearly every pod read with the same head, and encoding it (validation, JSON, UTF-8) was a visible share of
 * its CPU per read. Callers copy the bytes into a frame, so sharing one Buffer is safe.
 */
const sharedResponseHeads = new WeakMap<TunnelHeaders, Map<number, Buffer>>();

export function encodeResponseHead(head: ResponseHead): Buffer {
  const shared = head.headers !== undefined && Object.isFrozen(head.headers);
  if (shared) {
    const cached = sharedResponseHeads.get(head.headers!)?.get(head.status);
    if (cached) return cached;
  }
  const encoded = encodeResponseHeadUncached(head);
  if (shared) {
    const byStatus = sharedResponseHeads.get(head.headers!) ?? new Map<number, Buffer>();
    sharedResponseHeads.set(head.headers!, byStatus);
    byStatus.set(head.status, encoded);
  }
  return encoded;
}

function encodeResponseHeadUncached(head: ResponseHead): Buffer {
  const normalized = checkResponseHead(
    { status: head.status, headers: head.headers ?? {} },
    'CT_INVALID_ARGUMENT',
  );
  return Buffer.from(JSON.stringify(normalized), 'utf8');
}

export function decodeResponseHead(payload: Buffer): ResponseHead {
  return checkResponseHead(parseObject(payload, 'RESPONSE'), 'CT_TUNNEL_PROTOCOL');
}

export function encodeReason(reason: ResetReason): Buffer {
  return Buffer.from(
    JSON.stringify({ code: reason.code, reason: reason.reason.slice(0, MAX_REASON_CHARS) }),
    'utf8',
  );
}

/** RESET and GOAWAY bodies. An unknown code becomes CT_TUNNEL_PROTOCOL so callers can still switch on it. */
export function decodeReason(payload: Buffer, frame: 'RESET' | 'GOAWAY'): ResetReason {
  const value = parseObject(payload, frame);
  onlyKeys(value, ['code', 'reason'], frame, 'CT_TUNNEL_PROTOCOL');
  if (
    typeof value.code !== 'string' ||
    typeof value.reason !== 'string' ||
    value.reason.length > MAX_REASON_CHARS
  ) {
    throw protocol(
      `${frame} frame needs a string code and a reason of at most ${MAX_REASON_CHARS} characters`,
    );
  }
  const code = Object.hasOwn(ErrorCodes, value.code) ? (value.code as ErrorCode) : 'CT_TUNNEL_PROTOCOL';
  return { code, reason: value.reason };
}

function checkRequestHead(value: Record<string, unknown>, code: ErrorCode): RequestHead {
  onlyKeys(value, ['method', 'path', 'headers'], 'OPEN', code);
  if (typeof value.method !== 'string' || !METHOD.test(value.method)) {
    throw new CloudtaserError(code, 'tunnel request method must be 1-16 upper-case letters');
  }
  if (
    typeof value.path !== 'string' ||
    !value.path.startsWith('/') ||
    value.path.length > MAX_PATH_CHARS ||
    hasControlCharacters(value.path)
  ) {
    throw new CloudtaserError(
      code,
      `tunnel request path must start with '/' and be at most ${MAX_PATH_CHARS} printable characters`,
    );
  }
  return { method: value.method, path: value.path, headers: checkHeaders(value.headers, code) };
}

function checkResponseHead(value: Record<string, unknown>, code: ErrorCode): ResponseHead {
  onlyKeys(value, ['status', 'headers'], 'RESPONSE', code);
  if (
    typeof value.status !== 'number' ||
    !Number.isInteger(value.status) ||
    value.status < 100 ||
    value.status > 599
  ) {
    throw new CloudtaserError(code, 'tunnel response status must be an integer from 100 to 599');
  }
  return { status: value.status, headers: checkHeaders(value.headers, code) };
}

function checkHeaders(value: unknown, code: ErrorCode): TunnelHeaders {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CloudtaserError(code, 'tunnel headers must be an object of strings');
  }
  const entries = Object.entries(value);
  if (entries.length > MAX_HEADERS)
    throw new CloudtaserError(code, `tunnel heads carry at most ${MAX_HEADERS} headers`);
  const out: Record<string, string> = {};
  for (const [name, headerValue] of entries) {
    if (!HEADER_NAME.test(name))
      throw new CloudtaserError(
        code,
        'tunnel header names must be lower-case tokens of at most 64 characters',
      );
    if (
      typeof headerValue !== 'string' ||
      headerValue.length > MAX_HEADER_VALUE_CHARS ||
      hasControlCharacters(headerValue)
    ) {
      throw new CloudtaserError(
        code,
        `tunnel header values must be printable strings of at most ${MAX_HEADER_VALUE_CHARS} characters`,
      );
    }
    out[name] = headerValue;
  }
  return out;
}

function parseObject(payload: Buffer, frame: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    throw protocol(`${frame} frame payload is not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw protocol(`${frame} frame payload is not a JSON object`);
  return value as Record<string, unknown>;
}

function onlyKeys(
  value: Record<string, unknown>,
  allowed: readonly string[],
  frame: string,
  code: ErrorCode,
): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key))
      throw new CloudtaserError(
        code,
        `${frame} head has an unknown field ${JSON.stringify(key.slice(0, 40))}`,
      );
  }
}

function hasControlCharacters(text: string): boolean {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  return /[\u0000-\u001f\u007f]/.test(text);
}

function protocol(message: string): CloudtaserError {
  return new CloudtaserError('CT_TUNNEL_PROTOCOL', message);
}
