/**
 * The schema DSL. A resource, data source or provider is declared once as a plain object; that one
 * declaration drives validation, the msgpack/JSON codecs (through `impliedType`), GetProviderSchema
 * (`toWireSchema`), the registry docs and the CDKTF bindings (`exportSchemaJson`).
 */
import type { CtyType } from '../cty/types.js';
import type { BigNumber, Value } from '../cty/values.js';

/** Returns a problem statement ("must be a UUID") or undefined when the value is fine. Only sees known values. */
export type Validator<T> = (value: T) => string | undefined;

export interface AttributeOptions<T> {
  /** Shown in `terraform providers schema`, the registry docs and CDKTF bindings. Required on purpose. */
  readonly description: string;
  readonly required?: boolean;
  readonly optional?: boolean;
  readonly computed?: boolean;
  readonly sensitive?: boolean;
  /** Changing the value replaces the object (RequiresReplace). */
  readonly forceNew?: boolean;
  /** Value planned when the configuration leaves an optional+computed attribute unset. */
  readonly default?: T;
  readonly validate?: readonly Validator<T>[];
  /** Environment variables read (in order) when the attribute is unset; documentation and provider config only. */
  readonly env?: readonly string[];
  /**
   * Deprecates the attribute with this message: Terraform marks it deprecated (protocol `deprecated`) and
   * clients that speak protocol 6.10 show the message itself (`deprecation_message`).
   */
  readonly deprecated?: string;
}

/**
 * `R` records `required` in the type, so InferValues can give a required attribute a value type without `null`
 * (Terraform refuses a configuration that leaves one unset).
 */
export interface Attribute<T = unknown, R extends boolean = boolean> extends AttributeOptions<T> {
  readonly kind: 'attribute';
  readonly type: CtyType;
  readonly required?: R;
}

/** The attribute `options` declare: required in the type exactly when `required: true` is written. */
type AttributeOf<T, O extends AttributeOptions<T>> = Attribute<
  T,
  O extends { required: true } ? true : false
>;

export type NestingMode = 'single' | 'list' | 'set';

export interface NestedBlock<B extends Block = Block, N extends NestingMode = NestingMode> {
  readonly kind: 'block';
  readonly nesting: N;
  readonly block: B;
  readonly minItems?: number;
  readonly maxItems?: number;
}

export interface Block {
  readonly description: string;
  /** Deprecates the whole block (resource, data source, provider or nested block) with this message. */
  readonly deprecated?: string;
  // biome-ignore lint/suspicious/noExplicitAny: attribute value types differ per attribute
  readonly attributes: { readonly [name: string]: Attribute<any> };
  readonly blocks?: { readonly [name: string]: NestedBlock };
}

export interface Schema<B extends Block = Block> {
  readonly version: number;
  readonly block: B;
}

function attribute<T, const O extends AttributeOptions<T>>(type: CtyType, options: O): AttributeOf<T, O> {
  const flags = [options.required, options.optional || options.computed].filter(Boolean).length;
  if (flags !== 1) {
    throw new TypeError(
      `attribute "${options.description.slice(0, 40)}...": set exactly one of 'required' or 'optional'/'computed'`,
    );
  }
  if (!options.description.trim()) throw new TypeError('every attribute needs a description');
  if (options.deprecated !== undefined && !options.deprecated.trim()) {
    throw new TypeError('a deprecation needs a message that says what to use instead');
  }
  return { kind: 'attribute', type, ...options } as AttributeOf<T, O>;
}

export const attr = {
  string: <const O extends AttributeOptions<string>>(options: O) => attribute<string, O>('string', options),
  bool: <const O extends AttributeOptions<boolean>>(options: O) => attribute<boolean, O>('bool', options),
  number: <const O extends AttributeOptions<number | BigNumber>>(options: O) =>
    attribute<number | BigNumber, O>('number', options),
  stringList: <const O extends AttributeOptions<readonly string[]>>(options: O) =>
    attribute<readonly string[], O>(['list', 'string'], options),
  stringMap: <const O extends AttributeOptions<Readonly<Record<string, string>>>>(options: O) =>
    attribute<Readonly<Record<string, string>>, O>(['map', 'string'], options),
  /** Any type; T is only for the TypeScript view. */
  ofType: <T = Value, const O extends AttributeOptions<T> = AttributeOptions<T>>(type: CtyType, options: O) =>
    attribute<T, O>(type, options),
};

