/**
 * Our own message tables for Terraform plugin protocol 6 up to 6.10 (package `tfplugin6`) and go-plugin's
 * controller/stdio services (package `plugin`). Only the fields this provider reads or writes are listed;
 * unknown fields are skipped on decode, which protobuf allows.
 */
import { f, type MessageSpec, message } from './protobuf.js';

export const Empty = message('Empty', []);

export const DynamicValue: MessageSpec = message('DynamicValue', [
  f('msgpack', 1, 'bytes'),
  f('json', 2, 'bytes'),
]);

export const AttributePathStep: MessageSpec = message('AttributePath.Step', [
  f('attributeName', 1, 'string'),
  f('elementKeyString', 2, 'string'),
  f('elementKeyInt', 3, 'int64'),
]);

export const AttributePath: MessageSpec = message('AttributePath', [
  f('steps', 1, 'message', { repeated: true, message: () => AttributePathStep }),
]);

export const Diagnostic: MessageSpec = message('Diagnostic', [
  f('severity', 1, 'enum'),
  f('summary', 2, 'string'),
  f('detail', 3, 'string'),
  f('attribute', 4, 'message', { message: () => AttributePath }),
]);

export const DiagnosticSeverity = { ERROR: 1, WARNING: 2 } as const;

const diagnostics = (no: number) =>
  f('diagnostics', no, 'message', { repeated: true, message: () => Diagnostic });
const dynamic = (name: string, no: number) => f(name, no, 'message', { message: () => DynamicValue });

export const RawState = message('RawState', [f('json', 1, 'bytes')]);

export const SchemaAttribute: MessageSpec = message('Schema.Attribute', [
  f('name', 1, 'string'),
  f('type', 2, 'bytes'),
  f('description', 3, 'string'),
  f('required', 4, 'bool'),
  f('optional', 5, 'bool'),
  f('computed', 6, 'bool'),
  f('sensitive', 7, 'bool'),
  f('descriptionKind', 8, 'enum'),
  f('deprecated', 9, 'bool'),
  f('writeOnly', 11, 'bool'),
  // Protocol 6.10 (Terraform >= 1.15 and OpenTofu's matching release); older clients skip unknown fields.
  f('deprecationMessage', 12, 'string'),
]);

export const SchemaBlock: MessageSpec = message('Schema.Block', [
  f('version', 1, 'int64'),
  f('attributes', 2, 'message', { repeated: true, message: () => SchemaAttribute }),
  f('blockTypes', 3, 'message', { repeated: true, message: () => SchemaNestedBlock }),
  f('description', 4, 'string'),
  f('descriptionKind', 5, 'enum'),
  f('deprecated', 6, 'bool'),
  // Protocol 6.10, as Schema.Attribute field 12.
  f('deprecationMessage', 7, 'string'),
]);

export const SchemaNestedBlock: MessageSpec = message('Schema.NestedBlock', [
  f('typeName', 1, 'string'),
  f('block', 2, 'message', { message: () => SchemaBlock }),
  f('nesting', 3, 'enum'),
  f('minItems', 4, 'int64'),
  f('maxItems', 5, 'int64'),
]);

export const NestingMode = { SINGLE: 1, LIST: 2, SET: 3, MAP: 4, GROUP: 5 } as const;
export const StringKind = { PLAIN: 0, MARKDOWN: 1 } as const;

export const Schema: MessageSpec = message('Schema', [
  f('version', 1, 'int64'),
  f('block', 2, 'message', { message: () => SchemaBlock }),
]);

export const ServerCapabilities = message('ServerCapabilities', [
  f('planDestroy', 1, 'bool'),
  f('getProviderSchemaOptional', 2, 'bool'),
  f('moveResourceState', 3, 'bool'),
]);

export const ClientCapabilities = message('ClientCapabilities', [
  f('deferralAllowed', 1, 'bool'),
  f('writeOnlyAttributesAllowed', 2, 'bool'),
]);

const clientCapabilities = (no: number) =>
  f('clientCapabilities', no, 'message', { message: () => ClientCapabilities });
