/**
 * DEV-ONLY test infrastructure: a KV version 2 secrets engine for the OpenBao-compatible test server, with
 * OpenBao's check-and-set rules, not-found shapes and error texts (wire-facts A3). Upstream, in
 * internal/builtin/logical/kv/: path_data.go (writes, `validateCheckAndSetOption`, reads whose deleted or
 * destroyed version is a 404 carrying the envelope, PATCH as a JSON merge patch), path_metadata.go (metadata
 * read, write and delete; LIST with folders ending in `/`; an empty list is 404), path_delete.go,
 * path_destroy.go (`No version number provided` / `no version number provided`), path_config.go, backend.go
 * (`pathInvalid`: 404 with a warning for the bare mount or an unknown sub-path).
 */
import type { Backend, BaoRequest } from './backend.js';
import {
  BaoError,
  type BaoResponse,
  badRequest,
  isRecord,
  noContent,
  notFoundEmpty,
  ok,
  parseDurationSeconds,
  rfc3339,
  unsupportedOperation,
} from './wire.js';

interface Version {
  readonly data: Record<string, unknown>;
  readonly createdMs: number;
  deletionMs: number | undefined;
  destroyed: boolean;
}

interface KeyMetadata {
  readonly versions: Map<number, Version>;
  currentVersion: number;
  oldestVersion: number;
  maxVersions: number;
  casRequired: boolean;
  customMetadata: Record<string, string> | null;
  deleteVersionAfterSeconds: number;
  readonly createdMs: number;
  updatedMs: number;
  metadataVersion: number;
}

const DEFAULT_MAX_VERSIONS = 10;
const INVALID_PATH_WARNING =
  'Invalid path for a versioned K/V secrets engine; see the KV v2 API for the data/, metadata/, delete/, undelete/ and destroy/ endpoints.';

/** What the KV v2 engine stores; one per mount. */
export class KvStore {
  readonly keys = new Map<string, KeyMetadata>();
  config = { maxVersions: 0, casRequired: false, deleteVersionAfterSeconds: 0 };
}

function goDuration(seconds: number): string {
  if (seconds === 0) return '0s';
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return `${h > 0 ? `${h}h` : ''}${h > 0 || m > 0 ? `${m}m` : ''}${s}s`;
}

function versionMetadata(meta: KeyMetadata, number: number, version: Version): Record<string, unknown> {
  return {
    created_time: rfc3339(version.createdMs),
    custom_metadata: meta.customMetadata,
    deletion_time: version.deletionMs === undefined ? '' : rfc3339(version.deletionMs),
    destroyed: version.destroyed,
    version: number,
  };
}

function parseVersions(body: Record<string, unknown>, missingText: string): number[] {
  const versions = Array.isArray(body.versions) ? body.versions.map(Number).filter(Number.isInteger) : [];
  if (versions.length === 0) throw badRequest(missingText);
  return versions;
}

function parseCas(options: unknown): number | undefined {
  if (!isRecord(options) || options.cas === undefined || options.cas === null) return undefined;
  const value = options.cas;
  const number = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : Number.NaN;
  if (!Number.isInteger(number) || (typeof value === 'string' && !/^-?\d+$/.test(value.trim()))) {
    throw badRequest('error parsing check-and-set parameter');
  }
  return number;
}

/** Splits `data/a/b` into the operation family and key; undefined for the bare mount or unknown families. */
function split(mountPath: string): { family: string; key: string } | undefined {
  const slash = mountPath.indexOf('/');
  if (slash < 0) return mountPath === 'config' ? { family: 'config', key: '' } : undefined;
  const family = mountPath.slice(0, slash);
  if (!['data', 'metadata', 'delete', 'undelete', 'destroy', 'detailed-metadata'].includes(family))
    return undefined;
  return { family, key: mountPath.slice(slash + 1) };
}

