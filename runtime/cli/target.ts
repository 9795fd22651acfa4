import type { Command } from 'commander';
import { parseOutputFormat, printJson, withProgress } from './output.js';

export function registerTargetCommands(program: Command): void {
  const target = program.command('target').description('commands run against the target Kubernetes cluster');
  target
    .command('fingerprint')
    .description('print the cluster fingerprint (the kube-system namespace UID) and how to register it')
    .option(
      '--kubeconfig <path>',
      'kubeconfig file (default: in-cluster config, else $KUBECONFIG or ~/.kube/config)',
    )
    .option('--context <name>', 'kubeconfig context (default: the current context)')
    .option('--output <format>', 'text or json', 'text')
    .action(async (opts: { kubeconfig?: string; context?: string; output: string }) => {
      const format = parseOutputFormat(opts.output);
      // Loaded on use: @kubernetes/client-node takes over a second to import, and --help should not pay it.
      const { defaultKubeConnection, readClusterFingerprint } = await import('../kube/index.js');
      const connection = defaultKubeConnection({ kubeconfig: opts.kubeconfig, context: opts.context });
      const fingerprint = await withProgress('reading kube-system UID', () =>
        readClusterFingerprint(connection),
      );
      if (format === 'json') {
        printJson({ fingerprint, registerCommand: registerCommandFor(fingerprint) });
        return;
      }
      process.stdout.write(
        [
          'cloudtaser Cluster Fingerprint',
          `Cluster ID: ${fingerprint}`,
          '',
          'Register this cluster on your secret store:',
          registerCommandFor(fingerprint),
          '',
        ].join('\n'),
      );
    });
}

function registerCommandFor(fingerprint: string): string {
  return `cloudtaser-cli source register --fingerprint ${fingerprint}`;
}
