/**
 * The broker's Secret migrator. It polls for Secrets annotated `cloudtaser.io/migrate=true` (the test server has
 * no watch, and a poll also heals anything a crash left behind) and for each one:
 *   1. sends its data, its uid/resourceVersion and a fresh nonce through the tunnel; the bridge writes it to
 *      `secret/k8s/<ns>/<name>` with its own token, create-only (see bridge-side.ts), reads it back and answers
 *      an HMAC of what OpenBao stored, keyed by the nonce;
 *   2. checks that proof against its own copy of the data: nothing is deleted before it is verified;
 *   3. deletes the Secret only with a `resourceVersion` + `uid` precondition, so one edited after it was read
 *      survives (and is migrated again, with its new content, on the next pass);
 *   4. reports the outcome as a Kubernetes Event on the Secret.
 * Every step is idempotent, so a crash anywhere loses nothing and the next pass finishes the job. When the
 * bridge refuses migration for this cluster (CT_MIGRATION_DISABLED), the pass stops asking, every marked Secret
 * gets one Event saying why, and `status()` (the broker's /status `migration`) shows the code.
 */
import { CloudtaserError, type ErrorCode, ErrorCodes, isCloudtaserError } from '../core/errors.js';
import { type Logger, moduleLogger } from '../core/log.js';
import type { KubeClient, KubeSecret } from '../kube/index.js';
import type { MIGRATION_CALLS } from '../kube/permissions.js';
import { isKubernetesName, MIGRATION_TUNNEL_PREFIX, migrationKvPath } from '../podapi/protocol.js';
import { DEFAULT_TUNNEL_LIMITS, sleep, type TunnelMux } from '../tunnel/index.js';
import { type MigrationRequestBody, migrationProof, newMigrationNonce } from './protocol.js';

export const MIGRATE_ANNOTATION = 'cloudtaser.io/migrate';
/** Secret types Kubernetes manages itself: migrating (and deleting) them would break the cluster. */
const NEVER_MIGRATED = new Set(['kubernetes.io/service-account-token', 'bootstrap.kubernetes.io/token']);

/** Exactly the calls the chart grants for migration (runtime/kube/permissions.ts). */
export type MigrationKubeApi = Pick<KubeClient, (typeof MIGRATION_CALLS)[number]>;

export type MigrationResult = 'migrated' | 'conflict' | 'skipped' | 'failed' | 'refused';

/** What the broker's /status shows about migration. */
export interface MigrationStatus {
  /** `waiting`: no answer from the bridge yet; `active`: it accepts migrations; `refused`: it refuses them. */
  readonly state: 'waiting' | 'active' | 'refused';
  /** Code of the refusal or of the last failed migration. */
  readonly lastErrorCode?: string;
  /** What to do about a refusal. */
  readonly reason?: string;
  readonly since: string;
}

export interface MigrationOutcome {
  readonly namespace: string;
  readonly name: string;
  readonly result: MigrationResult;
  /** Where the data lives in the cluster namespace's `secret` mount (KV v2). */
  readonly kvPath: string;
  readonly version?: number;
  readonly reason?: string;
}

export interface SecretMigratorOptions {
  readonly kube: MigrationKubeApi;
  readonly tunnel: () => TunnelMux | undefined;
  /** Namespaces to watch. @default every namespace */
  readonly namespaces?: readonly string[];
  /** Poll interval; 0 = no background polling (call `runOnce`). @default 10000 */
  readonly intervalMs?: number;
  /** Reporting component on Events. @default 'cloudtaser-broker' */
  readonly component?: string;
  /** Test hook run between the verified write and the delete (a throw there is a crash at that point). */
  readonly afterVerifiedWrite?: (secret: { namespace: string; name: string }) => Promise<void> | void;
  /** Told every Secret's outcome (with the refusal's code when the bridge refused), for metrics. @default none */
  readonly onOutcome?: (outcome: MigrationOutcome, code?: string) => void;
  readonly logger?: Logger;
}

export interface SecretMigrator {
  /** One pass over every annotated Secret; concurrent calls share the running pass. */
  runOnce(): Promise<MigrationOutcome[]>;
  status(): MigrationStatus;
  close(): Promise<void>;
}

