/**
 * secret.read_latency: one pod's KV v2 read through the whole path, as deployed: the HTTPS pod API of a real
 * `broker run` process -> tunnel -> a real beacon process (TLS door) -> a real `bridge run` process -> the OpenBao
 * test server. Baseline: the same read made directly against the same OpenBao test server in the same run.
 *
 * The OpenBao test server runs in a process of its own and serves HTTPS, because that is what both a pod and
 * the bridge meet in production; with the server inside the benchmark process the direct read would never leave
 * its event loop, and no real client is ever in OpenBao's process. For openness the report also carries the
 * older, harsher comparison (everything in one process, OpenBao over plain HTTP) as
 * `secret.read_latency_in_process`. Both clients keep connections alive, as Vault clients do. value = median ms
 * through the tunnel, baseline = median ms direct, goal ratio <= 2; `secret.read_latency_to_floor` holds the same
 * figure against the same-run transport floor (floor-child.ts), goal ratio <= 1.3, and
 * `secret.read_latency_to_http_floor` (no goal) against the same-run HTTP termination floor: the same topology with
 * Node's HTTP server and undici at both ends and nothing of ours, which is what reading each pod request (as the
 * allow-list must) costs before any design of ours.
 *
 * In the same processes: `secret.read_throughput_rps` (64 readers at once through the one tunnel, against 64
 * through the floor, goal ratio >= 0.7) and `pod.login_storm_p99_ms` (500 pods log in and read at once through the
 * tunnel, against the same storm straight at OpenBao with its TokenReviews straight at Kubernetes, goal ratio
 * <= 2). Runs from the build (`npm run bench` builds first).
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Agent, request } from 'undici';
import { startMintedBeaconIdentity } from '../../runtime/bridge/index.js';
import { startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import {
  createCertificateAuthority,
  issueCertificate,
  issueSelfSignedSync,
} from '../../runtime/pki/index.js';
import { ensureBeaconClientCa, registerCluster } from '../../runtime/registration/index.js';
import { startOperationalStack } from '../operational/stack.js';
import { waitUntil } from '../support/wait.js';
import type { FloorConfig } from './floor-child.js';
import { type Benchmark, type Metric, median, percentile, sample, sized } from './harness.js';

const dist = process.env.CLOUDTASER_TEST_DIST ?? resolve(import.meta.dirname, '../..');
const cli = join(dist, 'runtime/cli/main.js');
const beaconChild = join(dist, 'test/runtime/beacon-child.js');
const openbaoChild = join(dist, 'test/bench/openbao-child.js');
const floorChild = join(dist, 'test/bench/floor-child.js');

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

/** CPU milliseconds a process has used so far (user + system), from /proc; undefined where there is no /proc. */
function processCpuMs(pid: number): number | undefined {
  try {
    // Fields after the command name (which may hold spaces): utime and stime are fields 14 and 15, in ticks.
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** USER_HZ; 100 on every Linux the bench runs on (`getconf CLK_TCK`). */
const CLOCK_TICKS_PER_SECOND = 100;

/**
 * CPU ms per call spent by each named process while `fn` runs `count` times one after another: where a read's
 * time goes, process by process (the bench's own process, which plays the pod, included).
 */
async function cpuPerCall(
  processes: Record<string, number | undefined>,
  count: number,
  fn: () => Promise<unknown>,
): Promise<Record<string, number>> {
  const before = Object.fromEntries(
    Object.entries(processes).map(([name, pid]) => [name, pid === undefined ? undefined : processCpuMs(pid)]),
  );
  const ownBefore = process.cpuUsage();
  for (let i = 0; i < count; i++) await fn();
  const own = process.cpuUsage(ownBefore);
  const out: Record<string, number> = { pod: (own.user + own.system) / 1000 / count };
  for (const [name, pid] of Object.entries(processes)) {
    const after = pid === undefined ? undefined : processCpuMs(pid);
    const start = before[name];
    if (after !== undefined && start !== undefined) out[name] = (after - start) / count;
  }
  return out;
}

/** The same comparison with bridge, broker and beacon in this process (no scheduling between processes). */
async function inProcessFigures(count: number): Promise<{ tunnel: number[]; direct: number[] }> {
  const stack = await startOperationalStack({ logLevel: 'warn' });
  const direct = new Agent({ connections: 1 });
  try {
    const login = await stack.podRequest('POST', '/v1/auth/kubernetes/login', {
      body: { role: 'app', jwt: stack.podToken('app-a') },
    });
    const token = (login.body.auth as { client_token: string }).client_token;
    const read = async (url: string, dispatcher: Agent, headers: Record<string, string>) => {
      const response = await request(url, { dispatcher, headers: { 'x-vault-token': token, ...headers } });
      if (response.statusCode !== 200) throw new Error(`read answered ${response.statusCode}`);
      await response.body.json();
    };
    const tunnel: number[] = [];
    const directSamples: number[] = [];
    for (let round = 0; round < 5; round++) {
      directSamples.push(
        ...(await sample(count / 5, () =>
          read(`${stack.openbao.address}/v1/secret/data/app/db`, direct, {
            'x-vault-namespace': stack.cluster.namespace,
          }),
        )),
      );
      tunnel.push(
        ...(await sample(count / 5, () =>
          read(`${stack.podApiUrl}/v1/secret/data/app/db`, stack.podAgent, {}),
        )),
      );
    }
    return { tunnel, direct: directSamples };
  } finally {
    await direct.close();
    await stack.close();
  }
}

function pemPair(issued: { certPem: string; keyPem?: string }): { certPem: string; keyPem: string } {
  return { certPem: issued.certPem, keyPem: issued.keyPem! };
}

/**
 * Starts a floor's bridge and broker processes (`pipe`: the transport floor; `http`: the HTTP termination floor,
 * see floor-child.ts); returns the floor broker's pod-facing port and both pids.
 */
async function startFloor(
  config: FloorConfig,
  children: ChildProcess[],
  kind: 'pipe' | 'http' = 'pipe',
): Promise<{ port: number; bridgePid?: number; brokerPid?: number }> {
  const env = { ...process.env, CT_BENCH_FLOOR: JSON.stringify(config) };
  const start = async (part: 'bridge' | 'broker') => {
    const role = kind === 'http' ? `http-${part}` : part;
    const child = fork(floorChild, [role], { env, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    children.push(child);
    const [ready] = (await once(child, 'message')) as [{ port: number }];
    return { port: ready.port, pid: child.pid };
  };
  const bridge = await start('bridge');
  const broker = await start('broker');
  return { port: broker.port, bridgePid: bridge.pid, brokerPid: broker.pid };
}

/** The login storm's baseline auth mount (TokenReviews straight to Kubernetes). */
const DIRECT_AUTH_MOUNT = 'kubernetes-direct';

/** Reads completed per second by `concurrency` readers looping for `windowMs`. */
async function readsPerSecond(
  read: () => Promise<void>,
  concurrency: number,
  windowMs: number,
): Promise<number> {
  let done = 0;
  const started = performance.now();
  const deadline = started + windowMs;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        await read();
        done++;
      }
    }),
  );
  return done / ((performance.now() - started) / 1000);
}

