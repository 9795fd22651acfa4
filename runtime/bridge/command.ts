import type { Command } from 'commander';
import { CloudtaserError } from '../core/errors.js';
import { createLogger } from '../core/log.js';
import { OpenBaoClient, resolveSecretStoreAddress, resolveSecretStoreToken } from '../openbao/index.js';
import { DEFAULT_NAMESPACE_ROOT } from '../registration/index.js';
import {
  addRelayClientOptions,
  parseDuration,
  parseListenAddress,
  type RelayClientFlags,
  readPemFile,
  readRelayClientFlags,
  readTlsPairFlags,
  untilSignal,
} from '../tunnel/index.js';
import { DEFAULT_BEACON_DIAL_CONCURRENCY, DEFAULT_BRIDGE_TIMING, startBridge } from './bridge.js';

interface BridgeRunFlags extends RelayClientFlags {
  readonly secretstoreAddress?: string;
  readonly secretstoreToken?: string;
  readonly secretstoreCaCert?: string;
  readonly namespaceRoot: string;
  readonly approleRoleId?: string;
  readonly approleSecretId?: string;
  readonly approleMount: string;
  readonly pollInterval: string;
  readonly waitRefresh: string;
  readonly discoveryResync: string;
  readonly beaconDialConcurrency: string;
  readonly tokenreviewListen?: string;
  readonly tokenreviewTlsCert?: string;
  readonly tokenreviewTlsKey?: string;
  readonly podRequestTimeout: string;
}

/** `cloudtaser-cli bridge run`: a thin shell over startBridge. */
export function registerBridgeCommand(program: Command): Command {
  const bridge = program
    .command('bridge')
    .description('the secret-store side of the relay: signs bootstraps, serves tunnels');
  addRelayClientOptions(bridge.command('run'), DEFAULT_BRIDGE_TIMING)
    .description('discover registered clusters in OpenBao and wait for their brokers on every beacon replica')
    .option(
      '--secretstore-address <url>',
      'OpenBao address (env CLOUDTASER_SECRETSTORE_ADDRESS, BAO_ADDR, VAULT_ADDR)',
    )
    .option(
      '--secretstore-token <token>',
      "the bridge's own OpenBao token (env CLOUDTASER_SECRETSTORE_TOKEN, BAO_TOKEN, VAULT_TOKEN); not an admin token",
    )
    .option('--secretstore-ca-cert <path>', 'PEM file with the CA that signed the OpenBao certificate')
    .option(
      '--namespace-root <name>',
      'OpenBao namespace under which cluster namespaces live',
      DEFAULT_NAMESPACE_ROOT,
    )
    .option(
      '--approle-role-id <id>',
      'log in with AppRole instead of a token (env CLOUDTASER_APPROLE_ROLE_ID)',
    )
    .option(
      '--approle-secret-id <id>',
      'AppRole secret id (env CLOUDTASER_APPROLE_SECRET_ID; prefer the environment)',
    )
    .option('--approle-mount <path>', 'AppRole auth mount', 'approle')
    .option(
      '--poll-interval <duration>',
      'how often to list registered clusters',
      `${DEFAULT_BRIDGE_TIMING.pollIntervalMs}ms`,
    )
    .option(
      '--wait-refresh <duration>',
      'replace an idle waiting connection after this long',
      `${DEFAULT_BRIDGE_TIMING.waitRefreshMs}ms`,
    )
    .option(
      '--discovery-resync <duration>',
      'list every registered cluster this often even when the discovery journal says nothing changed (anti-entropy); 0 = never',
      `${DEFAULT_BRIDGE_TIMING.discoveryResyncMs / 60_000}m`,
    )
    .option(
      '--beacon-dial-concurrency <n>',
      "waiting connections opening at once towards one beacon replica; keep it below the beacon's --max-pending-per-address",
      String(DEFAULT_BEACON_DIAL_CONCURRENCY),
    )
    .option(
      '--tokenreview-listen <host:port>',
      "serve OpenBao's Kubernetes-auth TokenReviews for every cluster here (/clusters/<fingerprint>/apis/authentication.k8s.io/v1/tokenreviews); registration's --tokenreview-endpoint must name it as OpenBao reaches it",
    )
    .option(
      '--tokenreview-tls-cert <path>',
      'PEM certificate for the TokenReview listener (default: plain HTTP)',
    )
    .option('--tokenreview-tls-key <path>', 'PEM key for --tokenreview-tls-cert')
    .option(
      '--pod-request-timeout <duration>',
      "how long a pod's request may wait for OpenBao before the pod gets a 503 to retry",
      '15s',
    )
    .action(async (flags: BridgeRunFlags) => {
      const logger = createLogger('bridge');
      const relay = await readRelayClientFlags(flags, 'bridge run');
      const openbao = await connectSecretStore(flags);
      const tokenReviewTls = await readTlsPairFlags(
        flags.tokenreviewTlsCert,
        flags.tokenreviewTlsKey,
        '--tokenreview-tls',
      );
      const handle = await startBridge({
        openbao,
        namespaceRoot: flags.namespaceRoot,
        beacons: relay.beacons,
        beaconCaPem: relay.beaconCaPem,
        resolve: relay.resolve,
        health: relay.health,
        openbaoCaCertPem: await readPemFile(flags.secretstoreCaCert, '--secretstore-ca-cert'),
        podRequestTimeoutMs: parseDuration(flags.podRequestTimeout, '--pod-request-timeout'),
        tokenReview: flags.tokenreviewListen
          ? {
              ...parseListenAddress(flags.tokenreviewListen, '--tokenreview-listen'),
              tls: tokenReviewTls,
            }
          : undefined,
        timing: {
          pollIntervalMs: parseDuration(flags.pollInterval, '--poll-interval'),
          stepTimeoutMs: relay.stepTimeoutMs,
          backoffMaxMs: relay.backoffMaxMs,
          waitRefreshMs: parseDuration(flags.waitRefresh, '--wait-refresh'),
          discoveryResyncMs:
            flags.discoveryResync.trim() === '0'
              ? 0
              : parseDuration(flags.discoveryResync, '--discovery-resync'),
        },
        beaconDialConcurrency: parsePositiveInteger(flags.beaconDialConcurrency, '--beacon-dial-concurrency'),
        logger,
      });
      logger.info(
        {
          event: 'bridge.started',
          healthUrl: handle.healthUrl,
          tokenReviewUrl: handle.tokenReviewUrl,
          beacons: flags.beacon,
        },
        'bridge running',
      );
      const signal = await untilSignal();
      logger.info({ event: 'bridge.stopping', signal }, 'bridge stopping');
      await handle.close();
      await openbao.close();
    });
  return bridge;
}

