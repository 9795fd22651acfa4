import { describe, expect, it } from 'vitest';
import { CloudtaserError } from './errors.js';
import { fingerprintPrefix, initHash, operationalHash, redactIdentifiers } from './hashes.js';
import { parseFingerprint } from './rules.js';

describe('info hashes', () => {
  it('matches the published init-hash test vector', () => {
    expect(initHash('0ad50c05-1153-4508-9237-4cb2912e2c23')).toBe(
      '5af11b82299622a908c5aa10383bfcfd84f6cd251c7094e2246c7daf419dc463',
    );
  });

  it('normalises an upper-case fingerprint to the same init hash', () => {
    expect(initHash('0AD50C05-1153-4508-9237-4CB2912E2C23')).toBe(
      initHash('0ad50c05-1153-4508-9237-4cb2912e2c23'),
    );
  });

  it('hashes the CA DER bytes for the operational room', () => {
    expect(operationalHash(new Uint8Array([1, 2, 3]))).toBe(
      '039058c6f2c0cb492c533b0a4d14ef77cc0f78abccced5287d84a1a2011cfb81',
    );
  });

  it.each([
    '',
    'not-a-uuid',
    '0ad50c05115345089237-4cb2912e2c23',
    '../../etc/passwd',
    '0ad50c05-1153-4508-9237-4cb2912e2c23x',
  ])('refuses %j with CT_INVALID_FINGERPRINT', (bad) => {
    expect(() => parseFingerprint(bad)).toThrowError(CloudtaserError);
    try {
      parseFingerprint(bad);
    } catch (err) {
      expect((err as CloudtaserError).code).toBe('CT_INVALID_FINGERPRINT');
    }
  });

  it('uses the first 8 characters as the namespace prefix', () => {
    expect(fingerprintPrefix('0ad50c05-1153-4508-9237-4cb2912e2c23')).toBe('0ad50c05');
  });
});

describe('redactIdentifiers', () => {
  it('shortens every fingerprint to 8 characters and every 64-hex hash to 12, whatever the case, and leaves other text', () => {
    const fingerprint = '0ad50c05-1153-4508-9237-4cb2912e2c23';
    const hash = '5af11b82299622a908c5aa10383bfcfd84f6cd251c7094e2246c7daf419dc463';
    const text = `cluster ${fingerprint} (${fingerprint.toUpperCase()}) room ${hash}; short abcdef0123, id 42`;
    expect(redactIdentifiers(text)).toBe(
      'cluster 0ad50c05… (0AD50C05…) room 5af11b822996…; short abcdef0123, id 42',
    );
  });
});
