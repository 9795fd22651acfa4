import { X509Certificate } from 'node:crypto';
import { parseJwks, refusePrivateJwks } from '../attestation/index.js';
import { CloudtaserError, isCloudtaserError } from '../core/errors.js';
import { fingerprintPrefix, initHash, operationalHash } from '../core/hashes.js';
import { type Logger, silentLogger } from '../core/log.js';
import {
  DEFAULT_OPERATOR_SERVICE_ACCOUNT_REF,
  ISSUER_RULE,
  parseFingerprint,
  parseNamespacedName,
  requireRule,
  SERVICE_ACCOUNT_RULE,
} from '../core/rules.js';
import type { KvSecret, NamespaceInfo, OpenBaoClient } from '../openbao/index.js';
import {
  type CertificateAuthority,
  createCertificateAuthority,
  isIssuedBy,
  issueCertificate,
  LIFETIME_DAYS,
  loadCertificateAuthority,
} from '../pki/index.js';
import { announceChange, type ChangeAnnouncement } from './change-journal.js';
import { asLostCreateRace } from './create-once.js';
import { DEFAULT_REARM_WINDOW_MS } from './defaults.js';
import { checkRearmWindow, followOpenBaoClock, startRearmWindow } from './initialization.js';
import {
  type AttestationRecord,
  asCertificateRecord,
  asRegisteredRecord,
  attestationPolicyOf,
  type BridgeCaRecord,
  type BridgeClientRecord,
  clusterNamespace,
  DEFAULT_NAMESPACE_ROOT,
  type DeregisteredRecord,
  KUBERNETES_AUTH_MOUNT,
  migrationEnabledOf,
  OWNER_METADATA_KEY,
  type PrefixClaimRecord,
  paths,
  RECORDS_MOUNT,
  type RegisteredRecord,
  validateNamespaceRoot,
  WORKLOAD_MOUNT,
} from './layout.js';
import { deleteIfMounted, readIfMounted } from './mounted-records.js';
import { ensureTokenReviewAuth, TOKENREVIEW_PATHS } from './tokenreview.js';

export interface RegistrationTarget {
  /** The cluster's kube-system namespace UID. */
  readonly fingerprint: string;
  /** @default 'cloudtaser' */
  readonly namespaceRoot?: string;
  readonly logger?: Logger;
}

export interface RegisterOptions extends RegistrationTarget {
  /**
   * The bridge's TokenReview endpoint as OpenBao reaches it; the cluster's Kubernetes auth `kubernetes_host`
   * becomes `<endpoint>/clusters/<fingerprint>`. @default the endpoint the cluster points at now (a re-run keeps
   * it), else DEFAULT_TOKENREVIEW_ENDPOINT
   */
  readonly tokenReviewEndpoint?: string;
  /**
   * PEM CA of the endpoint's certificate when you bring the listener certificate (e.g. cert-manager). Without it,
   * the listener CA registration keeps in OpenBao, from which the bridge issues its own.
   */
  readonly tokenReviewCaCertPem?: string;
  /**
   * Turn on attested bootstrap, or refresh its keys after the cluster rotated them. Without it an existing
   * attestation setting is kept as it is.
   */
  readonly attestation?: AttestationSettings;
  /**
   * Let the bridge migrate this cluster's Kubernetes Secrets into OpenBao (`true`) or refuse it (`false`).
   * Undefined keeps the stored setting (off for a new registration).
   */
  readonly migration?: boolean;
  /**
   * Refuse a cluster that is already registered (CT_REGISTRATION_EXISTS) instead of re-running idempotently:
   * the registration record is written with check-and-set 0, so of two runs racing for one cluster only one
   * wins. For owners that must be the only one (the Terraform resource's create); the CLI re-runs. @default false
   */
  readonly requireNew?: boolean;
  /**
   * Change a registration known to exist with this operational hash (the Terraform resource's update), and refuse,
   * before writing anything, when it does not: deregistered since (CT_NOT_REGISTERED) or registered again with
   * another CA (CT_REGISTRATION_EXISTS). Without it an update after an out-of-band deregistration registered the
   * cluster anew with a new CA. @default no such check
   */
  readonly expectedOperationalHash?: string;
  /**
   * The time recorded for a new registration. A caller that picks it can recognise its own record after a run
   * that failed once the record was written. @default now
   */
  readonly registeredAt?: string;
  /**
   * How long a registration that reopens a kept namespace (one a deregistration without purge left, workload
   * secrets and all) leaves its first bootstrap open, as a re-arm does. @default DEFAULT_REARM_WINDOW_MS (1 h)
   */
  readonly rearmWindowMs?: number;
}

/** The operator's service account when none is named: the Helm chart's default. */
export const DEFAULT_OPERATOR_SERVICE_ACCOUNT = Object.freeze(
  parseNamespacedName(DEFAULT_OPERATOR_SERVICE_ACCOUNT_REF)!,
);

export interface AttestationSettings {
  /** `iss` of the cluster's service-account tokens (`kubectl get --raw /.well-known/openid-configuration`). */
  readonly issuer: string;
  /** The cluster's `/openid/v1/jwks` document, as an object or JSON text. */
  readonly jwks: unknown;
  /** @default DEFAULT_OPERATOR_SERVICE_ACCOUNT */
  readonly serviceAccount?: { readonly namespace: string; readonly name: string };
}

