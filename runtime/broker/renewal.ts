/**
 * The broker renews its certificates through its live tunnel before they expire (protocol: runtime/tunnel/renew.ts):
 * CSRs for the keys it already holds, so nothing the bridge pins changes and no trust is established anew. A
 * renewal that fails (a bridge before 0.2.0, OpenBao away, the tunnel closing) keeps the current certificates and is
 * tried again after `retryMs`, each failure logged with when the certificate expires, until the certificate is
 * renewed or expires (then the next tunnel fails as before, and `target doctor` has warned for 14 days).
 */
import { X509Certificate } from 'node:crypto';
import { jitteredInterval } from '../core/backoff.js';
import { CloudtaserError, isCloudtaserError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { KeyPair } from '../pki/index.js';
import { type RenewRequest, requestRenewal, sleep, type TunnelMux } from '../tunnel/index.js';
import { type BrokerCredentials, brokerCsrs } from './bootstrap.js';

/** Codes of a request cut by its tunnel closing: retried on the next tunnel, not a failure. */
const TUNNEL_GONE = new Set(['CT_TUNNEL_CLOSED', 'CT_TUNNEL_DRAINED']);

/** Looked at again at least this often, so a long wait notices new credentials (a re-bootstrap) in time. */
const MAX_WAIT_MS = 3_600_000;

export interface CertificateRenewalOptions {
  /** Renew when less than this is left (or a third of the certificate's validity, if shorter). */
  readonly renewBeforeMs: number;
  /** After a failed renewal, the next attempt: a jittered half to all of this. */
  readonly retryMs: number;
  readonly timeoutMs: number;
  /** The credentials the broker uses now; the renewal replaces them through `renewed`. */
  readonly credentials: () => BrokerCredentials | undefined;
  readonly keyPair: KeyPair;
  readonly podApi?: { readonly dnsNames: readonly string[]; readonly keyPair: KeyPair };
  /** The next usable tunnel (the current one if there is one); undefined once `signal` aborts. */
  readonly nextTunnel: (
    previous: TunnelMux | undefined,
    signal: AbortSignal,
  ) => Promise<TunnelMux | undefined>;
  readonly renewed: (fresh: BrokerCredentials) => Promise<void> | void;
  readonly failed?: (error: CloudtaserError) => void;
  readonly signal: AbortSignal;
  readonly logger: Logger;
}

/** When a certificate should be renewed: `renewBeforeMs` before it expires, or at two thirds of its validity. */
export function renewalDueAt(certPem: string, renewBeforeMs: number): number {
  const cert = new X509Certificate(certPem);
  const notBefore = Date.parse(cert.validFrom);
  const notAfter = Date.parse(cert.validTo);
  return notAfter - Math.min(renewBeforeMs, (notAfter - notBefore) / 3);
}

/** Runs until `signal` aborts. */
export async function runCertificateRenewal(options: CertificateRenewalOptions): Promise<void> {
  const { signal, logger } = options;
  let retryAt = 0;
  let failedFor: BrokerCredentials | undefined;
  while (!signal.aborted) {
    const tunnel = await options.nextTunnel(undefined, signal);
    const held = options.credentials();
    if (!tunnel || !held || signal.aborted) {
      if (!signal.aborted) await sleep(1_000, signal);
      continue;
    }
    // A retry wait belongs to the credentials that failed: a re-bootstrap since then starts afresh.
    if (failedFor !== held) retryAt = 0;
    const dueAt = Math.max(renewalDueAt(held.brokerCertPem, options.renewBeforeMs), retryAt);
    const waitMs = dueAt - Date.now();
    if (waitMs > 0) {
      await sleep(Math.min(waitMs, MAX_WAIT_MS), signal);
      continue;
    }
    try {
      const request: RenewRequest = {
        v: 1,
        ...brokerCsrs(options.keyPair, held.podApiPrivateKey ? options.podApi : undefined),
      };
      const answer = await requestRenewal(tunnel, held, request, { timeoutMs: options.timeoutMs, signal });
      // A re-bootstrap finished meanwhile: its certificates are newer than these.
      if (options.credentials() !== held) continue;
      const fresh: BrokerCredentials = {
        ...held,
        brokerCertPem: answer.brokerCert,
        ...(answer.podApiCert ? { podApiCertPem: answer.podApiCert } : {}),
      };
      await options.renewed(fresh);
      failedFor = undefined;
      logger.info(
        {
          event: 'broker.certificate_renewed',
          certificateNotAfter: notAfterOf(fresh.brokerCertPem),
          previousNotAfter: notAfterOf(held.brokerCertPem),
          podApi: answer.podApiCert !== undefined,
        },
        'renewed the broker certificate through the tunnel (same key)',
      );
    } catch (err) {
      if (signal.aborted) return;
      const error = isCloudtaserError(err)
        ? err
        : new CloudtaserError('CT_INTERNAL', (err as Error)?.message ?? String(err), { cause: err });
      if (TUNNEL_GONE.has(error.code)) {
        // The tunnel closed under the request (a move, a reconnect): nothing failed; ask on the next one.
        logger.debug(
          { event: 'broker.certificate_renewal_interrupted', code: error.code },
          'the tunnel closed during a certificate renewal; asking again on the next tunnel',
        );
        await sleep(1_000, signal);
        continue;
      }
      failedFor = held;
      retryAt = Date.now() + options.retryMs / 2 + jitteredInterval(options.retryMs / 2);
      options.failed?.(error);
      logger.warn(
        {
          event: 'broker.certificate_renewal_failed',
          code: error.code,
          reason: error.message,
          certificateNotAfter: notAfterOf(held.brokerCertPem),
          retryAt: new Date(retryAt).toISOString(),
        },
        'could not renew the broker certificate; keeping the current one and trying again. If it expires, the bridge refuses the next tunnel and the broker must bootstrap again (attestation, or a re-arm)',
      );
    }
  }
}

function notAfterOf(certPem: string): string {
  return new Date(new X509Certificate(certPem).validTo).toISOString();
}
