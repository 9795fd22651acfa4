import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { operatorInstallCommand } from '../core/chart-location.js';
import { CloudtaserError } from '../core/errors.js';
import { DEFAULT_OPERATOR_SERVICE_ACCOUNT_REF } from '../core/rules.js';
import { parseDuration } from '../core/shutdown.js';
import type { AttestationSettings, PolicyIdentity } from '../registration/index.js';
import { DEFAULT_TOKENREVIEW_ENDPOINT } from '../registration/tokenreview-endpoint.js';
import { readPemFile } from '../tunnel/flags.js';
import { registerSourceDoctorCommand } from './doctor.js';
import { registerSourceListCommand } from './list.js';
import { parseOutputFormat, printJson, withProgress } from './output.js';
import {
  addSecretStoreOptions,
  commandLogger,
  openSecretStore,
  type SecretStoreFlags,
} from './secret-store.js';

interface SourceFlags extends SecretStoreFlags {
  readonly fingerprint: string;
  readonly output: string;
}

export function registerSourceCommands(program: Command): void {
  const source = program.command('source').description('commands run on the secret-store (OpenBao) side');
  registerPolicyCommand(source);

  addSecretStoreOptions(
    source
      .command('register')
      .description('register a cluster: namespace, CA, bridge certificate, registration record, info hashes')
      .requiredOption(
        '--fingerprint <uuid>',
        'the cluster fingerprint from `cloudtaser-cli target fingerprint`',
      )
      .option('--rearm', 'allow one more bootstrap for an already initialized cluster, within --rearm-window')
      .option(
        '--rearm-window <duration>',
        'how long a --rearm stays open; past it, while no broker has bootstrapped, bridges refuse a bootstrap without attestation (e.g. 30m, 2h)',
        '1h',
      )
      .option(
        '--tokenreview-endpoint <url>',
        `the bridge's TokenReview Service as OpenBao reaches it (the bridge chart's NOTES print it; bridge run --tokenreview-listen); Kubernetes auth calls <url>/clusters/<fingerprint> with a reviewer credential registration sets (default: the one the cluster's registration points at; for a new one ${DEFAULT_TOKENREVIEW_ENDPOINT})`,
      )
      .option(
        '--tokenreview-ca-cert <path>',
        "PEM CA of the bridge listener's certificate when you bring it (bridge run --tokenreview-tls-cert); default: the listener CA registration keeps in OpenBao",
      )
      .option(
        '--attestation-issuer <url>',
        "attested bootstrap: the cluster's service-account issuer (`issuer` of /.well-known/openid-configuration); with --attestation-jwks",
      )
      .option(
        '--attestation-jwks <file>',
        "the cluster's service-account public keys (`kubectl get --raw /openid/v1/jwks > file`); re-run with a fresh file after a key rotation",
      )
      .option(
        '--attestation-service-account <ns/name>',
        `the operator's service account, the only one allowed to bootstrap (default ${DEFAULT_OPERATOR_SERVICE_ACCOUNT_REF})`,
      )
      .option(
        '--migration',
        "let the bridge migrate this cluster's Kubernetes Secrets into OpenBao (target migrate + broker --migrate)",
      )
      .option('--no-migration', 'refuse migration for this cluster (the default for a new registration)')
      .option('--output <format>', 'text or json', 'text'),
  ).action(
    async (
      opts: SourceFlags & {
        rearm?: boolean;
        rearmWindow: string;
        migration?: boolean;
        tokenreviewEndpoint?: string;
        tokenreviewCaCert?: string;
        attestationIssuer?: string;
        attestationJwks?: string;
        attestationServiceAccount?: string;
      },
      command: Command,
    ) => {
      const format = parseOutputFormat(opts.output);
      const rearmWindowMs = parseDuration(opts.rearmWindow, '--rearm-window');
      const tokenReviewCaCertPem = await readPemFile(opts.tokenreviewCaCert, '--tokenreview-ca-cert');
      const attestation = await readAttestationFlags(opts);
      const client = await openSecretStore(opts);
      const logger = await commandLogger();
      try {
        const { rearmCluster, registerCluster } = await loadRegistration();
        const result = await withProgress('registering cluster', () =>
          registerCluster(client, {
            fingerprint: opts.fingerprint,
            namespaceRoot: opts.namespaceRoot,
            tokenReviewEndpoint: opts.tokenreviewEndpoint,
            tokenReviewCaCertPem,
            attestation,
            migration: opts.migration,
            rearmWindowMs,
            logger,
          }),
        );
        let initialized = result.initialized;
        let changed = result.changed;
        let rearmNote = result.rearmExpiresAt
          ? ` (registered again over the namespace a deregistration kept: its first bootstrap is open until ${result.rearmExpiresAt})`
          : '';
        let rearmExpiresAt = result.rearmExpiresAt;
        if (opts.rearm) {
          const rearmed = await rearmCluster(client, {
            fingerprint: result.fingerprint,
            namespaceRoot: opts.namespaceRoot,
            windowMs: rearmWindowMs,
            logger,
          });
          initialized = false;
          rearmExpiresAt = rearmed.expiresAt;
          // Removing the initialization record (or reopening an expired re-arm) is a change (scripts read `changed`).
          changed ||= rearmed.wasInitialized || rearmed.expiresAt !== undefined;
          rearmNote = rearmed.wasInitialized
            ? ` (re-armed until ${rearmed.expiresAt}: one more bootstrap allowed)`
            : ` (--rearm: nothing to re-arm, it has not bootstrapped yet; its first bootstrap is open until ${rearmed.expiresAt})`;
        }
        // A window asked for that nothing opened (no --rearm, and not over a namespace a deregistration kept): said,
        // not dropped without a word (an outside docs drill thought it had re-armed with it).
        if (rearmExpiresAt === undefined && command.getOptionValueSource('rearmWindow') === 'cli')
          logger.warn(
            { event: 'registration.rearm_window_unused' },
            '--rearm-window opened no window: it applies with --rearm, or to a registration over the namespace a deregistration kept; add --rearm to allow one more bootstrap',
          );
        const view = {
          ...result,
          initialized,
          changed,
          rearmExpiresAt: rearmExpiresAt ?? null,
        };
        if (format === 'json') return printJson(view);
        process.stdout.write(
          [
            `${result.changed ? 'Registered' : 'Already registered'} cluster ${result.fingerprint}${rearmNote}`,
            `  Namespace:        ${result.namespace}`,
            `  Init hash:        ${result.initHash}`,
            `  Operational hash: ${result.operationalHash}`,
            `  Initialized:      ${initialized ? 'yes' : 'no'}`,
            `  Attested:         ${result.attested ? 'yes (bootstrap needs a service-account token; the broker runs with --attestation)' : 'no (trust on first use)'}`,
            `  Migration:        ${result.migrationEnabled ? 'enabled (the bridge writes Secrets the broker migrates to secret/k8s/)' : 'disabled (the bridge refuses it: CT_MIGRATION_DISABLED)'}`,
            ...(opts.rearm
              ? [
                  '',
                  'Re-armed: the next broker that reaches the bridge with this fingerprint gets the cluster. A broker',
                  'connected now bootstraps again at once and so spends the re-arm; otherwise it stays open until one',
                  `does${rearmExpiresAt ? `, or until ${rearmExpiresAt} (--rearm-window): restart the operator now` : ''}.`,
                  "Re-arm only for the operator's own broker (its /status says CT_ALREADY_INITIALIZED).",
                ]
              : []),
            '',
            'Deploy the operator on the cluster with one value (the CA pin is optional but recommended):',
            `  ${operatorInstallCommand('<beacon-host>:443', result.operationalHash, { attested: result.attested })}`,
            ...(result.attested
              ? []
              : [
                  '',
                  'Without attested bootstrap the cluster bootstraps once: after every restart of the operator',
                  '(an upgrade, a node drain, an OOM kill) its broker is refused (CT_ALREADY_INITIALIZED) until',
                  `you run: cloudtaser-cli source register --fingerprint ${result.fingerprint} --rearm`,
                  'To let it bootstrap again on its own, register with --attestation-issuer and --attestation-jwks',
                  '(README, "attested bootstrap") and install without attestation.enabled=false.',
                ]),
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
    const logger = await commandLogger();
    try {
      const { deregisterCluster } = await loadRegistration();
      const result = await withProgress('deregistering cluster', () =>
        deregisterCluster(client, {
          fingerprint: opts.fingerprint,
          namespaceRoot: opts.namespaceRoot,
          purge: opts.purge,
          logger,
        }),
      );
      if (format === 'json') return printJson(result);
      const what = result.removed ? 'Deregistered' : 'Was not registered:';
      // Name a namespace only when one exists: a never-registered fingerprint has none to keep.
      const kept = result.purged
        ? 'namespace and workload secrets deleted'
        : result.namespaceKept
          ? `workload secrets kept in ${result.namespace}; deregister --purge deletes them`
          : `no namespace ${result.namespace} of its own exists`;
      process.stdout.write(`${what} cluster ${result.fingerprint} (${kept})\n`);
    } finally {
      await client.close();
    }
  });

  registerBeaconCaCommand(source);

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
      const { getClusterStatus, isRearmExpired } = await loadRegistration();
      const status = await getClusterStatus(client, {
        fingerprint: opts.fingerprint,
        namespaceRoot: opts.namespaceRoot,
        inspectNamespace: true,
      });
      if (format === 'json') {
        printJson(statusView(status));
        // A registration whose CA is gone is no registration a bridge can serve: a script must not read it as one.
        if (status.caMissing) process.exitCode = 1;
        return;
      }
      if (!status.registered) {
        // Nothing exists for this fingerprint: name no namespace as if it did, say what would create one.
        process.stdout.write(
          [
            `Cluster ${status.fingerprint}`,
            `  Registered:  no (no registration record in OpenBao at ${client.address}, namespace root ${opts.namespaceRoot})`,
            ...(status.initialized
              ? [
                  '  Initialized: a stale initialization record remains; register again, then deregister to clear it',
                ]
              : []),
            // A CA in it with no record is a run stopped half-way (a create before its record, or a deregistration
            // before the CA), not a deregistration that kept the namespace on purpose.
            status.incomplete && status.namespaceKept
              ? `  Namespace:   ${status.namespace} exists with a cluster CA but no registration record (a register or a deregister stopped half-way): register again to complete it, or deregister --purge to remove it`
              : status.namespaceKept && status.deregisteredAt
                ? `  Namespace:   ${status.namespace} remains with its workload secrets (deregistered without --purge at ${status.deregisteredAt}; registering again reuses it with a new CA and opens its first bootstrap only for --rearm-window; deregister --purge deletes it)`
                : status.namespaceKept
                  ? `  Namespace:   ${status.namespace} exists but no deregistration kept it (a register stopped before its cluster CA, or a release before 0.2.0 kept it): register again to complete it, or deregister --purge to remove it`
                  : `  Namespace:   none (registering creates ${status.namespace})`,
            '',
            `Register it with: cloudtaser-cli source register --fingerprint ${status.fingerprint} --secretstore-address ${client.address}${opts.namespaceRoot === 'cloudtaser' ? '' : ` --namespace-root ${opts.namespaceRoot}`}`,
            '',
          ].join('\n'),
        );
        return;
      }
      process.stdout.write(
        [
          `Cluster ${status.fingerprint}`,
          `  Registered:  yes (${status.registeredAt})`,
          ...(status.caMissing
            ? [
                `  Damaged:     CT_REGISTRATION_CORRUPT: the record names ${status.namespace}, whose cluster CA is gone (a register and a deregister --purge ran at once?): run register again to repair it (a new CA: pin its operational hash), or deregister to remove it`,
              ]
            : []),
          `  Initialized: ${status.initialized ? `yes${status.initializedAt ? ` (${status.initializedAt})` : ''}` : 'no'}`,
          ...(!status.initialized && status.rearmExpiresAt
            ? [
                !isRearmExpired(status.rearmExpiresAt)
                  ? `  Re-armed:    until ${status.rearmExpiresAt} (one more bootstrap allowed)`
                  : `  Re-armed:    expired at ${status.rearmExpiresAt} unused: bridges refuse a bootstrap without attestation; run register --rearm again right before the operator restarts`,
              ]
            : []),
          `  Namespace:   ${status.namespace}`,
          // The cluster CA's SHA-256: what `target trust pin --ca-sha256` and the chart's caSha256 take.
          ...(status.operationalHash ? [`  Operational hash: ${status.operationalHash}`] : []),
          `  Migration:   ${status.migrationEnabled ? 'enabled' : 'disabled'}`,
          `  Attested:    ${status.attestation ? `yes (issuer ${status.attestation.issuer}, ${status.attestation.jwks.keys.length} key(s), service account ${status.attestation.serviceAccount.namespace}/${status.attestation.serviceAccount.name})` : 'no'}`,
          '',
        ].join('\n'),
      );
      if (status.caMissing) process.exitCode = 1;
    } finally {
      await client.close();
    }
  });
  registerSourceListCommand(source);
  registerSourceDoctorCommand(source);
}

