import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from './log.js';
import { createLogSummarizer } from './log-summary.js';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(JSON.parse(String(chunk)));
      callback();
    },
  });
  return { lines, log: createLogger('test', { level: 'info', destination }) };
}

describe('createLogSummarizer', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date('2026-12-07T03:12:05.000Z'));
  });
  afterEach(() => vi.useRealTimers());

  it('logs the first line of a key in full and folds the rest of its window into one summary, by code', () => {
    const { lines, log } = capture();
    const summarizer = createLogSummarizer(log, { summaryEvent: 'test.summary' });
    summarizer.warn('dial', { event: 'test.failed', code: 'CT_A', replica: 'r1', reason: 'first' }, 'failed');
    summarizer.warn(
      'dial',
      { event: 'test.failed', code: 'CT_A', replica: 'r1', reason: 'second' },
      'failed',
    );
    summarizer.warn('dial', { event: 'test.failed', code: 'CT_B', replica: 'r1', reason: 'third' }, 'failed');
    expect(lines.map((l) => l.reason)).toEqual(['first']);
    vi.advanceTimersByTime(60_000);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({
      event: 'test.summary',
      replica: 'r1',
      suppressed: 2,
      byCode: { CT_A: 1, CT_B: 1 },
    });
    expect(lines[1].reason).toBeUndefined();
    expect(summarizer.counts).toEqual({ logged: 2, suppressed: 2 });
  });

  it('says when the lines it stands for happened: an incident over long before the summary is written reads so', () => {
    const { lines, log } = capture();
    const summarizer = createLogSummarizer(log, { summaryEvent: 'test.summary' });
    summarizer.warn('dial', { event: 'test.failed', code: 'CT_A' }, 'failed');
    vi.advanceTimersByTime(4_000);
    summarizer.warn('dial', { event: 'test.failed', code: 'CT_A' }, 'failed');
    vi.advanceTimersByTime(3_000);
    summarizer.warn('dial', { event: 'test.failed', code: 'CT_A' }, 'failed');
    // Quiet for the rest of the window: the summary, written at 03:13:05, says the failures stopped at 03:12:12.
    vi.advanceTimersByTime(53_000);
    expect(lines[1]).toMatchObject({
      event: 'test.summary',
      suppressed: 2,
      firstAt: '2026-12-07T03:12:05.000Z',
      lastAt: '2026-12-07T03:12:12.000Z',
    });
    expect(lines[1].msg).toBe(
      '2 more like the one logged at 03:12:05Z, the last at 03:12:12Z (not logged one by one)',
    );
  });

  it('writes no summary for a window with nothing held back, and flushes pending ones on close', () => {
    const { lines, log } = capture();
    const summarizer = createLogSummarizer(log, { summaryEvent: 'test.summary' });
    summarizer.warn('a', { event: 'test.failed' }, 'failed');
    vi.advanceTimersByTime(60_000);
    expect(lines).toHaveLength(1);
    summarizer.warn('b', { event: 'test.failed' }, 'failed');
    summarizer.warn('b', { event: 'test.failed' }, 'failed');
    summarizer.close();
    expect(lines.map((l) => l.event)).toEqual(['test.failed', 'test.failed', 'test.summary']);
    expect(lines[2]).toMatchObject({ suppressed: 1, byCode: { other: 1 } });
  });
  it('folds the lines of keys beyond maxKeys into one window, so chosen keys cannot grow memory or the log', () => {
    // A beacon keys its refusals by source address, which a stranger with many addresses chooses.
    const { lines, log } = capture();
    const summarizer = createLogSummarizer(log, { summaryEvent: 'test.summary', maxKeys: 2 });
    for (let i = 0; i < 50; i++)
      summarizer.warn(
        `garbage|10.0.0.${i}`,
        { event: 'test.rejected', reason: 'garbage', remote: `10.0.0.${i}` },
        'x',
      );
    // Two keys logged in full, the first overflowing line in full, the other 47 counted.
    expect(lines).toHaveLength(3);
    vi.advanceTimersByTime(60_000);
    expect(lines).toHaveLength(4); // one summary: the two keys held nothing back
    const overflow = lines.find((l) => l.event === 'test.summary' && l.overflow === true);
    expect(overflow).toMatchObject({ suppressed: 47 });
  });

  it('repeats the keyFields on its summary (the reason a beacon keys its refusals by)', () => {
    const { lines, log } = capture();
    const summarizer = createLogSummarizer(log, { summaryEvent: 'test.summary', keyFields: ['reason'] });
    for (let i = 0; i < 3; i++)
      summarizer.warn('garbage|10.0.0.1', { event: 'test.rejected', reason: 'garbage', code: 'CT_X' }, 'x');
    summarizer.close();
    expect(lines[1]).toMatchObject({
      event: 'test.summary',
      reason: 'garbage',
      suppressed: 2,
      byCode: { CT_X: 2 },
    });
  });
});
