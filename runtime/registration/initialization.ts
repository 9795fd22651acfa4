/**
 * The bootstrap's records, as the bridge and `source register --rearm` handle them: the cluster's trust (CA and
 * bridge certificate) the bridge loads to sign a broker's request, the one-time `initialized` record written
 * with check-and-set, and the re-arm that allows one more bootstrap.
 */
import { randomUUID } from 'node:crypto';
import { CloudtaserError, isCloudtaserError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { parseFingerprint } from '../core/rules.js';
import type { OpenBaoClient } from '../openbao/index.js';
import { type CertificateAuthority, loadCertificateAuthority } from '../pki/index.js';
import { announceChange } from './change-journal.js';
import { DEFAULT_REARM_WINDOW_MS, MAX_REARM_WINDOW_MS } from './defaults.js';
import {
  asCertificateRecord,
  type BridgeCaRecord,
  type BridgeClientRecord,
  DEFAULT_NAMESPACE_ROOT,
  type InitializedRecord,
  paths,
  RECORDS_MOUNT,
  validateNamespaceRoot,
} from './layout.js';
import type { RegistrationTarget } from './register.js';

export interface ClusterTrust {
  readonly ca: CertificateAuthority;
  readonly bridgeCertPem: string;
  readonly bridgeKeyPem: string;
}

/** The bridge's view of one cluster: the CA (to sign the broker's CSR) and its own client certificate. */
export async function loadClusterTrust(
  client: OpenBaoClient,
  cluster: { namespace: string },
): Promise<ClusterTrust> {
  const ns = client.withNamespace(cluster.namespace);
  const caRecord = asCertificateRecord<BridgeCaRecord>(
    (await ns.kvRead(RECORDS_MOUNT, paths.bridgeCa))?.data,
    'cluster CA',
  );
  const bridgeRecord = asCertificateRecord<BridgeClientRecord>(
    (await ns.kvRead(RECORDS_MOUNT, paths.bridgeClient))?.data,
    'bridge certificate',
  );
  if (!caRecord || !bridgeRecord) {
    throw new CloudtaserError(
      'CT_REGISTRATION_CORRUPT',
      `cluster namespace ${cluster.namespace} has no CA or bridge certificate; run \`cloudtaser-cli source register\` again`,
    );
  }
  return {
    ca: loadCertificateAuthority(caRecord.certificate, caRecord.private_key),
    bridgeCertPem: bridgeRecord.certificate,
    bridgeKeyPem: bridgeRecord.private_key,
  };
}

/**
 * Marks a cluster initialized with a check-and-set write (cas=0): exactly one caller ever succeeds, across
 * bridge replicas, so the bootstrap cannot be replayed. Throws CT_ALREADY_INITIALIZED for the losers.
 * An attested re-bootstrap passes `replacesVersion` (the version it read): the rewrite is a check-and-set
 * against that version, so of two concurrent re-bootstraps exactly one wins as well.
 */
export async function markClusterInitialized(
  client: OpenBaoClient,
  options: {
    fingerprint: string;
    namespaceRoot?: string;
    brokerCertSha256: string;
    brokerKeySha256?: string;
    replacesVersion?: number;
    /** `iat` of the attestation token the bootstrap was admitted with. */
    attestationIat?: number;
    logger?: Logger;
  },
): Promise<InitializedRecord> {
  const fingerprint = parseFingerprint(options.fingerprint);
  const namespaceRoot = validateNamespaceRoot(options.namespaceRoot ?? DEFAULT_NAMESPACE_ROOT);
  const root = client.withNamespace(namespaceRoot);
  // The other bridge replicas learn of the bootstrap (and of a re-bootstrap's new key) from the journal.
  const announcement = announceChange(client, {
    namespaceRoot,
    fingerprint,
    change: 'initialize',
    logger: options.logger,
  });
  await announcement.begin();
  try {
    return await writeInitialized(root, fingerprint, options);
  } finally {
    await announcement.end();
  }
}

async function writeInitialized(
  root: OpenBaoClient,
  fingerprint: string,
  options: {
    brokerCertSha256: string;
    brokerKeySha256?: string;
    replacesVersion?: number;
    attestationIat?: number;
  },
): Promise<InitializedRecord> {
  const record: InitializedRecord = {
    initialized_at: new Date().toISOString(),
    broker_cert_sha256: options.brokerCertSha256,
    ...(options.brokerKeySha256 ? { broker_key_sha256: options.brokerKeySha256 } : {}),
    ...(options.attestationIat !== undefined ? { attestation_iat: options.attestationIat } : {}),
    write_id: randomUUID(),
  };
  try {
    await root.kvWrite(
      RECORDS_MOUNT,
      paths.initialized(fingerprint),
      { ...record },
      { cas: options.replacesVersion ?? 0 },
    );
  } catch (err) {
    if (isCloudtaserError(err, 'CT_OPENBAO_CAS_MISMATCH')) {
      // The client retries a write whose answer was lost (5xx from a proxy, reset) although OpenBao committed
      // it; the retry then meets our own record. The write id is unique to this call, so a match is us. A read
      // that fails proves nothing either way: its error goes to the caller (a retryable refusal), never
      // "already initialized".
      const existing = await root.kvRead(RECORDS_MOUNT, paths.initialized(fingerprint));
      if (existing?.data.write_id === record.write_id) return record;
      throw new CloudtaserError('CT_ALREADY_INITIALIZED', alreadyInitializedMessage(fingerprint), {
        cause: err,
      });
    }
    throw err;
  }
  return record;
}

/** Allows one more bootstrap for a registered cluster by removing its `initialized` record. */
export async function rearmCluster(
  client: OpenBaoClient,
  target: RegistrationTarget & {
    /** How long the re-arm stays open. @default DEFAULT_REARM_WINDOW_MS (1 h); at most MAX_REARM_WINDOW_MS */
    readonly windowMs?: number;
  },
): Promise<{ wasInitialized: boolean; expiresAt?: string }> {
  const fingerprint = parseFingerprint(target.fingerprint);
  const namespaceRoot = validateNamespaceRoot(target.namespaceRoot ?? DEFAULT_NAMESPACE_ROOT);
  const windowMs = checkRearmWindow(target.windowMs ?? DEFAULT_REARM_WINDOW_MS);
  const root = client.withNamespace(namespaceRoot);
  const [existing, registered] = await Promise.all([
    root.kvRead(RECORDS_MOUNT, paths.initialized(fingerprint)),
    root.kvRead(RECORDS_MOUNT, paths.registered(fingerprint)),
  ]);
  const announcement = announceChange(client, {
    namespaceRoot,
    fingerprint,
    change: 'rearm',
    logger: target.logger,
  });
  // Announced even when no record was read: a bootstrap that lands between that read and the delete below is
  // removed too, and a bridge that saw it must hear of it.
  await announcement.begin();
  // The window closes the re-arm: written before the initialization record goes, so no moment has a re-armed
  // cluster without it. Asked for, it is set also on a cluster that has not bootstrapped yet (its first contact
  // then closes with it). A record another run changed meanwhile fails the check-and-set.
  const expiresAt = registered
    ? await writeRearmWindow(root, fingerprint, registered, windowMs, target.logger)
    : undefined;
  await root.kvDeleteMetadata(RECORDS_MOUNT, paths.initialized(fingerprint));
  await announcement.end();
  return { wasInitialized: existing !== undefined, ...(expiresAt ? { expiresAt } : {}) };
}

/** The window as given, or CT_INVALID_ARGUMENT when it is not a whole number of ms in (0, MAX_REARM_WINDOW_MS]. */
export function checkRearmWindow(windowMs: number): number {
  if (!Number.isSafeInteger(windowMs) || windowMs < 1 || windowMs > MAX_REARM_WINDOW_MS)
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `the re-arm window must be between 1 ms and ${MAX_REARM_WINDOW_MS / 3_600_000} h (a window of years is no window)`,
    );
  return windowMs;
}

