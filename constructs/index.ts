/**
 * `cloudtaser/constructs`: CDKTF constructs for cloudtaser. Register clusters with the secret store
 * (`RegisteredCluster`), deploy the relay (`Beacon`) and the bridge beside OpenBao (`Bridge`), or use the
 * generated provider bindings directly.
 */
export {
  Beacon,
  BeaconExposure,
  type BeaconLoadBalancerOptions,
  type BeaconProps,
  BeaconTls,
} from './beacon.js';
export {
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
  type BridgeBeaconProps,
  type BridgeOpenBaoProps,
  type BridgeProps,
} from './bridge.js';
export { bundledChartPath, type CloudtaserChartName, type HelmChartOptions } from './helm-chart.js';
export type {
  KubeconfigConnection,
  KubernetesConnection,
  KubernetesExecConnection,
  KubernetesExecCredential,
  KubernetesTokenConnection,
} from './kubernetes-connection.js';
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
} from './registered-cluster.js';
export { isBeaconAddress } from './validation.js';
export { CLOUDTASER_VERSION, DEFAULT_CHART_REPOSITORY } from './version.js';
