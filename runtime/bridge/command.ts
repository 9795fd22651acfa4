import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { CloudtaserError } from '../core/errors.js';
import { parseListenAddress } from '../core/health-server.js';
import { createLogger, type Logger } from '../core/log.js';
import { CLOUDTASER_VERSION } from '../core/version.js';
import type { AuthResult, OpenBaoClient, RenewingLogin, StaticTokenKeeper } from '../openbao/index.js';
import { DEFAULT_NAMESPACE_ROOT } from '../registration/defaults.js';
import {
  addRelayClientOptions,
  collect,
  drainThenClose,
  parseDuration,
  type RelayClientFlags,
  readPemFile,
  readRelayClientFlags,
  untilSignal,
} from '../tunnel/flags.js';
import type { BeaconIdentity } from './beacon-identity.js';
import { DEFAULT_BEACON_DIAL_CONCURRENCY, DEFAULT_BRIDGE_TIMING } from './defaults.js';
import type { BridgeMetrics } from './metrics.js';
import type { BridgeOptions } from './options.js';
import { validateShardSettings } from './shards.js';
import type { TokenReviewTls } from './tokenreview-service.js';

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
  readonly tokenreviewTlsCa?: string;
  readonly tokenreviewPlainHttp?: boolean;
  readonly tokenreviewDnsName?: string[];
  readonly tokenreviewPeers?: string;
  readonly tokenreviewPeerAddress?: string;
  readonly kubernetesAuthRole?: string;
  readonly kubernetesAuthMount: string;
  readonly kubernetesAuthTokenFile: string;
  readonly podRequestTimeout: string;
  readonly openbaoForwardedFor?: boolean;
  readonly beaconClientIdentity: string;
  readonly beaconClientCert?: string;
  readonly beaconClientKey?: string;
  readonly beaconClientCertLifetime: string;
  readonly shards: string;
  readonly shardReplicas: string;
  readonly shardIdentity?: string;
  readonly shardNamespace?: string;
  readonly shardLeasePrefix: string;
  readonly shardKubeconfig?: string;
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
      '--kubernetes-auth-role <role>',
      "log in with OpenBao's Kubernetes auth and the bridge's own service-account token instead (an OpenBao in the bridge's cluster)",
    )
    .option('--kubernetes-auth-mount <path>', 'Kubernetes auth mount', 'kubernetes')
    .option(
      '--kubernetes-auth-token-file <path>',
      'the service-account token for --kubernetes-auth-role',
      '/var/run/secrets/kubernetes.io/serviceaccount/token',
    )
    .option(
      '--poll-interval <duration>',
      'how often to list registered clusters',
      `${DEFAULT_BRIDGE_TIMING.pollIntervalMs}ms`,
    )
    .option(
      '--wait-refresh <duration>',
      "replace an idle waiting connection after a jittered half to all of this (keep it below the beacon's --bridge-wait-ms; dead connections are found by missed keepalive pings sooner)",
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
      'PEM certificate for the TokenReview listener, read again when it changes (default: one issued in memory from the listener CA registration keeps in OpenBao)',
    )
    .option('--tokenreview-tls-key <path>', 'PEM key for --tokenreview-tls-cert')
    .option(
      '--tokenreview-tls-ca <path>',
      'PEM CA of --tokenreview-tls-cert, to verify the peers (--tokenreview-peers) with',
    )
    .option(
      '--tokenreview-dns-name <name>',
      'DNS name on the issued listener certificate (the Service OpenBao dials); repeatable',
      collect,
    )
    .option(
      '--tokenreview-peers <host:port>',
      "the bridge's headless Service: a replica without the cluster's tunnel forwards the review to these A-records",
    )
    .option(
      '--tokenreview-peer-address <ip>',
      "this replica's own A-record among --tokenreview-peers (default: POD_IP from the downward API): never asked itself, and with --shards the others ask a shard's holders only",
    )
    .option(
      '--tokenreview-plain-http',
      'serve TokenReviews over plain HTTP (local use only: OpenBao sends its reviewer credential in clear)',
    )
    .option(
      '--beacon-client-identity <source>',
      "the client certificate that lets this bridge wait at the beacon: 'openbao' mints it in memory from the beacon client CA in OpenBao (`cloudtaser-cli source beacon-ca`), 'files' reads --beacon-client-cert/--beacon-client-key (e.g. cert-manager), 'none' sends none (only for a beacon run with --allow-anonymous-bridges)",
      'openbao',
    )
    .option(
      '--beacon-client-cert <path>',
      "PEM client certificate for the beacon (with 'files'); re-read when it changes",
    )
    .option('--beacon-client-key <path>', 'PEM key of --beacon-client-cert')
    .option(
      '--beacon-client-cert-lifetime <duration>',
      "lifetime of each certificate minted with 'openbao' (renewed at half of it)",
      '6h',
    )
    .option(
      '--pod-request-timeout <duration>',
      "how long a pod's request may wait for OpenBao before the pod gets a 503 to retry",
      '15s',
    )
    .option(
      '--openbao-forwarded-for',
      "send each pod's address to OpenBao as X-Forwarded-For (its listener must list the bridge in x_forwarded_for_authorized_addrs), so per-address quotas and audit logs see pods",
    )
    .option(
      '--shards <count>',
      'serve only the clusters of the shards this replica holds a Kubernetes Lease for (docs/scaling.md); 0: every replica serves every cluster',
      '0',
    )
    .option(
      '--shard-replicas <count>',
      'bridge replicas serving each shard (2 keeps clusters served through a restart)',
      '2',
    )
    .option(
      '--shard-identity <name>',
      "this replica's name in the Leases (default: POD_NAME, else the host name)",
    )
    .option(
      '--shard-namespace <namespace>',
      "where the Leases live (default: POD_NAMESPACE, else the pod's service-account namespace)",
    )
    .option(
      '--shard-lease-prefix <name>',
      'Lease names start with it (the Helm release name)',
      'cloudtaser-bridge',
    )
    .option('--shard-kubeconfig <path>', "kubeconfig for the Leases (default: the pod's own service account)")
    .action(async (flags: BridgeRunFlags) => {
      const logger = createLogger('bridge');
      const sharding = await shardingFrom(flags);
      const tokenReviewAddress = peerAddress(flags.tokenreviewPeerAddress ?? process.env.POD_IP);
      const relay = await readRelayClientFlags(flags, 'bridge run');
      // Loaded on use: the bridge (OpenBao client, tunnels, metrics) is not needed to show help or refuse a flag.
      const { startBridge } = await import('./bridge.js');
      const { createBridgeMetrics } = await import('./metrics.js');
      // Metrics are served on the probe port; without one nobody could scrape them.
      const metrics = relay.health ? createBridgeMetrics() : undefined;
      const secretStore = await connectSecretStore(flags, logger, metrics);
      const openbao = secretStore.client;
      const beaconIdentity = await startBeaconIdentity(flags, openbao, logger);
      const tokenReviewTls = tokenReviewTlsFrom(flags);
      const handle = await startBridge({
        openbao,
        namespaceRoot: flags.namespaceRoot,
        beaconIdentity,
        beacons: relay.beacons,
        beaconCaPem: relay.beaconCaPem,
        beaconProxy: relay.beaconProxy,
        resolve: relay.resolve,
        health: relay.health,
        openbaoCaCertPem: await readPemFile(flags.secretstoreCaCert, '--secretstore-ca-cert'),
        podRequestTimeoutMs: parseDuration(flags.podRequestTimeout, '--pod-request-timeout'),
        openbaoForwardedFor: flags.openbaoForwardedFor === true,
        metrics,
        tokenReview: flags.tokenreviewListen
          ? {
              ...parseListenAddress(flags.tokenreviewListen, '--tokenreview-listen'),
              tls: tokenReviewTls,
              dnsNames: flags.tokenreviewDnsName,
              peers: flags.tokenreviewPeers,
              address: tokenReviewAddress,
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
        sharding,
        ...(secretStore.login ? { openbaoLogin: secretStore.login.state } : {}),
        logger,
      });
      logger.info(
        {
          event: 'bridge.started',
          version: CLOUDTASER_VERSION,
          healthUrl: handle.healthUrl,
          tokenReviewUrl: handle.tokenReviewUrl,
          beacons: flags.beacon,
        },
        'bridge running',
      );
      const signal = await untilSignal();
      logger.info({ event: 'bridge.stopping', signal }, 'bridge stopping');
      await drainThenClose(handle, relay.shutdownDelayMs, (delayMs) =>
        logger.info(
          { event: 'bridge.draining', delayMs },
          'not ready (503 on /readyz) and still serving until the shutdown delay ends',
        ),
      );
      sharding?.leases.close?.();
      beaconIdentity?.close();
      secretStore.login?.close();
      secretStore.keeper?.close();
      await openbao.close();
    });
  return bridge;
}

