import { describe, expect, it } from 'vitest';
import type { OpenBaoClient } from '../openbao/index.js';
import { MAX_REARM_WINDOW_MS } from './defaults.js';
import { checkRearmWindow, writeRearmWindow } from './initialization.js';

/** A records mount that answers each write with OpenBao's `created_time` at `openBaoNow()`. */
function fakeRoot(openBaoNow: () => number) {
  const writes: Array<{ data: Record<string, unknown>; cas?: number }> = [];
  const root = {
    kvWrite: async (
      _mount: string,
      _path: string,
      data: Record<string, unknown>,
      options: { cas?: number },
    ) => {
      writes.push({ data, cas: options.cas });
      return { version: 10 + writes.length, createdTime: new Date(openBaoNow()).toISOString() };
    },
  } as unknown as OpenBaoClient;
  return { root, writes };
}

const FP = '0ad50c05-1153-4508-9237-4cb2912e2c23';
const HOUR = 3_600_000;

describe("the re-arm window starts at OpenBao's clock", () => {
  it('writes once when the clocks agree', async () => {
    const { root, writes } = fakeRoot(() => Date.now());
    const expiresAt = await writeRearmWindow(root, FP, { data: { fingerprint: FP }, version: 3 }, HOUR);
    expect(writes).toHaveLength(1);
    expect(writes[0]).toEqual({ data: { fingerprint: FP, rearm_expires_at: expiresAt }, cas: 3 });
    expect(Math.abs(Date.parse(expiresAt) - (Date.now() + HOUR))).toBeLessThan(5_000);
  });

  it("writes again from OpenBao's time when this host's clock is two hours behind (a window already over before)", async () => {
    const { root, writes } = fakeRoot(() => Date.now() + 2 * HOUR);
    const expiresAt = await writeRearmWindow(root, FP, { data: { fingerprint: FP }, version: 3 }, HOUR);
    expect(writes).toHaveLength(2);
    // The second write replaces exactly the version the first one made.
    expect(writes[1]).toEqual({ data: { fingerprint: FP, rearm_expires_at: expiresAt }, cas: 11 });
    expect(Math.abs(Date.parse(expiresAt) - (Date.now() + 3 * HOUR))).toBeLessThan(5_000);
  });
});

describe('the re-arm window is bounded', () => {
  it('takes 1 ms to 7 days and refuses the rest, so a window of years is not the unbounded re-arm again', () => {
    expect(checkRearmWindow(1)).toBe(1);
    expect(checkRearmWindow(MAX_REARM_WINDOW_MS)).toBe(MAX_REARM_WINDOW_MS);
    for (const bad of [0, -1, 1.5, MAX_REARM_WINDOW_MS + 1, 100_000_000 * HOUR, Number.NaN])
      expect(() => checkRearmWindow(bad)).toThrow(/CT_INVALID_ARGUMENT|re-arm window/);
  });
});
