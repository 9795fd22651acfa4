/**
 * hclog-compatible JSON lines on stderr. Terraform parses them and re-logs each line at its own level
 * (visible with TF_LOG); `@timestamp` must carry exactly six fractional digits or Terraform falls back to
 * logging the raw line at DEBUG.
 */
export type HclogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

const LEVELS: Record<HclogLevel, number> = { trace: 1, debug: 2, info: 3, warn: 4, error: 5 };

export interface ProviderLogger {
  trace(event: string, message: string, fields?: Record<string, unknown>): void;
  debug(event: string, message: string, fields?: Record<string, unknown>): void;
  info(event: string, message: string, fields?: Record<string, unknown>): void;
  warn(event: string, message: string, fields?: Record<string, unknown>): void;
  error(event: string, message: string, fields?: Record<string, unknown>): void;
}

/** Go's `2006-01-02T15:04:05.000000Z07:00` layout, in UTC. */
export function hclogTimestamp(date: Date = new Date(), extraMicros = 0): string {
  const iso = date.toISOString(); // 2026-11-27T18:23:02.932Z
  return `${iso.slice(0, 23)}${String(extraMicros).padStart(3, '0')}Z`;
}

/** Keys never written even if a caller passes them by mistake. */
const REDACTED_KEYS = /token|private|secret|password|key_pem|keyPem|authorization/i;

export interface HclogOptions {
  readonly level?: HclogLevel;
  readonly write?: (line: string) => void;
  readonly component?: string;
}

export function createHclogLogger(options: HclogOptions = {}): ProviderLogger {
  const envLevel = (
    process.env.CLOUDTASER_PROVIDER_LOG_LEVEL ??
    process.env.TF_LOG_PROVIDER ??
    ''
  ).toLowerCase();
  const level: HclogLevel = options.level ?? (envLevel in LEVELS ? (envLevel as HclogLevel) : 'info');
  const threshold = LEVELS[level];
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const component = options.component ?? 'provider';
  const emit = (lvl: HclogLevel, event: string, message: string, fields?: Record<string, unknown>) => {
    if (LEVELS[lvl] < threshold) return;
    const micros = Math.floor((performance.timeOrigin * 1000 + performance.now() * 1000) % 1000);
    const line: Record<string, unknown> = {
      '@level': lvl,
      '@message': message,
      '@module': 'cloudtaser',
      '@timestamp': hclogTimestamp(new Date(), micros),
      component,
      event,
    };
    if (fields) {
      for (const [key, value] of Object.entries(fields)) {
        line[key] = REDACTED_KEYS.test(key) ? '[redacted]' : value;
      }
    }
    write(`${JSON.stringify(line)}\n`);
  };
  return {
    trace: (e, m, f) => emit('trace', e, m, f),
    debug: (e, m, f) => emit('debug', e, m, f),
    info: (e, m, f) => emit('info', e, m, f),
    warn: (e, m, f) => emit('warn', e, m, f),
    error: (e, m, f) => emit('error', e, m, f),
  };
}

export const silentProviderLogger: ProviderLogger = {
  trace: () => {},
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};