export function createKvV2Backend(store: KvStore): Backend {
  const now = () => Date.now();

  const isLive = (version: Version | undefined): boolean =>
    version !== undefined &&
    !version.destroyed &&
    (version.deletionMs === undefined || version.deletionMs > now());

  /**
   * The key as a read sees it: on a lagging HA standby (`visibleAsOf`) only the versions written by then, with
   * the newest of them as the current one; undefined when none was. Deletions are seen at once (a simplification).
   */
  function visibleKey(request: BaoRequest, key: string): KeyMetadata | undefined {
    const meta = store.keys.get(key);
    const asOf = request.visibleAsOf;
    if (!meta || asOf === undefined) return meta;
    if (meta.createdMs > asOf) return undefined;
    const versions = new Map([...meta.versions].filter(([, version]) => version.createdMs <= asOf));
    const numbers = [...versions.keys()];
    return {
      ...meta,
      versions,
      currentVersion: numbers.length === 0 ? 0 : Math.max(...numbers),
      oldestVersion: numbers.length === 0 ? 0 : Math.min(...numbers),
    };
  }

  function readData(request: BaoRequest, key: string): BaoResponse {
    const meta = visibleKey(request, key);
    if (!meta) throw notFoundEmpty();
    const asked = request.query.get('version');
    const number = asked === null || asked === '' || asked === '0' ? meta.currentVersion : Number(asked);
    if (!Number.isInteger(number)) throw badRequest('error converting input for field "version"');
    const version = meta.versions.get(number);
    if (!version) throw notFoundEmpty();
    const metadata = versionMetadata(meta, number, version);
    if (!isLive(version)) return { kind: 'data', status: 404, data: { data: null, metadata } };
    return ok({ data: version.data, metadata });
  }

  function writeData(request: BaoRequest, key: string, patch: boolean): BaoResponse {
    if (key === '') throw badRequest('missing path');
    const body = request.body;
    if (!isRecord(body.data)) throw badRequest('no data provided');
    const meta = store.keys.get(key);
    const cas = parseCas(body.options);
    if (patch) {
      if (!meta) throw notFoundEmpty();
      const latest = meta.versions.get(meta.currentVersion);
      if (!isLive(latest)) {
        throw new BaoError(404, []);
      }
    }
    const casRequired = store.config.casRequired || meta?.casRequired === true;
    const current = meta?.currentVersion ?? 0;
    if (cas === undefined && casRequired) throw badRequest('check-and-set parameter required for this call');
    if (cas !== undefined && cas !== current) {
      throw badRequest('check-and-set parameter did not match the current version');
    }
    const created = now();
    const entry: KeyMetadata = meta ?? {
      versions: new Map(),
      currentVersion: 0,
      oldestVersion: 0,
      maxVersions: 0,
      casRequired: false,
      customMetadata: null,
      deleteVersionAfterSeconds: 0,
      createdMs: created,
      updatedMs: created,
      metadataVersion: 0,
    };
    let data = body.data as Record<string, unknown>;
    if (patch) {
      data = mergePatch(entry.versions.get(entry.currentVersion)!.data, data) as Record<string, unknown>;
    }
    const number = entry.currentVersion + 1;
    const deleteAfter = entry.deleteVersionAfterSeconds || store.config.deleteVersionAfterSeconds;
    entry.versions.set(number, {
      data,
      createdMs: created,
      deletionMs: deleteAfter > 0 ? created + deleteAfter * 1000 : undefined,
      destroyed: false,
    });
    entry.currentVersion = number;
    entry.updatedMs = created;
    if (entry.oldestVersion === 0) entry.oldestVersion = number;
    const max = entry.maxVersions || store.config.maxVersions || DEFAULT_MAX_VERSIONS;
    while (entry.versions.size > max) {
      const oldest = Math.min(...entry.versions.keys());
      entry.versions.delete(oldest);
      entry.oldestVersion = Math.min(...entry.versions.keys());
    }
    store.keys.set(key, entry);
    return ok(versionMetadata(entry, number, entry.versions.get(number)!));
  }

  function listKeys(request: BaoRequest, prefix: string, detailed: boolean): BaoResponse {
    const folder = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
    const names = new Set<string>();
    const info: Record<string, unknown> = {};
    for (const key of store.keys.keys()) {
      if (!key.startsWith(folder)) continue;
      const meta = visibleKey(request, key);
      if (!meta) continue;
      const rest = key.slice(folder.length);
      const slash = rest.indexOf('/');
      const name = slash < 0 ? rest : rest.slice(0, slash + 1);
      names.add(name);
      if (detailed) info[name] = slash < 0 ? describeMetadata(meta) : (info[name] ?? {});
    }
    // A page when asked (path_metadata.go pathMetadataList: `after`, `limit`; storage ListPage): the keys sorted,
    // those after `after`, at most `limit` of them (none or <= 0: all). An empty page is an empty list: 404.
    const after = request.query.get('after') ?? '';
    const limitText = request.query.get('limit');
    const limit = limitText === null || limitText === '' ? -1 : Number(limitText);
    if (!Number.isInteger(limit)) throw badRequest('error converting input for field "limit"');
    let keys = [...names].sort().filter((name) => name > after);
    if (limit > 0) keys = keys.slice(0, limit);
    if (names.size === 0 || keys.length === 0) throw notFoundEmpty();
    return ok(
      detailed ? { keys, key_info: Object.fromEntries(keys.map((key) => [key, info[key]])) } : { keys },
    );
  }

  function describeMetadata(meta: KeyMetadata): Record<string, unknown> {
    const versions: Record<string, unknown> = {};
    for (const [number, version] of meta.versions) {
      versions[String(number)] = {
        created_time: rfc3339(version.createdMs),
        deletion_time: version.deletionMs === undefined ? '' : rfc3339(version.deletionMs),
        destroyed: version.destroyed,
      };
    }
    return {
      cas_required: meta.casRequired,
      created_time: rfc3339(meta.createdMs),
      current_metadata_version: meta.metadataVersion,
      current_version: meta.currentVersion,
      custom_metadata: meta.customMetadata,
      delete_version_after: goDuration(meta.deleteVersionAfterSeconds),
      max_versions: meta.maxVersions,
      metadata_cas_required: false,
      oldest_version: meta.oldestVersion,
      updated_time: rfc3339(meta.updatedMs),
      versions,
    };
  }

  function writeMetadata(request: BaoRequest, key: string): BaoResponse {
    if (key === '') throw badRequest('missing path');
    const body = request.body;
    const fields = ['max_versions', 'cas_required', 'delete_version_after', 'custom_metadata'];
    if (!fields.some((field) => field in body)) return noContent();
    const created = now();
    const meta: KeyMetadata = store.keys.get(key) ?? {
      versions: new Map(),
      currentVersion: 0,
      oldestVersion: 0,
      maxVersions: 0,
      casRequired: false,
      customMetadata: null,
      deleteVersionAfterSeconds: 0,
      createdMs: created,
      updatedMs: created,
      metadataVersion: 0,
    };
    if ('max_versions' in body) meta.maxVersions = Number(body.max_versions) || 0;
    if ('cas_required' in body) meta.casRequired = body.cas_required === true || body.cas_required === 'true';
    if ('delete_version_after' in body) {
      meta.deleteVersionAfterSeconds = parseDurationSeconds(
        body.delete_version_after,
        'delete_version_after',
      );
    }
    if ('custom_metadata' in body) {
      const custom = body.custom_metadata;
      if (custom !== null && !isRecord(custom)) throw badRequest('custom_metadata must be a map of strings');
      const entries = Object.entries(custom ?? {});
      if (entries.length > 64) throw badRequest('custom_metadata can only contain 64 keys');
      for (const [k, v] of entries) {
        if (typeof v !== 'string' || k.length < 1 || k.length > 128 || v.length < 1 || v.length > 512) {
          throw badRequest(`custom_metadata key ${JSON.stringify(k)} or its value is invalid`);
        }
      }
      meta.customMetadata = Object.fromEntries(entries) as Record<string, string>;
    }
    meta.metadataVersion++;
    meta.updatedMs = created;
    store.keys.set(key, meta);
    return noContent();
  }

  return {
    exists(request) {
      const parts = split(request.mountPath);
      if (!parts) return true;
      if (parts.family === 'data' || parts.family === 'metadata') return store.keys.has(parts.key);
      return true;
    },
    handle(request) {
      const { operation } = request;
      const listing = operation === 'list' || operation === 'scan';
      const parts = split(
        listing ? request.mountPath.replace(/\/$/, '') || request.mountPath : request.mountPath,
      );
      if (listing) {
        const family = request.mountPath.split('/')[0];
        if (family !== 'metadata' && family !== 'detailed-metadata') throw unsupportedOperation();
        const prefix = request.mountPath.slice(family.length + 1);
        return listKeys(request, prefix, family === 'detailed-metadata');
      }
      if (!parts) {
        return { kind: 'data', status: 404, data: null, warnings: [INVALID_PATH_WARNING] };
      }
      const write = operation === 'create' || operation === 'update';
      const { family, key } = parts;
      switch (family) {
        case 'config':
          if (operation === 'read') {
            return ok({
              cas_required: store.config.casRequired,
              delete_version_after: goDuration(store.config.deleteVersionAfterSeconds),
              max_versions: store.config.maxVersions,
            });
          }
          if (!write) throw unsupportedOperation();
          if ('max_versions' in request.body)
            store.config.maxVersions = Number(request.body.max_versions) || 0;
          if ('cas_required' in request.body) store.config.casRequired = request.body.cas_required === true;
          if ('delete_version_after' in request.body) {
            store.config.deleteVersionAfterSeconds = parseDurationSeconds(
              request.body.delete_version_after,
              'delete_version_after',
            );
          }
          return noContent();
        case 'data':
          if (operation === 'read') return readData(request, key);
          if (write) return writeData(request, key, false);
          if (operation === 'patch') return writeData(request, key, true);
          if (operation === 'delete') {
            const meta = store.keys.get(key);
            const latest = meta?.versions.get(meta.currentVersion);
            if (latest && isLive(latest)) latest.deletionMs = now();
            return noContent();
          }
          throw unsupportedOperation();
        case 'metadata':
          if (operation === 'read') {
            const meta = visibleKey(request, key);
            if (!meta) throw notFoundEmpty();
            return ok(describeMetadata(meta));
          }
          if (write) return writeMetadata(request, key);
          if (operation === 'delete') {
            store.keys.delete(key);
            return noContent();
          }
          throw unsupportedOperation();
        case 'delete':
        case 'undelete':
        case 'destroy': {
          if (!write) throw unsupportedOperation();
          const versions = parseVersions(
            request.body,
            family === 'destroy' ? 'no version number provided' : 'No version number provided',
          );
          const meta = store.keys.get(key);
          for (const number of versions) {
            const version = meta?.versions.get(number);
            if (!version) continue;
            if (family === 'delete' && !version.destroyed && version.deletionMs === undefined) {
              version.deletionMs = now();
            }
            if (family === 'undelete' && !version.destroyed) version.deletionMs = undefined;
            if (family === 'destroy') version.destroyed = true;
          }
          return noContent();
        }
        default:
          return { kind: 'data', status: 404, data: null, warnings: [INVALID_PATH_WARNING] };
      }
    },
  };
}

/** RFC 7396 JSON merge patch, as KV v2's PATCH applies it to the latest version's data. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isRecord(patch)) return patch;
  const out: Record<string, unknown> = isRecord(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}
