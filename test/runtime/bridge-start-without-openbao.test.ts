/**
 * A bridge started while OpenBao is away (both restarted at once, an outage): before, `bridge run` exited at once
 * (its beacon client certificate could not be minted), and a pod that exits is restarted with a growing delay, so
 * the bridge came back minutes after OpenBao. It starts now and retries; it reports not ready until one discovery
 * poll worked (it knows no cluster and no reviewer credential before that), then serves.
 */
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMintedBeaconIdentity } from '../../runtime/bridge/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { ensureBeaconClientCa } from '../../runtime/registration/index.js';
import { freePort } from '../ports.js';
import { forwardPort } from '../support/port-forwarder.js';
import { waitUntil } from '../support/wait.js';
import { type SecretStore, startSecretStore, startTestBridge } from './fixtures.js';

let store: SecretStore;

beforeAll(async () => {
  store = await startSecretStore();
  await ensureBeaconClientCa(store.admin);
}, 30_000);
afterAll(async () => {
  await store?.close();
});

describe('a bridge started while OpenBao is away', () => {
  it('starts, is not ready until a poll works, then serves the registered clusters', async () => {
    const cluster = await store.register();
    const port = await freePort();
    const openbao = new OpenBaoClient({
      address: `http://127.0.0.1:${port}`,
      token: store.identities.bridgeToken,
      retries: 0,
    });
    const identity = await startMintedBeaconIdentity({ openbao, retryMs: 200 });
    const bridge = await startTestBridge({
      openbao,
      beacons: ['127.0.0.1:1'],
      beaconIdentity: identity,
      health: { host: '127.0.0.1', port: 0 },
    });
    const readyz = async () => {
      const answer = await request(`${bridge.healthUrl}/readyz`);
      await answer.body.dump();
      return answer.statusCode;
    };
    let back: { close(): Promise<void> } | undefined;
    try {
      expect(await readyz()).toBe(503);
      expect(bridge.status().lastPollError).toMatch(/^CT_OPENBAO_UNREACHABLE/);
      // OpenBao answers again.
      back = await forwardPort(port, new URL(store.server.address));
      await bridge.pollNow();
      expect(await readyz()).toBe(200);
      expect(bridge.status().clusters.map((c) => c.fingerprintPrefix)).toContain(
        cluster.fingerprint.slice(0, 8),
      );
      await waitUntil(() => identity.current() !== undefined, { what: 'the beacon client certificate' });
    } finally {
      await bridge.close();
      identity.close();
      await openbao.close();
      await back?.close();
    }
  }, 30_000);
});
