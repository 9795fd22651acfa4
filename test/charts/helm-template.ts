/**
 * `helm template` for the tests, since no helm binary can be had here: Go's text/template language (actions,
 * pipelines, variables, if/else if/with/range/define, whitespace trimming, comments) with the Helm and Sprig
 * functions our charts use, evaluated as Helm evaluates them:
 *   - a missing map key reads as nil and prints as "" (Helm's `<no value>` clean-up), but a field of nil is an
 *     error ("nil pointer evaluating interface {}.x"), as text/template reports it;
 *   - `if`/`with` truth is Go's: false, 0, nil, "" and empty lists and maps are false;
 *   - `default`, `required`, `toYaml`, `nindent`, `trunc`... follow Sprig and Helm's engine (engine/funcs.go).
 * An unknown function is a parse error, so a template can never pass here by using something this file does not
 * implement. The output is split into documents and parsed as YAML.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { issueSelfSignedSync } from '../../runtime/pki/index.js';

// ---- lexing and parsing -------------------------------------------------------------------------------------

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'action'; pipe: Pipeline }
  | { kind: 'if' | 'with'; pipe: Pipeline; list: Node[]; else?: Node[] }
  | { kind: 'range'; pipe: Pipeline; list: Node[]; else?: Node[] }
  | { kind: 'template'; name: string; pipe?: Pipeline };

interface Pipeline {
  readonly decl?: { vars: string[]; assign: boolean };
  readonly cmds: Operand[][];
}

type Operand =
  | { kind: 'field'; base: 'dot' | string; path: string[] }
  | { kind: 'literal'; value: unknown }
  | { kind: 'fn'; name: string }
  | { kind: 'sub'; pipe: Pipeline; path: string[] };

interface Token {
  readonly kind: 'text' | 'action';
  readonly text: string;
}

function lex(source: string, file: string): Token[] {
  const tokens: Token[] = [];
  let pos = 0;
  let trimNext = false;
  while (pos < source.length) {
    const open = source.indexOf('{{', pos);
    let text = open === -1 ? source.slice(pos) : source.slice(pos, open);
    if (trimNext) text = text.replace(/^\s+/, '');
    trimNext = false;
    if (open === -1) {
      tokens.push({ kind: 'text', text });
      break;
    }
    const trimLeft = source.startsWith('{{- ', open) || source.startsWith('{{-\n', open);
    if (trimLeft) text = text.replace(/\s+$/, '');
    tokens.push({ kind: 'text', text });
    const start = open + (trimLeft ? 3 : 2);
    // A comment: `{{/* ... */}}` or `{{- /* ... */ -}}` (after `{{-` comes the space that marks the trim).
    const commentStart = trimLeft ? start + 1 : start;
    if (source.startsWith('/*', commentStart)) {
      const end = source.indexOf('*/', commentStart);
      if (end === -1) throw new Error(`${file}: unclosed comment`);
      let after = end + 2;
      if (source.startsWith(' -}}', after)) {
        trimNext = true;
        after += 2;
      }
      if (!source.startsWith('}}', after)) throw new Error(`${file}: comment not closed by }}`);
      pos = after + 2;
      continue;
    }
    const close = findClose(source, start, file);
    let body = source.slice(start, close);
    if (/\s-$/.test(body)) {
      trimNext = true;
      body = body.slice(0, -2);
    }
    tokens.push({ kind: 'action', text: body.trim() });
    pos = close + 2;
  }
  return tokens;
}

/** The `}}` that ends an action, skipping quoted strings. */
function findClose(source: string, from: number, file: string): number {
  let i = from;
  while (i < source.length) {
    const c = source[i];
    if (c === '"') {
      i++;
      while (i < source.length && source[i] !== '"') i += source[i] === '\\' ? 2 : 1;
    } else if (c === '`') {
      i = source.indexOf('`', i + 1);
    } else if (source.startsWith('}}', i)) {
      return i;
    }
    i++;
  }
  throw new Error(`${file}: unclosed action`);
}

