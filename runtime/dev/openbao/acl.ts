/**
 * DEV-ONLY test infrastructure: ACL policies for the OpenBao-compatible test server. Parses the HCL subset
 * policies use (`path "x/*" { capabilities = [...] }`, also the JSON form and base64; internal/vault/policy/
 * policy.go `ParseACLPolicy`) and decides per path, picking the most specific matching rule as OpenBao does
 * (internal/vault/acl.go `AllowOperation`, with `+` and glob priority from `CheckAllowedFromNonExactPaths`).
 * The default policy is internal/vault/policy_store.go `defaultPolicy`, in part.
 */
import type { Namespace } from './namespaces.js';
import { badRequest } from './wire.js';

export const CAPABILITIES = [
  'create',
  'read',
  'update',
  'patch',
  'delete',
  'list',
  'scan',
  'sudo',
  'deny',
] as const;
export type Capability = (typeof CAPABILITIES)[number];

export interface PolicyRule {
  readonly pattern: string;
  readonly capabilities: ReadonlySet<Capability>;
}

export interface StoredPolicy {
  readonly name: string;
  readonly text: string;
  readonly rules: readonly PolicyRule[];
  version: number;
  readonly modified: number;
}

/** Capabilities the built-in `default` policy grants: a token may inspect, renew and revoke itself. */
export const DEFAULT_POLICY_TEXT = `# Allow tokens to look up, renew and revoke themselves
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self" { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }
path "sys/capabilities-self" { capabilities = ["update"] }
path "cubbyhole/*" { capabilities = ["create", "read", "update", "delete", "list"] }
`;

const MAX_POLICY_BYTES = 64 * 1024;

export function parsePolicy(input: string): PolicyRule[] {
  if (input.length > MAX_POLICY_BYTES) throw badRequest('failed to parse policy: policy is too large');
  let text = input;
  if (!/path|\{/.test(text)) {
    // OpenBao accepts base64-encoded HCL as well
    const decoded = Buffer.from(text, 'base64').toString('utf8');
    if (/path/.test(decoded)) text = decoded;
  }
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) return parseJsonPolicy(trimmed);
  return parseHclPolicy(text);
}

function parseJsonPolicy(text: string): PolicyRule[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw badRequest(`failed to parse policy: ${(err as Error).message}`);
  }
  const paths = (parsed as { path?: unknown }).path;
  if (!paths || typeof paths !== 'object') throw badRequest('failed to parse policy: no "path" stanzas');
  return Object.entries(paths as Record<string, { capabilities?: unknown }>).map(([pattern, body]) =>
    makeRule(pattern, body?.capabilities),
  );
}

type Token = { kind: 'string' | 'ident' | 'punct' | 'number'; value: string };

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (/\s/.test(ch)) {
      i++;
    } else if (ch === '#' || (ch === '/' && text[i + 1] === '/')) {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (ch === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      if (end < 0) throw badRequest('failed to parse policy: unterminated comment');
      i = end + 2;
    } else if (ch === '"') {
      let value = '';
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\\' && i + 1 < text.length) {
          value += text[i + 1];
          i += 2;
        } else if (text[i] === '\n') {
          throw badRequest('failed to parse policy: newline in string');
        } else {
          value += text[i++];
        }
      }
      if (i >= text.length) throw badRequest('failed to parse policy: unterminated string');
      i++;
      tokens.push({ kind: 'string', value });
    } else if ('{}[]=,'.includes(ch)) {
      tokens.push({ kind: 'punct', value: ch });
      i++;
    } else if (/[A-Za-z_]/.test(ch)) {
      const start = i;
      while (i < text.length && /[A-Za-z0-9_-]/.test(text[i])) i++;
      tokens.push({ kind: 'ident', value: text.slice(start, i) });
    } else if (/[0-9-]/.test(ch)) {
      const start = i;
      while (i < text.length && /[0-9.a-z]/.test(text[i])) i++;
      tokens.push({ kind: 'number', value: text.slice(start, i) });
    } else {
      throw badRequest(`failed to parse policy: unexpected character ${JSON.stringify(ch)}`);
    }
  }
  return tokens;
}

function parseHclPolicy(text: string): PolicyRule[] {
  const tokens = tokenize(text);
  let pos = 0;
  const expect = (kind: Token['kind'], value?: string): Token => {
    const token = tokens[pos];
    if (!token || token.kind !== kind || (value !== undefined && token.value !== value)) {
      throw badRequest(`failed to parse policy: expected ${value ?? kind} near token ${pos + 1}`);
    }
    pos++;
    return token;
  };
  // Values we accept but ignore (allowed_parameters, min_wrapping_ttl, ...).
  const skipValue = (): unknown => {
    const token = tokens[pos];
    if (!token) throw badRequest('failed to parse policy: unexpected end');
    if (token.kind === 'punct' && token.value === '[') {
      pos++;
      const items: unknown[] = [];
      while (!(tokens[pos]?.kind === 'punct' && tokens[pos].value === ']')) {
        items.push(skipValue());
        if (tokens[pos]?.kind === 'punct' && tokens[pos].value === ',') pos++;
        if (pos >= tokens.length) throw badRequest('failed to parse policy: unterminated list');
      }
      pos++;
      return items;
    }
    if (token.kind === 'punct' && token.value === '{') {
      pos++;
      parseBody();
      return {};
    }
    pos++;
    return token.value;
  };
  const parseBody = (): Record<string, unknown> => {
    const attributes: Record<string, unknown> = {};
    while (!(tokens[pos]?.kind === 'punct' && tokens[pos].value === '}')) {
      if (pos >= tokens.length) throw badRequest('failed to parse policy: unterminated block');
      const key =
        tokens[pos].kind === 'string' || tokens[pos].kind === 'ident' ? tokens[pos++].value : undefined;
      if (key === undefined) throw badRequest('failed to parse policy: expected an attribute name');
      if (tokens[pos]?.kind === 'punct' && tokens[pos].value === '=') pos++;
      attributes[key] = skipValue();
      if (tokens[pos]?.kind === 'punct' && tokens[pos].value === ',') pos++;
    }
    pos++;
    return attributes;
  };
  const rules: PolicyRule[] = [];
  while (pos < tokens.length) {
    const keyword = expect('ident');
    if (keyword.value !== 'path')
      throw badRequest(`failed to parse policy: unknown stanza "${keyword.value}"`);
    const pattern = expect('string').value;
    expect('punct', '{');
    const body = parseBody();
    rules.push(makeRule(pattern, body.capabilities));
  }
  return rules;
}

