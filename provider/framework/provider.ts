/**
 * The framework: turns raw tfplugin6 RPCs into a small resource API (create/read/update/delete/import/
 * upgrade, data source read, provider configure). It owns decoding, the generic plan, private state,
 * cancellation and turning exceptions into diagnostics, so resource code stays about the domain.
 */
import { CloudtaserError, isCloudtaserError } from '../../runtime/core/errors.js';
import { decodeJsonValue } from '../cty/json.js';
import { decodeMsgpack, encodeMsgpack } from '../cty/msgpack.js';
import type { CtyType } from '../cty/types.js';
import { isWhollyKnown, Unknown, type Value } from '../cty/values.js';
import type { Block, InferValues, Schema } from '../schema/schema.js';
import { impliedType, toWireSchema } from '../schema/schema.js';
import { type ProviderLogger, silentProviderLogger } from '../wire/hclog.js';
import type { Msg } from '../wire/protobuf.js';
import type { ProviderRpcHandlers } from '../wire/serve.js';
import {
  type AttributePath,
  type Diagnostic,
  DiagnosticsError,
  diagnosticToWire,
  errorToDiagnostics,
  pathToWire,
} from './diagnostics.js';
import { callFunction, type FunctionDefinition, toWireFunction } from './functions.js';
import { planChange } from './plan.js';
import { PrivateState } from './private-state.js';

export interface OperationContext<Client> {
  readonly client: Client;
  /** Fired when Terraform calls StopProvider (Ctrl-C). */
  readonly signal: AbortSignal;
  readonly logger: ProviderLogger;
  /** Provider-private state of this resource instance; read and write. */
  readonly private: PrivateState;
}

/** Adds a warning Terraform shows beside the result of the call. */
export type Warn = (warning: Omit<Diagnostic, 'severity'>) => void;

export interface PlanCheckContext<B extends Block, Client> {
  readonly action: 'create' | 'update' | 'replace' | 'delete';
  readonly prior: InferValues<B> | null;
  /** Null when planning a delete. */
  readonly config: InferValues<B> | null;
  readonly client: Client | undefined;
  readonly signal: AbortSignal;
  readonly warn: Warn;
  /**
   * The private state Terraform sent with the plan: what the last apply, read or import stored (for the create
   * half of a replacement, the replaced object's). Read only: changes are not kept.
   */
  readonly private: PrivateState;
}

/** Context of `requiresReplace`: an existing object planned with a configuration (not a create, not a destroy). */
export interface ReplaceCheckContext<B extends Block, Client> {
  readonly prior: InferValues<B>;
  readonly config: InferValues<B>;
  /** Undefined when the provider configuration was not known at plan time. */
  readonly client: Client | undefined;
  /** What the refresh (read) stored. Read only. */
  readonly private: PrivateState;
  readonly warn: Warn;
}

export interface PlanContext<B extends Block, Client> {
  readonly action: 'create' | 'update' | 'replace';
  readonly prior: InferValues<B> | null;
  readonly config: InferValues<B>;
  /** Mutable: set values you can compute at plan time (pure functions of known config). */
  readonly planned: InferValues<B>;
  /** Undefined when the provider configuration was not known at plan time. */
  readonly client: Client | undefined;
}

