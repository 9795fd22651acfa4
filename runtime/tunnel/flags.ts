/** Flag parsing the bridge and broker commands share. */
import { readFile } from 'node:fs/promises';
import { CloudtaserError } from '../core/errors.js';

/** `250ms`, `10s`, `2m` or a bare number of milliseconds. */
export function parseDuration(value: string, flag: string): number {
  const match = /^(\d+)(ms|s|m)?$/.exec(value.trim());
  if (!match)
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `${flag} ${JSON.stringify(value)} is not a duration; use e.g. 500ms, 10s or 2m`,
    );
  const amount = Number(match[1]);
  const ms = match[2] === 's' ? amount * 1000 : match[2] === 'm' ? amount * 60_000 : amount;
  if (ms < 1 || !Number.isSafeInteger(ms))
    throw new CloudtaserError('CT_INVALID_ARGUMENT', `${flag} must be at least 1 ms`);
  return ms;
}

/** Commander collector for repeatable flags such as --beacon. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export async function readPemFile(path: string | undefined, flag: string): Promise<string | undefined> {
  if (!path) return undefined;
  return readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `cannot read ${flag} ${path}: ${err.code ?? err.message}`,
    );
  });
}

/** Resolves once SIGTERM or SIGINT arrives; long-running commands close their handle then. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

/** Reads a `--*-tls-cert` / `--*-tls-key` pair: both or neither, so a half-configured listener fails at start. */
export async function readTlsPairFlags(
  certPath: string | undefined,
  keyPath: string | undefined,
  flagPrefix: string,
): Promise<{ certPem: string; keyPem: string } | undefined> {
  const certPem = await readPemFile(certPath, `${flagPrefix}-cert`);
  const keyPem = await readPemFile(keyPath, `${flagPrefix}-key`);
  if (Boolean(certPem) !== Boolean(keyPem)) {
    throw new CloudtaserError('CT_INVALID_ARGUMENT', `${flagPrefix}-cert and ${flagPrefix}-key go together`);
  }
  return certPem && keyPem ? { certPem, keyPem } : undefined;
}
