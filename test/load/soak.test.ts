/**
 * Soak: for CLOUDTASER_SOAK_SECONDS (10 in CI; 120 for the full run), repeat the whole life of a broker: re-arm,
 * bootstrap through the init room, operational mutual TLS, a burst of tunnel round trips both ways, close. The
 * beacon runs as its own process. At the end, heap and RSS of this process, RSS of the beacon, and open file
 * descriptors of both must be back near their level after warm-up (with tolerance): nothing accumulates per
 * bootstrap, per tunnel or per request.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BridgeHandle, startBridge } from '../../runtime/bridge/index.js';
import { startBroker } from '../../runtime/broker/index.js';
import { rearmCluster } from '../../runtime/registration/index.js';
import { TUNNEL_INFO_PATH } from '../../runtime/tunnel/index.js';
import { heapUsedAfterGc } from '../fuzz/support.js';
import {
  beaconCert,
  FAST_BRIDGE_TIMING,
  FAST_BROKER_TIMING,
  type SecretStore,
  startSecretStore,
} from '../runtime/fixtures.js';
import { waitUntil } from '../support/wait.js';
import { type BeaconProcess, openFdsOf, rssOf, startBeaconProcess } from './processes.js';

const SECONDS = Number(process.env.CLOUDTASER_SOAK_SECONDS ?? 10);
const ROUND_TRIPS_PER_ROUND = 25;
const MIB = 1024 * 1024;

let store: SecretStore;
let beacon: BeaconProcess;
let bridge: BridgeHandle;

beforeAll(async () => {
  store = await startSecretStore();
  beacon = await startBeaconProcess({
    host: '127.0.0.1',
    port: 0,
    plain: false,
    tls: beaconCert,
    limits: { brokerWaitMs: 2_000, bridgeWaitMs: 5_000, keepaliveIntervalMs: 1_000 },
  });
});
afterAll(async () => {
  await bridge?.close();
  await beacon?.close();
  await store?.close();
});

interface Sample {
  heapMiB: number;
  rssMiB: number;
  fds: number;
  beaconRssMiB: number;
  beaconHeapMiB: number;
  beaconFds: number;
}

async function sample(): Promise<Sample> {
  const report = await beacon.report();
  return {
    heapMiB: heapUsedAfterGc() / MIB,
    rssMiB: rssOf('self') / MIB,
    fds: openFdsOf('self'),
    beaconRssMiB: report.rssBytes / MIB,
    beaconHeapMiB: report.heapUsedBytes / MIB,
    beaconFds: report.openFds,
  };
}

describe('soak: repeated bootstrap and tunnel round trips', () => {
  it(
    `keeps memory and file descriptors flat over ${SECONDS} s of bootstrap / tunnel cycles`,
    async () => {
      const cluster = await store.register();
      const beaconAddress = `127.0.0.1:${beacon.port}`;
      bridge = await startBridge({
        openbao: store.bridge,
        beacons: [beaconAddress],
        beaconCaPem: beaconCert.certPem,
        timing: FAST_BRIDGE_TIMING,
        handler: async (request) => ({ status: 200, body: request.body ?? 'pong' }),
      });
      let rounds = 0;
      let roundTrips = 0;
      const cycle = async () => {
        if (rounds > 0) await rearmCluster(store.registrar, { fingerprint: cluster.fingerprint });
        const broker = await startBroker({
          fingerprint: cluster.fingerprint,
          beacons: [beaconAddress],
          beaconCaPem: beaconCert.certPem,
          timing: FAST_BROKER_TIMING,
          handler: async () => ({ status: 200, body: 'from broker' }),
        });
        try {
          await broker.waitForPhase('operational', 15_000);
          const tunnel = broker.tunnel()!;
          await waitUntil(() => bridge.tunnels(cluster.fingerprint).some((t) => !t.closed), {
            timeoutMs: 5_000,
            what: 'bridge tunnel',
          });
          const bridgeTunnel = bridge.tunnels(cluster.fingerprint).find((t) => !t.closed)!;
          const body = Buffer.alloc(2048, rounds % 256);
          for (let i = 0; i < ROUND_TRIPS_PER_ROUND; i++) {
            const answer = await tunnel.request({ method: 'POST', path: '/v1/echo' }, body);
            expect(answer.body.equals(body)).toBe(true);
            const back = await bridgeTunnel.request({ method: 'GET', path: TUNNEL_INFO_PATH });
            expect(back.status).toBe(200);
            roundTrips += 2;
          }
        } finally {
          await broker.close();
        }
        // The bridge's side of the closed tunnel goes away too before the next round.
        await waitUntil(() => bridge.tunnels(cluster.fingerprint).every((t) => t.closed), {
          timeoutMs: 5_000,
          what: 'bridge tunnel closed',
        });
        rounds++;
      };

      const deadline = Date.now() + SECONDS * 1000;
      const warmupRounds = 3;
      for (let i = 0; i < warmupRounds; i++) await cycle();
      const warm = await sample();
      while (Date.now() < deadline) await cycle();
      // Let closed sockets leave the kernel tables and the beacon's maps before measuring.
      await waitUntil(async () => (await beacon.report()).stats.paired === 0, {
        timeoutMs: 5_000,
        what: 'beacon idle',
      });
      const end = await sample();

      const summary = {
        seconds: SECONDS,
        rounds,
        roundTrips,
        warm: round(warm),
        end: round(end),
      };
      process.stderr.write(`soak: ${JSON.stringify(summary)}\n`);
      expect(rounds).toBeGreaterThan(warmupRounds);
      expect(store.initializedWrites(cluster.fingerprint)).toBe(rounds);
      // Tolerances: descriptors exact up to a few in flight; heap and RSS within slack for V8 and allocator noise.
      expect(end.fds).toBeLessThanOrEqual(warm.fds + 6);
      expect(end.beaconFds).toBeLessThanOrEqual(warm.beaconFds + 4);
      expect(end.heapMiB).toBeLessThan(warm.heapMiB + 16);
      expect(end.beaconHeapMiB).toBeLessThan(warm.beaconHeapMiB + 8);
      expect(end.beaconRssMiB).toBeLessThan(warm.beaconRssMiB * 1.25 + 16);
      expect(end.rssMiB).toBeLessThan(warm.rssMiB * 1.5 + 64);
    },
    (SECONDS + 60) * 1000,
  );
});

function round(sample: Sample): Record<string, number> {
  return Object.fromEntries(Object.entries(sample).map(([key, value]) => [key, Math.round(value * 10) / 10]));
}
