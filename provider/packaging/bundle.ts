/**
 * Bundles the provider into ONE CommonJS file with a node shebang, so Terraform can run it extensionless
 * from a filesystem mirror. Run after `tsc` as `node dist/provider/packaging/bundle.js`; it writes
 * `dist/provider/terraform-provider-cloudtaser.cjs`.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { brotliCompressSync, constants as zlibConstants } from 'node:zlib';
import { BUNDLE_FILE_NAME } from './bundle-name.js';
import { CHUNK_MARKER } from './chunk-loader.js';

export { BUNDLE_FILE_NAME };

/**
 * Libraries whose entry point evaluates far more than the runtime uses, replaced in the provider's chunks by
 * the parts it does use. Profiled in the provider process (registration chunk, before this): undici's index
 * evaluated fetch, cookies, WebSocket, mocks and caches (~75% of the chunk's evaluation); node-forge's index
 * evaluated every cipher, TLS and PKCS module. Evaluated in each process that reads or writes OpenBao.
 * - undici: runtime/openbao uses only `Agent` and `agent.request`; `request` and the other dispatcher methods
 *   are added to Dispatcher.prototype from lib/api, exactly as undici's index.js does.
 * - node-forge: runtime/pki/der-decode.ts uses only `forge.asn1` and `forge.util`; each lib module registers itself
 *   on the shared forge object, as the index does for all of them.
 * An upgrade that moves these files fails the build (unresolvable path), never silently.
 */
const NARROWED_IMPORTS = {
  undici: (modules: string) =>
    `const Dispatcher = require(${JSON.stringify(join(modules, 'undici/lib/dispatcher/dispatcher.js'))});\n` +
    `Object.assign(Dispatcher.prototype, require(${JSON.stringify(join(modules, 'undici/lib/api/index.js'))}));\n` +
    `module.exports = { Dispatcher, Agent: require(${JSON.stringify(join(modules, 'undici/lib/dispatcher/agent.js'))}) };\n`,
  'node-forge': (modules: string) =>
    `require(${JSON.stringify(join(modules, 'node-forge/lib/asn1.js'))});\n` +
    `require(${JSON.stringify(join(modules, 'node-forge/lib/util.js'))});\n` +
    `module.exports = require(${JSON.stringify(join(modules, 'node-forge/lib/forge.js'))});\n`,
} as const;

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
  const loaderPath = join(
    dirname(entry),
    'packaging',
    `chunk-loader${entry.endsWith('.ts') ? '.ts' : '.js'}`,
  );
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

  // 1. Each lazy/* module (OpenBao + registration, Kubernetes) as its own chunk of code, with the two
  //    libraries that dominate its evaluation narrowed to what the runtime uses (see NARROWED_IMPORTS).
  const narrow: import('esbuild').Plugin = {
    name: 'narrow-imports',
    setup(build) {
      const filter = new RegExp(`^(${Object.keys(NARROWED_IMPORTS).join('|')})$`);
      build.onResolve({ filter }, (args) =>
        args.namespace === 'narrowed' ? undefined : { path: args.path, namespace: 'narrowed' },
      );
      build.onLoad({ filter: /.*/, namespace: 'narrowed' }, (args) => ({
        loader: 'js',
        resolveDir: root,
        contents: NARROWED_IMPORTS[args.path as keyof typeof NARROWED_IMPORTS](join(root, 'node_modules')),
      }));
    },
  };
  const chunks = new Map<string, string>();
  // An entry without a lazy/ folder (the benchmark's floor provider) has no chunks.
  for (const file of existsSync(lazyDir) ? readdirSync(lazyDir) : []) {
    const match = /^([a-z-]+)\.(js|ts)$/.exec(file);
    if (!match || file.endsWith('.d.ts')) continue;
    const built = await esbuild.build({
      ...common,
      entryPoints: [join(lazyDir, file)],
      outfile: join(lazyDir, `${match[1]}.cjs`),
      banner: { js: importMetaBanner },
      plugins: [narrow],
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
            resolveDir: dirname(loaderPath),
            contents:
              `const { loadEmbeddedChunk } = require(${JSON.stringify(loaderPath)});\n` +
              `module.exports = loadEmbeddedChunk(${JSON.stringify(args.path)}, module, __filename);\n`,
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
