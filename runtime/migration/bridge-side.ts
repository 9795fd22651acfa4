/**
 * The bridge's half of Secret migration: writes one Kubernetes Secret's data to `secret/k8s/<ns>/<name>` in the
 * cluster's OpenBao namespace with the BRIDGE's credentials (the target side holds no OpenBao token). Values
 * cross the tunnel once, inbound; what goes back is a proof over what OpenBao stored (see protocol.ts).
 *
 * The rules, in order, so a broker (or anyone holding a broker certificate) can use the bridge's credentials
 * for nothing else:
 *   1. only for a cluster whose registration enables migration (CT_MIGRATION_DISABLED, before any OpenBao call);
 *   2. create-only: the key must hold no version yet, or its current version must be one this migration wrote
 *      for the same Secret (uid) less than MIGRATION_OWNERSHIP_MS ago; anything else is CT_MIGRATION_CONFLICT,
 *      with the same answer whatever the stored value is (no equality oracle);
 *   3. every write is a check-and-set against the version just read, so a concurrent writer wins, not us;
 *   4. the same Secret at the same resourceVersion again (the broker lost our answer) writes nothing and gets
 *      the proof for the version already written;
 *   5. the proof is computed from the value read back from OpenBao, only for the version this request wrote or
 *      rule 4 recognised.
 */
