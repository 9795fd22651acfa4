/**
 * Attack: a beacon replica that is the attacker's answers every announce with `draining` (the shutdown notice that
 * makes a bridge move its tunnels), with an absurd pause, over and over. The notice is worth no more than the
 * close it comes with: the bridge paces that replica like an unreachable one (no tight redial loop), says so once,
 * moves no tunnel that runs through an honest replica, and only ever moves a tunnel by its own graceful close. Trust
 * is untouched: no bootstrap, the broker stays on its CA.
 */
import { once } from 'node:events';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RAW_ALPN } from '../../runtime/beacon/index.js';
import { frame } from '../beacon/helpers.js';
import { type OperationalStack, startOperationalStack } from '../operational/stack.js';
import { beaconCert, REPLICA_IPS } from '../runtime/fixtures.js';
import { waitUntil } from '../support/wait.js';

let stack: OperationalStack;
let hostile: TlsServer;
let announces = 0;

beforeAll(async () => {
  stack = await startOperationalStack({ logLevel: 'info' });
  await stack.broker.waitForPhase('operational', 15_000);
  // The second replica address is the attacker's: same name, same port, a certificate the clients trust.
  hostile = createTlsServer(
    { cert: beaconCert.certPem, key: beaconCert.keyPem, ALPNProtocols: [RAW_ALPN] },
    (socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => {
        announces += 1;
        socket.end(frame(JSON.stringify({ t: 'draining', retryAfterMs: 10 ** 12 })));
      });
    },
  );
  hostile.listen(stack.replicas.port, REPLICA_IPS[1]);
  await once(hostile, 'listening');
}, 60_000);
afterAll(async () => {
  hostile?.close();
  await stack?.close();
});

const lines = (event: string) => stack.logs.filter((line) => line.includes(`"event":"${event}"`));

describe('a hostile beacon replica that says `draining` to every announce', () => {
  it('is paced like an unreachable replica, moves no tunnel of an honest replica, and changes no trust', async () => {
    const [tunnel] = stack.bridge.tunnels();
    expect(stack.broker.status().beaconIp).toBe(REPLICA_IPS[0]);
    const bootstrapsBefore = stack.bridge.status().bootstrapsSigned;
    await stack.bridge.pollNow();
    await waitUntil(() => announces > 0, {
      what: 'the bridge dialing the hostile replica',
      timeoutMs: 10_000,
    });
    const from = announces;
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    const perSecond = (announces - from) / 4;

    // Paced: the bridge's circuit probes the replica (capped at 2 s) and the broker backs off; a loop that
    // redialed on every notice would be hundreds a second here.
    expect(perSecond).toBeLessThan(5);
    // Said once, bounded: the absurd pause is read as at most 120 s.
    const draining = lines('bridge.beacon_draining');
    expect(draining).toHaveLength(1);
    expect(JSON.parse(draining[0]).relaysCutInMs).toBeLessThanOrEqual(120_000);
    expect(JSON.parse(draining[0]).beaconIp).toBe(REPLICA_IPS[1]);
    // No per-dial warnings either: a notice is not a failure to alert on.
    expect(lines('bridge.beacon_failed').filter((line) => line.includes('CT_BEACON_DRAINING'))).toEqual([]);

    // The tunnel through the honest replica stays, and serves; nothing was re-established.
    expect(stack.bridge.tunnels()).toEqual([tunnel]);
    expect(tunnel.closed).toBe(false);
    const read = await stack.podRequest('GET', `/v1/sys/health`);
    expect(read.status).toBe(200);
    expect(stack.broker.status().phase).toBe('operational');
    expect(stack.bridge.status().bootstrapsSigned).toBe(bootstrapsBefore);
    expect(lines('tunnel.closed')).toEqual([]);
  }, 30_000);
});
