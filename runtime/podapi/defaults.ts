// Import-free, so `broker run --help` shows these limits without loading the server (server.ts re-exports them).
import type { PodApiLimits } from './server.js';

export const DEFAULT_POD_API_LIMITS: PodApiLimits = Object.freeze({
  maxBodyBytes: 512 * 1024,
  healthAnswerMs: 2_000,
  maxInFlight: 24,
  maxWaiting: 2000,
  timeoutMs: 30_000,
  tunnelWaitMs: 5_000,
  maxBufferedBodyBytes: 32 * 1024 * 1024,
  maxBufferedBodyBytesPerAddress: 4 * 1024 * 1024,
  bodyTimeoutMs: 10_000,
  maxConnections: 2048,
  maxConnectionsPerAddress: 128,
  maxRequestsPerAddress: 256,
});

/**
 * The bounds that refuse a pod (log field `limit`, metric label `limit`): connections in all and per pod address,
 * requests per address, request-body bytes held in all and per address, a body that stopped arriving, a body
 * larger than one request may carry (maxBodyBytes).
 */
export const POD_API_LIMIT_KINDS = [
  'connections',
  'address_connections',
  'address_requests',
  'body_budget',
  'address_body_budget',
  'body_timeout',
  'body_size',
] as const;
export type PodApiLimitKind = (typeof POD_API_LIMIT_KINDS)[number];
