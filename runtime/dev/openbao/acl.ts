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
  const path = pattern.replace(/^\/+/, '');
  // policy.go parsePath: `+*` is refused; a `*` anywhere but the end is an ordinary character.
  if (path.includes('+*')) {
    throw badRequest(`failed to parse policy: path "${path}": invalid use of wildcards ('+*' is forbidden)`);
  }
  return { pattern: path, capabilities: new Set(list as Capability[]) };
}

/** policy.go parsePath: a path has segment wildcards when a whole-segment-leading `+` appears. */
function hasSegmentWildcards(pattern: string): boolean {
  return pattern === '+' || pattern.includes('/+') || pattern.startsWith('+/');
}

/**
 * The policies of one token compiled as OpenBao's NewACL (internal/vault/policy/acl.go) does: rules with the
 * same path merge (a `deny` anywhere leaves only `deny`); exact rules, prefix rules (`foo/*`) and rules with
 * `+` segments are kept apart, because they are matched differently.
 */
interface CompiledAcl {
  readonly exact: Map<string, Set<Capability>>;
  /** Keyed by the prefix without its `*`. */
  readonly prefix: Map<string, Set<Capability>>;
  /** Keyed by the full pattern (a trailing `*` kept). */
  readonly segment: Map<string, Set<Capability>>;
}

function compile(policies: readonly StoredPolicy[]): CompiledAcl {
  const acl: CompiledAcl = { exact: new Map(), prefix: new Map(), segment: new Map() };
  for (const policy of policies) {
    for (const rule of policy.rules) {
      let table: Map<string, Set<Capability>>;
      let key = rule.pattern;
      if (hasSegmentWildcards(key)) table = acl.segment;
      else if (key.endsWith('*')) {
        table = acl.prefix;
        key = key.slice(0, -1);
      } else table = acl.exact;
      const existing = table.get(key);
      if (!existing) table.set(key, new Set(rule.capabilities));
      else if (existing.has('deny')) continue;
      else if (rule.capabilities.has('deny')) table.set(key, new Set<Capability>(['deny']));
      else for (const c of rule.capabilities) existing.add(c);
    }
  }
  return acl;
}

interface Candidate {
  readonly firstWildcard: number;
  readonly isPrefix: boolean;
  readonly wildcards: number;
  readonly path: string;
  readonly capabilities: Set<Capability>;
}

/** acl.go CheckAllowedFromNonExactPaths: the longest prefix rule and every matching `+` rule compete. */
function nonExact(acl: CompiledAcl, path: string): Set<Capability> | undefined {
  const candidates: Candidate[] = [];
  let longest: string | undefined;
  for (const prefix of acl.prefix.keys()) {
    if (path.startsWith(prefix) && (longest === undefined || prefix.length > longest.length))
      longest = prefix;
  }
  if (longest !== undefined) {
    const capabilities = acl.prefix.get(longest)!;
    if (acl.segment.size === 0) return capabilities;
    candidates.push({
      firstWildcard: longest.length,
      isPrefix: true,
      wildcards: 0,
      path: longest,
      capabilities,
    });
  }
  const parts = path.split('/');
  for (const [full, capabilities] of acl.segment) {
    const isPrefix = full.endsWith('*');
    const body = isPrefix ? full.slice(0, -1) : full;
    const segments = body.split('/');
    if (parts.length < segments.length || (!isPrefix && segments.length !== parts.length)) continue;
    let wildcards = 0;
    const matched = segments.every((segment, i) => {
      if (segment === '+') {
        wildcards++;
        return true;
      }
      if (segment === parts[i]) return true;
      return isPrefix && i === segments.length - 1 && parts[i].startsWith(segment);
    });
    if (matched)
      candidates.push({ firstWildcard: full.indexOf('+'), isPrefix, wildcards, path: body, capabilities });
  }
  if (candidates.length === 0) return undefined;
  // The same priority as upstream: a later first wildcard, then not-a-prefix, then fewer `+`, then longer,
  // then (arbitrarily) the lexicographically greater path wins.
  candidates.sort(
    (a, b) =>
      a.firstWildcard - b.firstWildcard ||
      Number(b.isPrefix) - Number(a.isPrefix) ||
      b.wildcards - a.wildcards ||
      a.path.length - b.path.length ||
      (a.path < b.path ? -1 : a.path > b.path ? 1 : 0),
  );
  return candidates[candidates.length - 1].capabilities;
}

/**
 * The capabilities that decide `path` for `operation` (acl.go AllowOperation), or undefined when none match. A
 * LIST/SCAN of `foo/bar/` tries the exact rule without the slash, then the non-exact rules on `foo/bar` before
 * those on `foo/bar/` (upstream: "List operations need to check without the trailing slash first, because there
 * could be other rules with trailing wildcards that will match the path"), so `foo/+` covers `LIST foo/bar/`.
 */
function lookup(acl: CompiledAcl, path: string, operation: Capability): Set<Capability> | undefined {
  const listing = operation === 'list' || operation === 'scan';
  const exact = acl.exact.get(path) ?? (listing ? acl.exact.get(path.replace(/\/$/, '')) : undefined);
  if (exact) return exact;
  if (listing && path.endsWith('/')) {
    const withoutSlash = nonExact(acl, path.slice(0, -1));
    if (withoutSlash) return withoutSlash;
  }
  return nonExact(acl, path);
}

export interface AclDecision {
  readonly allowed: boolean;
  /** The deciding rule grants `sudo`: required on root-protected paths (e.g. `sys/auth/*`). */
  readonly sudo: boolean;
}

/**
 * Whether the union of `policies` grants `operation` on `path` (a path relative to the policies' namespace, as
 * OpenBao prefixes both with that namespace). `deny` on the deciding rule refuses everything.
 */
export function checkAcl(
  policies: readonly StoredPolicy[],
  path: string,
  operation: Capability,
): AclDecision {
  const capabilities = lookup(compile(policies), path, operation);
  if (!capabilities || capabilities.has('deny')) return { allowed: false, sudo: false };
  return { allowed: capabilities.has(operation), sudo: capabilities.has('sudo') };
}

/**
 * What `sys/capabilities-self` answers for one path (internal/vault/acl.go `Capabilities`, sorted by
 * internal/vault/capabilities.go `Capabilities`): the deciding rule's capabilities, or `deny` when it denies or no
 * rule matches. Upstream asks AllowOperation with a LIST, so a path ending in `/` is decided as a LIST is.
 */
export function capabilitiesOf(policies: readonly StoredPolicy[], path: string): string[] {
  const capabilities = lookup(compile(policies), path, 'list');
  if (!capabilities || capabilities.size === 0 || capabilities.has('deny')) return ['deny'];
  return [...capabilities].sort();
}

export function isAllowed(policies: readonly StoredPolicy[], path: string, capability: Capability): boolean {
  return checkAcl(policies, path, capability).allowed;
}

/**
 * Whether a mount-relative path is root-protected (PathsSpecial.Root of the backend; router.go RootPath): a
 * pattern ending in `*` is a prefix, anything else must match exactly.
 */
export function isRootPath(rootPaths: readonly string[] | undefined, mountPath: string): boolean {
  return (rootPaths ?? []).some((pattern) =>
    pattern.endsWith('*') ? mountPath.startsWith(pattern.slice(0, -1)) : mountPath === pattern,
  );
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
