/**
 * Synth-time checks shared by the constructs (and, for the beacon address, mirrored by the charts'
 * values.schema.json; test/charts proves both accept the same addresses). Values that are still tokens are
 * skipped: they resolve only when Terraform runs.
 */
import { Token } from './cdktf.js';

const BEACON_ADDRESS =
  /^(wss:\/\/[A-Za-z0-9.\-[\]:]+(\/\S*)?|[A-Za-z0-9.-]+:[0-9]{1,5}|\[[0-9A-Fa-f:.]+\]:[0-9]{1,5})$/u;
const HTTP_URL = /^https?:\/\/[^\s/]+(\/\S*)?$/u;
const FINGERPRINT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/u;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/u;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/u;
const CHART_VERSION = /^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/u;

/** `host:port`, `[v6]:port` or `wss://host[:port][/path]`, as the operator chart accepts it. */
export function isBeaconAddress(value: string): boolean {
  return BEACON_ADDRESS.test(value);
}

export function isUnresolved(value: unknown): boolean {
  return Token.isUnresolved(value);
}

/** Throws a TypeError that names the prop, unless the value is a token. */
export function requireMatch(prop: string, value: string | undefined, rule: RegExp, expected: string): void {
  if (value === undefined || isUnresolved(value)) return;
  if (!rule.test(value)) {
    throw new TypeError(`'${prop}' ${expected}; got ${JSON.stringify(truncate(value))}`);
  }
}

export function requireBeaconAddress(prop: string, value: string | undefined): void {
  requireMatch(
    prop,
    value,
    BEACON_ADDRESS,
    "must be the beacon's host:port (e.g. beacon.example.com:443) or wss://host[:port]",
  );
}

export function requireHttpUrl(prop: string, value: string | undefined): void {
  requireMatch(prop, value, HTTP_URL, 'must be an http(s) URL such as https://openbao.example.eu:8200');
}

export function requireFingerprint(prop: string, value: string | undefined): void {
  requireMatch(
    prop,
    value,
    FINGERPRINT,
    "must be a lower-case UUID (the UID of the cluster's kube-system namespace)",
  );
}

export function requireDnsLabel(prop: string, value: string | undefined): void {
  if (value !== undefined && !isUnresolved(value) && value.length > 63) {
    throw new TypeError(`'${prop}' must be at most 63 characters; got ${value.length}`);
  }
  requireMatch(prop, value, DNS_LABEL, 'must be a DNS label (lower-case letters, digits and "-")');
}

/** Names of Secrets and ConfigMaps: DNS subdomains (lower case, digits, "-" and ".", at most 253). */
export function requireDnsSubdomain(prop: string, value: string | undefined): void {
  if (value !== undefined && !isUnresolved(value) && value.length > 253) {
    throw new TypeError(`'${prop}' must be at most 253 characters; got ${value.length}`);
  }
  requireMatch(
    prop,
    value,
    DNS_SUBDOMAIN,
    'must be a Kubernetes object name (lower-case letters, digits, "-" and ".")',
  );
}

export function requireChartVersion(prop: string, value: string | undefined): void {
  requireMatch(prop, value, CHART_VERSION, 'must be a semantic version such as 0.1.0');
}

export function requireNonEmpty(prop: string, value: string | undefined): void {
  if (value === undefined || isUnresolved(value)) return;
  if (value.trim() === '') throw new TypeError(`'${prop}' must not be empty`);
}

export function requireIntegerInRange(
  prop: string,
  value: number | undefined,
  min: number,
  max: number,
): void {
  if (value === undefined || isUnresolved(value)) return;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new TypeError(`'${prop}' must be an integer from ${min} to ${max}; got ${value}`);
  }
}

/** For props a JavaScript caller might pass even though the types leave them out (a token, a secret). */
export function refuseProp(prop: string, value: unknown, why: string): void {
  if (value !== undefined) throw new TypeError(`'${prop}' is not supported: ${why}`);
}

function truncate(value: string): string {
  return value.length > 80 ? `${value.slice(0, 77)}...` : value;
}

/**
 * A JWKS as `/openid/v1/jwks` serves it: 1 to 32 RSA or EC public keys. The provider checks the keys themselves
 * at plan time; this catches the wrong document (or a private key) at synth time.
 */
export function requireJwks(prop: string, value: unknown): void {
  if (isUnresolved(value)) return;
  let doc: unknown = value;
  if (typeof value === 'string') {
    try {
      doc = JSON.parse(value);
    } catch {
      doc = undefined;
    }
  }
  const keys = (doc as { keys?: unknown } | undefined)?.keys;
  const usable = (key: unknown) =>
    typeof key === 'object' &&
    key !== null &&
    ((key as { kty?: unknown }).kty === 'RSA' || (key as { kty?: unknown }).kty === 'EC') &&
    (key as { d?: unknown }).d === undefined;
  if (Array.isArray(keys) && keys.some((key) => (key as { d?: unknown } | null)?.d !== undefined)) {
    throw new TypeError(`'${prop}' holds a private key; give only the public keys of /openid/v1/jwks`);
  }
  if (!Array.isArray(keys) || keys.length === 0 || keys.length > 32 || !keys.some(usable)) {
    throw new TypeError(
      `'${prop}' must be the cluster's /openid/v1/jwks: {"keys":[...]} with 1 to 32 keys, at least one an RSA or EC public key`,
    );
  }
}
