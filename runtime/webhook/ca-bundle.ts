/**
 * Keeps the caBundle of the operator's own MutatingWebhookConfiguration equal to the CA of the webhook's
 * serving certificate. The operator makes that certificate in memory at start (no Secret, nothing on disk), so
 * every restart brings a new CA; and `helm upgrade` re-applies the configuration without a caBundle. Both would
 * leave the API server unable to call the webhook, so this checks on start and then every interval, and patches
 * only when the bundle differs. The patch is conditional on the resourceVersion it read, so a concurrent edit is
 * never overwritten: it is read again on the next round.
 */
import { timerDelay } from '../core/backoff.js';
import { CloudtaserError, type Logger, moduleLogger } from '../core/index.js';
import type { JsonPatchOperation, KubeClient } from '../kube/index.js';

export type WebhookConfigurationApi = Pick<
  KubeClient,
  'getMutatingWebhookConfiguration' | 'patchMutatingWebhookConfiguration'
>;

export interface WebhookCaBundleOptions {
  readonly kube: WebhookConfigurationApi;
  /** The MutatingWebhookConfiguration's name (the chart's full name). */
  readonly configurationName: string;
  /** PEM of the CA that signed the webhook's serving certificate (public). */
  readonly caPem: string;
  /** How often to check once the bundle is current. @default 30000 */
  readonly intervalMs?: number;
  /** How soon to retry after a failure (the configuration may not exist yet during an install). @default 2000 */
  readonly retryMs?: number;
  readonly logger?: Logger;
}

export interface WebhookCaBundleStatus {
  readonly configuration: string;
  /** `current`: every webhook in the configuration carries our CA. */
  readonly state: 'pending' | 'current' | 'failing';
  readonly lastCheckedAt?: string;
  /** When we last changed the configuration. */
  readonly lastPatchedAt?: string;
  readonly lastErrorCode?: string;
  /** What went wrong and what to do, while `failing`. */
  readonly reason?: string;
}

export interface WebhookCaBundleKeeper {
  status(): WebhookCaBundleStatus;
  /** Checks (and patches) now; resolves when done, never rejects (failures land in status()). */
  syncNow(): Promise<void>;
  close(): Promise<void>;
}

export function keepWebhookCaBundle(options: WebhookCaBundleOptions): WebhookCaBundleKeeper {
  const log = moduleLogger(options.logger, 'webhook-ca-bundle');
  const intervalMs = options.intervalMs ?? 30_000;
  const retryMs = options.retryMs ?? 2_000;
  const wanted = Buffer.from(options.caPem).toString('base64');
  const name = options.configurationName;
  let status: WebhookCaBundleStatus = { configuration: name, state: 'pending' };
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let closed = false;

  const sync = async (): Promise<void> => {
    const checkedAt = new Date().toISOString();
    try {
      const current = await options.kube.getMutatingWebhookConfiguration(name);
      const operations = caBundlePatch(current, wanted);
      if (operations.length > 0) {
        await options.kube.patchMutatingWebhookConfiguration(name, operations);
        status = {
          configuration: name,
          state: 'current',
          lastCheckedAt: checkedAt,
          lastPatchedAt: checkedAt,
        };
        log.info(
          { event: 'webhook.ca_bundle_patched', configuration: name, webhooks: operations.length - 1 },
          'webhook configuration now trusts this operator instance',
        );
      } else {
        if (status.state === 'failing')
          log.info(
            { event: 'webhook.ca_bundle_recovered', configuration: name, after: status.lastErrorCode },
            'webhook configuration reachable again and already trusts this operator instance',
          );
        status = {
          ...status,
          state: 'current',
          lastCheckedAt: checkedAt,
          lastErrorCode: undefined,
          reason: undefined,
        };
      }
    } catch (err) {
      const code = err instanceof CloudtaserError ? err.code : 'CT_INTERNAL';
      const reason = explain(code, name, err);
      if (status.state !== 'failing' || status.lastErrorCode !== code)
        log.warn({ event: 'webhook.ca_bundle_failed', configuration: name, code, reason }, reason);
      status = { ...status, state: 'failing', lastCheckedAt: checkedAt, lastErrorCode: code, reason };
    }
  };

  const schedule = () => {
    if (closed) return;
    timer = setTimeout(tick, timerDelay(status.state === 'current' ? intervalMs : retryMs));
    timer.unref();
  };
  const tick = () => {
    running = sync().finally(schedule);
  };
  tick();

  return {
    status: () => status,
    async syncNow() {
      await running;
      if (closed) return;
      clearTimeout(timer);
      running = sync().finally(schedule);
      await running;
    },
    async close() {
      closed = true;
      clearTimeout(timer);
      await running;
    },
  };
}

/**
 * The JSON patch that sets `wanted` on every webhook whose bundle differs, guarded by a test of the
 * resourceVersion it was computed from; empty when nothing needs to change.
 */
export function caBundlePatch(
  configuration: {
    metadata: { resourceVersion?: string };
    webhooks?: ReadonlyArray<{ clientConfig?: { caBundle?: string } }>;
  },
  wanted: string,
): JsonPatchOperation[] {
  const changes: JsonPatchOperation[] = [];
  (configuration.webhooks ?? []).forEach((webhook, index) => {
    if (webhook.clientConfig?.caBundle === wanted) return;
    // `add` on an existing member replaces it, and creates it when the chart left it out.
    changes.push({ op: 'add', path: `/webhooks/${index}/clientConfig/caBundle`, value: wanted });
  });
  if (changes.length === 0) return [];
  return [
    { op: 'test', path: '/metadata/resourceVersion', value: configuration.metadata.resourceVersion },
    ...changes,
  ];
}

function explain(code: string, name: string, err: unknown): string {
  switch (code) {
    case 'CT_KUBE_NOT_FOUND':
      return `MutatingWebhookConfiguration ${name} does not exist (yet); the webhook cannot be called until it does. Install it with the chart or set --webhook-configuration to its name`;
    case 'CT_KUBE_FORBIDDEN':
      return `the operator may not read or patch MutatingWebhookConfiguration ${name}; its ClusterRole needs get and patch on mutatingwebhookconfigurations with resourceNames [${name}] (the chart grants this)`;
    default:
      return `could not bring the caBundle of MutatingWebhookConfiguration ${name} up to date: ${(err as Error).message}; retrying`;
  }
}
