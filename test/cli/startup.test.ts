/**
 * `cloudtaser-cli --help`, a usage error and a command's --help load only the command definitions, never a
 * command's implementation. Why: start-up time. Importing undici, @grpc/grpc-js, ws, prom-client, node-forge, yaml
 * and the bundled Kubernetes client up front made every invocation (an SRE's `--help` at 3 a.m., each of the
 * hundreds of CLI spawns in this suite) take about a second instead of a third of one; each command now imports
 * its implementation when it runs. Asserted by what the process loads, recorded by a module-resolution hook, not
 * by a clock, so the test does not depend on the machine's speed.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { runProcess } from '../run-process.js';
import { CLI } from './run-cli.js';

const FP = '0ad50c05-1153-4508-9237-4cb2912e2c23';
const dir = mkdtempSync(join(tmpdir(), 'ct-cli-startup-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Preloaded with `node --import`: records every URL the ESM loader resolves and, at exit, every file in the CJS
 * cache (a package required from CommonJS never reaches the ESM hook).
 */
const recorder = join(dir, 'record-loads.mjs');
writeFileSync(
  recorder,
  `import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
const file = process.env.CT_RECORD_LOADS_FILE;
register('data:text/javascript,' + encodeURIComponent(\`
import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  appendFileSync(\${JSON.stringify(file)}, result.url + '\\\\n');
  return result;
}\`));
const require = createRequire(import.meta.url);
process.on('exit', () => appendFileSync(file, Object.keys(require.cache).map((p) => p + '\\n').join('')));
`,
);

/** What a command's implementation loads, and its definition must not. */
const HEAVY: ReadonlyArray<readonly [string, RegExp]> = [
  ['undici', /\/node_modules\/undici\//],
  ['@grpc/grpc-js', /\/node_modules\/@grpc\/grpc-js\//],
  ['ws', /\/node_modules\/ws\//],
  ['prom-client', /\/node_modules\/prom-client\//],
  ['node-forge', /\/node_modules\/node-forge\//],
  ['yaml', /\/node_modules\/yaml\//],
  ['@kubernetes/client-node', /\/node_modules\/@kubernetes\/client-node\//],
  ['the bundled Kubernetes client', /\/dist\/runtime\/kube\/client-node\.js$/],
];

let runs = 0;

/** Runs the built CLI under the recorder; returns its result and every module it loaded. */
async function runRecorded(args: string[], env: Record<string, string> = {}) {
  const loadsFile = join(dir, `loads-${runs++}.txt`);
  writeFileSync(loadsFile, '');
  const result = await runProcess(
    process.execPath,
    ['--import', pathToFileURL(recorder).href, CLI, ...args],
    {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env, CT_RECORD_LOADS_FILE: loadsFile },
      timeoutMs: 20_000,
    },
  );
  const loaded = readFileSync(loadsFile, 'utf8').split('\n').filter(Boolean);
  return { ...result, loaded, heavy: heavyIn(loaded) };
}

function heavyIn(loaded: readonly string[]): string[] {
  return HEAVY.filter(([, pattern]) => loaded.some((url) => pattern.test(url))).map(([name]) => name);
}

describe('CLI start-up loads no command implementation', () => {
  it.each([
    ['--help', ['--help'], 0],
    ['a usage error (unknown command)', ['no-such-command'], 2],
    ['a usage error (missing required flag)', ['source', 'register'], 2],
    ['target fingerprint --help', ['target', 'fingerprint', '--help'], 0],
    ['broker run --help', ['broker', 'run', '--help'], 0],
    ['bridge run --help', ['bridge', 'run', '--help'], 0],
    ['beacon serve --help', ['beacon', 'serve', '--help'], 0],
    // Checked before the OpenBao client loads (an outside tester measured these at twice the --help time).
    ['source list without a secret-store address', ['source', 'list'], 2],
    ['source list without a token', ['source', 'list', '--secretstore-address', 'http://127.0.0.1:9'], 2],
  ])('%s exits as before and loads none of the heavy modules', async (_name, args, code) => {
    const run = await runRecorded(args);
    expect(run.code, run.stderr).toBe(code);
    // The recorder saw the CLI itself: an empty record would pass vacuously.
    expect(run.loaded.some((url) => url.endsWith('/dist/runtime/cli/program.js'))).toBe(true);
    expect(run.loaded.some((url) => /\/node_modules\/commander\//.test(url))).toBe(true);
    expect(run.heavy).toEqual([]);
  });

  it('records the heavy modules a command loads when it runs (the recorder sees what the assertions rule out)', async () => {
    const policy = await runRecorded(['source', 'policy', 'bridge']);
    expect(policy.code, policy.stderr).toBe(0);
    expect(policy.heavy).toContain('node-forge');
    // Nothing listens on port 9: the OpenBao client (undici) is loaded, then fails to connect.
    const status = await runRecorded(
      ['source', 'status', '--fingerprint', FP, '--secretstore-address', 'http://127.0.0.1:9'],
      { CLOUDTASER_SECRETSTORE_TOKEN: 'root' },
    );
    expect(status.code, status.stderr).toBe(75);
    expect(status.heavy).toContain('undici');
  });
});
