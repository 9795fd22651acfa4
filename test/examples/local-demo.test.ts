import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runProcess } from '../run-process.js';

const demo = resolve(import.meta.dirname, '../../dist/examples/local/demo.js');

describe('npm run demo (examples/local)', () => {
  it('registers with cdktf deploy, bootstraps to operational, deregisters with cdktf destroy, and exits 0', async () => {
    const { code, stdout, stderr } = await runProcess(process.execPath, [demo], {
      env: { ...process.env, CHECKPOINT_DISABLE: '1' },
    });
    expect(code, `${stdout}\n${stderr}`).toBe(0);
    for (const step of [
      'cdktf deploy',
      'bootstrap to operational',
      'cdktf destroy',
      'tunnel closed',
      'stop everything',
    ]) {
      expect(stdout).toMatch(new RegExp(`✓ [^\\n]*${step}`));
    }
    expect(stdout).toContain('all steps worked');
  }, 240_000);
});
