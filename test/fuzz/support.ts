/** Shared pieces of the fuzz suites: run counts, a log capture, a forced GC for memory bounds. */
import { Writable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { pino } from 'pino';
import type { Logger } from '../../runtime/core/index.js';

/**
 * Cases per property: the CI default, or CLOUDTASER_FUZZ_RUNS for a nightly-style run. `weight` scales the
 * override for properties that cost more per case (a TLS handshake each), so one variable drives them all.
 */
export function fuzzRuns(ciDefault: number, weight = 1): number {
  const override = Number(process.env.CLOUDTASER_FUZZ_RUNS);
  if (Number.isSafeInteger(override) && override > 0) return Math.max(1, Math.round(override * weight));
  return ciDefault;
}

/** Per-test timeout that grows with the run count, so a nightly run is not cut off by the CI timeout. */
export function fuzzTimeout(ciDefault: number, runs: number, ciRuns: number): number {
  return Math.max(ciDefault, Math.ceil((ciDefault * runs) / ciRuns));
}

export interface LogLine {
  readonly level: number;
  readonly event?: string;
  readonly reason?: string;
  readonly code?: string;
  readonly message?: string;
}

/** A pino logger whose lines are parsed into `lines`, for "every rejection is logged with a reason". */
export function captureLogger(component: string): { logger: Logger; lines: LogLine[]; text: () => string } {
  const lines: LogLine[] = [];
  const raw: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      for (const line of String(chunk).split('\n')) {
        if (!line) continue;
        raw.push(line);
        if (raw.length > 2_000) raw.shift();
        const parsed = JSON.parse(line) as LogLine & Record<string, unknown>;
        lines.push({
          level: parsed.level,
          event: parsed.event,
          reason: parsed.reason,
          code: parsed.code,
          message: parsed.message as string | undefined,
        });
      }
      callback();
    },
  });
  return {
    logger: pino({ level: 'info', base: { component } }, destination),
    lines,
    text: () => raw.join('\n'),
  };
}

let gcFunction: (() => void) | undefined;

/** Runs a full GC (turning on --expose-gc at run time if vitest did not pass it). */
export function collectGarbage(): void {
  if (!gcFunction) {
    setFlagsFromString('--expose-gc');
    gcFunction = runInNewContext('gc') as () => void;
  }
  gcFunction();
  gcFunction();
}

export function heapUsedAfterGc(): number {
  collectGarbage();
  return process.memoryUsage().heapUsed;
}
