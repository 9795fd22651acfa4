export { type BrokerBootstrapOptions, type BrokerCredentials, bootstrapBroker } from './bootstrap.js';
export {
  ATTESTATION_TOKEN_SECONDS,
  type BrokerAttestationOptions,
  type BrokerHandle,
  type BrokerKubeApi,
  type BrokerMigrationOptions,
  type BrokerOptions,
  type BrokerPhase,
  type BrokerPodApiOptions,
  type BrokerStatus,
  type BrokerTiming,
  type BrokerWebhookOptions,
  DEFAULT_BROKER_TIMING,
  startBroker,
} from './broker.js';
export { isTokenReviewRequest, serveTokenReview, type TokenReviewApi } from './tokenreview.js';