/** `--shards 0` (the default): no sharding. Otherwise the Lease settings, checked before anything starts. */
async function shardingFrom(flags: BridgeRunFlags): Promise<BridgeOptions['sharding']> {
  if (flags.shards.trim() === '0') return undefined;
  const shards = parsePositiveInteger(flags.shards, '--shards');
  const replicasPerShard = parsePositiveInteger(flags.shardReplicas, '--shard-replicas');
  validateShardSettings(shards, replicasPerShard);
  const identity = flags.shardIdentity || process.env.POD_NAME || hostname();
  const namespace = flags.shardNamespace || process.env.POD_NAMESPACE || serviceAccountNamespace();
  if (!namespace)
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      '--shards needs the namespace of the Leases: pass --shard-namespace, or set POD_NAMESPACE from the downward API',
    );
  // Loaded only with sharding: the Kubernetes client (and its kubeconfig loader) is not needed otherwise.
  const { defaultKubeConnection, KubeClient } = await import('../kube/index.js');
  const leases = KubeClient.fromConnection(defaultKubeConnection({ kubeconfig: flags.shardKubeconfig }));
  return { leases, namespace, identity, shards, replicasPerShard, prefix: flags.shardLeasePrefix };
}

function serviceAccountNamespace(): string | undefined {
  try {
    return (
      readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim() || undefined
    );
  } catch {
    return undefined;
  }
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

/** The listener's certificate source: files (reloaded on change), plain HTTP, or issued from OpenBao's listener CA. */
function tokenReviewTlsFrom(flags: BridgeRunFlags): TokenReviewTls {
  const files = [flags.tokenreviewTlsCert, flags.tokenreviewTlsKey];
  if (flags.tokenreviewPlainHttp) {
    if (files.some(Boolean) || flags.tokenreviewTlsCa)
      throw new CloudtaserError(
        'CT_INVALID_ARGUMENT',
        '--tokenreview-plain-http cannot be combined with --tokenreview-tls-cert, --tokenreview-tls-key or --tokenreview-tls-ca',
      );
    return false;
  }
  if (files.every((f) => f === undefined)) {
    if (flags.tokenreviewTlsCa)
      throw new CloudtaserError(
        'CT_INVALID_ARGUMENT',
        '--tokenreview-tls-ca goes with --tokenreview-tls-cert and --tokenreview-tls-key',
      );
    return 'openbao';
  }
  if (!flags.tokenreviewTlsCert || !flags.tokenreviewTlsKey)
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      '--tokenreview-tls-cert and --tokenreview-tls-key go together',
    );
  return {
    files: {
      certFile: flags.tokenreviewTlsCert,
      keyFile: flags.tokenreviewTlsKey,
      caFile: flags.tokenreviewTlsCa,
    },
  };
}