type Lexeme = {
  t: 'str' | 'num' | 'ident' | 'var' | 'field' | 'dot' | 'pipe' | 'lp' | 'rp' | 'decl' | 'assign' | 'comma';
  v: string;
  /** `.a.b` / `$x.a` / `(...).a`: the field names, read as one operand. */
  path?: string[];
  /** No whitespace before it. */
  glued?: boolean;
};

function lexAction(text: string, where: string): Lexeme[] {
  const out: Lexeme[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      out.push({ t: 'str', v: JSON.parse(text.slice(i, j + 1)) });
      i = j + 1;
    } else if (c === '`') {
      const j = text.indexOf('`', i + 1);
      out.push({ t: 'str', v: text.slice(i + 1, j) });
      i = j + 1;
    } else if (c === '|') {
      out.push({ t: 'pipe', v: '|' });
      i++;
    } else if (c === '(') {
      out.push({ t: 'lp', v: '(' });
      i++;
    } else if (c === ')') {
      out.push({ t: 'rp', v: ')' });
      i++;
    } else if (c === ',') {
      out.push({ t: 'comma', v: ',' });
      i++;
    } else if (text.startsWith(':=', i)) {
      out.push({ t: 'decl', v: ':=' });
      i += 2;
    } else if (c === '=') {
      out.push({ t: 'assign', v: '=' });
      i++;
    } else if (c === '$') {
      const m = /^(\$[A-Za-z0-9_]*)((?:\.[A-Za-z_][A-Za-z0-9_]*)*)/.exec(text.slice(i))!;
      out.push({ t: 'var', v: m[1], path: m[2].split('.').slice(1) });
      i += m[0].length;
    } else if (c === '.') {
      const m = /^(?:\.[A-Za-z_][A-Za-z0-9_]*)+/.exec(text.slice(i));
      if (m) {
        out.push({
          t: 'field',
          v: m[0],
          path: m[0].split('.').slice(1),
          glued: i > 0 && text[i - 1] === ')',
        });
        i += m[0].length;
      } else {
        out.push({ t: 'dot', v: '.' });
        i++;
      }
    } else if (/[-0-9]/.test(c)) {
      const m = /^-?[0-9]+(\.[0-9]+)?/.exec(text.slice(i))![0];
      out.push({ t: 'num', v: m });
      i += m.length;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i))![0];
      out.push({ t: 'ident', v: m });
      i += m.length;
    } else {
      throw new Error(`${where}: unexpected ${JSON.stringify(c)} in {{ ${text} }}`);
    }
  }
  return out;
}

