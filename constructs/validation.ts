/**
 * Synth-time checks shared by the constructs. The rules the CLI and the provider check too (fingerprint, beacon
 * address, issuer, Kubernetes names) come from runtime/core/rules.ts; this file only turns their refusals into
 * the constructs' ConstructRefusals (TypeErrors with a code). Values that are still tokens are skipped: they
 * resolve only when Terraform runs.
 */
import type { Construct } from 'constructs';
import {
  BEACON_ADDRESS_RULE,
  DNS_LABEL_RULE,
  FINGERPRINT_RULE,
  type InputRule,
  ISSUER_RULE,
  KUBERNETES_NAME_RULE,
  NAMESPACE_ROOT_RULE,
  ruleViolation,
} from '../runtime/core/rules.js';
import { Annotations, Token } from './cdktf.js';

// The charts' values.schema.json carry the beacon address pattern (test/charts holds them equal).
export { BEACON_ADDRESS_PATTERN, isBeaconAddress } from '../runtime/core/rules.js';

const HTTP_URL = /^https?:\/\/[^\s/]+(\/\S*)?$/u;
const CHART_VERSION = /^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/u;

export function isUnresolved(value: unknown): boolean {
  return Token.isUnresolved(value);
}

/** A stable code of runtime/core/errors.ts, named through the rules so synth loads nothing more. */
type RefusalCode = InputRule['code'];

/**
 * A construct's refusal of its props at synth time. A TypeError, as for any bad argument, whose message reads as
 * the CLI's and the provider's errors do, `CT_CODE: <construct path>: what is wrong`, and whose `code` is that
 * stable code (CT_INVALID_ARGUMENT unless said), so a script or a log search treats all three alike. A rule's
 * refusal keeps the rule's CloudtaserError as `cause`.
 */
export class ConstructRefusal extends TypeError {
  readonly code: RefusalCode;
  /** What is wrong, without the code and the construct path. */
  readonly detail: string;
  /** The path of the construct whose props were refused, once validateAt has named it. */
  readonly at?: string;

  constructor(detail: string, options: { code?: RefusalCode; cause?: unknown; at?: string } = {}) {
    const code = options.code ?? 'CT_INVALID_ARGUMENT';
    super(`${code}: ${options.at ? `${options.at}: ` : ''}${detail}`, { cause: options.cause });
    this.name = 'ConstructRefusal';
    this.code = code;
    this.detail = detail;
    this.at = options.at;
  }
}

/** Throws a ConstructRefusal that names the prop when `rule` refuses the value, unless undefined or a token. */
export function requireRule(prop: string, value: string | undefined, rule: InputRule): void {
  if (value === undefined || isUnresolved(value)) return;
  const violation = ruleViolation(rule, `'${prop}'`, value);
  if (violation) throw new ConstructRefusal(violation.message, { code: violation.code, cause: violation });
}

/** A rule of one construct only: `expected` says what a valid value is ("must be a PEM certificate"). */
export function requireMatch(prop: string, value: string | undefined, rule: RegExp, expected: string): void {
  requireRule(prop, value, { code: 'CT_INVALID_ARGUMENT', expected, test: (v) => rule.test(v) });
}

export function requireBeaconAddress(prop: string, value: string | undefined): void {
  requireRule(prop, value, BEACON_ADDRESS_RULE);
}

/** An http(s) URL; `example` is a URL of the right kind for the message ("https://openbao.example.eu:8200"). */
export function requireHttpUrl(prop: string, value: string | undefined, example: string): void {
  requireMatch(prop, value, HTTP_URL, `must be an https URL such as ${example}`);
  const port =
    value !== undefined && !isUnresolved(value)
      ? /^https?:\/\/[^/]*:(\d+)(\/|$)/u.exec(value)?.[1]
      : undefined;
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535))
    throw new ConstructRefusal(`'${prop}' has port ${port}; a port is 1 to 65535`);
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
 * Runs a construct's synth-time checks (or a step that may refuse its props) and puts the construct's path in
 * front of any refusal, so an app with several clusters says which one is wrong. Returns what `checks` returns.
 */
export function validateAt<T>(scope: Construct, checks: () => T): T {
  try {
    return checks();
  } catch (err) {
    if (err instanceof ConstructRefusal && err.at === undefined)
      throw new ConstructRefusal(err.detail, { code: err.code, cause: err.cause, at: scope.node.path });
    throw err;
  }
}

/** The provider's and the CLI's one rule (a single segment), checked at synth instead of at plan. */
export function requireNamespaceRoot(prop: string, value: string | undefined): void {
  requireRule(prop, value, NAMESPACE_ROOT_RULE);
}

export function requireFingerprint(prop: string, value: string | undefined): void {
  requireRule(prop, value, FINGERPRINT_RULE);
}

/** The cluster's service-account issuer, as attestation compares it with a token's `iss`. */
export function requireIssuer(prop: string, value: string | undefined): void {
  requireRule(prop, value, ISSUER_RULE);
}

export function requireDnsLabel(prop: string, value: string | undefined): void {
  requireRule(prop, value, DNS_LABEL_RULE);
}

/** Names of Secrets and ConfigMaps: DNS subdomains (lower case, digits, "-" and ".", at most 253). */
export function requireDnsSubdomain(prop: string, value: string | undefined): void {
  requireRule(prop, value, KUBERNETES_NAME_RULE);
}

export function requireChartVersion(prop: string, value: string | undefined): void {
  requireMatch(prop, value, CHART_VERSION, 'must be a semantic version such as 0.2.0');
}

export function requireNonEmpty(prop: string, value: string | undefined): void {
  if (value === undefined || isUnresolved(value)) return;
  if (value.trim() === '') throw new ConstructRefusal(`'${prop}' must not be empty`);
}

export function requireIntegerInRange(
  prop: string,
  value: number | undefined,
  min: number,
  max: number,
): void {
  if (value === undefined || isUnresolved(value)) return;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConstructRefusal(`'${prop}' must be an integer from ${min} to ${max}; got ${value}`);
  }
}

/** For props a JavaScript caller might pass even though the types leave them out (a token, a secret). */
export function refuseProp(prop: string, value: unknown, why: string): void {
  if (value !== undefined) throw new ConstructRefusal(`'${prop}' is not supported: ${why}`);
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
    throw new ConstructRefusal(`'${prop}' holds a private key; give only the public keys of /openid/v1/jwks`);
  }
  if (!Array.isArray(keys) || keys.length === 0 || keys.length > 32 || !keys.some(usable)) {
    throw new ConstructRefusal(
      `'${prop}' must be the cluster's /openid/v1/jwks: {"keys":[...]} with 1 to 32 keys, at least one an RSA or EC public key`,
    );
  }
}