/** Validates attestation settings into the stored record form; throws CT_INVALID_ARGUMENT naming the flag. */
export function validateAttestationSettings(settings: AttestationSettings): AttestationRecord {
  const issuer = requireRule(ISSUER_RULE, '--attestation-issuer', settings.issuer);
  const account = settings.serviceAccount ?? DEFAULT_OPERATOR_SERVICE_ACCOUNT;
  requireRule(SERVICE_ACCOUNT_RULE, '--attestation-service-account', `${account.namespace}/${account.name}`);
  refusePrivateJwks(settings.jwks);
  return {
    issuer,
    jwks: parseJwks(settings.jwks),
    service_account: { namespace: account.namespace, name: account.name },
  };
}

export interface RegistrationResult {
  readonly fingerprint: string;
  readonly namespace: string;
  readonly initHash: string;
  readonly operationalHash: string;
  /** The cluster CA certificate (public). */
  readonly caCertPem: string;
  readonly initialized: boolean;
  readonly registeredAt: string;
  /** True when bootstrap requires an attestation token (registered with attestation settings). */
  readonly attested: boolean;
  /** True when the bridge serves Secret migration for this cluster. */
  readonly migrationEnabled: boolean;
  /** False when everything already existed (an idempotent re-run). */
  readonly changed: boolean;
  /**
   * Set when this run reopened a kept namespace: until then its first bootstrap is open, after it bridges refuse
   * a bootstrap without attestation until `--rearm` (see rearm_expires_at).
   */
  readonly rearmExpiresAt?: string;
}

/**
 * Re-issue the bridge certificate when it has less than this left, so a re-run of register renews it. Bridges mint
 * their own from the cluster CA in that window (runtime/bridge/bridge-certificate.ts), so nothing depends on a re-run.
 */
export const BRIDGE_RENEW_BEFORE_MS = 30 * 86_400_000;

/**
 * Registers a cluster with OpenBao. Idempotent: a second run for the same fingerprint keeps the same CA and
 * changes nothing; a run after a half-done one completes it. Refuses a namespace whose 8-character prefix
 * belongs to another fingerprint. `client` must point at the OpenBao root namespace with an admin token.
 */
export async function registerCluster(
  client: OpenBaoClient,
  target: RegisterOptions,
): Promise<RegistrationResult> {
  try {
    return await registerSteps(client, target);
  } catch (err) {
    throw saidToBeResumable(err);
  }
}

/**
 * An OpenBao failure (5xx, sealed, timeout, quota, connection) may stop a register between its writes. The error
 * says what failed; this says what it means, which an outside fleet test found nowhere: nothing is lost, a rerun
 * finishes it. Refusals (a clash, an owner, a bad argument) stop before any write and are left as they are.
 */
function saidToBeResumable(err: unknown): unknown {
  if (!isCloudtaserError(err) || !err.code.startsWith('CT_OPENBAO_')) return err;
  // Found before the first write (the probe of namespace support): there is nothing to finish. A lost
  // check-and-set says itself what to run again.
  if (err.code === 'CT_OPENBAO_NAMESPACES_UNSUPPORTED' || err.code === 'CT_OPENBAO_CAS_MISMATCH') return err;
  // A policy that refuses a step refuses it again on a rerun: the policy comes first (an outside docs drill, with
  // another namespace root than its policy's, was told only to run it again).
  if (err.code === 'CT_OPENBAO_PERMISSION_DENIED')
    return new CloudtaserError(
      err.code,
      `${err.message}; a rerun meets the same refusal until the token's policy allows the step: \`cloudtaser-cli source policy registrar\` prints what register needs (add --namespace-root for another root), then run it again: it picks up where it stopped`,
      { cause: err.cause ?? err, details: err.details },
    );
  return new CloudtaserError(
    err.code,
    `${err.message}; the register may have stopped half-way: nothing is lost, run it again to finish it (it picks up where it stopped), or deregister --purge to remove what it made`,
    { cause: err.cause ?? err, details: err.details },
  );
}