function parsePipeline(lexemes: Lexeme[], where: string): Pipeline {
  let pos = 0;
  let decl: Pipeline['decl'];
  const declAt = lexemes.findIndex((l) => l.t === 'decl' || l.t === 'assign');
  if (declAt > 0 && lexemes.slice(0, declAt).every((l) => l.t === 'var' || l.t === 'comma')) {
    decl = {
      vars: lexemes
        .slice(0, declAt)
        .filter((l) => l.t === 'var')
        .map((l) => l.v),
      assign: lexemes[declAt].t === 'assign',
    };
    pos = declAt + 1;
  }
  const parse = (): { cmds: Operand[][]; end: number } => {
    const cmds: Operand[][] = [[]];
    while (pos < lexemes.length) {
      const l = lexemes[pos];
      if (l.t === 'rp') break;
      pos++;
      if (l.t === 'pipe') {
        cmds.push([]);
        continue;
      }
      const cmd = cmds[cmds.length - 1];
      if (l.t === 'str') cmd.push({ kind: 'literal', value: l.v });
      else if (l.t === 'num') cmd.push({ kind: 'literal', value: Number(l.v) });
      else if (l.t === 'dot') cmd.push({ kind: 'field', base: 'dot', path: [] });
      else if (l.t === 'field') cmd.push({ kind: 'field', base: 'dot', path: l.path! });
      else if (l.t === 'var') {
        cmd.push({ kind: 'field', base: l.v, path: l.path! });
      } else if (l.t === 'ident') {
        if (l.v === 'true' || l.v === 'false') cmd.push({ kind: 'literal', value: l.v === 'true' });
        else if (l.v === 'nil') cmd.push({ kind: 'literal', value: null });
        else {
          if (!Object.hasOwn(FUNCTIONS, l.v)) throw new Error(`${where}: function "${l.v}" not defined`);
          cmd.push({ kind: 'fn', name: l.v });
        }
      } else if (l.t === 'lp') {
        const inner = parse();
        if (lexemes[pos]?.t !== 'rp') throw new Error(`${where}: unclosed (`);
        pos++;
        // `(...).a.b` only when the field is glued to the parenthesis.
        const glued = lexemes[pos]?.t === 'field' && lexemes[pos].v.startsWith('.') && lexemes[pos].glued;
        const path = glued ? lexemes[pos++].path! : [];
        cmd.push({ kind: 'sub', pipe: { cmds: inner.cmds }, path });
      } else {
        throw new Error(`${where}: unexpected ${l.v}`);
      }
    }
    return { cmds, end: pos };
  };
  const { cmds } = parse();
  if (pos !== lexemes.length) throw new Error(`${where}: unexpected )`);
  if (cmds.some((c) => c.length === 0)) throw new Error(`${where}: empty command in pipeline`);
  return { decl, cmds };
}

interface Parsed {
  readonly root: Node[];
  readonly defines: Map<string, Node[]>;
}

function parseTemplate(source: string, file: string): Parsed {
  const tokens = lex(source, file);
  const defines = new Map<string, Node[]>();
  let pos = 0;
  const pipe = (text: string) => parsePipeline(lexAction(text, file), `${file}: {{ ${text} }}`);
  // Returns the list and the keyword that ended it (end / else ...).
  const list = (): { nodes: Node[]; ender?: string } => {
    const nodes: Node[] = [];
    while (pos < tokens.length) {
      const token = tokens[pos++];
      if (token.kind === 'text') {
        if (token.text) nodes.push({ kind: 'text', text: token.text });
        continue;
      }
      const text = token.text;
      const keyword = /^(if|with|range|define|end|else|template|block)\b\s*(.*)$/s.exec(text);
      if (!keyword) {
        nodes.push({ kind: 'action', pipe: pipe(text) });
        continue;
      }
      const [, word, rest] = keyword;
      if (word === 'end' || word === 'else') return { nodes, ender: text };
      if (word === 'define') {
        const name = JSON.parse(rest.trim());
        const body = list();
        if (body.ender !== 'end') throw new Error(`${file}: define "${name}" not closed by end`);
        defines.set(name, body.nodes);
        continue;
      }
      if (word === 'template') {
        const m = /^"([^"]+)"\s*(.*)$/.exec(rest)!;
        nodes.push({ kind: 'template', name: m[1], pipe: m[2] ? pipe(m[2]) : undefined });
        continue;
      }
      nodes.push(branch(word as 'if' | 'with' | 'range', rest));
    }
    return { nodes };
  };
  const branch = (word: 'if' | 'with' | 'range', rest: string): Node => {
    const body = list();
    let elseList: Node[] | undefined;
    if (body.ender === undefined) throw new Error(`${file}: ${word} not closed`);
    if (body.ender !== 'end') {
      const chained = /^else\s+(if|with)\s+(.*)$/s.exec(body.ender);
      if (chained) {
        elseList = [branch(chained[1] as 'if' | 'with', chained[2])];
      } else {
        const tail = list();
        if (tail.ender !== 'end') throw new Error(`${file}: ${word} ... else not closed by end`);
        elseList = tail.nodes;
      }
    }
    return { kind: word, pipe: pipe(rest), list: body.nodes, else: elseList };
  };
  const top = list();
  if (top.ender !== undefined) throw new Error(`${file}: unexpected {{ ${top.ender} }}`);
  return { root: top.nodes, defines };
}

