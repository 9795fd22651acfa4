/**
 * What the injected init container runs (`cloudtaser-cli pod fetch-secrets`): log in to the pod API with the
 * pod's service-account token, read each requested KV v2 secret, and write it as JSON into the memory-backed
 * volume (plus the pod API CA as `ca.crt`, so apps can set VAULT_CACERT). Nothing touches a disk or a
 * Kubernetes Secret; values are never logged.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { CloudtaserError } from '../core/errors.js';

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
    await writeFile(join(options.outputDir, 'ca.crt'), options.caPem, { mode: 0o444 });
    const login = await call('POST', 'auth/kubernetes/login', undefined, { role: options.role, jwt });
    const token = (login.auth as { client_token?: string } | undefined)?.client_token;
    if (!token) throw new CloudtaserError('CT_OPENBAO_BAD_RESPONSE', 'the login answer carried no token');
    const written: string[] = [];
    for (const [file, path] of Object.entries(options.secrets)) {
      const read = await call(
        'GET',
        `secret/data/${path.split('/').map(encodeURIComponent).join('/')}`,
        token,
      );
      const data = (read.data as { data?: unknown } | undefined)?.data ?? {};
      // Readable by every user: this init container runs as 65532, the pod's app containers as whatever user
      // their images name (0o440 left an app running as, say, uid 1000 with EACCES). The in-memory volume is
      // mounted only into this pod's containers, and all of them get it, so the mode keeps nobody else out.
      await writeFile(join(options.outputDir, `${file}.json`), JSON.stringify(data), { mode: 0o444 });
      written.push(file);
    }
    return { written };
  } finally {
    await agent.close();
  }
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