export interface ResourceDefinition<B extends Block, Client> {
  readonly typeName: string;
  readonly schema: Schema<B>;
  /** Throw attributeError(...) or DiagnosticsError for invalid config. Values may be Unknown. */
  validate?(config: InferValues<B>): void;
  modifyPlan?(context: PlanContext<B, Client>): void;
  /**
   * Runs on every plan of a change, deletes included, before modifyPlan: throw to refuse the plan (what would
   * otherwise fail only at apply). May read remote state; values in config may be Unknown.
   */
  checkPlan?(context: PlanCheckContext<B, Client>): Promise<void> | void;
  /**
   * Sees every plan of this resource type, no-ops included, before checkPlan: what this command plans for the
   * objects it holds, which another address's checkPlan may need (a resource renamed, or declared twice).
   */
  observePlan?(context: {
    readonly action: 'none' | PlanCheckContext<B, Client>['action'];
    readonly prior: InferValues<B> | null;
    readonly client: Client | undefined;
  }): void;
  /**
   * Attributes that force a replacement although the configuration left them alone: a changed provider setting,
   * or the remote object's condition read() noted in private state. Terraform keeps only paths whose planned
   * value differs from the prior one, so name an attribute the replacement recomputes (computed ones turn
   * unknown) or modifyPlan sets anew. Runs before checkPlan, which then sees action 'replace'.
   */
  requiresReplace?(context: ReplaceCheckContext<B, Client>): readonly AttributePath[] | undefined;
  create(
    context: OperationContext<Client> & { planned: InferValues<B>; config: InferValues<B> },
  ): Promise<InferValues<B>>;
  /** Return null when the remote object is gone; Terraform then plans to create it again. */
  read(
    context: OperationContext<Client> & { state: InferValues<B>; warn: Warn },
  ): Promise<InferValues<B> | null>;
  /** Omit when every in-place change only lives in state. */
  update?(
    context: OperationContext<Client> & {
      prior: InferValues<B>;
      planned: InferValues<B>;
      config: InferValues<B>;
    },
  ): Promise<InferValues<B>>;
  delete(context: OperationContext<Client> & { state: InferValues<B> }): Promise<void>;
  /** Builds the state for `terraform import ADDR ID`; Terraform calls read right after. */
  importState?(context: OperationContext<Client> & { id: string }): Promise<Partial<InferValues<B>>>;
  /** Converts state stored under an older schema version (raw JSON attributes) to the current one. */
  upgradeState?(version: number, rawState: Record<string, unknown>): Partial<InferValues<B>>;
}

export interface DataSourceDefinition<B extends Block, Client> {
  readonly typeName: string;
  readonly schema: Schema<B>;
  validate?(config: InferValues<B>): void;
  read(
    context: Omit<OperationContext<Client>, 'private'> & {
      config: InferValues<B>;
      /** Adds a warning Terraform shows beside a successful read. */
      warn: Warn;
    },
  ): Promise<InferValues<B>>;
}

export interface ConfigureContext<B extends Block> {
  readonly config: InferValues<B>;
  readonly terraformVersion: string;
  readonly logger: ProviderLogger;
}

export interface ProviderDefinition<PB extends Block, Client> {
  /** e.g. registry.terraform.io/cloudtaser/cloudtaser */
  readonly address: string;
  /** Other addresses of the same provider, e.g. registry.opentofu.org/cloudtaser/cloudtaser (debug reattach). */
  readonly aliases?: readonly string[];
  readonly version: string;
  readonly schema: Schema<PB>;
  validate?(config: InferValues<PB>): void;
  configure(context: ConfigureContext<PB>): Promise<Client> | Client;
  // biome-ignore lint/suspicious/noExplicitAny: heterogeneous resource list
  readonly resources: readonly ResourceDefinition<any, Client>[];
  // biome-ignore lint/suspicious/noExplicitAny: heterogeneous data source list
  readonly dataSources: readonly DataSourceDefinition<any, Client>[];
  /** Provider-defined functions: pure, callable before any configuration. */
  readonly functions?: readonly FunctionDefinition[];
}

const PARTIAL_CREATE_BRAND = Symbol.for('cloudtaser.provider.PartialCreateError');

/**
 * Thrown by `create` when it failed after the remote object came into existence: Terraform records `state` as
 * tainted beside the error (`cause`), so the next apply replaces the object instead of creating a second one.
 * Branded, so `instanceof` holds across bundle chunks that carry their own copy of the class.
 */
