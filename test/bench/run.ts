/**
 * `npm run bench [-- --quick] [-- --json FILE]`: runs every `*.bench.js` beside this file and writes a JSON
 * report, a markdown table and an SVG chart. Each figure is printed next to its same-run baseline.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type Benchmark, goalMet, type Metric } from './harness.js';
import { renderMarkdown, renderSvg } from './report.js';

const args = process.argv.slice(2);
const smoke = args.includes('--smoke');
const quick = smoke || args.includes('--quick');
const jsonIndex = args.indexOf('--json');
const jsonPath = jsonIndex >= 0 ? args[jsonIndex + 1] : 'bench-report.json';
const only = args.find((a) => a.startsWith('--only='))?.slice('--only='.length);

const here = dirname(fileURLToPath(import.meta.url));
const files = (await readdir(here)).filter((f) => f.endsWith('.bench.js')).sort();
const metrics: Metric[] = [];
const failures: string[] = [];
const log = (message: string) => process.stderr.write(`${message}\n`);

for (const file of files) {
  const mod = (await import(pathToFileURL(join(here, file)).href)) as { benchmarks?: Benchmark[] };
  for (const bench of mod.benchmarks ?? []) {
    if (only && !bench.name.startsWith(only)) continue;
    const started = Date.now();
    log(`== ${bench.name} (${file})`);
    try {
      metrics.push(...(await bench.run({ quick, smoke, log })));
    } catch (err) {
      failures.push(`${bench.name}: ${(err as Error).stack ?? err}`);
      log(`!! ${bench.name} failed: ${(err as Error).message}`);
    }
    log(`   ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
}

const report = {
  generatedAt: new Date().toISOString(),
  quick,
  smoke,
  machine: { node: process.version, cpus: (await import('node:os')).cpus().length },
  metrics: Object.fromEntries(
    metrics.map((m) => [
      m.name,
      {
        value: round(m.value),
        unit: m.unit,
        ...(m.baseline === undefined
          ? {}
          : {
              baseline: round(m.baseline),
              baselineLabel: m.baselineLabel,
              baselineUnit: m.baselineUnit ?? m.unit,
            }),
        ...(m.ratio === undefined ? {} : { ratio: round(m.ratio) }),
        ...(m.goal ? { goal: `${m.goal.on} ${m.goal.op} ${m.goal.limit}`, met: goalMet(m) } : {}),
        ...(m.extra ? { extra: m.extra } : {}),
      },
    ]),
  ),
  failures,
};
await mkdir(dirname(resolvePath(jsonPath)), { recursive: true });
await writeFile(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
const markdown = renderMarkdown(metrics);
await writeFile(jsonPath.replace(/\.json$/, '') + '.md', markdown);
await writeFile(jsonPath.replace(/\.json$/, '') + '.svg', renderSvg(metrics));
process.stdout.write(markdown);
process.stdout.write(`\nreport: ${jsonPath} (+ .md, .svg)\n`);
if (failures.length > 0) {
  process.stderr.write(`${failures.length} benchmark(s) failed to run\n`);
  process.exitCode = 1;
}
// The report is written: a benchmark that failed half-way may have left a child process or a socket behind, and the
// run must end anyway (it once hung after its report until killed).
process.exit();

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}
