/** Flag parsing the bridge and broker commands share. */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { parseBeaconAddress } from '../beacon/address.js';
import { CloudtaserError } from '../core/errors.js';
import { parseListenAddress } from '../core/health-server.js';
import { parseDuration, parseShutdownDelay, SHUTDOWN_DELAY_FLAG } from '../core/shutdown.js';
import { beaconProxySetting } from '../proxy/settings.js';
import { resolverFromEnvironment } from './resolve.js';

export { drainThenClose, parseDuration, untilSignal } from '../core/shutdown.js';

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

/**
 * Reads a PEM CA bundle flag and checks it holds certificates, so a wrong file (a key, an empty file, a
 * kubeconfig) fails at start naming the flag, instead of every beacon dial failing later with an OpenSSL text (an
 * outside drill: the broker and the bridge accepted a garbage --beacon-ca; the beacon refused a garbage --bridge-ca).
 */
export async function readCaBundleFile(path: string | undefined, flag: string): Promise<string | undefined> {
  const pem = await readPemFile(path, flag);
  if (pem === undefined) return undefined;
  // Loaded here: the module carries the logger, which `--help` must not pay for.
  const { parseCertificateBundle } = await import('../core/tls-files.js');
  try {
    parseCertificateBundle(pem, flag);
  } catch (err) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `${flag} ${path} holds no usable PEM CA certificate: ${(err as Error).message}`,
      { cause: err },
    );
  }
  return pem;
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

/** The flags every process that dials the beacon shares (`bridge run`, `broker run`), as commander hands them over. */
export interface RelayClientFlags {
  readonly beacon?: string[];
  readonly beaconCa?: string;
  readonly beaconProxy?: string;
  readonly healthListen?: string;
  readonly metricsListen?: string;
  readonly stepTimeout: string;
  readonly backoffMax: string;
  readonly shutdownDelay: string;
}

/** Declares the shared relay-client flags once, with the calling process's timing defaults. */
export function addRelayClientOptions(
  command: Command,
  defaults: { readonly stepTimeoutMs: number; readonly backoffMaxMs: number },
): Command {
  return command
    .option(
      '--beacon <host:port>',
      'beacon address; repeatable; every A-record is dialled; wss://host:port selects WebSocket',
      collect,
    )
    .option('--beacon-ca <path>', "PEM file with the CA of the beacon's certificate (default: system roots)")
    .option(
      '--beacon-proxy <url|none>',
      'HTTP proxy to the beacon (CONNECT): http://[user:password@]host:port, or none to dial directly whatever HTTPS_PROXY says (default: HTTPS_PROXY and NO_PROXY)',
    )
    .option('--health-listen <host:port>', 'serve /healthz, /readyz, /status and /metrics here')
    .option(
      '--metrics-listen <host:port>',
      'the same port under the name `beacon serve` uses: /metrics (Prometheus), /healthz, /readyz and /status',
    )
    .option(
      '--step-timeout <duration>',
      'bound for each bootstrap or handshake step',
      `${defaults.stepTimeoutMs}ms`,
    )
    .option('--backoff-max <duration>', 'cap of the reconnect backoff', `${defaults.backoffMaxMs}ms`)
    .option(SHUTDOWN_DELAY_FLAG.flag, SHUTDOWN_DELAY_FLAG.description, SHUTDOWN_DELAY_FLAG.default);
}

/** Reads the shared relay-client flags; `process` names the command in the error for a missing `--beacon`. */
export async function readRelayClientFlags(flags: RelayClientFlags, process: string) {
  if (!flags.beacon?.length) {
    throw new CloudtaserError('CT_INVALID_ARGUMENT', `${process} needs at least one --beacon host:port`);
  }
  // Checked now: the dialer would otherwise retry an address that can never work, forever.
  for (const address of flags.beacon) parseBeaconAddress(address, { what: '--beacon' });
  return {
    beacons: flags.beacon,
    beaconCaPem: await readCaBundleFile(flags.beaconCa, '--beacon-ca'),
    // Parsed now, so a malformed URL (flag or HTTPS_PROXY) stops the process at start, naming where it came from.
    beaconProxy: beaconProxySetting(flags.beaconProxy),
    resolve: resolverFromEnvironment(),
    health: probeListen(flags),
    stepTimeoutMs: parseDuration(flags.stepTimeout, '--step-timeout'),
    backoffMaxMs: parseDuration(flags.backoffMax, '--backoff-max'),
    shutdownDelayMs: parseShutdownDelay(flags.shutdownDelay),
  };
}

/** `--metrics-listen` and `--health-listen` name the one probe port; naming two different ones is a mistake. */
function probeListen(flags: RelayClientFlags): { host: string; port: number } | undefined {
  if (flags.metricsListen && flags.healthListen && flags.metricsListen !== flags.healthListen)
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `--metrics-listen ${flags.metricsListen} and --health-listen ${flags.healthListen} name the same port (metrics, probes and /status); give one of them`,
    );
  if (flags.metricsListen) return parseListenAddress(flags.metricsListen, '--metrics-listen');
  return flags.healthListen ? parseListenAddress(flags.healthListen, '--health-listen') : undefined;
}
