/**
 * Fleet-scale benchmarks (issue 16).
 *
 * `bridge.discovery`: a fleet of registered clusters in an OpenBao test server of its own (HTTPS, own process),
 * and the bridge's discovery polling it. The steady-state poll (nothing changed) is counted in requests, as the
 * OpenBao process saw them, and timed; the baseline is the listing it replaces (one LIST plus two reads per
 * cluster), run in the same process against the same fleet. 10,000 clusters (2,000 with --quick).
 *
 * `fleet.reconnect`: 1,000 clusters (100 with --quick) operational through one beacon process, with the bridge
 * as a `bridge run` process and the brokers in this process. The beacon is killed (SIGKILL) and started again on
 * the same port; the figure is the time until every broker is operational on a new tunnel, with the OpenBao
 * requests and bootstraps in that window and the peak CPU of the beacon and bridge processes. The same run gives
 * the bridge's RSS per cluster: the bridge process serving the fleet against itself serving none.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createServer as createTlsServer, connect as tlsConnect } from 'node:tls';
import { request } from 'undici';
import { createClusterDiscovery } from '../../runtime/bridge/discovery.js';
import { type BrokerHandle, startBroker } from '../../runtime/broker/index.js';
import { silentLogger } from '../../runtime/core/log.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import {
  createCertificateAuthority,
  issueCertificate,
  issueSelfSignedSync,
} from '../../runtime/pki/index.js';
import {
  announceChange,
  ensureBeaconClientCa,
  ensureChangeJournal,
  listRegisteredClusters,
  MAX_JOURNAL_ENTRIES,
  paths,
  RECORDS_MOUNT,
  registerCluster,
} from '../../runtime/registration/index.js';
import type { TunnelMux } from '../../runtime/tunnel/index.js';
import { type BeaconProcess, startBeaconProcess } from '../load/processes.js';
import { waitUntil } from '../support/wait.js';
import { type Benchmark, type Metric, median, percentile, sized } from './harness.js';

/**
 * TLS handshakes a reconnect costs per cluster: the broker's and the bridge's two waiters' outer handshakes with
 * the beacon (3), and the end-to-end mutual TLS between broker and bridge (1).
 */
const HANDSHAKES_PER_RECONNECT = 4;

/**
 * The physical floor of a reconnect storm on this machine: the CPU time of one mutual-TLS handshake over loopback
 * with P-256 certificates (what every leg uses), both ends in this process, averaged over `count`. CPU time, not
 * wall time, so other work on the machine does not inflate it; measured in the same run as the storm, before the
 * fleet exists.
 */
async function tlsHandshakeCpuMs(count: number): Promise<number> {
  const ca = createCertificateAuthority({ commonName: 'floor CA' });
  const server = issueCertificate(ca, {
    commonName: 'floor server',
    ipAddresses: ['127.0.0.1'],
    extKeyUsage: ['serverAuth'],
  });
  const client = issueCertificate(ca, { commonName: 'floor client', extKeyUsage: ['clientAuth'] });
  const listener = createTlsServer(
    { key: server.keyPem, cert: server.certPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true },
    (socket) => socket.end(),
  );
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const port = (listener.address() as { port: number }).port;
  const one = () =>
    new Promise<void>((done, fail) => {
      const socket = tlsConnect({
        host: '127.0.0.1',
        port,
        ca: ca.certPem,
        key: client.keyPem,
        cert: client.certPem,
      });
      socket.once('secureConnect', () => {
        socket.destroy();
        done();
      });
      socket.once('error', fail);
    });
  // Warm-up, then the timed run with a few in flight (as a storm has).
  for (let i = 0; i < 20; i++) await one();
  const cpu0 = process.cpuUsage();
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next++ < count) await one();
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  listener.close();
  return (cpu.user + cpu.system) / 1000 / count;
}

const dist = process.env.CLOUDTASER_TEST_DIST ?? resolve(import.meta.dirname, '../..');
const cli = join(dist, 'runtime/cli/main.js');
const openbaoChild = join(dist, 'test/bench/openbao-child.js');

