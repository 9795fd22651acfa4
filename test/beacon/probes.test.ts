/**
 * Health probes: a load balancer's TCP check on :443 (connect, close), a TLS check (handshake, close), and
 * `target doctor`'s own reachability probe. Each used to become a warn line `rejected ... announce_timeout` and a
 * rejection 10 s later, long after the client had gone (an outside on-call test: the "Beacon rejections by reason"
 * panel and the warn log filled with probes). A connection its client closed before announcing is a probe: no
 * rejection, a debug line. A client that stays connected without announcing is still closed and counted.
 */
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import type { BeaconHandle } from '../../runtime/beacon/index.js';
import { captureLogger, makeCerts, rawClient, startBeacon } from './helpers.js';

const certs = makeCerts();
let beacon: BeaconHandle | undefined;
afterEach(async () => {
  await beacon?.close();
  beacon = undefined;
});

const ANNOUNCE_MS = 300;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

for (const plain of [false, true])
  describe(`probes at a beacon with the plain door ${plain ? 'on' : 'off (the default)'}`, () => {
    it('counts no rejection and logs no warning for clients that connect and leave before announcing', async () => {
      const log = captureLogger();
      beacon = await startBeacon(certs, {
        plain,
        logger: log.logger,
        limits: { announceTimeoutMs: ANNOUNCE_MS },
      });
      const tcp = netConnect({ host: '127.0.0.1', port: beacon.port });
      await once(tcp, 'connect');
      tcp.destroy();
      const tls = tlsConnect({
        host: '127.0.0.1',
        port: beacon.port,
        ca: certs.beacon.certPem,
        servername: 'localhost',
      });
      await once(tls, 'secureConnect');
      tls.destroy();
      const halfClosed = netConnect({ host: '127.0.0.1', port: beacon.port });
      await once(halfClosed, 'connect');
      halfClosed.end();
      await sleep(ANNOUNCE_MS * 3);
      expect(beacon.stats().rejectionsTotal).toBe(0);
      expect(log.lines.filter((l) => l.event === 'rejected')).toEqual([]);
      expect(beacon.stats().connections).toBe(0);
    });

    it('still closes and counts a client that stays connected without announcing', async () => {
      const log = captureLogger();
      beacon = await startBeacon(certs, {
        plain,
        logger: log.logger,
        limits: { announceTimeoutMs: ANNOUNCE_MS },
      });
      const idle = await rawClient(beacon, certs, 'tls');
      idle.on('error', () => {});
      idle.resume();
      await once(idle, 'close');
      expect(log.lines.filter((l) => l.event === 'rejected' && l.reason === 'announce_timeout')).toHaveLength(
        1,
      );
    });
  });
