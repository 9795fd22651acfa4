/** Assertions the contract tests share: a call refused with one stable code, and names unique to a run. */
import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import { type CloudtaserError, isCloudtaserError } from '../../runtime/core/errors.js';

/** Awaits `promise` and checks it was refused with `code`; returns the error for further checks. */
export async function expectCode(promise: Promise<unknown>, code: string): Promise<CloudtaserError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isCloudtaserError(err), `expected ${code}, got ${String(err)}`).toBe(true);
  expect((err as CloudtaserError).code).toBe(code);
  return err as CloudtaserError;
}

/** A name unique to this run, so runs against a shared real server never collide. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}
