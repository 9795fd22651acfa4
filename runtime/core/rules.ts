/**
 * The input rules every entry point checks, written once: the CLI and the runtime, the Terraform provider's
 * attribute validators and the constructs' synth-time checks all call these. A rule is a test and the words
 * that say what a valid value is; `ruleViolation` turns a refusal into a CloudtaserError whose message names
 * the flag, attribute or prop it came from.
 *
 * Imports nothing but the error class, so the constructs can run it at synth time and the provider's eager
 * schema stays light.
 */
import { CloudtaserError, type ErrorCode } from './errors.js';

export interface InputRule {
  /** The code of a refusal: CT_INVALID_FINGERPRINT for fingerprints, CT_INVALID_ARGUMENT otherwise. */
  readonly code: ErrorCode;
  /** What a valid value is, worded to follow the name: "must be a lower-case UUID ...". */
  readonly expected: string;
  test(value: string): boolean;
}

/**
 * The refusal of `value` by `rule`, or undefined when it passes. `name` is how the caller's user spells the
 * input (`--attestation-issuer`, `fingerprint`, `'beacon.address'`); `hint` says where to get a right value.
 * Message: `<name> <expected>; got "<value>"[; <hint>]`.
 */
export function ruleViolation(
  rule: InputRule,
  name: string,
  value: unknown,
  hint?: string,
): CloudtaserError | undefined {
  if (typeof value === 'string' && rule.test(value)) return undefined;
  const got = typeof value === 'string' ? JSON.stringify(truncate(value)) : String(value);
  return new CloudtaserError(
    rule.code,
    `${name} ${rule.expected}; got ${got}${hint === undefined ? '' : `; ${hint}`}`,
  );
}

/** Returns `value` when `rule` accepts it; throws the refusal (see ruleViolation) when not. */
export function requireRule(rule: InputRule, name: string, value: unknown, hint?: string): string {
  const violation = ruleViolation(rule, name, value, hint);
  if (violation) throw violation;
  return value as string;
}

/** Long inputs are cut in messages: enough to recognise, not a wall of text in a plan. */
export function truncate(value: string): string {
  return value.length > 80 ? `${value.slice(0, 77)}...` : value;
}

// --- Kubernetes names -------------------------------------------------------------------------------------

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** An object UID as Kubernetes prints it: a lower-case UUID. */
export function isKubernetesUid(value: string): boolean {
  return UUID.test(value);
}

/** A DNS-1123 label of at most 63 characters: what Kubernetes accepts as a namespace name. */
export function isDnsLabel(value: string): boolean {
  return value.length <= 63 && DNS_LABEL.test(value);
}

/** A DNS-1123 subdomain of at most 253 characters: the names of service accounts, Secrets and ConfigMaps. */
export function isDnsSubdomain(value: string): boolean {
  return value.length <= 253 && DNS_SUBDOMAIN.test(value);
}

export const DNS_LABEL_RULE: InputRule = {
  code: 'CT_INVALID_ARGUMENT',
  expected: 'must be a DNS label of at most 63 characters (lower-case letters, digits and "-")',
  test: isDnsLabel,
};

export const KUBERNETES_NAME_RULE: InputRule = {
  code: 'CT_INVALID_ARGUMENT',
  expected:
    'must be a Kubernetes object name of at most 253 characters (lower-case letters, digits, "-" and ".")',
  test: isDnsSubdomain,
};

/** `<namespace>/<name>` of a namespaced object, or undefined when either half breaks its naming rule. */
export function parseNamespacedName(text: string): { namespace: string; name: string } | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const namespace = text.slice(0, slash);
  const name = text.slice(slash + 1);
  return isDnsLabel(namespace) && isDnsSubdomain(name) ? { namespace, name } : undefined;
}

// --- fingerprint ------------------------------------------------------------------------------------------

/** True for a kube-system namespace UID as Kubernetes prints it (lower-case UUID). */
/** Names OpenBao reserves at the top of a namespace tree: a namespace root cannot be one of them. */
const RESERVED_NAMESPACE_NAMES = new Set(['root', 'sys', 'audit', 'auth', 'cubbyhole', 'identity']);

/**
 * The namespace under which cluster namespaces live: one segment (the policies address `<root>/+/...`, and a
 * cluster namespace is `<root>/<fp8>`). One rule for the CLI, the provider, the bridge and the constructs: the
 * construct once accepted (and suggested) `team/cloudtaser`, which the provider then refused at plan.
 */