export const benchmarks: Benchmark[] = [
  {
    name: 'secret',
    async run(ctx) {
      const count = sized(ctx, 1500, 300, 30);
      const dir = await mkdtemp(join(tmpdir(), 'ct-secret-bench-'));
      const children: ChildProcess[] = [];
      const spawnChild = (args: string[], env: Record<string, string> = {}) => {
        const profile = process.env.CLOUDTASER_BENCH_PROFILE_DIR;
        const nodeArgs = profile ? ['--cpu-prof', `--cpu-prof-dir=${profile}`] : [];
        const child = spawn(process.execPath, [...nodeArgs, ...args], {
          env: { ...process.env, CLOUDTASER_LOG_LEVEL: 'warn', ...env },
          stdio: ['ignore', 'ignore', 'inherit'],
        });
        children.push(child);
        return child;
      };
      const openbaoCert = issueSelfSignedSync({ commonName: 'bench openbao', ipAddresses: ['127.0.0.1'] });
      const openbaoProcess = fork(openbaoChild, [], {
        env: { ...process.env, CT_BENCH_OPENBAO_TLS: JSON.stringify(openbaoCert) },
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      });
      const [openbao] = (await once(openbaoProcess, 'message')) as [{ address: string; rootToken: string }];
      await writeFile(join(dir, 'openbao-ca.pem'), openbaoCert.certPem);
      const admin = new OpenBaoClient({
        address: openbao.address,
        token: openbao.rootToken,
        caCertPem: openbaoCert.certPem,
      });
      const kube = await startKubeTestServer();
      const podAgent = new Agent({ connections: 1 });
      const direct = new Agent({ connect: { ca: openbaoCert.certPem }, connections: 1 });
      try {
        // Cluster side: the operator's service account with the RBAC the chart grants, and one app.
        await kube.createServiceAccount('cloudtaser-system', 'cloudtaser');
        kube.grant(
          { namespace: 'cloudtaser-system', name: 'cloudtaser' },
          { verbs: ['create'], resources: ['tokenreviews'], apiGroups: ['authentication.k8s.io'] },
        );
        kube.grant(
          { namespace: 'cloudtaser-system', name: 'cloudtaser' },
          { verbs: ['get'], resources: ['namespaces'], resourceNames: ['kube-system'] },
        );
        // The trust record (the CA the broker accepted at first contact), as the chart's Role allows it.
        kube.grant(
          { namespace: 'cloudtaser-system', name: 'cloudtaser' },
          { verbs: ['get', 'create', 'patch'], resources: ['configmaps'], namespace: 'cloudtaser-system' },
        );
        await kube.createServiceAccount('team-a', 'app-a');
        const kubeconfig = join(dir, 'broker-kubeconfig');
        await kube.writeKubeconfig(kubeconfig, {
          token: kube.issueServiceAccountToken('cloudtaser-system', 'cloudtaser', {
            expirationSeconds: 7200,
          }),
        });

        const beaconCert = issueSelfSignedSync({ commonName: 'bench beacon', ipAddresses: ['127.0.0.1'] });
        await writeFile(join(dir, 'beacon.pem'), beaconCert.certPem);
        await writeFile(join(dir, 'beacon-key.pem'), beaconCert.keyPem);
        // The bridge mints its beacon client certificate from this CA; the beacon admits only such bridges.
        const beaconClientCa = await ensureBeaconClientCa(admin);
        await writeFile(join(dir, 'beacon-client-ca.pem'), beaconClientCa.certPem);
        const [beaconPort, reviewPort, podApiPort, healthPort] = [
          await freePort(),
          await freePort(),
          await freePort(),
          await freePort(),
        ];
        // CLOUDTASER_BENCH_PLAIN=1 measures the beacon's opt-in plain door (no outer TLS) instead of the TLS door.
        const plain = process.env.CLOUDTASER_BENCH_PLAIN === '1';
        const beacon = `${plain ? 'plain://' : ''}127.0.0.1:${beaconPort}`;
        const beaconProcess = spawnChild([
          beaconChild,
          'beacon',
          'serve',
          '--listen',
          `127.0.0.1:${beaconPort}`,
          ...(plain ? ['--plain'] : []),
          '--tls-cert',
          join(dir, 'beacon.pem'),
          '--tls-key',
          join(dir, 'beacon-key.pem'),
          '--bridge-ca',
          join(dir, 'beacon-client-ca.pem'),
          '--metrics-listen',
          'off',
          // The transport floor pairs every one of its connections in one room (the real path: one per cluster);
          // the throughput run opens 64 of them at once, so the room's waiting and pairing-rate bounds are lifted.
          '--max-waiting-per-hash',
          '128',
          '--max-pairings-per-hash-per-second',
          '10000',
        ]);
        const bridgeProcess = spawnChild(
          [
            cli,
            'bridge',
            'run',
            '--secretstore-address',
            openbao.address,
            '--secretstore-ca-cert',
            join(dir, 'openbao-ca.pem'),
            '--beacon',
            beacon,
            '--beacon-ca',
            join(dir, 'beacon.pem'),
            '--poll-interval',
            process.env.CLOUDTASER_BENCH_POLL ?? '200ms',
            '--tokenreview-listen',
            `127.0.0.1:${reviewPort}`,
          ],
          { CLOUDTASER_SECRETSTORE_TOKEN: openbao.rootToken },
        );
        const cluster = await registerCluster(admin, {
          fingerprint: kube.kubeSystemUid,
          // HTTPS, as production: the bridge serves it with a certificate from the listener CA registration keeps.
          tokenReviewEndpoint: `https://127.0.0.1:${reviewPort}`,
        });
        const clusterAdmin = admin.withNamespace(cluster.namespace);
        await clusterAdmin.writePolicy('app-read', 'path "secret/data/app/*" { capabilities = ["read"] }\n');
        await clusterAdmin.writeKubernetesAuthRole('kubernetes', 'app', {
          boundServiceAccountNames: ['app-a'],
          boundServiceAccountNamespaces: ['team-a'],
          policies: ['app-read'],
        });
        await clusterAdmin.kvWrite('secret', 'app/db', { password: 'bench-value', user: 'app' });
        // The login storm's baseline: the same role on an auth mount whose TokenReviews go straight to the
        // Kubernetes test server, as an OpenBao that can reach the cluster would be set up.
        await clusterAdmin.enableAuth(DIRECT_AUTH_MOUNT, 'kubernetes');
        await clusterAdmin.writeKubernetesAuthConfig(DIRECT_AUTH_MOUNT, {
          kubernetesHost: kube.url,
          kubernetesCaCert: kube.caCertPem,
          tokenReviewerJwt: kube.issueServiceAccountToken('cloudtaser-system', 'cloudtaser', {
            expirationSeconds: 7200,
          }),
          disableLocalCaJwt: true,
        });
        await clusterAdmin.writeKubernetesAuthRole(DIRECT_AUTH_MOUNT, 'app', {
          boundServiceAccountNames: ['app-a'],
          boundServiceAccountNamespaces: ['team-a'],
          policies: ['app-read'],
        });
        const brokerProcess = spawnChild([
          cli,
          'broker',
          'run',
          '--beacon',
          beacon,
          '--beacon-ca',
          join(dir, 'beacon.pem'),
          '--kubeconfig',
          kubeconfig,
          '--ca-sha256',
          cluster.operationalHash,
          '--pod-api-listen',
          `127.0.0.1:${podApiPort}`,
          '--pod-api-dns-name',
          'localhost',
          // The storm's 500 pods are played from one loopback address: the per-address bounds, there for one pod,
          // are lifted here (the total bound, 2,048 connections, stays).
          '--pod-api-max-connections-per-address',
          '100000',
          '--pod-api-max-requests-per-address',
          '100000',
          '--health-listen',
          `127.0.0.1:${healthPort}`,
        ]);
        const status = await waitUntil(
          async () => {
            const response = await request(`http://127.0.0.1:${healthPort}/status`);
            const body = (await response.body.json()) as { phase?: string; podApiCaPem?: string };
            return body.phase === 'operational' && body.podApiCaPem ? body : undefined;
          },
          { what: 'the broker process to become operational', timeoutMs: 30_000, intervalMs: 100 },
        );
        await podAgent.close();
        const trusted = new Agent({ connect: { ca: status.podApiCaPem }, connections: 1 });
        const podApi = `https://localhost:${podApiPort}`;

        const login = await request(`${podApi}/v1/auth/kubernetes/login`, {
          method: 'POST',
          dispatcher: trusted,
          body: JSON.stringify({ role: 'app', jwt: kube.issueServiceAccountToken('team-a', 'app-a') }),
        });
        if (login.statusCode !== 200)
          throw new Error(
            `the pod's login through the tunnel answered ${login.statusCode}: ${await login.body.text()}`,
          );
        const token = ((await login.body.json()) as { auth: { client_token: string } }).auth.client_token;

        const throughTunnel = async () => {
          const response = await request(`${podApi}/v1/secret/data/app/db`, {
            dispatcher: trusted,
            headers: { 'x-vault-token': token },
          });
          if (response.statusCode !== 200) throw new Error(`pod API read answered ${response.statusCode}`);
          await response.body.json();
        };
        const directRead = async () => {
          const response = await request(`${openbao.address}/v1/secret/data/app/db`, {
            dispatcher: direct,
            headers: { 'x-vault-token': token, 'x-vault-namespace': cluster.namespace },
          });
          if (response.statusCode !== 200) throw new Error(`direct read answered ${response.statusCode}`);
          await response.body.json();
        };
        const localRefusal = async () => {
          const response = await request(`${podApi}/v1/sys/mounts`, { dispatcher: trusted });
          await response.body.dump();
        };
        // The transport floor: same processes and TLS layers, bytes piped, nothing parsed (floor-child.ts). Its
        // bridge proves itself to the beacon with a certificate minted from the beacon client CA, as the real one.
        const floorBeaconIdentity = await startMintedBeaconIdentity({ openbao: admin });
        const floorCa = createCertificateAuthority({ commonName: 'bench floor ca' });
        const floorPodApi = issueSelfSignedSync({ commonName: 'floor pod api', dnsNames: ['localhost'] });
        const floorConfig: FloorConfig = {
          beaconPort,
          beaconCaPem: beaconCert.certPem,
          room: randomBytes(32).toString('hex'),
          caPem: floorCa.certPem,
          broker: pemPair(
            issueCertificate(floorCa, {
              commonName: 'broker',
              dnsNames: ['broker'],
              extKeyUsage: ['serverAuth'],
            }),
          ),
          bridge: pemPair(issueCertificate(floorCa, { commonName: 'bridge', extKeyUsage: ['clientAuth'] })),
          podApi: pemPair(floorPodApi),
          beaconClient: floorBeaconIdentity.current()!,
          openbaoPort: Number(new URL(openbao.address).port),
          openbaoCaPem: openbaoCert.certPem,
        };
        // Minted once; the bench is far shorter than its lifetime, so no renewal timer is needed.
        floorBeaconIdentity.close();
        const floorProcesses = await startFloor(floorConfig, children);
        const floorPort = floorProcesses.port;
        const floorAgent = new Agent({ connect: { ca: floorPodApi.certPem }, connections: 1 });
        const floorRead = async () => {
          const response = await request(`https://localhost:${floorPort}/v1/secret/data/app/db`, {
            dispatcher: floorAgent,
            headers: { 'x-vault-token': token, 'x-vault-namespace': cluster.namespace },
          });
          if (response.statusCode !== 200) throw new Error(`floor read answered ${response.statusCode}`);
          await response.body.json();
        };
        // The HTTP termination floor: the same topology with Node's HTTP server and undici at both ends and
        // nothing of ours (floor-child.ts), in a room of its own. It answers what terminating HTTP costs here,
        // which the allow-list needs and the transport floor by definition does not do.
        const httpFloorProcesses = await startFloor(
          { ...floorConfig, room: randomBytes(32).toString('hex') },
          children,
          'http',
        );
        const httpFloorAgent = new Agent({ connect: { ca: floorPodApi.certPem }, connections: 1 });
        const httpFloorRead = async () => {
          const response = await request(
            `https://localhost:${httpFloorProcesses.port}/v1/secret/data/app/db`,
            {
              dispatcher: httpFloorAgent,
              headers: { 'x-vault-token': token, 'x-vault-namespace': cluster.namespace },
            },
          );
          if (response.statusCode !== 200) throw new Error(`HTTP floor read answered ${response.statusCode}`);
          await response.body.json();
        };
        // Interleaved rounds, so drift on a shared machine hits every path alike.
        const tunnelSamples: number[] = [];
        const directSamples: number[] = [];
        const floorSamples: number[] = [];
        const httpFloorSamples: number[] = [];
        const rounds = 5;
        for (let round = 0; round < rounds; round++) {
          directSamples.push(...(await sample(count / rounds, directRead, 20)));
          tunnelSamples.push(...(await sample(count / rounds, throughTunnel, 20)));
          floorSamples.push(...(await sample(count / rounds, floorRead, 20)));
          httpFloorSamples.push(...(await sample(count / rounds, httpFloorRead, 20)));
        }
        // Where a read's CPU goes, process by process, through the tunnel and through the floor.
        const cpuReads = sized(ctx, 1000, 300, 30);
        const phaseStart = process.hrtime.bigint();
        const tunnelCpu = await cpuPerCall(
          {
            broker: brokerProcess.pid,
            beacon: beaconProcess.pid,
            bridge: bridgeProcess.pid,
            openbao: openbaoProcess.pid,
          },
          cpuReads,
          throughTunnel,
        );
        if (process.env.CLOUDTASER_BENCH_PROFILE_DIR)
          // Monotonic µs, the clock of the children's --cpu-prof samples: lets a profile be cut to this phase.
          ctx.log(
            `   profile window of the tunnel reads: ${phaseStart / 1000n} ${process.hrtime.bigint() / 1000n} µs`,
          );
        const floorCpu = await cpuPerCall(
          {
            broker: floorProcesses.brokerPid,
            beacon: beaconProcess.pid,
            bridge: floorProcesses.bridgePid,
            openbao: openbaoProcess.pid,
          },
          cpuReads,
          floorRead,
        );
        const cpuLine = (cpu: Record<string, number>) =>
          Object.entries(cpu)
            .map(([name, ms]) => `${name} ${ms.toFixed(3)}`)
            .join(', ');
        ctx.log(`   CPU ms per read through the tunnel: ${cpuLine(tunnelCpu)}`);
        ctx.log(`   CPU ms per read through the floor:  ${cpuLine(floorCpu)}`);
        const httpFloorCpu = await cpuPerCall(
          {
            broker: httpFloorProcesses.brokerPid,
            beacon: beaconProcess.pid,
            bridge: httpFloorProcesses.bridgePid,
            openbao: openbaoProcess.pid,
          },
          cpuReads,
          httpFloorRead,
        );
        ctx.log(`   CPU ms per read through the HTTP floor: ${cpuLine(httpFloorCpu)}`);
        await floorAgent.close();
        await httpFloorAgent.close();
        const floor = median(floorSamples);
        const httpFloor = median(httpFloorSamples);

        // Throughput: 64 readers at once through the one tunnel, against 64 readers through the floor (its own
        // pairing per connection) and 64 straight at OpenBao, in interleaved rounds.
        const readers = 64;
        const windowMs = sized(ctx, 4_000, 1_500, 300);
        const throughputRounds = sized(ctx, 3, 2, 1);
        // Connections stay open between rounds (a pod keeps its client), so every round measures reads only.
        const keepAlive = { keepAliveTimeout: 120_000, keepAliveMaxTimeout: 120_000 };
        const manyTunnel = new Agent({
          connect: { ca: status.podApiCaPem },
          connections: readers,
          ...keepAlive,
        });
        const manyFloor = new Agent({
          connect: { ca: floorPodApi.certPem },
          connections: readers,
          ...keepAlive,
        });
        const manyDirect = new Agent({
          connect: { ca: openbaoCert.certPem },
          connections: readers,
          ...keepAlive,
        });
        const readVia =
          (what: string, url: string, dispatcher: Agent, headers: Record<string, string>) => async () => {
            try {
              const response = await request(url, {
                dispatcher,
                headers: { 'x-vault-token': token, ...headers },
              });
              if (response.statusCode !== 200) throw new Error(`answered ${response.statusCode}`);
              await response.body.json();
            } catch (err) {
              throw new Error(`a read ${what} failed: ${(err as Error).message}`, { cause: err });
            }
          };
        const tunnelMany = readVia('through the tunnel', `${podApi}/v1/secret/data/app/db`, manyTunnel, {});
        const floorMany = readVia(
          'through the floor',
          `https://localhost:${floorPort}/v1/secret/data/app/db`,
          manyFloor,
          { 'x-vault-namespace': cluster.namespace },
        );
        const directMany = readVia('direct', `${openbao.address}/v1/secret/data/app/db`, manyDirect, {
          'x-vault-namespace': cluster.namespace,
        });
        const rps = { tunnel: [] as number[], floor: [] as number[], direct: [] as number[] };
        const throughputRatios: number[] = [];
        // Warm-up: every connection of every path opened, a few more at a time (the floor pairs once per
        // connection).
        for (const read of [tunnelMany, floorMany, directMany])
          for (let open = 8; open <= readers; open += 8) await readsPerSecond(read, open, 150);
        for (let round = 0; round < throughputRounds; round++) {
          rps.floor.push(await readsPerSecond(floorMany, readers, windowMs));
          rps.tunnel.push(await readsPerSecond(tunnelMany, readers, windowMs));
          rps.direct.push(await readsPerSecond(directMany, readers, windowMs));
          throughputRatios.push(rps.tunnel.at(-1)! / rps.floor.at(-1)!);
        }
        await Promise.all([manyTunnel.close(), manyFloor.close(), manyDirect.close()]);
        ctx.log(
          `   ${readers} readers: ${median(rps.tunnel).toFixed(0)} reads/s through the tunnel, ${median(rps.floor).toFixed(0)} through the transport floor, ${median(rps.direct).toFixed(0)} direct`,
        );

        // Login storm: 500 pods log in and read one secret at once, through the tunnel (OpenBao's TokenReviews
        // come back through the bridge and the tunnel) and straight at OpenBao (TokenReviews to Kubernetes).
        const pods = sized(ctx, 500, 200, 20);
        const podTokens = Array.from({ length: pods }, () =>
          kube.issueServiceAccountToken('team-a', 'app-a'),
        );
        const stormFailures = { tunnel: 0, direct: 0 };
        const storm = async (via: 'tunnel' | 'direct'): Promise<number[]> => {
          const agent =
            via === 'tunnel'
              ? new Agent({ connect: { ca: status.podApiCaPem }, connections: pods })
              : new Agent({ connect: { ca: openbaoCert.certPem }, connections: pods });
          const base = via === 'tunnel' ? podApi : openbao.address;
          const namespace: Record<string, string> =
            via === 'tunnel' ? {} : { 'x-vault-namespace': cluster.namespace };
          const mount = via === 'tunnel' ? 'kubernetes' : DIRECT_AUTH_MOUNT;
          try {
            return await Promise.all(
              podTokens.map(async (jwt) => {
                const started = performance.now();
                // A pod whose login or read fails counts with the time it took to fail, and is reported.
                const failed = () => {
                  stormFailures[via]++;
                  return performance.now() - started;
                };
                const login = await request(`${base}/v1/auth/${mount}/login`, {
                  method: 'POST',
                  dispatcher: agent,
                  headers: namespace,
                  body: JSON.stringify({ role: 'app', jwt }),
                });
                if (login.statusCode !== 200) {
                  await login.body.dump();
                  return failed();
                }
                const podToken = ((await login.body.json()) as { auth: { client_token: string } }).auth
                  .client_token;
                const read = await request(`${base}/v1/secret/data/app/db`, {
                  dispatcher: agent,
                  headers: { ...namespace, 'x-vault-token': podToken },
                });
                if (read.statusCode !== 200) {
                  await read.body.dump();
                  return failed();
                }
                await read.body.json();
                return performance.now() - started;
              }),
            );
          } finally {
            await agent.close();
          }
        };
        const stormRounds = sized(ctx, 3, 1, 1);
        const stormTunnel: number[] = [];
        const stormDirect: number[] = [];
        for (let round = 0; round < stormRounds; round++) {
          stormDirect.push(percentile(await storm('direct'), 99));
          stormTunnel.push(percentile(await storm('tunnel'), 99));
        }
        ctx.log(
          `   login storm of ${pods} pods, p99: ${median(stormTunnel).toFixed(0)} ms through the tunnel, ${median(stormDirect).toFixed(0)} ms straight at OpenBao; failed pods: ${stormFailures.tunnel} through the tunnel, ${stormFailures.direct} direct`,
        );
        // What the broker alone costs: an HTTPS round trip to the pod API that never enters the tunnel.
        const brokerOnly = median(await sample(200, localRefusal, 20));
        await trusted.close();
        const value = median(tunnelSamples);
        const baseline = median(directSamples);
        ctx.log(
          `   through broker+beacon+bridge processes: median ${value.toFixed(3)} ms (p99 ${percentile(tunnelSamples, 99).toFixed(3)}); direct: median ${baseline.toFixed(3)} ms; transport floor (same processes, bytes piped): ${floor.toFixed(3)} ms`,
        );
        const inProcess = await inProcessFigures(count);
        const inProcessValue = median(inProcess.tunnel);
        const inProcessBaseline = median(inProcess.direct);
        ctx.log(
          `   all in one process: median ${inProcessValue.toFixed(3)} ms through the tunnel, ${inProcessBaseline.toFixed(3)} ms direct`,
        );
        const metrics: Metric[] = [
          {
            name: 'secret.read_latency',
            value,
            unit: 'ms',
            baseline,
            baselineLabel: 'same KV read directly against the OpenBao test server (own process, HTTPS)',
            ratio: value / baseline,
            goal: { op: '<=', limit: 2, on: 'ratio' },
            extra: {
              samples: tunnelSamples.length,
              tunnelP99Ms: percentile(tunnelSamples, 99),
              directP99Ms: percentile(directSamples, 99),
              brokerLocalRefusalMs: brokerOnly,
              transportFloorMs: floor,
              transportFloorRatioToDirect: Number((floor / baseline).toFixed(2)),
              ratioToTransportFloor: Number((value / floor).toFixed(2)),
            },
          },
          {
            name: 'secret.read_latency_to_floor',
            value,
            unit: 'ms',
            baseline: floor,
            baselineLabel:
              'transport floor: same processes and TLS layers, bytes piped, nothing parsed (floor-child.ts)',
            ratio: value / floor,
            goal: { op: '<=', limit: 1.3, on: 'ratio' },
            extra: { samples: tunnelSamples.length, floorP99Ms: percentile(floorSamples, 99) },
          },
          {
            // No goal: where the goal above sits against what terminating HTTP with the stock libraries costs.
            name: 'secret.read_latency_to_http_floor',
            value,
            unit: 'ms',
            baseline: httpFloor,
            baselineLabel:
              "HTTP termination floor: same topology, Node's HTTP server and undici at both ends, nothing of ours (floor-child.ts)",
            ratio: value / httpFloor,
            extra: {
              httpFloorP99Ms: percentile(httpFloorSamples, 99),
              httpFloorToTransportFloor: Number((httpFloor / floor).toFixed(2)),
            },
          },
          {
            name: 'secret.read_throughput_rps',
            value: median(rps.tunnel),
            unit: 'reads/s',
            baseline: median(rps.floor),
            baselineLabel: `transport floor under the same ${readers} readers (a pairing per connection)`,
            ratio: median(throughputRatios),
            goal: { op: '>=', limit: 0.7, on: 'ratio' },
            extra: {
              readers,
              windowMs,
              rounds: throughputRounds,
              directRps: Math.round(median(rps.direct)),
              tunnelRuns: rps.tunnel.map((v) => v.toFixed(0)).join(','),
              floorRuns: rps.floor.map((v) => v.toFixed(0)).join(','),
            },
          },
          {
            name: 'pod.login_storm_p99_ms',
            value: median(stormTunnel),
            unit: 'ms',
            baseline: median(stormDirect),
            baselineLabel: `the same ${pods} logins and reads straight at OpenBao, its TokenReviews straight at Kubernetes`,
            // A pod that could not log in or read fails the goal, whatever the p99 of the others.
            ratio:
              stormFailures.tunnel > 0 ? Number.POSITIVE_INFINITY : median(stormTunnel) / median(stormDirect),
            goal: { op: '<=', limit: 2, on: 'ratio' },
            extra: {
              pods,
              rounds: stormRounds,
              tunnelRuns: stormTunnel.map((v) => v.toFixed(0)).join(','),
              directRuns: stormDirect.map((v) => v.toFixed(0)).join(','),
              tunnelFailedPods: stormFailures.tunnel,
              directFailedPods: stormFailures.direct,
            },
          },
          {
            name: 'secret.read_latency_in_process',
            value: inProcessValue,
            unit: 'ms',
            baseline: inProcessBaseline,
            baselineLabel: 'same KV read directly against the OpenBao test server (same process, plain HTTP)',
            ratio: inProcessValue / inProcessBaseline,
            extra: { samples: inProcess.tunnel.length },
          },
        ];
        return metrics;
      } finally {
        for (const child of children) child.kill('SIGTERM');
        await Promise.all(
          children.map((c) => (c.exitCode !== null ? undefined : new Promise((r) => c.once('exit', r)))),
        );
        await direct.close();
        await podAgent.close().catch(() => undefined);
        await admin.close();
        await kube.close();
        if (openbaoProcess.exitCode === null) {
          const exited = once(openbaoProcess, 'exit');
          openbaoProcess.disconnect();
          await exited;
        }
        await rm(dir, { recursive: true, force: true });
      }
    },
  },
];
