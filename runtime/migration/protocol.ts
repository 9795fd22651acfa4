/**
 * What broker and bridge exchange to migrate one Kubernetes Secret (`PUT /migration/v1/secrets/<ns>/<name>`),
 * and the proof that lets the broker delete the Secret only once OpenBao holds exactly its data:
 *   request  {"data":{k:v}, "source":{"uid","resourceVersion"}, "nonce":"<32 random bytes, base64url>"}
 *   200      {"version":N, "proof":"<hex>", "written":true|false}
 *   4xx/5xx  {"code":"CT_...", "error":"..."}
 * The proof is an HMAC keyed by the broker's fresh nonce over the version and the value the bridge read back,
 * and the bridge computes it only for a version this migration wrote, so it reveals nothing about a value
 * anyone else stored.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { isKubernetesUid } from '../core/rules.js';

/** Custom metadata the bridge keeps on `secret/k8s/<ns>/<name>`: which Secret's migration wrote which version. */
export const MIGRATION_MARKER = Object.freeze({
  /** `<uid>/<resourceVersion>` of the Kubernetes Secret the write came from. */
  source: 'cloudtaser_migration_source',
  /** The KV version that write created. */
  version: 'cloudtaser_migration_version',
  /** When (RFC 3339) the bridge wrote it. */
  writtenAt: 'cloudtaser_migration_written_at',
});

/**
 * How long a migrated version stays the migration's own: within it a retry of the same Secret gets its proof
 * again and a newer resourceVersion of the same Secret may replace it; after it the value belongs to OpenBao
 * and nothing the broker sends touches it (CT_MIGRATION_CONFLICT).
 */
export const MIGRATION_OWNERSHIP_MS = 60 * 60 * 1000;

export interface MigrationSource {
  /** `metadata.uid` of the Secret. */
  readonly uid: string;
  /** `metadata.resourceVersion` of the Secret as read. */
  readonly resourceVersion: string;
}

export interface MigrationRequestBody {
  readonly data: Record<string, string>;
  readonly source: MigrationSource;
  /** Fresh per request: the proof's key. */
  readonly nonce: string;
}

export interface MigrationAnswer {
  readonly version: number;
  readonly proof: string;
  /** False when the version already existed from an earlier attempt of the same Secret (a lost answer). */
  readonly written: boolean;
}

const NONCE_BYTES = 32;
const RESOURCE_VERSION = /^[A-Za-z0-9._-]{1,64}$/;
const MAX_KEYS = 1024;

export function newMigrationNonce(): string {
  return randomBytes(NONCE_BYTES).toString('base64url');
}

/** HMAC-SHA256(nonce, version + the data with sorted keys), hex. */
export function migrationProof(
  nonce: string,
  version: number,
  data: Readonly<Record<string, unknown>>,
): string {
  const sorted = Object.keys(data)
    .sort()
    .map((key) => [key, data[key]]);
  return createHmac('sha256', Buffer.from(nonce, 'base64url'))
    .update(`cloudtaser-migration-proof/1\n${version}\n${JSON.stringify(sorted)}`)
    .digest('hex');
}

/** The request body, or what is wrong with it (said without echoing any value). */
export function parseMigrationRequest(body: Buffer): MigrationRequestBody | string {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return 'the body is not JSON';
  }
  const record = value as Partial<Record<keyof MigrationRequestBody, unknown>> | null;
  const data = record?.data;
  if (!data || typeof data !== 'object' || Array.isArray(data)) return '"data" must be an object of strings';
  const entries = Object.entries(data as Record<string, unknown>);
  if (entries.length > MAX_KEYS) return `"data" has more than ${MAX_KEYS} keys`;
  if (entries.some(([, v]) => typeof v !== 'string')) return '"data" values must be strings';
  const source = record?.source as Partial<MigrationSource> | undefined;
  if (typeof source?.uid !== 'string' || !isKubernetesUid(source.uid))
    return '"source.uid" must be the Secret\'s metadata.uid';
  if (typeof source.resourceVersion !== 'string' || !RESOURCE_VERSION.test(source.resourceVersion))
    return '"source.resourceVersion" must be the Secret\'s metadata.resourceVersion';
  const nonce = record?.nonce;
  if (typeof nonce !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(nonce))
    return `"nonce" must be ${NONCE_BYTES} random bytes, base64url`;
  return {
    data: Object.fromEntries(entries) as Record<string, string>,
    source: { uid: source.uid, resourceVersion: source.resourceVersion },
    nonce,
  };
}