async function registerSteps(client: OpenBaoClient, target: RegisterOptions): Promise<RegistrationResult> {
  const fingerprint = parseFingerprint(target.fingerprint);
  const namespaceRoot = validateNamespaceRoot(target.namespaceRoot ?? DEFAULT_NAMESPACE_ROOT);
  const log = (target.logger ?? silentLogger).child({ fingerprintPrefix: fingerprintPrefix(fingerprint) });
  const namespace = clusterNamespace(namespaceRoot, fingerprint);
  const fp8 = fingerprintPrefix(fingerprint);
  // Validated before any write: a bad JWKS file must not leave a half-changed registration behind.
  const attestation = target.attestation ? validateAttestationSettings(target.attestation) : undefined;
  const rearmWindowMs = checkRearmWindow(target.rearmWindowMs ?? DEFAULT_REARM_WINDOW_MS);
  let changed = false;
  let rearmExpiresAt: string | undefined;

  // 1. Root namespace and its records mount.
  await client.createNamespace(namespaceRoot);
  const root = client.withNamespace(namespaceRoot);
  changed = (await root.enableKvV2(RECORDS_MOUNT)) || changed;
  // Bridges learn of what follows from the discovery journal: `begin` before the first write they must see,
  // `end` after the last (a run that fails in between is still seen, once the journal's watch window passed).
  const announcement = announceChange(client, {
    namespaceRoot,
    fingerprint,
    change: 'register',
    logger: log,
  });

  // An update reads the record it changes first; step 5 uses that read instead of a second one.
  const expected =
    target.expectedOperationalHash === undefined
      ? undefined
      : await assertStillRegistered(root, fingerprint, target.expectedOperationalHash);

  // 2. Claim the fingerprint prefix, or refuse a clash, before writing anything cluster-specific.
  const existingNamespace = await claimPrefix(root, namespaceRoot, fingerprint, log);

  // The two records step 5 needs, read while steps 3 and 4 run: only a register writes `registered`, and
  // `initialized` is read to report it or to remove a leftover (needed either way).
  const recordsBefore = Promise.all([
    expected ?? root.kvRead(RECORDS_MOUNT, paths.registered(fingerprint)),
    root.kvRead(RECORDS_MOUNT, paths.initialized(fingerprint)),
  ]);
  // Awaited below, or the run failed first: either way not an unhandled rejection meanwhile.
  recordsBefore.catch(() => undefined);

  // 3. Cluster namespace, owned by this fingerprint, with its mounts.
  if (!existingNamespace) {
    await root.createNamespace(fp8, { customMetadata: { [OWNER_METADATA_KEY]: fingerprint } });
    changed = true;
    log.info({ event: 'registration.namespace_created', namespace }, 'created cluster namespace');
  }
  const cluster = client.withNamespace(namespace);
  // Read before anything is written in the namespace: whether a deregistration kept it (its mark), which decides
  // the re-arm window below. Read here, a policy without the mark's line stops the run before any write (read
  // after the new CA, the failure's "run it again" led to a rerun that skipped the window: a security review).
  const [mounts, keptMark] = await Promise.all([
    cluster.listMounts(),
    existingNamespace ? readIfMounted(cluster, paths.deregistered) : undefined,
  ]);
  // Three independent mounts, each enabled only if missing: at once, not one round trip after another (each
  // is a round trip to an OpenBao that may be a WAN away; a run that stops half-way enables the rest next time).
  const enabled = await Promise.all([
    cluster.enableKvV2(RECORDS_MOUNT, mounts),
    cluster.enableKvV2(WORKLOAD_MOUNT, mounts),
    cluster.enableAuth(KUBERNETES_AUTH_MOUNT, 'kubernetes'),
  ]);
  changed = enabled.includes(true) || changed;

  // 4. Cluster CA: created once, then reused, so the operational hash never moves under a running broker.
  const caOutcome = await ensureClusterCa(cluster, fingerprint);
  changed = caOutcome.created || changed;
  const ca = caOutcome.ca;
  // Kubernetes auth and the bridge certificate need the CA, not each other: together (they share the
  // announcement's one `begin`).
  const [tokenReviewChanged, certificateChanged] = await Promise.all([
    ensureTokenReviewAuth(
      root,
      cluster,
      { fingerprint, clusterCa: ca },
      {
        endpoint: target.tokenReviewEndpoint,
        caCertPem: target.tokenReviewCaCertPem,
      },
      announcement,
    ),
    ensureBridgeCertificate(cluster, ca, announcement),
  ]);
  changed = tokenReviewChanged || certificateChanged || changed;

  // 5. The registration record the bridge discovers.
  const caSha256 = operationalHash(ca.certDer);
  const [existing, initializedRecord] = await recordsBefore;
  if (target.requireNew && existing !== undefined) throw alreadyRegistered(fingerprint, existing.data);
  if (existing === undefined) {
    // A deregistration that stopped half-way can leave the one-time `initialized` record: the new registration's
    // broker could never bootstrap. Deleted inside the announcement, as any record bridges act on.
    if (initializedRecord !== undefined) {
      await announcement.begin();
      await root.kvDeleteMetadata(RECORDS_MOUNT, paths.initialized(fingerprint));
      changed = true;
      log.warn(
        { event: 'registration.stale_initialization_removed', namespace },
        'removed the initialization record a half-finished deregistration left, so the broker can bootstrap',
      );
    }
  }
  // This fingerprint's own record, whole or damaged: a plain re-run is also how a damaged one is repaired (the
  // error says so), and the repair must keep what it still says (an outside audit saw it turn migration off).
  const ownRecord = existing !== undefined && existing.data.fingerprint === fingerprint;
  const sameCluster =
    ownRecord && existing.data.ca_sha256 === caSha256 && existing.data.namespace === namespace;
  // Without new settings an existing attestation is kept: a plain re-run must not switch it off.
  const wantedAttestation = attestation ?? (ownRecord ? storedAttestation(existing.data) : undefined);
  // The same for migration: only an explicit true/false changes it.
  const wantedMigration = target.migration ?? (ownRecord ? migrationEnabledOf(existing.data) : false);
  let registeredAt: string;
  if (
    sameCluster &&
    canonicalJson(existing.data.attestation ?? null) === canonicalJson(wantedAttestation ?? null) &&
    migrationEnabledOf(existing.data) === wantedMigration
  ) {
    registeredAt = asRegisteredRecord(existing.data, fingerprint, namespaceRoot).registered_at;
  } else {
    registeredAt = sameCluster
      ? asRegisteredRecord(existing.data, fingerprint, namespaceRoot).registered_at
      : ownRecord && typeof existing.data.registered_at === 'string'
        ? existing.data.registered_at
        : (target.registeredAt ?? new Date().toISOString());
    // A namespace a deregistration without purge kept (its secrets in it) gets a new CA here: without a window its
    // first contact would stay open to whoever knows the fingerprint until some broker bootstraps, while the
    // operator's own broker, pinned to the old CA, is refused (a security review found this path, which the
    // doctor advises after a takeover, bypassed the re-arm window). The window goes in the record's own write.
    // Only over a namespace a deregistration marked as kept (an interrupted first register leaves one unmarked),
    // and whenever this record is the first since: not only for the run that minted the new CA, or a rerun after a
    // failure past the CA, or the loser of two runs at once, wrote a record with no window (a security review).
    const window =
      existing === undefined && keptMark !== undefined ? startRearmWindow(rearmWindowMs) : undefined;
    const record: RegisteredRecord = {
      fingerprint,
      namespace,
      ca_sha256: caSha256,
      registered_at: registeredAt,
      ...(wantedAttestation ? { attestation: wantedAttestation } : {}),
      ...(wantedMigration ? { migration_enabled: true } : {}),
      ...(window ? { rearm_expires_at: window.expiresAt } : {}),
    };
    await announcement.begin();
    const written = sameCluster ? updatedRecord(existing.data, record) : { ...record };
    const outcome = target.requireNew
      ? { answer: await writeNewRecord(root, fingerprint, record) }
      : await writeRecordOverRead(root, fingerprint, written, existing?.version ?? 0);
    if ('adopted' in outcome) {
      // A run of the same cluster with the same settings wrote it a moment ago: report what is stored.
      registeredAt = outcome.adopted.registered_at;
      if (window && typeof outcome.adopted.rearm_expires_at === 'string')
        rearmExpiresAt = outcome.adopted.rearm_expires_at;
    } else {
      changed = true;
      if (window) {
        rearmExpiresAt = await followOpenBaoClock(root, fingerprint, written, outcome.answer, window, log);
        log.warn(
          { event: 'registration.reopened_namespace', namespace, rearmExpiresAt },
          'registered again over a kept namespace with a new CA: its first bootstrap is open only until the window ends',
        );
      }
    }
    log.info(
      {
        event: sameCluster ? 'registration.settings_updated' : 'registration.recorded',
        namespace,
        attested: wantedAttestation !== undefined,
        attestationKeys: wantedAttestation?.jwks.keys.length,
        migrationEnabled: wantedMigration,
      },
      sameCluster ? 'registration settings updated' : 'cluster registered',
    );
  }

  // Over a namespace that existed, a `deregister --purge` of this cluster may have run meanwhile: it deletes the CA
  // and then the namespace, so a record written (or found) here could name a CA that is gone. Read it again once
  // the record is in place (an outside fleet test raced the two: 4 runs in 10 ended with a record, no namespace,
  // and `list` calling the cluster healthy). The purge's own check covers the order where it deletes last.
  if (existingNamespace) await assertCaStillThere(cluster, fingerprint, caSha256);
  // A new registration has no `initialized` (a leftover one was removed above).
  const initialized = existing !== undefined && initializedRecord !== undefined;
  await announcement.end();
  return {
    fingerprint,
    namespace,
    initHash: initHash(fingerprint),
    operationalHash: caSha256,
    caCertPem: ca.certPem,
    initialized,
    registeredAt,
    attested: wantedAttestation !== undefined,
    migrationEnabled: wantedMigration,
    changed,
    ...(rearmExpiresAt ? { rearmExpiresAt } : {}),
  };
}