export const NAMESPACE_ROOT_RULE: InputRule = {
  code: 'CT_INVALID_ARGUMENT',
  expected:
    "must be one OpenBao namespace name of letters, digits, '-', '_' or '.' (no '/'; not root, sys, audit, auth, cubbyhole or identity), such as cloudtaser",
  test: (value) => /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(value) && !RESERVED_NAMESPACE_NAMES.has(value),
};

export function isFingerprint(value: string): boolean {
  return isKubernetesUid(value);
}

/** The strict form, as a provider attribute or construct prop must carry it (Terraform compares it as text). */
export const FINGERPRINT_RULE: InputRule = {
  code: 'CT_INVALID_FINGERPRINT',
  expected: "must be a lower-case UUID (the UID of the cluster's kube-system namespace)",
  test: isFingerprint,
};

/**
 * Validates and normalises a fingerprint. Upper-case input is accepted and lowered, because people paste
 * UIDs from tools that upper-case them; anything else that is not a UUID is refused before any write.
 */
export function parseFingerprint(value: unknown): string {
  const text = typeof value === 'string' ? value.trim().toLowerCase() : '';
  if (!isFingerprint(text)) {
    throw new CloudtaserError(
      'CT_INVALID_FINGERPRINT',
      `fingerprint ${JSON.stringify(String(value).slice(0, 80))} is not a UUID; use the kube-system namespace UID that \`cloudtaser-cli target fingerprint\` prints`,
    );
  }
  return text;
}

// --- attestation: issuer and service account ----------------------------------------------------------------

/** The issuer is compared as text with the token's `iss`; the rule only keeps out what no issuer can be. */
export const ISSUER_RULE: InputRule = {
  code: 'CT_INVALID_ARGUMENT',
  expected:
    "must be the cluster's service-account issuer URL (the `issuer` of /.well-known/openid-configuration): at most 1024 characters, no spaces",
  test: (value) => value.length > 0 && value.length <= 1024 && !/\s/.test(value),
};

/** The operator's service account in the Helm chart's defaults. */
export const DEFAULT_OPERATOR_SERVICE_ACCOUNT_REF = 'cloudtaser-system/cloudtaser';

/** `<namespace>/<name>` of the operator's service account, the one subject whose token may bootstrap. */
export const SERVICE_ACCOUNT_RULE: InputRule = {
  code: 'CT_INVALID_ARGUMENT',
  expected: `must be <namespace>/<name> of the operator's service account, e.g. ${DEFAULT_OPERATOR_SERVICE_ACCOUNT_REF}`,
  test: (value) => parseNamespacedName(value) !== undefined,
};

/** Parses `<namespace>/<name>` of a service account; throws the SERVICE_ACCOUNT_RULE refusal naming `name`. */
export function parseServiceAccountRef(name: string, value: unknown): { namespace: string; name: string } {
  return parseNamespacedName(requireRule(SERVICE_ACCOUNT_RULE, name, value))!;
}

// --- beacon address ---------------------------------------------------------------------------------------

/** A TCP port, 1 to 65535, as a regular expression (the chart schemas use the same text). */
const PORT = '([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])';
const HOST = String.raw`([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])`;
/**
 * The beacon address as the operator and bridge charts accept it: `host:port`, `[v6]:port` or
 * `wss://host[:port][/path]`, the port 1 to 65535. The charts' values.schema.json carry this very text
 * (test/charts holds them equal); the runtime's parseBeaconAddress reads these and a few more spellings.
 */
export const BEACON_ADDRESS_PATTERN = String.raw`^(wss://${HOST}(:${PORT})?(/\S*)?|${HOST}:${PORT})$`;
const BEACON_ADDRESS = new RegExp(BEACON_ADDRESS_PATTERN, 'u');

/** `host:port`, `[v6]:port` or `wss://host[:port][/path]`, as the operator chart accepts it. */
export function isBeaconAddress(value: string): boolean {
  return BEACON_ADDRESS.test(value);
}

export const BEACON_ADDRESS_RULE: InputRule = {
  code: 'CT_INVALID_ARGUMENT',
  expected: "must be the beacon's host:port (e.g. beacon.example.com:443) or wss://host[:port]",
  test: isBeaconAddress,
};

/**
 * A socket's remote address in one spelling per client: an IPv4-mapped IPv6 address (`::ffff:10.0.0.7`, what a
 * dual-stack listener reports for an IPv4 client) as the IPv4 address it is; anything else unchanged.
 */
export function unmappedIPv4(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice('::ffff:'.length) : address;
}