function parsePositiveInteger(value: string, flag: string): number {
  const parsed = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(parsed) || parsed < 1)
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `${flag} ${JSON.stringify(value)} must be a whole number >= 1`,
    );
  return parsed;
}

async function connectSecretStore(flags: BridgeRunFlags): Promise<OpenBaoClient> {
  const address = resolveSecretStoreAddress(flags.secretstoreAddress);
  if (!address) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      'no secret-store address: pass --secretstore-address or set CLOUDTASER_SECRETSTORE_ADDRESS',
    );
  }
  const caCertPem = await readPemFile(flags.secretstoreCaCert, '--secretstore-ca-cert');
  const roleId = flags.approleRoleId ?? process.env.CLOUDTASER_APPROLE_ROLE_ID;
  const secretId = flags.approleSecretId ?? process.env.CLOUDTASER_APPROLE_SECRET_ID;
  if (roleId || secretId) {
    if (!roleId || !secretId) {
      throw new CloudtaserError(
        'CT_INVALID_ARGUMENT',
        'AppRole login needs both --approle-role-id and --approle-secret-id (or their environment variables)',
      );
    }
    const anonymous = new OpenBaoClient({ address, caCertPem });
    const auth = await anonymous.appRoleLogin(flags.approleMount, roleId, secretId);
    return anonymous.withToken(auth.clientToken);
  }
  const token = resolveSecretStoreToken(flags.secretstoreToken);
  if (!token) {
    throw new CloudtaserError(
      'CT_TOKEN_MISSING',
      "no credentials for the bridge: set CLOUDTASER_SECRETSTORE_TOKEN to the bridge's own token, or pass --approle-role-id with CLOUDTASER_APPROLE_SECRET_ID",
    );
  }
  return new OpenBaoClient({ address, token, caCertPem });
}