const typeName = f('typeName', 1, 'string');
const typeNameMeta = message('TypeNameMetadata', [typeName]);

// Provider-defined functions (protocol 6.5, Terraform >= 1.8, OpenTofu >= 1.7).
export const FunctionParameter: MessageSpec = message('Function.Parameter', [
  f('name', 1, 'string'),
  f('type', 2, 'bytes'),
  f('allowNullValue', 3, 'bool'),
  f('allowUnknownValues', 4, 'bool'),
  f('description', 5, 'string'),
  f('descriptionKind', 6, 'enum'),
]);

export const FunctionReturn: MessageSpec = message('Function.Return', [f('type', 1, 'bytes')]);

export const ProviderFunction: MessageSpec = message('Function', [
  f('parameters', 1, 'message', { repeated: true, message: () => FunctionParameter }),
  f('variadicParameter', 2, 'message', { message: () => FunctionParameter }),
  f('return', 3, 'message', { message: () => FunctionReturn }),
  f('summary', 4, 'string'),
  f('description', 5, 'string'),
  f('descriptionKind', 6, 'enum'),
  f('deprecationMessage', 7, 'string'),
]);

/** `text` is shown to the user; `functionArgument` (0-based) makes Terraform point at that argument. */
export const FunctionError: MessageSpec = message('FunctionError', [
  f('text', 1, 'string'),
  f('functionArgument', 2, 'int64'),
]);

const functionMeta = message('FunctionMetadata', [f('name', 1, 'string')]);

export const GetMetadataRequest = Empty;
export const GetMetadataResponse = message('GetMetadata.Response', [
  f('serverCapabilities', 1, 'message', { message: () => ServerCapabilities }),
  diagnostics(2),
  f('dataSources', 3, 'message', { repeated: true, message: () => typeNameMeta }),
  f('resources', 4, 'message', { repeated: true, message: () => typeNameMeta }),
  f('functions', 5, 'message', { repeated: true, message: () => functionMeta }),
]);

export const GetProviderSchemaRequest = Empty;
export const GetProviderSchemaResponse = message('GetProviderSchema.Response', [
  f('provider', 1, 'message', { message: () => Schema }),
  f('resourceSchemas', 2, 'map', { message: () => Schema }),
  f('dataSourceSchemas', 3, 'map', { message: () => Schema }),
  diagnostics(4),
  f('providerMeta', 5, 'message', { message: () => Schema }),
  f('serverCapabilities', 6, 'message', { message: () => ServerCapabilities }),
  f('functions', 7, 'map', { message: () => ProviderFunction }),
]);

export const ValidateProviderConfigRequest = message('ValidateProviderConfig.Request', [
  dynamic('config', 1),
]);
export const ValidateProviderConfigResponse = message('ValidateProviderConfig.Response', [diagnostics(2)]);

export const UpgradeResourceStateRequest = message('UpgradeResourceState.Request', [
  typeName,
  f('version', 2, 'int64'),
  f('rawState', 3, 'message', { message: () => RawState }),
]);
export const UpgradeResourceStateResponse = message('UpgradeResourceState.Response', [
  dynamic('upgradedState', 1),
  diagnostics(2),
]);

export const ValidateResourceConfigRequest = message('ValidateResourceConfig.Request', [
  typeName,
  dynamic('config', 2),
  clientCapabilities(3),
]);
export const ValidateResourceConfigResponse = message('ValidateResourceConfig.Response', [diagnostics(1)]);

export const ValidateDataResourceConfigRequest = message('ValidateDataResourceConfig.Request', [
  typeName,
  dynamic('config', 2),
]);
export const ValidateDataResourceConfigResponse = message('ValidateDataResourceConfig.Response', [
  diagnostics(1),
]);

export const ConfigureProviderRequest = message('ConfigureProvider.Request', [
  f('terraformVersion', 1, 'string'),
  dynamic('config', 2),
  clientCapabilities(3),
]);
export const ConfigureProviderResponse = message('ConfigureProvider.Response', [diagnostics(1)]);

