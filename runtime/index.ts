/**
 * `cloudtaser/runtime`: the core every part of cloudtaser stands on, and the three processes as libraries.
 * Each process is a library first (`createBeacon`, `startBridge`, `startBroker` return handles with `close()`)
 * and a `cloudtaser-cli` command second. The dev-only test servers are not exported here on purpose.
 */

export * from './attestation/index.js';
export type { BeaconHandle, BeaconLimits, BeaconOptions, BeaconStats, BeaconTarget } from './beacon/index.js';
export { createBeacon, dialBeacon, parseBeaconAddress, resolveBeacon, waitForPeer } from './beacon/index.js';
export { startBridge } from './bridge/index.js';
export { startBroker } from './broker/index.js';
export * from './core/index.js';
export * from './kube/index.js';
export * from './openbao/index.js';
export * from './pki/index.js';
export * from './registration/index.js';
