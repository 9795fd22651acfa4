/**
 * The bridge's client certificate for a cluster's tunnels is stored in OpenBao by `register` and lasts a year; a
 * re-run of `register` renews it in its last 30 days. A cluster registered by Terraform is not registered again
 * while nothing changes, so on that day every broker would refuse the bridge. The bridge holds the cluster CA (it
 * signs broker CSRs) and the broker trusts any client certificate of that CA, so in that window, or once the stored
 * one has expired, the bridge mints its own in memory instead: nothing is written and no trust changes hands.
 */
import { X509Certificate } from 'node:crypto';
import { BRIDGE_RENEW_BEFORE_MS, type ClusterTrust, issueBridgeCertificate } from '../registration/index.js';

/** Lifetime of a minted certificate: the bridge reads the cluster's trust again long before (every 6 h). */
const MINTED_DAYS = 30;

export interface UsableTrust {
  readonly trust: ClusterTrust;
  /** Set when the stored certificate was replaced in memory: when it expires (ISO 8601). */
  readonly storedNotAfter?: string;
}

export function withUsableBridgeCertificate(trust: ClusterTrust, now = Date.now()): UsableTrust {
  const stored = new X509Certificate(trust.bridgeCertPem);
  const notAfter = Date.parse(stored.validTo);
  if (notAfter - now > BRIDGE_RENEW_BEFORE_MS) return { trust };
  const minted = issueBridgeCertificate(trust.ca, MINTED_DAYS);
  return {
    trust: { ...trust, bridgeCertPem: minted.certPem, bridgeKeyPem: minted.keyPem },
    storedNotAfter: new Date(notAfter).toISOString(),
  };
}
