import { hostname } from 'node:os';
import type { Command } from 'commander';
import { CloudtaserError } from '../core/errors.js';
import { parseListenAddress } from '../core/health-server.js';
import { createLogger } from '../core/log.js';
import { parseNamespacedName, parseServiceAccountRef } from '../core/rules.js';
import { CLOUDTASER_VERSION } from '../core/version.js';
import { DEFAULT_POD_API_LIMITS } from '../podapi/defaults.js';
import {
  addRelayClientOptions,
  collect,
  drainThenClose,
  parseDuration,
  type RelayClientFlags,
  readRelayClientFlags,
  untilSignal,
} from '../tunnel/flags.js';
import { DEFAULT_INJECTED_RESOURCES, parseInjectedResources } from '../webhook/admission.js';
import { DEFAULT_BROKER_TIMING } from './options.js';
import {
  configMapTrustRecord,
  DEFAULT_TRUST_RECORD_NAME,
  DEFAULT_TRUST_RECORD_NAMESPACE,
  parseCaSha256,
  type TrustRecordRef,
} from './trust-record.js';

interface BrokerRunFlags extends RelayClientFlags {
  readonly kubeconfig?: string;
  readonly context?: string;
  readonly caSha256?: string;
  readonly backoffInitial: string;
  readonly rejectedRetry: string;
  readonly pairTimeout: string;
  readonly podApiListen?: string;
  readonly podApiDnsName?: string[];
  readonly podApiUrl?: string;
  readonly podApiMaxConnections: string;
  readonly podApiMaxConnectionsPerAddress: string;
  readonly podApiMaxRequestsPerAddress: string;
  readonly serviceName: string;
  readonly webhookListen?: string;
  readonly webhookTlsCert?: string;
  readonly webhookTlsKey?: string;
  readonly webhookConfiguration?: string;
  readonly injectImage?: string;
  readonly injectResources?: string;
  readonly migrate?: boolean;
  readonly migrateNamespace?: string[];
  readonly migrateInterval: string;
  readonly attestation?: boolean;
  readonly serviceAccount?: string;
  readonly trustRecord?: string;
}

/** Helm's default for the operator's service account name (the namespace comes from POD_NAMESPACE). */
const DEFAULT_SERVICE_ACCOUNT_NAME = 'cloudtaser';

/** `--service-account ns/name`, else POD_NAMESPACE + SERVICE_ACCOUNT_NAME (downward API), else the chart default. */
export function parseServiceAccount(
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): { namespace: string; name: string } {
  if (flag === undefined) {
    return {
      namespace: env.POD_NAMESPACE || 'cloudtaser-system',
      name: env.SERVICE_ACCOUNT_NAME || DEFAULT_SERVICE_ACCOUNT_NAME,
    };
  }
  return parseServiceAccountRef('--service-account', flag);
}

/** `--trust-record ns/name`, else `$POD_NAMESPACE/cloudtaser-trust`, else the chart's default namespace. */
export function parseTrustRecordRef(
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): TrustRecordRef {
  if (flag === undefined)
    return {
      namespace: env.POD_NAMESPACE || DEFAULT_TRUST_RECORD_NAMESPACE,
      name: DEFAULT_TRUST_RECORD_NAME,
    };
  const ref = parseNamespacedName(flag);
  if (!ref)
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `--trust-record ${JSON.stringify(flag)} must be <namespace>/<configmap name>, e.g. ${DEFAULT_TRUST_RECORD_NAMESPACE}/${DEFAULT_TRUST_RECORD_NAME}`,
    );
  return ref;
}

/** The Service's DNS names, as pods and the API server spell them (namespace from POD_NAMESPACE). */
function serviceDnsNames(service: string): string[] {
  const namespace = process.env.POD_NAMESPACE;
  return namespace
    ? [
        `${service}.${namespace}.svc`,
        `${service}.${namespace}.svc.cluster.local`,
        `${service}.${namespace}`,
        service,
      ]
    : [service];
}