// ---- evaluation ---------------------------------------------------------------------------------------------

class RenderError extends Error {}

/** Go template scopes: `:=` declares in the current block, `=` assigns where the variable was declared. */
interface Scope {
  readonly dot: unknown;
  readonly vars: Map<string, unknown>;
  readonly parent?: Scope;
}

export interface Engine {
  readonly defines: Map<string, Node[]>;
}

function truthy(value: unknown): boolean {
  if (value === null || value === undefined || value === false || value === 0 || value === '') return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object') return Object.keys(value as object).length > 0;
  return true;
}

function goString(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `[${value.map(goString).join(' ')}]`;
  return `map[${Object.keys(value as object)
    .sort()
    .map((k) => `${k}:${goString((value as Record<string, unknown>)[k])}`)
    .join(' ')}]`;
}

function field(value: unknown, path: readonly string[], where: string): unknown {
  let cursor = value;
  for (const key of path) {
    if (cursor === null || cursor === undefined)
      throw new RenderError(`${where}: nil pointer evaluating interface {}.${key}`);
    if (typeof cursor !== 'object' || Array.isArray(cursor))
      throw new RenderError(`${where}: can't evaluate field ${key} in type ${typeof cursor}`);
    cursor = (cursor as Record<string, unknown>)[key];
  }
  return cursor;
}

type Fn = (engine: Engine, scope: Scope, args: unknown[]) => unknown;

