/**
 * What the injected init container runs (`cloudtaser-cli pod fetch-secrets`): log in to the pod API with the
 * pod's service-account token, read each requested KV v2 secret, and write it as JSON into the memory-backed
 * volume (plus the pod API CA as `ca.crt`, so apps can set VAULT_CACERT). Nothing touches a disk or a
 * Kubernetes Secret; values are never logged.
 *
 * Safe to run again: the kubelet restarts a failed init container with the same volume (an emptyDir outlives
 * container restarts), so each file is written beside its place and renamed over it. Writing over a file of mode
 * 0444 in place fails for the non-root user the container runs as (EACCES), which left a pod whose first try failed
 * (its role not written yet, the broker reconnecting) in Init:CrashLoopBackOff for good. A reader never sees a
 * half-written file either.
 */
import { randomBytes } from 'node:crypto';
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { CloudtaserError } from '../core/errors.js';
import { parseSecretFiles } from './secret-files.js';

export const SERVICE_ACCOUNT_TOKEN_PATH = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export interface FetchPodSecretsOptions {
  readonly podApiUrl: string;
  readonly caPem: string;
  readonly role: string;
  /** File name -> path under the `secret` KV v2 mount. */
  readonly secrets: Readonly<Record<string, string>>;
  readonly outputDir: string;
  /** @default read from `tokenFile` */
  readonly jwt?: string;
  /**
   * The service-account token file: the webhook's projected token (`CLOUDTASER_TOKEN_FILE`), else the
   * automounted one. @default SERVICE_ACCOUNT_TOKEN_PATH
   */
  readonly tokenFile?: string;
  /** @default 5 (with 1 s between tries, for a broker that is still connecting) */
  readonly attempts?: number;
}

export async function fetchPodSecrets(options: FetchPodSecretsOptions): Promise<{ written: string[] }> {
  // File names become paths in the volume: checked here too, whoever called (the webhook checked the annotations).
  const secrets = parseSecretFiles(options.secrets, 'secrets');
  const jwt = options.jwt ?? (await readServiceAccountToken(options.tokenFile ?? SERVICE_ACCOUNT_TOKEN_PATH));
  const agent = new Agent({ connect: { ca: options.caPem } });
  const base = options.podApiUrl.replace(/\/+$/, '');
  const call = async (method: 'GET' | 'POST', path: string, token?: string, body?: unknown) => {
    const attempts = options.attempts ?? 5;
    for (let attempt = 1; ; attempt++) {
      const response = await request(`${base}/v1/${path}`, {
        method,
        dispatcher: agent,
        headers: { ...(token ? { 'x-vault-token': token } : {}), 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const parsed = (await response.body.json().catch(() => ({}))) as Record<string, unknown>;
      if (response.statusCode === 503 && attempt < attempts) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        continue;
      }
      if (response.statusCode !== 200) {
        const errors = Array.isArray(parsed.errors) ? parsed.errors.join('; ') : '';
        throw new CloudtaserError(
          response.statusCode === 403 ? 'CT_OPENBAO_PERMISSION_DENIED' : 'CT_OPENBAO_ERROR',
          `${method} ${path.split('/')[0]}/... answered ${response.statusCode}${errors ? `: ${errors}` : ''}`,
        );
      }
      return parsed;
    }
  };
  try {
    await removeUnfinishedWrites(options.outputDir);
    await writeReadOnly(options.outputDir, 'ca.crt', options.caPem);
    const login = await call('POST', 'auth/kubernetes/login', undefined, { role: options.role, jwt });
    const token = (login.auth as { client_token?: string } | undefined)?.client_token;
    if (!token) throw new CloudtaserError('CT_OPENBAO_BAD_RESPONSE', 'the login answer carried no token');
    const written: string[] = [];
    for (const [file, path] of Object.entries(secrets)) {
      const read = await call(
        'GET',
        `secret/data/${path.split('/').map(encodeURIComponent).join('/')}`,
        token,
      ).catch((err: unknown) => {
        // Which annotation asked for it: a pod may ask for several.
        if (!(err instanceof CloudtaserError)) throw err;
        throw new CloudtaserError(
          err.code,
          `${file}.json (annotation cloudtaser.io/secret-${file}: ${path}): ${err.message}`,
          { cause: err },
        );
      });
      const data = (read.data as { data?: unknown } | undefined)?.data ?? {};
      // Readable by every user: this init container runs as 65532, the pod's app containers as whatever user
      // their images name (0o440 left an app running as, say, uid 1000 with EACCES). The in-memory volume is
      // mounted only into this pod's containers, and all of them get it, so the mode keeps nobody else out.
      await writeReadOnly(options.outputDir, `${file}.json`, JSON.stringify(data));
      written.push(file);
    }
    return { written };
  } finally {
    await agent.close();
  }
}

const UNFINISHED = /^\.[a-z0-9][-a-z0-9_.]*\.[0-9a-f]{12}\.tmp$/;

/**
 * Writes `name` in `dir` readable by every user (this container runs as 65532, the pod's app containers as whatever
 * user their images name; the in-memory volume is mounted only into this pod's containers, so the mode keeps
 * nobody else out), replacing an earlier run's file.
 */
async function writeReadOnly(dir: string, name: string, content: string): Promise<void> {
  const unfinished = join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
  await writeFile(unfinished, content, { mode: 0o444, flag: 'wx' });
  try {
    await rename(unfinished, join(dir, name));
  } catch (err) {
    await rm(unfinished, { force: true });
    throw err;
  }
}

/** What a run killed between a write and its rename left in the volume. */
async function removeUnfinishedWrites(dir: string): Promise<void> {
  const names = await readdir(dir);
  await Promise.all(names.filter((n) => UNFINISHED.test(n)).map((n) => rm(join(dir, n), { force: true })));
}

async function readServiceAccountToken(path: string): Promise<string> {
  try {
    const token = (await readFile(path, 'utf8')).trim();
    if (token !== '') return token;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  throw new CloudtaserError(
    'CT_INVALID_ARGUMENT',
    `no service-account token at ${path}: the cloudtaser webhook mounts a projected token for this container; recreate the pod so the webhook injects it (a pod created before the operator upgrade lacks it)`,
  );
}