/** `source policy bridge|registrar`: prints the shipped OpenBao policy; no OpenBao call. */
function registerPolicyCommand(source: Command): void {
  source
    .command('policy')
    .description(
      'print the OpenBao ACL policy (HCL) an identity needs: bridge (bridge run) or registrar (register/status/deregister/list, the Terraform provider, RegisteredCluster); write it in the root namespace',
    )
    .argument('<identity>', 'bridge or registrar')
    .option('--namespace-root <name>', 'OpenBao namespace under which cluster namespaces live', 'cloudtaser')
    .option(
      '--no-migration',
      'bridge: leave out the secret/k8s/ lines (no cluster registered with --migration)',
    )
    .action(async (identity: string, opts: { namespaceRoot: string; migration: boolean }) => {
      const { POLICY_NAMES, renderPolicyHcl, validateNamespaceRoot } = await loadRegistration();
      if (!(identity in POLICY_NAMES)) {
        throw new CloudtaserError(
          'CT_INVALID_ARGUMENT',
          `unknown identity ${JSON.stringify(identity)}: use \`source policy bridge\` or \`source policy registrar\``,
        );
      }
      const hcl = renderPolicyHcl(identity as PolicyIdentity, {
        namespaceRoot: validateNamespaceRoot(opts.namespaceRoot),
        without: opts.migration ? [] : ['migration'],
      });
      process.stdout.write(hcl);
    });
}