const FUNCTIONS: Record<string, Fn> = {
  include: (engine, _scope, [name, data]) => renderDefine(engine, String(name), data),
  required: (_e, _s, [message, value]) => {
    if (value === null || value === undefined || value === '') throw new RenderError(String(message));
    return value;
  },
  fail: (_e, _s, [message]) => {
    throw new RenderError(String(message));
  },
  default: (_e, _s, args) => {
    const [fallback, value] = args;
    return args.length < 2 || !truthy(value) ? fallback : value;
  },
  trunc: (_e, _s, [n, s]) => {
    const text = goString(s);
    const count = Number(n);
    return count >= 0 ? text.slice(0, count) : text.slice(count);
  },
  trimSuffix: (_e, _s, [suffix, s]) => {
    const text = goString(s);
    return text.endsWith(String(suffix)) ? text.slice(0, text.length - String(suffix).length) : text;
  },
  trimPrefix: (_e, _s, [prefix, s]) => {
    const text = goString(s);
    return text.startsWith(String(prefix)) ? text.slice(String(prefix).length) : text;
  },
  // Sprig's trim is Go's strings.TrimSpace.
  trim: (_e, _s, [s]) => goString(s).trim(),
  replace: (_e, _s, [from, to, s]) => goString(s).split(String(from)).join(String(to)),
  contains: (_e, _s, [sub, s]) => goString(s).includes(String(sub)),
  hasPrefix: (_e, _s, [prefix, s]) => goString(s).startsWith(String(prefix)),
  printf: (_e, _s, [format, ...args]) => sprintf(String(format), args),
  print: (_e, _s, args) => args.map(goString).join(''),
  quote: (_e, _s, args) => args.map((a) => JSON.stringify(goString(a))).join(' '),
  squote: (_e, _s, args) => args.map((a) => `'${goString(a)}'`).join(' '),
  upper: (_e, _s, [s]) => goString(s).toUpperCase(),
  lower: (_e, _s, [s]) => goString(s).toLowerCase(),
  int: (_e, _s, [v]) => Math.trunc(Number(v ?? 0)) || 0,
  // Helm's toYaml: sigs.k8s.io/yaml (keys sorted), trailing newline trimmed.
  toYaml: (_e, _s, [v]) =>
    v === null || v === undefined
      ? 'null'
      : stringify(v, { sortMapEntries: true, lineWidth: 0 }).replace(/\n$/, ''),
  toJson: (_e, _s, [v]) => JSON.stringify(v ?? null),
  nindent: (_e, _s, [n, s]) =>
    `\n${goString(s)
      .split('\n')
      .map((line) => ' '.repeat(Number(n)) + line)
      .join('\n')}`,
  indent: (_e, _s, [n, s]) =>
    goString(s)
      .split('\n')
      .map((line) => ' '.repeat(Number(n)) + line)
      .join('\n'),
  join: (_e, _s, [sep, list]) =>
    Array.isArray(list) ? list.map(goString).join(String(sep)) : goString(list),
  list: (_e, _s, args) => [...args],
  dict: (_e, _s, args) => {
    const out: Record<string, unknown> = {};
    for (let i = 0; i < args.length; i += 2) out[goString(args[i])] = args[i + 1];
    return out;
  },
  hasKey: (_e, _s, [map, key]) =>
    typeof map === 'object' && map !== null && Object.hasOwn(map as object, String(key)),
  empty: (_e, _s, [v]) => !truthy(v),
  not: (_e, _s, [v]) => !truthy(v),
  and: (_e, _s, args) => args.find((a) => !truthy(a)) ?? args[args.length - 1],
  or: (_e, _s, args) => args.find((a) => truthy(a)) ?? args[args.length - 1],
  eq: (_e, _s, [a, ...rest]) => rest.some((b) => a === b),
  ne: (_e, _s, [a, b]) => a !== b,
  lt: (_e, _s, [a, b]) => compare(a, b) < 0,
  le: (_e, _s, [a, b]) => compare(a, b) <= 0,
  gt: (_e, _s, [a, b]) => compare(a, b) > 0,
  ge: (_e, _s, [a, b]) => compare(a, b) >= 0,
  len: (_e, _s, [v]) =>
    Array.isArray(v) || typeof v === 'string' ? v.length : Object.keys((v as object) ?? {}).length,
  ternary: (_e, _s, [whenTrue, whenFalse, test]) => (truthy(test) ? whenTrue : whenFalse),
  b64enc: (_e, _s, [s]) => Buffer.from(goString(s)).toString('base64'),
  sha256sum: (_e, _s, [s]) => createHash('sha256').update(goString(s)).digest('hex'),
  add: (_e, _s, args) => args.reduce<number>((sum, v) => sum + Number(v), 0),
  sub: (_e, _s, [a, b]) => Number(a) - Number(b),
  first: (_e, _s, [list]) => (Array.isArray(list) ? list[0] : undefined),
  // Sprig's concat (lists joined in order) and uniq (first occurrence kept).
  concat: (_e, _s, lists) => lists.flatMap((list) => (Array.isArray(list) ? list : [])),
  uniq: (_e, _s, [list]) => (Array.isArray(list) ? [...new Set(list)] : []),
  index: (_e, _s, [collection, ...keys]) => {
    let cursor = collection;
    for (const key of keys) cursor = (cursor as Record<string, unknown> | undefined)?.[String(key)];
    return cursor;
  },
  // `helm template` and `--dry-run` have no cluster: lookup answers an empty map (engine/lookup_func.go).
  lookup: () => ({}),
  // Sprig's genSelfSignedCert(cn, ips, dnsNames, days): a PEM certificate and RSA key.
  genSelfSignedCert: (_e, _s, [cn, _ips, dnsNames, days]) => {
    const issued = issueSelfSignedSync({
      commonName: goString(cn),
      dnsNames: Array.isArray(dnsNames) ? dnsNames.map(goString) : [],
      days: Number(days),
      extKeyUsage: ['serverAuth'],
    });
    return { Cert: issued.certPem, Key: issued.keyPem };
  },
};

// A key named like an Object.prototype method cannot sit in the literal above with this type.
const toStringFn: Fn = (_e, _s, [s]) => goString(s);
Object.defineProperty(FUNCTIONS, 'toString', { value: toStringFn, enumerable: true });

function compare(a: unknown, b: unknown): number {
  if (typeof a !== typeof b)
    throw new RenderError(`incompatible types for comparison: ${typeof a} and ${typeof b}`);
  return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0;
}

