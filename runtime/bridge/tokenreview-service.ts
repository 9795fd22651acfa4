/**
 * Everything the bridge's TokenReview listener needs besides serving: its certificate (issued in memory from the
 * listener CA in OpenBao and renewed, or read from files and reloaded, or given), the reviewer credential of
 * each cluster (read from OpenBao once, and again after a mismatch at most every 10 s, so an unauthenticated
 * flood cannot turn into OpenBao reads), and the peers (the headless Service's A-records).
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { CloudtaserError, isCloudtaserError } from '../core/errors.js';
import { type Logger, moduleLogger } from '../core/log.js';
import { type TlsFiles, type TlsFilesWatcher, watchTlsFiles } from '../core/tls-files.js';
import type { OpenBaoClient } from '../openbao/index.js';
import { issueCertificate } from '../pki/index.js';
import { loadReviewerSha256, loadTokenReviewCa } from '../registration/index.js';
import type { Resolve, TunnelMux } from '../tunnel/index.js';
import { startTokenReviewServer, type TokenReviewOutcome, type TokenReviewServer } from './tokenreview.js';

/** Where the listener's certificate comes from. */
export type TokenReviewTls =
  /** Issued in memory from the listener CA registration keeps in OpenBao (the default). */
  | 'openbao'
  /**
   * PEM files (e.g. a cert-manager Secret), read again when they change (every `intervalMs`, default 10 s);
   * `caFile` lets peers verify each other.
   */
  | { readonly files: TlsFiles; readonly intervalMs?: number }
  /** Given as is. */
  | { readonly certPem: string; readonly keyPem: string; readonly caPem?: string }
  /** Plain HTTP: OpenBao would send the reviewer credential in clear. Local use only. */
  | false;

export interface BridgeTokenReviewOptions {
  readonly host?: string;
  readonly port: number;
  /** @default 'openbao' */
  readonly tls?: TokenReviewTls;
  /** Names on an issued certificate: the Service OpenBao dials. @default ['localhost'] (and the host if an IP) */
  readonly dnsNames?: readonly string[];
  /** `host:port` of the bridge's headless Service, whose A-records are the replicas. @default no forwarding */
  readonly peers?: string;
  /**
   * This replica's address among those A-records (the pod IP): it is never asked, and with sharding its member
   * Lease names it so that peers ask a shard's holders only. @default the listener host when it is one IP address
   */
  readonly address?: string;
}

export interface BridgeTokenReview {
  readonly url: string;
  /**
   * Called on every discovery poll: issues or renews the certificate once the listener CA exists, and issues a new
   * one when `registrationsChanged` and the CA in OpenBao is no longer the one it was issued from (an admin
   * replaced it: the next `register` points the cluster's Kubernetes auth at the new CA).
   */
  refresh(options?: { readonly registrationsChanged?: boolean }): Promise<void>;
  /**
   * Drops what is cached about these clusters (deregistered, moved to another shard, or registered again): the
   * cache holds only clusters the bridge serves, and the next review of a re-registered cluster reads its
   * credential afresh instead of waiting out the pacing of a recent mismatch.
   */
  forget(fingerprints: Iterable<string>): void;
  /** How many clusters' reviewer credentials are cached (for tests and the capacity model). */
  cachedReviewers(): number;
  close(): Promise<void>;
}

/** An issued certificate lives this long and is renewed when a third of it is left. */
const ISSUED_DAYS = 30;
const RENEW_WHEN_LEFT_MS = 10 * 86_400_000;
const REVIEWER_REREAD_MS = 10_000;

interface ReviewerEntry {
  readonly sha256?: string;
  readonly recheckedAt?: number;
  readonly reading?: Promise<string | undefined>;
  /** The code of the last read that failed, until one succeeds. */
  readonly unreadable?: string;
}

