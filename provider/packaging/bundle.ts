/**
 * Bundles the provider into ONE CommonJS file with a node shebang, so Terraform can run it extensionless
 * from a filesystem mirror. Run after `tsc` as `node dist/provider/packaging/bundle.js`; it writes
 * `dist/provider/terraform-provider-cloudtaser.cjs`.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const BUNDLE_FILE_NAME = 'terraform-provider-cloudtaser.cjs';

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

  // 2. The start-up code, with every chunk embedded as a string literal and compiled on first import:
  //    scanning a string costs far less than parsing the same code, and Terraform starts several
  //    provider processes per command.
  const result = await esbuild.build({
    ...common,
    entryPoints: [entry],
    outfile,
    // The entry's own '#!/usr/bin/env node' line is kept at the top by esbuild.
    banner: { js: importMetaBanner },
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
              `const code = ${JSON.stringify(chunks.get(args.path))};\n` +
              `const m = new Module(__filename + '#${args.path}', module);\n` +
              `m.filename = __filename;\n` +
              `m.paths = Module._nodeModulePaths(require('node:path').dirname(__filename));\n` +
              `m._compile(code, __filename + '#${args.path}');\n` +
              `module.exports = m.exports;\n`,
          }));
          // grpc-js only loads proto-loader for channelz/ORCA services, which this server never registers.
          build.onResolve({ filter: /^@grpc\/proto-loader$/ }, () => ({
            path: 'proto-loader',
            namespace: 'stub',
          }));
          build.onLoad({ filter: /.*/, namespace: 'stub' }, () => ({
            loader: 'js',
            contents:
              "throw new Error('@grpc/proto-loader is not bundled into terraform-provider-cloudtaser');",
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

// `node dist/provider/packaging/bundle.js` builds the bundle. The file-name check keeps this from firing inside a
// single-file bundle of the CLI (the container images), where every module shares the bundle's import.meta.url.
if (
  process.argv[1] &&
  /\/bundle\.[cm]?[jt]s$/.test(import.meta.url) &&
  import.meta.url === pathToFileURL(resolve(process.argv[1])).href
) {
  buildProviderBundle().then(
    (bundle) => process.stderr.write(`wrote ${bundle.outfile} (${Math.round(bundle.bytes / 1024)} KiB)\n`),
    (err: unknown) => {
      process.stderr.write(`provider bundle failed: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
