/**
 * Runs the real terraform binary offline in a scratch directory: own CLI config (the machine's
 * TF_CLI_CONFIG_FILE points at a missing file), a temp HOME, checkpoint off, no colour.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const TERRAFORM = process.env.CLOUDTASER_TEST_TERRAFORM ?? '/usr/local/bin/terraform';

export interface TerraformResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

export interface TerraformWorkspace {
  readonly dir: string;
  readonly home: string;
  readonly env: Record<string, string>;
  write(name: string, content: string): void;
  /** `input` is written to terraform's stdin (e.g. expressions for `terraform console`). */
  run(args: readonly string[], extraEnv?: Record<string, string>, input?: string): Promise<TerraformResult>;
  dispose(): void;
}

export function createWorkspace(
  options: { cliConfig?: string; env?: Record<string, string> } = {},
): TerraformWorkspace {
  const root = mkdtempSync(join(tmpdir(), 'ct-tf-'));
  const dir = join(root, 'work');
  const home = join(root, 'home');
  mkdirSync(dir, { recursive: true });
  mkdirSync(home, { recursive: true });
  const cliConfigPath = join(root, 'terraform.rc');
  writeFileSync(cliConfigPath, options.cliConfig ?? 'disable_checkpoint = true\n');
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    TMPDIR: process.env.TMPDIR ?? tmpdir(),
    CHECKPOINT_DISABLE: '1',
    TF_CLI_CONFIG_FILE: cliConfigPath,
    TF_IN_AUTOMATION: '1',
    TF_INPUT: '0',
    ...options.env,
  };
  return {
    dir,
    home,
    env,
    write: (name, content) => writeFileSync(join(dir, name), content),
    run: (args, extraEnv = {}, input) =>
      new Promise((resolve) => {
        const started = performance.now();
        const child = execFile(
          TERRAFORM,
          [...args],
          { cwd: dir, env: { ...env, ...extraEnv }, maxBuffer: 32 * 1024 * 1024, timeout: 90_000 },
          (err, stdout, stderr) => {
            const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
            resolve({ code, stdout, stderr, ms: performance.now() - started });
          },
        );
        child.stdin?.end(input ?? '');
      }),
    dispose: () => rmSync(root, { recursive: true, force: true }),
  };
}
