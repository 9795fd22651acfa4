import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { registerProviderCommand } from '../../provider/command.js';

describe('cloudtaser-cli provider install', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ct-cmd-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('installs every default platform under the Terraform and the OpenTofu host and prints one provider_installation block covering both', async () => {
    const bundle = join(dir, 'bundle.cjs');
    writeFileSync(bundle, '#!/usr/bin/env node\n');
    const program = new Command().exitOverride();
    registerProviderCommand(program);
    const out: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      out.push(String(chunk));
      return true;
    });
    try {
      await program.parseAsync([
        'node',
        'cli',
        'provider',
        'install',
        '--mirror',
        join(dir, 'mirror'),
        '--bundle',
        bundle,
      ]);
    } finally {
      spy.mockRestore();
    }
    const text = out.join('');
    expect(text).toMatch(/Lock hash \(same for every platform and both addresses\): h1:[A-Za-z0-9+/]+=*/);
    expect(text).toContain('provider_installation {');
    const both =
      '["registry.terraform.io/cloudtaser/cloudtaser", "registry.opentofu.org/cloudtaser/cloudtaser"]';
    expect(text).toContain(`include = ${both}`);
    expect(text).toContain(`exclude = ${both}`);
    expect(text).toContain('~/.tofurc');
    for (const host of ['registry.terraform.io', 'registry.opentofu.org']) {
      for (const platform of ['linux_amd64', 'linux_arm64', 'darwin_amd64', 'darwin_arm64']) {
        const file = join(
          dir,
          `mirror/${host}/cloudtaser/cloudtaser/0.2.0`,
          platform,
          'terraform-provider-cloudtaser_v0.2.0',
        );
        expect(existsSync(file), file).toBe(true);
      }
    }
  });

  it('refuses a platform that is not OS_ARCH', async () => {
    const program = new Command().exitOverride();
    registerProviderCommand(program);
    const bundle = join(dir, 'bundle.cjs');
    await expect(
      program.parseAsync([
        'node',
        'cli',
        'provider',
        'install',
        '--mirror',
        join(dir, 'm2'),
        '--bundle',
        bundle,
        '--platform',
        '../../etc',
      ]),
    ).rejects.toThrow(/not OS_ARCH/);
  });
});
