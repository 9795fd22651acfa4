/**
 * `source list`: every cluster registered under a namespace root, read as the bridges read them (one LIST, two
 * reads per cluster), and every entry there that is not a whole registration, listed apart. What a platform team
 * compares with its Terraform state to find a registration no state knows (one made by hand or by another state)
 * or one a state still names after it was deregistered elsewhere.
 */
import type { Command } from 'commander';
import { isFingerprint } from '../core/rules.js';
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
        'list every cluster registered under the namespace root (fingerprint, namespace, bootstrapped, attestation, migration); exit 1 when an entry is listed apart (unreadable, or a deregistration that stopped half-way)',
      )
      .option('--output <format>', 'text or json', 'text'),
  ).action(async (opts: ListFlags) => {
    const format = parseOutputFormat(opts.output);
    const client = await openSecretStore(opts);
    try {
      const { auditRegistrations } = await import('../registration/status.js');
      const audit = await auditRegistrations(client, { namespaceRoot: opts.namespaceRoot });
      if (format === 'json') {
        printJson({
          namespaceRoot: audit.namespaceRoot,
          namespaceRootExists: audit.rootExists,
          clusters: audit.clusters.map((cluster) => ({
            fingerprint: cluster.fingerprint,
            namespace: cluster.namespace,
            operationalHash: cluster.operationalHash,
            registeredAt: cluster.registeredAt ?? null,
            initialized: cluster.initialized,
            attested: cluster.attested === true,
            migrationEnabled: cluster.migrationEnabled === true,
          })),
          incomplete: audit.incomplete,
          unreadable: audit.unreadable,
        });
      } else {
        process.stdout.write(textReport(audit, client.address));
      }
      // One line per entry that is not a whole registration, as every failure is told: code first.
      for (const fingerprint of audit.incomplete)
        process.stderr.write(
          `CT_REGISTRATION_INCOMPLETE: cluster ${fingerprint} has records but no registration record (a deregistration that stopped half-way); run cloudtaser-cli source deregister --fingerprint ${fingerprint} again\n`,
        );
      for (const entry of audit.unreadable)
        process.stderr.write(
          `${entry.code}: clusters/${entry.key}: ${entry.message}${isFingerprint(entry.key) ? ` (see cloudtaser-cli source status --fingerprint ${entry.key})` : ''}\n`,
        );
      if (audit.incomplete.length > 0 || audit.unreadable.length > 0) process.exitCode = 1;
    } finally {
      await client.close();
    }
  });
}

type Audit = import('../registration/status.js').RegistrationAudit;

function textReport(audit: Audit, address: string): string {
  const { clusters, namespaceRoot } = audit;
  if (!audit.rootExists)
    return `No cluster is registered: namespace root ${namespaceRoot} does not exist at ${address} (the first register creates it; check --namespace-root for a typo).\n`;
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
