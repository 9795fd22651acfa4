/**
 * The broker's Secret migrator. It polls for Secrets annotated `cloudtaser.io/migrate=true` (the test server has
 * no watch, and a poll also heals anything a crash left behind) and for each one:
 *   1. writes its data through the tunnel (the bridge writes to `secret/k8s/<ns>/<name>` with its own token);
 *   2. reads it back (a digest) and compares;
 *   3. deletes the Secret only with a `resourceVersion` + `uid` precondition, so one edited after it was read
 *      survives (and is migrated again, with its new content, on the next pass);
 *   4. reports the outcome as a Kubernetes Event on the Secret.
 * Every step is idempotent, so a crash anywhere loses nothing and the next pass finishes the job.
 */
import { CloudtaserError, isCloudtaserError } from '../core/errors.js';
import { type Logger, moduleLogger } from '../core/log.js';
import type { KubeClient, KubeSecret } from '../kube/index.js';
import type { MIGRATION_CALLS } from '../kube/permissions.js';
import { isKubernetesName, MIGRATION_TUNNEL_PREFIX, migrationKvPath } from '../podapi/protocol.js';
import { sleep, type TunnelMux } from '../tunnel/index.js';
import { secretDataDigest } from './digest.js';

export const MIGRATE_ANNOTATION = 'cloudtaser.io/migrate';
/** Secret types Kubernetes manages itself: migrating (and deleting) them would break the cluster. */
const NEVER_MIGRATED = new Set(['kubernetes.io/service-account-token', 'bootstrap.kubernetes.io/token']);

/** Exactly the calls the chart grants for migration (runtime/kube/permissions.ts). */
export type MigrationKubeApi = Pick<KubeClient, (typeof MIGRATION_CALLS)[number]>;

export type MigrationResult = 'migrated' | 'conflict' | 'skipped' | 'failed';

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
  readonly logger?: Logger;
}

export interface SecretMigrator {
  /** One pass over every annotated Secret; concurrent calls share the running pass. */
  runOnce(): Promise<MigrationOutcome[]>;
  close(): Promise<void>;
}

export function startSecretMigrator(options: SecretMigratorOptions): SecretMigrator {
  const log = moduleLogger(options.logger, 'migration');
  const component = options.component ?? 'cloudtaser-broker';
  const intervalMs = options.intervalMs ?? 10_000;
  const stop = new AbortController();
  /** uid@resourceVersion of Secrets already reported as skipped, so a poll does not repeat the Event. */
  const reportedSkips = new Set<string>();
  let running: Promise<MigrationOutcome[]> | undefined;

  async function pass(): Promise<MigrationOutcome[]> {
    const tunnel = options.tunnel();
    if (!tunnel || tunnel.closed) return [];
    const outcomes: MigrationOutcome[] = [];
    for (const secret of await annotatedSecrets()) {
      if (stop.signal.aborted) break;
      const outcome = await migrateOne(secret);
      if (outcome) outcomes.push(outcome);
    }
    return outcomes;
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

  async function migrateOne(secret: KubeSecret): Promise<MigrationOutcome | undefined> {
    const namespace = secret.metadata.namespace ?? '';
    const name = secret.metadata.name;
    const kvPath = migrationKvPath(namespace, name);
    const base = { namespace, name, kvPath };
    const secretLog = log.child({ secretNamespace: namespace, secretName: name });
    if (!isKubernetesName(namespace) || !isKubernetesName(name)) return undefined;

    const skipReason = NEVER_MIGRATED.has(secret.type ?? '')
      ? `type ${secret.type} is managed by Kubernetes and is never migrated`
      : undefined;
    const decoded = skipReason ?? decodeData(secret);
    if (typeof decoded === 'string') {
      const reason = decoded;
      const key = `${secret.metadata.uid}@${secret.metadata.resourceVersion}`;
      if (!reportedSkips.has(key)) {
        reportedSkips.add(key);
        await report(secret, 'Warning', 'MigrationSkipped', `not migrated: ${reason}; the Secret is kept`);
      }
      return { ...base, result: 'skipped', reason };
    }

    const data = decoded;
    let version: number;
    try {
      const digest = secretDataDigest(data);
      const stored = await tunnelJson('GET', namespace, name);
      if (stored.status === 200 && stored.body.digest === digest) {
        version = Number(stored.body.version);
      } else {
        const written = await tunnelJson('PUT', namespace, name, { data });
        if (written.status !== 200) throw bridgeError(written.body);
        const readBack = await tunnelJson('GET', namespace, name);
        if (readBack.status !== 200 || readBack.body.digest !== digest) {
          throw new CloudtaserError(
            'CT_OPENBAO_BAD_RESPONSE',
            'the value read back from OpenBao differs from the Secret; the Secret is kept',
          );
        }
        version = Number(readBack.body.version);
      }
      await options.afterVerifiedWrite?.({ namespace, name });
    } catch (err) {
      const code = err instanceof CloudtaserError ? err.code : 'CT_INTERNAL';
      const reason = err instanceof CloudtaserError ? err.message : 'unexpected failure';
      secretLog.warn({ event: 'migration.failed', code }, 'migration failed; the Secret is kept');
      await report(secret, 'Warning', 'MigrationFailed', `not migrated yet (${code}): ${reason}; will retry`);
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
    method: 'GET' | 'PUT',
    namespace: string,
    name: string,
    body?: unknown,
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    const tunnel = options.tunnel();
    if (!tunnel || tunnel.closed)
      throw new CloudtaserError('CT_TUNNEL_CLOSED', 'the tunnel to the bridge is down');
    const response = await tunnel.request(
      {
        method,
        path: `${MIGRATION_TUNNEL_PREFIX}${namespace}/${name}`,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
      },
      body === undefined ? undefined : JSON.stringify(body),
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
    async close() {
      stop.abort();
      await loop;
      await running?.catch(() => undefined);
    },
  };
}

/** Decoded UTF-8 values, or the reason they cannot be stored as KV strings. */
function decodeData(secret: KubeSecret): Record<string, string> | string {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(secret.data ?? {})) {
    try {
      out[key] = decoder.decode(Buffer.from(value, 'base64'));
    } catch {
      return `key ${JSON.stringify(key)} holds binary (non-UTF-8) data, which KV strings cannot carry losslessly`;
    }
  }
  return out;
}

function bridgeError(body: Record<string, unknown>): CloudtaserError {
  return new CloudtaserError(
    'CT_OPENBAO_ERROR',
    typeof body.error === 'string' ? body.error.slice(0, 300) : 'the bridge refused the write',
  );
}
