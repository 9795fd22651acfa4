/**
 * PEM files a long-running process serves from (its certificate and key, the CAs it trusts), re-read when they
 * change so that new connections see rotated material without a restart. Kubernetes updates a mounted Secret or
 * ConfigMap by swapping a symlink, which file-change events report unreliably, so the files are polled: small
 * files, read every few seconds, compared by content. Connections already open keep what they negotiated.
 */
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { timerDelay } from './backoff.js';
import { CloudtaserError } from './errors.js';
import { type Logger, silentLogger } from './log.js';

/** How often watched files are re-read when nothing else is said. */
export const DEFAULT_RELOAD_INTERVAL_MS = 10_000;

export interface WatchPemFilesOptions<T> {
  /** The files, read together: a change to any of them reloads all of them. */
  readonly files: readonly string[];
  /** Says what the files hold in messages and logs, e.g. `beacon TLS certificate`. */
  readonly what: string;
  /**
   * Turns the file contents (same order as `files`) into the value the process uses; throws when they are
   * unusable (a certificate written before its key, a truncated file). The previous value then stays.
   */
  readonly load: (contents: readonly string[]) => T;
  /** Called with each new value after a change loaded cleanly (not for the first load). */
  readonly onChange: (value: T) => void;
  /** @default DEFAULT_RELOAD_INTERVAL_MS */
  readonly intervalMs?: number;
  readonly logger?: Logger;
}

export interface WatchedPemFiles<T> {
  /** The value in use: the last one that loaded cleanly. */
  current(): T;
  /** Re-reads the files now; resolves true when a new value was loaded. */
  checkNow(): Promise<boolean>;
  close(): void;
}

/**
 * Loads the files once (throws CT_INVALID_ARGUMENT naming the file when it cannot) and keeps re-reading them.
 * A change that does not load is logged once and ignored until the files change again.
 */
export async function watchPemFiles<T>(options: WatchPemFilesOptions<T>): Promise<WatchedPemFiles<T>> {
  const log = options.logger ?? silentLogger;
  const intervalMs = options.intervalMs ?? DEFAULT_RELOAD_INTERVAL_MS;
  const first = await readAll(options.files, options.what);
  let value: T;
  try {
    value = options.load(first);
  } catch (err) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `the ${options.what} in ${options.files.join(', ')} is unusable: ${(err as Error).message}`,
      { cause: err },
    );
  }
  let loadedDigest = digest(first);
  let failedDigest: string | undefined;
  let checking: Promise<boolean> | undefined;
  let closed = false;

  const check = async (): Promise<boolean> => {
    let contents: string[];
    try {
      contents = await readAll(options.files, options.what);
    } catch (err) {
      // A file briefly missing mid-swap is normal; say so only once per outage.
      if (failedDigest !== 'unreadable')
        log.warn(
          { event: 'tls_files.unreadable', what: options.what, reason: (err as Error).message },
          `cannot re-read the ${options.what}; keeping the one in use`,
        );
      failedDigest = 'unreadable';
      return false;
    }
    const next = digest(contents);
    // Unchanged, or the same content that already failed: only a new change can help.
    if (next === loadedDigest || next === failedDigest || closed) return false;
    let loaded: T;
    try {
      loaded = options.load(contents);
    } catch (err) {
      log.warn(
        { event: 'tls_files.reload_failed', what: options.what, reason: (err as Error).message },
        `the changed ${options.what} is unusable; keeping the one in use until it is fixed`,
      );
      failedDigest = next;
      return false;
    }
    failedDigest = undefined;
    log.info(
      {
        event: 'tls_files.reloaded',
        what: options.what,
        files: options.files,
      },
      `reloaded the ${options.what}`,
    );
    try {
      options.onChange(loaded);
    } catch (err) {
      log.warn(
        { event: 'tls_files.apply_failed', what: options.what, reason: (err as Error).message },
        `the reloaded ${options.what} could not be applied; keeping the one in use`,
      );
      failedDigest = next;
      return false;
    }
    value = loaded;
    loadedDigest = next;
    return true;
  };

  const serialized = (): Promise<boolean> => {
    checking ??= check().finally(() => {
      checking = undefined;
    });
    return checking;
  };
  // Capped: a longer interval would repeat every millisecond.
  const timer = setInterval(() => void serialized(), timerDelay(intervalMs));
  timer.unref();
  return {
    current: () => value,
    checkNow: serialized,
    close() {
      closed = true;
      clearInterval(timer);
    },
  };
}

