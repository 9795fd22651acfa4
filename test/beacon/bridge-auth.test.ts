/**
 * Only real bridges can wait in rooms: the beacon admits a `bridge` announce only when the outer TLS presented a
 * client certificate from one of its bridge CAs, valid now and meant for client authentication. Brokers stay
 * anonymous. One beacon serves several bridge CAs (several OpenBao operators) and takes new CAs without a restart.
 */
import { once } from 'node:events';
import { connect as tlsConnect } from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type BeaconClientCertificate,
  type BeaconHandle,
  createBeacon,
  RAW_ALPN,
  waitForPeer,
} from '../../runtime/beacon/index.js';
import { createCertificateAuthority, issueCertificate } from '../../runtime/pki/index.js';
import {
  announceFrame,
  type Certs,
  captureLogger,
  collectFrames,
  makeCerts,
  randomHash,
  rawClient,
  startBeacon,
  targetFor,
  webSocketClient,
} from './helpers.js';

let certs: Certs;
const operatorA = createCertificateAuthority({ commonName: 'operator A beacon client CA' });
const operatorB = createCertificateAuthority({ commonName: 'operator B beacon client CA' });
const stranger = createCertificateAuthority({ commonName: 'rogue CA' });
const beacons: BeaconHandle[] = [];

function clientOf(
  ca: ReturnType<typeof createCertificateAuthority>,
  options: { extKeyUsage?: ('clientAuth' | 'serverAuth')[]; notBefore?: Date; days?: number } = {},
): BeaconClientCertificate {
  const issued = issueCertificate(ca, {
    commonName: 'cloudtaser-bridge',
    extKeyUsage: options.extKeyUsage ?? ['clientAuth'],
    notBefore: options.notBefore,
    days: options.days,
  });
  return { certPem: issued.certPem, keyPem: issued.keyPem! };
}

beforeAll(() => {
  certs = makeCerts();
});
afterEach(async () => {
  for (const beacon of beacons.splice(0)) await beacon.close();
});

async function authenticatingBeacon(cas = [operatorA.certPem, operatorB.certPem], logger = captureLogger()) {
  const beacon = await startBeacon(certs, { bridgeCaPems: cas, logger: logger.logger, metrics: true });
  beacons.push(beacon);
  return { beacon, log: logger };
}

/** A bridge announce through the TLS or wss door; resolves with 'waiting' or the refusal's code. */
async function bridgeOutcome(
  beacon: BeaconHandle,
  door: 'tls' | 'wss' | 'plain',
  clientCertificate?: BeaconClientCertificate,
): Promise<string> {
  const controller = new AbortController();
  try {
    return await new Promise<string>((resolve) => {
      waitForPeer({
        target: targetFor(beacon, door),
        ip: '127.0.0.1',
        role: 'bridge',
        hash: randomHash(),
        caCertPem: certs.beacon.certPem,
        clientCertificate,
        signal: controller.signal,
        onWaiting: () => resolve('waiting'),
      }).then(
        () => resolve('paired'),
        (err: { code: string }) => resolve(err.code),
      );
    });
  } finally {
    controller.abort();
  }
}

