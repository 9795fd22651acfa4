export { parseListenAddress } from '../core/health-server.js';
export { type BeaconTarget, parseBeaconAddress } from './address.js';
export { createDialAdmission, type DialAdmission, withPriority } from './admission.js';
export { type BridgeCaSet, bridgeRefusal, loadBridgeCas } from './bridge-auth.js';
export { beaconOptionsFromFlags, registerBeaconCommand } from './command.js';
export {
  type BeaconDialPlan,
  type BeaconPlanOptions,
  type BeaconResolver,
  everyReplicaRefused,
  logBeaconRoutes,
  planBeaconDial,
  reportFanOut,
  resolveBeacon,
  systemResolver,
} from './dial-plan.js';
export { type BeaconDialOptions, dialBeacon } from './dialer.js';
export { BEACON_LIMIT_FLAGS, type BeaconLimits, DEFAULT_BEACON_LIMITS, resolveLimits } from './limits.js';
export {
  type Announce,
  type BeaconDoor,
  type BeaconRole,
  type ControlMessage,
  isRoomHash,
  MAX_FRAME_BYTES,
  PLAIN_MAGIC,
  PROTOCOL_VERSION,
  RAW_ALPN,
  WEBSOCKET_PATH,
} from './protocol.js';
export { type CircuitTicket, createReplicaCircuit, type ReplicaCircuit } from './replica-circuit.js';
export { type BeaconClientCertificate, type ReplicaDialOptions, waitForPeer } from './replica-dial.js';
export {
  BEACON_FD_HEADROOM,
  type BeaconHandle,
  type BeaconOptions,
  type BeaconStats,
  createBeacon,
  readOpenFileLimit,
} from './server.js';
