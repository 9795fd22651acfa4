/**
 * A TLS certificate and key (and optionally a CA) read from files and read again when they change, so a
 * certificate renewed on disk (cert-manager renewing a Secret, which Kubernetes swaps in the mounted folder
 * atomically) reaches a running listener without a restart. Polling, not fs.watch: the kubelet replaces the
 * files through a symlink swap that inotify watches on the files themselves do not see.
 * A new pair is applied only when the certificate and key belong together, so a half-written renewal never
 * replaces a working certificate.
 */
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { CloudtaserError } from './errors.js';
import { type Logger, silentLogger } from './log.js';

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

export interface TlsFilesWatcher {
  /** The pair in use. */
  current(): TlsMaterial;
  close(): void;
}

/** Reads the files once; throws CT_INVALID_ARGUMENT naming `what` when they are missing or do not match. */
export async function readTlsFiles(files: TlsFiles, what: string): Promise<TlsMaterial> {
  let material: TlsMaterial;
  try {
    material = {
      certPem: await readFile(files.certFile, 'utf8'),
      keyPem: await readFile(files.keyFile, 'utf8'),
      ...(files.caFile ? { caPem: await readFile(files.caFile, 'utf8') } : {}),
    };
  } catch (err) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `cannot read the ${what} certificate files (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): ${files.certFile}, ${files.keyFile}${files.caFile ? `, ${files.caFile}` : ''}`,
      { cause: err },
    );
  }
  const problem = pairProblem(material);
  if (problem)
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `the ${what} certificate in ${files.certFile} ${problem}`,
    );
  return material;
}

/**
 * Reads the files now, then every `intervalMs`; calls `onChange` with a new, matching pair. Logs
 * `tls.reloaded` on a change and `tls.reload_failed` (keeping the pair in use) when the new files are unusable.
 */
export async function watchTlsFiles(options: {
  readonly files: TlsFiles;
  /** What the certificate serves, for messages ("the webhook"). */
  readonly what: string;
  readonly onChange: (material: TlsMaterial) => void;
  /** @default 10000 */
  readonly intervalMs?: number;
  readonly logger?: Logger;
}): Promise<TlsFilesWatcher> {
  const log = options.logger ?? silentLogger;
  let current = await readTlsFiles(options.files, options.what);
  let currentDigest = digest(current);
  let reading = false;
  const timer = setInterval(async () => {
    if (reading) return;
    reading = true;
    try {
      const next = await readTlsFiles(options.files, options.what);
      const nextDigest = digest(next);
      if (nextDigest === currentDigest) return;
      current = next;
      currentDigest = nextDigest;
      options.onChange(next);
      log.info(
        { event: 'tls.reloaded', what: options.what, notAfter: new X509Certificate(next.certPem).validTo },
        `reloaded the ${options.what} certificate`,
      );
    } catch (err) {
      log.warn(
        { event: 'tls.reload_failed', what: options.what, reason: (err as Error).message },
        `kept the ${options.what} certificate in use: the files on disk are not usable yet`,
      );
    } finally {
      reading = false;
    }
  }, options.intervalMs ?? 10_000);
  timer.unref();
  return { current: () => current, close: () => clearInterval(timer) };
}

function pairProblem(material: TlsMaterial): string | undefined {
  try {
    const certificate = new X509Certificate(material.certPem);
    if (!certificate.checkPrivateKey(createPrivateKey(material.keyPem))) return 'does not belong to its key';
    if (material.caPem !== undefined) new X509Certificate(material.caPem);
    return undefined;
  } catch (err) {
    return `is not a usable PEM certificate and key: ${(err as Error).message}`;
  }
}

function digest(material: TlsMaterial): string {
  return createHash('sha256')
    .update(material.certPem)
    .update('\0')
    .update(material.keyPem)
    .update('\0')
    .update(material.caPem ?? '')
    .digest('hex');
}