export interface DeregistrationOptions extends RegistrationTarget {
  /** Also delete the cluster namespace with every workload secret in it. @default false */
  readonly purge?: boolean;
}

export interface DeregistrationResult {
  readonly fingerprint: string;
  readonly namespace: string;
  /** True when a registration record existed and was removed. */
  readonly removed: boolean;
  readonly purged: boolean;
  /**
   * The cluster's namespace, owned by this fingerprint, still exists with its workload secrets (no purge). False
   * when it was purged, never existed, or belongs to another fingerprint sharing the prefix (left untouched).
   */
  readonly namespaceKept: boolean;
}

/**
 * Deregisters a cluster: removes the registration and initialization records and the cluster's key material
 * (CA and bridge certificate), so the bridge stops accepting it and a later registration gets a fresh CA.
 * Workload secrets stay unless `purge` is set. Deregistering an unknown fingerprint is not an error.
 */
export async function deregisterCluster(
  client: OpenBaoClient,
  options: DeregistrationOptions,
): Promise<DeregistrationResult> {
  const fingerprint = parseFingerprint(options.fingerprint);
  const namespaceRoot = validateNamespaceRoot(options.namespaceRoot ?? DEFAULT_NAMESPACE_ROOT);
  const namespace = clusterNamespace(namespaceRoot, fingerprint);
  const fp8 = fingerprintPrefix(fingerprint);
  const log = (options.logger ?? silentLogger).child({ fingerprintPrefix: fp8 });

  const rootExists = (await client.readNamespace(namespaceRoot)) !== undefined;
  if (!rootExists) return { fingerprint, namespace, removed: false, purged: false, namespaceKept: false };
  const root = client.withNamespace(namespaceRoot);
  const registered = await readIfMounted(root, paths.registered(fingerprint));
  const announcement = announceChange(client, {
    namespaceRoot,
    fingerprint,
    change: 'deregister',
    logger: log,
  });
  // Announced whatever the read above found: a registration that lands between that read and the deletes below
  // is deleted too, and a bridge that read it meanwhile must hear of it. Only a namespace without the records mount
  // (nothing was ever registered there) has no journal to announce in.
  try {
    await announcement.begin();
  } catch (err) {
    if (!isCloudtaserError(err, 'CT_OPENBAO_NOT_FOUND')) throw err;
  }
  const clusterNs = await root.readNamespace(fp8);
  const ownedByUs = clusterNs !== undefined && namespaceOwner(clusterNs) === fingerprint;
  // Before anything goes: the namespace this deregistration may keep is marked as kept on purpose, so a register
  // over it (a new CA, the operator's pinned broker locked out) opens its first bootstrap only for a re-arm
  // window, while one over a namespace an interrupted register left does not (a fleet operator's retried first
  // registrations got a one-hour deadline nobody asked for). Marked also before a purge that may not finish.
  if (ownedByUs) await markKept(client.withNamespace(namespace), fingerprint);
  // Registration first: from this write on the bridge no longer treats the cluster as registered.
  await deleteIfMounted(root, paths.registered(fingerprint));
  await deleteIfMounted(root, paths.initialized(fingerprint));

  if (ownedByUs) {
    const cluster = client.withNamespace(namespace);
    await deleteIfMounted(cluster, paths.bridgeCa);
    await deleteIfMounted(cluster, paths.bridgeClient);
    // Without its record the bridge refuses every TokenReview for this cluster.
    await deleteIfMounted(cluster, TOKENREVIEW_PATHS.reviewer);
  }
  await announcement.end();
  let purged = false;
  if (options.purge && ownedByUs) {
    await root.deleteNamespace(fp8, { wait: true });
    purged = true;
    log.info(
      { event: 'registration.purged', namespace },
      'cluster namespace deleted with its workload secrets',
    );
    // A register of this cluster that ran meanwhile may have written its record again, naming the namespace just
    // deleted: that record would look whole to `list` and the bridges. Removed too (this run was asked to remove
    // the cluster); the register's own check says the same on its side when it reads after the deletion.
    if ((await readIfMounted(root, paths.registered(fingerprint))) !== undefined) {
      // A change of its own in the journal: the first one has ended, and bridges re-read at an `end`.
      const again = announceChange(client, { namespaceRoot, fingerprint, change: 'deregister', logger: log });
      await again.begin();
      await deleteIfMounted(root, paths.registered(fingerprint));
      await deleteIfMounted(root, paths.initialized(fingerprint));
      await again.end();
      log.warn(
        { event: 'registration.race_removed', namespace },
        'a register of this cluster ran while this purge deleted its namespace; its registration record, which named the deleted namespace, was removed too: register again if the cluster should stay',
      );
    }
  }
  // The prefix goes with the namespace: released when purge deleted it or it is gone already, kept otherwise (a
  // namespace left standing, owned by nobody or another fingerprint, may hold secrets another cluster sharing the
  // prefix must not inherit).
  if (
    options.purge &&
    (purged || clusterNs === undefined) &&
    (await readPrefixClaim(root, fp8)) === fingerprint
  ) {
    await deleteIfMounted(root, paths.prefixClaim(fp8));
    log.info({ event: 'registration.prefix_released', namespace }, 'fingerprint prefix released');
  }
  log.info(
    { event: 'registration.removed', namespace, wasRegistered: registered !== undefined },
    'cluster deregistered',
  );
  return {
    fingerprint,
    namespace,
    removed: registered !== undefined,
    purged,
    namespaceKept: ownedByUs && !purged,
  };
}