function makeRule(pattern: string, capabilities: unknown): PolicyRule {
  const list = Array.isArray(capabilities) ? capabilities.map(String) : [];
  for (const capability of list) {
    if (!(CAPABILITIES as readonly string[]).includes(capability)) {
      throw badRequest(`failed to parse policy: path "${pattern}": invalid capability "${capability}"`);
    }
  }
  const wildcard = pattern.indexOf('*');
  if (wildcard >= 0 && wildcard !== pattern.length - 1) {
    throw badRequest(`failed to parse policy: path "${pattern}": '*' is only allowed at the end of a path`);
  }
  return { pattern: pattern.replace(/^\/+/, ''), capabilities: new Set(list as Capability[]) };
}

function matches(pattern: string, path: string): boolean {
  const glob = pattern.endsWith('*');
  const body = glob ? pattern.slice(0, -1) : pattern;
  const patternSegments = body.split('/');
  const pathSegments = path.split('/');
  if (!glob && patternSegments.length !== pathSegments.length) return false;
  if (glob && pathSegments.length < patternSegments.length) return false;
  for (let i = 0; i < patternSegments.length; i++) {
    const want = patternSegments[i];
    const have = pathSegments[i];
    const last = i === patternSegments.length - 1;
    if (want === '+') {
      if (have === '' && !(glob && last)) return false;
      continue;
    }
    if (last && glob) return have.startsWith(want);
    if (want !== have) return false;
  }
  return true;
}

/** Higher wins. Exact beats glob; a later first wildcard, then longer, then fewer `+` wins (as OpenBao orders). */
function specificity(pattern: string): [number, number, number, number] {
  const glob = pattern.endsWith('*');
  const plus = pattern.indexOf('+');
  const firstWildcard = Math.min(plus < 0 ? Infinity : plus, glob ? pattern.length - 1 : Infinity);
  return [
    glob || plus >= 0 ? 0 : 1,
    firstWildcard === Infinity ? pattern.length : firstWildcard,
    pattern.length,
    -(pattern.split('+').length - 1),
  ];
}

function moreSpecific(a: string, b: string): boolean {
  const sa = specificity(a);
  const sb = specificity(b);
  for (let i = 0; i < sa.length; i++) if (sa[i] !== sb[i]) return sa[i] > sb[i];
  return a > b;
}

/**
 * Whether the union of `policies` grants `capability` on `path`. Rules with the same pattern merge; among
 * matching patterns the most specific decides; `deny` there wins.
 */
export function isAllowed(policies: readonly StoredPolicy[], path: string, capability: Capability): boolean {
  const merged = new Map<string, Set<Capability>>();
  for (const policy of policies) {
    for (const rule of policy.rules) {
      const set = merged.get(rule.pattern) ?? new Set<Capability>();
      for (const c of rule.capabilities) set.add(c);
      merged.set(rule.pattern, set);
    }
  }
  let best: string | undefined;
  for (const pattern of merged.keys()) {
    if (matches(pattern, path) && (best === undefined || moreSpecific(pattern, best))) best = pattern;
  }
  if (best === undefined) return false;
  const caps = merged.get(best)!;
  return !caps.has('deny') && caps.has(capability);
}

/**
 * Whether the policies grant anything at all on or below a mount, which is what `sys/internal/ui/mounts/<path>`
 * asks before it describes the mount (OpenBao's `hasMountAccess`, internal/vault/logical_system_helpers.go): a
 * capability other than deny on the mount path itself, or any rule under it (exact, glob or `+`) with one.
 */
export function hasMountAccess(policies: readonly StoredPolicy[], mountPath: string): boolean {
  const granted = CAPABILITIES.filter((c) => c !== 'deny');
  if (granted.some((capability) => isAllowed(policies, mountPath, capability))) return true;
  const mountSegments = mountPath.replace(/\/$/, '').split('/');
  for (const policy of policies) {
    for (const rule of policy.rules) {
      if (rule.capabilities.has('deny') || !granted.some((c) => rule.capabilities.has(c))) continue;
      const bare = rule.pattern.replace(/\*$/, '');
      if (bare.startsWith(mountPath)) return true;
      const segments = bare.split('/');
      if (
        rule.pattern.includes('+') &&
        segments.length > mountSegments.length &&
        mountSegments.every((segment, i) => segments[i] === '+' || segments[i] === segment)
      )
        return true;
    }
  }
  return false;
}

/** The policies a token names, as stored in its namespace (missing names are skipped, as OpenBao does). */
export function policiesOf(namespace: Namespace, names: readonly string[]): StoredPolicy[] {
  return names.map((name) => namespace.policies.get(name)).filter((p): p is StoredPolicy => p !== undefined);
}
