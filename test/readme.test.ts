/**
 * test/README.md is the map a newcomer reads first: every path it names exists, every folder of test/ is on it,
 * and every CLOUDTASER_TEST_ variable a test reads is explained there.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const testDir = import.meta.dirname;
const root = resolve(testDir, '..');
const readme = readFileSync(join(testDir, 'README.md'), 'utf8');
const quoted = [...readme.matchAll(/`([^`\s]+)`/g)].map((m) => m[1]);
/** Named on purpose although they are not in the tree: build output, a system binary, folders said to be absent. */
const NOT_IN_TREE = new Set([
  'dist/',
  'dist/test/bench/run.js',
  '/usr/local/bin/terraform',
  'test/bridge/',
  'test/broker/',
]);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? sourceFiles(join(dir, entry.name))
      : entry.name.endsWith('.ts')
        ? [join(dir, entry.name)]
        : [],
  );
}

describe('test/README.md', () => {
  it('names only paths that exist, relative to test/ or to the repository', () => {
    const paths = quoted.filter((q) => q.includes('/') && !/[*(]/.test(q) && !NOT_IN_TREE.has(q));
    expect(paths.length).toBeGreaterThan(50);
    const missing = paths.filter((p) => !existsSync(join(testDir, p)) && !existsSync(join(root, p)));
    expect(missing).toEqual([]);
  });

  it('lists every folder of test/', () => {
    const folders = readdirSync(testDir, { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name);
    const unlisted = folders.filter((f) => !quoted.some((q) => q === `test/${f}/` || q.startsWith(`${f}/`)));
    expect(unlisted).toEqual([]);
  });

  it('explains every CLOUDTASER_TEST_ variable the tests read', () => {
    const read = new Set(
      sourceFiles(testDir).flatMap((file) =>
        [...readFileSync(file, 'utf8').matchAll(/process\.env\.(CLOUDTASER_TEST_[A-Z_]+)/g)].map((m) => m[1]),
      ),
    );
    expect(read.size).toBeGreaterThan(5);
    expect([...read].filter((name) => !readme.includes(`\`${name}\``))).toEqual([]);
  });
});
