/**
 * Health probes: a load balancer's TCP check on :443 (connect, close), a TLS check (handshake, close), and
 * `target doctor`'s own reachability probe. Each used to become a warn line `rejected ... announce_timeout` and a
 * rejection 10 s later, long after the client had gone (an outside on-call test: the "Beacon rejections by reason"
 * panel and the warn log filled with probes). A connection its client closed before announcing is a probe: no
 * rejection, a debug line. A client that stays connected without announcing is still closed and counted, and one
 * that gives up during the TLS handshake (it does not trust the beacon's certificate) is counted at once.
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
      // end(), not destroy(): destroy() discards the client's last handshake flight, and the beacon then sees a
      // client that gave up during the handshake (counted, next test), as load balancers' TLS checks do not.
      tls.end();
      const halfClosed = netConnect({ host: '127.0.0.1', port: beacon.port });
      await once(halfClosed, 'connect');
      halfClosed.end();
      await sleep(ANNOUNCE_MS * 3);
      expect(beacon.stats()).toMatchObject({ rejectionsTotal: 0, tlsHandshakesAborted: 0 });
      expect(log.lines.filter((l) => l.event === 'rejected' || l.event === 'tls_aborted')).toEqual([]);
      expect(beacon.stats().connections).toBe(0);
    });

    it('counts a client that gives up during the outer TLS handshake at once, and frees its place', async () => {
      // The default announce timeout (10 s): before, such connections stayed pending that long, then left unseen.
      const log = captureLogger();
      beacon = await startBeacon(certs, { plain, logger: log.logger });
      // A client that does not trust the beacon's certificate (no CA given: the beacon's is self-signed here).
      const distrustful = tlsConnect({ host: '127.0.0.1', port: beacon.port, servername: 'localhost' });
      const [error] = (await once(distrustful, 'error')) as [Error];
      expect(error.message).toMatch(/self-signed certificate/);
      // A client that sent part of a handshake record and closed, and one that reset.
      const partial = netConnect({ host: '127.0.0.1', port: beacon.port });
      await once(partial, 'connect');
      partial.end(Buffer.from('1603010005', 'hex'));
      const reset = netConnect({ host: '127.0.0.1', port: beacon.port });
      reset.on('error', () => {});
      await once(reset, 'connect');
      reset.write(Buffer.from('1603010005', 'hex'));
      await new Promise((resolve) => setTimeout(resolve, 50));
      reset.resetAndDestroy();
      const started = performance.now();
      await expect.poll(() => beacon!.stats().connections, { timeout: 2_000 }).toBe(0);
      expect(performance.now() - started).toBeLessThan(2_000);
      // Not a refusal (the beacon refused nothing): its own count, metric and line, once per address a minute.
      expect(beacon.stats()).toMatchObject({ pending: 0, tlsHandshakesAborted: 3, rejectionsTotal: 0 });
      const lines = log.lines.filter((l) => l.event === 'tls_aborted');
      expect(lines).toEqual([expect.objectContaining({ remote: '127.0.0.1', level: 40 })]);
      expect(String(lines[0]!.message)).toMatch(/does not trust this beacon's certificate/);
    });

    it('logs aborted handshakes from at most 100 addresses a minute in full, the rest in one summary', async () => {
      // A scan from thousands of addresses wrote about 2,000 lines a minute (an outside drill).
      const log = captureLogger();
      beacon = await startBeacon(certs, { plain, logger: log.logger });
      await Promise.all(
        Array.from({ length: 150 }, async (_, i) => {
          const partial = netConnect({
            host: '127.0.0.1',
            port: beacon!.port,
            localAddress: `127.0.${1 + Math.floor(i / 200)}.${2 + (i % 200)}`,
          });
          partial.on('error', () => {});
          await once(partial, 'connect');
          partial.end(Buffer.from('1603010005', 'hex'));
        }),
      );
      await expect.poll(() => beacon!.stats().tlsHandshakesAborted, { timeout: 5_000 }).toBe(150);
      // 100 addresses, and the first line of all the others (their shared window).
      expect(log.lines.filter((l) => l.event === 'tls_aborted')).toHaveLength(101);
      await beacon.close();
      beacon = undefined;
      expect(log.lines.filter((l) => l.event === 'tls_aborted_summary')).toEqual([
        expect.objectContaining({ overflow: true, suppressed: 49 }),
      ]);
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