export const ReadResourceRequest = message('ReadResource.Request', [
  typeName,
  dynamic('currentState', 2),
  f('private', 3, 'bytes'),
  dynamic('providerMeta', 4),
  clientCapabilities(5),
]);
export const ReadResourceResponse = message('ReadResource.Response', [
  dynamic('newState', 1),
  diagnostics(2),
  f('private', 3, 'bytes'),
]);

export const PlanResourceChangeRequest = message('PlanResourceChange.Request', [
  typeName,
  dynamic('priorState', 2),
  dynamic('proposedNewState', 3),
  dynamic('config', 4),
  f('priorPrivate', 5, 'bytes'),
  dynamic('providerMeta', 6),
  clientCapabilities(7),
]);
export const PlanResourceChangeResponse = message('PlanResourceChange.Response', [
  dynamic('plannedState', 1),
  f('requiresReplace', 2, 'message', { repeated: true, message: () => AttributePath }),
  f('plannedPrivate', 3, 'bytes'),
  diagnostics(4),
]);

export const ApplyResourceChangeRequest = message('ApplyResourceChange.Request', [
  typeName,
  dynamic('priorState', 2),
  dynamic('plannedState', 3),
  dynamic('config', 4),
  f('plannedPrivate', 5, 'bytes'),
  dynamic('providerMeta', 6),
]);
export const ApplyResourceChangeResponse = message('ApplyResourceChange.Response', [
  dynamic('newState', 1),
  f('private', 2, 'bytes'),
  diagnostics(3),
]);

export const ImportResourceStateRequest = message('ImportResourceState.Request', [
  typeName,
  f('id', 2, 'string'),
  clientCapabilities(3),
]);
export const ImportedResource = message('ImportResourceState.ImportedResource', [
  typeName,
  dynamic('state', 2),
  f('private', 3, 'bytes'),
]);
export const ImportResourceStateResponse = message('ImportResourceState.Response', [
  f('importedResources', 1, 'message', { repeated: true, message: () => ImportedResource }),
  diagnostics(2),
]);

export const MoveResourceStateRequest = message('MoveResourceState.Request', [
  f('sourceProviderAddress', 1, 'string'),
  f('sourceTypeName', 2, 'string'),
  f('sourceSchemaVersion', 3, 'int64'),
  f('sourceState', 4, 'message', { message: () => RawState }),
  f('targetTypeName', 5, 'string'),
  f('sourcePrivate', 6, 'bytes'),
]);
export const MoveResourceStateResponse = message('MoveResourceState.Response', [
  dynamic('targetState', 1),
  diagnostics(2),
  f('targetPrivate', 3, 'bytes'),
]);

export const ReadDataSourceRequest = message('ReadDataSource.Request', [
  typeName,
  dynamic('config', 2),
  dynamic('providerMeta', 3),
  clientCapabilities(4),
]);
export const ReadDataSourceResponse = message('ReadDataSource.Response', [
  dynamic('state', 1),
  diagnostics(2),
]);

export const GetFunctionsResponse = message('GetFunctions.Response', [
  f('functions', 1, 'map', { message: () => ProviderFunction }),
  diagnostics(2),
]);

export const CallFunctionRequest = message('CallFunction.Request', [
  f('name', 1, 'string'),
  f('arguments', 2, 'message', { repeated: true, message: () => DynamicValue }),
]);
export const CallFunctionResponse = message('CallFunction.Response', [
  dynamic('result', 1),
  f('error', 2, 'message', { message: () => FunctionError }),
]);

export const StopProviderResponse = message('StopProvider.Response', [f('error', 1, 'string')]);

// go-plugin's own services
export const StdioData = message('plugin.StdioData', [f('channel', 1, 'enum'), f('data', 2, 'bytes')]);
export const HealthCheckRequest = message('grpc.health.v1.HealthCheckRequest', [f('service', 1, 'string')]);
export const HealthCheckResponse = message('grpc.health.v1.HealthCheckResponse', [f('status', 1, 'enum')]);
