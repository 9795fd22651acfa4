/**
 * Reading registrations, never writing them: one cluster's full status (the CLI's `source status`, the provider's
 * read), and the registered clusters as a bridge serves them (its full resync and its per-cluster re-reads).
 */
import { X509Certificate } from 'node:crypto';
import type { AttestationPolicy } from '../attestation/index.js';
import { type CloudtaserError, isCloudtaserError } from '../core/errors.js';
import { fingerprintPrefix, initHash } from '../core/hashes.js';
import { parseFingerprint } from '../core/rules.js';
import type { KvSecret, OpenBaoClient } from '../openbao/index.js';
import {
  asRegisteredRecord,
  attestationPolicyOf,
  clusterNamespace,
  DEFAULT_NAMESPACE_ROOT,
  migrationEnabledOf,
  OWNER_METADATA_KEY,
  paths,
  RECORDS_MOUNT,
  validateNamespaceRoot,
} from './layout.js';
import { readIfMounted, readSecretIfMounted } from './mounted-records.js';
import type { RegistrationTarget } from './register.js';

export interface ClusterStatus {
  readonly fingerprint: string;
  readonly namespace: string;
  readonly registered: boolean;
  readonly initialized: boolean;
  readonly initHash: string;
  readonly operationalHash?: string;
  readonly caCertPem?: string;
  readonly registeredAt?: string;
  readonly initializedAt?: string;
  /** SHA-256 of the SPKI of the broker key the last bootstrap was signed for. */
  readonly initializedBrokerKeySha256?: string;
  /** KV version of the `initialized` record: an attested re-bootstrap rewrites it with this check-and-set. */
  readonly initializedVersion?: number;
  /** `iat` of the attestation token behind the current bootstrap (attested bootstraps only). */
  readonly initializedAttestationIat?: number;
  /** The attestation policy, when bootstrap requires a token. */
  readonly attestation?: AttestationPolicy;
  /**
   * When the last `register --rearm` stops allowing a bootstrap (ISO 8601). Past while not initialized: the re-arm
   * expired unused, and bridges refuse a bootstrap without attestation until the next re-arm.
   */
  readonly rearmExpiresAt?: string;
  /** Whether the registration lets the bridge migrate Secrets (false when not registered). */
  readonly migrationEnabled: boolean;
  /**
   * Not registered, but parts of a registration remain: the `initialized` record, or (with `inspectNamespace`)
   * the cluster CA in the cluster's own namespace. What a deregistration that stopped half-way leaves; running
   * it again finishes it. Always false when registered.
   */
  readonly incomplete: boolean;
  /**
   * Not registered, and the cluster's namespace (owned by this fingerprint) still exists with its workload
   * secrets: what a deregistration without purge leaves, and what registering again reuses. Only read with
   * `inspectNamespace`; absent otherwise.
   */
  readonly namespaceKept?: boolean;
  /**
   * Not registered, and the namespace was kept by a deregistration at this time (its mark, layout.ts
   * `paths.deregistered`); absent when the namespace holds no such mark: a register stopped before its record
   * left it (or a release before 0.2.0 kept it). Only read with `inspectNamespace`.
   */
  readonly deregisteredAt?: string;
  /**
   * Registered, but the cluster CA (or its whole namespace) is gone: a register and a `deregister --purge` of the
   * cluster ran at the same time. Registering again repairs it (with a new CA). Absent otherwise.
   */
  readonly caMissing?: true;
}

export interface StatusOptions extends RegistrationTarget {
  /**
   * Also look for the cluster CA left in the cluster's namespace (for `incomplete`). Reads the namespace's owner
   * from sys/namespaces: a right the registrar has and the bridge does not. @default false
   */
  readonly inspectNamespace?: boolean;
}

