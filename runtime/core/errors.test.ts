import { describe, expect, expectTypeOf, it, vi } from 'vitest';
import { CloudtaserError, type ErrorCode, isCloudtaserError } from './errors.js';

/** A second, separately evaluated copy of this module, as a bundle chunk carries one. */
async function secondCopy(): Promise<typeof import('./errors.js')> {
  vi.resetModules();
  const copy = await import('./errors.js');
  expect(copy.CloudtaserError).not.toBe(CloudtaserError);
  return copy;
}

describe('CloudtaserError brand', () => {
  it('recognises an error from a separately loaded copy of the class, by instanceof and by code', async () => {
    const { CloudtaserError: OtherCopy } = await secondCopy();
    const foreign = new OtherCopy('CT_OPENBAO_SEALED', 'OpenBao is sealed; unseal it');
    expect(Object.getPrototypeOf(foreign)).not.toBe(CloudtaserError.prototype);
    expect(foreign instanceof CloudtaserError).toBe(true);
    expect(isCloudtaserError(foreign)).toBe(true);
    expect(isCloudtaserError(foreign, 'CT_OPENBAO_SEALED')).toBe(true);
    expect(isCloudtaserError(foreign, 'CT_OPENBAO_TIMEOUT')).toBe(false);
    // And the other way round: the copy knows this module's errors.
    expect(new CloudtaserError('CT_INTERNAL', 'x') instanceof OtherCopy).toBe(true);
  });

  it('does not take a look-alike without the brand, nor a plain Error', () => {
    const lookalike = Object.assign(new Error('denied'), { name: 'CloudtaserError', code: 'CT_INTERNAL' });
    expect(isCloudtaserError(lookalike)).toBe(false);
    expect(lookalike instanceof CloudtaserError).toBe(false);
    expect(isCloudtaserError(new TypeError('boom'))).toBe(false);
    expect(isCloudtaserError(undefined)).toBe(false);
  });

  it('keeps the ordinary prototype check for a subclass', () => {
    class ArgumentError extends CloudtaserError {}
    expect(new ArgumentError('CT_INVALID_ARGUMENT', 'x') instanceof ArgumentError).toBe(true);
    expect(new CloudtaserError('CT_INVALID_ARGUMENT', 'x') instanceof ArgumentError).toBe(false);
    expect(new ArgumentError('CT_INVALID_ARGUMENT', 'x') instanceof CloudtaserError).toBe(true);
  });

  it('leaves the brand out of JSON and the enumerable keys, so logs of an error do not change', () => {
    const err = new CloudtaserError('CT_NAMESPACE_CLASH', 'taken', {
      details: { fingerprint: 'a', owner: 'b' },
    });
    expect(Object.keys(err)).toEqual(['code', 'details', 'name']);
    const brand = Object.getOwnPropertyDescriptor(err, Symbol.for('cloudtaser.error'));
    expect(brand).toMatchObject({ value: true, enumerable: false });
    expect(JSON.stringify(err)).toBe(
      '{"code":"CT_NAMESPACE_CLASH","details":{"fingerprint":"a","owner":"b"},"name":"CloudtaserError"}',
    );
  });

  it('types details per code: required and typed where a code lists them, free-form elsewhere', () => {
    const refused = new CloudtaserError('CT_BOOTSTRAP_REFUSED', 'no', {
      details: { refusal: 'CT_ALREADY_INITIALIZED' },
    });
    expect(refused.details.refusal).toBe('CT_ALREADY_INITIALIZED');
    // @ts-expect-error CT_BOOTSTRAP_REFUSED must say which code the bridge refused with.
    void new CloudtaserError('CT_BOOTSTRAP_REFUSED', 'no');
    // @ts-expect-error the refusal is an error code, not any text.
    void new CloudtaserError('CT_BOOTSTRAP_REFUSED', 'no', { details: { refusal: 'nope' } });
    const free = new CloudtaserError('CT_OPENBAO_ERROR', 'x', { details: { status: 500 } });
    expect(free.details.status).toBe(500);
    const err: unknown = refused;
    expect(isCloudtaserError(err, 'CT_BOOTSTRAP_REFUSED')).toBe(true);
    if (isCloudtaserError(err, 'CT_BOOTSTRAP_REFUSED'))
      expectTypeOf(err.details.refusal).toEqualTypeOf<ErrorCode>();
  });
});
