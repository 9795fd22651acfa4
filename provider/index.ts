/**
 * Public surface of terraform-provider-cloudtaser: the provider definition and its schemas (for docs and
 * CDKTF binding generators), the in-process server (tests, tooling), packaging and the small framework.
 */
export {
  cloudtaserSchemas,
  createCloudtaserProvider,
  PROVIDER_ADDRESS,
  PROVIDER_VERSION,
} from './cloudtaser.js';
export { registerProviderCommand } from './command.js';
export { decodeJsonValue } from './cty/json.js';
export { decodeMsgpack, encodeMsgpack } from './cty/msgpack.js';
export { type CtyType, typeFromJson, types, typeToJson } from './cty/types.js';
export {
  BigNumber,
  Dynamic,
  isUnknown,
  isWhollyKnown,
  type Refinements,
  Unknown,
  unknown,
  type Value,
  valuesEqual,
} from './cty/values.js';
export { generateProviderDocs, writeProviderDocs } from './docs/generate.js';
export {
  type AttributePath,
  attributeError,
  type Diagnostic,
  DiagnosticsError,
  errorToDiagnostic,
} from './framework/diagnostics.js';
export { type PlanResult, planChange } from './framework/plan.js';
export { PrivateState } from './framework/private-state.js';
export {
  createProviderHandlers,
  type DataSourceDefinition,
  defineDataSource,
  defineResource,
  type OperationContext,
  type PlanContext,
  type ProviderDefinition,
  type ResourceDefinition,
} from './framework/provider.js';
export {
  type ProviderServerHandle,
  runProviderProcess,
  type StartProviderServerOptions,
  startProviderServer,
} from './framework/serve-provider.js';
// The bundler (packaging/bundle.ts) is a build step that needs esbuild, a dev dependency: not exported.
export { BUNDLE_FILE_NAME } from './packaging/bundle-name.js';
export {
  DEFAULT_PLATFORMS,
  hashFiles,
  hashPackageDir,
  type InstalledProviderMirror,
  type InstallProviderMirrorOptions,
  installProviderMirror,
} from './packaging/mirror.js';
export { clusterFingerprintBlock, toKubeConnection } from './resources/cluster-fingerprint.js';
export { clusterRegistrationBlock } from './resources/cluster-registration.js';
export { type CloudtaserProviderClient, providerBlock } from './resources/provider-config.js';
export {
  type Attribute,
  attr,
  type Block,
  exportSchemaJson,
  type InferValues,
  impliedType,
  type NestedBlock,
  nested,
  type Schema,
  toWireSchema,
} from './schema/schema.js';
export { createHclogLogger, type ProviderLogger } from './wire/hclog.js';