interface OpenBaoProcess {
  readonly address: string;
  readonly rootToken: string;
  readonly caPem: string;
  readonly pid: number;
  /** Requests the OpenBao process has served so far. */
  requests(): Promise<number>;
  /** The requests served after the first `since`, counted by method, path, namespace and status. */
  routes(since: number): Promise<Record<string, number>>;
  close(): Promise<void>;
}

async function startOpenBaoProcess(): Promise<OpenBaoProcess> {
  const cert = issueSelfSignedSync({ commonName: 'bench openbao', ipAddresses: ['127.0.0.1'] });
  const child = fork(openbaoChild, [], {
    env: { ...process.env, CT_BENCH_OPENBAO_TLS: JSON.stringify(cert) },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const [ready] = (await once(child, 'message')) as [{ address: string; rootToken: string }];
  return {
    ...ready,
    caPem: cert.certPem,
    pid: child.pid!,
    async requests() {
      const reply = once(child, 'message') as Promise<[{ requests: number }]>;
      child.send({ cmd: 'requests' });
      return (await reply)[0].requests;
    },
    async routes(since) {
      const reply = once(child, 'message') as Promise<[{ routes: Record<string, number> }]>;
      child.send({ cmd: 'routes', since });
      return (await reply)[0].routes;
    },
    async close() {
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.disconnect();
      await exited;
    },
  };
}

/** Runs `work` over `items` with `concurrency` in flight. */
async function inParallel<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<unknown>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await work(items[next++]);
    }),
  );
}

