/**
 * Where cloudtaser keeps its records in OpenBao (DESIGN.md section 4). Every path is written here once;
 * register, deregister, status and the bridge all go through these helpers.
 */
import { type JsonWebKey, X509Certificate } from 'node:crypto';
import { type AttestationPolicy, parseJwks } from '../attestation/index.js';
import { CloudtaserError } from '../core/errors.js';
import { fingerprintPrefix } from '../core/hashes.js';
import { NAMESPACE_ROOT_RULE, truncate } from '../core/rules.js';
import { DEFAULT_NAMESPACE_ROOT, DEFAULT_REARM_WINDOW_MS, MAX_REARM_WINDOW_MS } from './defaults.js';

export { DEFAULT_NAMESPACE_ROOT, DEFAULT_REARM_WINDOW_MS, MAX_REARM_WINDOW_MS };
/** KV v2 mount name used for cloudtaser's own records, both in the root and in each cluster namespace. */
export const RECORDS_MOUNT = 'cloudtaser';
/** KV v2 mount for workload secrets in each cluster namespace. */
export const WORKLOAD_MOUNT = 'secret';
/** Kubernetes auth mount in each cluster namespace. */
export const KUBERNETES_AUTH_MOUNT = 'kubernetes';
/** Namespace custom-metadata key naming the fingerprint that owns a cluster namespace. */
export const OWNER_METADATA_KEY = 'cloudtaser_fingerprint';

export const paths = {
  clustersPrefix: 'clusters/',
  /**
   * In the root namespace: which fingerprint holds an 8-character prefix (and so the namespace `<root>/<fp8>`),
   * written once with check-and-set 0 before the namespace: OpenBao's namespace create overwrites the owner in an
   * existing namespace's custom metadata, so only a create-once record can decide between two runs at once.
   */
  prefixClaim: (fp8: string) => `prefixes/${fp8}`,
  registered: (fingerprint: string) => `clusters/${fingerprint}/registered`,
  initialized: (fingerprint: string) => `clusters/${fingerprint}/initialized`,
  /** The discovery journal (change-journal.ts): which clusters changed, so bridges need not list them all. */
  discoveryJournal: 'discovery/journal',
  bridgeCa: 'system/bridge-ca',
  bridgeClient: 'system/bridge-client',
  /**
   * In the cluster namespace: written by a deregistration that keeps the namespace (its workload secrets), so the
   * next register over it, which mints a new CA, opens its first bootstrap only for a re-arm window. A namespace
   * without it was left by a register that stopped before its record (or kept by a release before 0.2.0).
   */
  deregistered: 'system/deregistered',
  /** In the root namespace: the CA whose client certificates let bridges wait at the beacon. */
  beaconClientCa: 'system/beacon-client-ca',
} as const;

export function clusterNamespace(namespaceRoot: string, fingerprint: string): string {
  return `${namespaceRoot}/${fingerprintPrefix(fingerprint)}`;
}

/** `system/deregistered` in a cluster namespace's records mount. */
export interface DeregisteredRecord {
  readonly fingerprint: string;
  /** When the deregistration that kept the namespace ran (ISO 8601, the deregistering host's clock). */
  readonly deregistered_at: string;
}

/** `prefixes/<fp8>` in the root namespace's records mount. */
export interface PrefixClaimRecord {
  readonly fingerprint: string;
  readonly claimed_at: string;
}

/** `clusters/<fingerprint>/registered` in the root namespace's records mount. */
export interface RegisteredRecord {
  readonly fingerprint: string;
  readonly namespace: string;
  readonly ca_sha256: string;
  readonly registered_at: string;
  /** Present when bootstrap requires a service-account token from the cluster (attested bootstrap). */
  readonly attestation?: AttestationRecord;
  /** True when the bridge may write this cluster's Kubernetes Secrets into OpenBao (migration). Absent = off. */
  readonly migration_enabled?: boolean;
  /**
   * Written by `register --rearm`: until this time (ISO 8601) the cluster may bootstrap once more without
   * attestation; after it, while no broker has bootstrapped, bridges refuse (CT_ALREADY_INITIALIZED). Absent for a
   * cluster never re-armed, whose first contact stays open until its first bootstrap. Bridges before 0.2.0
   * ignore it.
   */
  readonly rearm_expires_at?: string;
}

/** `attestation` in the registered record: what the bridge needs to check a bootstrap token offline. */
export interface AttestationRecord {
  /** `iss` of the cluster's service-account tokens. */
  readonly issuer: string;
  /** The issuer's public keys as served at `/openid/v1/jwks` (public material only). */
  readonly jwks: { readonly keys: readonly JsonWebKey[] };
  /** The operator's service account, the only subject accepted. */
  readonly service_account: { readonly namespace: string; readonly name: string };
}

/**
 * `clusters/<fingerprint>/initialized`, written once with cas=0; with attestation rewritten by each attested
 * re-bootstrap with a check-and-set against the version read.
 */
