/**
 * Loads a lazily compiled chunk of the provider bundle (see bundle.ts): reads it from the trailing comment of
 * the bundle file, decompresses it, and compiles it with a V8 code cache kept per user, so the OpenBao and
 * Kubernetes code is compiled once per machine rather than in every provider process Terraform starts.
 *
 * The cache is an optimisation only: any error reading or writing it is ignored, a cache that does not match
 * this Node.js, these V8 flags or this code is rejected by V8 itself and rewritten, and
 * CLOUDTASER_PROVIDER_CODE_CACHE=off turns it off. It lives in $XDG_CACHE_HOME/cloudtaser (default
 * ~/.cache/cloudtaser), a 0700 directory: whoever can write there can already run code as this user.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import Module from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { Script } from 'node:vm';
import { brotliDecompressSync } from 'node:zlib';

/** Opens the trailing comment that carries one chunk: `/*@ct-chunk:<name>:<base64>*\/`. */
export const CHUNK_MARKER = '@ct-chunk:';

/** The base64 payload of chunk `name` in the bundle text, or undefined. */
export function findChunk(bundleText: string, name: string): string | undefined {
  const open = `/*${CHUNK_MARKER}${name}:`;
  const start = bundleText.lastIndexOf(open);
  if (start < 0) return undefined;
  const end = bundleText.indexOf('*/', start);
  return end < 0 ? undefined : bundleText.slice(start + open.length, end);
}

export function codeCacheDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.CLOUDTASER_PROVIDER_CODE_CACHE === 'off') return undefined;
  const base = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'cloudtaser', 'provider-code-cache');
}

/** Compiles and runs chunk `name` of `bundleFile` as a CommonJS module; returns its exports. */
export function loadEmbeddedChunk(name: string, parent: Module, bundleFile: string): unknown {
  const payload = findChunk(readFileSync(bundleFile, 'latin1'), name);
  if (payload === undefined) {
    throw new Error(
      `terraform-provider-cloudtaser: part "${name}" is missing from ${bundleFile}; reinstall the provider (cloudtaser-cli provider install)`,
    );
  }
  const code = brotliDecompressSync(Buffer.from(payload, 'base64')).toString('utf8');
  const filename = `${bundleFile}#${name}`;
  const dir = codeCacheDir();
  const key = createHash('sha256').update(payload).update(process.version).update(process.arch).digest('hex');
  const cacheFile = dir ? join(dir, `${name}-${key.slice(0, 32)}.bin`) : undefined;
  let cachedData: Buffer | undefined;
  try {
    cachedData = cacheFile ? readFileSync(cacheFile) : undefined;
  } catch {
    cachedData = undefined;
  }
  const script = new Script(Module.wrap(code), { filename, cachedData });
  const chunk = new Module(filename, parent);
  chunk.filename = bundleFile;
  // biome-ignore lint/suspicious/noExplicitAny: _nodeModulePaths is Node's own (undocumented) resolver helper
  chunk.paths = (Module as any)._nodeModulePaths(dirname(bundleFile));
  const run = script.runInThisContext() as (...args: unknown[]) => void;
  run.call(
    chunk.exports,
    chunk.exports,
    (id: string) => chunk.require(id),
    chunk,
    bundleFile,
    dirname(bundleFile),
  );
  chunk.loaded = true;
  if (cacheFile && (cachedData === undefined || script.cachedDataRejected)) {
    // Written at exit, when the functions this process used are compiled too and so land in the cache.
    process.once('exit', () => writeCache(cacheFile, script));
  }
  return chunk.exports;
}

function writeCache(cacheFile: string, script: Script): void {
  try {
    mkdirSync(dirname(cacheFile), { recursive: true, mode: 0o700 });
    const temporary = `${cacheFile}.${process.pid}.tmp`;
    writeFileSync(temporary, script.createCachedData(), { mode: 0o600 });
    renameSync(temporary, cacheFile);
    // One file per chunk: caches of earlier provider versions or Node.js releases go.
    const [name] = cacheFile.slice(dirname(cacheFile).length + 1).split('-');
    for (const file of readdirSync(dirname(cacheFile))) {
      if (file.startsWith(`${name}-`) && join(dirname(cacheFile), file) !== cacheFile) {
        rmSync(join(dirname(cacheFile), file), { force: true });
      }
    }
  } catch {
    // A read-only or full home directory only costs the next process a full compile.
  }
}
