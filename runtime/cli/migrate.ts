import type { Command } from 'commander';
import { CloudtaserError } from '../core/errors.js';
import { parseOutputFormat, personAtTerminal, printJson } from './output.js';

interface MigrateFlags {
  readonly kubeconfig?: string;
  readonly context?: string;
  readonly namespace?: string;
  readonly selector?: string;
  readonly dryRun?: boolean;
  readonly wait?: string;
  readonly output: string;
}

/**
 * `cloudtaser-cli target migrate`: marks Kubernetes Secrets for migration into OpenBao. The broker (run with
 * --migrate) writes each marked Secret through the tunnel, verifies it and deletes it; `--wait` follows that.
 */
export function registerMigrateCommand(program: Command): void {
  const target = program.commands.find((c) => c.name() === 'target');
  if (!target)
    throw new CloudtaserError('CT_INTERNAL', 'the target command must be registered before migrate');
  target
    .command('migrate')
    .description(
      'mark Secrets with cloudtaser.io/migrate=true; the broker moves each to OpenBao (secret/k8s/<ns>/<name>), verifies, then deletes it',
    )
    .option('--namespace <name>', 'only Secrets in this namespace (default: every namespace)')
    .option('--selector <labels>', 'only Secrets matching this label selector, e.g. app=db')
    .option('--dry-run', 'list the Secrets that would be marked; change nothing')
    .option(
      '--wait <seconds>',
      'then wait up to this long for the broker to finish, showing progress; exit 3 if any marked Secret is still waiting then',
    )
    .option(
      '--kubeconfig <path>',
      'kubeconfig file (default: in-cluster config, else $KUBECONFIG or ~/.kube/config)',
    )
    .option('--context <name>', 'kubeconfig context (default: the current context)')
    .option('--output <format>', 'text or json', 'text')
    .action(async (flags: MigrateFlags) => {
      const format = parseOutputFormat(flags.output);
      const waitSeconds = flags.wait === undefined ? 0 : Number(flags.wait);
      if (!Number.isInteger(waitSeconds) || waitSeconds < 0 || waitSeconds > 86_400)
        throw new CloudtaserError(
          'CT_INVALID_ARGUMENT',
          '--wait must be a whole number of seconds (0-86400)',
        );
      // Loaded on use: @kubernetes/client-node is slow to import and --help should not pay for it.
      const { defaultKubeConnection, KubeClient } = await import('../kube/index.js');
      const { annotateSecretsForMigration, pendingMigrations } = await import('../migration/index.js');
      const kube = KubeClient.fromConnection(
        defaultKubeConnection({ kubeconfig: flags.kubeconfig, context: flags.context }),
        { interactive: personAtTerminal() },
      );
      const text = format === 'text';
      try {
        const result = await annotateSecretsForMigration(kube, {
          namespace: flags.namespace,
          selector: flags.selector,
          dryRun: flags.dryRun,
          onProgress: (done, total, secret, action) => {
            if (text)
              process.stdout.write(
                `[${done}/${total}] ${action.padEnd(20)} ${secret.namespace}/${secret.name}\n`,
              );
          },
        });
        let pending = flags.dryRun
          ? undefined
          : await pendingMigrations(kube, flags.namespace, flags.selector);
        if (!flags.dryRun && waitSeconds > 0 && pending && pending.length > 0) {
          const deadline = Date.now() + waitSeconds * 1000;
          const marked = pending.length;
          while (pending.length > 0 && Date.now() < deadline) {
            await new Promise((resolve) => setTimeout(resolve, 1000));
            pending = await pendingMigrations(kube, flags.namespace, flags.selector);
            if (text) process.stdout.write(`migrated ${marked - pending.length}/${marked}\n`);
          }
        }
        // A script can tell "done" from "the time ran out" (before: exit 0 either way).
        if (!flags.dryRun && waitSeconds > 0 && pending && pending.length > 0) process.exitCode = 3;
        if (!text) {
          printJson({ ...result, pending: pending ?? [] });
          return;
        }
        const verb = result.dryRun ? 'would mark' : 'marked';
        process.stdout.write(
          [
            `${result.matched} Secret(s) matched; ${verb} ${result.annotated.length}, already marked ${result.alreadyAnnotated.length}, skipped ${result.skipped.length} (managed by Kubernetes)`,
            result.dryRun
              ? 'Dry run: nothing was changed.'
              : (pending?.length ?? 0) === 0
                ? // The troubleshooting text only when something is left (an outside drill read it after a full success).
                  'Every marked Secret is migrated.'
                : `${pending?.length ?? 0} marked Secret(s) not migrated yet. The broker migrates them when it runs with --migrate and the registration allows migration (source register --migration); when it refuses, its /status \`migration\` and an Event on each Secret say why (CT_MIGRATION_DISABLED: the registration does not allow it): kubectl get events --field-selector involvedObject.kind=Secret.`,
            '',
          ].join('\n'),
        );
      } finally {
        kube.close();
      }
    });
}