export interface InitializedRecord {
  readonly initialized_at: string;
  readonly broker_cert_sha256: string;
  /**
   * SHA-256 of the broker key's SubjectPublicKeyInfo. A broker that retries with the same in-memory key after
   * an ambiguous write (the record landed, the answer was lost) proves it holds that key with its CSR, so the
   * bridge may sign for it again without a re-arm.
   */
  readonly broker_key_sha256?: string;
  /** Random per write attempt: lets a retried check-and-set recognise its own committed write. */
  readonly write_id?: string;
  /**
   * `iat` (seconds) of the attestation token behind this bootstrap. A later attested bootstrap for another key
   * must bring a token issued after it, so a captured earlier request cannot take the cluster back.
   */
  readonly attestation_iat?: number;
}

/** `system/bridge-ca` in the cluster namespace. The private key never leaves OpenBao except to the bridge. */
export interface BridgeCaRecord {
  readonly certificate: string;
  readonly private_key: string;
}

/** `system/bridge-client` in the cluster namespace. */
export interface BridgeClientRecord {
  readonly certificate: string;
  readonly private_key: string;
  readonly ca_chain: string;
}

export function validateNamespaceRoot(namespaceRoot: string): string {
  if (NAMESPACE_ROOT_RULE.test(namespaceRoot)) return namespaceRoot;
  throw new CloudtaserError(
    'CT_INVALID_ARGUMENT',
    `namespace root ${JSON.stringify(truncate(namespaceRoot))} is not a usable OpenBao namespace name; use one segment of letters, digits, '-', '_' or '.' (default "cloudtaser")`,
  );
}

/**
 * A registration record as every reader takes it: its fingerprint is the key's, and its namespace is the one the
 * fingerprint derives (`<root>/<fp8>`). The bridge forwards the cluster's pod requests into that namespace, so a
 * record naming another (changed by hand, or by a tool with write access to the records but not to namespaces)
 * is refused as corrupt rather than followed into another cluster's namespace.
 */
export function asRegisteredRecord(
  data: Record<string, unknown>,
  fingerprint: string,
  namespaceRoot: string,
): RegisteredRecord {
  const repair = 'run `cloudtaser-cli source register` again to repair it';
  if (
    data.fingerprint !== fingerprint ||
    typeof data.namespace !== 'string' ||
    typeof data.ca_sha256 !== 'string'
  ) {
    throw new CloudtaserError(
      'CT_REGISTRATION_CORRUPT',
      `the registration record for ${fingerprint} is incomplete; ${repair}`,
      { details: { fingerprint } },
    );
  }
  const expected = clusterNamespace(namespaceRoot, fingerprint);
  if (data.namespace !== expected) {
    throw new CloudtaserError(
      'CT_REGISTRATION_CORRUPT',
      `the registration record for ${fingerprint} names namespace ${JSON.stringify(truncate(data.namespace))}, not ${expected}, the one its fingerprint gives (changed outside cloudtaser?); no bridge serves it until you ${repair}`,
      { details: { fingerprint, namespace: expected } },
    );
  }
  return data as unknown as RegisteredRecord;
}

export function asCertificateRecord<T extends { certificate: string; private_key: string }>(
  data: Record<string, unknown> | undefined,
  what: string,
): T | undefined {
  if (!data) return undefined;
  if (typeof data.certificate !== 'string' || typeof data.private_key !== 'string') return undefined;
  try {
    new X509Certificate(data.certificate);
  } catch {
    throw new CloudtaserError('CT_REGISTRATION_CORRUPT', `stored ${what} is not a readable certificate`);
  }
  return data as unknown as T;
}

/** The attestation policy stored in a registered record, or undefined when attestation is off. */
export function attestationPolicyOf(record: RegisteredRecord): AttestationPolicy | undefined {
  const value = record.attestation as unknown;
  if (value === undefined || value === null) return undefined;
  const corrupt = () =>
    new CloudtaserError(
      'CT_REGISTRATION_CORRUPT',
      `the attestation settings of the registration for ${record.fingerprint} are unreadable; run \`cloudtaser-cli source register --attestation-issuer ... --attestation-jwks ...\` again to repair them`,
      { details: { fingerprint: record.fingerprint } },
    );
  const data = value as Partial<AttestationRecord>;
  const account = data.service_account;
  if (
    typeof data.issuer !== 'string' ||
    data.issuer === '' ||
    typeof account?.namespace !== 'string' ||
    typeof account.name !== 'string'
  )
    throw corrupt();
  let jwks: { keys: JsonWebKey[] };
  try {
    jwks = parseJwks(data.jwks);
  } catch {
    throw corrupt();
  }
  return {
    issuer: data.issuer,
    jwks,
    serviceAccount: { namespace: account.namespace, name: account.name },
  };
}

/** The one rule for whether a registration enables migration: only an explicit `true` does. */
export function migrationEnabledOf(record: { readonly migration_enabled?: unknown }): boolean {
  return record.migration_enabled === true;
}
