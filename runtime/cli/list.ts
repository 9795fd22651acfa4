/**
 * `source list`: every cluster registered under a namespace root, as the bridges' full listing reads them (one
 * LIST, two reads per cluster). What a platform team compares with its Terraform state to find a registration no
 * state knows (an interrupted create, a registration made by hand) or one a state still names after it was
 * deregistered elsewhere.
 */
import type { Command } from 'commander';
import type { CloudtaserError } from '../core/errors.js';
import { parseOutputFormat, printJson } from './output.js';
import { addSecretStoreOptions, openSecretStore, type SecretStoreFlags } from './secret-store.js';

interface ListFlags extends SecretStoreFlags {
  readonly output: string;
}

export function registerSourceListCommand(source: Command): void {
  addSecretStoreOptions(
    source
      .command('list')
      .description(
        'list every cluster registered under the namespace root (fingerprint, namespace, bootstrapped, attestation, migration)',
      )
      .option('--output <format>', 'text or json', 'text'),
  ).action(async (opts: ListFlags) => {
    const format = parseOutputFormat(opts.output);
    const client = await openSecretStore(opts);
    try {
      const { listRegisteredClusters } = await import('../registration/status.js');
      const unreadable: Array<{ fingerprint: string; code: string; message: string }> = [];
      const clusters = await listRegisteredClusters(client, {
        namespaceRoot: opts.namespaceRoot,
        // One damaged record must not hide the rest of the fleet: listed apart, and the exit code says so.
        onCorrupt: (fingerprint, err: CloudtaserError) =>
          unreadable.push({ fingerprint, code: err.code, message: err.message }),
      });
      clusters.sort((a, b) => a.fingerprint.localeCompare(b.fingerprint));
      if (format === 'json') {
        printJson({
          namespaceRoot: opts.namespaceRoot,
          clusters: clusters.map((cluster) => ({
            fingerprint: cluster.fingerprint,
            namespace: cluster.namespace,
            operationalHash: cluster.operationalHash,
            initialized: cluster.initialized,
            attested: cluster.attested === true,
            migrationEnabled: cluster.migrationEnabled === true,
          })),
          unreadable,
        });
      } else {
        process.stdout.write(textTable(clusters, opts.namespaceRoot, client.address));
      }
      for (const entry of unreadable)
        process.stderr.write(
          `${entry.code}: cluster ${entry.fingerprint}: ${entry.message} (see cloudtaser-cli source status --fingerprint ${entry.fingerprint})\n`,
        );
      if (unreadable.length > 0) process.exitCode = 1;
    } finally {
      await client.close();
    }
  });
}

type Listed = Awaited<ReturnType<typeof import('../registration/status.js').listRegisteredClusters>>[number];

function textTable(clusters: readonly Listed[], namespaceRoot: string, address: string): string {
  if (clusters.length === 0)
    return `No cluster is registered under namespace root ${namespaceRoot} at ${address}.\n`;
  const rows = [
    ['FINGERPRINT', 'NAMESPACE', 'BOOTSTRAPPED', 'ATTESTED', 'MIGRATION'],
    ...clusters.map((cluster) => [
      cluster.fingerprint,
      cluster.namespace,
      cluster.initialized ? 'yes' : 'no',
      cluster.attested ? 'yes' : 'no',
      cluster.migrationEnabled ? 'enabled' : 'disabled',
    ]),
  ];
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  const lines = rows.map((row) =>
    row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]))).join('   '),
  );
  const count = clusters.length === 1 ? '1 cluster' : `${clusters.length} clusters`;
  return `${count} registered under namespace root ${namespaceRoot} at ${address}:\n${lines.join('\n')}\n`;
}