// --- private helpers ---

/** CT_REGISTRATION_CORRUPT when the cluster CA this run registered is no longer in the cluster namespace. */
async function assertCaStillThere(cluster: OpenBaoClient, fingerprint: string, hash: string): Promise<void> {
  const ca = await readIfMounted(cluster, paths.bridgeCa).catch((err) => {
    if (isCloudtaserError(err, 'CT_OPENBAO_NAMESPACE_NOT_FOUND')) return undefined;
    throw err;
  });
  const certificate = typeof ca?.certificate === 'string' ? ca.certificate : undefined;
  if (certificate && operationalHash(new X509Certificate(certificate).raw) === hash) return;
  throw new CloudtaserError(
    'CT_REGISTRATION_CORRUPT',
    `cluster ${fingerprint}: its cluster CA was deleted while this register ran (a deregister --purge of the same cluster at the same time?), so the registration record names a CA that is gone; run register again to repair it (a new CA: pin its operational hash), or deregister --purge to finish removing it`,
    { details: { fingerprint } },
  );
}

/** Writes `system/deregistered` (layout.ts) in a cluster namespace; nothing when it has no records mount. */
async function markKept(cluster: OpenBaoClient, fingerprint: string): Promise<void> {
  const record: DeregisteredRecord = { fingerprint, deregistered_at: new Date().toISOString() };
  try {
    await cluster.kvWrite(RECORDS_MOUNT, paths.deregistered, { ...record });
  } catch (err) {
    // A register that stopped before mounting it left nothing a window would protect.
    if (!isCloudtaserError(err, 'CT_OPENBAO_NOT_FOUND')) throw err;
  }
}

