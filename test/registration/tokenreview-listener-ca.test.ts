/**
 * The TokenReview listener CA (`tokenreview/ca` in the root namespace) is created once with check-and-set. A
 * soft-deleted latest version (`bao kv delete cloudtaser/tokenreview/ca`) reads as absent but keeps its version
 * number, so cas=0 can never replace it: register must replace it at that version, and give up with a clear
 * error when the record keeps changing under it, never loop.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import {
  KUBERNETES_AUTH_MOUNT,
  loadTokenReviewCa,
  RECORDS_MOUNT,
  registerCluster,
  TOKENREVIEW_PATHS,
} from '../../runtime/registration/index.js';
import { provisionIdentities } from '../openbao-identities.js';

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

/** Each test its own root namespace, so each has its own listener CA. */
function namespaceRoot(): string {
  return `ct-${randomUUID().slice(0, 8)}`;
}

function listenerCaWrites(namespace: string, since: number): number {
  return server
    .requestLog()
    .slice(since)
    .filter(
      (r) =>
        r.method === 'POST' &&
        r.namespace === namespace &&
        r.path.endsWith(`/data/${TOKENREVIEW_PATHS.listenerCa}`),
    ).length;
}

describe('TokenReview listener CA', () => {
  it('register replaces a soft-deleted listener CA with one write and points the cluster at the new CA', async () => {
    const root = namespaceRoot();
    await registerCluster(admin, { fingerprint: randomUUID(), namespaceRoot: root });
    const old = await loadTokenReviewCa(admin.withNamespace(root));
    await admin.withNamespace(root).kvDelete(RECORDS_MOUNT, TOKENREVIEW_PATHS.listenerCa);
    const since = server.requestLog().length;
    // Before the fix this run never returned (cas=0 writes without end).
    const { namespace } = await registerCluster(admin, { fingerprint: randomUUID(), namespaceRoot: root });
    const replaced = await loadTokenReviewCa(admin.withNamespace(root));
    expect(replaced?.certPem).toBeDefined();
    expect(replaced?.certPem).not.toBe(old?.certPem);
    // One write that meets the soft-deleted version, one that replaces it.
    expect(listenerCaWrites(root, since)).toBe(2);
    const config = await admin
      .withNamespace(namespace)
      .request<{ data: { kubernetes_ca_cert: string } }>('GET', `auth/${KUBERNETES_AUTH_MOUNT}/config`);
    expect(config.body?.data.kubernetes_ca_cert.trim()).toBe(replaced?.certPem.trim());
  }, 15_000);

  it('register stops with CT_OPENBAO_CAS_MISMATCH naming the listener CA after 5 conflicts in a row', async () => {
    const root = namespaceRoot();
    const since = server.requestLog().length;
    // Every check-and-set write of the record loses, as when other runs keep writing it.
    server.injectFault({
      method: 'POST',
      pathPattern: new RegExp(`/data/${TOKENREVIEW_PATHS.listenerCa}$`),
      status: 400,
      errors: ['check-and-set parameter did not match the current version'],
      times: 5,
    });
    // The faked conflicts leave no newer version for the next read to show: it must not wait for one.
    const client = new OpenBaoClient({
      address: server.address,
      token: server.rootToken,
      retries: 0,
      readAfterWriteTimeoutMs: 1,
    });
    const err = await registerCluster(client, { fingerprint: randomUUID(), namespaceRoot: root })
      .catch((e: unknown) => e)
      .finally(() => client.close());
    expect(err).toMatchObject({ code: 'CT_OPENBAO_CAS_MISMATCH' });
    expect((err as Error).message).toMatch(/TokenReview listener CA record .* changed .* 5 times in a row/);
    expect(listenerCaWrites(root, since)).toBe(5);
  });
});

describe('TokenReview listener CA with the shipped registrar policy', () => {
  const ROOT = 'ct-shipped';
  let shipped: OpenBaoTestServer;
  let shippedAdmin: OpenBaoClient;
  let registrar: OpenBaoClient;
  beforeAll(async () => {
    shipped = await startOpenBaoTestServer();
    shippedAdmin = new OpenBaoClient({ address: shipped.address, token: shipped.rootToken, retries: 0 });
    const ids = await provisionIdentities(shippedAdmin, { namespaceRoot: ROOT });
    registrar = shippedAdmin.withToken(ids.registrarToken);
  });
  afterAll(async () => {
    await shippedAdmin?.close();
    await shipped?.close();
  });

  it('two first registrations at once both succeed and share one listener CA (the loser of the create uses the winner)', async () => {
    const [a, b] = await Promise.all([
      registerCluster(registrar, { fingerprint: randomUUID(), namespaceRoot: ROOT }),
      registerCluster(registrar, { fingerprint: randomUUID(), namespaceRoot: ROOT }),
    ]);
    const ca = await loadTokenReviewCa(shippedAdmin.withNamespace(ROOT));
    for (const { namespace } of [a, b]) {
      const config = await shippedAdmin
        .withNamespace(namespace)
        .request<{ data: { kubernetes_ca_cert: string } }>('GET', `auth/${KUBERNETES_AUTH_MOUNT}/config`);
      expect(config.body?.data.kubernetes_ca_cert.trim()).toBe(ca?.certPem.trim());
    }
  });

  it('a soft-deleted listener CA stops register at once with what to do (kv undelete, or an admin run), no loop', async () => {
    await shippedAdmin.withNamespace(ROOT).kvDelete(RECORDS_MOUNT, TOKENREVIEW_PATHS.listenerCa);
    const err = await registerCluster(registrar, { fingerprint: randomUUID(), namespaceRoot: ROOT }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'CT_OPENBAO_PERMISSION_DENIED' });
    expect((err as Error).message).toContain(`bao kv undelete -mount=${RECORDS_MOUNT}`);
  });
});