/** The bridge's client certificate for the beacon, from the source `--beacon-client-identity` names. */
async function startBeaconIdentity(
  flags: BridgeRunFlags,
  openbao: OpenBaoClient,
  logger: ReturnType<typeof createLogger>,
): Promise<BeaconIdentity | undefined> {
  const fromFiles = flags.beaconClientCert !== undefined || flags.beaconClientKey !== undefined;
  if (fromFiles && flags.beaconClientIdentity !== 'openbao' && flags.beaconClientIdentity !== 'files')
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `--beacon-client-cert/--beacon-client-key read the identity from files; they do not go with --beacon-client-identity ${flags.beaconClientIdentity}`,
    );
  // 'openbao' is the default, so naming the files is enough to switch to them.
  const mode = fromFiles ? 'files' : flags.beaconClientIdentity;
  const { startMintedBeaconIdentity, watchBeaconIdentityFiles } = await import('./beacon-identity.js');
  switch (mode) {
    case 'openbao':
      return startMintedBeaconIdentity({
        openbao,
        namespaceRoot: flags.namespaceRoot,
        lifetimeMs: parseDuration(flags.beaconClientCertLifetime, '--beacon-client-cert-lifetime'),
        logger,
      });
    case 'files':
      if (!flags.beaconClientCert || !flags.beaconClientKey)
        throw new CloudtaserError(
          'CT_INVALID_ARGUMENT',
          '--beacon-client-cert and --beacon-client-key go together',
        );
      return watchBeaconIdentityFiles({
        certFile: flags.beaconClientCert,
        keyFile: flags.beaconClientKey,
        logger,
      });
    case 'none':
      logger.warn(
        { event: 'bridge.beacon_identity_none' },
        'this bridge presents no client certificate: only a beacon run with --allow-anonymous-bridges lets it wait',
      );
      return undefined;
    default:
      throw new CloudtaserError(
        'CT_INVALID_ARGUMENT',
        `--beacon-client-identity ${JSON.stringify(mode)} is not openbao, files or none`,
      );
  }
}