const discoveryBenchmark: Benchmark = {
  name: 'bridge.discovery',
  async run(ctx) {
    const clusters = sized(ctx, 10_000, 2_000, 200);
    const polls = sized(ctx, 50, 20, 3);
    const openbao = await startOpenBaoProcess();
    const admin = new OpenBaoClient({
      address: openbao.address,
      token: openbao.rootToken,
      caCertPem: openbao.caPem,
    });
    try {
      // The fleet's records as registration writes them (the cluster namespaces themselves play no part in
      // discovery, so they are left out to keep the set-up short). One in two clusters has bootstrapped.
      await admin.createNamespace('cloudtaser');
      const root = admin.withNamespace('cloudtaser');
      await root.enableKvV2(RECORDS_MOUNT);
      await ensureChangeJournal(root);
      const fingerprints = Array.from({ length: clusters }, () => randomUUID());
      const started = performance.now();
      await inParallel(fingerprints, 32, async (fingerprint) => {
        await root.kvWrite(RECORDS_MOUNT, paths.registered(fingerprint), {
          fingerprint,
          namespace: `cloudtaser/${fingerprint.slice(0, 8)}`,
          ca_sha256: fingerprint.replaceAll('-', '').padEnd(64, '0'),
          registered_at: new Date().toISOString(),
        });
        if (fingerprint.charCodeAt(0) % 2 === 0)
          await root.kvWrite(RECORDS_MOUNT, paths.initialized(fingerprint), {
            initialized_at: new Date().toISOString(),
            broker_cert_sha256: '0'.repeat(64),
            broker_key_sha256: '1'.repeat(64),
          });
      });
      ctx.log(`   ${clusters} clusters written in ${((performance.now() - started) / 1000).toFixed(1)} s`);

      // Baseline: the listing every poll used to make (one LIST plus two reads per cluster).
      let before = await openbao.requests();
      let t0 = performance.now();
      const listed = await listRegisteredClusters(admin);
      const listMs = performance.now() - t0;
      const listRequests = (await openbao.requests()) - before;
      if (listed.length !== clusters) throw new Error(`listed ${listed.length} of ${clusters} clusters`);

      const discovery = createClusterDiscovery({
        openbao: admin,
        namespaceRoot: 'cloudtaser',
        logger: silentLogger,
        resyncIntervalMs: 0,
      });
      before = await openbao.requests();
      t0 = performance.now();
      const first = await discovery.poll();
      const resyncMs = performance.now() - t0;
      const resyncRequests = (await openbao.requests()) - before;
      if (first.clusters.size !== clusters)
        throw new Error(`discovered ${first.clusters.size} of ${clusters}`);

      // A journal at its full size, as in a fleet with steady churn: that is what every poll reads.
      await inParallel(
        Array.from({ length: MAX_JOURNAL_ENTRIES / 2 }, () => randomUUID()),
        16,
        async (fingerprint) => {
          const announcement = announceChange(admin, { fingerprint, change: 'rearm' });
          await announcement.begin();
          await announcement.end();
        },
      );
      await discovery.poll();
      const pollMs: number[] = [];
      before = await openbao.requests();
      for (let i = 0; i < polls; i++) {
        t0 = performance.now();
        const poll = await discovery.poll();
        pollMs.push(performance.now() - t0);
        if (poll.resynced || poll.changed.size > 0) throw new Error('a steady-state poll saw a change');
      }
      const steadyRequests = ((await openbao.requests()) - before) / polls;

      // With changes: ten registrations between two polls cost the journal plus two reads each.
      const changed = Array.from({ length: 10 }, () => randomUUID());
      await inParallel(changed, 10, (fingerprint) => registerCluster(admin, { fingerprint }));
      before = await openbao.requests();
      t0 = performance.now();
      const afterChanges = await discovery.poll();
      const changeMs = performance.now() - t0;
      const changeRequests = (await openbao.requests()) - before;
      if (!changed.every((fp) => afterChanges.clusters.has(fp))) throw new Error('a registration was missed');

      ctx.log(
        `   steady poll: ${steadyRequests} request(s), median ${median(pollMs).toFixed(2)} ms (p99 ${percentile(pollMs, 99).toFixed(2)}); listing: ${listRequests} requests, ${listMs.toFixed(0)} ms; first poll (full resync): ${resyncRequests} requests, ${resyncMs.toFixed(0)} ms; poll after 10 registrations: ${changeRequests} requests, ${changeMs.toFixed(1)} ms`,
      );
      const extra = {
        clusters,
        polls,
        fullResyncRequests: resyncRequests,
        fullResyncMs: Math.round(resyncMs),
        pollAfter10RegistrationsRequests: changeRequests,
        pollAfter10RegistrationsMs: Number(changeMs.toFixed(1)),
        computedListingRequests: 2 * clusters + 2,
      };
      const metrics: Metric[] = [
        {
          name: 'bridge.discovery_requests_per_poll',
          value: steadyRequests,
          unit: 'requests',
          baseline: listRequests,
          baselineLabel: `listing every cluster (the previous poll), ${clusters} clusters, same run`,
          ratio: steadyRequests / listRequests,
          goal: { op: '<=', limit: 3, on: 'value' },
          extra,
        },
        {
          name: 'bridge.discovery_ms',
          value: median(pollMs),
          unit: 'ms',
          baseline: listMs,
          baselineLabel: `listing every cluster (the previous poll, 8 reads in flight), ${clusters} clusters, same run`,
          ratio: median(pollMs) / listMs,
          goal: { op: '<=', limit: 50, on: 'value' },
          extra: { clusters, p99Ms: Number(percentile(pollMs, 99).toFixed(2)) },
        },
      ];
      return metrics;
    } finally {
      await admin.close();
      await openbao.close();
    }
  },
};

async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSecondsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  // utime and stime are fields 14 and 15 of the whole line, in clock ticks (100 per second on Linux).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function rssKibOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN);
}