export async function startBridgeTokenReview(options: {
  readonly listener: BridgeTokenReviewOptions;
  /** The bridge's client, and the root namespace where the listener CA lives. */
  readonly openbao: OpenBaoClient;
  readonly namespaceRoot: string;
  readonly namespaceOf: (fingerprint: string) => string | undefined;
  readonly tunnelFor: (fingerprint: string) => TunnelMux | undefined;
  readonly resolve?: Resolve;
  /** Where the holders of a cluster's shard are (sharding), asked before the other peers. */
  readonly holdersOf?: (fingerprint: string) => readonly string[] | undefined;
  /** Told how every request was answered (for metrics). */
  readonly observe?: (outcome: TokenReviewOutcome) => void;
  readonly logger?: Logger;
}): Promise<BridgeTokenReview> {
  const log = moduleLogger(options.logger, 'bridge-tokenreview');
  const listener = options.listener;
  const tls = listener.tls ?? 'openbao';
  const dnsNames = listener.dnsNames?.length ? [...listener.dnsNames] : ['localhost'];
  const listenIp = oneIpAddress(listener.host);
  const ipAddresses = listenIp ? [listenIp] : [];
  let caPem: string | undefined = typeof tls === 'object' && 'caPem' in tls ? tls.caPem : undefined;
  let issuedUntil = 0;
  let watcher: TlsFilesWatcher | undefined;

  /**
   * Per cluster: the recorded hash, and when a mismatch last made us read it again. Only those re-reads are paced
   * (an unauthenticated caller forces at most one OpenBao read per 10 s per cluster); the first mismatch after a
   * plain read re-reads at once, or a bridge started seconds before a `register` that rewrites the credential
   * would refuse every login for the rest of the 10 s.
   */
  const reviewers = new Map<string, ReviewerEntry>();
  const reviewerFor = async (fingerprint: string, afterMismatch: boolean): Promise<string | undefined> => {
    const namespace = options.namespaceOf(fingerprint);
    if (!namespace) return undefined;
    const cached = reviewers.get(fingerprint);
    if (cached?.reading) return cached.reading;
    if (
      cached &&
      (!afterMismatch ||
        (cached.recheckedAt !== undefined && Date.now() - cached.recheckedAt < REVIEWER_REREAD_MS))
    )
      return cached.sha256;
    const recheckedAt = afterMismatch ? Date.now() : cached?.recheckedAt;
    let unreadable: string | undefined;
    const reading = loadReviewerSha256(options.openbao.withNamespace(namespace)).catch((err: unknown) => {
      unreadable = isCloudtaserError(err) ? err.code : 'CT_INTERNAL';
      log.warn(
        { event: 'tokenreview.reviewer_unreadable', code: unreadable, reason: (err as Error).message },
        "could not read a cluster's reviewer credential from OpenBao; its TokenReviews are refused until it can",
      );
      return cached?.sha256;
    });
    const entry: ReviewerEntry = { sha256: cached?.sha256, recheckedAt, reading };
    reviewers.set(fingerprint, entry);
    const sha256 = await reading;
    // Forgotten while it was read (the cluster was deregistered, say): the answer serves this review only.
    if (reviewers.get(fingerprint) === entry)
      reviewers.set(fingerprint, { sha256, recheckedAt, ...(unreadable ? { unreadable } : {}) });
    return sha256;
  };
  const reviewerUnreadable = (fingerprint: string) => reviewers.get(fingerprint)?.unreadable;

  let peers: Parameters<typeof startTokenReviewServer>[0]['peers'];
  if (listener.peers) {
    const [host, port] = splitHostPort(listener.peers);
    peers = {
      port,
      servername: dnsNames[0],
      caPem: () => caPem,
      self: peerAddressOf(listener),
      holdersOf: options.holdersOf,
      resolve: async () =>
        options.resolve ? options.resolve(host) : (await lookup(host, { all: true })).map((a) => a.address),
    };
  }

  let initial: { certPem: string; keyPem: string } | 'later' | false;
  if (tls === false) initial = false;
  else if (tls === 'openbao') initial = 'later';
  else if ('files' in tls) initial = 'later';
  else initial = { certPem: tls.certPem, keyPem: tls.keyPem };

  const server: TokenReviewServer = await startTokenReviewServer({
    host: listener.host,
    port: listener.port,
    tls: initial,
    tunnelFor: options.tunnelFor,
    reviewerFor,
    reviewerUnreadable,
    peers,
    observe: options.observe,
    logger: options.logger,
  });

  try {
    if (typeof tls === 'object' && 'files' in tls) {
      watcher = await watchTlsFiles({
        files: tls.files,
        what: 'TokenReview listener',
        intervalMs: tls.intervalMs,
        logger: log,
        onChange: (material) => {
          server.setCertificate(material);
          caPem = material.caPem;
        },
      });
      server.setCertificate(watcher.current());
      caPem = watcher.current().caPem;
    }
  } catch (err) {
    await server.close();
    throw err;
  }

  // Called once here and then from the bridge's polls, which run one at a time (bridge.ts pollAfterCurrent).
  const refresh = async (when?: { readonly registrationsChanged?: boolean }) => {
    if (tls !== 'openbao') return;
    const renewalDue = Date.now() >= issuedUntil - RENEW_WHEN_LEFT_MS;
    // Only a registration change can come with a replaced CA: polls without one cost OpenBao nothing here.
    if (!renewalDue && !when?.registrationsChanged) return;
    try {
      const ca = await loadTokenReviewCa(options.openbao.withNamespace(options.namespaceRoot));
      if (!renewalDue && ca?.certPem === caPem) return;
      if (!ca) {
        log.info(
          { event: 'tokenreview.no_listener_ca' },
          'no TokenReview listener CA in OpenBao yet (the first registration makes it); TLS handshakes fail until then',
        );
        return;
      }
      const issued = issueCertificate(ca, {
        commonName: dnsNames[0],
        dnsNames,
        ipAddresses,
        extKeyUsage: ['serverAuth'],
        days: ISSUED_DAYS,
      });
      server.setCertificate({ certPem: issued.certPem, keyPem: issued.keyPem! });
      caPem = ca.certPem;
      issuedUntil = Date.now() + ISSUED_DAYS * 86_400_000;
      log.info(
        { event: 'tokenreview.certificate_issued', dnsNames, days: ISSUED_DAYS, caReplaced: !renewalDue },
        renewalDue
          ? 'TokenReview listener certificate issued from the listener CA'
          : 'the TokenReview listener CA in OpenBao was replaced: certificate issued from the new CA',
      );
    } catch (err) {
      log.warn(
        { event: 'tokenreview.certificate_failed', reason: (err as Error).message },
        'could not issue the TokenReview listener certificate; retrying at the next poll',
      );
    }
  };
  await refresh();

  return {
    url: server.url,
    refresh,
    forget(fingerprints) {
      for (const fingerprint of fingerprints) reviewers.delete(fingerprint);
    },
    cachedReviewers: () => reviewers.size,
    async close() {
      watcher?.close();
      await server.close();
    },
  };
}

function splitHostPort(address: string): [string, number] {
  const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(address);
  const port = Number(match?.[2]);
  if (!match || port < 1 || port > 65535)
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `--tokenreview-peers ${JSON.stringify(address)} must be host:port of the bridge's headless Service, e.g. cloudtaser-bridge-peers.openbao.svc:8444`,
    );
  return [match[1].replace(/^\[|\]$/g, ''), port];
}

/** This replica's address among its peers: as given, else the listener's host when that is one IP address. */
export function peerAddressOf(listener: BridgeTokenReviewOptions): string | undefined {
  return listener.address || oneIpAddress(listener.host);
}

/** The host when it is one IP address (not a name, not every address). */
function oneIpAddress(host: string | undefined): string | undefined {
  return host && isIP(host) && !/^(0\.0\.0\.0|::)$/.test(host) ? host : undefined;
}
