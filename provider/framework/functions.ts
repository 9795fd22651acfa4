/**
 * Provider-defined functions (`provider::NAME::FUNCTION(...)`, Terraform >= 1.8, OpenTofu >= 1.7). A function
 * is pure: Terraform may call it on an unconfigured provider, during validate, plan or `terraform console`,
 * so it never sees the provider client. Arguments arrive msgpack-encoded with the parameter's type; an
 * error goes back as a FunctionError that names the argument, which Terraform underlines in the config.
 */
import { CloudtaserError, type ErrorCode, isCloudtaserError } from '../../runtime/core/errors.js';
import { decodeMsgpack, encodeMsgpack } from '../cty/msgpack.js';
import type { CtyType } from '../cty/types.js';
import type { Value } from '../cty/values.js';

export interface FunctionParameter {
  readonly name: string;
  readonly type: CtyType;
  readonly description: string;
  /** Null arguments reach `run` instead of Terraform refusing them. @default false */
  readonly allowNull?: boolean;
}

export interface FunctionDefinition {
  /** Called as provider::<provider>::<name>. */
  readonly name: string;
  /** One line, shown by editors and the docs index. */
  readonly summary: string;
  /** Markdown. */
  readonly description: string;
  readonly parameters: readonly FunctionParameter[];
  /** Optional trailing parameter taking zero or more arguments of one type. */
  readonly variadic?: FunctionParameter;
  readonly returns: CtyType;
  readonly deprecated?: string;
  /** Examples for the docs: an expression and what it returns. */
  readonly examples?: readonly { readonly expression: string; readonly result: string }[];
  /** Throw FunctionArgumentError for bad input. Arguments are wholly known and, unless allowNull, not null. */
  run(args: readonly Value[]): Value;
}

/** A bad argument: Terraform shows `text` and points at argument `index` (0-based) in the call. */
export class FunctionArgumentError extends CloudtaserError {
  constructor(
    readonly index: number,
    code: ErrorCode,
    message: string,
  ) {
    super(code, message, { details: { argument: index } });
  }
}

const textEncoder = new TextEncoder();

function wireParameter(parameter: FunctionParameter): Record<string, unknown> {
  return {
    name: parameter.name,
    type: textEncoder.encode(JSON.stringify(parameter.type)),
    allowNullValue: parameter.allowNull === true,
    allowUnknownValues: false,
    description: parameter.description,
    descriptionKind: 1,
  };
}

/** GetProviderSchema / GetFunctions form of one function. */
export function toWireFunction(definition: FunctionDefinition): Record<string, unknown> {
  return {
    parameters: definition.parameters.map(wireParameter),
    variadicParameter: definition.variadic ? wireParameter(definition.variadic) : undefined,
    return: { type: textEncoder.encode(JSON.stringify(definition.returns)) },
    summary: definition.summary,
    description: definition.description,
    descriptionKind: 1,
    deprecationMessage: definition.deprecated,
  };
}

/**
 * CallFunction: decodes each argument with its parameter's type (arguments past the fixed parameters use the
 * variadic parameter's type, one DynamicValue each), runs the function and encodes the result. Never throws:
 * every failure becomes the response's FunctionError.
 */
export function callFunction(
  functions: ReadonlyMap<string, FunctionDefinition>,
  name: string,
  encodedArguments: readonly { msgpack?: Uint8Array; json?: Uint8Array }[],
): Record<string, unknown> {
  const definition = functions.get(name);
  if (!definition) {
    return { error: { text: `this provider has no function named ${JSON.stringify(name.slice(0, 80))}` } };
  }
  const fixed = definition.parameters.length;
  if (encodedArguments.length < fixed || (!definition.variadic && encodedArguments.length > fixed)) {
    return {
      error: {
        text: `${definition.name} takes ${fixed}${definition.variadic ? ' or more' : ''} argument(s), got ${encodedArguments.length}`,
      },
    };
  }
  const args: Value[] = [];
  for (const [index, encoded] of encodedArguments.entries()) {
    const parameter = index < fixed ? definition.parameters[index] : definition.variadic!;
    try {
      const bytes = encoded.msgpack;
      if (!bytes || bytes.length === 0) throw new Error('argument is not msgpack-encoded');
      args.push(decodeMsgpack(bytes, parameter.type));
    } catch (err) {
      return {
        error: {
          text: `could not decode argument ${parameter.name}: ${(err as Error).message}`,
          functionArgument: index,
        },
      };
    }
  }
  try {
    return { result: { msgpack: encodeMsgpack(definition.run(args), definition.returns) } };
  } catch (err) {
    const known = isCloudtaserError(err) ? err : undefined;
    const index = known?.details.argument;
    return {
      error: {
        text: known ? `${known.message} (${known.code})` : `unexpected error: ${(err as Error).message}`,
        functionArgument: typeof index === 'number' ? index : undefined,
      },
    };
  }
}
