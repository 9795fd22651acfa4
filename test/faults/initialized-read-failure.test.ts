/**
 * The bootstrap's one-time `initialized` check-and-set: OpenBao applies it but its answer is lost, the client's
 * retry meets a CAS mismatch, and the read that would find this call's own write id fails for a moment (sealed,
 * a load balancer's 503). That failure proves nothing: it must reach the bridge as a retryable error (the broker
 * is told "could not record; retrying"), never as CT_ALREADY_INITIALIZED, which tells the operator to re-arm and
 * makes the broker wait at the slow pace although the record is this very bootstrap's.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import {
  getClusterStatus,
  markClusterInitialized,
  registerCluster,
} from '../../runtime/registration/index.js';
import { type FaultProxy, startFaultProxy } from './openbao-proxy.js';

const RETRIES = 2;

let server: OpenBaoTestServer;
let proxy: FaultProxy;
let admin: OpenBaoClient;
let throughProxy: OpenBaoClient;

beforeAll(async () => {
  server = await startOpenBaoTestServer();
  proxy = await startFaultProxy(server.address);
  admin = new OpenBaoClient({ address: server.address, token: server.rootToken });
  throughProxy = new OpenBaoClient({
    address: proxy.address,
    token: server.rootToken,
    retries: RETRIES,
    retryBaseDelayMs: 1,
  });
});
afterAll(async () => {
  await throughProxy?.close();
  await admin?.close();
  await proxy?.close();
  await server?.close();
});

describe('bootstrap record: lost answer, then the verifying read fails', () => {
  it('reports the read failure (a retryable OpenBao error), not CT_ALREADY_INITIALIZED, for its own record', async () => {
    const fingerprint = randomUUID();
    await registerCluster(admin, { fingerprint });
    const initialized = new RegExp(`/data/clusters/${fingerprint}/initialized$`);
    // The write commits, its answer is lost (502); the client's retry then meets the record: a CAS mismatch.
    proxy.inject({ method: 'POST', pathPattern: initialized, afterForward: true, status: 502 });
    // The read that would recognise the record fails beyond the client's retries.
    proxy.inject({ method: 'GET', pathPattern: initialized, sealed: true, times: RETRIES + 1 });
    const err = await markClusterInitialized(throughProxy, {
      fingerprint,
      brokerCertSha256: 'a'.repeat(64),
      brokerKeySha256: 'b'.repeat(64),
    }).catch((e: unknown) => e);
    const status = await getClusterStatus(admin, { fingerprint });
    expect(status.initializedBrokerKeySha256).toBe('b'.repeat(64));
    expect(err).toMatchObject({ code: 'CT_OPENBAO_SEALED' });
  });
});