/** Clocks further apart than this are corrected to OpenBao's: the bridges beside it compare with theirs. */
const CLOCK_SKEW_TOLERANCE_MS = 60_000;

/**
 * Writes `rearm_expires_at` into the registration record (check-and-set on the version read) and returns it. The
 * window starts at OpenBao's clock, not this host's (see followOpenBaoClock).
 */
export async function writeRearmWindow(
  root: OpenBaoClient,
  fingerprint: string,
  registered: { data: Record<string, unknown>; version: number },
  windowMs: number,
  logger?: Logger,
): Promise<string> {
  const window = startRearmWindow(windowMs);
  const data = { ...registered.data, rearm_expires_at: window.expiresAt };
  const written = await root.kvWrite(RECORDS_MOUNT, paths.registered(fingerprint), data, {
    cas: registered.version,
  });
  return followOpenBaoClock(root, fingerprint, data, written, window, logger);
}

/** A window started by this host's clock, to be written in a record and then checked by followOpenBaoClock. */
export function startRearmWindow(windowMs: number): {
  readonly localNow: number;
  readonly windowMs: number;
  readonly expiresAt: string;
} {
  const localNow = Date.now();
  return { localNow, windowMs, expiresAt: new Date(localNow + windowMs).toISOString() };
}

/**
 * The window `data` was just written with (answer `written`), started again at OpenBao's clock when this host's
 * differs from it by more than a minute: a CLI host two hours behind wrote a window already over (the bridge then
 * refused the very broker the re-arm was for). OpenBao's time comes with the write's own answer (`created_time`),
 * so only a skewed clock costs a second write.
 */
