/**
 * Plays the container runtime and the kubelet for one container of a pod, well enough to run an injected init
 * container on this machine the way a node would:
 *   - the image is read from its Dockerfile (`ENTRYPOINT`, `CMD`, `ENV`), and its files are mapped onto this
 *     machine (`/nodejs/bin/node` is this Node, the installed package is this repository's build);
 *   - the command line follows Kubernetes' rule (a container's `command` replaces ENTRYPOINT and drops CMD;
 *     `args` alone replaces CMD);
 *   - volumes are made as the kubelet makes them: `emptyDir` is an empty folder, a projected
 *     `serviceAccountToken` is a token the API server mints for the pod's service account with the volume's
 *     audience and lifetime. Any other volume, or a path outside a mount or the image, fails the run. No
 *     service-account token is mounted unless a volume asks for one (the pod opts out of automounting).
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runProcess } from '../run-process.js';

const ROOT = resolve(import.meta.dirname, '../..');

export interface ContainerImage {
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** Image path -> path on this machine; a key ending in `/` maps a whole folder. */
  readonly files: ReadonlyMap<string, string>;
}

/**
 * Reads `ENTRYPOINT`/`CMD`/`ENV` of the final stage. The image's `/app` is the packed package with its runtime
 * dependencies as package-lock.json pins them (the build stage says so; this checks it), so `/app/node_modules/cloudtaser/` maps to
 * this repository's built package (`npm run build` first); test/package/packed-install.test.ts covers the same
 * entry point from a real `--omit=dev` install.
 */
export async function readImageFromDockerfile(dockerfile: string): Promise<ContainerImage> {
  const text = (await readFile(join(ROOT, dockerfile), 'utf8')).replace(/\\\n/g, ' ');
  const trimmed = text.split('\n').map((l) => l.trim());
  const finalStage = trimmed.slice(lastIndex(trimmed, /^FROM /));
  const json = (keyword: string) => {
    const line = finalStage.find((l) => l.startsWith(`${keyword} `));
    if (!line) throw new Error(`${dockerfile} has no ${keyword}`);
    return JSON.parse(line.slice(keyword.length + 1)) as string[];
  };
  const env: Record<string, string> = {};
  for (const line of finalStage.filter((l) => l.startsWith('ENV ')))
    for (const [, key, value] of line.slice(4).matchAll(/([A-Za-z_][A-Za-z0-9_]*)=(\S+)/g)) env[key] = value;

  // The packed package's files under /app/node_modules/cloudtaser, its runtime dependencies pruned to what
  // package-lock.json pins without dev dependencies.
  const install = trimmed.find(
    (l) =>
      /npm prune --omit=dev/.test(l) &&
      /tar -xzf \/out\/cloudtaser-\*\.tgz --strip-components=1 -C \/app\/node_modules\/cloudtaser/.test(l),
  );
  if (!install)
    throw new Error(`${dockerfile} does not put the packed package and its pruned dependencies into /app`);
  if (!finalStage.some((l) => /^COPY --from=\S+ \/app \/app$/.test(l)))
    throw new Error(`${dockerfile} never copies the installed /app into the final image`);
  return {
    entrypoint: json('ENTRYPOINT'),
    cmd: json('CMD'),
    env,
    files: new Map([
      ['/nodejs/bin/node', process.execPath],
      ['/app/node_modules/cloudtaser/', `${ROOT}/`],
    ]),
  };
}

/** The local path of an image path: an exact file, or under a mapped folder (keys ending in `/`). */
function imageFile(image: ContainerImage, path: string): string | undefined {
  const exact = image.files.get(path);
  if (exact) return exact;
  for (const [prefix, local] of image.files)
    if (prefix.endsWith('/') && path.startsWith(prefix)) return local + path.slice(prefix.length);
  return undefined;
}

// biome-ignore lint/suspicious/noExplicitAny: pod JSON as the webhook produced it
type Pod = any;

export interface Kubelet {
  /** Mints a token as the API server's TokenRequest would for a projected volume. */
  mintToken(request: {
    namespace: string;
    serviceAccount: string;
    audience: string;
    expirationSeconds: number;
    pod: { name: string; uid: string };
  }): string;
}

export interface ContainerRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Volume name -> the folder that stood for it. */
  readonly volumes: ReadonlyMap<string, string>;
  cleanup(): Promise<void>;
}

/** Runs one (init) container of `pod` from `image`, to its end. */
export async function runContainer(
  pod: Pod,
  containerName: string,
  image: ContainerImage,
  kubelet: Kubelet,
): Promise<ContainerRun> {
  const container = [...(pod.spec.initContainers ?? []), ...pod.spec.containers].find(
    (c: { name: string }) => c.name === containerName,
  );
  if (!container) throw new Error(`pod has no container ${containerName}`);
  const root = await mkdtemp(join(tmpdir(), 'ct-kubelet-'));
  const volumes = new Map<string, string>();
  const mounts: Array<{ path: string; dir: string }> = [];
  try {
    for (const mount of container.volumeMounts ?? []) {
      const volume = (pod.spec.volumes ?? []).find((v: { name: string }) => v.name === mount.name);
      if (!volume) throw new Error(`volumeMount ${mount.name} names no volume of the pod`);
      const dir = join(root, mount.name);
      await mkdir(dir);
      if (volume.emptyDir) {
        // nothing: an empty folder
      } else if (volume.projected) {
        for (const source of volume.projected.sources) {
          const token = source.serviceAccountToken;
          if (!token) throw new Error(`projected source ${JSON.stringify(source)} is not played here`);
          await writeFile(
            join(dir, token.path),
            kubelet.mintToken({
              namespace: pod.metadata.namespace,
              serviceAccount: pod.spec.serviceAccountName ?? 'default',
              audience: token.audience,
              expirationSeconds: token.expirationSeconds ?? 3600,
              pod: { name: pod.metadata.name, uid: pod.metadata.uid },
            }),
          );
        }
      } else {
        throw new Error(`volume ${mount.name} is of a kind this kubelet does not play`);
      }
      volumes.set(mount.name, dir);
      mounts.push({ path: mount.mountPath, dir });
    }
    const toHost = (path: string) => {
      for (const m of mounts)
        if (path === m.path || path.startsWith(`${m.path}/`)) return m.dir + path.slice(m.path.length);
      return undefined;
    };
    const argv = [
      ...(container.command ?? image.entrypoint),
      ...(container.args ?? (container.command ? [] : image.cmd)),
    ];
    const [executable, ...rest] = argv.map((arg, index) => {
      if (!arg.startsWith('/')) {
        if (index === 0)
          throw new Error(`${arg} is not a file of the image (a distroless image has no PATH lookup for it)`);
        return arg;
      }
      const local = imageFile(image, arg) ?? toHost(arg);
      if (!local) throw new Error(`${arg} is neither in the image nor on a volume`);
      return local;
    });
    const env: Record<string, string> = { ...image.env };
    for (const entry of container.env ?? []) {
      if (entry.valueFrom) throw new Error(`env ${entry.name} uses valueFrom, not played here`);
      env[entry.name] = toHost(entry.value) ?? entry.value;
    }
    const result = await runProcess(executable, rest, { env, timeoutMs: 60_000 });
    return { ...result, volumes, cleanup: () => rm(root, { recursive: true, force: true }) };
  } catch (err) {
    await rm(root, { recursive: true, force: true });
    throw err;
  }
}

function lastIndex(lines: string[], pattern: RegExp): number {
  let index = -1;
  lines.forEach((line, i) => {
    if (pattern.test(line)) index = i;
  });
  return index;
}
