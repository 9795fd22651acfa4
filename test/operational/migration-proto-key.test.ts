/**
 * Secret migration with a key named `__proto__` (a valid Secret key, [-._a-zA-Z0-9]+). The broker decoded the
 * values into a plain object, where assigning that key is silently ignored: the proof covered the other keys,
 * matched, and the Secret was deleted with that value in neither place. Found by an adversarial review; failed
 * before the fix (deleted: ['weird'], OpenBao keys ['user']).
 *
 * The in-repo Kubernetes test server loses such a key too, so this drives the real bridge side (serveMigration,
 * with the shipped bridge policy, against the OpenBao test server) with a Secret list as the API server's JSON parses.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../runtime/core/log.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import type { KubeSecret } from '../../runtime/kube/index.js';
import { serveMigration, startSecretMigrator } from '../../runtime/migration/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { registerCluster } from '../../runtime/registration/index.js';
import type { TunnelMux, TunnelRequest } from '../../runtime/tunnel/index.js';
import { provisionIdentities } from '../openbao-identities.js';

let server: OpenBaoTestServer;
let admin: OpenBaoClient;
let asBridge: OpenBaoClient;
let asAdmin: OpenBaoClient;

beforeAll(async () => {
  server = await startOpenBaoTestServer();
  admin = new OpenBaoClient({ address: server.address, token: server.rootToken });
  const identities = await provisionIdentities(admin);
  const cluster = await registerCluster(admin.withToken(identities.registrarToken), {
    fingerprint: randomUUID(),
    migration: true,
  });
  asBridge = admin.withToken(identities.bridgeToken).withNamespace(cluster.namespace);
  asAdmin = admin.withNamespace(cluster.namespace);
});
afterAll(async () => {
  await admin?.close();
  await server?.close();
});

describe('migration of a Secret with a key named __proto__', () => {
  it('keeps the Secret unless OpenBao holds every key', async () => {
    // Exactly how the broker's KubeClient sees the API server's answer: JSON.parse makes `__proto__` an own key.
    const listed = JSON.parse(
      JSON.stringify({
        metadata: {},
        items: [
          {
            metadata: {
              name: 'weird',
              namespace: 'ns1',
              uid: randomUUID(),
              resourceVersion: '7',
              annotations: { 'cloudtaser.io/migrate': 'true' },
            },
            type: 'Opaque',
            data: { user: Buffer.from('app').toString('base64') },
          },
        ],
      }).replace('"data":{', `"data":{"__proto__":"${Buffer.from('only-copy').toString('base64')}",`),
    ) as { metadata: object; items: KubeSecret[] };
    expect(Object.keys(listed.items[0].data ?? {})).toEqual(['__proto__', 'user']);

    const deleted: string[] = [];
    const tunnel = {
      closed: false,
      async request(head: { method: string; path: string; headers: Record<string, string> }, body?: string) {
        const request: TunnelRequest = { ...head, body: Buffer.from(body ?? '') } as TunnelRequest;
        return serveMigration(request, { cluster: asBridge, enabled: true, log: silentLogger }).then((r) => ({
          status: r.status,
          headers: {},
          body: Buffer.from(String(r.body ?? '')),
        }));
      },
    } as unknown as TunnelMux;
    const migrator = startSecretMigrator({
      intervalMs: 0,
      tunnel: () => tunnel,
      kube: {
        listSecrets: async () => listed,
        deleteSecret: async (_ns: string, name: string) => {
          deleted.push(name);
        },
        createEvent: async () => ({}),
      } as never,
    });
    const outcomes = await migrator.runOnce();
    await migrator.close();
    const stored = await asAdmin.kvRead('secret', 'k8s/ns1/weird');
    const report = { outcome: outcomes[0]?.result, deleted, storedKeys: Object.keys(stored?.data ?? {}) };
    // Never both: deleted from Kubernetes and missing from OpenBao.
    expect(report).toSatisfy(
      (r: typeof report) => r.deleted.length === 0 || r.storedKeys.includes('__proto__'),
    );
  });
});