/** See RegistrationTarget.expectedOperationalHash. */
async function assertStillRegistered(
  root: OpenBaoClient,
  fingerprint: string,
  expected: string,
): Promise<KvSecret> {
  const record = await root.kvRead(RECORDS_MOUNT, paths.registered(fingerprint));
  if (record === undefined)
    throw new CloudtaserError(
      'CT_NOT_REGISTERED',
      `cluster ${fingerprint} was deregistered since this change was planned (outside this run, e.g. with source deregister); nothing was changed. Plan again: the plan then registers it anew, with a new cluster CA`,
    );
  if (record.data.ca_sha256 !== expected)
    throw new CloudtaserError(
      'CT_REGISTRATION_EXISTS',
      `cluster ${fingerprint} was registered again with another cluster CA since this change was planned; nothing was changed. Plan again to see the difference, or import the registration as it is now`,
      { details: { fingerprint } },
    );
  return record;
}

/** CT_REGISTRATION_EXISTS for a record someone else wrote. */
function alreadyRegistered(fingerprint: string, data: Record<string, unknown>): CloudtaserError {
  const at = typeof data.registered_at === 'string' ? `, registered ${data.registered_at}` : '';
  return new CloudtaserError(
    'CT_REGISTRATION_EXISTS',
    `cluster ${fingerprint} is already registered (namespace ${String(data.namespace)}${at}) by another owner`,
    { details: { fingerprint } },
  );
}

/** The record fields a register run decides; `registered_at` and the window's end come from the first writer. */
const DECIDED_FIELDS = ['fingerprint', 'namespace', 'ca_sha256', 'attestation', 'migration_enabled'] as const;

/**
 * Writes the registration record over the version this run read (check-and-set), so two runs at once cannot undo
 * each other's settings unseen (before, the later write won and both reported success: an outside fleet test).
 * Losing to a run that wrote the same decided fields (the same cluster registered twice at once) is not a
 * failure: that record is this run's outcome, and it reports the stored time. Losing to different settings is
 * refused, so the caller runs again over what is stored now.
 */
async function writeRecordOverRead(
  root: OpenBaoClient,
  fingerprint: string,
  record: Record<string, unknown>,
  readVersion: number,
): Promise<
  | { answer: { version: number; createdTime?: string } }
  | { adopted: Record<string, unknown> & { registered_at: string } }
> {
  try {
    return {
      answer: await root.kvWrite(RECORDS_MOUNT, paths.registered(fingerprint), record, { cas: readVersion }),
    };
  } catch (err) {
    if (!isCloudtaserError(err, 'CT_OPENBAO_CAS_MISMATCH')) throw err;
    const stored = (await root.kvRead(RECORDS_MOUNT, paths.registered(fingerprint)))?.data;
    const same =
      stored !== undefined &&
      typeof stored.registered_at === 'string' &&
      DECIDED_FIELDS.every(
        (field) => canonicalJson(stored[field] ?? null) === canonicalJson(record[field] ?? null),
      ) &&
      'rearm_expires_at' in stored === 'rearm_expires_at' in record;
    if (same) return { adopted: stored as Record<string, unknown> & { registered_at: string } };
    if (stored === undefined)
      throw new CloudtaserError(
        'CT_OPENBAO_CAS_MISMATCH',
        `the registration record of ${fingerprint} was removed while this run was changing it (a deregister of the cluster ran at the same moment); nothing was written to the record: run this one again to register the cluster anew (a new CA if the deregister removed it: pin its operational hash)`,
        { cause: err, details: { fingerprint } },
      );
    throw new CloudtaserError(
      'CT_OPENBAO_CAS_MISMATCH',
      `the registration record of ${fingerprint} changed while this run was registering it (another register or deregister of the cluster ran at the same moment, with other settings); nothing of this run's settings was written to the record: check \`cloudtaser-cli source status --fingerprint ${fingerprint}\` and run this one again to apply its settings over what is stored now`,
      { cause: err, details: { fingerprint } },
    );
  }
}

/**
 * Writes a registration record that must be new (check-and-set 0). A conflict is another owner's record, unless
 * it is this very record: a write whose answer was lost and that the client sent again.
 */
async function writeNewRecord(
  root: OpenBaoClient,
  fingerprint: string,
  record: RegisteredRecord,
): Promise<{ version: number; createdTime?: string }> {
  try {
    return await root.kvWrite(RECORDS_MOUNT, paths.registered(fingerprint), { ...record }, { cas: 0 });
  } catch (err) {
    if (!isCloudtaserError(err, 'CT_OPENBAO_CAS_MISMATCH')) throw err;
    const stored = await root.kvRead(RECORDS_MOUNT, paths.registered(fingerprint));
    // This run's own record: its version and OpenBao's time of it, as the lost answer would have said.
    if (stored !== undefined && canonicalJson(stored.data) === canonicalJson(record))
      return { version: stored.version, createdTime: stored.createdTime };
    throw alreadyRegistered(fingerprint, stored?.data ?? {});
  }
}

/**
 * Claims the fingerprint's 8-character prefix (and so the namespace `<root>/<fp8>`) for this cluster, or refuses a
 * clash; resolves with the cluster namespace when it exists already (read once, used after).
 *
 * The claim is a create-once record (check-and-set 0): of two runs at once for two clusters sharing a prefix,
 * exactly one writes it. The namespace's owner metadata cannot decide that, as OpenBao's namespace create
 * overwrites an existing namespace's custom metadata: both runs used to find no owner, both created, and the two
 * clusters shared one namespace and one cluster CA. Once claimed, a run reads one record instead of listing every
 * cluster; a prefix without a claim (registered before claims, or never) is checked as before (the namespace's
 * owner, every registration record) and then claimed.
 */
