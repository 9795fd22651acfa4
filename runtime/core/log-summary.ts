/**
 * Log lines about things a stranger can make happen at will (a pairing that fails, an announce that is refused)
 * must not let that stranger fill the disk or drown the lines an SRE needs. The first occurrence per key and
 * window is logged in full; the rest are counted, and one summary line with the counts closes the window.
 * The summary says when the lines it stands for happened (`firstAt`: the line logged in full, `lastAt`: the last
 * one counted): it is written when the window closes, up to a minute after the last of them, and an SRE reading it
 * must tell an incident still going on from one already over.
 */
import type { Logger } from './log.js';

export interface LogSummarizerOptions {
  /** Length of a window. @default 60000 */
  readonly windowMs?: number;
  /** Event name of the summary line, e.g. `bridge.session_failures_summary`. */
  readonly summaryEvent: string;
  /**
   * At most this many keys have a window at once; a line of a new key beyond them is folded into one shared
   * window (`overflow: true` on its summary), so a stranger choosing keys (one per source address) cannot grow
   * this process's memory or the log. @default 1000
   */
  readonly maxKeys?: number;
  /**
   * Fields the caller put in the key, so every line of a window has the same value: the summary repeats them
   * (it drops `reason` and `code` otherwise, which vary within a window).
   */
  readonly keyFields?: readonly string[];
}

/** The shared window of lines whose key found no room (see maxKeys). */
const OVERFLOW_KEY = '\u0000overflow';

export interface LogSummarizer {
  /**
   * Logs `fields` at warn level if it is the first line of `key` in the current window, otherwise counts it
   * under `fields.code` (or `other`) for the summary.
   */
  warn(key: string, fields: Record<string, unknown>, message?: string): void;
  /** Lines written in full and lines folded into summaries since the start (for tests and metrics). */
  readonly counts: { readonly logged: number; readonly suppressed: number };
  /** Writes pending summaries now and stops the timers. */
  close(): void;
}

interface Window {
  readonly timer: NodeJS.Timeout;
  readonly fields: Record<string, unknown>;
  readonly byCode: Map<string, number>;
  /** When the line logged in full was written, and when the last line counted in the window happened. */
  readonly firstAt: number;
  lastAt: number;
  suppressed: number;
}

/** `03:12:05Z`: the time of day in a summary's message (the fields carry full ISO times). */
const timeOfDay = (ms: number) => `${new Date(ms).toISOString().slice(11, 19)}Z`;

export function createLogSummarizer(log: Logger, options: LogSummarizerOptions): LogSummarizer {
  const windowMs = options.windowMs ?? 60_000;
  const maxKeys = options.maxKeys ?? 1000;
  const windows = new Map<string, Window>();
  const counts = { logged: 0, suppressed: 0 };
  const flush = (key: string) => {
    const window = windows.get(key);
    if (!window) return;
    windows.delete(key);
    clearTimeout(window.timer);
    if (window.suppressed === 0) return;
    counts.logged++;
    log.warn(
      {
        ...window.fields,
        event: options.summaryEvent,
        suppressed: window.suppressed,
        byCode: Object.fromEntries(window.byCode),
        windowMs,
        firstAt: new Date(window.firstAt).toISOString(),
        lastAt: new Date(window.lastAt).toISOString(),
      },
      `${window.suppressed} more like the one logged at ${timeOfDay(window.firstAt)}, the last at ${timeOfDay(window.lastAt)} (not logged one by one)`,
    );
  };
  return {
    warn(wanted, fields, message) {
      const key = windows.has(wanted) || windows.size < maxKeys ? wanted : OVERFLOW_KEY;
      const window = windows.get(key);
      if (window) {
        window.suppressed++;
        window.lastAt = Date.now();
        counts.suppressed++;
        const code = typeof fields.code === 'string' ? fields.code : 'other';
        window.byCode.set(code, (window.byCode.get(code) ?? 0) + 1);
        return;
      }
      counts.logged++;
      log.warn(fields, message);
      // What the summary repeats: where it happened, not the details of the first occurrence.
      const { reason: _reason, code: _code, event: _event, ...where } = fields;
      if (key === OVERFLOW_KEY) Object.assign(where, { overflow: true });
      else for (const field of options.keyFields ?? []) if (field in fields) where[field] = fields[field];
      const timer = setTimeout(() => flush(key), windowMs);
      timer.unref();
      const now = Date.now();
      windows.set(key, { timer, fields: where, byCode: new Map(), firstAt: now, lastAt: now, suppressed: 0 });
    },
    counts,
    close() {
      for (const key of [...windows.keys()]) flush(key);
    },
  };
}
