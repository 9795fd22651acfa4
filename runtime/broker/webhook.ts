/**
 * The broker's mutating webhook: its serving certificate (given, read from files and reloaded, or made in memory),
 * the HTTPS server, and, for an in-memory certificate, the keeper of the webhook configuration's caBundle.
 */
import { CloudtaserError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { type TlsFiles, type TlsFilesWatcher, watchTlsFiles } from '../core/tls-files.js';
import { issueSelfSignedSync } from '../pki/index.js';
import type { InjectionConfig, WebhookState } from '../webhook/admission.js';
import {
  keepWebhookCaBundle,
  type WebhookCaBundleKeeper,
  type WebhookCaBundleStatus,
  type WebhookConfigurationApi,
} from '../webhook/ca-bundle.js';
import { startWebhookServer, type WebhookServer } from '../webhook/server.js';
import type { BrokerMetrics } from './metrics.js';

export interface BrokerWebhookOptions {
  readonly host?: string;
  readonly port: number;
  /** Serving certificate. @default a self-signed one made in memory (its PEM is in /status as webhookCaPem) */
  readonly tls?: { readonly certPem: string; readonly keyPem: string } | false;
  /**
   * Serving certificate from files (a mounted `webhook.tls.secretName`), read again when they change so a renewal
   * reaches the webhook without a restart. Wins over `tls`. @default none
   */
  readonly tlsFiles?: TlsFiles;
  /** How often `tlsFiles` are checked. @default 10000 */
  readonly tlsReloadIntervalMs?: number;
  readonly dnsNames?: readonly string[];
  readonly injection: InjectionConfig;
  /**
   * Keep this MutatingWebhookConfiguration's caBundle equal to the in-memory serving CA (through `kube`), so
   * the API server can call the webhook after every restart and every `helm upgrade`. Ignored when `tls` is
   * given (then cert-manager or the user owns the bundle). @default off
   */
  readonly configurationName?: string;
  /** How often the caBundle is checked once current. @default 30000 */
  readonly caBundleIntervalMs?: number;
}

/** What the webhook needs from the rest of the broker. */
export interface BrokerWebhookContext {
  /** Names for the in-memory certificate when `dnsNames` is not given (the pod API's). */
  readonly fallbackDnsNames?: readonly string[];
  /** Needed only to keep the caBundle (`configurationName`). */
  readonly kube?: Partial<WebhookConfigurationApi>;
  /** The tunnel and pod API as admission reviews see them now. */
  readonly state: () => WebhookState;
  readonly metrics?: BrokerMetrics;
  readonly logger: Logger;
}

export interface BrokerWebhook {
  readonly url: string;
  /** The serving CA (public) when the broker made its certificate in memory; the configuration must trust it. */
  readonly caPem?: string;
  /** Whether the configuration trusts `caPem` yet, when the broker keeps it current. */
  caBundleStatus(): WebhookCaBundleStatus | undefined;
  /** No new connection; admission reviews in flight get `graceMs` to be answered. */
  close(graceMs?: number): Promise<void>;
}

/** Starts the webhook; a failure on the way closes whatever it had opened. */
export async function startBrokerWebhook(
  options: BrokerWebhookOptions,
  context: BrokerWebhookContext,
): Promise<BrokerWebhook> {
  const log = context.logger;
  // Only an in-memory certificate has a CA nobody else knows, so only then does the broker keep the caBundle.
  const makesOwnCertificate = !options.tlsFiles && options.tls === undefined;
  const configurationName = makesOwnCertificate ? options.configurationName : undefined;
  const kube = context.kube;
  // Checked before anything listens, so a refused start leaves nothing open.
  if (
    configurationName &&
    (!kube?.getMutatingWebhookConfiguration || !kube.patchMutatingWebhookConfiguration)
  ) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      'keeping the webhook caBundle current needs a Kubernetes client that can get and patch MutatingWebhookConfigurations',
    );
  }

  let server: WebhookServer | undefined;
  let tlsWatcher: TlsFilesWatcher | undefined;
  try {
    let tls = options.tls;
    let caPem: string | undefined;
    if (options.tlsFiles) {
      tlsWatcher = await watchTlsFiles({
        files: options.tlsFiles,
        what: 'webhook',
        intervalMs: options.tlsReloadIntervalMs,
        logger: log,
        onChange: (material) => server?.setCertificate(material),
      });
      tls = tlsWatcher.current();
    }
    if (tls === undefined) {
      const names = options.dnsNames ?? context.fallbackDnsNames ?? ['cloudtaser'];
      const issued = issueSelfSignedSync({
        commonName: names[0],
        dnsNames: names,
        extKeyUsage: ['serverAuth'],
      });
      tls = issued;
      caPem = issued.certPem;
    }
    const metrics = context.metrics;
    server = await startWebhookServer({
      host: options.host,
      port: options.port,
      tls,
      injection: options.injection,
      observe: metrics ? (outcome, reason) => metrics.admission(outcome, reason) : undefined,
      logger: log,
      state: context.state,
    });
    const caBundle: WebhookCaBundleKeeper | undefined =
      caPem && configurationName && kube
        ? keepWebhookCaBundle({
            kube: kube as WebhookConfigurationApi,
            configurationName,
            caPem,
            intervalMs: options.caBundleIntervalMs,
            logger: log,
          })
        : undefined;
    const listening = server;
    const watcher = tlsWatcher;
    let closing: Promise<void> | undefined;
    return {
      url: listening.url,
      caPem,
      caBundleStatus: () => caBundle?.status(),
      close(graceMs) {
        closing ??= (async () => {
          await caBundle?.close();
          watcher?.close();
          await listening.close(graceMs);
        })();
        return closing;
      },
    };
  } catch (err) {
    tlsWatcher?.close();
    await server?.close();
    throw err;
  }
}
