import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BeaconHandle, waitForPeer } from '../../runtime/beacon/index.js';
import { hashPrefix } from '../../runtime/core/index.js';
import { waitUntil } from '../support/wait.js';
import {
  announceFrame,
  type Certs,
  captureLogger,
  collectFrames,
  innerMutualTls,
  makeCerts,
  randomHash,
  rawClient,
  readBytes,
  startBeacon,
  targetFor,
} from './helpers.js';

let certs: Certs;
let beacon: BeaconHandle;
const log = captureLogger();

beforeAll(async () => {
  certs = makeCerts();
  beacon = await startBeacon(certs, {
    logger: log.logger,
    metrics: true,
    limits: { announceTimeoutMs: 300, maxConnections: 5000 },
  });
});
afterAll(async () => {
  await beacon.close();
});

describe('beacon logs and metrics', () => {
  it('logs connection metadata with a hash prefix, never the payload or the full hash', async () => {
    const hash = randomHash();
    const payload = 'SECRET-PAYLOAD-7f3a9c';
    const dial = (role: 'broker' | 'bridge', door: 'tls' | 'wss') =>
      waitForPeer({
        target: targetFor(beacon, door),
        ip: '127.0.0.1',
        role,
        hash,
        caCertPem: certs.beacon.certPem,
      });
    const [broker, bridge] = await Promise.all([dial('broker', 'tls'), dial('bridge', 'wss')]);
    // Payload in the clear through the relay (no inner TLS) so a leak would be visible in the logs.
    const got = readBytes(bridge, payload.length);
    broker.write(payload);
    expect((await got).toString()).toBe(payload);
    broker.end();
    bridge.end();
    await waitUntil(() => log.lines.some((line) => line.event === 'relay_closed'));

    const all = log.raw.join('\n');
    expect(all).not.toContain(payload);
    expect(all).not.toContain(hash);
    expect(all).toContain(hashPrefix(hash));
    const paired = log.lines.find((line) => line.event === 'paired');
    expect(paired).toMatchObject({
      component: 'beacon',
      hashPrefix: hashPrefix(hash),
      brokerDoor: 'tls',
      bridgeDoor: 'wss',
      brokerRemote: '127.0.0.1',
    });
    const closed = log.lines.find((line) => line.event === 'relay_closed');
    expect(closed).toMatchObject({ bytesBrokerToBridge: payload.length, bytesBridgeToBroker: 0 });
    expect(typeof closed?.durationMs).toBe('number');
  });

  it('does not log the bytes of an inner TLS session or of a garbage announce', async () => {
    const hash = randomHash();
    const dial = (role: 'broker' | 'bridge') =>
      waitForPeer({ target: targetFor(beacon, 'plain'), ip: '127.0.0.1', role, hash });
    const [broker, bridge] = await Promise.all([dial('broker'), dial('bridge')]);
    const inner = await innerMutualTls(certs, broker, bridge);
    inner.bridge.destroy();
    inner.broker.destroy();
    const socket = await rawClient(beacon, certs, 'tls');
    const result = collectFrames(socket);
    socket.write(Buffer.concat([Buffer.from([0, 30]), Buffer.from('{"v":1,"role":"x","hash":"zz"}')]));
    await result;
    expect(log.raw.join('\n')).not.toContain('"hash":"zz"');
    expect(log.raw.join('\n')).not.toContain(hash);
  });

  it('serves Prometheus text with pairings, rejections by reason, waiting and bytes', async () => {
    const socket = await rawClient(beacon, certs, 'tls');
    const result = collectFrames(socket);
    socket.write(announceFrame('bridge', 'f'.repeat(63)));
    await result;
    const response = await fetch(`${beacon.metricsUrl}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/plain');
    const text = await response.text();
    expect(text).toMatch(/^cloudtaser_beacon_pairings_total\{broker_door="tls",bridge_door="wss"\} 1$/m);
    expect(text).toMatch(/^cloudtaser_beacon_rejections_total\{reason="bad_hash"\} [1-9]/m);
    expect(text).toMatch(/^cloudtaser_beacon_waiting\{role="bridge"\} 0$/m);
    expect(text).toMatch(/^cloudtaser_beacon_relayed_bytes_total\{direction="broker_to_bridge"\} [1-9]\d*$/m);
    expect(text).toMatch(/^cloudtaser_beacon_paired 0$/m);
    expect(text).toContain('cloudtaser_beacon_process_resident_memory_bytes');
  });

  it('exports its --max-connections bound next to the open connections, so an alert can page before new ones are refused', async () => {
    const text = await (await fetch(`${beacon.metricsUrl}/metrics`)).text();
    expect(text).toMatch(/^cloudtaser_beacon_max_connections 5000$/m);
    expect(text).toMatch(/^cloudtaser_beacon_connections \d+$/m);
  });

  it('answers health and readiness, and 404 elsewhere', async () => {
    expect((await fetch(`${beacon.metricsUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${beacon.metricsUrl}/readyz`)).status).toBe(200);
    expect((await fetch(`${beacon.metricsUrl}/nope`)).status).toBe(404);
  });

  it('counts waiting connections by role while they wait', async () => {
    const controller = new AbortController();
    let waiting = false;
    const pending = waitForPeer({
      target: targetFor(beacon, 'tls'),
      ip: '127.0.0.1',
      role: 'bridge',
      hash: randomHash(),
      caCertPem: certs.beacon.certPem,
      signal: controller.signal,
      onWaiting: () => {
        waiting = true;
      },
    }).catch(() => undefined);
    await waitUntil(() => waiting);
    const text = await (await fetch(`${beacon.metricsUrl}/metrics`)).text();
    expect(text).toMatch(/^cloudtaser_beacon_waiting\{role="bridge"\} 1$/m);
    expect(beacon.stats()).toMatchObject({ waitingBridges: 1, waiting: 1, rooms: 1 });
    controller.abort();
    await pending;
  });
});
