import { describe, expect, it } from 'vitest';
import { waitUntil } from './wait.js';

describe('waitUntil', () => {
  it('resolves to the first truthy value the check returns, sync or async', async () => {
    let calls = 0;
    expect(await waitUntil(() => (++calls >= 3 ? { calls } : undefined))).toEqual({ calls: 3 });
    let asyncCalls = 0;
    expect(await waitUntil(async () => ++asyncCalls >= 2 && 'ready')).toBe('ready');
    expect(asyncCalls).toBe(2);
  });

  it('retries a check that throws, and names what it waited for and the last error at the timeout', async () => {
    let calls = 0;
    const thrown = await waitUntil(
      () => {
        calls++;
        throw new Error('bridge not polled yet');
      },
      { what: 'the bridge tunnel', timeoutMs: 200 },
    ).catch((err: Error) => err);
    expect(calls).toBeGreaterThan(1);
    expect((thrown as Error).message).toBe(
      'timed out after 200 ms waiting for the bridge tunnel; last error: bridge not polled yet',
    );
  });

  it('describes an unnamed check by its source', async () => {
    const queue: string[] = [];
    await expect(waitUntil(() => queue.length > 0, { timeoutMs: 50 })).rejects.toThrow(
      'timed out after 50 ms waiting for () => queue.length > 0',
    );
  });

  it('gives up at the deadline on a check that never settles', async () => {
    const started = performance.now();
    await expect(
      waitUntil(() => new Promise<boolean>(() => {}), { what: 'a hung probe', timeoutMs: 100 }),
    ).rejects.toThrow('timed out after 100 ms waiting for a hung probe');
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});