/** Reads a cluster's registration state. Never writes. */
export async function getClusterStatus(client: OpenBaoClient, target: StatusOptions): Promise<ClusterStatus> {
  const fingerprint = parseFingerprint(target.fingerprint);
  const namespaceRoot = validateNamespaceRoot(target.namespaceRoot ?? DEFAULT_NAMESPACE_ROOT);
  const namespace = clusterNamespace(namespaceRoot, fingerprint);
  const base = { fingerprint, namespace, initHash: initHash(fingerprint) };
  const root = client.withNamespace(namespaceRoot);
  let registered: Record<string, unknown> | undefined;
  let initializedSecret: KvSecret | undefined;
  try {
    registered = await readIfMounted(root, paths.registered(fingerprint));
    initializedSecret = await readSecretIfMounted(root, paths.initialized(fingerprint));
  } catch (err) {
    // No namespace root yet: nothing is registered. Told by the read itself, so the bridge, which also calls
    // this, needs no right on sys/namespaces.
    if (isCloudtaserError(err, 'CT_OPENBAO_NAMESPACE_NOT_FOUND'))
      return { ...base, registered: false, initialized: false, migrationEnabled: false, incomplete: false };
    throw err;
  }
  const initialized = initializedSecret?.data;
  if (!registered) {
    const own =
      target.inspectNamespace === true
        ? await inspectOwnNamespace(client, namespaceRoot, fingerprint)
        : undefined;
    return {
      ...base,
      registered: false,
      initialized: initialized !== undefined,
      migrationEnabled: false,
      incomplete: initialized !== undefined || own?.holdsCa === true,
      ...(own ? { namespaceKept: own.exists } : {}),
      ...(own?.deregisteredAt ? { deregisteredAt: own.deregisteredAt } : {}),
    };
  }
  const record = asRegisteredRecord(registered, fingerprint, namespaceRoot);
  const attestation = attestationPolicyOf(record);
  let caCertPem: string | undefined;
  const caRecord = await readIfMounted(client.withNamespace(namespace), paths.bridgeCa).catch((err) => {
    if (isCloudtaserError(err, 'CT_OPENBAO_NAMESPACE_NOT_FOUND')) return undefined;
    throw err;
  });
  if (typeof caRecord?.certificate === 'string')
    caCertPem = new X509Certificate(caRecord.certificate).toString();
  return {
    ...base,
    registered: true,
    ...(caCertPem === undefined ? { caMissing: true as const } : {}),
    initialized: initialized !== undefined,
    operationalHash: record.ca_sha256,
    caCertPem,
    registeredAt: record.registered_at,
    initializedAt: typeof initialized?.initialized_at === 'string' ? initialized.initialized_at : undefined,
    initializedBrokerKeySha256:
      typeof initialized?.broker_key_sha256 === 'string' ? initialized.broker_key_sha256 : undefined,
    ...(initializedSecret ? { initializedVersion: initializedSecret.version } : {}),
    ...(typeof initialized?.attestation_iat === 'number'
      ? { initializedAttestationIat: initialized.attestation_iat }
      : {}),
    ...(attestation ? { attestation } : {}),
    ...(typeof record.rearm_expires_at === 'string' ? { rearmExpiresAt: record.rearm_expires_at } : {}),
    migrationEnabled: migrationEnabledOf(record),
    incomplete: false,
  };
}

/** Whether the cluster's namespace exists owned by this fingerprint (not one sharing its prefix), and still holds its CA. */
async function inspectOwnNamespace(
  client: OpenBaoClient,
  namespaceRoot: string,
  fingerprint: string,
): Promise<{ exists: boolean; holdsCa: boolean; deregisteredAt?: string }> {
  const fp8 = fingerprintPrefix(fingerprint);
  const ns = await client.withNamespace(namespaceRoot).readNamespace(fp8);
  if (ns?.customMetadata?.[OWNER_METADATA_KEY] !== fingerprint) return { exists: false, holdsCa: false };
  const cluster = client.withNamespace(clusterNamespace(namespaceRoot, fingerprint));
  const [ca, kept] = await Promise.all([
    readIfMounted(cluster, paths.bridgeCa),
    readIfMounted(cluster, paths.deregistered),
  ]);
  return {
    exists: true,
    holdsCa: ca !== undefined,
    ...(typeof kept?.deregistered_at === 'string' ? { deregisteredAt: kept.deregistered_at } : {}),
  };
}

export interface RegisteredCluster {
  readonly fingerprint: string;
  readonly namespace: string;
  readonly operationalHash: string;
  /** When the registration was first written (as its record says). */
  readonly registeredAt?: string;
  readonly initialized: boolean;
  /** Present (true) when bootstrap requires an attestation token. */
  readonly attested?: true;
  /** SHA-256 of the SPKI of the broker key the latest bootstrap was signed for, when initialized. */
  readonly brokerKeySha256?: string;
  /** Present (true) when the registration lets the bridge migrate Secrets. */
  readonly migrationEnabled?: true;
}