export class PartialCreateError extends Error {
  readonly [PARTIAL_CREATE_BRAND] = true;
  constructor(
    /** What exists so far; unset attributes take their planned value. */
    readonly state: Record<string, unknown>,
    override readonly cause: unknown,
  ) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.name = 'PartialCreateError';
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && PARTIAL_CREATE_BRAND in value;
  }
}

/**
 * Typed helpers: `defineResource<Client>()({...})` infers the schema's value types for every handler.
 * (Curried because TypeScript cannot infer one type argument while the other is given.)
 */
export function defineResource<Client>() {
  return <B extends Block>(definition: ResourceDefinition<B, Client>): ResourceDefinition<B, Client> =>
    definition;
}

export function defineDataSource<Client>() {
  return <B extends Block>(definition: DataSourceDefinition<B, Client>): DataSourceDefinition<B, Client> =>
    definition;
}

export interface ProviderHandlerOptions {
  readonly logger?: ProviderLogger;
  /**
   * Hex-dump DynamicValues to the log at info (how test fixtures are captured). Provider config and blocks
   * with sensitive attributes are never dumped. @default env CLOUDTASER_PROVIDER_DUMP_VALUES === '1'
   */
  readonly dumpValues?: boolean;
}

type AnyValues = Record<string, Value>;