import { CloudtaserError, type ErrorCode, isCloudtaserError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { LogSummarizer } from '../core/log-summary.js';
import type { KvMetadata, OpenBaoClient } from '../openbao/index.js';
import { isKubernetesName, MIGRATION_TUNNEL_PREFIX, migrationKvPath } from '../podapi/protocol.js';
import { WORKLOAD_MOUNT } from '../registration/layout.js';
import type { TunnelReply, TunnelRequest } from '../tunnel/index.js';
import {
  MIGRATION_MARKER,
  MIGRATION_OWNERSHIP_MS,
  type MigrationAnswer,
  type MigrationSource,
  migrationProof,
  parseMigrationRequest,
} from './protocol.js';

const JSON_HEADERS = { 'content-type': 'application/json' };

export function isMigrationRequest(request: TunnelRequest): boolean {
  return request.path.startsWith(MIGRATION_TUNNEL_PREFIX);
}

export interface MigrationServiceOptions {
  /** Client for the cluster's OpenBao namespace, authenticated as the bridge. */
  readonly cluster: OpenBaoClient;
  /** What the cluster's registration says (migrationEnabledOf); false refuses every request. */
  readonly enabled: boolean;
  readonly log: Logger;
  /**
   * Where refusals are logged, keyed by code: a summarizer (core/log-summary.ts) logs the first per window and
   * folds the rest into one summary line, so a broker that repeats a refused request (or a rogue one flooding
   * it) costs one line per window. @default every refusal logged on `log`
   */
  readonly refusalLog?: Pick<LogSummarizer, 'warn'>;
  /** @default Date.now */
  readonly now?: () => number;
}

export async function serveMigration(
  request: TunnelRequest,
  options: MigrationServiceOptions,
): Promise<TunnelReply> {
  const { log } = options;
  // `where` names the Secret when there is one; the refusal log adds the cluster.
  const refused = (code: ErrorCode, message: string, where: Record<string, string> = {}) => {
    const fields = { event: 'bridge.migration_refused', code, ...where };
    if (options.refusalLog) options.refusalLog.warn(code, fields, message);
    else log.warn(fields, message);
  };
  if (!options.enabled) {
    refused(
      'CT_MIGRATION_DISABLED',
      "the broker asked for a migration but the cluster's registration does not enable it",
    );
    return refusal(
      403,
      'CT_MIGRATION_DISABLED',
      "the cluster's registration does not enable migration; register it with `cloudtaser-cli source register --migration` (Terraform: migration_enabled = true) or turn operator.migration.enabled off",
    );
  }
  if (request.method !== 'PUT')
    return refusal(
      405,
      'CT_INVALID_ARGUMENT',
      'migration takes PUT /migration/v1/secrets/<namespace>/<name>',
    );
  const rest = request.path.slice(MIGRATION_TUNNEL_PREFIX.length).split('?')[0].split('/');
  if (rest.length !== 2 || !isKubernetesName(rest[0]) || !isKubernetesName(rest[1])) {
    return refusal(
      400,
      'CT_INVALID_ARGUMENT',
      'migration paths are /migration/v1/secrets/<namespace>/<name>',
    );
  }
  const parsed = parseMigrationRequest(request.body);
  if (typeof parsed === 'string')
    return refusal(400, 'CT_INVALID_ARGUMENT', `bad migration request: ${parsed}`);
  const [namespace, name] = rest;
  const kvPath = migrationKvPath(namespace, name);
  const secretLog = log.child({ secretNamespace: namespace, secretName: name });
  const now = options.now ?? Date.now;
  const { cluster } = options;
  try {
    const metadata = await cluster.kvReadMetadata(WORKLOAD_MOUNT, kvPath);
    const current = metadata?.currentVersion ?? 0;
    const mine = ownVersion(metadata, parsed.source, now());
    let version: number;
    let written: boolean;
    if (mine === 'same-source') {
      version = current;
      written = false;
    } else if (current === 0 || mine === 'same-secret') {
      version = (await cluster.kvWrite(WORKLOAD_MOUNT, kvPath, parsed.data, { cas: current })).version;
      written = true;
      await cluster.kvWriteMetadata(WORKLOAD_MOUNT, kvPath, {
        customMetadata: {
          ...otherMetadata(metadata),
          [MIGRATION_MARKER.source]: `${parsed.source.uid}/${parsed.source.resourceVersion}`,
          [MIGRATION_MARKER.version]: String(version),
          [MIGRATION_MARKER.writtenAt]: new Date(now()).toISOString(),
        },
      });
    } else {
      refused(
        'CT_MIGRATION_CONFLICT',
        'refused a migration: the OpenBao key already holds a value this migration did not write',
        { secretNamespace: namespace, secretName: name },
      );
      return conflict(kvPath);
    }
    const stored = await cluster.kvRead(WORKLOAD_MOUNT, kvPath, { version });
    if (!stored) {
      return refusal(
        409,
        'CT_MIGRATION_UNVERIFIED',
        `version ${version} of secret/${kvPath} could not be read back (deleted or destroyed in OpenBao); the Secret is kept`,
      );
    }
    secretLog.info(
      { event: 'bridge.migration_written', written, version, keys: Object.keys(parsed.data).length },
      written ? 'migrated Secret written to OpenBao' : 'migrated Secret was already written; proved it again',
    );
    const answer: MigrationAnswer = {
      version,
      proof: migrationProof(parsed.nonce, version, stored.data),
      written,
    };
    return { status: 200, headers: JSON_HEADERS, body: JSON.stringify(answer) };
  } catch (err) {
    // Lost a check-and-set: someone wrote between our read and our write; theirs stays.
    if (isCloudtaserError(err, 'CT_OPENBAO_CAS_MISMATCH')) return conflict(kvPath);
    const code: ErrorCode = err instanceof CloudtaserError ? err.code : 'CT_INTERNAL';
    secretLog.warn({ event: 'bridge.migration_failed', code }, 'migration write failed');
    // Only the code crosses the tunnel; OpenBao's texts stay here.
    const hint =
      code === 'CT_OPENBAO_PERMISSION_DENIED'
        ? "; the bridge's OpenBao policy lacks the migration paths (cloudtaser-cli source policy bridge)"
        : '';
    return refusal(502, code, `the bridge could not write to OpenBao (${code})${hint}`);
  }
}

/**
 * Whether the key's current version is this migration's own: written for the same Secret (uid), still the
 * current version, within the ownership window. 'same-source' = also the same resourceVersion (a retry).
 */
function ownVersion(
  metadata: KvMetadata | undefined,
  source: MigrationSource,
  nowMs: number,
): 'same-source' | 'same-secret' | undefined {
  const marker = metadata?.customMetadata ?? {};
  const current = metadata?.currentVersion ?? 0;
  const [uid, resourceVersion] = (marker[MIGRATION_MARKER.source] ?? '').split('/');
  const writtenAt = Date.parse(marker[MIGRATION_MARKER.writtenAt] ?? '');
  if (
    current === 0 ||
    uid !== source.uid ||
    marker[MIGRATION_MARKER.version] !== String(current) ||
    !(nowMs - writtenAt < MIGRATION_OWNERSHIP_MS && writtenAt <= nowMs)
  )
    return undefined;
  return resourceVersion === source.resourceVersion ? 'same-source' : 'same-secret';
}

/** Custom metadata someone else set on the key: kept when we add our marker (OpenBao replaces the whole map). */
function otherMetadata(metadata: KvMetadata | undefined): Record<string, string> {
  const keep = { ...(metadata?.customMetadata ?? {}) };
  for (const key of Object.values(MIGRATION_MARKER)) delete keep[key];
  return keep;
}

function conflict(kvPath: string): TunnelReply {
  return refusal(
    409,
    'CT_MIGRATION_CONFLICT',
    `secret/${kvPath} already holds a value this migration did not write (or could not record as its own, or wrote over an hour ago); nothing was written and the Secret is kept. Compare the two and delete one of them by hand`,
  );
}

function refusal(status: number, code: ErrorCode, error: string): TunnelReply {
  return { status, headers: JSON_HEADERS, body: JSON.stringify({ code, error }) };
}