async function connectSecretStore(
  flags: BridgeRunFlags,
  logger: Logger,
  metrics?: BridgeMetrics,
): Promise<{ client: OpenBaoClient; login?: RenewingLogin; keeper?: StaticTokenKeeper }> {
  const observer = metrics?.openbaoObserver;
  const {
    keepStaticTokenAlive,
    OpenBaoClient,
    resolveSecretStoreAddress,
    resolveSecretStoreToken,
    startRenewingLogin,
  } = await import('../openbao/index.js');
  const address = resolveSecretStoreAddress(flags.secretstoreAddress);
  if (!address) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      'no secret-store address: pass --secretstore-address or set CLOUDTASER_SECRETSTORE_ADDRESS',
    );
  }
  const caCertPem = await readPemFile(flags.secretstoreCaCert, '--secretstore-ca-cert');
  // A login's token expires (token_ttl): it is renewed, and the bridge logs in again when it cannot be.
  const keepLoggedIn = async (
    anonymous: OpenBaoClient,
    description: string,
    login: () => Promise<AuthResult>,
  ) => {
    // OpenBao away at start (both restarted at once, an outage): start anyway and log in once it answers.
    const source = await startRenewingLogin({
      client: anonymous,
      login,
      description,
      logger,
      startBeforeOpenBao: true,
    });
    return { client: anonymous.withToken(source), login: source };
  };
  if (flags.kubernetesAuthRole) {
    const role = flags.kubernetesAuthRole;
    // Read at every login: a projected service-account token is rotated by the kubelet.
    const readJwt = async () => {
      try {
        return (await readFile(flags.kubernetesAuthTokenFile, 'utf8')).trim();
      } catch (err) {
        throw new CloudtaserError(
          'CT_INVALID_ARGUMENT',
          `--kubernetes-auth-role needs the bridge's service-account token at ${flags.kubernetesAuthTokenFile} (${(err as NodeJS.ErrnoException).code}); mount one or pass --kubernetes-auth-token-file`,
          { cause: err },
        );
      }
    };
    const anonymous = new OpenBaoClient({ address, caCertPem, observer });
    return keepLoggedIn(
      anonymous,
      `Kubernetes auth login (role ${role}) at auth/${flags.kubernetesAuthMount}`,
      async () => anonymous.kubernetesLogin(flags.kubernetesAuthMount, role, await readJwt()),
    );
  }
  const roleId = flags.approleRoleId ?? process.env.CLOUDTASER_APPROLE_ROLE_ID;
  const secretId = flags.approleSecretId ?? process.env.CLOUDTASER_APPROLE_SECRET_ID;
  if (roleId || secretId) {
    if (!roleId || !secretId) {
      throw new CloudtaserError(
        'CT_INVALID_ARGUMENT',
        'AppRole login needs both --approle-role-id and --approle-secret-id (or their environment variables)',
      );
    }
    const anonymous = new OpenBaoClient({ address, caCertPem, observer });
    return keepLoggedIn(anonymous, `AppRole login at auth/${flags.approleMount}`, () =>
      anonymous.appRoleLogin(flags.approleMount, roleId, secretId),
    );
  }
  const token = resolveSecretStoreToken(flags.secretstoreToken);
  if (!token) {
    throw new CloudtaserError(
      'CT_TOKEN_MISSING',
      "no credentials for the bridge: set CLOUDTASER_SECRETSTORE_TOKEN to the bridge's own token, or pass --approle-role-id with CLOUDTASER_APPROLE_SECRET_ID",
    );
  }
  const client = new OpenBaoClient({ address, token, caCertPem, observer });
  // A token given as it is: renewed while OpenBao allows, and said once when it will expire regardless.
  return { client, keeper: keepStaticTokenAlive({ client, logger }) };
}

/** This replica's pod IP as its TokenReview peers resolve it; refused when it is not an IP address. */
function peerAddress(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (isIP(value)) return value;
  throw new CloudtaserError(
    'CT_INVALID_ARGUMENT',
    `--tokenreview-peer-address (or POD_IP) ${JSON.stringify(value)} must be this pod's IP address, e.g. 10.8.3.17 (fieldRef status.podIP)`,
  );
}
