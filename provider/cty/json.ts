/**
 * The JSON form of Terraform values, used for `raw_state.json` in UpgradeResourceState (the attributes
 * object exactly as stored in the state file) and `DynamicValue.json`. JSON cannot carry unknowns.
 * Attributes no longer in the schema are dropped, which is how old state meets a newer schema.
 */
import { CloudtaserError } from '../../runtime/core/errors.js';
import { decimalToNumber } from './msgpack.js';
import { type CtyType, typeFromJson } from './types.js';
import { BigNumber, Dynamic, record, type Value } from './values.js';

export interface JsonDecodeOptions {
  /** Drop object attributes the type does not know (state written by an older schema). @default true */
  readonly dropUnknownAttributes?: boolean;
}

const MAX_JSON_BYTES = 64 * 1024 * 1024;

export function decodeJsonValue(
  bytes: Uint8Array | string,
  type: CtyType,
  options: JsonDecodeOptions = {},
): Value {
  const text = typeof bytes === 'string' ? bytes : new TextDecoder().decode(bytes);
  if (text.length > MAX_JSON_BYTES) {
    throw new CloudtaserError(
      'CT_PROVIDER_PROTOCOL',
      'the JSON state is larger than 64 MiB; refusing to parse it',
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text, numberReviver);
  } catch (err) {
    throw new CloudtaserError(
      'CT_PROVIDER_PROTOCOL',
      `the JSON state is not valid JSON: ${(err as Error).message}`,
    );
  }
  return fromJson(parsed, type, '', options.dropUnknownAttributes ?? true, 0);
}

/** Keeps integers beyond 2^53 exact when the runtime exposes the source text (Node >= 21). */
function numberReviver(this: unknown, _key: string, value: unknown, context?: { source?: string }): unknown {
  if (typeof value === 'number' && context?.source !== undefined && String(value) !== context.source) {
    return decimalToNumber(context.source);
  }
  return value;
}

function fail(path: string, message: string): CloudtaserError {
  return new CloudtaserError(
    'CT_PROVIDER_PROTOCOL',
    `the JSON state at ${path || 'the top level'} ${message}`,
  );
}

function fromJson(value: unknown, type: CtyType, path: string, drop: boolean, depth: number): Value {
  if (depth > 64) throw fail(path, 'is nested too deeply');
  if (value === null || value === undefined) return null;
  if (type === 'dynamic') {
    if (typeof value !== 'object' || Array.isArray(value) || !('type' in value) || !('value' in value)) {
      throw fail(path, 'must be {"type":...,"value":...} for a dynamic attribute');
    }
    const concrete = typeFromJson((value as { type: unknown }).type);
    return new Dynamic(
      concrete,
      fromJson((value as { value: unknown }).value, concrete, path, drop, depth + 1),
    );
  }
  if (type === 'string') {
    // Terraform converts primitives to string where a string is expected.
    if (typeof value === 'string') return value;
    if (typeof value === 'number' || typeof value === 'boolean') return String(value);
    if (value instanceof BigNumber) return value.text;
    throw fail(path, 'must be a string');
  }
  if (type === 'number') {
    if (typeof value === 'number' || value instanceof BigNumber) return value;
    if (typeof value === 'string' && value.trim() !== '' && !Number.isNaN(Number(value)))
      return decimalToNumber(value);
    throw fail(path, 'must be a number');
  }
  if (type === 'bool') {
    if (typeof value === 'boolean') return value;
    if (value === 'true' || value === 'false') return value === 'true';
    throw fail(path, 'must be a bool');
  }
  const [kind, inner] = type;
  if (kind === 'list' || kind === 'set' || kind === 'tuple') {
    if (!Array.isArray(value)) throw fail(path, `must be an array (${kind})`);
    return value.map((element, i) =>
      fromJson(
        element,
        kind === 'tuple' ? (inner as CtyType[])[i] : (inner as CtyType),
        `${path}[${i}]`,
        drop,
        depth + 1,
      ),
    );
  }
  if (typeof value !== 'object' || Array.isArray(value)) throw fail(path, `must be an object (${kind})`);
  const out = record();
  const entries = value as Record<string, unknown>;
  if (kind === 'map') {
    for (const key of Object.keys(entries)) {
      out[key] = fromJson(entries[key], inner as CtyType, `${path}[${JSON.stringify(key)}]`, drop, depth + 1);
    }
    return out;
  }
  const attributes = inner as Record<string, CtyType>;
  for (const key of Object.keys(entries)) {
    if (!Object.hasOwn(attributes, key) && !drop) throw fail(path, `has an unsupported attribute ${key}`);
  }
  for (const name of Object.keys(attributes)) {
    out[name] = Object.hasOwn(entries, name)
      ? fromJson(entries[name], attributes[name], path ? `${path}.${name}` : name, drop, depth + 1)
      : null;
  }
  return out;
}