/** `cloudtaser-cli broker run`: a thin shell over startBroker. Nothing is written to disk. */
export function registerBrokerCommand(program: Command): Command {
  const broker = program
    .command('broker')
    .description('the cluster side of the relay: bootstraps once, then holds the tunnel');
  addRelayClientOptions(broker.command('run'), DEFAULT_BROKER_TIMING)
    .description('read the cluster fingerprint, bootstrap through the beacon, keep the mutual-TLS tunnel up')
    .option(
      '--kubeconfig <path>',
      'kubeconfig to read the kube-system UID with (default: in-cluster config, else KUBECONFIG)',
    )
    .option('--context <name>', 'kubeconfig context')
    .option(
      '--ca-sha256 <hex>',
      'pin: refuse a cluster CA whose SHA-256 differs (the operational hash from `source register`)',
    )
    .option(
      '--trust-record <ns/name>',
      `ConfigMap that records the cluster CA accepted at first contact, so restarts and re-bootstraps accept only it (needs get and patch on it; default: $POD_NAMESPACE/${DEFAULT_TRUST_RECORD_NAME}, else ${DEFAULT_TRUST_RECORD_NAMESPACE}/${DEFAULT_TRUST_RECORD_NAME})`,
    )
    .option(
      '--backoff-initial <duration>',
      'first reconnect delay',
      `${DEFAULT_BROKER_TIMING.backoffInitialMs}ms`,
    )
    .option(
      '--rejected-retry <duration>',
      'retry interval while the bootstrap is refused',
      `${DEFAULT_BROKER_TIMING.rejectedRetryMs}ms`,
    )
    .option(
      '--pair-timeout <duration>',
      'abandon and redial a beacon wait after this long',
      `${DEFAULT_BROKER_TIMING.pairTimeoutMs}ms`,
    )
    .option(
      '--pod-api-listen <host:port>',
      'serve the OpenBao-compatible pod API here (TLS with a certificate the bridge signs at bootstrap)',
    )
    .option(
      '--pod-api-dns-name <name>',
      'DNS name on the pod API certificate; repeatable (default: the --service-name Service in $POD_NAMESPACE)',
      collect,
    )
    .option('--pod-api-url <url>', 'the URL pods use (default: https://<first DNS name>:<port>)')
    .option(
      '--pod-api-max-connections <n>',
      'pod API connections open at once; beyond it new ones are closed (each idle TLS connection costs ~35 KiB: raise the memory limit with it)',
      String(DEFAULT_POD_API_LIMITS.maxConnections),
    )
    .option(
      '--pod-api-max-connections-per-address <n>',
      'pod API connections one pod address may hold open at once',
      String(DEFAULT_POD_API_LIMITS.maxConnectionsPerAddress),
    )
    .option(
      '--pod-api-max-requests-per-address <n>',
      'pod API requests one pod address may have in the broker at once (in flight and waiting); beyond it 503',
      String(DEFAULT_POD_API_LIMITS.maxRequestsPerAddress),
    )
    .option('--service-name <name>', "the operator Service's name", 'cloudtaser')
    .option('--webhook-listen <host:port>', 'serve the mutating webhook (POST /mutate-pods) here')
    .option(
      '--webhook-tls-cert <path>',
      'PEM serving certificate for the webhook, read again when it changes (default: a self-signed one made in memory; /status shows webhookCaPem)',
    )
    .option('--webhook-tls-key <path>', 'PEM key for --webhook-tls-cert')
    .option(
      '--webhook-configuration <name>',
      "keep this MutatingWebhookConfiguration's caBundle equal to the in-memory serving CA (needs get and patch on it; ignored with --webhook-tls-cert)",
    )
    .option(
      '--inject-image <image>',
      'image of the injected init container (env CLOUDTASER_OPERATOR_IMAGE; the operator image)',
    )
    .option(
      '--inject-resources <json>',
      `requests and limits of the injected init container, e.g. {"requests":{"cpu":"10m"},"limits":{"cpu":"200m","memory":"128Mi"}} (a namespace whose ResourceQuota tracks limits.cpu needs a CPU limit) (default: ${JSON.stringify(DEFAULT_INJECTED_RESOURCES)})`,
    )
    .option(
      '--migrate',
      'migrate Secrets annotated cloudtaser.io/migrate=true into OpenBao (the bridge also needs the cluster registered with --migration)',
    )
    .option('--migrate-namespace <name>', 'only watch this namespace for migration; repeatable', collect)
    .option('--migrate-interval <duration>', 'how often to look for annotated Secrets', '10s')
    .option(
      '--attestation',
      'attested bootstrap: send a service-account token (TokenRequest, audience bound to the CSR key) with the CSR; needed when the cluster was registered with --attestation-issuer',
    )
    .option(
      '--service-account <ns/name>',
      'the service account the broker runs as, for --attestation (default: $POD_NAMESPACE/$SERVICE_ACCOUNT_NAME, else cloudtaser-system/cloudtaser)',
    )
    .action(async (flags: BrokerRunFlags) => {
      const logger = createLogger('broker');
      const relay = await readRelayClientFlags(flags, 'broker run');
      // Every flag is checked before the kubeconfig is loaded: a typo is a usage error (exit 2) wherever the
      // broker runs, not hidden behind CT_KUBE_CONFIG on a host without one (an outside docs drill).
      if (flags.caSha256 !== undefined) parseCaSha256(flags.caSha256, '--ca-sha256');
      const trustRecordRef = parseTrustRecordRef(flags.trustRecord);
      const dnsNames = flags.podApiDnsName?.length ? flags.podApiDnsName : serviceDnsNames(flags.serviceName);
      const podApiAddress = flags.podApiListen
        ? parseListenAddress(flags.podApiListen, '--pod-api-listen')
        : undefined;
      if (Boolean(flags.webhookTlsCert) !== Boolean(flags.webhookTlsKey))
        throw new CloudtaserError(
          'CT_INVALID_ARGUMENT',
          '--webhook-tls-cert and --webhook-tls-key go together',
        );
      // Read again when they change: a renewed Secret reaches the webhook without a restart.
      const webhookTlsFiles =
        flags.webhookTlsCert && flags.webhookTlsKey
          ? { certFile: flags.webhookTlsCert, keyFile: flags.webhookTlsKey }
          : undefined;
      const injectImage = flags.injectImage ?? process.env.CLOUDTASER_OPERATOR_IMAGE;
      const injectResources = flags.injectResources
        ? parseInjectedResources(flags.injectResources)
        : undefined;
      if (flags.webhookListen && !injectImage)
        throw new CloudtaserError(
          'CT_INVALID_ARGUMENT',
          '--webhook-listen needs --inject-image (or CLOUDTASER_OPERATOR_IMAGE): the image of the injected init container',
        );
      // Loaded here, not at the top: only the broker needs the Kubernetes client, and it is heavy to import.
      const { defaultKubeConnection, KubeClient, readClusterFingerprint } = await import('../kube/index.js');
      const connection = defaultKubeConnection({ kubeconfig: flags.kubeconfig, context: flags.context });
      const kube = KubeClient.fromConnection(connection, { logger });
      // Loaded on use, like the Kubernetes client: the broker and its metrics are not needed to show help.
      const { startBroker } = await import('./broker.js');
      const { createBrokerMetrics } = await import('./metrics.js');
      const handle = await startBroker({
        beacons: relay.beacons,
        beaconCaPem: relay.beaconCaPem,
        beaconProxy: relay.beaconProxy,
        fingerprint: (signal) => readClusterFingerprint(connection, { signal }),
        caSha256: flags.caSha256,
        // A pod's host name is its name unless the pod sets spec.hostname; POD_NAME (downward API) wins when set.
        podName: process.env.POD_NAME || hostname(),
        trustRecord: configMapTrustRecord(kube, trustRecordRef),
        kube,
        attestation: flags.attestation
          ? { serviceAccount: parseServiceAccount(flags.serviceAccount) }
          : undefined,
        podApi: podApiAddress
          ? {
              ...podApiAddress,
              dnsNames,
              url: flags.podApiUrl,
              limits: {
                maxConnections: parseCount(flags.podApiMaxConnections, '--pod-api-max-connections'),
                maxConnectionsPerAddress: parseCount(
                  flags.podApiMaxConnectionsPerAddress,
                  '--pod-api-max-connections-per-address',
                ),
                maxRequestsPerAddress: parseCount(
                  flags.podApiMaxRequestsPerAddress,
                  '--pod-api-max-requests-per-address',
                ),
              },
            }
          : undefined,
        webhook:
          flags.webhookListen && injectImage
            ? {
                ...parseListenAddress(flags.webhookListen, '--webhook-listen'),
                dnsNames,
                tlsFiles: webhookTlsFiles,
                injection: {
                  image: injectImage,
                  ...(injectResources ? { resources: injectResources } : {}),
                  // The operator's own namespace is never injected, as the chart's namespaceSelector says.
                  ...(process.env.POD_NAMESPACE ? { excludedNamespaces: [process.env.POD_NAMESPACE] } : {}),
                },
                configurationName: flags.webhookConfiguration,
              }
            : undefined,
        migration: flags.migrate
          ? {
              namespaces: flags.migrateNamespace,
              intervalMs: parseDuration(flags.migrateInterval, '--migrate-interval'),
            }
          : undefined,
        resolve: relay.resolve,
        health: relay.health,
        // Metrics are served on the probe port; without one nobody could scrape them.
        metrics: relay.health ? createBrokerMetrics() : undefined,
        timing: {
          stepTimeoutMs: relay.stepTimeoutMs,
          backoffInitialMs: parseDuration(flags.backoffInitial, '--backoff-initial'),
          backoffMaxMs: relay.backoffMaxMs,
          rejectedRetryMs: parseDuration(flags.rejectedRetry, '--rejected-retry'),
          pairTimeoutMs: parseDuration(flags.pairTimeout, '--pair-timeout'),
        },
        logger,
      });
      logger.info(
        {
          event: 'broker.started',
          version: CLOUDTASER_VERSION,
          healthUrl: handle.healthUrl,
          beacons: flags.beacon,
        },
        'broker running',
      );
      const signal = await untilSignal();
      logger.info({ event: 'broker.stopping', signal }, 'broker stopping');
      await drainThenClose(handle, relay.shutdownDelayMs, (delayMs) =>
        logger.info(
          { event: 'broker.draining', delayMs },
          'not ready (503 on /readyz) and still serving until the shutdown delay ends',
        ),
      );
      kube.close();
    });
  return broker;
}

/** A whole number of at least 1 from a flag. */
function parseCount(value: string, flag: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1 || !Number.isSafeInteger(Number(value))) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `${flag} ${JSON.stringify(value)} is not a whole number of at least 1`,
    );
  }
  return Number(value);
}