/** `source beacon-ca`: the bridges' identity towards the beacon; prints the public certificate the beacon trusts. */
function registerBeaconCaCommand(source: Command): void {
  addSecretStoreOptions(
    source
      .command('beacon-ca')
      .description(
        'create (once) the beacon client CA in OpenBao and print its certificate: give it to the beacon (--bridge-ca); bridges mint their client certificates from it',
      )
      .option('--output <format>', 'pem or json', 'pem'),
  ).action(async (opts: SecretStoreFlags & { output: string }) => {
    if (opts.output !== 'pem' && opts.output !== 'json')
      throw new CloudtaserError(
        'CT_INVALID_ARGUMENT',
        `--output ${JSON.stringify(opts.output)} is not pem or json`,
      );
    const client = await openSecretStore(opts);
    try {
      const { ensureBeaconClientCa } = await loadRegistration();
      const ca = await withProgress('ensuring the beacon client CA', () =>
        ensureBeaconClientCa(client, { namespaceRoot: opts.namespaceRoot }),
      );
      if (opts.output === 'json') return printJson(ca);
      process.stdout.write(ca.certPem);
    } finally {
      await client.close();
    }
  });
}

/** The registration code, loaded when a command runs: it is heavy (OpenBao client, PKI) and `--help` needs none of it. */
function loadRegistration() {
  return import('../registration/index.js');
}

