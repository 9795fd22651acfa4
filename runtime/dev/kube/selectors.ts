/**
 * Label and field selectors as the API server parses them (wire-facts B4). Dev-only test server code.
 * A malformed selector is a 400 BadRequest, never a silent "match everything". Upstream: k8s.io/apimachinery
 * pkg/labels/selector.go (`Parse`: `=`, `==`, `!=`, `in`, `notin`, `key`, `!key`, AND by comma; key and value
 * syntax from pkg/util/validation), pkg/fields/selector.go (`ParseSelector`), and for Secrets the selectable
 * fields of kubernetes pkg/registry/core/secret/strategy.go `SelectableFields` (`field label not supported`).
 */
import { badRequest } from './status.js';

export type Requirement =
  | { readonly op: 'eq' | 'neq'; readonly key: string; readonly value: string }
  | { readonly op: 'in' | 'notin'; readonly key: string; readonly values: readonly string[] }
  | { readonly op: 'exists' | 'notexists'; readonly key: string };

const MAX_SELECTOR_LENGTH = 4096;
const KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

/** Splits on commas that are not inside `( … )`. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '(') depth++;
    else if (ch === ')') depth--;
    else if (ch === ',' && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
    if (depth < 0 || depth > 1)
      throw badRequest(`unable to parse requirement: unbalanced parentheses in ${JSON.stringify(text)}`);
  }
  if (depth !== 0)
    throw badRequest(`unable to parse requirement: unbalanced parentheses in ${JSON.stringify(text)}`);
  parts.push(text.slice(start));
  return parts;
}

function checkKey(key: string): string {
  if (!KEY.test(key))
    throw badRequest(`unable to parse requirement: invalid label key ${JSON.stringify(key)}`);
  return key;
}

function checkValue(value: string): string {
  if (!VALUE.test(value))
    throw badRequest(`unable to parse requirement: invalid label value ${JSON.stringify(value)}`);
  return value;
}

export function parseLabelSelector(text: string | null): Requirement[] {
  if (text === null || text.trim() === '') return [];
  if (text.length > MAX_SELECTOR_LENGTH) throw badRequest('labelSelector is too long');
  return splitTopLevel(text).map((raw): Requirement => {
    const part = raw.trim();
    const set = /^(\S+)\s+(in|notin)\s*\(([^()]*)\)$/.exec(part);
    if (set) {
      const values = set[3].split(',').map((v) => checkValue(v.trim()));
      return { op: set[2] as 'in' | 'notin', key: checkKey(set[1]), values };
    }
    const eq = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(part);
    if (eq) return { op: eq[2] === '!=' ? 'neq' : 'eq', key: checkKey(eq[1]), value: checkValue(eq[3]) };
    if (part.startsWith('!')) return { op: 'notexists', key: checkKey(part.slice(1).trim()) };
    if (part !== '') return { op: 'exists', key: checkKey(part) };
    throw badRequest(`unable to parse requirement: empty requirement in ${JSON.stringify(text)}`);
  });
}

export function matchesLabels(
  requirements: readonly Requirement[],
  labels: Record<string, string> | undefined,
): boolean {
  const have = labels ?? {};
  return requirements.every((r) => {
    const present = Object.hasOwn(have, r.key);
    switch (r.op) {
      case 'eq':
        return present && have[r.key] === r.value;
      case 'neq':
        return !present || have[r.key] !== r.value;
      case 'in':
        return present && r.values.includes(have[r.key]);
      case 'notin':
        return !present || !r.values.includes(have[r.key]);
      case 'exists':
        return present;
      case 'notexists':
        return !present;
      default:
        return false;
    }
  });
}

export interface FieldRequirement {
  readonly field: string;
  readonly negate: boolean;
  readonly value: string;
}

/** Field selectors support only `=`, `==`, `!=` and only the fields the resource declares selectable. */
export function parseFieldSelector(text: string | null, supported: readonly string[]): FieldRequirement[] {
  if (text === null || text.trim() === '') return [];
  if (text.length > MAX_SELECTOR_LENGTH) throw badRequest('fieldSelector is too long');
  return text.split(',').map((raw) => {
    const match = /^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(raw);
    if (!match) throw badRequest(`invalid selector: '${text}'; can't understand '${raw}'`);
    const [, field, op, value] = match;
    if (!supported.includes(field)) throw badRequest(`field label not supported: ${field}`);
    return { field, negate: op === '!=', value };
  });
}

export function matchesFields(
  requirements: readonly FieldRequirement[],
  fields: Record<string, string>,
): boolean {
  return requirements.every((r) => (fields[r.field] === r.value) !== r.negate);
}
