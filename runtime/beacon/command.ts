import { readFile } from 'node:fs/promises';
import { type Command, Option } from 'commander';
import { parseListenAddress } from '../core/health-server.js';
import { CloudtaserError, createLogger, type Logger } from '../core/index.js';
import { BEACON_LIMIT_FLAGS, type BeaconLimits, DEFAULT_BEACON_LIMITS } from './limits.js';
import { type BeaconHandle, type BeaconOptions, createBeacon } from './server.js';

/** Flags of `beacon serve` as commander hands them over. */
export interface BeaconServeFlags {
  readonly listen: string;
  readonly tlsCert?: string;
  readonly tlsKey?: string;
  readonly metricsListen: string;
  readonly plain?: boolean;
  readonly [limit: string]: unknown;
}

/**
 * Adds `beacon serve` to the CLI. `hooks.onStarted` lets tests and embedders reach the running beacon; the
 * command itself runs until SIGTERM or SIGINT and then closes cleanly.
 */
export function registerBeaconCommand(
  program: Command,
  hooks: { onStarted?(handle: BeaconHandle): void; logger?: Logger } = {},
): Command {
  const beacon = program.command('beacon').description('the stateless relay that pairs brokers with bridges');
  const serve = beacon
    .command('serve')
    .description('run the beacon: one port with TLS, WebSocket and (opt-in) plain doors; metadata-only logs')
    .option('--listen <host:port>', 'address for the relay port', '0.0.0.0:443')
    .option('--tls-cert <file>', 'PEM certificate (chain) clients verify the beacon by')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option(
      '--metrics-listen <host:port>',
      "address for /healthz, /readyz and /metrics, or 'off'",
      '0.0.0.0:9090',
    )
    .option('--plain', 'also accept the plain door (CTBCN/1 magic, no outer TLS)', false);
  for (const { key, flag, description, min, max } of BEACON_LIMIT_FLAGS) {
    serve.addOption(
      new Option(`${flag} <n>`, `${description} (min ${min}${max === undefined ? '' : `, max ${max}`})`)
        .default(DEFAULT_BEACON_LIMITS[key])
        .argParser((value) => parseInteger(flag, value)),
    );
  }
  serve.action(async (flags: BeaconServeFlags) => {
    const logger = hooks.logger ?? createLogger('beacon');
    const handle = await createBeacon({ ...(await beaconOptionsFromFlags(flags)), logger });
    const shutdown = (signal: string) => {
      logger.info({ event: 'shutdown', signal });
      handle.close().then(
        () => {
          process.exitCode = 0;
        },
        (err) => {
          logger.error({ event: 'shutdown_failed', error: String(err) });
          process.exitCode = 1;
        },
      );
    };
    process.once('SIGTERM', shutdown);
    process.once('SIGINT', shutdown);
    hooks.onStarted?.(handle);
  });
  return beacon;
}

/** Turns CLI flags into library options (reads the certificate files). */
export async function beaconOptionsFromFlags(
  flags: BeaconServeFlags,
): Promise<Omit<BeaconOptions, 'logger'>> {
  if (!flags.tlsCert || !flags.tlsKey) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      'beacon serve needs --tls-cert and --tls-key: the TLS door is always on, and clients verify the beacon by it',
    );
  }
  const [certPem, keyPem] = await Promise.all([
    readPem(flags.tlsCert, '--tls-cert'),
    readPem(flags.tlsKey, '--tls-key'),
  ]);
  const listen = parseListenAddress(flags.listen, '--listen');
  const limits: Partial<Record<keyof BeaconLimits, number>> = {};
  for (const { key } of BEACON_LIMIT_FLAGS) {
    const value = flags[flagKey(key)];
    if (typeof value === 'number') limits[key] = value;
  }
  return {
    host: listen.host,
    port: listen.port,
    tls: { certPem, keyPem },
    plain: flags.plain === true,
    metrics:
      flags.metricsListen === 'off' ? false : parseListenAddress(flags.metricsListen, '--metrics-listen'),
    limits,
  };
}

/** `host:port` or `[v6]:port`; port 0 asks the system for a free one. */

/** The camelCase key commander derives from a flag such as `--max-waiting-per-hash`. */
function flagKey(key: keyof BeaconLimits): string {
  const flag = BEACON_LIMIT_FLAGS.find((entry) => entry.key === key)!.flag;
  return flag.slice(2).replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

function parseInteger(flag: string, value: string): number {
  if (!/^\d+$/.test(value)) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `${flag} ${JSON.stringify(value)} is not a whole number`,
    );
  }
  return Number(value);
}

async function readPem(path: string, flag: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `${flag} ${path} could not be read: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}