/** Clusters read at once by a full listing: enough to hide latency, few enough not to flood OpenBao. */
const LIST_CONCURRENCY = 8;

/** Runs `work` on every item, `LIST_CONCURRENCY` at a time. */
async function forEachConcurrently<T>(items: readonly T[], work: (item: T, at: number) => Promise<void>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const at = next++;
      await work(items[at], at);
    }
  };
  await Promise.all(Array.from({ length: Math.min(LIST_CONCURRENCY, items.length) }, worker));
}

/** The keys under `clusters/`, or undefined when the namespace root or its records mount does not exist. */
async function listClusterKeys(root: OpenBaoClient): Promise<string[] | undefined> {
  return root.kvList(RECORDS_MOUNT, paths.clustersPrefix).catch((err) => {
    if (
      isCloudtaserError(err, 'CT_OPENBAO_NAMESPACE_NOT_FOUND') ||
      isCloudtaserError(err, 'CT_OPENBAO_NOT_FOUND')
    )
      return undefined;
    throw err;
  });
}

const FINGERPRINT_KEY = /^[0-9a-f-]{36}$/;

/**
 * Every registered cluster under the root, as a bridge's full resync sees them: one LIST plus two reads per
 * cluster, a few clusters at a time. A record that cannot be read as a registration is reported to
 * `onCorrupt` (when given) and skipped, so one damaged record does not hide the rest of the fleet.
 */
export async function listRegisteredClusters(
  client: OpenBaoClient,
  options: { namespaceRoot?: string; onCorrupt?: (fingerprint: string, err: CloudtaserError) => void } = {},
): Promise<RegisteredCluster[]> {
  const namespaceRoot = validateNamespaceRoot(options.namespaceRoot ?? DEFAULT_NAMESPACE_ROOT);
  const root = client.withNamespace(namespaceRoot);
  const keys = (await listClusterKeys(root)) ?? [];
  const fingerprints = keys.map((key) => key.replace(/\/$/, '')).filter((fp) => FINGERPRINT_KEY.test(fp));
  const found: (RegisteredCluster | undefined)[] = new Array(fingerprints.length);
  await forEachConcurrently(fingerprints, async (fingerprint, at) => {
    try {
      found[at] = await readRegisteredCluster(root, fingerprint);
    } catch (err) {
      if (!options.onCorrupt || !isCloudtaserError(err, 'CT_REGISTRATION_CORRUPT')) throw err;
      options.onCorrupt(fingerprint, err);
    }
  });
  return found.filter((cluster) => cluster !== undefined);
}

/** What `source list` shows: the fleet under a namespace root, and everything under it that is not a whole registration. */
export interface RegistrationAudit {
  readonly namespaceRoot: string;
  /** False when the namespace root (or its records mount) does not exist: nothing registered yet, or a typo. */
  readonly rootExists: boolean;
  /** Sorted by fingerprint. */
  readonly clusters: readonly RegisteredCluster[];
  /**
   * Fingerprints with records but no registration record: a deregistration that stopped half-way (the bridge
   * serves none of them). Sorted.
   */
  readonly incomplete: readonly string[];
  /** Entries that could not be read (a damaged record, a refused read, a key that is no fingerprint). Sorted. */
  readonly unreadable: ReadonlyArray<{
    readonly key: string;
    readonly code: string;
    readonly message: string;
  }>;
}

/**
 * Every entry under the root's `clusters/`, each read on its own: unlike a bridge's listing, one entry that
 * cannot be read (damaged, refused by policy, written by hand under a key that is no fingerprint) is reported
 * with its code and the rest still shows. Same reads as listRegisteredClusters, so the registrar policy covers it.
 */
