/** The CDK seam (constructs/cdktf.ts): which library backs the constructs, and what a user sees when none fits. */
import { describe, expect, it } from 'vitest';
import { cdkLibrary, loadCdk } from '../../constructs/cdktf.js';

describe('the CDK seam', () => {
  it('loads cdktf when it is installed and CLOUDTASER_CDK is unset', () => {
    const { name, cdk, constructs } = loadCdk({});
    expect(name).toBe('cdktf');
    expect(typeof cdk.TerraformStack).toBe('function');
    // One Construct class: the one the CDK library itself extends.
    expect(Object.getPrototypeOf(cdk.TerraformStack)).toBe(constructs.Construct);
    expect(cdkLibrary).toBe('cdktf');
  });

  it('refuses an unknown CLOUDTASER_CDK value with CT_INVALID_ARGUMENT and the accepted values', () => {
    expect(() => loadCdk({ CLOUDTASER_CDK: 'pulumi' })).toThrow(
      /^CT_INVALID_ARGUMENT: CLOUDTASER_CDK must be "cdktf" or "cdktn", not "pulumi"$/,
    );
  });

  it('names the package to install when CLOUDTASER_CDK asks for a library that is absent', () => {
    // cdktn is not a dependency of this repository; the packed-install tests cover it installed.
    let error: (Error & { code?: string }) | undefined;
    try {
      loadCdk({ CLOUDTASER_CDK: 'cdktn' });
    } catch (err) {
      error = err as Error & { code?: string };
    }
    expect(error?.code).toBe('CT_PEER_DEPENDENCY_MISSING');
    expect(error?.message).toMatch(/CLOUDTASER_CDK=cdktn but the package "cdktn" is not installed/);
    expect(error?.message).toContain('npm install cdktn@^0.24');
  });
});