/** Samples the CPU use of processes every `everyMs`; `peak()` is the highest share of one core seen per process. */
function sampleCpu(pids: () => Record<string, number | undefined>, everyMs = 250) {
  const last = new Map<string, { pid: number; cpu: number; at: number }>();
  const peaks: Record<string, number> = {};
  const timer = setInterval(() => {
    for (const [name, pid] of Object.entries(pids())) {
      if (pid === undefined) continue;
      let cpu: number;
      try {
        cpu = cpuSecondsOf(pid);
      } catch {
        continue; // the process is gone (the killed beacon)
      }
      const at = performance.now();
      const previous = last.get(name);
      if (previous && previous.pid === pid) {
        const share = ((cpu - previous.cpu) / ((at - previous.at) / 1000)) * 100;
        peaks[name] = Math.max(peaks[name] ?? 0, share);
      }
      last.set(name, { pid, cpu, at });
    }
  }, everyMs);
  return {
    peaks: () => ({ ...peaks }),
    stop: () => clearInterval(timer),
  };
}

interface BridgeProcessStatus {
  readonly clusters: { readonly waiting: number; readonly tunnels: number }[];
  readonly lastPollAt?: string;
  readonly bootstrapsSigned: number;
  readonly bootstrapsRefused: number;
}

const reconnectBenchmark: Benchmark = {
  name: 'fleet.reconnect',
  async run(ctx) {
    const clusters = sized(ctx, 1_000, 100, 10);
    const dir = await mkdtemp(join(tmpdir(), 'ct-fleet-bench-'));
    const openbao = await startOpenBaoProcess();
    const admin = new OpenBaoClient({
      address: openbao.address,
      token: openbao.rootToken,
      caCertPem: openbao.caPem,
    });
    const beaconTls = issueSelfSignedSync({ commonName: 'bench beacon', ipAddresses: ['127.0.0.1'] });
    // The bridge proves itself to the beacon as in production: a client certificate it mints from the beacon
    // client CA in OpenBao, which the beacon trusts (`source beacon-ca`, `--bridge-ca`).
    const bridgeCa = await ensureBeaconClientCa(admin);
    // The brokers run in this process, so they all come from 127.0.0.1; in a fleet each cluster has its own
    // address. The per-address bounds are lifted for that reason only; the bridge's own dials stay bounded by
    // its admission (32 opening at once), below the default of 64.
    const beaconConfig = {
      host: '127.0.0.1',
      plain: false,
      tls: beaconTls,
      bridgeCaPems: [bridgeCa.certPem],
      limits: {
        maxPendingPerAddress: 10_000,
        maxWaitingPerAddress: 100_000,
        maxWaiting: 100_000,
        maxConnections: 100_000,
      },
    };
    let beacon: BeaconProcess = await startBeaconProcess({ ...beaconConfig, port: 0 });
    const beaconPort = beacon.port;
    const address = `127.0.0.1:${beaconPort}`;
    await writeFile(join(dir, 'beacon.pem'), beaconTls.certPem);
    await writeFile(join(dir, 'openbao-ca.pem'), openbao.caPem);
    const healthPort = await freePort();
    const brokers: BrokerHandle[] = [];
    let bridge: ChildProcess | undefined;
    try {
      bridge = spawn(
        process.execPath,
        [
          cli,
          'bridge',
          'run',
          '--secretstore-address',
          openbao.address,
          '--secretstore-ca-cert',
          join(dir, 'openbao-ca.pem'),
          '--beacon',
          address,
          '--beacon-ca',
          join(dir, 'beacon.pem'),
          '--health-listen',
          `127.0.0.1:${healthPort}`,
          // The production poll interval, except in a smoke run, which only checks that the bench still runs.
          ...(ctx.smoke ? ['--poll-interval', '1s'] : []),
        ],
        {
          env: {
            ...process.env,
            CLOUDTASER_LOG_LEVEL: 'warn',
            CLOUDTASER_SECRETSTORE_TOKEN: openbao.rootToken,
          },
          stdio: ['ignore', 'ignore', 'inherit'],
        },
      );
      const bridgePid = bridge.pid!;
      const bridgeStatus = async () => {
        const response = await request(`http://127.0.0.1:${healthPort}/status`);
        return (await response.body.json()) as BridgeProcessStatus;
      };
      await waitUntil(async () => (await bridgeStatus()).lastPollAt, {
        what: 'the bridge process',
        timeoutMs: 60_000,
        intervalMs: 50,
      });
      // RSS of the bridge serving no cluster, once it settled.
      await new Promise((r) => setTimeout(r, sized(ctx, 2_000, 2_000, 200)));
      const rssNoneKib = rssKibOf(bridgePid);
      // The beacon with only the bridge's status traffic behind it: the baseline of its per-cluster memory.
      const beaconNone = await beacon.report();

      // The floor, in this run: the storm's handshakes spread over every core, nothing else.
      const handshakeMs = await tlsHandshakeCpuMs(sized(ctx, 1_000, 300, 20));
      const floorS = (HANDSHAKES_PER_RECONNECT * clusters * handshakeMs) / availableParallelism() / 1000;
      ctx.log(
        `   TLS floor: ${handshakeMs.toFixed(2)} CPU ms per mutual-TLS handshake (both ends); ${HANDSHAKES_PER_RECONNECT} x ${clusters} handshakes over ${availableParallelism()} cores = ${floorS.toFixed(2)} s`,
      );
      let t0 = performance.now();
      const fingerprints = Array.from({ length: clusters }, () => randomUUID());
      await inParallel(fingerprints, 16, (fingerprint) => registerCluster(admin, { fingerprint }));
      ctx.log(`   ${clusters} clusters registered in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      await waitUntil(async () => (await bridgeStatus()).clusters.length === clusters, {
        what: 'the bridge to discover every cluster',
        timeoutMs: 120_000,
        intervalMs: 50,
      });
      // Registered but not bootstrapped: one waiting connection per cluster (the init room).
      await waitUntil(async () => (await bridgeStatus()).clusters.every((c) => c.waiting === 1), {
        what: 'the bridge to wait in every init room',
        timeoutMs: 120_000,
        intervalMs: 50,
      });
      const rssWaitingKib = rssKibOf(bridgePid);
      // The first bootstraps in groups, as a fleet rolls its operators out; that is not what is measured.
      t0 = performance.now();
      for (let i = 0; i < clusters; i += 50) {
        const group = await Promise.all(
          fingerprints
            .slice(i, i + 50)
            .map((fingerprint) =>
              startBroker({ fingerprint, beacons: [address], beaconCaPem: beaconTls.certPem }),
            ),
        );
        brokers.push(...group);
        await Promise.all(group.map((broker) => broker.waitForPhase('operational', 300_000)));
      }
      ctx.log(
        `   ${clusters} brokers bootstrapped and operational in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
      );
      // Every tunnel and waiter in place, and a poll after the last bootstrap, so the window below is the storm.
      const settled = await waitUntil(
        async () => {
          const status = await bridgeStatus();
          return status.clusters.every((c) => c.tunnels === 1 && c.waiting === 2) ? status : undefined;
        },
        { what: 'the bridge to wait in both rooms of every cluster', timeoutMs: 120_000, intervalMs: 50 },
      );
      await waitUntil(async () => (await bridgeStatus()).lastPollAt !== settled.lastPollAt, {
        what: 'one more discovery poll',
        timeoutMs: 30_000,
        intervalMs: 50,
      });
      const rssFleetKib = rssKibOf(bridgePid);
      const beaconBefore = await beacon.report();

      const tunnels = new Map<BrokerHandle, TunnelMux | undefined>(brokers.map((b) => [b, b.tunnel()]));
      const phases = new Set<string>();
      const watch = setInterval(() => {
        for (const broker of brokers) phases.add(broker.status().phase);
      }, 50);
      const before = await bridgeStatus();
      const requestsBefore = await openbao.requests();
      const ownCpuBefore = process.cpuUsage();
      let beaconPid: number | undefined;
      const cpu = sampleCpu(() => ({ beacon: beaconPid, bridge: bridgePid }));
      const killedAt = performance.now();
      await beacon.kill9();
      beacon = await startBeaconProcess({ ...beaconConfig, port: beaconPort });
      beaconPid = beacon.pid;
      const restartMs = performance.now() - killedAt;
      await waitUntil(
        async () => brokers.every((b) => b.status().phase === 'operational' && b.tunnel() !== tunnels.get(b)),
        { what: 'every broker operational on a new tunnel', timeoutMs: 600_000, intervalMs: 50 },
      );
      const reconnectMs = performance.now() - killedAt;
      clearInterval(watch);
      cpu.stop();
      const ownCpu = process.cpuUsage(ownCpuBefore);
      const requests = (await openbao.requests()) - requestsBefore;
      // Which requests they were: an unexpected count is then explained by the report, not guessed at later.
      const requestRoutes = requests > 0 ? await openbao.routes(requestsBefore) : {};
      const after = await bridgeStatus();
      const bootstraps =
        after.bootstrapsSigned -
        before.bootstrapsSigned +
        (after.bootstrapsRefused - before.bootstrapsRefused);
      const peaks = cpu.peaks();
      const beaconAfter = await beacon.report();
      const perClusterKib = (rssFleetKib - rssNoneKib) / clusters;
      ctx.log(
        `   reconnect after kill -9 of the beacon: ${(reconnectMs / 1000).toFixed(2)} s (beacon back after ${(restartMs / 1000).toFixed(2)} s), ${requests} OpenBao requests, ${bootstraps} bootstrap attempts, phases seen ${[...phases].join(',')}; peak CPU beacon ${peaks.beacon?.toFixed(0)} %, bridge ${peaks.bridge?.toFixed(0)} %; brokers (this process) ${((ownCpu.user + ownCpu.system) / 1e6).toFixed(1)} CPU s`,
      );
      const routeSummary = Object.entries(requestRoutes)
        .sort((a, b) => b[1] - a[1])
        .slice(0, 8)
        .map(([route, count]) => `${count} x ${route}`)
        .join('; ');
      if (routeSummary) ctx.log(`   OpenBao requests in the reconnect window: ${routeSummary}`);
      ctx.log(
        `   bridge RSS ${(rssNoneKib / 1024).toFixed(1)} MiB serving none, ${(rssFleetKib / 1024).toFixed(1)} MiB serving ${clusters} (${perClusterKib.toFixed(1)} KiB per cluster); beacon RSS ${(beaconBefore.rssBytes / 2 ** 20).toFixed(1)} MiB before the kill, ${(beaconAfter.rssBytes / 2 ** 20).toFixed(1)} MiB after, ${beaconAfter.stats.connections} connections`,
      );
      const metrics: Metric[] = [
        {
          name: 'fleet.reconnect_s',
          value: reconnectMs / 1000,
          unit: 's',
          baseline: restartMs / 1000,
          baselineLabel: 'the beacon process alone: kill -9 until the new one listens, same run',
          ratio: reconnectMs / restartMs,
          goal: { op: '<=', limit: 10, on: 'value' },
          extra: {
            clusters,
            openbaoRequests: requests,
            ...(routeSummary ? { openbaoRequestRoutes: routeSummary } : {}),
            bootstrapAttempts: bootstraps,
            sawBootstrappingPhase: phases.has('bootstrapping') ? 'yes' : 'no',
            beaconPeakCpuPercent: Math.round(peaks.beacon ?? Number.NaN),
            bridgePeakCpuPercent: Math.round(peaks.bridge ?? Number.NaN),
            brokersCpuSeconds: Number(((ownCpu.user + ownCpu.system) / 1e6).toFixed(1)),
            beaconRssMiBBefore: Number((beaconBefore.rssBytes / 2 ** 20).toFixed(1)),
            beaconConnectionsAfter: beaconAfter.stats.connections,
          },
        },
        {
          // The physical floor of the storm on this machine: the beacon process's own restart (kill -9 until it
          // listens again) plus the CPU of every handshake the fleet needs, spread over every core. With 2 cores
          // and 1,000 clusters that floor is above the 10 s goal, so the goal becomes this ratio.
          name: 'fleet.reconnect_to_floor',
          value: reconnectMs / 1000,
          unit: 's',
          baseline: restartMs / 1000 + floorS,
          baselineLabel: `the beacon's own restart plus the CPU of ${HANDSHAKES_PER_RECONNECT} mutual-TLS handshakes per cluster on every core (same run)`,
          ratio: reconnectMs / 1000 / (restartMs / 1000 + floorS),
          goal: { op: '<=', limit: 1.25, on: 'ratio' },
          extra: {
            clusters,
            handshakeCpuMs: Number(handshakeMs.toFixed(3)),
            handshakeFloorS: Number(floorS.toFixed(2)),
            beaconRestartS: Number((restartMs / 1000).toFixed(2)),
            cores: availableParallelism(),
          },
        },
        {
          name: 'fleet.reconnect_openbao_requests',
          value: requests,
          unit: 'requests',
          baseline: clusters,
          baselineLabel: 'one request per cluster (the bound)',
          ratio: requests / clusters,
          goal: { op: '<=', limit: 1, on: 'ratio' },
          extra: { clusters },
        },
        {
          name: 'fleet.reconnect_bootstraps',
          value: bootstraps,
          unit: 'bootstraps',
          goal: { op: '<=', limit: 0, on: 'value' },
          extra: { clusters },
        },
        {
          name: 'bridge.rss_per_cluster_kib',
          value: perClusterKib,
          unit: 'KiB/cluster',
          baseline: rssNoneKib,
          baselineLabel: 'the bridge process serving no cluster (whole RSS)',
          baselineUnit: 'KiB',
          extra: {
            clusters,
            beaconReplicas: 1,
            rssNoneMiB: Number((rssNoneKib / 1024).toFixed(1)),
            rssOneWaiterPerClusterMiB: Number((rssWaitingKib / 1024).toFixed(1)),
            kibPerWaitingConnection: Number(((rssWaitingKib - rssNoneKib) / clusters).toFixed(1)),
            kibPerTunnelAndSecondWaiter: Number(((rssFleetKib - rssWaitingKib) / clusters).toFixed(1)),
            rssFleetMiB: Number((rssFleetKib / 1024).toFixed(1)),
            waitingConnectionsPerCluster: 2,
            tunnelsPerCluster: 1,
          },
        },
        {
          // What a beacon replica holds per cluster: the bridge's waiting connections in both rooms and the
          // operational tunnel's two legs (broker and bridge), as TLS sockets in the beacon's process.
          name: 'beacon.rss_per_cluster_kib',
          value: (beaconBefore.rssBytes - beaconNone.rssBytes) / 1024 / clusters,
          unit: 'KiB/cluster',
          baseline: beaconNone.rssBytes / 1024,
          baselineLabel: 'the beacon process with no cluster connected (whole RSS)',
          baselineUnit: 'KiB',
          extra: {
            clusters,
            bridgeReplicas: 1,
            connectionsWithFleet: beaconBefore.stats.connections,
            connectionsPerCluster: Number((beaconBefore.stats.connections / clusters).toFixed(2)),
            rssNoneMiB: Number((beaconNone.rssBytes / 2 ** 20).toFixed(1)),
            rssFleetMiB: Number((beaconBefore.rssBytes / 2 ** 20).toFixed(1)),
          },
        },
      ];
      return metrics;
    } finally {
      await Promise.all(brokers.map((broker) => broker.close()));
      if (bridge && bridge.exitCode === null) {
        const exited = once(bridge, 'exit');
        bridge.kill('SIGTERM');
        await exited;
      }
      await beacon.close();
      await admin.close();
      await openbao.close();
      await rm(dir, { recursive: true, force: true });
    }
  },
};

export const benchmarks: Benchmark[] = [discoveryBenchmark, reconnectBenchmark];
