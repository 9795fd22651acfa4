/**
 * The package as a user meets it: `npm pack`, then `npm install --omit=dev` of the tarball into an empty folder.
 * Shared by the packed-install tests (CLI-only, with cdktf, with cdktn). Needs the npm registry for the
 * dependencies; nothing is cached across runs except npm's own cache (`--prefer-offline`).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type ProcessResult, runProcess } from '../run-process.js';

export const REPO = resolve(import.meta.dirname, '../..');

export interface PackedTarball {
  readonly path: string;
  /** Every path in the tarball, relative to the package root. */
  readonly files: readonly string[];
}

/** `npm pack` of the built repository (`npm test` builds first; `--ignore-scripts` skips a second build). */
export async function packTarball(into: string): Promise<PackedTarball> {
  mkdirSync(into, { recursive: true });
  const result = await npm(['pack', '--ignore-scripts', '--json', '--pack-destination', into], REPO);
  const [info] = JSON.parse(result.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  return { path: join(into, info.filename), files: info.files.map((f) => f.path) };
}

/** `npm install --omit=dev` of `specs` in `dir` (created with a minimal private package.json). */
export async function npmInstall(dir: string, specs: readonly string[]): Promise<void> {
  mkdirSync(dir, { recursive: true });
  if (!existsSync(join(dir, 'package.json')))
    writeFileSync(
      join(dir, 'package.json'),
      '{"name":"cloudtaser-install-test","private":true,"type":"module"}\n',
    );
  await npm(['install', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline', ...specs], dir);
}

async function npm(args: string[], cwd: string): Promise<ProcessResult> {
  const result = await runProcess(npmCommand(), args, { cwd, env: process.env, timeoutMs: 300_000 });
  if (result.code !== 0)
    throw new Error(`npm ${args.join(' ')} exited ${result.code}:\n${result.stderr.slice(-4000)}`);
  return result;
}

function npmCommand(): string {
  return process.platform === 'win32' ? 'npm.cmd' : 'npm';
}

/**
 * Type-checks `source` as a TypeScript user's file in `dir` (strict, `skipLibCheck` off, Node's module resolution)
 * with the repository's compiler and @types/node, the one types package a Node TypeScript project always has.
 * Every declaration file the imports reach is checked, so one naming a package the install lacks fails here.
 */
export async function typecheckConsumer(dir: string, source: string): Promise<ProcessResult> {
  writeFileSync(join(dir, 'consumer.ts'), source);
  writeFileSync(
    join(dir, 'tsconfig.json'),
    `${JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        types: ['node'],
        typeRoots: [join(REPO, 'node_modules', '@types')],
      },
      files: ['consumer.ts'],
    })}\n`,
  );
  return runProcess(process.execPath, [join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], {
    cwd: dir,
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    timeoutMs: 120_000,
  });
}

/** Disk usage of a folder in KiB, as `du -sk` reports it (the figure `du -sh` rounds). */
export function diskUsageKiB(dir: string): number {
  return Number(execFileSync('du', ['-sk', dir], { encoding: 'utf8' }).split(/\s/)[0]);
}

/** Runs an ES module script in a plain Node process inside `cwd`, as a user's code would run there. */
export function runModule(
  cwd: string,
  script: string,
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 60_000,
): Promise<ProcessResult> {
  return runProcess(process.execPath, ['--input-type=module', '-e', script], {
    cwd,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    timeoutMs,
  });
}

/**
 * A script that synthesizes a RegisteredCluster with the default fingerprint source (the kubernetes data source)
 * and the operator Helm release, with the App and stack from the library the constructs chose, and prints the
 * library name and the synthesized stack as JSON.
 */
export const SYNTH_REGISTERED_CLUSTER = `
  import { mkdtempSync, readFileSync } from 'node:fs';
  import { tmpdir } from 'node:os';
  import { join } from 'node:path';
  const { cdk, cdkLibrary, RegisteredCluster } = await import('cloudtaser/constructs');
  const outdir = mkdtempSync(join(tmpdir(), 'ct-synth-'));
  const app = new cdk.App({ outdir });
  const stack = new cdk.TerraformStack(app, 'prod');
  new RegisteredCluster(stack, 'eu', {
    secretStore: { address: 'https://openbao.example.eu:8200' },
    beacon: { address: 'beacon.example.com:443' },
    kubernetes: { configPath: '/home/ops/.kube/config' },
  });
  app.synth();
  process.stdout.write(JSON.stringify({ cdkLibrary, stack: JSON.parse(readFileSync(join(outdir, 'stacks', 'prod', 'cdk.tf.json'), 'utf8')) }));
`;
