import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { CloudtaserError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { resolveSecretStoreAddress, resolveSecretStoreToken } from '../openbao/env.js';
import type { OpenBaoClient } from '../openbao/index.js';

export interface SecretStoreFlags {
  readonly secretstoreAddress?: string;
  readonly secretstoreToken?: string;
  readonly secretstoreCaCert?: string;
  readonly namespaceRoot: string;
  readonly timeout: string;
}

/** Bounds of --timeout, in seconds. */
const TIMEOUT_SECONDS = { min: 1, max: 600, default: 10 } as const;

/** The flags every `source` command shares, declared once. */
export function addSecretStoreOptions(command: Command): Command {
  return command
    .option(
      '--secretstore-address <url>',
      'OpenBao address (env CLOUDTASER_SECRETSTORE_ADDRESS, BAO_ADDR, VAULT_ADDR)',
    )
    .option(
      '--secretstore-token <token>',
      'OpenBao token with the cloudtaser-registrar policy, see `source policy registrar` (env CLOUDTASER_SECRETSTORE_TOKEN, then BAO_TOKEN, then VAULT_TOKEN; prefer the environment, flags show up in shell history)',
    )
    .option('--secretstore-ca-cert <path>', 'PEM file with the CA that signed the OpenBao certificate')
    .option('--namespace-root <name>', 'OpenBao namespace under which cluster namespaces live', 'cloudtaser')
    .option(
      '--timeout <seconds>',
      `how long each OpenBao request may take (${TIMEOUT_SECONDS.min}-${TIMEOUT_SECONDS.max})`,
      String(TIMEOUT_SECONDS.default),
    );
}

let logger: Logger | undefined;

/**
 * The JSON log lines of a one-shot command, on stderr: warn and above unless --log-level (or CLOUDTASER_LOG_LEVEL)
 * says otherwise, so a quota's retries, a standby's redirects and read lag, and the registration's own warnings
 * are seen (an outside fleet test found them all dropped, --log-level doing nothing) while the command's result
 * stays alone on stdout. Loaded on first use: `--help` never pays for the logger.
 */
export async function commandLogger(): Promise<Logger> {
  const { createLogger } = await import('../core/log.js');
  logger ??= createLogger('cli', process.env.CLOUDTASER_LOG_LEVEL === undefined ? { level: 'warn' } : {});
  return logger;
}

export async function openSecretStore(flags: SecretStoreFlags): Promise<OpenBaoClient> {
  const timeoutSeconds = Number(flags.timeout);
  if (
    !Number.isFinite(timeoutSeconds) ||
    timeoutSeconds < TIMEOUT_SECONDS.min ||
    timeoutSeconds > TIMEOUT_SECONDS.max
  ) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `--timeout must be a number of seconds from ${TIMEOUT_SECONDS.min} to ${TIMEOUT_SECONDS.max}, not ${JSON.stringify(flags.timeout)}`,
    );
  }
  const address = resolveSecretStoreAddress(flags.secretstoreAddress);
  if (!address) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      'no secret-store address: pass --secretstore-address https://openbao.example:8200 or set CLOUDTASER_SECRETSTORE_ADDRESS',
    );
  }
  const token = resolveSecretStoreToken(flags.secretstoreToken);
  if (!token) {
    throw new CloudtaserError(
      'CT_TOKEN_MISSING',
      'no secret-store token: set CLOUDTASER_SECRETSTORE_TOKEN (or BAO_TOKEN / VAULT_TOKEN), or pass --secretstore-token',
    );
  }
  let caCertPem: string | undefined;
  if (flags.secretstoreCaCert) {
    caCertPem = await readFile(flags.secretstoreCaCert, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new CloudtaserError(
        'CT_INVALID_ARGUMENT',
        `cannot read --secretstore-ca-cert ${flags.secretstoreCaCert}: ${err.code ?? err.message}`,
      );
    });
  }
  // Loaded on use, after the checks above: the OpenBao client (undici) is not needed to refuse a flag.
  const { OpenBaoClient } = await import('../openbao/client.js');
  return new OpenBaoClient({
    address,
    token,
    caCertPem,
    timeoutMs: Math.round(timeoutSeconds * 1000),
    timeoutHint: '--timeout SECONDS',
    logger: await commandLogger(),
  });
}
