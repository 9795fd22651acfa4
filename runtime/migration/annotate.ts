/**
 * The CLI's half of migration: marks the chosen Secrets with `cloudtaser.io/migrate=true`. The broker (run with
 * --migrate) does the rest; `migrationProgress` tells how many marked Secrets are still waiting.
 */
import type { KubeClient, KubeSecret } from '../kube/index.js';
import { MIGRATE_ANNOTATION } from './migrator.js';

export type AnnotateKubeApi = Pick<KubeClient, 'listSecrets' | 'patchSecretMetadata'>;

const NEVER_MIGRATED = new Set(['kubernetes.io/service-account-token', 'bootstrap.kubernetes.io/token']);

export interface SecretRef {
  readonly namespace: string;
  readonly name: string;
}

export interface AnnotateOptions {
  /** One namespace, or every namespace when undefined. */
  readonly namespace?: string;
  /** Kubernetes label selector, e.g. `app=db,tier!=cache`. */
  readonly selector?: string;
  /** List what would be marked; change nothing. */
  readonly dryRun?: boolean;
  /** Called after each Secret is handled (1-based index). */
  readonly onProgress?: (done: number, total: number, secret: SecretRef, action: AnnotateAction) => void;
}

export type AnnotateAction = 'annotated' | 'already-annotated' | 'would-annotate' | 'skipped-managed-type';

export interface AnnotateResult {
  readonly matched: number;
  readonly annotated: SecretRef[];
  readonly alreadyAnnotated: SecretRef[];
  readonly skipped: SecretRef[];
  readonly dryRun: boolean;
}

export async function annotateSecretsForMigration(
  kube: AnnotateKubeApi,
  options: AnnotateOptions = {},
): Promise<AnnotateResult> {
  const secrets = await listAll(kube, options.namespace, options.selector);
  const annotated: SecretRef[] = [];
  const alreadyAnnotated: SecretRef[] = [];
  const skipped: SecretRef[] = [];
  let done = 0;
  for (const secret of secrets) {
    const ref = { namespace: secret.metadata.namespace ?? '', name: secret.metadata.name };
    let action: AnnotateAction;
    if (NEVER_MIGRATED.has(secret.type ?? '')) {
      skipped.push(ref);
      action = 'skipped-managed-type';
    } else if (secret.metadata.annotations?.[MIGRATE_ANNOTATION] === 'true') {
      alreadyAnnotated.push(ref);
      action = 'already-annotated';
    } else if (options.dryRun) {
      annotated.push(ref);
      action = 'would-annotate';
    } else {
      await kube.patchSecretMetadata(ref.namespace, ref.name, {
        annotations: { [MIGRATE_ANNOTATION]: 'true' },
      });
      annotated.push(ref);
      action = 'annotated';
    }
    options.onProgress?.(++done, secrets.length, ref, action);
  }
  return { matched: secrets.length, annotated, alreadyAnnotated, skipped, dryRun: options.dryRun === true };
}

/** Marked Secrets that still exist (the broker deletes each one once it is verified in OpenBao). */
export async function pendingMigrations(
  kube: Pick<KubeClient, 'listSecrets'>,
  namespace?: string,
  selector?: string,
): Promise<SecretRef[]> {
  return (await listAll(kube, namespace, selector))
    .filter((s) => s.metadata.annotations?.[MIGRATE_ANNOTATION] === 'true')
    .map((s) => ({ namespace: s.metadata.namespace ?? '', name: s.metadata.name }));
}

async function listAll(
  kube: Pick<KubeClient, 'listSecrets'>,
  namespace: string | undefined,
  selector: string | undefined,
): Promise<KubeSecret[]> {
  const out: KubeSecret[] = [];
  let next: string | undefined;
  do {
    const page = await kube.listSecrets(namespace, { labelSelector: selector, limit: 500, continue: next });
    out.push(...page.items);
    next = page.metadata.continue || undefined;
  } while (next);
  return out;
}