/** Reads the attestation flags; undefined when none is given (an existing setting is then kept). */
async function readAttestationFlags(opts: {
  attestationIssuer?: string;
  attestationJwks?: string;
  attestationServiceAccount?: string;
}): Promise<AttestationSettings | undefined> {
  const { attestationIssuer: issuer, attestationJwks: jwksFile, attestationServiceAccount: account } = opts;
  if (issuer === undefined && jwksFile === undefined && account === undefined) return undefined;
  if (issuer === undefined || jwksFile === undefined) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      '--attestation-issuer and --attestation-jwks go together (--attestation-service-account is optional)',
    );
  }
  let jwks: string;
  try {
    jwks = await readFile(jwksFile, 'utf8');
  } catch (err) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `--attestation-jwks ${JSON.stringify(jwksFile)} could not be read: ${(err as Error).message}`,
      { cause: err },
    );
  }
  let serviceAccount: { namespace: string; name: string } | undefined;
  if (account !== undefined) {
    const slash = account.indexOf('/');
    serviceAccount = { namespace: account.slice(0, slash), name: account.slice(slash + 1) };
    if (slash <= 0) serviceAccount = { namespace: '', name: account };
  }
  return { issuer, jwks, ...(serviceAccount ? { serviceAccount } : {}) };
}

type ClusterStatus = import('../registration/status.js').ClusterStatus;

/**
 * `source status --output json`: every key present in every state (null where the state has no value), so a
 * script reads `.registeredAt` without first asking whether the key exists. The CA certificate stays out (the
 * operational hash pins it).
 */
function statusView(status: ClusterStatus): Record<string, unknown> {
  return {
    fingerprint: status.fingerprint,
    namespace: status.namespace,
    registered: status.registered,
    initialized: status.initialized,
    incomplete: status.incomplete,
    namespaceKept: status.registered ? null : status.namespaceKept === true,
    deregisteredAt: status.deregisteredAt ?? null,
    caMissing: status.registered ? status.caMissing === true : null,
    initHash: status.initHash,
    operationalHash: status.operationalHash ?? null,
    registeredAt: status.registeredAt ?? null,
    initializedAt: status.initializedAt ?? null,
    initializedBrokerKeySha256: status.initializedBrokerKeySha256 ?? null,
    initializedVersion: status.initializedVersion ?? null,
    initializedAttestationIat: status.initializedAttestationIat ?? null,
    rearmExpiresAt: status.rearmExpiresAt ?? null,
    migrationEnabled: status.migrationEnabled,
    attestation: status.attestation ?? null,
  };
}