export async function auditRegistrations(
  client: OpenBaoClient,
  options: { namespaceRoot?: string } = {},
): Promise<RegistrationAudit> {
  const namespaceRoot = validateNamespaceRoot(options.namespaceRoot ?? DEFAULT_NAMESPACE_ROOT);
  const root = client.withNamespace(namespaceRoot);
  const keys = await listClusterKeys(root);
  const clusters: RegisteredCluster[] = [];
  const incomplete: string[] = [];
  const unreadable: Array<{ key: string; code: string; message: string }> = [];
  const read = async (fingerprint: string) => {
    // Unlike a bridge's read, the attestation settings are parsed too: an audit must not list as attested a
    // cluster whose settings no bridge can use (it would refuse that cluster's next bootstrap).
    const cluster = await readRegisteredCluster(root, fingerprint, { checkAttestation: true });
    if (cluster) clusters.push(cluster);
    else incomplete.push(fingerprint);
  };
  const listApart = (fingerprint: string, err: unknown) => {
    if (!isCloudtaserError(err)) throw err;
    unreadable.push({ key: fingerprint, code: err.code, message: err.message });
  };
  /** Refused by a rate-limit quota even after the client's retries: read again one at a time, below. */
  const rateLimited: string[] = [];
  await forEachConcurrently(keys ?? [], async (key) => {
    const fingerprint = key.replace(/\/$/, '');
    if (!FINGERPRINT_KEY.test(fingerprint)) {
      unreadable.push({
        key,
        code: 'CT_REGISTRATION_CORRUPT',
        message: `clusters/${key} is not a cluster fingerprint (a lowercase UUID): no bridge serves it; written by hand?`,
      });
      return;
    }
    await read(fingerprint).catch((err) => {
      if (isCloudtaserError(err, 'CT_OPENBAO_RATE_LIMITED')) rateLimited.push(fingerprint);
      else listApart(fingerprint, err);
    });
  });
  // A quota is a pace, not a broken record: an outside fleet test listed 26 healthy clusters of 272 as unreadable
  // under one. What it refused is read again one cluster at a time, pausing 1, 2 and 4 s when refused again (a
  // quota's windows are seconds), so only a record OpenBao still refuses then is listed apart.
  for (const fingerprint of rateLimited) {
    for (const pauseMs of [1_000, 2_000, 4_000, undefined]) {
      try {
        await read(fingerprint);
      } catch (err) {
        if (pauseMs !== undefined && isCloudtaserError(err, 'CT_OPENBAO_RATE_LIMITED')) {
          await new Promise((resolve) => setTimeout(resolve, pauseMs));
          continue;
        }
        listApart(fingerprint, err);
      }
      break;
    }
  }
  const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return {
    namespaceRoot,
    rootExists: keys !== undefined,
    clusters: clusters.sort((a, b) => byText(a.fingerprint, b.fingerprint)),
    incomplete: incomplete.sort(byText),
    unreadable: unreadable.sort((a, b) => byText(a.key, b.key)),
  };
}

/**
 * One cluster as a bridge serves it (registration and initialization records, read together), or undefined
 * when it is not registered. `root` is a client for the root namespace. Throws CT_REGISTRATION_CORRUPT for an
 * unreadable registration record.
 */
export async function readRegisteredCluster(
  root: OpenBaoClient,
  fingerprint: string,
  options: { changedByOthers?: boolean; checkAttestation?: boolean } = {},
): Promise<RegisteredCluster | undefined> {
  const read = { changedByOthers: options.changedByOthers };
  const [registered, initialized] = await Promise.all([
    root.kvRead(RECORDS_MOUNT, paths.registered(fingerprint), read),
    root.kvRead(RECORDS_MOUNT, paths.initialized(fingerprint), read),
  ]);
  if (!registered) return undefined;
  const record = asRegisteredRecord(registered.data, fingerprint, root.namespace);
  if (options.checkAttestation) attestationPolicyOf(record);
  const brokerKeySha256 = initialized?.data.broker_key_sha256;
  return {
    fingerprint,
    namespace: record.namespace,
    operationalHash: record.ca_sha256,
    ...(typeof record.registered_at === 'string' ? { registeredAt: record.registered_at } : {}),
    initialized: initialized !== undefined,
    ...(record.attestation !== undefined && record.attestation !== null ? { attested: true as const } : {}),
    ...(migrationEnabledOf(record) ? { migrationEnabled: true as const } : {}),
    ...(typeof brokerKeySha256 === 'string' ? { brokerKeySha256 } : {}),
  };
}
