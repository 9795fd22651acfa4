import type { Command } from 'commander';
import type { TrustRecord, TrustRecordStore } from '../broker/trust-record.js';
import { CloudtaserError, isCloudtaserError } from '../core/errors.js';
import { registerTargetDoctorCommand } from './doctor.js';
import { parseOutputFormat, personAtTerminal, printJson, withProgress } from './output.js';

interface TrustFlags {
  readonly kubeconfig?: string;
  readonly context?: string;
  readonly trustRecord?: string;
  readonly output: string;
}

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
        readClusterFingerprint(connection, { interactive: personAtTerminal() }),
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
  registerTrustCommands(target);
  registerTargetDoctorCommand(target);
}

/**
 * `target trust show|pin|reset`: the admin step that moves a cluster to another CA. The broker records the first CA
 * it accepts; only this (or the Helm pin) changes it. Runs with the admin's kubeconfig, not the broker's rights.
 */
function registerTrustCommands(target: Command): void {
  const trust = target
    .command('trust')
    .description("show or change the cluster CA this cluster's broker accepts (its trust record ConfigMap)");
  const withFlags = (command: Command) =>
    command
      .option(
        '--kubeconfig <path>',
        'kubeconfig file (default: in-cluster config, else $KUBECONFIG or ~/.kube/config)',
      )
      .option('--context <name>', 'kubeconfig context (default: the current context)')
      .option(
        '--trust-record <ns/name>',
        "the broker's trust record ConfigMap (the chart's is <release namespace>/<fullname>-trust; default cloudtaser-system/cloudtaser-trust)",
      )
      .option('--output <format>', 'text or json', 'text');
  withFlags(
    trust.command('show').description('print the recorded cluster CA hash and who recorded it'),
  ).action(async (opts: TrustFlags) => {
    const format = parseOutputFormat(opts.output);
    const store = await openTrustRecord(opts);
    const record = await withProgress('reading the trust record', () => store.read());
    printTrust(format, store, record, 'Trust record');
  });
  withFlags(
    trust
      .command('pin')
      .description(
        'make the broker accept only this cluster CA from now on (moving the cluster to another CA); restart the operator to apply it at once',
      )
      .requiredOption('--ca-sha256 <hex>', "the cluster's operational hash (`cloudtaser-cli source status`)"),
  ).action(async (opts: TrustFlags & { caSha256: string }) => {
    const format = parseOutputFormat(opts.output);
    const { parseCaSha256 } = await import('../broker/trust-record.js');
    const caSha256 = parseCaSha256(opts.caSha256, '--ca-sha256');
    const store = await openTrustRecord(opts);
    const record = await withProgress('pinning the cluster CA', () =>
      writeRecord(store, { caSha256, recordedBy: 'cloudtaser-cli target trust pin' }),
    );
    printTrust(format, store, record, 'Pinned');
  });
  withFlags(
    trust
      .command('reset')
      .description(
        'clear the record: the next broker that starts trusts the first CA it meets again (prefer `pin` when you know the new hash)',
      ),
  ).action(async (opts: TrustFlags) => {
    const format = parseOutputFormat(opts.output);
    const store = await openTrustRecord(opts);
    const record = await withProgress('clearing the trust record', () =>
      writeRecord(store, { recordedBy: 'cloudtaser-cli target trust reset' }),
    );
    printTrust(format, store, record, 'Cleared');
  });
}

async function openTrustRecord(opts: TrustFlags): Promise<TrustRecordStore> {
  const { defaultKubeConnection, KubeClient } = await import('../kube/index.js');
  const { configMapTrustRecord } = await import('../broker/trust-record.js');
  const { parseTrustRecordRef } = await import('../broker/command.js');
  const ref = parseTrustRecordRef(opts.trustRecord, { POD_NAMESPACE: undefined });
  const kube = KubeClient.fromConnection(
    defaultKubeConnection({ kubeconfig: opts.kubeconfig, context: opts.context }),
    { interactive: personAtTerminal() },
  );
  return configMapTrustRecord(kube, ref);
}

/** Reads then writes against what was read, so a broker recording at the same moment is not overwritten blindly. */
async function writeRecord(
  store: TrustRecordStore,
  next: { caSha256?: string; recordedBy: string },
): Promise<TrustRecord> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const current = await store.read();
    if (next.caSha256 === undefined && current.caSha256 === undefined) return current;
    try {
      return await store.write(next, current.version);
    } catch (err) {
      if (!isCloudtaserError(err, 'CT_KUBE_CONFLICT')) throw err;
    }
  }
  throw new CloudtaserError(
    'CT_KUBE_CONFLICT',
    `the trust record ${store.description} kept changing; run the command again`,
  );
}

function printTrust(
  format: 'text' | 'json',
  store: TrustRecordStore,
  record: TrustRecord,
  title: string,
): void {
  if (format === 'json') {
    printJson({
      record: store.description,
      caSha256: record.caSha256 ?? null,
      recordedAt: record.recordedAt ?? null,
      recordedBy: record.recordedBy ?? null,
    });
    return;
  }
  process.stdout.write(
    [
      `${title}: ${store.description}`,
      `  CA SHA-256:  ${record.caSha256 ?? '(none: the next broker start trusts the first CA it meets)'}`,
      ...(record.recordedAt ? [`  Recorded at: ${record.recordedAt}`] : []),
      ...(record.recordedBy ? [`  Recorded by: ${record.recordedBy}`] : []),
      '',
    ].join('\n'),
  );
}

function registerCommandFor(fingerprint: string): string {
  return `cloudtaser-cli source register --fingerprint ${fingerprint}`;
}
