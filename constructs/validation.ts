/**
 * Synth-time checks shared by the constructs (and, for the beacon address, mirrored by the charts'
 * values.schema.json; test/charts proves both accept the same addresses). Values that are still tokens are
 * skipped: they resolve only when Terraform runs.
 */
import type { Construct } from 'constructs';
import { Annotations, Token } from './cdktf.js';

/** A TCP port, 1 to 65535, as a regular expression (the chart schemas use the same text). */
const PORT = '([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])';
const HOST = String.raw`([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])`;
/** `host:port`, `[v6]:port` or `wss://host[:port][/path]`; the port 1 to 65535. */
export const BEACON_ADDRESS_PATTERN = String.raw`^(wss://${HOST}(:${PORT})?(/\S*)?|${HOST}:${PORT})$`;
const BEACON_ADDRESS = new RegExp(BEACON_ADDRESS_PATTERN, 'u');
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

/** An http(s) URL; `example` is a URL of the right kind for the message ("https://openbao.example.eu:8200"). */
export function requireHttpUrl(prop: string, value: string | undefined, example: string): void {
  requireMatch(prop, value, HTTP_URL, `must be an https URL such as ${example}`);
  const port =
    value !== undefined && !isUnresolved(value)
      ? /^https?:\/\/[^/]*:(\d+)(\/|$)/u.exec(value)?.[1]
      : undefined;
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535))
    throw new TypeError(`'${prop}' has port ${port}; a port is 1 to 65535`);
}

/** A warning (not an error: local demos use it) when a URL that carries credentials is plain http. */
export function warnIfPlainHttp(
  scope: Construct,
  prop: string,
  value: string | undefined,
  why: string,
): void {
  if (value === undefined || isUnresolved(value) || !value.startsWith('http://')) return;
  Annotations.of(scope).addWarning(`'${prop}' is http://: ${why}; use https:// outside a local demo`);
}

/**
 * Runs a construct's synth-time checks and puts the construct's path in front of any refusal, so an app with
 * several clusters says which one is wrong.
 */
export function validateAt(scope: Construct, checks: () => void): void {
  try {
    checks();
  } catch (err) {
    if (err instanceof TypeError && !err.message.startsWith(`${scope.node.path}: `))
      throw new TypeError(`${scope.node.path}: ${err.message}`);
    throw err;
  }
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
