/**
 * The built `cloudtaser-cli` that real-process tests start (`npm test` builds it first). When it is missing the test
 * file fails at once and says what to run, instead of skipping: a skipped attack test looks like a passing one.
 * CLOUDTASER_TEST_DIST points at another output folder of `tsc -p tsconfig.build.json` (e.g. main's build, to run
 * today's attacks against yesterday's code).
 */
import { existsSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';

/** The repository: two folders up from the source, three from its compiled copy (the benchmarks run that). */
export const root = resolve(
  import.meta.dirname,
  import.meta.dirname.includes(`${sep}dist${sep}`) ? '../../..' : '../..',
);

/** The build under test. */
export const dist = process.env.CLOUDTASER_TEST_DIST ?? join(root, 'dist');

/** Path of the built CLI; throws with the command to run when there is no build. */
export function builtCli(): string {
  const cli = join(dist, 'runtime/cli/main.js');
  if (!existsSync(cli))
    throw new Error(`${cli} is missing: run \`npm run build\` first (\`npm test\` builds before it tests)`);
  return cli;
}
