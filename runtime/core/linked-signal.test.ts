import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { linkSignal } from './linked-signal.js';

describe('linkSignal', () => {
  it('aborts with its parent, and leaves no listener on it once disposed', () => {
    const parent = new AbortController();
    const link = linkSignal([parent.signal, undefined]);
    expect(getEventListeners(parent.signal, 'abort')).toHaveLength(1);
    link.dispose();
    expect(getEventListeners(parent.signal, 'abort')).toHaveLength(0);
    const second = linkSignal([parent.signal]);
    parent.abort('stop');
    expect(second.signal.aborted).toBe(true);
    expect(second.signal.reason).toBe('stop');
    expect(second.timedOut).toBe(false);
  });

  it('aborts after its time limit, says so, and detaches', async () => {
    const parent = new AbortController();
    const link = linkSignal([parent.signal], 20);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(link.signal.aborted).toBe(true);
    expect(link.timedOut).toBe(true);
    expect(getEventListeners(parent.signal, 'abort')).toHaveLength(0);
  });

  it('starts aborted when a parent already is', () => {
    const parent = new AbortController();
    parent.abort();
    const link = linkSignal([parent.signal], 1_000);
    expect(link.signal.aborted).toBe(true);
    expect(link.timedOut).toBe(false);
  });
});
