import { type DestinationStream, type Logger, pino } from 'pino';
import { CloudtaserError } from './errors.js';

export type { Logger };

/** Keys whose values are never written, at any depth we control. */
const REDACT = [
  'token',
  'secretstoreToken',
  'secretstore_token',
  'clientToken',
  'client_token',
  'privateKey',
  'private_key',
  'keyPem',
  'password',
  'jwt',
  'authorization',
  '*.token',
  '*.privateKey',
  '*.keyPem',
  '*.jwt',
  '*.authorization',
  'headers["x-vault-token"]',
];

/** The levels `--log-level` and `CLOUDTASER_LOG_LEVEL` accept, most severe first. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Checks a log level from `source` (a flag or variable name, for the message); a bad one is a usage error. */
export function parseLogLevel(value: string, source: string): LogLevel {
  const level = value.trim().toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(level)) return level as LogLevel;
  throw new CloudtaserError(
    'CT_INVALID_ARGUMENT',
    `${source} must be one of ${LOG_LEVELS.join(', ')}, not ${JSON.stringify(value)}`,
  );
}

export interface LoggerOptions {
  /** Minimum level. @default process.env.CLOUDTASER_LOG_LEVEL ?? 'info' */
  readonly level?: string;
  /** Where lines go. @default stderr (stdout stays free for command output) */
  readonly destination?: DestinationStream;
}

/**
 * JSON-lines logger. Every line carries `component` and an `event` name so an SRE can grep one event
 * across processes; tokens and keys are redacted by key name as a second line of defence.
 */
export function createLogger(component: string, options: LoggerOptions = {}): Logger {
  const fromEnv = process.env.CLOUDTASER_LOG_LEVEL;
  // A typo in the variable must not silently fall back to another level.
  const level =
    options.level ?? (fromEnv === undefined ? 'info' : parseLogLevel(fromEnv, 'CLOUDTASER_LOG_LEVEL'));
  return pino(
    {
      level,
      base: { component },
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? pino.destination({ fd: 2, sync: true }),
  );
}

/**
 * The logger one part of a process writes with. `component` names the process (createLogger sets it once);
 * the part goes in `module` (a part of a part in `submodule`), so a line never carries a key twice. A library started by a process of
 * the same name (the broker library in `broker run`) adds nothing.
 */
export function moduleLogger(logger: Logger | undefined, module: string): Logger {
  const base = logger ?? silentLogger;
  const bindings = base.bindings() as { component?: unknown; module?: unknown; submodule?: unknown };
  if (bindings.component === module || bindings.module === module || bindings.submodule === module)
    return base;
  // A part started by another part (the broker library inside a test process, then its pod API): pino cannot
  // replace a binding, so the inner name goes in `submodule` rather than a second `module` key.
  if (bindings.module !== undefined) return base.child({ submodule: module });
  return base.child({ module });
}

/** A logger that drops everything; the default for library use where the caller passed none. */
export const silentLogger: Logger = pino({ level: 'silent' });
