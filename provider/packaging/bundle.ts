/**
 * Bundles the provider into ONE CommonJS file with a node shebang, so Terraform can run it extensionless
 * from a filesystem mirror. Run after `tsc` as `node dist/provider/packaging/bundle.js`; it writes
 * `dist/provider/terraform-provider-cloudtaser.cjs`.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { brotliCompressSync, constants as zlibConstants } from 'node:zlib';

export const BUNDLE_FILE_NAME = 'terraform-provider-cloudtaser.cjs';

/** Opens the trailing comment that carries one lazily compiled chunk: `/*@ct-chunk:<name>:<base64>*\/`. */
const CHUNK_MARKER = '@ct-chunk:';

export interface BuildProviderBundleOptions {
  /** Repository or package root. @default three levels above this file's folder (works for src and dist) */
  readonly root?: string;
  /** @default <root>/dist/provider/terraform-provider-cloudtaser.cjs */
  readonly outfile?: string;
  /** Entry module. @default dist/provider/main.js when built, else provider/main.ts */
  readonly entry?: string;
  /** @default true */
  readonly minify?: boolean;
}

export interface ProviderBundle {
  readonly outfile: string;
  readonly bytes: number;
}

export function packageRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // src: <root>/provider/packaging; dist: <root>/dist/provider/packaging
  const up2 = resolve(here, '..', '..');
  return existsSync(join(up2, 'package.json')) ? up2 : resolve(here, '..', '..', '..');
}

export async function buildProviderBundle(options: BuildProviderBundleOptions = {}): Promise<ProviderBundle> {
  const root = options.root ?? packageRoot();
  const outfile = options.outfile ?? join(root, 'dist', 'provider', BUNDLE_FILE_NAME);
  const distEntry = join(root, 'dist', 'provider', 'main.js');
  const entry = options.entry ?? (existsSync(distEntry) ? distEntry : join(root, 'provider', 'main.ts'));
  const lazyDir = join(dirname(entry), 'lazy');
  // esbuild is a build-time (dev) dependency only; loaded here so the runtime never needs it.
  const esbuild = await import('esbuild');
  const common: import('esbuild').BuildOptions = {
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    minify: options.minify ?? true,
    legalComments: 'eof',
    logLevel: 'error',
    // ESM code that asks for its own URL gets the bundle's file URL.
    define: { 'import.meta.url': '__ctImportMetaUrl' },
    // Optional native speed-ups that ws loads inside try/catch; a JS provider must not need a compiler.
    external: ['bufferutil', 'utf-8-validate'],
    write: false,
  };
  const importMetaBanner = 'const __ctImportMetaUrl = require("url").pathToFileURL(__filename).href;';

  // 1. Each lazy/* module (OpenBao + registration, Kubernetes) as its own chunk of code.
  const chunks = new Map<string, string>();
  for (const file of readdirSync(lazyDir)) {
    const match = /^([a-z-]+)\.(js|ts)$/.exec(file);
    if (!match || file.endsWith('.d.ts')) continue;
    const built = await esbuild.build({
      ...common,
      entryPoints: [join(lazyDir, file)],
      outfile: join(lazyDir, `${match[1]}.cjs`),
      banner: { js: importMetaBanner },
    });
    chunks.set(match[1], built.outputFiles![0].text);
  }

  // 2. The start-up code. Every chunk travels in the same file, brotli-compressed and base64-encoded inside a
  //    trailing block comment, and is read back from the file and compiled on first import. V8 skips a
  //    comment without building anything, whereas a 1 MB string literal is scanned, allocated and hashed in
  //    every one of the 3-5 provider processes Terraform starts per command (measured: ~60% of the
  //    start-up above a bare `node` before this layout). Base64 can never contain the `*/` that ends it.
  const payload = [...chunks]
    .map(([name, code]) => {
      const packed = brotliCompressSync(Buffer.from(code, 'utf8'), {
        params: {
          [zlibConstants.BROTLI_PARAM_QUALITY]: 11,
          [zlibConstants.BROTLI_PARAM_SIZE_HINT]: code.length,
        },
      });
      return `/*${CHUNK_MARKER}${name}:${packed.toString('base64')}*/`;
    })
    .join('\n');
  const result = await esbuild.build({
    ...common,
    entryPoints: [entry],
    outfile,
    // The entry's own '#!/usr/bin/env node' line is kept at the top by esbuild.
    banner: { js: importMetaBanner },
    footer: { js: payload },
    plugins: [
      {
        name: 'embed-lazy-chunks',
        setup(build) {
          build.onResolve({ filter: /^\.\/lazy\/[a-z-]+\.js$/ }, (args) => {
            const name = /lazy\/([a-z-]+)\.js$/.exec(args.path)![1];
            return chunks.has(name) ? { path: name, namespace: 'embedded-chunk' } : undefined;
          });
          build.onLoad({ filter: /.*/, namespace: 'embedded-chunk' }, (args) => ({
            loader: 'js',
            contents:
              `const Module = require('node:module');\n` +
              `const text = require('node:fs').readFileSync(__filename, 'latin1');\n` +
              `const start = text.lastIndexOf('/*${CHUNK_MARKER}${args.path}:');\n` +
              `if (start < 0) throw new Error('terraform-provider-cloudtaser: chunk ${args.path} is missing from ' + __filename + '; reinstall the provider');\n` +
              `const base64 = text.slice(start + ${`/*${CHUNK_MARKER}${args.path}:`.length}, text.indexOf('*/', start));\n` +
              `const code = require('node:zlib').brotliDecompressSync(Buffer.from(base64, 'base64')).toString('utf8');\n` +
              `const m = new Module(__filename + '#${args.path}', module);\n` +
              `m.filename = __filename;\n` +
              `m.paths = Module._nodeModulePaths(require('node:path').dirname(__filename));\n` +
              `m._compile(code, __filename + '#${args.path}');\n` +
              `module.exports = m.exports;\n`,
          }));
        },
      },
    ],
  });
  mkdirSync(dirname(outfile), { recursive: true });
  writeFileSync(outfile, result.outputFiles![0].contents, { mode: 0o755 });
  chmodSync(outfile, 0o755);
  return { outfile, bytes: statSync(outfile).size };
}

// `node dist/provider/packaging/bundle.js` builds the bundle.
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  buildProviderBundle().then(
    (bundle) => process.stderr.write(`wrote ${bundle.outfile} (${Math.round(bundle.bytes / 1024)} KiB)\n`),
    (err: unknown) => {
      process.stderr.write(`provider bundle failed: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
