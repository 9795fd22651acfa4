/**
 * The beacon client CA (`beacon-client-ca` in the root namespace) is created once with check-and-set. After a
 * `bao kv delete` its record reads as absent but keeps its version, so check-and-set 0 fails: the error used to be
 * OpenBao's raw check-and-set message. It is not replaced (every beacon admits bridges by it): the error says how
 * to restore it, and nothing is written.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { ensureBeaconClientCa, paths, RECORDS_MOUNT } from '../../runtime/registration/index.js';

let server: OpenBaoTestServer;
let admin: OpenBaoClient;

beforeAll(async () => {
  server = await startOpenBaoTestServer();
  admin = new OpenBaoClient({ address: server.address, token: server.rootToken, retries: 0 });
});
afterAll(async () => {
  await admin?.close();
  await server?.close();
});

describe('beacon client CA', () => {
  it('is created once; a concurrent creator gets the same CA', async () => {
    const namespaceRoot = `ct-${randomUUID().slice(0, 8)}`;
    const [a, b] = await Promise.all([
      ensureBeaconClientCa(admin, { namespaceRoot }),
      ensureBeaconClientCa(admin, { namespaceRoot }),
    ]);
    expect(a.certPem).toContain('BEGIN CERTIFICATE');
    expect(a.certPem).toBe(b.certPem);
    expect([a.created, b.created].filter(Boolean)).toHaveLength(1);
  });

  it('when soft-deleted, says how to restore it and writes nothing (a new CA would lock the bridges out)', async () => {
    const namespaceRoot = `ct-${randomUUID().slice(0, 8)}`;
    await ensureBeaconClientCa(admin, { namespaceRoot });
    const root = admin.withNamespace(namespaceRoot);
    await root.kvDelete(RECORDS_MOUNT, paths.beaconClientCa);
    const writesBefore = server
      .requestLog()
      .filter((r) => r.method === 'POST' && r.path.endsWith(`/data/${paths.beaconClientCa}`)).length;
    const err = await ensureBeaconClientCa(admin, { namespaceRoot }).catch((error: unknown) => error);
    expect(err).toMatchObject({ code: 'CT_OPENBAO_CAS_MISMATCH' });
    expect((err as Error).message).toContain('was deleted');
    expect((err as Error).message).toContain(`bao kv undelete -namespace=${namespaceRoot}`);
    // One refused create, no second try with a new CA.
    const caWrites = server
      .requestLog()
      .filter((r) => r.method === 'POST' && r.path.endsWith(`/data/${paths.beaconClientCa}`));
    expect(caWrites.length - writesBefore).toBe(1);
    expect(await root.kvRead(RECORDS_MOUNT, paths.beaconClientCa)).toBeUndefined();
  });
});
