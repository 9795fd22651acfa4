/**
 * Provider benchmarks.
 * - provider.handshake_ms: spawn of the bundle (exactly as Terraform does it, with AutoMTLS) to the handshake
 *   line; baseline = spawn of `node -e 0`-equivalent that prints one line (the floor: Node's own start-up,
 *   which no provider written for Node can go below). Goal: median <= 150 ms.
 * - provider.apply_ms: `terraform apply` registering one cluster through the filesystem mirror (terraform
 *   spawns the provider itself, 4 processes per apply), beside `terraform apply` of an empty configuration
 *   measured in the same run. Goal: ratio <= 5. Two floors from the same run are reported beside it: the Node
 *   floor (empty apply + 4 x `node -e 0`) and the framework floor: the same configuration shape applied through
 *   floor-provider.ts, a provider built like ours (plugin process, gRPC, AutoMTLS, framework, bundle) whose one
 *   resource does nothing. The registration's own work is the difference to the latter.
 * - provider.apply_20_ms: 20 registrations in one apply; goal <= 2x one registration.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { BUNDLE_FILE_NAME, buildProviderBundle, packageRoot } from '../../provider/packaging/bundle.js';
import { installProviderMirror } from '../../provider/packaging/mirror.js';
import { createAutoMtlsCertificate } from '../../provider/wire/automtls-cert.js';
import { MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE } from '../../provider/wire/serve.js';
import { startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { createWorkspace } from '../provider/support/terraform.js';
import { type BenchContext, type Benchmark, type Metric, median, percentile, sized } from './harness.js';

/** Bundles floor-provider.ts (built into dist/test/bench by `npm run bench`) as the real bundle is built. */
async function floorBundlePath(): Promise<string> {
  const entry = join(packageRoot(), 'dist', 'test', 'bench', 'floor-provider.js');
  const outfile = join(mkdtempSync(join(tmpdir(), 'ct-bench-floor-')), BUNDLE_FILE_NAME);
  return (await buildProviderBundle({ entry, outfile })).outfile;
}

async function bundlePath(): Promise<string> {
  const built = join(packageRoot(), 'dist', 'provider', BUNDLE_FILE_NAME);
  if (existsSync(built)) return built;
  return (
    await buildProviderBundle({ outfile: join(mkdtempSync(join(tmpdir(), 'ct-bench-')), BUNDLE_FILE_NAME) })
  ).outfile;
}

function timeToFirstLine(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'ignore'] });
    let done = false;
    child.stdout.on('data', () => {
      if (done) return;
      done = true;
      resolve(performance.now() - started);
      child.kill('SIGKILL');
    });
    child.on('exit', (code) => {
      if (!done) reject(new Error(`${command} exited with ${code} before printing a line`));
    });
  });
}

const handshake: Benchmark = {
  name: 'provider.handshake',
  async run(ctx: BenchContext): Promise<Metric[]> {
    const bundle = await bundlePath();
    const env = {
      PATH: process.env.PATH,
      [MAGIC_COOKIE_KEY]: MAGIC_COOKIE_VALUE,
      PLUGIN_PROTOCOL_VERSIONS: '5,6',
      PLUGIN_CLIENT_CERT: createAutoMtlsCertificate().certPem,
    };
    const runs = sized(ctx, 30, 8, 2);
    const provider: number[] = [];
    const baseline: number[] = [];
    await timeToFirstLine(bundle, [], env); // warm the page cache
    for (let i = 0; i < runs; i++) {
      provider.push(await timeToFirstLine(bundle, [], env));
      baseline.push(await timeToFirstLine(process.execPath, ['-e', 'process.stdout.write("x\\n")'], env));
    }
    const value = median(provider);
    const base = median(baseline);
    ctx.log(`provider.handshake_ms median ${value.toFixed(0)} ms (node -e 0: ${base.toFixed(0)} ms)`);
    return [
      {
        name: 'provider.handshake_ms',
        value,
        unit: 'ms',
        baseline: base,
        baselineLabel: 'node -e 0 (spawn to first line)',
        ratio: value / base,
        goal: { op: '<=', limit: 150, on: 'value' },
        extra: { p90: percentile(provider, 90), floor_p90: percentile(baseline, 90), runs },
      },
    ];
  },
};

function registrations(count: number, type = 'cloudtaser_cluster_registration'): string {
  const blocks = Array.from(
    { length: count },
    (_, i) => `resource "${type}" "c${i}" {\n  fingerprint = "${randomUUID()}"\n}\n`,
  );
  return `terraform {\n  required_providers {\n    cloudtaser = { source = "registry.terraform.io/cloudtaser/cloudtaser" }\n  }\n}\nprovider "cloudtaser" {}\n${blocks.join('')}`;
}

/** Provider processes Terraform 1.11 starts for `apply -auto-approve` (reference: terraform-plugin-in-node.md 1.6). */
const PROCESSES_PER_APPLY = 4;