export async function followOpenBaoClock(
  root: OpenBaoClient,
  fingerprint: string,
  data: Record<string, unknown>,
  written: { version: number; createdTime?: string },
  window: { localNow: number; windowMs: number; expiresAt: string },
  logger?: Logger,
): Promise<string> {
  const openBaoNow = Date.parse(written.createdTime ?? '');
  if (!Number.isFinite(openBaoNow) || Math.abs(openBaoNow - window.localNow) <= CLOCK_SKEW_TOLERANCE_MS)
    return window.expiresAt;
  const expiresAt = new Date(openBaoNow + window.windowMs).toISOString();
  await root.kvWrite(
    RECORDS_MOUNT,
    paths.registered(fingerprint),
    { ...data, rearm_expires_at: expiresAt },
    { cas: written.version },
  );
  logger?.warn(
    { event: 'registration.clock_skew', skewSeconds: Math.round((window.localNow - openBaoNow) / 1000) },
    "this host's clock differs from OpenBao's; the re-arm window follows OpenBao's clock",
  );
  return expiresAt;
}

/**
 * Whether a re-arm window (`rearm_expires_at`) has passed: what the bridge refuses a bootstrap on and `source
 * status` reports. A time that does not parse counts as passed (fail closed).
 */
export function isRearmExpired(expiresAt: string, now = Date.now()): boolean {
  return !(Date.parse(expiresAt) > now);
}

/** The command that allows one more bootstrap of a cluster (there is no `source rearm`). */
export const REARM_COMMAND = (fingerprint: string) =>
  `cloudtaser-cli source register --fingerprint ${fingerprint} --rearm`;

/**
 * Says where to get the whole fingerprint too: a broker's /status shows this with every fingerprint cut to its
 * first 8 characters, and a command pasted from there would name none.
 */
export function alreadyInitializedMessage(fingerprint: string): string {
  // One text whether it bootstrapped or a re-arm window passed: it reaches whoever holds the fingerprint, who need
  // not learn that the operator re-armed and its broker never came (a security review); the bridge's log
  // (bridge.rearm_expired) and `source status` tell the operator which.
  return `cluster ${fingerprint} allows no bootstrap now (it has bootstrapped once, or a re-arm's window passed unused; \`cloudtaser-cli source status\` says which); if another broker of this cluster serves it (\`cloudtaser-cli source doctor\` names the one holding the tunnel), do not re-arm: stop this one; otherwise, to allow one more, run \`${REARM_COMMAND(fingerprint)}\` right before the operator restarts (the whole fingerprint: \`cloudtaser-cli target fingerprint\` in the cluster, or the registration), or replace the cloudtaser_cluster_registration resource`;
}
