/**
 * `cloudtaser/constructs`: CDKTF constructs for cloudtaser. Register clusters with the secret store
 * (`RegisteredCluster`), deploy the relay (`Beacon`) and the bridge beside OpenBao (`Bridge`), or use the
 * generated provider bindings directly. Backed by `cdktf` or the community fork `cdktn` (see `./cdktf.ts`);
 * `cdk` is that library, so an app builds its App and stacks from the same one.
 */
export {
  Beacon,
  BeaconExposure,
  type BeaconLoadBalancerOptions,
  type BeaconProps,
  BeaconTls,
} from './beacon.js';
export {
  BeaconClientCa,
  type BeaconClientCaConfig,
  CloudtaserFunctions,
  CloudtaserProvider,
  type CloudtaserProviderConfig,
  type CloudtaserProviderKubernetes,
  type CloudtaserProviderKubernetesExec,
  ClusterRegistration,
  type ClusterRegistrationConfig,
  DataCloudtaserClusterFingerprint,
  type DataCloudtaserClusterFingerprintConfig,
  type DataCloudtaserClusterFingerprintExec,
} from './bindings/index.js';
export {
  type AppRoleSecretOptions,
  Bridge,
  BridgeAuth,
  BridgeBeaconCertificate,
  type BridgeBeaconProps,
  type BridgeOpenBaoProps,
  type BridgeProps,
  type KubernetesAuthOptions,
} from './bridge.js';
export { BridgeIdentity, type BridgeIdentityProps } from './bridge-identity.js';
export { type CdkLibraryName, cdkLibrary, cdktf as cdk } from './cdktf.js';
export { bundledChartPath, type CloudtaserChartName, type HelmChartOptions } from './helm-chart.js';
export type { HelmProvider, KubernetesProvider, Release } from './kubernetes.js';
export type {
  KubeconfigConnection,
  KubernetesConnection,
  KubernetesExecConnection,
  KubernetesExecCredential,
  KubernetesTokenConnection,
} from './kubernetes-connection.js';
export type { ProxyProps } from './proxy.js';
export {
  Attestation,
  type AttestationIssuerProps,
  type BeaconEndpointProps,
  type FingerprintSource,
  OperatorInstall,
  type OperatorValues,
  RegisteredCluster,
  type RegisteredClusterProps,
  type SecretStoreProps,
  type TokenReviewEndpointProps,
} from './registered-cluster.js';
export { ConstructRefusal, isBeaconAddress } from './validation.js';
export { CLOUDTASER_VERSION, DEFAULT_CHART_REPOSITORY } from './version.js';
