import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { type Command, Option } from 'commander';
import { parseListenAddress } from '../core/health-server.js';
import { CloudtaserError, createLogger, type Logger } from '../core/index.js';
import {
  drainThenClose,
  parseDurationOrZero,
  parseShutdownDelay,
  SHUTDOWN_DELAY_FLAG,
} from '../core/shutdown.js';
import {
  assertServable,
  DEFAULT_RELOAD_INTERVAL_MS,
  type WatchedPemFiles,
  watchPemFiles,
} from '../core/tls-files.js';
import { loadBridgeCas } from './bridge-auth.js';
import { BEACON_LIMIT_FLAGS, type BeaconLimits, DEFAULT_BEACON_LIMITS } from './limits.js';
import type { BeaconHandle, BeaconOptions } from './server.js';

/**
 * `--relay-grace` by default: longer than a bridge's drain of its tunnels (10 s) after the 5 s delay the charts pass.
 */
export const DEFAULT_RELAY_GRACE_MS = 15_000;

/** Flags of `beacon serve` as commander hands them over. */
export interface BeaconServeFlags {
  readonly listen: string;
  readonly shutdownDelay: string;
  readonly relayGrace: string;
  readonly tlsCert?: string;
  readonly tlsKey?: string;
  readonly metricsListen: string;
  readonly plain?: boolean;
  readonly bridgeCa?: string[];
  readonly allowAnonymousBridges?: boolean;
  readonly tlsReloadInterval?: string;
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
    .option('--plain', 'also accept the plain door (CTBCN/1 magic, no outer TLS)', false)
    .option(
      '--bridge-ca <file>',
      'PEM CA (or bundle) whose client certificates may wait as bridges; repeatable, one per OpenBao operator served (`cloudtaser-cli source beacon-ca` prints it); re-read when it changes',
      (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
    )
    .option(
      '--allow-anonymous-bridges',
      'INSECURE: let any client wait as a bridge (no --bridge-ca); anyone who knows a room hash can squat it',
    )
    .option(
      '--tls-reload-interval <ms>',
      'how often the certificate and bridge CA files are re-read (milliseconds)',
      String(DEFAULT_RELOAD_INTERVAL_MS),
    );
  for (const { key, flag, description, min, max } of BEACON_LIMIT_FLAGS) {
    serve.addOption(
      new Option(`${flag} <n>`, `${description} (min ${min}${max === undefined ? '' : `, max ${max}`})`)
        .default(DEFAULT_BEACON_LIMITS[key])
        .argParser((value) => parseInteger(flag, value)),
    );
  }
  serve.option(SHUTDOWN_DELAY_FLAG.flag, SHUTDOWN_DELAY_FLAG.description, SHUTDOWN_DELAY_FLAG.default);
  serve.option(
    '--relay-grace <duration>',
    "after the shutdown delay, how long the relays still open get to end by themselves before they are cut: bridges told the replica drains move their tunnels to another replica meanwhile (5s of delay plus this stay inside Kubernetes' default 30 s grace period; 0 cuts at once)",
    `${DEFAULT_RELAY_GRACE_MS / 1000}s`,
  );
  serve.action(async (flags: BeaconServeFlags) => {
    const logger = hooks.logger ?? createLogger('beacon');
    const shutdownDelayMs = parseShutdownDelay(flags.shutdownDelay);
    const relayGraceMs = parseDurationOrZero(flags.relayGrace, '--relay-grace');
    const running: { handle?: BeaconHandle } = {};
    const { options, files } = await beaconOptionsFromFlags(flags, { logger, running });
    let started: BeaconHandle;
    try {
      // Loaded on use: the beacon server (ws, prom-client) is not needed to show help or to refuse a flag.
      const { createBeacon } = await import('./server.js');
      started = await createBeacon({ ...options, logger });
    } catch (err) {
      for (const watched of files) watched.close();
      throw err;
    }
    // From here on a changed file reaches new connections; the watchers were started before the beacon so a
    // file that cannot be read at all fails the start instead. Closing the beacon stops watching.
    const handle: BeaconHandle = {
      ...started,
      stats: () => started.stats(),
      close: async (closeOptions) => {
        for (const watched of files) watched.close();
        try {
          await started.close(closeOptions);
        } finally {
          // Only now: a second signal while the relays get their grace must reach `shutdown` (and cut them).
          process.off('SIGTERM', shutdown);
          process.off('SIGINT', shutdown);
        }
      },
    };
    running.handle = handle;
    let shuttingDown = false;
    const shutdown = (signal: string) => {
      if (shuttingDown) {
        // A second signal: the operator does not want to wait for the relays (close() without a grace cuts them).
        logger.warn({
          event: 'shutdown_now',
          signal,
          message: 'second signal: cutting the relays still open',
        });
        void handle.close();
        return;
      }
      shuttingDown = true;
      logger.info({ event: 'shutdown', signal, delayMs: shutdownDelayMs });
      // Clients hear how long the relays keep running: the delay, then the grace for them to end by themselves.
      const graceful = {
        drain: () => handle.drain({ relaysCutInMs: shutdownDelayMs + relayGraceMs }),
        close: () => handle.close({ graceMs: relayGraceMs }),
      };
      drainThenClose(graceful, shutdownDelayMs, (delayMs) =>
        logger.info({
          event: 'draining',
          delayMs,
          relayGraceMs,
          message:
            'not ready (503 on /readyz), pairing nothing more, and still relaying until the shutdown delay and the relay grace end',
        }),
      ).then(
        () => {
          process.exitCode = 0;
        },
        (err) => {
          logger.error({ event: 'shutdown_failed', error: String(err) });
          process.exitCode = 1;
        },
      );
    };
    process.on('SIGTERM', shutdown);
    process.on('SIGINT', shutdown);
    hooks.onStarted?.(handle);
  });
  return beacon;
}

/**
 * Turns CLI flags into library options and starts watching the certificate and bridge CA files: a change
 * reaches new connections (through `updateTls` / `updateBridgeCas` of the running beacon) without a restart.
 */
export async function beaconOptionsFromFlags(
  flags: BeaconServeFlags,
  reload: { readonly logger?: Logger; readonly running?: { readonly handle?: BeaconHandle } } = {},
): Promise<{ options: Omit<BeaconOptions, 'logger'>; files: WatchedPemFiles<unknown>[] }> {
  if (!flags.tlsCert || !flags.tlsKey) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      'beacon serve needs --tls-cert and --tls-key: the TLS door is always on, and clients verify the beacon by it',
    );
  }
  const bridgeCaFiles = flags.bridgeCa ?? [];
  if (bridgeCaFiles.length === 0 && !flags.allowAnonymousBridges) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      "beacon serve needs --bridge-ca <file> (the CA of the bridges' client certificates; `cloudtaser-cli source beacon-ca` prints it), or --allow-anonymous-bridges to let anyone wait as a bridge (insecure)",
    );
  }
  if (bridgeCaFiles.length > 0 && flags.allowAnonymousBridges) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      '--bridge-ca and --allow-anonymous-bridges are mutually exclusive',
    );
  }
  const intervalMs = parseInteger(
    '--tls-reload-interval',
    flags.tlsReloadInterval ?? String(DEFAULT_RELOAD_INTERVAL_MS),
  );
  if (intervalMs < 100)
    throw new CloudtaserError('CT_INVALID_ARGUMENT', '--tls-reload-interval must be at least 100 ms');
  const files: WatchedPemFiles<unknown>[] = [];
  const tlsFiles = await watchPemFiles({
    files: [flags.tlsCert, flags.tlsKey],
    what: 'beacon TLS certificate (--tls-cert, --tls-key)',
    intervalMs,
    logger: reload.logger,
    load: ([certPem, keyPem]) => {
      // Parsing here refuses a certificate written before its key (mid-rotation) until both match.
      createSecureContext({ cert: certPem, key: keyPem });
      assertServable(new X509Certificate(certPem));
      return { certPem, keyPem };
    },
    onChange: (tls) => reload.running?.handle?.updateTls(tls),
  });
  files.push(tlsFiles);
  let bridgeCaPems: string[] | undefined;
  if (bridgeCaFiles.length > 0) {
    try {
      const bridgeCas = await watchPemFiles({
        files: bridgeCaFiles,
        what: 'bridge CAs (--bridge-ca)',
        intervalMs,
        logger: reload.logger,
        load: (contents) => {
          loadBridgeCas(contents);
          return [...contents];
        },
        onChange: (pems) => reload.running?.handle?.updateBridgeCas(pems),
      });
      files.push(bridgeCas);
      bridgeCaPems = bridgeCas.current();
    } catch (err) {
      tlsFiles.close();
      throw err;
    }
  }
  const { certPem, keyPem } = tlsFiles.current();
  const listen = parseListenAddress(flags.listen, '--listen');
  const limits: Partial<Record<keyof BeaconLimits, number>> = {};
  for (const { key } of BEACON_LIMIT_FLAGS) {
    const value = flags[flagKey(key)];
    if (typeof value === 'number') limits[key] = value;
  }
  return {
    options: {
      host: listen.host,
      port: listen.port,
      tls: { certPem, keyPem },
      ...(bridgeCaPems ? { bridgeCaPems } : { allowAnonymousBridges: true }),
      plain: flags.plain === true,
      metrics:
        flags.metricsListen === 'off' ? false : parseListenAddress(flags.metricsListen, '--metrics-listen'),
      limits,
    },
    files,
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
