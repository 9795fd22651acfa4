/**
 * The dialer's TLS contexts: one per client identity, however many identities one process holds. The fleet benchmark
 * runs 1,000 brokers in one process; a shared cache of 8 contexts keyed by certificate text made every operational
 * dial of theirs (each presents its own certificate since the broker proof) parse its key and chain again.
 */
import type * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

const built = vi.hoisted(() => ({ clientContexts: 0 }));
vi.mock('node:tls', async (original) => {
  const actual = await original<typeof import('node:tls')>();
  return {
    ...actual,
    createSecureContext: (options?: tls.SecureContextOptions) => {
      if (options?.key !== undefined) built.clientContexts++;
      return actual.createSecureContext(options);
    },
  };
});

const { waitForPeer } = await import('../../runtime/beacon/index.js');
const { issueSelfSignedSync } = await import('../../runtime/pki/index.js');
const { makeCerts, randomHash, startBeacon, targetFor } = await import('./helpers.js');
type BeaconHandle = Awaited<ReturnType<typeof startBeacon>>;

const certs = makeCerts();
let beacon: BeaconHandle;
beforeAll(async () => {
  beacon = await startBeacon(certs, { plain: false });
});
afterAll(async () => {
  await beacon.close();
});

/** Dials until the beacon says `waiting`, then gives up the wait. */
async function dialOnce(identity: { certPem: string; keyPem: string }): Promise<void> {
  const abort = new AbortController();
  await waitForPeer({
    target: targetFor(beacon, 'tls'),
    ip: '127.0.0.1',
    role: 'bridge',
    hash: randomHash(),
    caCertPem: certs.beacon.certPem,
    clientCertificate: identity,
    signal: abort.signal,
    onWaiting: () => abort.abort(),
  }).catch(() => undefined);
}

describe('dialing with many client identities from one process', () => {
  it('builds each identity its TLS context once, not once per dial', async () => {
    const identities = Array.from({ length: 12 }, (_, i) => {
      const issued = issueSelfSignedSync({ commonName: `identity ${i}` });
      return { certPem: issued.certPem, keyPem: issued.keyPem };
    });
    const before = built.clientContexts;
    // Round robin, as 1,000 brokers redial after a beacon restart: each identity dials three times.
    for (let round = 0; round < 3; round++) for (const identity of identities) await dialOnce(identity);
    expect(beacon.stats().tlsHandshakesAborted).toBe(0);
    expect(built.clientContexts - before).toBe(identities.length);
  });
});
