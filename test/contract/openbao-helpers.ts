import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';

export const REAL_ADDRESS = process.env.CLOUDTASER_TEST_OPENBAO_ADDR;
export const REAL_TOKEN = process.env.CLOUDTASER_TEST_OPENBAO_TOKEN;
/**
 * Cases that need to control the server (seal, faults, no namespaces, a reachable fake Kubernetes, the
 * independent-client case aimed at the test server itself) skip only when the suite is pointed at a real OpenBao
 * with CLOUDTASER_TEST_OPENBAO_ADDR/TOKEN; in CI (no real server) they always run.
 */
export const AGAINST_REAL_OPENBAO = Boolean(REAL_ADDRESS && REAL_TOKEN);

export interface Target {
  readonly address: string;
  readonly token: string;
  /** Only for the in-process server. */
  readonly server?: OpenBaoTestServer;
  close(): Promise<void>;
}

export async function startTarget(): Promise<Target> {
  if (AGAINST_REAL_OPENBAO) return { address: REAL_ADDRESS!, token: REAL_TOKEN!, close: async () => {} };
  const server = await startOpenBaoTestServer({ namespaceDeleteDelayMs: 30 });
  return { address: server.address, token: server.rootToken, server, close: () => server.close() };
}

export { uniqueName } from '../support/expect-code.js';

export function clientFor(
  target: Target,
  extra: { namespace?: string; token?: string; retries?: number } = {},
) {
  return new OpenBaoClient({
    address: target.address,
    token: extra.token ?? target.token,
    namespace: extra.namespace,
    retries: extra.retries ?? 0,
    retryBaseDelayMs: 5,
    timeoutMs: 5_000,
  });
}

export interface RawAnswer {
  readonly status: number;
  readonly text: string;
  readonly json: Record<string, unknown> | undefined;
  readonly headers: Headers;
}

/** A raw HTTP call that pins exact statuses and bodies, independent of our client. */
export async function raw(
  target: Target,
  method: string,
  path: string,
  options: {
    body?: unknown;
    namespace?: string;
    token?: string | null;
    headers?: Record<string, string>;
  } = {},
): Promise<RawAnswer> {
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  const token = options.token === undefined ? target.token : options.token;
  if (token) headers['x-vault-token'] = token;
  if (options.namespace !== undefined) headers['x-vault-namespace'] = options.namespace;
  const response = await fetch(`${target.address}/v1/${path}`, {
    method,
    headers,
    body:
      options.body === undefined
        ? undefined
        : typeof options.body === 'string'
          ? options.body
          : JSON.stringify(options.body),
  });
  const text = await response.text();
  let json: Record<string, unknown> | undefined;
  try {
    json = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
  } catch {
    json = undefined;
  }
  return { status: response.status, text, json, headers: response.headers };
}

/** Builds an unsigned-looking service-account JWT (OpenBao checks no signature without pem_keys). */
export function serviceAccountJwt(claims: {
  namespace: string;
  name: string;
  uid: string;
  aud?: string[];
  exp?: number;
  iat?: number;
}): string {
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: 'RS256', kid: 'test' };
  const payload = {
    aud: claims.aud ?? ['https://kubernetes.default.svc.cluster.local'],
    exp: claims.exp ?? now + 3600,
    iat: claims.iat ?? now,
    nbf: claims.iat ?? now,
    iss: 'https://kubernetes.default.svc.cluster.local',
    sub: `system:serviceaccount:${claims.namespace}:${claims.name}`,
    'kubernetes.io': { namespace: claims.namespace, serviceaccount: { name: claims.name, uid: claims.uid } },
  };
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part(header)}.${part(payload)}.${Buffer.from('not-a-real-signature').toString('base64url')}`;
}
