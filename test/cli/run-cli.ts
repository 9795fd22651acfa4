import { resolve } from 'node:path';
import { type ProcessResult, runProcess } from '../run-process.js';

export const CLI = resolve(import.meta.dirname, '../../dist/runtime/cli/main.js');

export type CliResult = ProcessResult;

/** Runs the built `cloudtaser-cli` exactly as a user would, with a clean environment plus `env`. */
export function runCli(
  args: string[],
  env: Record<string, string | undefined> = {},
  timeoutMs = 20_000,
): Promise<CliResult> {
  return runProcess(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    timeoutMs,
  });
}
