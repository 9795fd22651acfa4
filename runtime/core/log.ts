import { type DestinationStream, type Logger, pino } from 'pino';

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
  const level = options.level ?? process.env.CLOUDTASER_LOG_LEVEL ?? 'info';
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
 * the part goes in `module`, so a line never carries two `component` keys. A library started by a process of
 * the same name (the broker library in `broker run`) adds nothing.
 */
export function moduleLogger(logger: Logger | undefined, module: string): Logger {
  const base = logger ?? silentLogger;
  const bindings = base.bindings() as { component?: unknown; module?: unknown };
  if (bindings.component === module || bindings.module === module) return base;
  return base.child({ module });
}

/** A logger that drops everything; the default for library use where the caller passed none. */
export const silentLogger: Logger = pino({ level: 'silent' });
