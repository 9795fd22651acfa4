/**
 * The package the way a user meets it: `npm pack`, then `npm install --omit=dev` of the tarball into an empty
 * folder (no dev dependencies, no peer dependencies), then every entry point a user or an image starts.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProcess } from '../run-process.js';
import {
  diskUsageKiB,
  npmInstall,
  type PackedTarball,
  packTarball,
  REPO,
  runModule,
  SYNTH_REGISTERED_CLUSTER,
  typecheckConsumer,
} from './install.js';

/** The CLI-only install's goal (issue 12): what `du -sh node_modules` shows must stay at or below this. */
const CLI_INSTALL_GOAL_MIB = 60;

const work = mkdtempSync(join(tmpdir(), 'ct-packed-'));
const cliOnly = join(work, 'cli-only');
const withCdktf = join(work, 'with-cdktf');
let tarball: PackedTarball;

// Hundreds of MB of node_modules: removing them can take a while on a busy machine.
afterAll(() => rm(work, { recursive: true, force: true }), 300_000);

beforeAll(async () => {
  tarball = await packTarball(join(work, 'tarball'));
  await npmInstall(cliOnly, [tarball.path]);
}, 300_000);

const bin = (dir: string, name: string) => join(dir, 'node_modules', '.bin', name);
const run = (dir: string, name: string, args: string[], env: NodeJS.ProcessEnv = {}) =>
  runProcess(process.execPath, [bin(dir, name), ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    timeoutMs: 30_000,
  });

