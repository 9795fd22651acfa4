/**
 * The generator's input: the provider schema in the JSON form `terraform providers schema -json` prints (and
 * `exportSchemaJson` returns), and the cloudtaser provider's own schema in that form.
 */
import { cloudtaserSchemas, PROVIDER_ADDRESS, PROVIDER_VERSION } from '../../../provider/cloudtaser.js';
import type { FunctionDefinition } from '../../../provider/framework/functions.js';
import { exportSchemaJson, type Schema } from '../../../provider/schema/schema.js';

/** One block as `terraform providers schema -json` shapes it (and `exportSchemaJson` returns it). */
export interface BlockJson {
  readonly description?: string;
  readonly attributes?: Readonly<Record<string, AttributeJson>>;
  readonly block_types?: Readonly<Record<string, BlockTypeJson>>;
}

export interface AttributeJson {
  readonly type: unknown;
  readonly description?: string;
  readonly required?: boolean;
  readonly optional?: boolean;
  readonly computed?: boolean;
  readonly sensitive?: boolean;
  readonly force_new?: boolean;
  readonly default?: unknown;
  readonly env?: readonly string[];
  readonly deprecated?: boolean;
  readonly deprecation_message?: string;
}

export interface BlockTypeJson {
  readonly nesting_mode: 'single' | 'list' | 'set';
  readonly block: BlockJson;
  readonly min_items?: number;
  readonly max_items?: number;
}

/** A function as `terraform providers schema -json` shapes it. */
export interface FunctionParameterJson {
  readonly name: string;
  readonly type: unknown;
  readonly description?: string;
}

export interface FunctionJson {
  readonly summary?: string;
  readonly description?: string;
  readonly return_type: unknown;
  readonly parameters?: readonly FunctionParameterJson[];
  readonly variadic_parameter?: FunctionParameterJson;
  readonly deprecation_message?: string;
}

export interface ProviderSchemaJson {
  /** e.g. registry.terraform.io/cloudtaser/cloudtaser */
  readonly address: string;
  readonly version: string;
  readonly provider: { readonly block: BlockJson };
  readonly resourceSchemas: Readonly<Record<string, { readonly block: BlockJson }>>;
  readonly dataSourceSchemas: Readonly<Record<string, { readonly block: BlockJson }>>;
  readonly functions?: Readonly<Record<string, FunctionJson>>;
}

/** The cloudtaser provider's schema in the exported JSON form. */
export function cloudtaserSchemaJson(): ProviderSchemaJson {
  const toJson = (schema: Schema) => exportSchemaJson(schema) as unknown as { block: BlockJson };
  return {
    address: PROVIDER_ADDRESS,
    version: PROVIDER_VERSION,
    provider: toJson(cloudtaserSchemas.provider),
    resourceSchemas: Object.fromEntries(
      Object.entries(cloudtaserSchemas.resources).map(([name, schema]) => [name, toJson(schema)]),
    ),
    dataSourceSchemas: Object.fromEntries(
      Object.entries(cloudtaserSchemas.dataSources).map(([name, schema]) => [name, toJson(schema)]),
    ),
    functions: Object.fromEntries(cloudtaserSchemas.functions.map((fn) => [fn.name, functionJson(fn)])),
  };
}

function functionJson(fn: FunctionDefinition): FunctionJson {
  const parameter = (p: FunctionDefinition['parameters'][number]) => ({
    name: p.name,
    type: p.type,
    description: p.description,
  });
  return {
    summary: fn.summary,
    description: fn.description,
    return_type: fn.returns,
    parameters: fn.parameters.map(parameter),
    ...(fn.variadic ? { variadic_parameter: parameter(fn.variadic) } : {}),
    ...(fn.deprecated ? { deprecation_message: fn.deprecated } : {}),
  };
}
