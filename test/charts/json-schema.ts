/**
 * A small JSON-schema (draft-07) checker for the keywords our chart schemas use. Helm validates values with a
 * full implementation; this one exists because no helm binary or schema library is installed here. An unknown
 * keyword throws, so a schema can't silently use something this checker ignores.
 */

export interface SchemaProblem {
  /** Dotted path of the offending value, as `helm --set` spells it ("operator.broker.beacon.address"). */
  readonly path: string;
  readonly message: string;
}

type JsonSchema = Record<string, unknown>;

const ANNOTATION_KEYWORDS = new Set(['$schema', 'title', 'description', 'default', 'examples', '$comment']);
const CHECKED_KEYWORDS = new Set([
  'type',
  'properties',
  'required',
  'enum',
  'minLength',
  'maxLength',
  'pattern',
  'minimum',
  'maximum',
  'items',
  'additionalProperties',
  'uniqueItems',
]);

export function validateAgainstSchema(schema: JsonSchema, value: unknown): SchemaProblem[] {
  const problems: SchemaProblem[] = [];
  check(schema, value, [], problems);
  return problems;
}

/** Throws when a schema uses a keyword this checker does not implement. */
export function assertSupportedKeywords(schema: JsonSchema, where = '(root)'): void {
  for (const [keyword, inner] of Object.entries(schema)) {
    if (ANNOTATION_KEYWORDS.has(keyword)) continue;
    if (!CHECKED_KEYWORDS.has(keyword))
      throw new Error(`unsupported JSON-schema keyword '${keyword}' at ${where}`);
    if (keyword === 'properties') {
      for (const [name, child] of Object.entries(inner as Record<string, JsonSchema>)) {
        assertSupportedKeywords(child, `${where}.${name}`);
      }
    }
    if ((keyword === 'items' || keyword === 'additionalProperties') && typeof inner === 'object') {
      assertSupportedKeywords(inner as JsonSchema, `${where}[${keyword}]`);
    }
  }
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function matchesType(expected: string, actual: string): boolean {
  return expected === actual || (expected === 'number' && actual === 'integer');
}

function check(schema: JsonSchema, value: unknown, path: string[], problems: SchemaProblem[]): void {
  const at = path.join('.') || '(root)';
  const report = (message: string) => problems.push({ path: at, message: `${at}: ${message}` });
  const actual = typeOf(value);

  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string];
    if (!types.some((t) => matchesType(t, actual))) {
      report(`expected ${types.join(' or ')}, got ${actual}`);
      return;
    }
  }
  if (schema.enum !== undefined && !(schema.enum as unknown[]).some((e) => e === value)) {
    report(`must be one of ${(schema.enum as unknown[]).map((e) => JSON.stringify(e)).join(', ')}`);
  }
  if (typeof value === 'string') {
    if (typeof schema.minLength === 'number' && value.length < schema.minLength) {
      report(
        value.length === 0
          ? 'is required and must not be empty'
          : `must be at least ${schema.minLength} characters`,
      );
    }
    if (typeof schema.maxLength === 'number' && value.length > schema.maxLength) {
      report(`must be at most ${schema.maxLength} characters`);
    }
    if (
      typeof schema.pattern === 'string' &&
      value.length > 0 &&
      !new RegExp(schema.pattern, 'u').test(value)
    ) {
      report(`does not match ${schema.pattern}`);
    }
  }
  if (typeof value === 'number') {
    if (typeof schema.minimum === 'number' && value < schema.minimum) report(`must be >= ${schema.minimum}`);
    if (typeof schema.maximum === 'number' && value > schema.maximum) report(`must be <= ${schema.maximum}`);
  }
  if (Array.isArray(value)) {
    if (schema.items !== undefined) {
      value.forEach((item, index) => {
        check(schema.items as JsonSchema, item, [...path, String(index)], problems);
      });
    }
    if (schema.uniqueItems === true && new Set(value.map((v) => JSON.stringify(v))).size !== value.length) {
      report('must not repeat items');
    }
  }
  if (actual === 'object') {
    const object = value as Record<string, unknown>;
    for (const name of (schema.required as string[] | undefined) ?? []) {
      if (object[name] === undefined || object[name] === null) {
        problems.push({
          path: [...path, name].join('.'),
          message: `${[...path, name].join('.')}: is required`,
        });
      }
    }
    const properties = (schema.properties as Record<string, JsonSchema> | undefined) ?? {};
    for (const [name, child] of Object.entries(object)) {
      if (properties[name] !== undefined) check(properties[name], child, [...path, name], problems);
      else if (schema.additionalProperties === false) report(`unknown key '${name}'`);
      else if (typeof schema.additionalProperties === 'object') {
        check(schema.additionalProperties as JsonSchema, child, [...path, name], problems);
      }
    }
  }
}
