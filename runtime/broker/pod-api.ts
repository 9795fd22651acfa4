/**
 * The broker's side of the pod API: it cannot listen before a bootstrap brought its certificate, so it starts
 * on the first set of credentials that carries one, and from then on tells pods (through /status and the
 * webhook) where it is and which CA to trust.
 */
import { fingerprintPrefix } from '../core/hashes.js';
import { reservePort } from '../core/listen.js';
import type { Logger } from '../core/log.js';
import { privateKeyToPem } from '../pki/index.js';
import { type PodApiLimits, type PodApiServer, startPodApiServer } from '../podapi/server.js';
import type { TunnelMux } from '../tunnel/index.js';
import type { BrokerCredentials } from './bootstrap.js';
import type { BrokerMetrics } from './metrics.js';

export interface BrokerPodApiOptions {
  readonly host?: string;
  readonly port: number;
  /** DNS names on the pod API certificate: the operator Service's (`svc`, `svc.ns`, `svc.ns.svc`, ...). */
  readonly dnsNames: readonly string[];
  /** The URL pods use. @default `https://<dnsNames[0]>:<port>` */
  readonly url?: string;
  readonly limits?: Partial<PodApiLimits>;
}

export interface BrokerPodApiContext {
  /** The live tunnel, if any. */
  readonly tunnel: () => TunnelMux | undefined;
  /** The next live tunnel other than `previous`; undefined once `signal` aborts. */
  readonly nextTunnel?: (
    previous: TunnelMux | undefined,
    signal: AbortSignal,
  ) => Promise<TunnelMux | undefined>;
  /** Why this broker gets no tunnel until someone acts, if so (see PodApiServerOptions.refusal). */
  readonly refusal?: () => { readonly code: string; readonly reason: string } | undefined;
  /** Why the tunnel is down while it may come back by itself (see PodApiServerOptions.noTunnelReason). */
  readonly noTunnelReason?: () => { readonly code: string; readonly reason: string } | undefined;
  /** TokenReviews this broker could not do so far, and the last failure's code (see PodApiServerOptions). */
  readonly tokenReviewFailures?: () => { readonly count: number; readonly code?: string };
  readonly metrics?: BrokerMetrics;
  readonly logger: Logger;
}

/** Where pods reach the pod API and the CA (public) they trust for it. */
export interface PodApiEndpoint {
  readonly url: string;
  readonly caPem: string;
}

export interface BrokerPodApi {
  /**
   * Holds its port from the broker's start (a fixed port only), so one another process holds fails the broker
   * before it bootstraps; `start` listens there. Throws CT_LISTEN_FAILED when the port cannot be held.
   */
  reserve(): Promise<void>;
  /**
   * Starts the pod API if these credentials carry its certificate; once it runs, a later call serves new
   * connections with the certificate these credentials carry (a re-bootstrap's), as `renew` does.
   */
  start(credentials: BrokerCredentials, fingerprint: string): Promise<void>;
  /** Serves new connections with the pod API certificate of these credentials (a renewal). */
  renew(credentials: BrokerCredentials): void;
  /** Once it runs: the address pods use and the CA they trust. */
  endpoint(): PodApiEndpoint | undefined;
  /** Where it listens, as bound, once it runs. */
  listenUrl(): string | undefined;
  /**
   * Waits for a start under way, then closes: no new connection, requests in flight get `graceMs` to finish.
   * Every call returns the first call's promise.
   */
  close(graceMs?: number): Promise<void>;
}

export function brokerPodApi(options: BrokerPodApiOptions, context: BrokerPodApiContext): BrokerPodApi {
  const log = context.logger;
  let server: PodApiServer | undefined;
  let endpoint: PodApiEndpoint | undefined;
  let starting: Promise<void> | undefined;
  let closing: Promise<void> | undefined;

  let reservation: { release(): Promise<void> } | undefined;

  const listen = async (credentials: BrokerCredentials, fingerprint: string) => {
    if (!credentials.podApiCertPem || !credentials.podApiPrivateKey) {
      log.warn(
        { event: 'broker.podapi_no_certificate' },
        'the bootstrap brought no pod API certificate; the pod API stays off until the next bootstrap',
      );
      return;
    }
    const metrics = context.metrics;
    await reservation?.release();
    reservation = undefined;
    const started = await startPodApiServer({
      host: options.host,
      port: options.port,
      tls: { certPem: credentials.podApiCertPem, keyPem: privateKeyToPem(credentials.podApiPrivateKey) },
      clusterNamespaceName: fingerprintPrefix(fingerprint),
      tunnel: context.tunnel,
      nextTunnel: context.nextTunnel,
      refusal: context.refusal,
      noTunnelReason: context.noTunnelReason,
      tokenReviewFailures: context.tokenReviewFailures,
      limits: options.limits,
      observe: metrics ? (route, code, seconds) => metrics.podApiRequest(route, code, seconds) : undefined,
      onLimit: metrics ? (limit) => metrics.podApiLimit(limit) : undefined,
      logger: log,
    });
    if (closing) {
      // close() came while it was binding: do not leave it listening.
      await started.close();
      return;
    }
    server = started;
    servedCertPem = credentials.podApiCertPem;
    // Port 0 (tests, local use) is replaced by the bound port.
    const port = !options.url && options.port === 0 ? new URL(started.url).port : options.port;
    endpoint = {
      url: options.url ?? `https://${options.dnsNames[0]}:${port}`,
      caPem: credentials.caCertPem,
    };
  };

  let servedCertPem: string | undefined;
  const renew = (credentials: BrokerCredentials) => {
    const certPem = credentials.podApiCertPem;
    if (!server || !certPem || !credentials.podApiPrivateKey || certPem === servedCertPem) return;
    server.setCertificate({ certPem, keyPem: privateKeyToPem(credentials.podApiPrivateKey) });
    servedCertPem = certPem;
  };

  return {
    async reserve() {
      if (options.port === 0 || reservation || server) return;
      reservation = await reservePort({ host: options.host, port: options.port, what: 'the pod API' });
    },
    async start(credentials, fingerprint) {
      if (server) return renew(credentials);
      if (closing) return;
      starting ??= listen(credentials, fingerprint).finally(() => {
        starting = undefined;
      });
      await starting;
    },
    renew,
    endpoint: () => endpoint,
    listenUrl: () => server?.url,
    close(graceMs) {
      closing ??= (async () => {
        await starting?.catch(() => undefined);
        await reservation?.release();
        await server?.close(graceMs);
      })();
      return closing;
    },
  };
}
