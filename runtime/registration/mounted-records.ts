/**
 * Record reads and deletes that take a namespace without the records mount as a namespace without records:
 * registration, deregistration and status meet such namespaces half-way through a first registration.
 */
import { isCloudtaserError } from '../core/errors.js';
import type { KvSecret, OpenBaoClient } from '../openbao/index.js';
import { RECORDS_MOUNT } from './layout.js';

export async function readSecretIfMounted(
  client: OpenBaoClient,
  path: string,
): Promise<KvSecret | undefined> {
  try {
    return await client.kvRead(RECORDS_MOUNT, path);
  } catch (err) {
    if (isCloudtaserError(err, 'CT_OPENBAO_NOT_FOUND')) return undefined;
    throw err;
  }
}

export async function readIfMounted(
  client: OpenBaoClient,
  path: string,
): Promise<Record<string, unknown> | undefined> {
  try {
    return (await client.kvRead(RECORDS_MOUNT, path))?.data;
  } catch (err) {
    // A namespace without the records mount has no records: same as absent.
    if (isCloudtaserError(err, 'CT_OPENBAO_NOT_FOUND')) return undefined;
    throw err;
  }
}

export async function deleteIfMounted(client: OpenBaoClient, path: string): Promise<void> {
  try {
    await client.kvDeleteMetadata(RECORDS_MOUNT, path);
  } catch (err) {
    if (isCloudtaserError(err, 'CT_OPENBAO_NOT_FOUND')) return;
    throw err;
  }
}
