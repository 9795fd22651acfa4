/**
 * The bridge's identity towards the beacon: the client certificate its outer TLS presents so the beacon lets
 * it wait in rooms. Either minted in memory from the beacon client CA in OpenBao (the default: nothing to
 * mount, renewed before it expires) or read from files a certificate manager renews (re-read on change).
 */

import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { BeaconClientCertificate } from '../beacon/index.js';
import { timerDelay } from '../core/backoff.js';
import { CloudtaserError } from '../core/errors.js';
import { type Logger, moduleLogger } from '../core/log.js';
import { watchPemFiles } from '../core/tls-files.js';
import { OPENBAO_AWAY_CODES, type OpenBaoClient } from '../openbao/index.js';
import { issueCertificate } from '../pki/index.js';
import { loadBeaconClientCa } from '../registration/index.js';

export interface BeaconIdentity {
  /**
   * The certificate to present on the next dial; undefined while the first one could not be minted yet (OpenBao
   * unreachable when the bridge started: it dials without one, the beacon refuses it, until the retry works).
   */
  current(): BeaconClientCertificate | undefined;
  /** Looks for a new certificate now (files: re-read them); resolves true when it changed. */
  checkNow?(): Promise<boolean>;
  close(): void;
}

export interface MintedBeaconIdentityOptions {
  /** OpenBao as the bridge (read on `<namespaceRoot>/cloudtaser/system/beacon-client-ca`). */
  readonly openbao: OpenBaoClient;
  /** @default 'cloudtaser' */
  readonly namespaceRoot?: string;
  /** Lifetime of each minted certificate. @default 6 hours */
  readonly lifetimeMs?: number;
  /** Retry interval when a renewal cannot read the CA. @default 30000 */
  readonly retryMs?: number;
  readonly logger?: Logger;
}

const DEFAULT_LIFETIME_MS = 6 * 3_600_000;
const DAY_MS = 86_400_000;
const SKEW_ALLOWANCE_MS = 5 * 60_000;

/**
 * Reads the beacon client CA from OpenBao and mints a client certificate in memory; renews it at half its
 * lifetime, reading the CA again each time (so a CA replaced in OpenBao is picked up without a restart). A
 * renewal that fails keeps the current certificate and retries; the key of the CA is dropped after each use.
 */
/** How often a first mint that failed is tried again. */
const FIRST_MINT_RETRY_MS = 5_000;

export async function startMintedBeaconIdentity(
  options: MintedBeaconIdentityOptions,
): Promise<BeaconIdentity> {
  const log = moduleLogger(options.logger, 'beacon-identity');
  const lifetimeMs = options.lifetimeMs ?? DEFAULT_LIFETIME_MS;
  const retryMs = options.retryMs ?? 30_000;
  if (!Number.isFinite(lifetimeMs) || lifetimeMs < 10_000)
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      'the beacon client certificate lifetime must be at least 10 seconds',
    );
  const mint = async (): Promise<BeaconClientCertificate> => {
    const ca = await loadBeaconClientCa(options.openbao, { namespaceRoot: options.namespaceRoot });
    // Valid from a few minutes back (clock skew at the beacon) until `lifetimeMs` from now.
    const notBefore = new Date(Date.now() - SKEW_ALLOWANCE_MS);
    const issued = issueCertificate(ca, {
      commonName: 'cloudtaser-bridge',
      extKeyUsage: ['clientAuth'],
      notBefore,
      days: (lifetimeMs + SKEW_ALLOWANCE_MS) / DAY_MS,
    });
    const certificate = new X509Certificate(issued.certPem);
    log.info(
      {
        event: 'bridge.beacon_identity_minted',
        validTo: certificate.validTo,
        serial: certificate.serialNumber,
      },
      'minted a beacon client certificate',
    );
    return { certPem: issued.certPem, keyPem: issued.keyPem! };
  };
  let current: BeaconClientCertificate | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const schedule = (delayMs: number) => {
    if (closed) return;
    // A lifetime over 49.6 days wakes at the timer's limit and mints early: harmless.
    timer = setTimeout(async () => {
      try {
        current = await mint();
        schedule(lifetimeMs / 2);
      } catch (err) {
        const code = err instanceof CloudtaserError ? err.code : 'CT_INTERNAL';
        log.warn(
          { event: 'bridge.beacon_identity_renewal_failed', code, reason: (err as Error).message, retryMs },
          current
            ? 'could not renew the beacon client certificate; keeping the current one and retrying'
            : 'still cannot mint the beacon client certificate; retrying',
        );
        schedule(current ? retryMs : Math.min(retryMs, FIRST_MINT_RETRY_MS));
      }
    }, timerDelay(delayMs));
    timer.unref();
  };
  try {
    current = await mint();
    schedule(lifetimeMs / 2);
  } catch (err) {
    // OpenBao not answering when the bridge starts (both restarted at once, an outage) is no reason to exit: a
    // pod that exits is restarted with a growing delay (CrashLoopBackOff), and recovers minutes after OpenBao
    // does. A refusal (no beacon client CA, no policy) still stops the start with its fix.
    if (!(err instanceof CloudtaserError && OPENBAO_AWAY_CODES.has(err.code))) throw err;
    log.warn(
      { event: 'bridge.beacon_identity_pending', code: err.code, reason: err.message },
      'OpenBao cannot be reached to mint the beacon client certificate: starting without one (the beacon refuses this bridge until it is minted) and retrying',
    );
    schedule(Math.min(retryMs, FIRST_MINT_RETRY_MS));
  }
  return {
    current: () => current,
    close() {
      closed = true;
      clearTimeout(timer);
    },
  };
}

/** A certificate and key a certificate manager keeps current (cert-manager's `tls.crt` / `tls.key`). */
export async function watchBeaconIdentityFiles(options: {
  readonly certFile: string;
  readonly keyFile: string;
  readonly intervalMs?: number;
  readonly logger?: Logger;
}): Promise<BeaconIdentity> {
  const watched = await watchPemFiles({
    files: [options.certFile, options.keyFile],
    what: 'beacon client certificate (--beacon-client-cert, --beacon-client-key)',
    intervalMs: options.intervalMs,
    logger: moduleLogger(options.logger, 'beacon-identity'),
    load: ([certPem, keyPem]) => {
      // A certificate renewed before its key is written must not be presented with the old key.
      if (!new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem)))
        throw new Error('the key does not belong to the certificate');
      return { certPem, keyPem };
    },
    onChange: () => undefined,
  });
  return {
    current: () => watched.current(),
    checkNow: () => watched.checkNow(),
    close: () => watched.close(),
  };
}
