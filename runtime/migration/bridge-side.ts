/**
 * The bridge's half of Secret migration: writes one Kubernetes Secret's data to `secret/k8s/<ns>/<name>` in the
 * cluster's OpenBao namespace with the BRIDGE's credentials (the target side holds no OpenBao token), and
 * answers read-backs with a digest, so secret values cross the tunnel once, inbound only.
 *   PUT /migration/v1/secrets/<ns>/<name>  {"data":{k:v}}  -> 200 {"version":N,"digest":hex}
 *   GET /migration/v1/secrets/<ns>/<name>                   -> 200 {"version":N,"digest":hex} | 404
 */
import { CloudtaserError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { OpenBaoClient } from '../openbao/index.js';
import { isKubernetesName, MIGRATION_TUNNEL_PREFIX, migrationKvPath } from '../podapi/protocol.js';
import { WORKLOAD_MOUNT } from '../registration/index.js';
import type { TunnelReply, TunnelRequest } from '../tunnel/index.js';
import { secretDataDigest } from './digest.js';

const JSON_HEADERS = { 'content-type': 'application/json' };
const MAX_KEYS = 1024;

export function isMigrationRequest(request: TunnelRequest): boolean {
  return request.path.startsWith(MIGRATION_TUNNEL_PREFIX);
}

/** `cluster` must be a client for the cluster's OpenBao namespace, authenticated as the bridge. */
export async function serveMigration(
  cluster: OpenBaoClient,
  request: TunnelRequest,
  log: Logger,
): Promise<TunnelReply> {
  const rest = request.path.slice(MIGRATION_TUNNEL_PREFIX.length).split('?')[0].split('/');
  if (rest.length !== 2 || !isKubernetesName(rest[0]) || !isKubernetesName(rest[1])) {
    return reply(400, { error: 'migration paths are /migration/v1/secrets/<namespace>/<name>' });
  }
  const [namespace, name] = rest;
  const kvPath = migrationKvPath(namespace, name);
  try {
    if (request.method === 'GET') {
      const stored = await cluster.kvRead(WORKLOAD_MOUNT, kvPath);
      if (!stored) return reply(404, { error: 'not migrated' });
      return reply(200, { version: stored.version, digest: secretDataDigest(stored.data) });
    }
    if (request.method === 'PUT') {
      const data = parseData(request.body);
      if (!data) return reply(400, { error: 'body must be {"data":{"key":"string value"}}' });
      const written = await cluster.kvWrite(WORKLOAD_MOUNT, kvPath, data);
      log.info(
        {
          event: 'bridge.migration_written',
          secretNamespace: namespace,
          secretName: name,
          keys: Object.keys(data).length,
        },
        'migrated Secret written to OpenBao',
      );
      return reply(200, { version: written.version, digest: secretDataDigest(data) });
    }
    return reply(405, { error: 'only GET and PUT' });
  } catch (err) {
    const code = err instanceof CloudtaserError ? err.code : 'CT_INTERNAL';
    log.warn(
      { event: 'bridge.migration_failed', code, secretNamespace: namespace },
      'migration write failed',
    );
    // Only the code crosses the tunnel; OpenBao's texts stay here.
    return reply(502, { error: `the bridge could not write to OpenBao (${code})`, code });
  }
}

function parseData(body: Buffer): Record<string, string> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  const data = (value as { data?: unknown } | null)?.data;
  if (!data || typeof data !== 'object' || Array.isArray(data)) return undefined;
  const entries = Object.entries(data as Record<string, unknown>);
  if (entries.length > MAX_KEYS || entries.some(([, v]) => typeof v !== 'string')) return undefined;
  return Object.fromEntries(entries) as Record<string, string>;
}

function reply(status: number, body: unknown): TunnelReply {
  return { status, headers: JSON_HEADERS, body: JSON.stringify(body) };
}