describe('bridge authentication at the beacon', () => {
  it.each(['tls', 'wss'] as const)(
    'refuses a bridge without a client certificate on the %s door with CT_BEACON_UNAUTHENTICATED, and counts it',
    async (door) => {
      const { beacon, log } = await authenticatingBeacon();
      expect(await bridgeOutcome(beacon, door)).toBe('CT_BEACON_UNAUTHENTICATED');
      const refusal = log.lines.find((line) => line.reason === 'bridge_unauthenticated');
      expect(refusal).toMatchObject({ event: 'rejected', code: 'CT_BEACON_UNAUTHENTICATED', role: 'bridge' });
      expect(String(refusal?.message)).toMatch(/no client certificate/);
      const metrics = await (await fetch(`${beacon.metricsUrl}/metrics`)).text();
      expect(metrics).toMatch(/cloudtaser_beacon_rejections_total\{reason="bridge_unauthenticated"\} 1/);
      expect(beacon.stats().waitingBridges).toBe(0);
    },
  );

  it('logs a bridge refused again and again once a minute and sums up the rest, counting every one', async () => {
    // An outside SRE drill read 16 `bridge_unauthenticated` lines in 23 s from one misconfigured bridge.
    const { beacon, log } = await authenticatingBeacon();
    for (let i = 0; i < 8; i++) expect(await bridgeOutcome(beacon, 'tls')).toBe('CT_BEACON_UNAUTHENTICATED');
    expect(beacon.stats().rejectionsByReason.bridge_unauthenticated).toBe(8);
    expect(log.lines.filter((line) => line.event === 'rejected')).toHaveLength(1);
    const metrics = await (await fetch(`${beacon.metricsUrl}/metrics`)).text();
    expect(metrics).toMatch(/cloudtaser_beacon_rejections_total\{reason="bridge_unauthenticated"\} 8/);
    await beacon.close();
    const summary = log.lines.find((line) => line.event === 'rejected_summary');
    expect(summary).toMatchObject({
      reason: 'bridge_unauthenticated',
      remote: expect.stringMatching(/127\.0\.0\.1/),
      suppressed: 7,
      byCode: { CT_BEACON_UNAUTHENTICATED: 7 },
      firstAt: expect.any(String),
      lastAt: expect.any(String),
    });
    expect(String(summary?.msg)).toMatch(/^7 more like the one logged at/);
  });

  it('starts with an empty bridge CA set (a fresh chart install), serves brokers, refuses every bridge saying why, and admits them once a CA arrives', async () => {
    const { beacon, log } = await authenticatingBeacon([]);
    expect(log.lines.find((line) => line.event === 'no_bridge_ca')).toBeDefined();
    expect(await bridgeOutcome(beacon, 'tls', clientOf(operatorA))).toBe('CT_BEACON_UNAUTHENTICATED');
    const refusal = log.lines.find((line) => line.reason === 'bridge_unauthenticated');
    expect(String(refusal?.message)).toMatch(/trusts no bridge CA yet: .*cloudtaser-cli source beacon-ca/);
    const controller = new AbortController();
    const broker = new Promise<string>((resolve) => {
      waitForPeer({
        target: targetFor(beacon, 'tls'),
        ip: '127.0.0.1',
        role: 'broker',
        hash: randomHash(),
        caCertPem: certs.beacon.certPem,
        signal: controller.signal,
        onWaiting: () => resolve('waiting'),
      }).catch((err: { code: string }) => resolve(err.code));
    });
    expect(await broker).toBe('waiting');
    controller.abort();
    beacon.updateBridgeCas([operatorA.certPem]);
    expect(await bridgeOutcome(beacon, 'tls', clientOf(operatorA))).toBe('waiting');
  });

  it('lets anonymous brokers wait and bridges of either configured CA (one beacon, two operators) pair with them', async () => {
    const { beacon } = await authenticatingBeacon();
    for (const ca of [operatorA, operatorB]) {
      const hash = randomHash();
      const [broker, bridge] = await Promise.all([
        waitForPeer({
          target: targetFor(beacon, 'tls'),
          ip: '127.0.0.1',
          role: 'broker',
          hash,
          caCertPem: certs.beacon.certPem,
        }),
        waitForPeer({
          target: targetFor(beacon, 'wss'),
          ip: '127.0.0.1',
          role: 'bridge',
          hash,
          caCertPem: certs.beacon.certPem,
          clientCertificate: clientOf(ca),
        }),
      ]);
      broker.destroy();
      bridge.destroy();
    }
    expect(beacon.stats().pairingsTotal).toBe(2);
    expect(beacon.stats().rejectionsTotal).toBe(0);
  });

  it('refuses bridge certificates from an unknown CA, expired, not yet valid, or not meant for client authentication', async () => {
    const { beacon, log } = await authenticatingBeacon();
    const dayMs = 86_400_000;
    const cases: Array<[string, BeaconClientCertificate, RegExp]> = [
      ['unknown CA', clientOf(stranger), /not issued by a bridge CA this beacon trusts/],
      ['expired', clientOf(operatorA, { notBefore: new Date(Date.now() - 3 * dayMs), days: 1 }), /expired/],
      ['not yet valid', clientOf(operatorA, { notBefore: new Date(Date.now() + dayMs) }), /not valid before/],
      ['server-only', clientOf(operatorA, { extKeyUsage: ['serverAuth'] }), /client authentication/],
    ];
    for (const [what, certificate, why] of cases) {
      expect(await bridgeOutcome(beacon, 'tls', certificate), what).toBe('CT_BEACON_UNAUTHENTICATED');
      expect(
        String(log.lines.filter((l) => l.reason === 'bridge_unauthenticated').at(-1)?.message),
        what,
      ).toMatch(why);
    }
    expect(await bridgeOutcome(beacon, 'tls', clientOf(operatorA))).toBe('waiting');
  });

  it('refuses a well-formed chain that ends at a CA the beacon does not trust', async () => {
    const { beacon } = await authenticatingBeacon();
    const otherCa = createCertificateAuthority({ commonName: 'a CA nobody configured' });
    const leaf = clientOf(otherCa);
    const chain = { certPem: `${leaf.certPem}${otherCa.certPem}`, keyPem: leaf.keyPem };
    expect(await bridgeOutcome(beacon, 'tls', chain)).toBe('CT_BEACON_UNAUTHENTICATED');
  });

  it('refuses bridges on the plain door while bridge authentication is on, and still lets brokers in', async () => {
    const { beacon } = await authenticatingBeacon();
    const plain = await rawClient(beacon, certs, 'plain');
    const frames = collectFrames(plain);
    plain.write(announceFrame('bridge', randomHash()));
    expect((await frames).frames).toContainEqual(
      expect.objectContaining({ t: 'error', code: 'CT_BEACON_UNAUTHENTICATED' }),
    );
    const broker = await rawClient(beacon, certs, 'plain');
    const brokerFrames = collectFrames(broker, { leaveOn: 'waiting' });
    broker.write(announceFrame('broker', randomHash()));
    expect((await brokerFrames).frames[0]).toEqual({ t: 'waiting', keepaliveMs: expect.any(Number) });
  });

  it('checks bridges against the CAs in force: a CA removed by updateBridgeCas admits no new bridge, an added one does', async () => {
    const { beacon } = await authenticatingBeacon([operatorA.certPem]);
    expect(await bridgeOutcome(beacon, 'tls', clientOf(operatorB))).toBe('CT_BEACON_UNAUTHENTICATED');
    beacon.updateBridgeCas([operatorA.certPem, operatorB.certPem]);
    expect(await bridgeOutcome(beacon, 'tls', clientOf(operatorB))).toBe('waiting');
    beacon.updateBridgeCas([operatorB.certPem]);
    expect(await bridgeOutcome(beacon, 'tls', clientOf(operatorA))).toBe('CT_BEACON_UNAUTHENTICATED');
    expect(() => beacon.updateBridgeCas(['not a certificate'])).toThrow(/bridge CAs are unusable/);
    // A refused update keeps the CAs in force.
    expect(await bridgeOutcome(beacon, 'tls', clientOf(operatorB))).toBe('waiting');
  });

  it('does not let a client certificate from the beacon TLS session of an earlier connection stand in for a new one', async () => {
    // Brokers resume outer TLS sessions; a bridge dials with its certificate every time. A resumed broker
    // session carries no certificate, so a resumed connection announcing as bridge is refused.
    const { beacon } = await authenticatingBeacon();
    const first = tlsConnect({
      host: '127.0.0.1',
      port: beacon.port,
      ca: certs.beacon.certPem,
      servername: 'localhost',
      ALPNProtocols: [RAW_ALPN],
    });
    const [session] = (await once(first, 'session')) as [Buffer];
    first.destroy();
    const resumed = tlsConnect({
      host: '127.0.0.1',
      port: beacon.port,
      ca: certs.beacon.certPem,
      servername: 'localhost',
      ALPNProtocols: [RAW_ALPN],
      session,
    });
    await once(resumed, 'secureConnect');
    const frames = collectFrames(resumed);
    resumed.write(announceFrame('bridge', randomHash()));
    expect((await frames).frames).toContainEqual(
      expect.objectContaining({ t: 'error', code: 'CT_BEACON_UNAUTHENTICATED' }),
    );
  });

  it('refuses to start without bridge CAs unless anonymous bridges are asked for explicitly, and warns when they are', async () => {
    const base = {
      host: '127.0.0.1',
      port: 0,
      tls: { certPem: certs.beacon.certPem, keyPem: certs.beacon.keyPem },
    };
    await expect(createBeacon(base)).rejects.toMatchObject({
      code: 'CT_INVALID_ARGUMENT',
      message: expect.stringMatching(/bridgeCaPems' is required/),
    });
    await expect(
      createBeacon({ ...base, bridgeCaPems: [operatorA.certPem], allowAnonymousBridges: true }),
    ).rejects.toMatchObject({
      code: 'CT_INVALID_ARGUMENT',
      message: expect.stringMatching(/mutually exclusive/),
    });
    await expect(createBeacon({ ...base, bridgeCaPems: [certs.broker.certPem] })).rejects.toMatchObject({
      code: 'CT_INVALID_ARGUMENT',
      message: expect.stringMatching(/not a CA certificate/),
    });
    const log = captureLogger();
    beacons.push(await createBeacon({ ...base, allowAnonymousBridges: true, logger: log.logger }));
    expect(log.lines).toContainEqual(expect.objectContaining({ event: 'anonymous_bridges', level: 40 }));
  });

  it('keeps a WebSocket bridge without a certificate out as well', async () => {
    const { beacon } = await authenticatingBeacon();
    const ws = await webSocketClient(beacon, certs);
    const messages: string[] = [];
    ws.on('message', (data) => messages.push(String(data)));
    ws.send(Buffer.from(JSON.stringify({ v: 1, role: 'bridge', hash: randomHash() })), { binary: true });
    const [code] = (await once(ws, 'close')) as [number];
    expect(code).toBe(1008);
    expect(messages.map((m) => JSON.parse(m))).toContainEqual(
      expect.objectContaining({ t: 'error', code: 'CT_BEACON_UNAUTHENTICATED' }),
    );
  });
});
