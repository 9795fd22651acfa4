import type { Command } from 'commander';
import {
  DEFAULT_TOKENREVIEW_ENDPOINT,
  deregisterCluster,
  getClusterStatus,
  rearmCluster,
  registerCluster,
} from '../registration/index.js';
import { readPemFile } from '../tunnel/flags.js';
import { parseOutputFormat, printJson, withProgress } from './output.js';
import { addSecretStoreOptions, openSecretStore, type SecretStoreFlags } from './secret-store.js';

interface SourceFlags extends SecretStoreFlags {
  readonly fingerprint: string;
  readonly output: string;
}

export function registerSourceCommands(program: Command): void {
  const source = program.command('source').description('commands run on the secret-store (OpenBao) side');

  addSecretStoreOptions(
    source
      .command('register')
      .description('register a cluster: namespace, CA, bridge certificate, registration record, info hashes')
      .requiredOption(
        '--fingerprint <uuid>',
        'the cluster fingerprint from `cloudtaser-cli target fingerprint`',
      )
      .option('--rearm', 'allow one more bootstrap for an already initialized cluster')
      .option(
        '--tokenreview-endpoint <url>',
        `the bridge's TokenReview listener as OpenBao reaches it (bridge run --tokenreview-listen); Kubernetes auth calls <url>/clusters/<fingerprint>`,
        DEFAULT_TOKENREVIEW_ENDPOINT,
      )
      .option('--tokenreview-ca-cert <path>', 'PEM CA of an https:// --tokenreview-endpoint')
      .option('--output <format>', 'text or json', 'text'),
  ).action(
    async (
      opts: SourceFlags & { rearm?: boolean; tokenreviewEndpoint: string; tokenreviewCaCert?: string },
    ) => {
      const format = parseOutputFormat(opts.output);
      const tokenReviewCaCertPem = await readPemFile(opts.tokenreviewCaCert, '--tokenreview-ca-cert');
      const client = await openSecretStore(opts);
      try {
        const result = await withProgress('registering cluster', () =>
          registerCluster(client, {
            fingerprint: opts.fingerprint,
            namespaceRoot: opts.namespaceRoot,
            tokenReviewEndpoint: opts.tokenreviewEndpoint,
            tokenReviewCaCertPem,
          }),
        );
        let initialized = result.initialized;
        if (opts.rearm) {
          await rearmCluster(client, { fingerprint: result.fingerprint, namespaceRoot: opts.namespaceRoot });
          initialized = false;
        }
        const view = { ...result, initialized };
        if (format === 'json') return printJson(view);
        process.stdout.write(
          [
            `${result.changed ? 'Registered' : 'Already registered'} cluster ${result.fingerprint}${opts.rearm ? ' (re-armed: one more bootstrap allowed)' : ''}`,
            `  Namespace:        ${result.namespace}`,
            `  Init hash:        ${result.initHash}`,
            `  Operational hash: ${result.operationalHash}`,
            `  Initialized:      ${initialized ? 'yes' : 'no'}`,
            '',
            'Deploy the operator on the cluster with one value (the CA pin is optional but recommended):',
            `  helm install cloudtaser cloudtaser/cloudtaser --set operator.broker.beacon.address=<beacon-host>:443 --set operator.broker.trust.caSha256=${result.operationalHash}`,
            '',
          ].join('\n'),
        );
      } finally {
        await client.close();
      }
    },
  );

  addSecretStoreOptions(
    source
      .command('deregister')
      .description(
        'remove the registration and initialization records; the bridge stops accepting the cluster',
      )
      .requiredOption('--fingerprint <uuid>', 'the cluster fingerprint')
      .option('--purge', 'also delete the cluster namespace and every workload secret in it')
      .option('--output <format>', 'text or json', 'text'),
  ).action(async (opts: SourceFlags & { purge?: boolean }) => {
    const format = parseOutputFormat(opts.output);
    const client = await openSecretStore(opts);
    try {
      const result = await withProgress('deregistering cluster', () =>
        deregisterCluster(client, {
          fingerprint: opts.fingerprint,
          namespaceRoot: opts.namespaceRoot,
          purge: opts.purge,
        }),
      );
      if (format === 'json') return printJson(result);
      const what = result.removed ? 'Deregistered' : 'Was not registered:';
      const kept = result.purged
        ? 'namespace and workload secrets deleted'
        : `workload secrets kept in ${result.namespace}`;
      process.stdout.write(`${what} cluster ${result.fingerprint} (${kept})\n`);
    } finally {
      await client.close();
    }
  });

  addSecretStoreOptions(
    source
      .command('status')
      .description('show whether a cluster is registered and initialized')
      .requiredOption('--fingerprint <uuid>', 'the cluster fingerprint')
      .option('--output <format>', 'text or json', 'text'),
  ).action(async (opts: SourceFlags) => {
    const format = parseOutputFormat(opts.output);
    const client = await openSecretStore(opts);
    try {
      const status = await getClusterStatus(client, {
        fingerprint: opts.fingerprint,
        namespaceRoot: opts.namespaceRoot,
      });
      if (format === 'json') {
        const { caCertPem: _ca, ...view } = status;
        return printJson(view);
      }
      process.stdout.write(
        [
          `Cluster ${status.fingerprint}`,
          `  Registered:  ${status.registered ? `yes (${status.registeredAt})` : 'no'}`,
          `  Initialized: ${status.initialized ? `yes${status.initializedAt ? ` (${status.initializedAt})` : ''}` : 'no'}`,
          `  Namespace:   ${status.namespace}`,
          '',
        ].join('\n'),
      );
    } finally {
      await client.close();
    }
  });
}
