/**
 * Attack: one beacon serves the bridges of several OpenBao operators (one bridge CA each, docs/threat-model.md
 * "Another OpenBao operator on the same beacon"). Another operator's bridges may wait in any room, ours included:
 * the broker cannot tell them from ours before its inner handshake, which refuses them. A room holds 8 bridges
 * (`maxWaitingPerHash`) and paired first come, first served, so their bridges could take every place (ours then
 * could not wait at all) or stand in front of ours (a broker then met all of theirs, one failed attempt and one
 * backoff each, before ours).
 *
 * Holds when: a bridge of an operator with no place in a full room takes the newest place of the operator holding
 * the most, and a broker meets the operators of a room in turn, so ours is paired by the second broker announce
 * at the latest, however many of theirs wait in front of it. One operator alone (or anonymous bridges) keeps
 * first come, first served.
 */
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { type BeaconHandle, waitForPeer } from '../../runtime/beacon/index.js';
import { createCertificateAuthority, issueCertificate } from '../../runtime/pki/index.js';
import { makeCerts, randomHash, startBeacon, targetFor } from '../beacon/helpers.js';
import { waitUntil } from '../support/wait.js';

const certs = makeCerts();
const ours = createCertificateAuthority({ commonName: 'our operator beacon client CA' });
const theirs = createCertificateAuthority({ commonName: 'another operator beacon client CA' });
const clientOf = (ca: typeof ours) => {
  const issued = issueCertificate(ca, { commonName: 'cloudtaser-bridge', extKeyUsage: ['clientAuth'] });
  return { certPem: issued.certPem, keyPem: issued.keyPem! };
};

const beacons: BeaconHandle[] = [];
const controllers: AbortController[] = [];
afterEach(async () => {
  for (const controller of controllers.splice(0)) controller.abort();
  for (const beacon of beacons.splice(0)) await beacon.close();
});

async function sharedBeacon(): Promise<BeaconHandle> {
  const beacon = await startBeacon(certs, {
    bridgeCaPems: [ours.certPem, theirs.certPem],
    // The room's pairing rate is not the subject here.
    limits: { maxPairingsPerHashPerSecond: 1_000 },
  });
  beacons.push(beacon);
  return beacon;
}

interface Waiter {
  state: 'dialing' | 'waiting' | 'paired' | 'refused';
  code?: string;
  stream?: Duplex;
}

/** A bridge of `ca`'s operator waiting in `hash`; resolves once the beacon says it waits (or refused it). */
async function bridgeWaits(beacon: BeaconHandle, hash: string, ca: typeof ours): Promise<Waiter> {
  const waiter: Waiter = { state: 'dialing' };
  const controller = new AbortController();
  controllers.push(controller);
  let reached!: () => void;
  const settled = new Promise<void>((resolve) => {
    reached = resolve;
  });
  waitForPeer({
    target: targetFor(beacon, 'tls'),
    ip: '127.0.0.1',
    role: 'bridge',
    hash,
    caCertPem: certs.beacon.certPem,
    clientCertificate: clientOf(ca),
    signal: controller.signal,
    onWaiting: () => {
      waiter.state = 'waiting';
      reached();
    },
  }).then(
    (stream) => {
      waiter.state = 'paired';
      waiter.stream = stream;
      stream.on('error', () => {});
      reached();
    },
    (err: { code?: string }) => {
      if (waiter.state !== 'paired') waiter.state = 'refused';
      waiter.code = err.code;
      reached();
    },
  );
  await settled;
  return waiter;
}

async function brokerPairs(beacon: BeaconHandle, hash: string): Promise<void> {
  const stream = await waitForPeer({
    target: targetFor(beacon, 'tls'),
    ip: '127.0.0.1',
    role: 'broker',
    hash,
    caCertPem: certs.beacon.certPem,
  });
  stream.destroy();
}

describe('bridges of another operator on a shared beacon', () => {
  it('cannot keep ours out of a room they filled: ours takes the newest of their places', async () => {
    const beacon = await sharedBeacon();
    const hash = randomHash();
    const theirWaiters: Waiter[] = [];
    for (let i = 0; i < 8; i++) theirWaiters.push(await bridgeWaits(beacon, hash, theirs));
    expect(theirWaiters.every((w) => w.state === 'waiting')).toBe(true);
    // Their ninth is refused, as before: the room is full and they hold places in it.
    expect(await bridgeWaits(beacon, hash, theirs)).toMatchObject({
      state: 'refused',
      code: 'CT_BEACON_LIMIT',
    });
    const ourWaiter = await bridgeWaits(beacon, hash, ours);
    expect(ourWaiter.state).toBe('waiting');
    await waitUntil(() => theirWaiters.at(-1)!.state === 'refused', { what: 'their newest waiter given up' });
    expect(theirWaiters.at(-1)!.code).toBe('CT_BEACON_LIMIT');
    expect(theirWaiters.slice(0, -1).every((w) => w.state === 'waiting')).toBe(true);
    // Ours holds its one place: their bridge dialing again finds the room full.
    expect(await bridgeWaits(beacon, hash, theirs)).toMatchObject({
      state: 'refused',
      code: 'CT_BEACON_LIMIT',
    });
    expect(ourWaiter.state).toBe('waiting');
  });

  it('cannot stand in front of ours: a broker meets the operators in turn', async () => {
    const beacon = await sharedBeacon();
    const hash = randomHash();
    for (let i = 0; i < 7; i++) await bridgeWaits(beacon, hash, theirs);
    const ourWaiter = await bridgeWaits(beacon, hash, ours);
    // First come, first served would hand the broker all seven of theirs first (seven failed inner handshakes and
    // backoffs). Each operator has a turn instead: theirs came first, ours is next.
    await brokerPairs(beacon, hash);
    expect(ourWaiter.state).toBe('waiting');
    await brokerPairs(beacon, hash);
    await waitUntil(() => ourWaiter.state === 'paired', { what: 'our bridge paired with the second broker' });
    ourWaiter.stream?.destroy();
  });

  it('keeps first come, first served among the bridges of one operator', async () => {
    const beacon = await sharedBeacon();
    const hash = randomHash();
    const waiters: Waiter[] = [];
    for (let i = 0; i < 3; i++) waiters.push(await bridgeWaits(beacon, hash, ours));
    for (let i = 0; i < 3; i++) {
      await brokerPairs(beacon, hash);
      await waitUntil(() => waiters[i]!.state === 'paired', { what: `waiter ${i} paired in order` });
      expect(waiters.slice(i + 1).every((w) => w.state === 'waiting')).toBe(true);
      waiters[i]!.stream?.destroy();
    }
  });
});
