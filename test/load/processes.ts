/**
 * Child processes for the hardening suites: a beacon process (beacon-process.ts) and measurements of any
 * process by pid (/proc). Under vitest the TypeScript entry is bundled with esbuild once per run; from
 * `dist/` (benchmarks) the compiled sibling is used as is.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readOpenFileLimit } from '../../runtime/beacon/index.js';
import type { BeaconProcessConfig, BeaconProcessReport } from './beacon-process.js';

const here = dirname(fileURLToPath(import.meta.url));
const bundles = new Map<string, Promise<string>>();

function repoRoot(): string {
  let dir = here;
  while (!existsSync(join(dir, 'package.json')) || dir.endsWith('dist')) dir = dirname(dir);
  return dir;
}

/** Path of a runnable JS file for a sibling entry of this folder (`name` without extension). */
export function childEntry(name: string): Promise<string> {
  const compiled = join(here, `${name}.js`);
  if (existsSync(compiled)) return Promise.resolve(compiled);
  let built = bundles.get(name);
  if (!built) {
    // Bundled inside the repository so the external packages resolve from its node_modules.
    const outDir = join(repoRoot(), 'node_modules', '.cache', 'cloudtaser-hardening');
    mkdirSync(outDir, { recursive: true });
    const outfile = join(outDir, `${name}-${process.pid}.mjs`);
    process.once('exit', () => rmSync(outfile, { force: true }));
    built = import('esbuild').then(async (esbuild) => {
      await esbuild.build({
        entryPoints: [join(here, `${name}.ts`)],
        outfile,
        bundle: true,
        platform: 'node',
        format: 'esm',
        target: 'node20',
        packages: 'external',
        logLevel: 'error',
      });
      return outfile;
    });
    bundles.set(name, built);
  }
  return built;
}

export interface BeaconProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  readonly certPem: string;
  /** RSS after a full GC, heap, open descriptors and beacon stats, measured inside the child. */
  report(): Promise<BeaconProcessReport>;
  /** SIGKILL: no FIN from user space, no cleanup; the kernel closes the sockets. */
  kill9(): Promise<void>;
  close(): Promise<void>;
}

export async function startBeaconProcess(config: BeaconProcessConfig): Promise<BeaconProcess> {
  const entry = await childEntry('beacon-process');
  const child = fork(entry, [], {
    execArgv: ['--expose-gc'],
    env: { ...process.env, CLOUDTASER_BEACON_CHILD: JSON.stringify(config) },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const ready = await new Promise<{ port: number; certPem: string }>((done, fail) => {
    const onExit = (code: number | null) =>
      fail(new Error(`beacon process exited with ${code} before listening`));
    child.once('exit', onExit);
    child.once('error', fail);
    child.once('message', (message: { type: string; port: number; certPem: string }) => {
      child.off('exit', onExit);
      if (message.type === 'listening') done(message);
      else fail(new Error(`unexpected first message from the beacon process: ${message.type}`));
    });
  });
  let nextId = 0;
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    child,
    pid: child.pid!,
    port: ready.port,
    certPem: ready.certPem,
    report() {
      const id = nextId++;
      return new Promise((done, fail) => {
        const onMessage = (message: { type: string; id: number; report: BeaconProcessReport }) => {
          if (message.type !== 'report' || message.id !== id) return;
          child.off('message', onMessage);
          done(message.report);
        };
        child.on('message', onMessage);
        if (!child.send({ type: 'report', id })) fail(new Error('beacon process is gone'));
      });
    },
    async kill9() {
      if (alive()) child.kill('SIGKILL');
      await exited;
    },
    async close() {
      if (alive()) {
        child.send({ type: 'close' });
        const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

/** Resident set size of any process, from /proc (bytes). */
export function rssOf(pid: number | 'self'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN);
  return kib * 1024;
}

/** Open file descriptors of any process, from /proc. */
export function openFdsOf(pid: number | 'self'): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** The soft limit on open files of this process (what a child inherits); unlimited is infinite. */
export function openFileLimit(): number {
  return readOpenFileLimit() ?? Number.POSITIVE_INFINITY;
}
