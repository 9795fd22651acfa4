/**
 * Build step (`npm run build`, after tsc): replaces `dist/runtime/kube/client-node.js` with one ESM file holding
 * the parts of @kubernetes/client-node that KubeConfig uses, so the published package does not depend on it.
 * esbuild is a dev dependency; this file is not shipped.
 */
import { statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export async function bundleClientNode(
  distKubeDir = dirname(fileURLToPath(import.meta.url)),
): Promise<number> {
  const target = join(distKubeDir, 'client-node.js');
  const esbuild = await import('esbuild');
  await esbuild.build({
    entryPoints: [target],
    outfile: target,
    allowOverwrite: true,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    minify: true,
    legalComments: 'eof',
    logLevel: 'error',
    // Optional native speed-ups that ws loads inside try/catch; bufferutil is our own dependency.
    external: ['bufferutil', 'utf-8-validate'],
    // CommonJS dependencies call require(); an ESM file has none of its own.
    banner: {
      js: "import { createRequire as __ctCreateRequire } from 'node:module';\nconst require = __ctCreateRequire(import.meta.url);",
    },
  });
  return statSync(target).size;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  bundleClientNode().then(
    (bytes) =>
      process.stderr.write(
        `bundled @kubernetes/client-node's KubeConfig (${Math.round(bytes / 1024)} KiB)\n`,
      ),
    (err: unknown) => {
      process.stderr.write(`client-node bundle failed: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
