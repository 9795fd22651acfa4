import { dirname, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runProcess } from '../run-process.js';

const ROOT = resolve(import.meta.dirname, '../..');
const demo = resolve(ROOT, 'dist/examples/local/demo.js');
const launcher = resolve(ROOT, 'examples/local/start-demo.mjs');

describe('npm run demo (examples/local)', () => {
  it('shows every step of the payoff with its figure, deregisters with cdktf destroy, and exits 0', async () => {
    const { code, stdout, stderr } = await runProcess(process.execPath, [demo], {
      env: { ...process.env, CHECKPOINT_DISABLE: '1' },
    });
    expect(code, `${stdout}\n${stderr}`).toBe(0);
    const line = (step: string) => {
      const found = stdout.split('\n').find((l) => l.includes(step));
      expect(found, `summary line for "${step}"`).toBeDefined();
      expect(found).toMatch(/^ {2}✓ /);
      return found!;
    };
    expect(line('cdktf deploy (register the cluster)')).toMatch(
      /fingerprint [0-9a-f-]{36} registered in cloudtaser\/[0-9a-f]{8}, attested/,
    );
    expect(line('bootstrap to operational')).toMatch(/broker operational [\d.]+ m?s after start/);
    expect(line('a secret written in OpenBao')).toMatch(
      /secret\/app\/db version 1 in namespace cloudtaser\/[0-9a-f]{8} .*password sha256:([0-9a-f]{12})/,
    );
    const written = /password (sha256:[0-9a-f]{12})/.exec(line('a secret written in OpenBao'))![1];
    const read = line('logs in through the pod API and reads it');
    expect(read).toMatch(/team-a\/app-a logged in \(TokenReview through the tunnel, policies [^)]*app-read/);
    expect(read).toContain(`password ${written}, the value written`);
    expect(line('the webhook injects the in-memory secret volume')).toMatch(
      /init container cloudtaser-fetch \(.*\); volume cloudtaser-secrets \(emptyDir, medium Memory.*\); 1 mount\(s\) at \//,
    );
    expect(line('a Kubernetes Secret migrated into OpenBao and removed')).toMatch(
      /team-a\/legacy-db \(2 keys\) marked by cloudtaser-cli target migrate, written to secret\/k8s\/team-a\/legacy-db .*verified, then deleted from Kubernetes/,
    );
    expect(line('cdktf destroy (deregister the cluster)')).toContain(
      'registration and initialization records removed',
    );
    expect(line('tunnel closed after deregistration')).toMatch(/broker left the operational phase/);
    expect(line('stop everything')).toContain('processes stopped');
    expect(stdout).toContain('all steps worked');
    // Never a secret value: only the short SHA-256 labels.
    expect(stdout).not.toMatch(/password [A-Za-z0-9_-]{16}\b/);
    // Progress while the CDK CLI works: phase lines, and no spinner frames.
    expect(stderr).toMatch(/· cdktf deploy: .*Initializing/);
    expect(stderr).not.toMatch(/[\u2800-\u28ff]/);
  }, 300_000);

  it('says in one line that terraform is missing, before doing anything', async () => {
    const { code, stdout, stderr } = await runProcess(process.execPath, [demo], {
      env: { PATH: dirname(process.execPath), HOME: process.env.HOME },
      timeoutMs: 30_000,
    });
    expect(stdout).toBe('');
    expect(stderr.trim().split('\n')).toEqual([
      'demo: terraform is not on PATH: the demo deploys through the CDK CLI, which runs Terraform (>= 1.2); install it from https://developer.hashicorp.com/terraform/install',
    ]);
    expect(code).toBe(1);
  });

  it('has the README that app.ts points to, with every step the demo runs', async () => {
    const { readFileSync } = await import('node:fs');
    const readme = readFileSync(resolve(ROOT, 'examples/local/README.md'), 'utf8');
    expect(readFileSync(resolve(ROOT, 'examples/local/app.ts'), 'utf8')).toContain(
      'examples/local/README.md',
    );
    for (const step of [
      'a secret written in OpenBao',
      'a pod reads it',
      'the webhook injects',
      'a Secret migrated',
      'cdktf destroy',
      'tunnel closed',
    ])
      expect(readme).toContain(step);
    expect(readme).toContain('npm run demo -- --cdk cdktn');
  });

  it('--help prints usage and exits 0; the launcher does not rebuild a current dist/', async () => {
    const { code, stdout, stderr } = await runProcess(process.execPath, [launcher, '--help'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
      timeoutMs: 60_000,
    });
    expect(code).toBe(0);
    expect(stdout).toMatch(/^Usage: npm run demo -- \[--cdk cdktf\|cdktn\]/);
    expect(stderr).toBe('demo: dist/ is newer than every source; no build needed\n');
  }, 120_000);
});