export const nested = {
  single: <B extends Block>(
    block: B,
    options: { minItems?: number; maxItems?: number } = {},
  ): NestedBlock<B, 'single'> => ({
    kind: 'block',
    nesting: 'single',
    block,
    ...options,
  }),
  list: <B extends Block>(
    block: B,
    options: { minItems?: number; maxItems?: number } = {},
  ): NestedBlock<B, 'list'> => ({
    kind: 'block',
    nesting: 'list',
    block,
    ...options,
  }),
};

// ------------------------------------------------------------------ TypeScript view of values

type AttributeValue<A> =
  A extends Attribute<infer T, true> ? T : A extends Attribute<infer T> ? T | null : never;
type BlockValue<N> =
  N extends NestedBlock<infer B, infer M>
    ? M extends 'single'
      ? InferValues<B> | null
      : InferValues<B>[]
    : never;

/**
 * The object a handler sees for a block: every attribute present; an optional or computed one `null` when unset,
 * a required one never (Terraform refuses a configuration without it). At plan time any field may also be an
 * `Unknown`; handlers that run at apply time see known config values.
 */
export type InferValues<B extends Block> = {
  -readonly [K in keyof B['attributes']]: AttributeValue<B['attributes'][K]>;
} & {
  -readonly [K in keyof NonNullable<B['blocks']>]: BlockValue<NonNullable<B['blocks']>[K]>;
};

// ------------------------------------------------------------------ derived forms

/** The object type Terraform uses for values of this block (attributes and nested blocks). */
export function impliedType(block: Block): CtyType {
  const attributes: Record<string, CtyType> = {};
  for (const [name, a] of Object.entries(block.attributes)) attributes[name] = a.type;
  for (const [name, b] of Object.entries(block.blocks ?? {})) {
    const inner = impliedType(b.block);
    attributes[name] = b.nesting === 'single' ? inner : [b.nesting, inner];
  }
  return ['object', attributes];
}

/** GetProviderSchema form (field names as in our protobuf tables). */
export function toWireSchema(schema: Schema): Record<string, unknown> {
  return { version: schema.version, block: wireBlock(schema.block, schema.version) };
}

const NESTING_WIRE = { single: 1, list: 2, set: 3 } as const;

function wireBlock(block: Block, version: number): Record<string, unknown> {
  return {
    version,
    description: block.description,
    descriptionKind: 1,
    deprecated: block.deprecated !== undefined,
    deprecationMessage: block.deprecated,
    attributes: Object.entries(block.attributes)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, a]) => ({
        name,
        type: new TextEncoder().encode(JSON.stringify(a.type)),
        description: a.description,
        descriptionKind: 1,
        required: a.required === true,
        optional: a.optional === true,
        computed: a.computed === true,
        sensitive: a.sensitive === true,
        deprecated: a.deprecated !== undefined,
        deprecationMessage: a.deprecated,
      })),
    blockTypes: Object.entries(block.blocks ?? {})
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, b]) => ({
        typeName: name,
        block: wireBlock(b.block, 0),
        nesting: NESTING_WIRE[b.nesting],
        minItems: b.minItems ?? 0,
        maxItems: b.maxItems ?? (b.nesting === 'single' ? 0 : 0),
      })),
  };
}

/**
 * A JSON-serialisable copy of a schema (types, flags, descriptions, defaults), shaped like
 * `terraform providers schema -json`, so other modules (CDKTF bindings) can generate code from it.
 */
export function exportSchemaJson(schema: Schema): Record<string, unknown> {
  const blockJson = (block: Block): Record<string, unknown> => ({
    description: block.description,
    description_kind: 'markdown',
    ...(block.deprecated !== undefined ? { deprecated: true, deprecation_message: block.deprecated } : {}),
    attributes: Object.fromEntries(
      Object.entries(block.attributes).map(([name, a]) => [
        name,
        {
          type: a.type,
          description: a.description,
          description_kind: 'markdown',
          ...(a.required ? { required: true } : {}),
          ...(a.optional ? { optional: true } : {}),
          ...(a.computed ? { computed: true } : {}),
          ...(a.sensitive ? { sensitive: true } : {}),
          ...(a.forceNew ? { force_new: true } : {}),
          ...(a.default !== undefined ? { default: a.default } : {}),
          ...(a.env ? { env: a.env } : {}),
          ...(a.deprecated !== undefined ? { deprecated: true, deprecation_message: a.deprecated } : {}),
        },
      ]),
    ),
    block_types: Object.fromEntries(
      Object.entries(block.blocks ?? {}).map(([name, b]) => [
        name,
        {
          nesting_mode: b.nesting,
          block: blockJson(b.block),
          min_items: b.minItems ?? 0,
          max_items: b.maxItems ?? 0,
        },
      ]),
    ),
  });
  return { version: schema.version, block: blockJson(schema.block) };
}