function sprintf(format: string, args: unknown[]): string {
  let index = 0;
  return format.replace(/%([-+# 0]*\d*)([sdvq%])/g, (_m, _flags, verb: string) => {
    if (verb === '%') return '%';
    const arg = args[index++];
    if (verb === 'q') return JSON.stringify(goString(arg));
    if (verb === 'd') return String(Math.trunc(Number(arg)));
    return goString(arg);
  });
}

function evalOperand(engine: Engine, scope: Scope, op: Operand, where: string): unknown {
  switch (op.kind) {
    case 'literal':
      return op.value;
    case 'field': {
      const base = op.base === 'dot' ? scope.dot : lookupVar(scope, op.base, where);
      return field(base, op.path, where);
    }
    case 'sub':
      return field(evalPipeline(engine, scope, op.pipe, where), op.path, where);
    case 'fn':
      return FUNCTIONS[op.name](engine, scope, []);
  }
}

function lookupVar(scope: Scope, name: string, where: string): unknown {
  for (let s: Scope | undefined = scope; s; s = s.parent) if (s.vars.has(name)) return s.vars.get(name);
  throw new RenderError(`${where}: undefined variable "${name}"`);
}

function evalPipeline(engine: Engine, scope: Scope, pipe: Pipeline, where: string): unknown {
  let previous: unknown;
  pipe.cmds.forEach((cmd, index) => {
    const [head, ...rest] = cmd;
    const args = rest.map((op) => evalOperand(engine, scope, op, where));
    if (index > 0) args.push(previous);
    if (head.kind === 'fn') previous = FUNCTIONS[head.name](engine, scope, args);
    else if (args.length > 0) throw new RenderError(`${where}: can't give arguments to a non-function`);
    else previous = evalOperand(engine, scope, head, where);
  });
  if (pipe.decl) {
    for (const name of pipe.decl.vars) {
      if (!pipe.decl.assign) {
        scope.vars.set(name, previous);
        continue;
      }
      let owner: Scope | undefined = scope;
      while (owner && !owner.vars.has(name)) owner = owner.parent;
      if (!owner) throw new RenderError(`${where}: undefined variable "${name}"`);
      owner.vars.set(name, previous);
    }
    return '';
  }
  return previous;
}

function renderNodes(engine: Engine, nodes: Node[], scope: Scope, where: string): string {
  let out = '';
  for (const node of nodes) {
    switch (node.kind) {
      case 'text':
        out += node.text;
        break;
      case 'action': {
        const value = evalPipeline(engine, scope, node.pipe, where);
        if (!node.pipe.decl) out += goString(value);
        break;
      }
      case 'if': {
        const test = evalPipeline(engine, scope, node.pipe, where);
        if (truthy(test)) out += renderNodes(engine, node.list, child(scope), where);
        else if (node.else) out += renderNodes(engine, node.else, child(scope), where);
        break;
      }
      case 'with': {
        const inner = child(scope);
        const value = evalPipeline(engine, inner, node.pipe, where);
        if (truthy(value)) out += renderNodes(engine, node.list, { ...inner, dot: value }, where);
        else if (node.else) out += renderNodes(engine, node.else, child(scope), where);
        break;
      }
      case 'range': {
        const decl = node.pipe.decl;
        const value = evalPipeline(engine, scope, { cmds: node.pipe.cmds }, where);
        const entries: Array<[unknown, unknown]> = Array.isArray(value)
          ? value.map((v, i) => [i, v])
          : value && typeof value === 'object'
            ? Object.keys(value)
                .sort()
                .map((k) => [k, (value as Record<string, unknown>)[k]])
            : [];
        if (entries.length === 0) {
          if (node.else) out += renderNodes(engine, node.else, child(scope), where);
          break;
        }
        for (const [key, item] of entries) {
          const inner = child(scope);
          if (decl?.vars.length === 1) inner.vars.set(decl.vars[0], item);
          if (decl?.vars.length === 2) {
            inner.vars.set(decl.vars[0], key);
            inner.vars.set(decl.vars[1], item);
          }
          out += renderNodes(engine, node.list, { ...inner, dot: item }, where);
        }
        break;
      }
      case 'template': {
        const data = node.pipe ? evalPipeline(engine, scope, node.pipe, where) : undefined;
        out += renderDefine(engine, node.name, data);
        break;
      }
    }
  }
  return out;
}

function child(scope: Scope): Scope {
  return { dot: scope.dot, vars: new Map(), parent: scope };
}

function renderDefine(engine: Engine, name: string, data: unknown): string {
  const body = engine.defines.get(name);
  if (!body) throw new RenderError(`no template "${name}" associated with template`);
  return renderNodes(engine, body, { dot: data, vars: new Map([['$', data]]) }, `define "${name}"`);
}

// ---- Helm ---------------------------------------------------------------------------------------------------

export interface ReleaseOptions {
  readonly name: string;
  readonly namespace: string;
  /** Values merged over the chart's values.yaml (maps merge, the rest replaces), as `-f` does. */
  readonly values?: Record<string, unknown>;
  readonly isUpgrade?: boolean;
}

export interface RenderedChart {
  /** Every object of every manifest, in file order. */
  readonly objects: Array<
    Record<string, unknown> & { kind: string; metadata: { name: string; namespace?: string } }
  >;
  /** Rendered NOTES.txt. */
  readonly notes: string;
  readonly values: Record<string, unknown>;
}

export function renderChart(chartDir: string, release: ReleaseOptions): RenderedChart {
  const chartYaml = parse(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as Record<string, unknown>;
  const defaults = parse(readFileSync(join(chartDir, 'values.yaml'), 'utf8')) as Record<string, unknown>;
  const values = mergeValues(defaults, release.values ?? {}) as Record<string, unknown>;
  const files = readdirSync(join(chartDir, 'templates')).sort();
  const engine: Engine = { defines: new Map() };
  const parsed = new Map<string, Node[]>();
  for (const file of files) {
    const result = parseTemplate(readFileSync(join(chartDir, 'templates', file), 'utf8'), file);
    for (const [name, body] of result.defines) engine.defines.set(name, body);
    parsed.set(file, result.root);
  }
  const capitalised = Object.fromEntries(
    Object.entries(chartYaml).map(([k, v]) => [k[0].toUpperCase() + k.slice(1), v]),
  );
  const root = {
    Values: values,
    Release: {
      Name: release.name,
      Namespace: release.namespace,
      Service: 'Helm',
      IsInstall: !release.isUpgrade,
      IsUpgrade: release.isUpgrade === true,
      Revision: 1,
    },
    Chart: capitalised,
    Capabilities: { KubeVersion: { Version: 'v1.31.0', Major: '1', Minor: '31' } },
  };
  const objects: RenderedChart['objects'] = [];
  let notes = '';
  for (const [file, nodes] of parsed) {
    if (file.startsWith('_')) continue;
    const text = renderNodes(engine, nodes, { dot: root, vars: new Map([['$', root]]) }, file);
    if (file === 'NOTES.txt') {
      notes = text;
      continue;
    }
    for (const doc of parseAllDocuments(text)) {
      if (doc.errors.length > 0)
        throw new Error(`${file} renders invalid YAML: ${doc.errors[0].message}\n${text}`);
      const object = doc.toJSON();
      if (object === null || object === undefined) continue;
      objects.push(object);
    }
  }
  return { objects, notes, values };
}

/** Helm's value merge: maps merge key by key; a null in the override deletes the key; anything else replaces. */
export function mergeValues(base: unknown, override: unknown): unknown {
  const isMap = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isMap(base) && isMap(override)) {
    const out: Record<string, unknown> = { ...base };
    for (const [key, value] of Object.entries(override)) {
      if (value === null) delete out[key];
      else out[key] = mergeValues(base[key], value);
    }
    return out;
  }
  return override === undefined ? base : override;
}

export { RenderError };
