import { describe, expect, it } from 'vitest';
import { bootstrapRefusalFix } from './refusal-fix.js';

describe('bootstrapRefusalFix', () => {
  it('sends a token refused as not yet valid or expired to the clocks, not to the keys', () => {
    // An outside drill ran the bridge 2 h behind: the broker said "check the clocks", while the bridge's fix and
    // source doctor said to check the issuer and JWKS.
    for (const why of ['not-yet-valid', 'expired']) {
      const fix = bootstrapRefusalFix('CT_ATTESTATION_FAILED', why);
      expect(fix).toContain('NTP');
      expect(fix).not.toContain('JWKS');
    }
  });

  it('names the check that refused any other token, and sends it to the registration', () => {
    const fix = bootstrapRefusalFix('CT_ATTESTATION_FAILED', 'unknown-key');
    expect(fix).toContain('(unknown-key)');
    expect(fix).toContain('JWKS');
    expect(bootstrapRefusalFix('CT_ATTESTATION_FAILED')).toContain('JWKS');
  });
});
