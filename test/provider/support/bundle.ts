/**
 * Builds the provider bundle once per test file into a temp dir (or uses CLOUDTASER_TEST_PROVIDER_BUNDLE),
 * so tests run the very file users get, spawned the way Terraform spawns it.
 */
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildProviderBundle } from '../../../provider/packaging/bundle.js';

let built: Promise<string> | undefined;
const outDir = join(tmpdir(), `ct-provider-test-${process.pid}`);
process.on('exit', () => rmSync(outDir, { recursive: true, force: true }));

export function testBundle(): Promise<string> {
  const given = process.env.CLOUDTASER_TEST_PROVIDER_BUNDLE;
  if (given) return Promise.resolve(given);
  built ??= buildProviderBundle({
    root: process.env.CLOUDTASER_TEST_BUNDLE_ROOT,
    entry: process.env.CLOUDTASER_TEST_BUNDLE_ROOT
      ? undefined
      : join(import.meta.dirname, '..', '..', '..', 'provider', 'main.ts'),
    outfile: join(outDir, 'terraform-provider-cloudtaser.cjs'),
  }).then((b) => b.outfile);
  return built;
}