describe('the tarball', () => {
  it('ships the three entry points, both bins, the provider bundle, the charts and the project documents', () => {
    for (const file of [
      'package.json',
      'README.md',
      'LICENSE',
      'CHANGELOG.md',
      'SECURITY.md',
      'dist/runtime/index.js',
      'dist/runtime/index.d.ts',
      'dist/provider/index.js',
      'dist/constructs/index.js',
      'dist/runtime/cli/main.js',
      'dist/provider/main.js',
      'dist/provider/terraform-provider-cloudtaser.cjs',
      'runtime/charts/cloudtaser/Chart.yaml',
      'runtime/charts/cloudtaser-beacon/values.schema.json',
      'runtime/charts/cloudtaser-bridge/templates/deployment.yaml',
    ])
      expect(tarball.files, file).toContain(file);
  });

  it('ships every file its documents link to (a user with only the tarball can follow each link)', () => {
    const shipped = new Set(tarball.files);
    const documents = tarball.files.filter((f) => f.endsWith('.md'));
    const broken: string[] = [];
    for (const document of documents) {
      const text = readFileSync(join(cliOnly, 'node_modules', 'cloudtaser', document), 'utf8');
      for (const match of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = match[1]!.split('#')[0]!;
        if (target === '' || /^[a-z]+:/i.test(target)) continue;
        const resolved = join(document, '..', target).replace(/\/$/, '');
        const found = shipped.has(resolved) || [...shipped].some((f) => f.startsWith(`${resolved}/`));
        if (!found) broken.push(`${document} -> ${target}`);
      }
    }
    // Before: README linked constructs/README.md, examples/local/README.md, runtime/beacon/PROTOCOL.md,
    // runtime/images/README.md and test/README.md, none of them in the package.
    expect(broken).toEqual([]);
  });

  it('ships no test code, no examples, no build-only scripts and no source map without its source', () => {
    const unwanted = tarball.files.filter(
      (f) =>
        f.startsWith('dist/test/') ||
        f.startsWith('dist/examples/') ||
        /\.test\.(js|d\.ts)$/.test(f) ||
        f.startsWith('dist/constructs/bindings/generate.') ||
        f.startsWith('dist/constructs/bindings/generator/') ||
        /bundle-client-node\./.test(f) ||
        f.endsWith('biome.json'),
    );
    expect(unwanted).toEqual([]);
    const maps = tarball.files.filter((f) => f.endsWith('.map'));
    const orphans = maps.filter(
      (m) => !tarball.files.includes(m.replace(/^dist\//, '').replace(/\.js\.map$/, '.ts')),
    );
    expect(orphans).toEqual([]);
    // No compiled file points at a map that is not there either.
    const js = tarball.files.filter((f) => f.endsWith('.js'));
    const dangling = js.filter((f) => {
      const text = readFileSync(join(cliOnly, 'node_modules', 'cloudtaser', f), 'utf8');
      const ref = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(text)?.[1];
      return ref !== undefined && !ref.startsWith('data:') && !maps.includes(join(f, '..', ref));
    });
    expect(dangling).toEqual([]);
  });

  it('declares its metadata: license, repository, homepage, bugs, keywords, engines and peers', () => {
    const pkg = JSON.parse(readFileSync(join(cliOnly, 'node_modules', 'cloudtaser', 'package.json'), 'utf8'));
    expect(pkg.license).toBe('Apache-2.0');
    expect(readFileSync(join(cliOnly, 'node_modules', 'cloudtaser', 'LICENSE'), 'utf8')).toContain(
      'Apache License',
    );
    expect(pkg.repository.url).toMatch(/^git\+https:\/\//);
    expect(pkg.homepage).toMatch(/^https:\/\//);
    expect(pkg.bugs.url).toMatch(/^https:\/\//);
    expect(pkg.keywords).toEqual(
      expect.arrayContaining(['openbao', 'kubernetes', 'terraform', 'cdktf', 'cdktn']),
    );
    expect(pkg.engines.node).toBe('>=20.18');
    expect(Object.keys(pkg.peerDependencies).sort()).toEqual(['cdktf', 'cdktn', 'constructs']);
    for (const peer of Object.keys(pkg.peerDependencies))
      expect(pkg.peerDependenciesMeta[peer].optional).toBe(true);
    for (const heavy of [
      'cdktf',
      'constructs',
      '@cdktf/provider-helm',
      '@kubernetes/client-node',
      'protobufjs',
    ])
      expect(pkg.dependencies[heavy], heavy).toBeUndefined();
    expect(pkg.dependencies['node-forge']).toBeDefined();
  });
});

describe('a CLI-only install (npm install --omit=dev of the tarball, no peers)', () => {
  it(`takes at most ${CLI_INSTALL_GOAL_MIB} MB of node_modules`, () => {
    const kib = diskUsageKiB(join(cliOnly, 'node_modules'));
    const packages = readdirSync(join(cliOnly, 'node_modules')).filter((n) => !n.startsWith('.'));
    process.stdout.write(
      `[packed-install] du -sk node_modules of a CLI-only install: ${kib} KiB (${(kib / 1024).toFixed(1)} MiB; goal <= ${CLI_INSTALL_GOAL_MIB} MiB), ${packages.length} top-level entries\n`,
    );
    expect(kib / 1024).toBeLessThanOrEqual(CLI_INSTALL_GOAL_MIB);
    for (const absent of ['cdktf', 'constructs', '@cdktf', '@kubernetes'])
      expect(packages, `${absent} is not installed`).not.toContain(absent);
  });

  it('imports cloudtaser/runtime and cloudtaser/provider in plain Node', async () => {
    const result = await runModule(
      cliOnly,
      `const r = await import('cloudtaser/runtime'); const p = await import('cloudtaser/provider');
       process.stdout.write([typeof r.registerCluster, typeof r.createBeacon, r.initHash('0ad50c05-1153-4508-9237-4cb2912e2c23'), typeof p.createCloudtaserProvider, p.PROVIDER_ADDRESS].join(','));`,
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout.split(',')).toEqual([
      'function',
      'function',
      '5af11b82299622a908c5aa10383bfcfd84f6cd251c7094e2246c7daf419dc463',
      'function',
      'registry.terraform.io/cloudtaser/cloudtaser',
    ]);
  });

  it('type-checks a TypeScript user of cloudtaser/runtime and cloudtaser/provider with skipLibCheck off', async () => {
    // The declarations once re-exported @kubernetes/client-node's types, a package installs do not carry.
    const result = await typecheckConsumer(
      cliOnly,
      `import * as runtime from 'cloudtaser/runtime';
       import * as provider from 'cloudtaser/provider';
       const client: runtime.KubeClient | undefined = undefined;
       export const used: unknown[] = [runtime.registerCluster, provider.createCloudtaserProvider, client];\n`,
    );
    expect(result.stdout + result.stderr).toBe('');
    expect(result.code).toBe(0);
  }, 120_000);

  it('refuses cloudtaser/constructs with one line naming the peer dependencies to install', async () => {
    const result = await runModule(
      cliOnly,
      `try { await import('cloudtaser/constructs'); } catch (err) { process.stdout.write(err.code + '|' + err.message); }`,
    );
    const [code, message] = result.stdout.split('|');
    expect(code).toBe('CT_PEER_DEPENDENCY_MISSING');
    expect(message).toMatch(/^CT_PEER_DEPENDENCY_MISSING: cloudtaser\/constructs needs CDK for Terraform/);
    expect(message).toContain('npm install cdktf@^0.21 constructs@^10.4');
    expect(message).toContain('cdktn@^0.24');
    expect(message.split('\n')).toHaveLength(1);
  });

  it('runs cloudtaser-cli --help and terraform-provider-cloudtaser --help, both exiting 0', async () => {
    const cli = await run(cliOnly, 'cloudtaser-cli', ['--help']);
    expect(cli.stderr).toBe('');
    expect(cli.code).toBe(0);
    expect(cli.stdout).toMatch(/^Usage: cloudtaser-cli/);
    const provider = await run(cliOnly, 'terraform-provider-cloudtaser', ['--help']);
    expect(provider.code).toBe(0);
    expect(provider.stdout).toMatch(/^Usage: terraform-provider-cloudtaser/);
    // The single-file bundle Terraform runs from a mirror needs nothing from node_modules' dev side either.
    const bundle = join(
      cliOnly,
      'node_modules',
      'cloudtaser',
      'dist',
      'provider',
      'terraform-provider-cloudtaser.cjs',
    );
    const version = await runProcess(process.execPath, [bundle, '--version'], {
      env: { PATH: process.env.PATH },
    });
    expect(version.stdout.trim()).toBe('terraform-provider-cloudtaser 0.2.0');
  });

  it('runs dev up --json, reads the dev cluster through the bundled kubeconfig loader, and stops cleanly', async () => {
    const child = spawn(process.execPath, [bin(cliOnly, 'cloudtaser-cli'), 'dev', 'up', '--json'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
    });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    try {
      const line: string = await new Promise((resolve, reject) => {
        createInterface({ input: child.stdout }).once('line', resolve);
        child.once('exit', (code) => reject(new Error(`dev up exited ${code}: ${stderr}`)));
      });
      const info = JSON.parse(line);
      expect(info.secretstoreAddress).toMatch(/^http/);
      const fingerprint = await run(cliOnly, 'cloudtaser-cli', [
        'target',
        'fingerprint',
        '--kubeconfig',
        info.kubeconfig,
        '--output',
        'json',
      ]);
      expect(fingerprint.stderr).toBe('');
      expect(JSON.parse(fingerprint.stdout).fingerprint).toBe(info.kubeSystemUid);
    } finally {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const [code] = await exited;
      expect(code, stderr).toBe(0);
    }
  }, 60_000);

  it.each(['operator', 'beacon', 'bridge'])(
    "starts the %s image's entry point and command with --help from the install",
    async (image) => {
      const dockerfile = readFileSync(join(REPO, 'runtime', 'images', `Dockerfile.${image}`), 'utf8');
      // The image holds the packed tarball's files with the runtime dependencies (no dev dependencies) at the
      // versions package-lock.json pins: the same package and dependency set as this install.
      expect(dockerfile).toMatch(/npm pack --ignore-scripts/);
      expect(dockerfile).toMatch(/npm prune --omit=dev/);
      expect(dockerfile).toMatch(
        /tar -xzf \/out\/cloudtaser-\*\.tgz --strip-components=1 -C \/app\/node_modules\/cloudtaser/,
      );
      const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)![1]) as string[];
      const command = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)![1]) as string[];
      expect(entrypoint[0]).toBe('/nodejs/bin/node');
      const script = entrypoint[1].replace(/^\/app\//, `${cliOnly}/`);
      const result = await runProcess(process.execPath, [script, ...command, '--help'], {
        env: { PATH: process.env.PATH, HOME: process.env.HOME },
        timeoutMs: 30_000,
      });
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(result.stdout).toContain(`Usage: cloudtaser-cli ${command.join(' ')}`);
    },
  );
});

describe('an install with the cdktf peer dependencies', () => {
  beforeAll(async () => {
    await npmInstall(withCdktf, [tarball.path, 'cdktf@^0.21.0', 'constructs@^10.4.2']);
  }, 300_000);

  it('synthesizes a RegisteredCluster (fingerprint data source and operator release) without any @cdktf/provider-* package', async () => {
    const result = await runModule(withCdktf, SYNTH_REGISTERED_CLUSTER);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const { cdkLibrary, stack } = JSON.parse(result.stdout);
    expect(cdkLibrary).toBe('cdktf');
    expect(Object.keys(stack.data.kubernetes_namespace)).toHaveLength(1);
    expect(Object.values(stack.resource.helm_release)).toHaveLength(1);
    expect(Object.keys(stack.resource.cloudtaser_cluster_registration)).toHaveLength(1);
    expect(readdirSync(join(withCdktf, 'node_modules'))).not.toContain('@cdktf');
    const kib = diskUsageKiB(join(withCdktf, 'node_modules'));
    process.stdout.write(`[packed-install] du -sk node_modules with cdktf + constructs: ${kib} KiB\n`);
  });

  it('type-checks a TypeScript user of cloudtaser/constructs with skipLibCheck off', async () => {
    const result = await typecheckConsumer(
      withCdktf,
      `import { RegisteredCluster, Beacon, Bridge } from 'cloudtaser/constructs';
       export const used: unknown[] = [RegisteredCluster, Beacon, Bridge];\n`,
    );
    expect(result.stdout + result.stderr).toBe('');
    expect(result.code).toBe(0);
  }, 120_000);
});
