import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');

/** Imports a subpath export in a plain Node process (no vitest, no TypeScript), as a user's code would. */
function importInPlainNode(
  specifier: string,
  probe: string,
): { status: number | null; stdout: string; stderr: string } {
  const script = `const m = await import(${JSON.stringify(specifier)}); process.stdout.write(String(${probe}));`;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('package exports after install', () => {
  it.each([
    [
      'cloudtaser/runtime',
      "typeof m.registerCluster + ',' + typeof m.createBeacon + ',' + m.initHash('0ad50c05-1153-4508-9237-4cb2912e2c23')",
    ],
    ['cloudtaser/provider', "typeof m.createCloudtaserProvider + ',' + m.PROVIDER_ADDRESS"],
    ['cloudtaser/constructs', "typeof m.RegisteredCluster + ',' + typeof m.Beacon + ',' + typeof m.Bridge"],
  ])('%s imports in plain Node', (specifier, probe) => {
    const result = importInPlainNode(specifier, probe);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).not.toContain('undefined');
    if (specifier === 'cloudtaser/runtime')
      expect(result.stdout).toContain('5af11b82299622a908c5aa10383bfcfd84f6cd251c7094e2246c7daf419dc463');
  });
});
