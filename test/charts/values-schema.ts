/**
 * Checks chart values against a chart's values.schema.json with ajv (JSON Schema draft-07, as Helm validates
 * them with its own full implementation). Problems come back with the dotted path `helm --set` uses.
 */
import { Ajv, type ErrorObject } from 'ajv';

export interface SchemaProblem {
  /** Dotted path of the offending value ("operator.broker.beacon.address"), or of the unknown key. */
  readonly path: string;
  readonly message: string;
}

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, verbose: true });
const compiled = new WeakMap<object, ReturnType<Ajv['compile']>>();

/** Compiles once per schema object; ajv's strict mode refuses unknown keywords and contradictions. */
export function compileSchema(schema: Record<string, unknown>) {
  let validate = compiled.get(schema);
  if (!validate) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  return validate;
}

export function validateValues(schema: Record<string, unknown>, values: unknown): SchemaProblem[] {
  const validate = compileSchema(schema);
  if (validate(values)) return [];
  // An empty required string fails minLength; its pattern error would only repeat that. An if/then failure is
  // reported twice (the `then` keyword's own error, and "must match then schema"): keep the first.
  return (validate.errors ?? [])
    .filter((e) => !(e.keyword === 'pattern' && e.data === '') && e.keyword !== 'if')
    .map(toProblem);
}

function toProblem(error: ErrorObject): SchemaProblem {
  const at = error.instancePath
    .split('/')
    .slice(1)
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (error.keyword === 'required') at.push(String(error.params.missingProperty));
  if (error.keyword === 'additionalProperties') at.push(String(error.params.additionalProperty));
  const path = at.join('.') || '(root)';
  const message =
    error.keyword === 'minLength' && error.params.limit === 1
      ? 'is required and must not be empty'
      : error.keyword === 'additionalProperties'
        ? 'is not a value of this chart (misspelt?)'
        : (error.message ?? error.keyword);
  return { path, message: `${path}: ${message}` };
}
