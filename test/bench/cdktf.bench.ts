/**
 * `cdktf.synth_ms`: what RegisteredCluster adds to `cdktf synth`. Two figures, each beside a baseline measured
 * in the same run: warm (construct + synth inside one process, the part our code controls) and cold (a fresh
 * Node process that loads cdktf and our constructs and synthesizes, which is what `cdktf synth` pays per run).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, TerraformStack } from '../../constructs/cdktf.js';
import { OperatorInstall, RegisteredCluster } from '../../constructs/index.js';
import { type Benchmark, median, sample, sized } from './harness.js';

const settings = {
  secretstoreAddress: 'https://openbao.example.eu:8200',
  beaconAddress: 'beacon.example.eu:443',
  kubeconfig: '/tmp/kubeconfig',
};

function synthEmpty(outdir: string): void {
  const app = new App({ outdir });
  new TerraformStack(app, 'empty');
  app.synth();
}

/** The deploy test's app: our data source, the registration, no Helm release. */
function synthRegistration(outdir: string): void {
  const app = new App({ outdir });
  const stack = new TerraformStack(app, 'registration');
  new RegisteredCluster(stack, 'dev', {
    secretStore: { address: settings.secretstoreAddress },
    beacon: { address: settings.beaconAddress },
    kubernetes: { configPath: settings.kubeconfig },
    fingerprintSource: 'cloudtaser',
    operator: OperatorInstall.deployedElsewhere(),
  });
  app.synth();
}

/** The default form: hashicorp/kubernetes fingerprint read and the operator Helm release. */
function synthWithHelm(outdir: string): void {
  const app = new App({ outdir });
  const stack = new TerraformStack(app, 'registration');
  new RegisteredCluster(stack, 'prod', {
    secretStore: { address: settings.secretstoreAddress },
    beacon: { address: settings.beaconAddress },
    kubernetes: { host: 'https://203.0.113.10', exec: { command: 'gke-gcloud-auth-plugin' } },
  });
  app.synth();
}

/** A fresh `node` that imports cdktf (and our constructs when `withConstructs`) and synthesizes. */
function coldSynth(outdir: string, withConstructs: boolean): void {
  const cdktfUrl = import.meta.resolve('cdktf');
  const constructsUrl = new URL('../../constructs/index.js', import.meta.url).href;
  const script = withConstructs
    ? `const { App, TerraformStack } = await import(${JSON.stringify(cdktfUrl)});
       const { RegisteredCluster, OperatorInstall } = await import(${JSON.stringify(constructsUrl)});
       const app = new App({ outdir: ${JSON.stringify(outdir)} });
       const stack = new TerraformStack(app, 'registration');
       new RegisteredCluster(stack, 'dev', { secretStore: { address: 'https://o.example.eu' }, beacon: { address: 'b.example.eu:443' },
         kubernetes: { configPath: '/tmp/k' }, fingerprintSource: 'cloudtaser', operator: OperatorInstall.deployedElsewhere() });
       app.synth();`
    : `const { App, TerraformStack } = await import(${JSON.stringify(cdktfUrl)});
       const app = new App({ outdir: ${JSON.stringify(outdir)} });
       new TerraformStack(app, 'empty');
       app.synth();`;
  execFileSync(process.execPath, ['--input-type=module', '-e', script], { stdio: 'pipe' });
}

export const benchmarks: Benchmark[] = [
  {
    name: 'cdktf',
    async run(ctx) {
      const scratch = mkdtempSync(join(tmpdir(), 'ct-bench-cdktf-'));
      try {
        let n = 0;
        const out = () => join(scratch, String(n++));
        const warmRuns = sized(ctx, 60, 15, 3);
        const empty = median(await sample(warmRuns, () => synthEmpty(out())));
        const registration = median(await sample(warmRuns, () => synthRegistration(out())));
        const withHelm = median(await sample(warmRuns, () => synthWithHelm(out())));
        // Interleaved, so machine drift hits both series alike.
        const coldRuns = sized(ctx, 12, 4, 1);
        const coldEmptyRuns: number[] = [];
        const coldRegistrationRuns: number[] = [];
        coldSynth(out(), true);
        for (let i = 0; i < coldRuns; i++) {
          coldEmptyRuns.push(timed(() => coldSynth(out(), false)));
          coldRegistrationRuns.push(timed(() => coldSynth(out(), true)));
        }
        const coldEmpty = median(coldEmptyRuns);
        const coldRegistration = median(coldRegistrationRuns);
        ctx.log(
          `cdktf: synth ${registration.toFixed(1)} ms (with helm release ${withHelm.toFixed(1)} ms) vs empty stack ${empty.toFixed(1)} ms; ` +
            `cold process ${coldRegistration.toFixed(0)} ms vs ${coldEmpty.toFixed(0)} ms`,
        );
        return [
          {
            name: 'cdktf.synth_ms',
            value: registration,
            unit: 'ms',
            baseline: empty,
            baselineLabel: 'synth of an empty stack, same process',
            ratio: registration / empty,
            extra: { with_helm_release_ms: round(withHelm) },
          },
          {
            name: 'cdktf.synth_cold_ms',
            value: coldRegistration,
            unit: 'ms',
            baseline: coldEmpty,
            baselineLabel: 'fresh node: import cdktf + synth an empty stack',
            ratio: coldRegistration / coldEmpty,
            // Our constructs must not make a synth run noticeably slower than cdktf itself.
            goal: { op: '<=', limit: 1.5, on: 'ratio' },
          },
        ];
      } finally {
        rmSync(scratch, { recursive: true, force: true });
      }
    },
  },
];

function timed(fn: () => void): number {
  const started = performance.now();
  fn();
  return performance.now() - started;
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
