/**
 * KV v2, with read-your-writes: after this connection writes a key (or loses a check-and-set on it), a read waits
 * (bounded) until the answering node shows that write, in case it is an HA standby lagging the active node. The
 * calls run over the client's transport through `KvHost`; `OpenBaoClient` exposes each as a method.
 */
import { isCloudtaserError } from '../core/index.js';
import type { KvExpectation, WriteLedger } from './consistency.js';
import type { RequestContext } from './errors.js';
import { kvKey, trimSlashes } from './paths.js';
import type { HttpMethod, OpenBaoResponse, OpenBaoTransport, RequestOptions } from './transport.js';
import type { KvMetadata, KvSecret } from './types.js';
import type { RawKvMetadata, RawKvRead } from './wire.js';

/** What the KV calls need of the client: its requests, its namespace, and the connection's read-after-write ledger. */
export interface KvHost {
  readonly namespace: string;
  request<T>(method: HttpMethod, path: string, options?: RequestOptions): Promise<OpenBaoResponse<T>>;
  readonly ledger: WriteLedger;
  readonly readConsistent: OpenBaoTransport['readConsistent'];
  context(method: string, path: string): RequestContext;
}

// ---- KV v2 ----

/**
 * The secret's data, or undefined when missing, deleted or destroyed. Right after this connection wrote it (or
 * lost a check-and-set on it), waits (bounded) until the answer is at least that new, in case the answering
 * node is a standby that lags the active node. `changedByOthers`: the caller knows another process changed the
 * record after this connection's write (the discovery journal says so), so a record gone with its whole history
 * (404 without a version: deleted with its metadata) is that change, not lag; any version shown must still be
 * at least this connection's.
 */
export async function kvRead(
  host: KvHost,
  mount: string,
  path: string,
  options: { version?: number; changedByOthers?: boolean } = {},
): Promise<KvSecret | undefined> {
  const apiPath = `${trimSlashes(mount)}/data/${kvKey(path)}`;
  const read = async () => {
    const response = await host.request<{ data: RawKvRead }>('GET', apiPath, {
      query: { version: options.version },
      allow404: true,
    });
    const data = response.body?.data;
    // A deleted or destroyed version still names its number (404 with the envelope).
    const seenVersion = Number(data?.metadata?.version ?? 0);
    if (response.status === 404 || !data || data.data === null || data.data === undefined)
      return { secret: undefined, seenVersion };
    const secret: KvSecret = {
      data: data.data,
      version: seenVersion,
      createdTime: String(data.metadata?.created_time ?? ''),
      customMetadata: data.metadata?.custom_metadata ?? null,
    };
    return { secret, seenVersion };
  };
  const expected =
    options.version === undefined
      ? host.ledger.kvExpectation(host.namespace, trimSlashes(mount), kvKey(path))
      : undefined;
  if (!expected) return (await read()).secret;
  const answer = await host.readConsistent(
    `the latest write to ${apiPath}`,
    expected.deadline,
    host.context('GET', apiPath),
    read,
    ({ seenVersion }) =>
      kvConsistent(expected.value, seenVersion) || (options.changedByOthers === true && seenVersion === 0),
  );
  host.ledger.kvSeen(host.namespace, trimSlashes(mount), kvKey(path));
  return answer.secret;
}

/** Writes a new version. With `cas`, only if the current version equals it (0 = never written); else CT_OPENBAO_CAS_MISMATCH. */
export async function kvWrite(
  host: KvHost,
  mount: string,
  path: string,
  data: Record<string, unknown>,
  options: { cas?: number } = {},
): Promise<{ version: number; createdTime?: string }> {
  const body: Record<string, unknown> = { data };
  if (options.cas !== undefined) body.options = { cas: options.cas };
  const ledger = host.ledger;
  let response: OpenBaoResponse<{ data: { version: number; created_time?: string } }>;
  try {
    response = await host.request('POST', `${trimSlashes(mount)}/data/${kvKey(path)}`, { body });
  } catch (err) {
    // The check-and-set lost, so another version is current: a read right after must not show the old one.
    if (isCloudtaserError(err, 'CT_OPENBAO_CAS_MISMATCH') && options.cas !== undefined)
      ledger.kv(host.namespace, trimSlashes(mount), kvKey(path), { kind: 'not', version: options.cas });
    throw err;
  }
  const version = Number(response.body?.data?.version ?? 0);
  ledger.kv(host.namespace, trimSlashes(mount), kvKey(path), { kind: 'at-least', version });
  // OpenBao's clock at the write: what a time written for bridges to compare with should start from.
  const createdTime = response.body?.data?.created_time;
  return typeof createdTime === 'string' ? { version, createdTime } : { version };
}

