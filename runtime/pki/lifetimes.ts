// Import-free, so the bridge's defaults (`bridge run --help`) load no DER code (certificates.ts re-exports it).

/**
 * Lifetimes, and why:
 * - cluster CA: 10 years. Its certificate hash is the operational room key and the Helm CA pin, so rotating it
 *   means re-registering the cluster; its key lives only in OpenBao.
 * - bridge client certificate: 1 year; `register` re-issues it when fewer than 30 days remain.
 * - broker certificate: 1 year; it exists only in the broker's memory and a restart bootstraps anew.
 * - not-before is backdated 5 minutes so modest clock skew between cluster and OpenBao does not break TLS.
 */
export const LIFETIME_DAYS = { ca: 3650, bridge: 365, broker: 365, devServer: 30 } as const;