export function startSecretMigrator(options: SecretMigratorOptions): SecretMigrator {
  const log = moduleLogger(options.logger, 'migration');
  const component = options.component ?? 'cloudtaser-broker';
  const intervalMs = options.intervalMs ?? 10_000;
  const stop = new AbortController();
  /** uid@resourceVersion of Secrets already reported as skipped or refused, so a poll does not repeat the Event. */
  const reportedSkips = new Set<string>();
  let running: Promise<MigrationOutcome[]> | undefined;
  let status: MigrationStatus = { state: 'waiting', since: new Date().toISOString() };

  function setStatus(next: Omit<MigrationStatus, 'since'>): void {
    const changed = next.state !== status.state || next.lastErrorCode !== status.lastErrorCode;
    status = { ...next, since: changed ? new Date().toISOString() : status.since };
    if (changed && next.state === 'refused') {
      log.warn(
        { event: 'migration.refused', code: next.lastErrorCode, reason: next.reason },
        'the bridge refuses migration for this cluster; marked Secrets are kept',
      );
    } else if (changed && next.state === 'active') {
      log.info({ event: 'migration.accepted' }, 'the bridge accepts migrations for this cluster');
    }
  }

  async function pass(): Promise<MigrationOutcome[]> {
    const tunnel = options.tunnel();
    if (!tunnel || tunnel.closed) return [];
    const outcomes: MigrationOutcome[] = [];
    let refusal: CloudtaserError | undefined;
    for (const secret of await annotatedSecrets()) {
      if (stop.signal.aborted) break;
      // One refusal covers the whole cluster: the rest are not sent, only told why.
      const outcome = refusal ?? (await migrateOne(secret));
      if (outcome instanceof CloudtaserError) {
        refusal = outcome;
        const refused = await reportRefused(secret, refusal);
        outcomes.push(refused);
        options.onOutcome?.(refused, refusal.code);
      } else if (outcome) {
        outcomes.push(outcome);
        options.onOutcome?.(outcome);
      }
    }
    return outcomes;
  }

  /** One Event per Secret (and resourceVersion) saying why the bridge refuses; the Secret is kept. */
  async function reportRefused(secret: KubeSecret, refusal: CloudtaserError): Promise<MigrationOutcome> {
    const namespace = secret.metadata.namespace ?? '';
    const name = secret.metadata.name;
    const key = `${secret.metadata.uid}@${secret.metadata.resourceVersion}#${refusal.code}`;
    if (!reportedSkips.has(key)) {
      reportedSkips.add(key);
      await report(
        secret,
        'Warning',
        'MigrationRefused',
        `not migrated (${refusal.code}): ${refusal.message}; the Secret is kept`,
      );
    }
    return {
      namespace,
      name,
      kvPath: migrationKvPath(namespace, name),
      result: 'refused',
      reason: refusal.code,
    };
  }

  async function annotatedSecrets(): Promise<KubeSecret[]> {
    const scopes: (string | undefined)[] = options.namespaces?.length ? [...options.namespaces] : [undefined];
    const found: KubeSecret[] = [];
    for (const namespace of scopes) {
      let next: string | undefined;
      do {
        const page = await options.kube.listSecrets(namespace, { limit: 500, continue: next });
        for (const item of page.items) {
          if (item.metadata.annotations?.[MIGRATE_ANNOTATION] === 'true') found.push(item);
        }
        next = page.metadata.continue || undefined;
      } while (next);
    }
    return found;
  }

  /** One Secret: its outcome, or the bridge's refusal of migration for the whole cluster. */
  async function migrateOne(secret: KubeSecret): Promise<MigrationOutcome | CloudtaserError | undefined> {
    const namespace = secret.metadata.namespace ?? '';
    const name = secret.metadata.name;
    const kvPath = migrationKvPath(namespace, name);
    const base = { namespace, name, kvPath };
    const secretLog = log.child({ secretNamespace: namespace, secretName: name });
    if (!isKubernetesName(namespace) || !isKubernetesName(name)) return undefined;

    // Skipped Secrets are kept, with one Event per version saying why.
    const skip = async (reason: string): Promise<MigrationOutcome> => {
      const key = `${secret.metadata.uid}@${secret.metadata.resourceVersion}`;
      if (!reportedSkips.has(key)) {
        reportedSkips.add(key);
        await report(secret, 'Warning', 'MigrationSkipped', `not migrated: ${reason}; the Secret is kept`);
      }
      return { ...base, result: 'skipped', reason };
    };
    if (NEVER_MIGRATED.has(secret.type ?? ''))
      return skip(`type ${secret.type} is managed by Kubernetes and is never migrated`);
    const data = decodeData(secret);
    if (typeof data === 'string') return skip(data);
    const request: MigrationRequestBody = {
      data,
      source: { uid: secret.metadata.uid ?? '', resourceVersion: secret.metadata.resourceVersion ?? '' },
      nonce: newMigrationNonce(),
    };
    const requestText = JSON.stringify(request);
    const tooLarge = tooLargeReason(requestText);
    if (tooLarge !== undefined) return skip(tooLarge);

    let version: number;
    try {
      const answer = await tunnelJson('PUT', namespace, name, requestText);
      if (answer.status === 403 && answer.body.code === 'CT_MIGRATION_DISABLED') {
        const refusal = bridgeError(answer.body);
        setStatus({ state: 'refused', lastErrorCode: refusal.code, reason: refusal.message });
        return refusal;
      }
      if (answer.status !== 200) throw bridgeError(answer.body);
      setStatus({ state: 'active' });
      version = Number(answer.body.version);
      // The proof is keyed by our nonce and covers what OpenBao stored: equal means it holds exactly our data.
      if (
        !Number.isInteger(version) ||
        version < 1 ||
        answer.body.proof !== migrationProof(request.nonce, version, data)
      ) {
        throw new CloudtaserError(
          'CT_MIGRATION_UNVERIFIED',
          'the value OpenBao holds does not match the Secret; the Secret is kept',
        );
      }
      await options.afterVerifiedWrite?.({ namespace, name });
    } catch (err) {
      const code = err instanceof CloudtaserError ? err.code : 'CT_INTERNAL';
      const reason = err instanceof CloudtaserError ? err.message : 'unexpected failure';
      secretLog.warn({ event: 'migration.failed', code }, 'migration failed; the Secret is kept');
      await report(secret, 'Warning', 'MigrationFailed', `not migrated yet (${code}): ${reason}; will retry`);
      if (status.state !== 'refused') setStatus({ ...status, lastErrorCode: code });
      return { ...base, result: 'failed', reason: code };
    }

    try {
      await options.kube.deleteSecret(namespace, name, {
        resourceVersion: secret.metadata.resourceVersion,
        uid: secret.metadata.uid,
      });
    } catch (err) {
      if (isCloudtaserError(err, 'CT_KUBE_CONFLICT')) {
        secretLog.info({ event: 'migration.conflict' }, 'Secret changed after it was read; kept');
        await report(
          secret,
          'Warning',
          'MigrationConflict',
          `the Secret changed after it was read (resourceVersion ${secret.metadata.resourceVersion}); it was NOT deleted and its new content will be migrated on the next pass`,
        );
        return { ...base, result: 'conflict', version };
      }
      if (!isCloudtaserError(err, 'CT_KUBE_NOT_FOUND')) {
        const code = err instanceof CloudtaserError ? err.code : 'CT_INTERNAL';
        await report(
          secret,
          'Warning',
          'MigrationFailed',
          `written to OpenBao but not deleted (${code}); will retry`,
        );
        return { ...base, result: 'failed', version, reason: code };
      }
    }
    secretLog.info({ event: 'migration.done', version }, 'Secret migrated to OpenBao and deleted');
    await report(
      secret,
      'Normal',
      'Migrated',
      `written to OpenBao at secret/${kvPath} (KV v2, version ${version}) in the cluster namespace, verified, and deleted from Kubernetes`,
    );
    return { ...base, result: 'migrated', version };
  }

  async function tunnelJson(
    method: 'PUT',
    namespace: string,
    name: string,
    bodyText?: string,
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    const tunnel = options.tunnel();
    if (!tunnel || tunnel.closed)
      throw new CloudtaserError('CT_TUNNEL_CLOSED', 'the tunnel to the bridge is down');
    const response = await tunnel.request(
      {
        method,
        path: `${MIGRATION_TUNNEL_PREFIX}${namespace}/${name}`,
        headers: bodyText === undefined ? {} : { 'content-type': 'application/json' },
      },
      bodyText,
    );
    let parsed: Record<string, unknown> = {};
    try {
      parsed = JSON.parse(response.body.toString('utf8')) as Record<string, unknown>;
    } catch {
      // an unreadable answer counts as a failure below
    }
    return { status: response.status, body: parsed };
  }

  async function report(
    secret: KubeSecret,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): Promise<void> {
    try {
      await options.kube.createEvent(secret.metadata.namespace ?? 'default', {
        involvedObject: {
          kind: 'Secret',
          apiVersion: 'v1',
          name: secret.metadata.name,
          namespace: secret.metadata.namespace,
          uid: secret.metadata.uid,
        },
        type,
        reason,
        message,
        component,
      });
    } catch (err) {
      log.warn(
        { event: 'migration.event_failed', code: (err as CloudtaserError).code },
        'could not record a migration Event',
      );
    }
  }

  const loop =
    intervalMs > 0
      ? (async () => {
          while (!stop.signal.aborted) {
            await sleep(intervalMs, stop.signal);
            if (stop.signal.aborted) break;
            await runOnce().catch((err: unknown) =>
              log.warn(
                { event: 'migration.pass_failed', code: (err as CloudtaserError).code },
                'migration pass failed; retrying at the next interval',
              ),
            );
          }
        })()
      : Promise.resolve();

  function runOnce(): Promise<MigrationOutcome[]> {
    if (!running) {
      running = pass().finally(() => {
        running = undefined;
      });
    }
    return running;
  }

  return {
    runOnce,
    status: () => status,
    async close() {
      stop.abort();
      await loop;
      await running?.catch(() => undefined);
    },
  };
}