export function createProviderHandlers<PB extends Block, Client>(
  definition: ProviderDefinition<PB, Client>,
  options: ProviderHandlerOptions = {},
): ProviderRpcHandlers {
  const logger = options.logger ?? silentProviderLogger;
  const dump = options.dumpValues ?? process.env.CLOUDTASER_PROVIDER_DUMP_VALUES === '1';
  const stop = new AbortController();
  let client: Client | undefined;
  let configured = false;

  const resources = new Map(definition.resources.map((r) => [r.typeName, r]));
  const dataSources = new Map(definition.dataSources.map((d) => [d.typeName, d]));
  const functions = new Map((definition.functions ?? []).map((fn) => [fn.name, fn]));
  const wireFunctions = () =>
    Object.fromEntries([...functions].map(([name, fn]) => [name, toWireFunction(fn)]));
  const types = new Map<Block, CtyType>();
  const typeOf = (block: Block): CtyType => {
    let t = types.get(block);
    if (!t) {
      t = impliedType(block);
      types.set(block, t);
    }
    return t;
  };

  const decode = (rpc: string, field: string, dv: Msg | undefined, block: Block): Value => {
    if (!dv) return null;
    // Never dump values that can hold secrets (provider config, any block with a sensitive attribute).
    if (dump && !rpc.includes('Provider') && !hasSensitive(block)) {
      logger.info('dynamic_value', 'DynamicValue dump', {
        rpc,
        field,
        msgpack: dv.msgpack ? Buffer.from(dv.msgpack).toString('hex') : undefined,
        json: dv.json ? Buffer.from(dv.json).toString('utf8') : undefined,
      });
    }
    if (dv.msgpack && dv.msgpack.length > 0) return decodeMsgpack(dv.msgpack, typeOf(block));
    if (dv.json && dv.json.length > 0) return decodeJsonValue(dv.json, typeOf(block));
    return null;
  };
  const encode = (value: Value, block: Block): Msg => ({ msgpack: encodeMsgpack(value, typeOf(block)) });

  const findResource = (typeName: string) => {
    const r = resources.get(typeName);
    if (!r)
      throw new CloudtaserError('CT_PROVIDER_PROTOCOL', `this provider has no resource type ${typeName}`);
    return r;
  };
  const findDataSource = (typeName: string) => {
    const d = dataSources.get(typeName);
    if (!d) throw new CloudtaserError('CT_PROVIDER_PROTOCOL', `this provider has no data source ${typeName}`);
    return d;
  };
  const requireClient = (): Client => {
    if (!configured) {
      throw new CloudtaserError(
        'CT_PROVIDER_NOT_CONFIGURED',
        'Terraform called the provider before ConfigureProvider; this is a Terraform or provider bug',
      );
    }
    return client as Client;
  };
  const operation = (privateBytes?: Uint8Array): OperationContext<Client> => ({
    client: requireClient(),
    signal: stop.signal,
    logger,
    private: new PrivateState(privateBytes),
  });

  /** Runs `fn`; any exception becomes diagnostics on the response. */
  const guarded = async (
    rpc: string,
    context: string,
    fn: (diagnostics: Diagnostic[]) => Promise<Msg> | Msg,
  ): Promise<Msg> => {
    const diagnostics: Diagnostic[] = [];
    const started = performance.now();
    try {
      const response = await fn(diagnostics);
      return { ...response, diagnostics: diagnostics.map(diagnosticToWire) };
    } catch (err) {
      const out = errorToDiagnostics(err, context);
      logger.warn('rpc_error', `${rpc} failed`, {
        rpc,
        code: isCloudtaserError(err) ? err.code : undefined,
        summary: out[0]?.summary,
      });
      return { diagnostics: [...diagnostics, ...out].map(diagnosticToWire) };
    } finally {
      logger.debug('rpc', rpc, { rpc, ms: Math.round(performance.now() - started) });
    }
  };

  const runValidation = (
    block: Block,
    config: Value,
    custom: ((config: never) => void) | undefined,
    diagnostics: Diagnostic[],
  ) => {
    if (config === null || config instanceof Unknown) return;
    diagnostics.push(...validateAttributes(block, config as AnyValues, []));
    if (diagnostics.some((d) => d.severity === 'error')) return;
    try {
      custom?.(config as never);
    } catch (err) {
      diagnostics.push(...errorToDiagnostics(err, 'validating the configuration'));
    }
  };

  const fillComplete = (
    block: Block,
    values: Partial<AnyValues> | null | undefined,
    base?: AnyValues | null,
  ) => {
    if (values === null || values === undefined) return null;
    const out: AnyValues = Object.create(null);
    for (const name of Object.keys(typeObject(typeOf(block)))) {
      let v = Object.hasOwn(values, name) ? (values[name] as Value) : (base?.[name] ?? null);
      // Whatever is still unknown after apply has no value: null is the only consistent answer.
      if (v instanceof Unknown) v = null;
      out[name] = v === undefined ? null : v;
    }
    return out;
  };

  const schemaResponse = () => ({
    provider: toWireSchema(definition.schema),
    resourceSchemas: Object.fromEntries(
      definition.resources.map((r) => [r.typeName, toWireSchema(r.schema)]),
    ),
    dataSourceSchemas: Object.fromEntries(
      definition.dataSources.map((d) => [d.typeName, toWireSchema(d.schema)]),
    ),
    providerMeta: { version: 0, block: { version: 0, attributes: [], blockTypes: [], description: '' } },
    serverCapabilities: { planDestroy: true, getProviderSchemaOptional: true },
    functions: wireFunctions(),
  });

  return {
    GetMetadata: () => ({
      serverCapabilities: { planDestroy: true, getProviderSchemaOptional: true },
      resources: definition.resources.map((r) => ({ typeName: r.typeName })),
      dataSources: definition.dataSources.map((d) => ({ typeName: d.typeName })),
      functions: [...functions.keys()].map((name) => ({ name })),
      diagnostics: [],
    }),

    GetProviderSchema: () => guarded('GetProviderSchema', 'building the schema', () => schemaResponse()),

    ValidateProviderConfig: (req) =>
      guarded('ValidateProviderConfig', 'validating the provider configuration', (diagnostics) => {
        const config = decode('ValidateProviderConfig', 'config', req.config, definition.schema.block);
        runValidation(definition.schema.block, config, definition.validate?.bind(definition), diagnostics);
        return {};
      }),

    ConfigureProvider: (req) =>
      guarded('ConfigureProvider', 'configuring the provider', async () => {
        const config = decode(
          'ConfigureProvider',
          'config',
          req.config,
          definition.schema.block,
        ) as AnyValues;
        client = await definition.configure({
          config: config as InferValues<PB>,
          terraformVersion: req.terraformVersion ?? '',
          logger,
        });
        configured = true;
        logger.info('configured', 'provider configured', { terraform_version: req.terraformVersion });
        return {};
      }),

    ValidateResourceConfig: (req) =>
      guarded('ValidateResourceConfig', `validating ${req.typeName}`, (diagnostics) => {
        const resource = findResource(req.typeName);
        const config = decode('ValidateResourceConfig', 'config', req.config, resource.schema.block);
        runValidation(resource.schema.block, config, resource.validate?.bind(resource), diagnostics);
        return {};
      }),

    ValidateDataResourceConfig: (req) =>
      guarded('ValidateDataResourceConfig', `validating data.${req.typeName}`, (diagnostics) => {
        const dataSource = findDataSource(req.typeName);
        const config = decode('ValidateDataResourceConfig', 'config', req.config, dataSource.schema.block);
        runValidation(dataSource.schema.block, config, dataSource.validate?.bind(dataSource), diagnostics);
        return {};
      }),

    UpgradeResourceState: (req) =>
      guarded('UpgradeResourceState', `upgrading the state of ${req.typeName}`, () => {
        const resource = findResource(req.typeName);
        const block = resource.schema.block;
        const json: Uint8Array | undefined = req.rawState?.json;
        if (!json || json.length === 0) {
          throw new CloudtaserError(
            'CT_PROVIDER_PROTOCOL',
            `the state of ${req.typeName} is in the legacy flatmap format, which this provider never wrote; remove it with terraform state rm and import it again`,
          );
        }
        let upgraded: Value;
        const version = Number(req.version ?? 0);
        if (version > resource.schema.version) {
          throw new CloudtaserError(
            'CT_PROVIDER_PROTOCOL',
            `the state of ${req.typeName} was written by a newer provider (schema version ${version}, this provider knows ${resource.schema.version}); upgrade terraform-provider-cloudtaser`,
          );
        }
        if (version < resource.schema.version && resource.upgradeState) {
          const raw = JSON.parse(new TextDecoder().decode(json)) as Record<string, unknown>;
          upgraded = fillComplete(block, resource.upgradeState(version, raw) as AnyValues);
        } else {
          upgraded = decodeJsonValue(json, typeOf(block), { dropUnknownAttributes: true });
        }
        return { upgradedState: encode(upgraded, block) };
      }),

    ReadResource: (req) =>
      guarded('ReadResource', `reading ${req.typeName}`, async (diagnostics) => {
        const resource = findResource(req.typeName);
        const block = resource.schema.block;
        const state = decode('ReadResource', 'current_state', req.currentState, block);
        if (state === null) return { newState: encode(null, block), private: req.private };
        const ctx = operation(req.private);
        const next = await resource.read({
          ...ctx,
          state: state as never,
          warn: (warning) => diagnostics.push({ ...warning, severity: 'warning' }),
        });
        const newState = fillComplete(block, next as AnyValues | null, state as AnyValues);
        return { newState: encode(newState, block), private: newState ? ctx.private.toBytes() : undefined };
      }),

    PlanResourceChange: (req) =>
      guarded('PlanResourceChange', `planning ${req.typeName}`, async (diagnostics) => {
        const resource = findResource(req.typeName);
        const block = resource.schema.block;
        const prior = decode('PlanResourceChange', 'prior_state', req.priorState, block);
        const proposed = decode('PlanResourceChange', 'proposed_new_state', req.proposedNewState, block);
        const config = decode('PlanResourceChange', 'config', req.config, block);
        const priorPrivate = new PrivateState(req.priorPrivate);
        const warn: Warn = (warning) => diagnostics.push({ ...warning, severity: 'warning' });
        const replaceFor =
          prior !== null && proposed !== null && config !== null && resource.requiresReplace
            ? resource.requiresReplace({
                prior: prior as never,
                config: config as never,
                client: configured ? client : undefined,
                private: priorPrivate,
                warn,
              })
            : undefined;
        const result = planChange(block, { prior, proposed, config, replaceFor });
        resource.observePlan?.({
          action: result.action,
          prior: prior as never,
          client: configured ? client : undefined,
        });
        if (result.action !== 'none' && resource.checkPlan) {
          await resource.checkPlan({
            action: result.action,
            prior: prior as never,
            config: config as never,
            client: configured ? client : undefined,
            signal: stop.signal,
            warn,
            private: priorPrivate,
          });
        }
        if (result.action !== 'delete' && result.action !== 'none' && resource.modifyPlan) {
          resource.modifyPlan({
            action: result.action,
            prior: prior as never,
            config: config as never,
            planned: result.planned as never,
            client: configured ? client : undefined,
          });
        }
        return {
          plannedState: encode(result.planned, block),
          requiresReplace: result.requiresReplace.map(pathToWire),
          plannedPrivate: req.priorPrivate,
        };
      }),

    ApplyResourceChange: (req) =>
      guarded('ApplyResourceChange', `applying ${req.typeName}`, async (diagnostics) => {
        const resource = findResource(req.typeName);
        const block = resource.schema.block;
        const prior = decode('ApplyResourceChange', 'prior_state', req.priorState, block) as AnyValues | null;
        const planned = decode(
          'ApplyResourceChange',
          'planned_state',
          req.plannedState,
          block,
        ) as AnyValues | null;
        const config = decode('ApplyResourceChange', 'config', req.config, block) as AnyValues | null;
        const ctx = operation(req.plannedPrivate);
        if (planned === null) {
          if (prior !== null) await resource.delete({ ...ctx, state: prior as never });
          return { newState: encode(null, block) };
        }
        let result: AnyValues;
        if (prior === null) {
          try {
            result = (await resource.create({
              ...ctx,
              planned: planned as never,
              config: config as never,
            })) as AnyValues;
          } catch (err) {
            if (!(err instanceof PartialCreateError)) throw err;
            // Terraform keeps an object returned with an error as tainted: the next apply replaces it.
            diagnostics.push(...errorToDiagnostics(err.cause, `applying ${req.typeName}`));
            const partial = fillComplete(block, err.state as AnyValues, planned);
            return { newState: encode(partial, block), private: ctx.private.toBytes() };
          }
        } else if (resource.update) {
          result = (await resource.update({
            ...ctx,
            prior: prior as never,
            planned: planned as never,
            config: config as never,
          })) as AnyValues;
        } else {
          result = planned;
        }
        const newState = fillComplete(block, result, planned);
        return { newState: encode(newState, block), private: ctx.private.toBytes() };
      }),

    ImportResourceState: (req) =>
      guarded('ImportResourceState', `importing ${req.typeName}`, async () => {
        const resource = findResource(req.typeName);
        if (!resource.importState) {
          throw new CloudtaserError('CT_INVALID_ARGUMENT', `${req.typeName} cannot be imported`);
        }
        const ctx = operation();
        const imported = await resource.importState({ ...ctx, id: req.id ?? '' });
        const state = fillComplete(resource.schema.block, imported as AnyValues) as AnyValues;
        // An imported object has no config yet: attributes with a default take it, as a fresh create would.
        const attributes: Block['attributes'] = resource.schema.block.attributes;
        for (const [name, a] of Object.entries(attributes)) {
          if (state[name] === null && a.default !== undefined) state[name] = a.default as Value;
        }
        return {
          importedResources: [
            {
              typeName: req.typeName,
              state: encode(state, resource.schema.block),
              private: ctx.private.toBytes(),
            },
          ],
        };
      }),

    MoveResourceState: (req) =>
      guarded('MoveResourceState', 'moving state', () => {
        throw new CloudtaserError(
          'CT_INVALID_ARGUMENT',
          `moving ${req.sourceTypeName} into ${req.targetTypeName} is not supported; use terraform state rm and terraform import`,
        );
      }),

    ReadDataSource: (req) =>
      guarded('ReadDataSource', `reading data.${req.typeName}`, async (diagnostics) => {
        const dataSource = findDataSource(req.typeName);
        const block = dataSource.schema.block;
        const config = decode('ReadDataSource', 'config', req.config, block) as AnyValues;
        if (!isWhollyKnown(config)) {
          throw new CloudtaserError(
            'CT_PROVIDER_PROTOCOL',
            `data.${req.typeName} was read with unknown configuration; Terraform should have deferred it to apply`,
          );
        }
        const result = await dataSource.read({
          client: requireClient(),
          signal: stop.signal,
          logger,
          config: config as never,
          warn: (warning) => diagnostics.push({ ...warning, severity: 'warning' }),
        });
        return { state: encode(fillComplete(block, result as AnyValues, config), block) };
      }),

    GetFunctions: () => ({ functions: wireFunctions(), diagnostics: [] }),

    // Pure: no client, no configuration needed (Terraform may call it from `terraform console`).
    CallFunction: (req) => callFunction(functions, req.name ?? '', req.arguments ?? []),

    StopProvider: () => {
      logger.info(
        'stop_requested',
        'Terraform asked the provider to stop (Ctrl-C); cancelling in-flight calls',
      );
      stop.abort(new CloudtaserError('CT_CANCELLED', 'Terraform asked the provider to stop (Ctrl-C)'));
      return { error: '' };
    },
  };
}

