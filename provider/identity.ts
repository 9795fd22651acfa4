/**
 * Who the provider is: its addresses and version. No imports, so the executable can name itself (--version,
 * the reattach line) without evaluating the provider's code.
 */

/** What users write as `source`; each tool prefixes its own default registry host. */
export const PROVIDER_SOURCE = 'cloudtaser/cloudtaser';
/**
 * Terraform reads `cloudtaser/cloudtaser` as registry.terraform.io/cloudtaser/cloudtaser, OpenTofu as
 * registry.opentofu.org/cloudtaser/cloudtaser; the mirror, the lock entries and --debug cover both.
 */
export const PROVIDER_HOSTS = ['registry.terraform.io', 'registry.opentofu.org'] as const;
export const PROVIDER_ADDRESS = `${PROVIDER_HOSTS[0]}/${PROVIDER_SOURCE}`;
export const PROVIDER_ADDRESSES: readonly string[] = PROVIDER_HOSTS.map(
  (host) => `${host}/${PROVIDER_SOURCE}`,
);
export const PROVIDER_VERSION = '0.2.0';
