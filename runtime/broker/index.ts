export { type BrokerBootstrapOptions, type BrokerCredentials, bootstrapBroker } from './bootstrap.js';
export {
  ATTESTATION_TOKEN_SECONDS,
  type BrokerAttestationOptions,
  type BrokerHandle,
  type BrokerKubeApi,
  type BrokerMigrationOptions,
  type BrokerOptions,
  type BrokerTiming,
  DEFAULT_BROKER_TIMING,
  startBroker,
} from './broker.js';
export {
  type AdmissionOutcome,
  type BrokerMetrics,
  type BrokerMetricsOptions,
  type BrokerMetricsSource,
  createBrokerMetrics,
} from './metrics.js';
export type { BrokerPodApiOptions } from './pod-api.js';
export type { BrokerPhase, BrokerStatus } from './status.js';
export { isTokenReviewRequest, serveTokenReview, type TokenReviewApi } from './tokenreview.js';
export {
  configMapTrustRecord,
  DEFAULT_TRUST_RECORD_NAME,
  DEFAULT_TRUST_RECORD_NAMESPACE,
  memoryTrustRecord,
  parseCaSha256,
  type TrustRecord,
  type TrustRecordKubeApi,
  type TrustRecordRef,
  type TrustRecordStore,
} from './trust-record.js';
export type { BrokerWebhookOptions } from './webhook.js';
