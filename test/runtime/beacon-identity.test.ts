/**
 * The bridge's identity towards the beacon: the beacon client CA is created once in OpenBao (check-and-set, one
 * winner among concurrent callers, only the certificate leaves OpenBao); the bridge mints short-lived client
 * certificates from it in memory and renews them, or reads files a certificate manager renews. A bridge with
 * such an identity waits at an authenticating beacon; without one it is refused and says why in /status.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BeaconHandle, createBeacon } from '../../runtime/beacon/index.js';
import { startMintedBeaconIdentity, watchBeaconIdentityFiles } from '../../runtime/bridge/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { createCertificateAuthority, isIssuedBy, issueCertificate } from '../../runtime/pki/index.js';
import {
  ensureBeaconClientCa,
  loadBeaconClientCa,
  readBeaconClientCaCertificate,
} from '../../runtime/registration/index.js';
import { freePort } from '../ports.js';
import { forwardPort } from '../support/port-forwarder.js';
import { waitUntil } from '../support/wait.js';
import { beaconCert, type SecretStore, startSecretStore, startTestBridge } from './fixtures.js';

let store: SecretStore;
let dir: string;

beforeAll(async () => {
  store = await startSecretStore();
  dir = await mkdtemp(join(tmpdir(), 'beacon-identity-'));
});
afterAll(async () => {
  await store?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the beacon client CA in OpenBao', () => {
  it('is created once (concurrent callers agree on one), keeps its key in OpenBao and hands out only the certificate', async () => {
    expect(await readBeaconClientCaCertificate(store.admin)).toBeUndefined();
    await expect(loadBeaconClientCa(store.admin)).rejects.toMatchObject({
      code: 'CT_BEACON_IDENTITY',
      message: expect.stringMatching(/cloudtaser-cli source beacon-ca/),
    });
    const results = await Promise.all([ensureBeaconClientCa(store.admin), ensureBeaconClientCa(store.admin)]);
    expect(results[0].certPem).toBe(results[1].certPem);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    const again = await ensureBeaconClientCa(store.admin);
    expect(again).toMatchObject({ created: false, certPem: results[0].certPem, sha256: results[0].sha256 });
    expect(JSON.stringify(again)).not.toMatch(/PRIVATE KEY/);
    expect(new X509Certificate(again.certPem).ca).toBe(true);
    expect((await readBeaconClientCaCertificate(store.admin))?.sha256).toBe(again.sha256);
  });
});

describe('the bridge beacon identity', () => {
  it('mints a client certificate from the CA in OpenBao and renews it before it expires', async () => {
    const ca = await ensureBeaconClientCa(store.admin);
    const identity = await startMintedBeaconIdentity({ openbao: store.admin, lifetimeMs: 10_000 });
    try {
      const first = new X509Certificate(identity.current()!.certPem);
      expect(isIssuedBy(first, ca.certPem)).toBe(true);
      expect(first.keyUsage).toContain('1.3.6.1.5.5.7.3.2');
      // Valid until about `lifetime` from now, not a day or a year.
      expect(Date.parse(first.validTo) - Date.now()).toBeLessThanOrEqual(11_000);
      await waitUntil(
        () => new X509Certificate(identity.current()!.certPem).serialNumber !== first.serialNumber,
        { timeoutMs: 10_000, what: 'a renewal' },
      );
      expect(isIssuedBy(identity.current()!.certPem, ca.certPem)).toBe(true);
    } finally {
      identity.close();
    }
  });

  it('keeps a long-lived certificate (60 days: renewal due after 30, beyond a Node timer) instead of minting in a loop', async () => {
    await ensureBeaconClientCa(store.admin);
    const identity = await startMintedBeaconIdentity({ openbao: store.admin, lifetimeMs: 60 * 86_400_000 });
    try {
      const first = identity.current()!.certPem;
      // A delay past 2^31 ms used to fire after 1 ms: a new certificate (and an OpenBao read) every millisecond.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(identity.current()!.certPem).toBe(first);
    } finally {
      identity.close();
    }
  });

  it('starts without a certificate while OpenBao cannot be reached, and mints one once it can (it used to exit)', async () => {
    await ensureBeaconClientCa(store.admin);
    // OpenBao behind an address that refuses connections until a forwarder starts there.
    const port = await freePort();
    const openbao = new OpenBaoClient({
      address: `http://127.0.0.1:${port}`,
      token: store.server.rootToken,
      retries: 0,
    });
    const identity = await startMintedBeaconIdentity({ openbao, retryMs: 200 });
    let back: { close(): Promise<void> } | undefined;
    try {
      expect(identity.current()).toBeUndefined();
      back = await forwardPort(port, new URL(store.server.address));
      await waitUntil(() => identity.current() !== undefined, {
        timeoutMs: 5_000,
        what: 'the first certificate',
      });
      expect(new X509Certificate(identity.current()!.certPem).keyUsage).toContain('1.3.6.1.5.5.7.3.2');
    } finally {
      identity.close();
      await openbao.close();
      await back?.close();
    }
  });

  it('fails at start with CT_BEACON_IDENTITY when OpenBao holds no beacon client CA', async () => {
    const empty = await startSecretStore();
    try {
      await expect(startMintedBeaconIdentity({ openbao: empty.admin })).rejects.toMatchObject({
        code: 'CT_BEACON_IDENTITY',
      });
    } finally {
      await empty.close();
    }
  });

  it('reads certificate files, follows their rotation, and keeps the old pair while the new key is not written yet', async () => {
    const ca = createCertificateAuthority({ commonName: 'cert-manager issuer' });
    const one = issueCertificate(ca, { commonName: 'bridge', extKeyUsage: ['clientAuth'] });
    const two = issueCertificate(ca, { commonName: 'bridge', extKeyUsage: ['clientAuth'] });
    const certFile = join(dir, 'tls.crt');
    const keyFile = join(dir, 'tls.key');
    await writeFile(certFile, one.certPem);
    await writeFile(keyFile, one.keyPem!);
    const identity = await watchBeaconIdentityFiles({ certFile, keyFile, intervalMs: 100 });
    try {
      expect(identity.current()!.certPem).toBe(one.certPem);
      await writeFile(certFile, two.certPem);
      expect(await identity.checkNow?.()).toBe(false);
      expect(identity.current()!.certPem).toBe(one.certPem);
      await writeFile(keyFile, two.keyPem!);
      await waitUntil(() => identity.current()!.certPem === two.certPem, {
        timeoutMs: 5_000,
        what: 'the rotated pair',
      });
    } finally {
      identity.close();
    }
    await writeFile(keyFile, one.keyPem!);
    await writeFile(certFile, two.certPem);
    await expect(watchBeaconIdentityFiles({ certFile, keyFile })).rejects.toMatchObject({
      code: 'CT_INVALID_ARGUMENT',
      message: expect.stringMatching(/key does not belong to the certificate/),
    });
  });
});

describe('a bridge at an authenticating beacon', () => {
  let beacon: BeaconHandle;
  afterAll(async () => {
    await beacon?.close();
  });

  it('waits with a minted identity, and without one is refused with the reason in /status', async () => {
    const ca = await ensureBeaconClientCa(store.admin);
    beacon = await createBeacon({ host: '127.0.0.1', port: 0, tls: beaconCert, bridgeCaPems: [ca.certPem] });
    await store.register();
    const openbao = new OpenBaoClient({ address: store.server.address, token: store.server.rootToken });
    const identity = await startMintedBeaconIdentity({ openbao });
    const good = await startTestBridge({
      openbao,
      beacons: [`127.0.0.1:${beacon.port}`],
      beaconIdentity: identity,
    });
    const anonymous = await startTestBridge({
      openbao,
      beacons: [`127.0.0.1:${beacon.port}`],
      beaconIdentity: { current: () => undefined },
    });
    try {
      await waitUntil(() => good.status().clusters.some((c) => c.waiting > 0), {
        timeoutMs: 10_000,
        what: 'the identified bridge waiting',
      });
      await waitUntil(() => anonymous.status().beaconIdentityError !== undefined, {
        timeoutMs: 10_000,
        what: 'the refusal in /status',
      });
      expect(anonymous.status().beaconIdentityError).toMatch(/CT_BEACON_UNAUTHENTICATED/);
      expect(anonymous.status().clusters.every((c) => c.waiting === 0)).toBe(true);
      expect(good.status().beaconIdentityError).toBeUndefined();
    } finally {
      await good.close();
      await anonymous.close();
      identity.close();
      await openbao.close();
    }
  });
});