async function claimPrefix(
  root: OpenBaoClient,
  namespaceRoot: string,
  fingerprint: string,
  log: Logger,
): Promise<NamespaceInfo | undefined> {
  const fp8 = fingerprintPrefix(fingerprint);
  const [claim, ns] = await Promise.all([readPrefixClaim(root, fp8), root.readNamespace(fp8)]);
  const owner = ns ? namespaceOwner(ns) : undefined;
  if (owner !== undefined && owner !== fingerprint) throw namespaceClash(namespaceRoot, fingerprint, owner);
  if (claim !== undefined) {
    if (claim !== fingerprint) throw await claimedByAnother(root, namespaceRoot, fingerprint, claim);
    return ns;
  }
  await refuseRecordWithPrefix(root, namespaceRoot, fingerprint);
  const record: PrefixClaimRecord = { fingerprint, claimed_at: new Date().toISOString() };
  try {
    await root.kvWrite(RECORDS_MOUNT, paths.prefixClaim(fp8), { ...record }, { cas: 0 });
  } catch (thrown) {
    const err = await asLostCreateRace(thrown, async () => (await readPrefixClaim(root, fp8)) !== undefined);
    if (isCloudtaserError(err, 'CT_OPENBAO_PERMISSION_DENIED')) throw prefixClaimNotPermitted(fp8, err);
    if (!isCloudtaserError(err, 'CT_OPENBAO_CAS_MISMATCH')) throw err;
    // Another run claimed it a moment ago: this cluster's own earlier run, or another cluster's.
    const winner = await readPrefixClaim(root, fp8);
    if (winner !== fingerprint)
      throw await claimedByAnother(root, namespaceRoot, fingerprint, String(winner));
  }
  log.debug({ event: 'registration.prefix_claimed', prefix: fp8 }, 'fingerprint prefix claimed');
  return ns;
}

/** A registrar policy from before prefix claims (or one without their lines). */
function prefixClaimNotPermitted(fp8: string, cause: unknown): CloudtaserError {
  return new CloudtaserError(
    'CT_OPENBAO_PERMISSION_DENIED',
    `this token may not read or create the fingerprint prefix claim (${RECORDS_MOUNT}/${paths.prefixClaim(fp8)} in the root namespace): its policy predates prefix claims; write the current registrar policy (cloudtaser-cli source policy registrar | bao policy write cloudtaser-registrar -) and run again`,
    { cause },
  );
}

/** The fingerprint holding the prefix; undefined when nobody does. */
async function readPrefixClaim(root: OpenBaoClient, fp8: string): Promise<string | undefined> {
  let data: Record<string, unknown> | undefined;
  try {
    data = await readIfMounted(root, paths.prefixClaim(fp8));
  } catch (err) {
    if (isCloudtaserError(err, 'CT_OPENBAO_PERMISSION_DENIED')) throw prefixClaimNotPermitted(fp8, err);
    throw err;
  }
  if (data === undefined) return undefined;
  // Anything but a fingerprint (a hand-written record) still holds the prefix: nobody else may take it silently.
  return typeof data.fingerprint === 'string' && data.fingerprint !== ''
    ? data.fingerprint
    : '<not a cloudtaser claim>';
}

/** Refuses a registration record of another fingerprint with the same prefix (one LIST of every cluster). */
async function refuseRecordWithPrefix(root: OpenBaoClient, namespaceRoot: string, fingerprint: string) {
  const fp8 = fingerprintPrefix(fingerprint);
  const keys = await root.kvList(RECORDS_MOUNT, paths.clustersPrefix);
  const other = keys
    .map((k) => k.replace(/\/$/, ''))
    .find((key) => key !== fingerprint && key.startsWith(fp8));
  if (other) throw namespaceClash(namespaceRoot, fingerprint, other);
}

/** The clash with a prefix claimed by another fingerprint, saying so when that one is no longer registered. */
async function claimedByAnother(
  root: OpenBaoClient,
  namespaceRoot: string,
  fingerprint: string,
  claimant: string,
): Promise<CloudtaserError> {
  const registered = await readIfMounted(root, paths.registered(claimant)).catch(() => undefined);
  if (registered !== undefined) return namespaceClash(namespaceRoot, fingerprint, claimant);
  const fp8 = fingerprintPrefix(fingerprint);
  return new CloudtaserError(
    'CT_NAMESPACE_CLASH',
    `namespace ${namespaceRoot}/${fp8} is still claimed by cluster ${claimant}, which is no longer registered; its workload secrets may still be there. Deregister it with --purge to release the prefix (cloudtaser-cli source deregister --fingerprint ${claimant} --purge), or register this one under another --namespace-root`,
    { details: { fingerprint, owner: claimant } },
  );
}

function namespaceClash(namespaceRoot: string, fingerprint: string, owner: string): CloudtaserError {
  return new CloudtaserError(
    'CT_NAMESPACE_CLASH',
    `namespace ${namespaceRoot}/${fingerprintPrefix(fingerprint)} already belongs to cluster ${owner}; two clusters share the first 8 characters of their fingerprint. Deregister the other cluster with --purge, or register this one under another --namespace-root`,
    { details: { fingerprint, owner } },
  );
}

