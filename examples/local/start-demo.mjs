#!/usr/bin/env node
// `npm run demo`: builds only when a source is newer than the last build (a fresh clone's `npm ci` has just built),
// then runs the compiled demo with the same arguments. Plain JavaScript, so it runs before anything is compiled.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
// The build's last output (tsc, then the bundles): older than any source means the build is stale.
const lastOutput = join(root, 'dist/provider/terraform-provider-cloudtaser.cjs');
const demo = join(root, 'dist/examples/local/demo.js');

function newestSource() {
  let newest = { path: '', mtimeMs: 0 };
  const consider = (path) => {
    const { mtimeMs } = statSync(path);
    if (mtimeMs > newest.mtimeMs) newest = { path, mtimeMs };
  };
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory() && entry.name !== 'node_modules' && entry.name !== 'charts') walk(path);
      else if (entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts'))
        consider(path);
    }
  };
  for (const dir of ['runtime', 'provider', 'constructs', 'examples/local']) walk(join(root, dir));
  for (const file of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json'])
    consider(join(root, file));
  return newest;
}

const built = existsSync(lastOutput) && existsSync(demo) ? statSync(lastOutput).mtimeMs : 0;
const source = newestSource();
if (built < source.mtimeMs) {
  process.stderr.write(
    built === 0
      ? 'demo: no build yet; running npm run build\n'
      : `demo: ${source.path.slice(root.length + 1)} changed since the last build; running npm run build\n`,
  );
  const build = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
  if (build.status !== 0) process.exit(build.status ?? 1);
} else {
  process.stderr.write('demo: dist/ is newer than every source; no build needed\n');
}
const run = spawnSync(process.execPath, [demo, ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(run.status ?? 1);