/** How far ahead of this clock a serving certificate's notBefore may be (an issuer's clock a little ahead). */
const NOT_BEFORE_SKEW_MS = 5 * 60_000;

/**
 * Throws when a certificate this process would serve is outside its validity: every client refuses it, so a start
 * fails with the file named, and a reload keeps the certificate in use (an outside drill: a beacon started with an
 * expired certificate, and reloaded one, logging only `tls_files.reloaded` while every broker failed).
 */
export function assertServable(certificate: X509Certificate, now = Date.now()): void {
  const notAfter = Date.parse(certificate.validTo);
  const notBefore = Date.parse(certificate.validFrom);
  if (now > notAfter)
    throw new Error(
      `expired at ${new Date(notAfter).toISOString()} (or this clock runs ahead): every client refuses it`,
    );
  if (notBefore > now + NOT_BEFORE_SKEW_MS)
    throw new Error(
      `is not valid before ${new Date(notBefore).toISOString()} (or this clock runs behind): every client refuses it`,
    );
}

/** Every certificate of a PEM bundle, parsed; throws when there is none or one does not parse. */
export function parseCertificateBundle(pem: string, what: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error(`the ${what} holds no PEM certificate`);
  return blocks.map((block, index) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new Error(`certificate ${index + 1} of the ${what} does not parse: ${(err as Error).message}`);
    }
  });
}

async function readAll(files: readonly string[], what: string): Promise<string[]> {
  return Promise.all(
    files.map((file) =>
      readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
        throw new CloudtaserError(
          'CT_INVALID_ARGUMENT',
          `cannot read the ${what} file ${file}: ${err.code ?? err.message}`,
          {
            cause: err,
          },
        );
      }),
    ),
  );
}

function digest(contents: readonly string[]): string {
  const hash = createHash('sha256');
  for (const text of contents) hash.update(text).update('\0');
  return hash.digest('hex');
}

/** A serving certificate and key (and a CA bundle to pass along), as files. */
export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  /** A CA bundle to pass along (e.g. for clients that verify peers with it). */
  readonly caFile?: string;
}

export interface TlsMaterial {
  readonly certPem: string;
  readonly keyPem: string;
  readonly caPem?: string;
}

export type TlsFilesWatcher = Pick<WatchedPemFiles<TlsMaterial>, 'current' | 'close'>;

/** Reads the files once; throws CT_INVALID_ARGUMENT naming `what` when they are missing or do not match. */
export async function readTlsFiles(files: TlsFiles, what: string): Promise<TlsMaterial> {
  const contents = await readAll(tlsFileList(files), `${what} certificate`);
  try {
    return loadTlsMaterial(contents);
  } catch (err) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `the ${what} certificate in ${files.certFile} ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/**
 * A certificate and key served from files (webhook, TokenReview listener): `watchPemFiles` with a load that
 * applies a new pair only when the certificate belongs to its key, so a half-written renewal never replaces a
 * working certificate.
 */
export function watchTlsFiles(options: {
  readonly files: TlsFiles;
  /** What the certificate serves, for messages ("the webhook"). */
  readonly what: string;
  readonly onChange: (material: TlsMaterial) => void;
  /** @default DEFAULT_RELOAD_INTERVAL_MS */
  readonly intervalMs?: number;
  readonly logger?: Logger;
}): Promise<TlsFilesWatcher> {
  return watchPemFiles({
    files: tlsFileList(options.files),
    what: `${options.what} certificate`,
    load: loadTlsMaterial,
    onChange: options.onChange,
    intervalMs: options.intervalMs,
    logger: options.logger,
  });
}

function tlsFileList(files: TlsFiles): string[] {
  return [files.certFile, files.keyFile, ...(files.caFile ? [files.caFile] : [])];
}

function loadTlsMaterial([certPem, keyPem, caPem]: readonly string[]): TlsMaterial {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(certPem);
    if (caPem !== undefined) parseCertificateBundle(caPem, 'CA bundle');
  } catch (err) {
    throw new Error(`is not a usable PEM certificate: ${(err as Error).message}`);
  }
  let belongs: boolean;
  try {
    belongs = certificate.checkPrivateKey(createPrivateKey(keyPem));
  } catch (err) {
    throw new Error(`has an unusable PEM key: ${(err as Error).message}`);
  }
  if (!belongs) throw new Error('does not belong to its key');
  assertServable(certificate);
  return { certPem, keyPem, ...(caPem !== undefined ? { caPem } : {}) };
}
