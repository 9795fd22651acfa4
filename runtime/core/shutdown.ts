/**
 * How long-running processes (beacon, bridge, broker) stop: on SIGTERM they say not ready at once and keep serving
 * for `--shutdown-delay` while Kubernetes takes them out of their Services, then close. Also the duration parser the
 * commands share.
 */
import { timerDelay } from './backoff.js';
import { CloudtaserError } from './errors.js';

/** `250ms`, `10s`, `2m`, `6h` or `7d`: a number with its unit (a bare number is refused). */
export function parseDuration(value: string, flag: string): number {
  const match = /^(\d+)(ms|s|m|h|d)?$/.exec(value.trim());
  if (!match)
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `${flag} ${JSON.stringify(value)} is not a duration; use e.g. 500ms, 10s, 2m, 6h or 7d`,
    );
  // A bare number once meant milliseconds: `--poll-interval 10` polled OpenBao 72 times a second for someone who
  // meant 10 s (an outside docs drill; `--timeout` reads a bare number as seconds). So a unit is required.
  if (match[2] === undefined)
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `${flag} ${JSON.stringify(value)} needs a unit: ${match[1]}ms, ${match[1]}s, ${match[1]}m, ${match[1]}h or ${match[1]}d`,
    );
  const amount = Number(match[1]);
  const unitMs = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
    match[2] as 'ms' | 's' | 'm' | 'h' | 'd'
  ];
  const ms = amount * unitMs;
  if (ms < 1 || !Number.isSafeInteger(ms))
    throw new CloudtaserError('CT_INVALID_ARGUMENT', `${flag} must be at least 1 ms`);
  return ms;
}

/** `--shutdown-delay`: how long a process stays up, not ready, after SIGTERM. */
export const SHUTDOWN_DELAY_FLAG = {
  flag: '--shutdown-delay <duration>',
  description:
    'after SIGTERM, answer /readyz with 503 and keep serving this long before closing, so Kubernetes takes the pod out of its Services first (the charts pass 5s; 0 closes at once)',
  default: '0s',
} as const;

/**
 * After the shutdown delay, how long requests already in flight (pod API, webhook, tunnel streams) get to finish
 * before their connections are cut. 5 s of delay plus this stay inside Kubernetes' default 30 s grace period.
 */
export const IN_FLIGHT_GRACE_MS = 10_000;

/** `0`, `0s` or a duration. */
export function parseShutdownDelay(value: string): number {
  return parseDurationOrZero(value, '--shutdown-delay');
}

/** Like parseDuration, and `0` (with or without a unit) means none. */
export function parseDurationOrZero(value: string, flag: string): number {
  return /^0(ms|s|m|h|d)?$/.test(value.trim()) ? 0 : parseDuration(value, flag);
}

/**
 * After the first SIGTERM or SIGINT: not ready at once, still serving for `delayMs` (endpoints are removed while
 * the process runs, so connections sent meanwhile are still answered), then closed. A second signal cuts the wait.
 */
export async function drainThenClose(
  handle: { drain(): void; close(): Promise<void> },
  delayMs: number,
  onDraining: (delayMs: number) => void,
): Promise<void> {
  handle.drain();
  if (delayMs > 0) {
    onDraining(delayMs);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timerDelay(delayMs));
      }),
      untilSignal(),
    ]);
    clearTimeout(timer);
  }
  await handle.close();
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