const apply: Benchmark = {
  name: 'provider.apply',
  async run(ctx: BenchContext): Promise<Metric[]> {
    const bundle = await bundlePath();
    const floorBundle = await floorBundlePath();
    const mirror = mkdtempSync(join(tmpdir(), 'ct-bench-mirror-'));
    const floorMirror = mkdtempSync(join(tmpdir(), 'ct-bench-floor-mirror-'));
    const openbao = await startOpenBaoTestServer();
    const installed = installProviderMirror(mirror, { bundlePath: bundle, platforms: ['linux_amd64'] });
    const floorInstalled = installProviderMirror(floorMirror, {
      bundlePath: floorBundle,
      platforms: ['linux_amd64'],
    });
    // One cache directory for every run, as a user's ~/.cache is: the provider keeps its V8 code cache there
    // (provider/packaging/chunk-loader.ts). A warm-up apply fills it; a cold apply is reported beside.
    const cacheHome = mkdtempSync(join(tmpdir(), 'ct-bench-cache-'));
    const workspace = (floor: boolean) =>
      createWorkspace({
        cliConfig: `disable_checkpoint = true\n${(floor ? floorInstalled : installed).cliConfig}`,
        env: {
          CLOUDTASER_SECRETSTORE_ADDRESS: openbao.address,
          CLOUDTASER_SECRETSTORE_TOKEN: openbao.rootToken,
          XDG_CACHE_HOME: cacheHome,
        },
      });
    const runs = sized(ctx, 5, 2, 1);
    const timeApply = async (config: string | undefined, floor = false): Promise<number> => {
      const ws = workspace(floor);
      try {
        ws.write('main.tf', config ?? '');
        if (config) {
          const init = await ws.run(['init', '-no-color']);
          if (init.code !== 0) throw new Error(`terraform init failed: ${init.stderr}`);
        }
        const r = await ws.run(['apply', '-auto-approve', '-no-color']);
        if (r.code !== 0) throw new Error(`terraform apply failed: ${r.stderr}`);
        return r.ms;
      } finally {
        ws.dispose();
      }
    };
    const empty: number[] = [];
    const one: number[] = [];
    const twenty: number[] = [];
    const nodeStart: number[] = [];
    const frameworkFloor: number[] = [];
    let coldMs = 0;
    try {
      coldMs = await timeApply(registrations(1));
      await timeApply(registrations(1, 'cloudtaser_floor'), true); // the same warm-up for the floor
      for (let i = 0; i < runs; i++) {
        empty.push(await timeApply(undefined));
        frameworkFloor.push(await timeApply(registrations(1, 'cloudtaser_floor'), true));
        for (let j = 0; j < 3; j++) {
          nodeStart.push(await timeToFirstLine(process.execPath, ['-e', 'process.stdout.write("x\\n")'], {}));
        }
        one.push(await timeApply(registrations(1)));
        twenty.push(await timeApply(registrations(20)));
      }
    } finally {
      await openbao.close();
      rmSync(mirror, { recursive: true, force: true });
      rmSync(floorMirror, { recursive: true, force: true });
      rmSync(dirname(floorBundle), { recursive: true, force: true });
      rmSync(cacheHome, { recursive: true, force: true });
    }
    const oneMs = median(one);
    const twentyMs = median(twenty);
    // Terraform starts the provider 4 times per apply (schema, validate, plan walk, apply walk); each start pays
    // at least Node's own start-up. No Node provider can go below empty apply + 4 x `node -e 0`.
    const floorMs = median(empty) + PROCESSES_PER_APPLY * median(nodeStart);
    const frameworkFloorMs = median(frameworkFloor);
    ctx.log(
      `provider.apply_ms ${oneMs.toFixed(0)} ms (empty apply ${median(empty).toFixed(0)} ms, Node floor ${floorMs.toFixed(0)} ms = empty + ${PROCESSES_PER_APPLY} x node -e 0, framework floor ${frameworkFloorMs.toFixed(0)} ms = one do-nothing resource through a provider built like ours); 20 registrations ${twentyMs.toFixed(0)} ms`,
    );
    return [
      {
        name: 'provider.apply_ms',
        value: oneMs,
        unit: 'ms',
        baseline: median(empty),
        baselineLabel: 'terraform apply of an empty configuration',
        ratio: oneMs / median(empty),
        goal: { op: '<=', limit: 5, on: 'ratio' },
        extra: {
          runs,
          cold_code_cache_ms: Math.round(coldMs),
          node_floor_ms: Math.round(floorMs),
          floor_ratio_to_empty: Number((floorMs / median(empty)).toFixed(2)),
          ratio_to_node_floor: Number((oneMs / floorMs).toFixed(2)),
          framework_floor_ms: Math.round(frameworkFloorMs),
          framework_floor_ratio_to_empty: Number((frameworkFloorMs / median(empty)).toFixed(2)),
        },
      },
      {
        // No goal of its own: it says how far above a provider that does nothing the registration is, i.e. what
        // its OpenBao work, key generation and plan-time check cost once Terraform and Node are paid for.
        name: 'provider.apply_to_framework_floor',
        value: oneMs,
        unit: 'ms',
        baseline: frameworkFloorMs,
        baselineLabel:
          'terraform apply of one do-nothing resource through a provider built like ours (floor-provider.ts)',
        ratio: oneMs / frameworkFloorMs,
        extra: { runs, registration_work_ms: Math.round(oneMs - frameworkFloorMs) },
      },
      {
        name: 'provider.apply_20_ms',
        value: twentyMs,
        unit: 'ms',
        baseline: oneMs,
        baselineLabel: 'terraform apply registering one cluster',
        ratio: twentyMs / oneMs,
        goal: { op: '<=', limit: 2, on: 'ratio' },
        extra: { runs },
      },
    ];
  },
};

export const benchmarks: Benchmark[] = [handshake, apply];