function hasSensitive(block: Block): boolean {
  return (
    Object.values(block.attributes).some((a) => a.sensitive) ||
    Object.values(block.blocks ?? {}).some((b) => hasSensitive(b.block))
  );
}

function typeObject(type: CtyType): Record<string, CtyType> {
  return (type as readonly ['object', Record<string, CtyType>])[1];
}

/** Runs attribute validators on known values, recursing into nested blocks. */
export function validateAttributes(block: Block, config: AnyValues, path: AttributePath): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const [name, a] of Object.entries(block.attributes)) {
    const value = config[name];
    // Terraform (up to 1.14 at least) does not warn about a deprecated argument in configuration by itself;
    // the provider does, with the message, as the Go plugin framework does. Unknown values count as set.
    if (a.deprecated && value !== null && value !== undefined && (a.required || a.optional)) {
      out.push({
        severity: 'warning',
        summary: `Argument ${[...path, name].join('.')} is deprecated`,
        detail: a.deprecated,
        attribute: [...path, name],
      });
    }
    if (value === null || value === undefined || !isWhollyKnown(value)) continue;
    for (const validate of a.validate ?? []) {
      const problem = (validate as (v: unknown) => string | undefined)(value);
      if (problem) {
        out.push({
          severity: 'error',
          // The stable code, as every other diagnostic of this provider carries one.
          summary: `Invalid value for ${name} (CT_INVALID_ARGUMENT)`,
          detail: problem,
          attribute: [...path, name],
        });
        break;
      }
    }
  }
  for (const [name, nestedBlock] of Object.entries(block.blocks ?? {})) {
    const value = config[name];
    if (value === null || value === undefined || value instanceof Unknown) continue;
    if (nestedBlock.nesting === 'single')
      out.push(...validateAttributes(nestedBlock.block, value as AnyValues, [...path, name]));
    else if (Array.isArray(value)) {
      value.forEach((element, i) => {
        if (element && !(element instanceof Unknown)) {
          out.push(...validateAttributes(nestedBlock.block, element as AnyValues, [...path, name, i]));
        }
      });
    }
  }
  return out;
}

export { DiagnosticsError };