function namespaceOwner(ns: { customMetadata?: Record<string, string> }): string | undefined {
  return ns.customMetadata?.[OWNER_METADATA_KEY];
}

/**
 * Check-and-set conflicts one create-once record may meet before registration gives up: each one means another
 * writer won, whose record the next read returns (the client waits for a lagging standby to show it).
 */
const MAX_RECORD_CONFLICTS = 5;

async function ensureClusterCa(
  cluster: OpenBaoClient,
  fingerprint: string,
  conflicts = 0,
): Promise<{ ca: CertificateAuthority; created: boolean }> {
  const stored = asCertificateRecord<BridgeCaRecord>(
    (await cluster.kvRead(RECORDS_MOUNT, paths.bridgeCa))?.data,
    'cluster CA',
  );
  if (stored) return { ca: loadCertificateAuthority(stored.certificate, stored.private_key), created: false };
  const ca = createCertificateAuthority({
    commonName: `cloudtaser cluster ${fingerprintPrefix(fingerprint)}`,
    days: LIFETIME_DAYS.ca,
  });
  const record: BridgeCaRecord = { certificate: ca.certPem, private_key: ca.keyPem };
  try {
    await cluster.kvWrite(RECORDS_MOUNT, paths.bridgeCa, { ...record }, { cas: 0 });
  } catch (thrown) {
    // A concurrent register won the race: use its CA so both runs agree.
    const err = await asLostCreateRace(
      thrown,
      async () => (await cluster.kvRead(RECORDS_MOUNT, paths.bridgeCa)) !== undefined,
    );
    if (!isCloudtaserError(err, 'CT_OPENBAO_CAS_MISMATCH')) throw err;
    if (conflicts + 1 >= MAX_RECORD_CONFLICTS) throw recordKeptChanging('cluster CA', err);
    return ensureClusterCa(cluster, fingerprint, conflicts + 1);
  }
  return { ca, created: true };
}

/** The bridge's client certificate for a cluster's tunnels, with a fresh key (stored by register, or minted in memory). */
export function issueBridgeCertificate(
  ca: CertificateAuthority,
  days: number = LIFETIME_DAYS.bridge,
): { readonly certPem: string; readonly keyPem: string } {
  const issued = issueCertificate(ca, { commonName: 'cloudtaser-bridge', extKeyUsage: ['clientAuth'], days });
  return { certPem: issued.certPem, keyPem: issued.keyPem! };
}

async function ensureBridgeCertificate(
  cluster: OpenBaoClient,
  ca: CertificateAuthority,
  announcement: ChangeAnnouncement,
  conflicts = 0,
): Promise<boolean> {
  const stored = await cluster.kvRead(RECORDS_MOUNT, paths.bridgeClient);
  const record = asCertificateRecord<BridgeClientRecord>(stored?.data, 'bridge certificate');
  if (record) {
    const cert = new X509Certificate(record.certificate);
    const fresh = Date.parse(cert.validTo) - Date.now() > BRIDGE_RENEW_BEFORE_MS;
    if (fresh && isIssuedBy(cert, ca.certificate)) return false;
  }
  const issued = issueBridgeCertificate(ca);
  const next: BridgeClientRecord = {
    certificate: issued.certPem,
    private_key: issued.keyPem,
    ca_chain: ca.certPem,
  };
  // Bridges load this certificate for every pairing: a new one is a change they must see.
  await announcement.begin();
  try {
    await cluster.kvWrite(RECORDS_MOUNT, paths.bridgeClient, { ...next }, { cas: stored?.version ?? 0 });
  } catch (err) {
    // A concurrent register wrote one first; keep theirs if it is good (one bridge certificate, not two).
    if (!isCloudtaserError(err, 'CT_OPENBAO_CAS_MISMATCH')) throw err;
    if (conflicts + 1 >= MAX_RECORD_CONFLICTS) throw recordKeptChanging('bridge certificate', err);
    return ensureBridgeCertificate(cluster, ca, announcement, conflicts + 1);
  }
  return true;
}

function recordKeptChanging(what: string, cause: unknown): CloudtaserError {
  return new CloudtaserError(
    'CT_OPENBAO_CAS_MISMATCH',
    `the ${what} record changed under this registration ${MAX_RECORD_CONFLICTS} times in a row (check-and-set conflicts): another register run is writing it at the same time (let that one finish and run this one again), or its latest version was deleted with \`kv delete\` (restore it with \`kv undelete\`, or deregister and register the cluster again)`,
    { cause },
  );
}

/**
 * The stored record of the same cluster with this version's fields set to `record`: fields a later version added
 * (settings its bridge enforces) survive a settings change made by this one.
 */
function updatedRecord(stored: Record<string, unknown>, record: RegisteredRecord): Record<string, unknown> {
  const { attestation: _attestation, migration_enabled: _migration, ...kept } = stored;
  return { ...kept, ...record };
}

/** The stored attestation record of a registered record, validated; undefined when absent. */
function storedAttestation(data: Record<string, unknown>): AttestationRecord | undefined {
  if (data.attestation === undefined || data.attestation === null) return undefined;
  const policy = attestationPolicyOf(data as unknown as RegisteredRecord);
  if (!policy) return undefined;
  return { issuer: policy.issuer, jwks: policy.jwks, service_account: { ...policy.serviceAccount } };
}

/** JSON with object keys sorted, so a record read back from OpenBao (which may reorder keys) compares equal. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
