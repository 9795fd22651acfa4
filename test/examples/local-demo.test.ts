import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const demo = resolve(import.meta.dirname, '../../dist/examples/local/demo.js');

describe('npm run demo (examples/local)', () => {
  it('registers with cdktf deploy, bootstraps to operational, deregisters with cdktf destroy, and exits 0', async () => {
    const child = spawn(process.execPath, [demo], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CHECKPOINT_DISABLE: '1' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const code = await new Promise((done) => child.on('exit', done));
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
