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
  DEFAULT_BRIDGE_TIMING,
  startBridge,
} from './bridge.js';
export {
  startTokenReviewServer,
  type TokenReviewServer,
  type TokenReviewServerOptions,
} from './tokenreview.js';