/** Decoded UTF-8 values, or the reason they cannot be stored as KV strings. */
/**
 * Why a migration request cannot cross the tunnel, or undefined when it can. Kubernetes allows 1 MiB of data, and
 * JSON escapes a control byte as six, so a Secret within its limit can encode past the tunnel's body limit (the
 * bridge's, which is the default). Such a Secret is skipped once with this reason instead of failing every pass.
 */
function tooLargeReason(requestText: string): string | undefined {
  const bytes = Buffer.byteLength(requestText, 'utf8');
  const limit = DEFAULT_TUNNEL_LIMITS.maxBodyBytes;
  if (bytes <= limit) return undefined;
  return `its data encodes to ${bytes} bytes of JSON, over the ${limit} bytes a migration request may carry through the tunnel (CT_MIGRATION_TOO_LARGE); split it into smaller Secrets, or copy it into OpenBao by hand (\`bao kv put\` in the cluster namespace) and delete it`;
}

function decodeData(secret: KubeSecret): Record<string, string> | string {
  // ignoreBOM: a value that starts with a byte-order mark keeps it (by default TextDecoder strips it, and the
  // proof, computed over the decoded text, then matched a value three bytes short: the Secret was deleted).
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  // No prototype: `__proto__` is a valid Secret key, and on a plain object assigning it is silently ignored (the
  // proof then covered the other keys only, matched, and the Secret was deleted with that value nowhere).
  const out: Record<string, string> = Object.create(null);
  for (const [key, value] of Object.entries(secret.data ?? {})) {
    try {
      out[key] = decoder.decode(Buffer.from(value, 'base64'));
    } catch {
      return `key ${JSON.stringify(key)} holds binary (non-UTF-8) data, which KV strings cannot carry losslessly`;
    }
  }
  return out;
}

/** The bridge's refusal with its code (a known CT_ code, else CT_OPENBAO_ERROR); texts are cut to 300. */
function bridgeError(body: Record<string, unknown>): CloudtaserError {
  const code =
    typeof body.code === 'string' && body.code in ErrorCodes ? (body.code as ErrorCode) : 'CT_OPENBAO_ERROR';
  return new CloudtaserError(
    code,
    typeof body.error === 'string' ? body.error.slice(0, 300) : 'the bridge refused the write',
  );
}