/** Keys directly under `prefix` (folders end in '/'); [] when there are none. */
export async function kvList(host: KvHost, mount: string, prefix: string): Promise<string[]> {
  const folder = trimSlashes(prefix);
  const response = await host.request<{ data: { keys?: string[] } }>(
    'LIST',
    `${trimSlashes(mount)}/metadata/${folder === '' ? '' : `${kvKey(folder)}/`}`,
    { allow404: true },
  );
  if (response.status === 404) return [];
  return response.body?.data?.keys ?? [];
}

export async function kvReadMetadata(
  host: KvHost,
  mount: string,
  path: string,
): Promise<KvMetadata | undefined> {
  const response = await host.request<{ data: RawKvMetadata }>(
    'GET',
    `${trimSlashes(mount)}/metadata/${kvKey(path)}`,
    { allow404: true },
  );
  const raw = response.body?.data;
  if (response.status === 404 || !raw) return undefined;
  const versions: KvMetadata['versions'] = {};
  for (const [number, version] of Object.entries(raw.versions ?? {})) {
    versions[Number(number)] = {
      createdTime: version.created_time,
      deletionTime: version.deletion_time,
      destroyed: version.destroyed,
    };
  }
  return {
    currentVersion: Number(raw.current_version ?? 0),
    oldestVersion: Number(raw.oldest_version ?? 0),
    createdTime: String(raw.created_time ?? ''),
    updatedTime: String(raw.updated_time ?? ''),
    maxVersions: Number(raw.max_versions ?? 0),
    casRequired: raw.cas_required === true,
    customMetadata: raw.custom_metadata ?? null,
    versions,
  };
}

/**
 * Sets a key's custom metadata (OpenBao replaces the whole map: pass every key to keep). Creates the metadata
 * when the key has none.
 */
export async function kvWriteMetadata(
  host: KvHost,
  mount: string,
  path: string,
  options: { customMetadata: Record<string, string> },
): Promise<void> {
  await host.request('POST', `${trimSlashes(mount)}/metadata/${kvKey(path)}`, {
    body: { custom_metadata: options.customMetadata },
  });
}

/** Removes every version and the metadata (afterwards cas=0 works again). Missing = ok. */
export async function kvDeleteMetadata(host: KvHost, mount: string, path: string): Promise<void> {
  await host.request('DELETE', `${trimSlashes(mount)}/metadata/${kvKey(path)}`);
  // A deletion is not waited for: it is seldom read back, so its expectation would outlive the moment and
  // mistake a later re-creation by another process for lag. What this process wrote before is forgotten.
  host.ledger.kvSeen(host.namespace, trimSlashes(mount), kvKey(path));
}

/** Soft-deletes the latest version (recoverable with undelete). Missing = ok. */
export async function kvDelete(host: KvHost, mount: string, path: string): Promise<void> {
  await host.request('DELETE', `${trimSlashes(mount)}/data/${kvKey(path)}`);
  host.ledger.kvSeen(host.namespace, trimSlashes(mount), kvKey(path));
}

/** Whether a KV read (its secret and the version number it names) shows what the ledger expects. */
function kvConsistent(expected: KvExpectation, seenVersion: number): boolean {
  switch (expected.kind) {
    case 'at-least':
      return seenVersion >= expected.version;
    case 'not':
      return seenVersion !== expected.version;
  }
}
