export {
  type BeaconIdentity,
  type MintedBeaconIdentityOptions,
  startMintedBeaconIdentity,
  watchBeaconIdentityFiles,
} from './beacon-identity.js';
export { type BootstrapOutcome, type ServeBootstrapOptions, serveBootstrap } from './bootstrap.js';
export {
  type BridgeClusterStatus,
  type BridgeHandle,
  type BridgeOptions,
  type BridgeStatus,
  type BridgeTiming,
  type BridgeTunnelBroker,
  DEFAULT_BRIDGE_TIMING,
  startBridge,
} from './bridge.js';
export {
  type BridgeMetrics,
  type BridgeMetricsOptions,
  type BridgeMetricsSource,
  createBridgeMetrics,
  type OpenBaoRequestSource,
} from './metrics.js';
export {
  FORWARDED_HEADER,
  startTokenReviewServer,
  type TokenReviewPeers,
  type TokenReviewServer,
  type TokenReviewServerOptions,
  TUNNEL_HEADER,
} from './tokenreview.js';
export {
  type BridgeTokenReview,
  type BridgeTokenReviewOptions,
  startBridgeTokenReview,
  type TokenReviewTls,
} from './tokenreview-service.js';
