/**
 * The stage for the trust attacks (issue 11): real `beacon serve`, `bridge run` and `broker run` processes started
 * through the CLI as users run them, an OpenBao test server and a Kubernetes test server in this process, and the
 * rogue parties the attacks need. `CLOUDTASER_TEST_DIST` points the processes at another build (e.g. main's), so
 * the same attacks can be run against the code before the fix; flags that build does not know are left out.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, connect as tlsConnect } from 'node:tls';
import { waitForPeer } from '../../runtime/beacon/index.js';
import { operationalHash } from '../../runtime/core/hashes.js';
import { silentLogger } from '../../runtime/core/index.js';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import {
  type CertificateAuthority,
  createCertificateAuthority,
  issueCertificate,
  issueSelfSignedSync,
  signCsr,
} from '../../runtime/pki/index.js';
import { ensureBeaconClientCa, type RegistrationResult } from '../../runtime/registration/index.js';
import {
  awaitSecure,
  INIT_ALPN,
  INNER_TLS_MIN_VERSION,
  openTunnel,
  readBootstrapMessage,
  type TunnelMux,
  writeBootstrapMessage,
} from '../../runtime/tunnel/index.js';
import { beaconCert, FAST_BROKER_FLAGS, type SecretStore, startSecretStore } from '../runtime/fixtures.js';
import { builtCli, root } from '../support/built-cli.js';
import { waitUntil } from '../support/wait.js';

export { dist } from '../support/built-cli.js';

const cli = builtCli();

const helpTexts = new Map<string, string>();
/** Whether the build under test knows `flag` for `command` (e.g. ['beacon', 'serve']). */
export function supports(command: readonly string[], flag: string): boolean {
  const key = command.join(' ');
  let help = helpTexts.get(key);
  if (help === undefined) {
    const result = spawnSync(process.execPath, [cli, ...command, '--help'], { encoding: 'utf8' });
    help = `${result.stdout}${result.stderr}`;
    helpTexts.set(key, help);
  }
  return help.includes(flag);
}

export async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}

export interface CliProcess {
  readonly child: ChildProcess;
  /** Every stderr line (the JSON log) so far. */
  lines(): string[];
  /** User + system CPU seconds the process has used, from /proc. */
  cpuSeconds(): number;
  kill(): Promise<void>;
}

const CLOCK_TICKS = 100;

export function startCli(args: string[], env: Record<string, string> = {}): CliProcess {
  const child = spawn(process.execPath, [cli, ...args], {
    cwd: root,
    env: { ...process.env, CLOUDTASER_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const lines: string[] = [];
  let partial = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    const text = partial + chunk.toString();
    const parts = text.split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts.filter((line) => line.length > 0));
  });
  return {
    child,
    lines: () => [...lines],
    cpuSeconds() {
      // /proc/<pid>/stat fields 14 and 15 (utime, stime) in clock ticks; the name field may hold spaces.
      const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
    },
    kill() {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
      return new Promise((done) => {
        child.once('exit', () => done());
        child.kill('SIGKILL');
      });
    },
  };
}

export interface BrokerStatusView {
  phase: string;
  reason: string;
  lastErrorCode?: string;
  operationalHashPrefix?: string;
  tunnel?: { since: string };
}

export async function statusOf<T = BrokerStatusView>(port: number): Promise<T | undefined> {
  try {
    return (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as T;
  } catch {
    return undefined;
  }
}

/** The attack stage: secret store, cluster, beacon and bridge processes; brokers are started per test. */
export interface TrustStage {
  readonly dir: string;
  readonly store: SecretStore;
  readonly kube: KubeTestServer;
  readonly kubeconfig: string;
  readonly cluster: RegistrationResult;
  readonly beaconAddress: string;
  readonly beaconCaFile: string;
  readonly beacon: CliProcess;
  readonly beaconMetricsPort: number;
  /** The bridge process (undefined until started, with `deferBridge`). */
  readonly bridge: CliProcess | undefined;
  readonly bridgeHealthPort: number;
  /** Starts the bridge (done by startTrustStage unless `deferBridge`). */
  startBridge(): Promise<CliProcess>;
  startBroker(options?: {
    pin?: string;
    beaconAddress?: string;
    extra?: string[];
  }): Promise<{ process: CliProcess; healthPort: number }>;
  close(): Promise<void>;
}

export interface StageOptions {
  /** Let bridges wait without a client certificate (isolates what the broker itself holds). */
  readonly anonymousBridges?: boolean;
  /** Extra `beacon serve` flags (only passed when the build knows them). */
  readonly beaconFlags?: Array<[flag: string, value?: string]>;
  /** @default '500ms' */
  readonly bridgePollInterval?: string;
  /** Leave the bridge to `stage.startBridge()`, so a test can set a room up before the bridge arrives. */
  readonly deferBridge?: boolean;
}

export async function startTrustStage(options: StageOptions = {}): Promise<TrustStage> {
  const dir = await mkdtemp(join(tmpdir(), 'cloudtaser-adversary-'));
  const processes: CliProcess[] = [];
  const store = await startSecretStore();
  const kube = await startKubeTestServer();
  const kubeconfig = join(dir, 'kubeconfig');
  await kube.writeKubeconfig(kubeconfig);
  // The operator's namespace, where the chart creates the trust record.
  await kube.createNamespace('cloudtaser-system');
  const cluster = await store.register(kube.kubeSystemUid);

  const beaconCaFile = join(dir, 'beacon.pem');
  await writeFile(beaconCaFile, beaconCert.certPem);
  await writeFile(join(dir, 'beacon-key.pem'), beaconCert.keyPem);
  await writeFile(join(dir, 'beacon-client-ca.pem'), (await ensureBeaconClientCa(store.admin)).certPem);
  const port = await freePort();
  const beaconMetricsPort = await freePort();
  const serve = ['beacon', 'serve'];
  const beaconArgs = [
    ...serve,
    '--listen',
    `127.0.0.1:${port}`,
    '--tls-cert',
    beaconCaFile,
    '--tls-key',
    join(dir, 'beacon-key.pem'),
    '--metrics-listen',
    `127.0.0.1:${beaconMetricsPort}`,
    '--broker-wait-ms',
    '2000',
    '--keepalive-ms',
    '1000',
  ];
  if (options.anonymousBridges) {
    if (supports(serve, '--allow-anonymous-bridges')) beaconArgs.push('--allow-anonymous-bridges');
  } else if (supports(serve, '--bridge-ca')) {
    beaconArgs.push('--bridge-ca', join(dir, 'beacon-client-ca.pem'));
  }
  for (const [flag, value] of options.beaconFlags ?? [])
    if (supports(serve, flag)) beaconArgs.push(flag, ...(value === undefined ? [] : [value]));
  const beacon = startCli(beaconArgs);
  processes.push(beacon);
  await waitUntil(
    async () => (await fetch(`http://127.0.0.1:${beaconMetricsPort}/readyz`).catch(() => undefined))?.ok,
    { timeoutMs: 15_000, what: 'the beacon' },
  );
  const beaconAddress = `127.0.0.1:${port}`;

  const bridgeHealthPort = await freePort();
  let bridge: CliProcess | undefined;
  const startBridge = async (): Promise<CliProcess> => {
    bridge = startCli(
      [
        'bridge',
        'run',
        '--secretstore-address',
        store.server.address,
        '--beacon',
        beaconAddress,
        '--beacon-ca',
        beaconCaFile,
        '--poll-interval',
        options.bridgePollInterval ?? '500ms',
        '--backoff-max',
        '1s',
        '--step-timeout',
        '3s',
        '--wait-refresh',
        '20s',
        '--health-listen',
        `127.0.0.1:${bridgeHealthPort}`,
      ],
      { CLOUDTASER_SECRETSTORE_TOKEN: store.server.rootToken },
    );
    processes.push(bridge);
    await waitUntil(
      async () => (await statusOf<{ clusters: unknown[] }>(bridgeHealthPort))?.clusters.length === 1,
      { timeoutMs: 15_000, what: 'the bridge serving the cluster' },
    );
    return bridge;
  };
  if (!options.deferBridge) {
    await startBridge();
    await waitUntil(
      async () =>
        ((await statusOf<{ clusters: { waiting: number }[] }>(bridgeHealthPort))?.clusters ?? []).some(
          (c) => c.waiting > 0,
        ),
      { timeoutMs: 15_000, what: 'the bridge waiting in the init room' },
    );
  }

  return {
    dir,
    store,
    kube,
    kubeconfig,
    cluster,
    beaconAddress,
    beaconCaFile,
    beacon,
    beaconMetricsPort,
    get bridge() {
      return bridge;
    },
    bridgeHealthPort,
    startBridge,
    async startBroker(brokerOptions = {}) {
      const healthPort = await freePort();
      const process = startCli([
        'broker',
        'run',
        '--beacon',
        brokerOptions.beaconAddress ?? beaconAddress,
        '--beacon-ca',
        beaconCaFile,
        '--kubeconfig',
        kubeconfig,
        '--health-listen',
        `127.0.0.1:${healthPort}`,
        ...FAST_BROKER_FLAGS,
        '--rejected-retry',
        '300ms',
        ...(brokerOptions.pin ? ['--ca-sha256', brokerOptions.pin] : []),
        ...(brokerOptions.extra ?? []),
      ]);
      processes.push(process);
      return { process, healthPort };
    },
    async close() {
      for (const process of processes) await process.kill();
      await kube.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A cluster CA and bridge certificate the attacker made: everything a rogue bridge needs, nothing of ours. */
export interface RogueIdentity {
  readonly ca: CertificateAuthority;
  readonly bridgeCertPem: string;
  readonly bridgeKeyPem: string;
  readonly operationalHash: string;
}

export function rogueIdentity(): RogueIdentity {
  const ca = createCertificateAuthority({ commonName: `rogue ${randomUUID().slice(0, 8)}` });
  const bridge = issueCertificate(ca, { commonName: 'cloudtaser-bridge', extKeyUsage: ['clientAuth'] });
  return {
    ca,
    bridgeCertPem: bridge.certPem,
    bridgeKeyPem: bridge.keyPem!,
    operationalHash: operationalHash(ca.certDer),
  };
}

/** What the rogue party saw: each count is something the real trust model says it must never get. */
export interface RogueCounts {
  /** Beacon answers `waiting` to the rogue's bridge announces. */
  waitingAccepted: number;
  /** Refusals the beacon sent the rogue, by code. */
  refused: Record<string, number>;
  /** Pairings in the init room (a broker met the rogue). */
  initPairings: number;
  /** Bootstrap requests (a fingerprint and a CSR) a broker sent the rogue. */
  bootstrapRequests: number;
  /** Bootstraps the rogue answered with its own CA and the broker did not refuse at once. */
  bootstrapsSigned: number;
  /** Operational tunnels a broker opened with the rogue CA. */
  tunnelsOpened: number;
  /** TokenReviews the broker answered for the rogue with its cluster rights. */
  tokenReviewsAnswered: number;
}

export function emptyCounts(): RogueCounts {
  return {
    waitingAccepted: 0,
    refused: {},
    initPairings: 0,
    bootstrapRequests: 0,
    bootstrapsSigned: 0,
    tunnelsOpened: 0,
    tokenReviewsAnswered: 0,
  };
}

/**
 * Plays the bridge in the init room with the attacker's own CA: TLS with its bridge certificate, reads the
 * broker's request, signs the CSR with the rogue CA and sends it back. Never throws.
 */
export async function rogueBootstrap(
  stream: Duplex,
  rogue: RogueIdentity,
  counts: RogueCounts,
): Promise<void> {
  const socket = tlsConnect({
    socket: stream,
    cert: `${rogue.bridgeCertPem.trim()}\n${rogue.ca.certPem.trim()}\n`,
    key: rogue.bridgeKeyPem,
    minVersion: INNER_TLS_MIN_VERSION,
    ALPNProtocols: [INIT_ALPN],
    rejectUnauthorized: false,
  });
  socket.on('error', () => {});
  try {
    await awaitSecure(socket, { timeoutMs: 5_000, code: 'CT_BOOTSTRAP_PROTOCOL', what: 'rogue init TLS' });
    const request = await readBootstrapMessage(socket, { timeoutMs: 5_000, expect: ['bootstrap.request'] });
    if (request.type !== 'bootstrap.request') return;
    counts.bootstrapRequests++;
    const brokerCert = signCsr(rogue.ca, request.csr, {
      commonName: 'cloudtaser-broker',
      extKeyUsage: ['serverAuth'],
    }).certPem;
    const podApiCert =
      request.podApiCsr === undefined
        ? undefined
        : signCsr(rogue.ca, request.podApiCsr, {
            commonName: 'cloudtaser',
            dnsNames: ['cloudtaser'],
            extKeyUsage: ['serverAuth'],
          }).certPem;
    writeBootstrapMessage(socket, {
      v: 1,
      type: 'bootstrap.accepted',
      caCert: rogue.ca.certPem,
      brokerCert,
      ...(podApiCert ? { podApiCert } : {}),
    });
    counts.bootstrapsSigned++;
  } catch {
    // The broker refused us (pin, trust record): exactly what the fix wants.
  } finally {
    socket.end();
    setTimeout(() => socket.destroy(), 500).unref();
  }
}

/**
 * Plays the bridge in the rogue CA's operational room: if a broker accepted the rogue CA it dials in here, and
 * the attacker then uses the tunnel as the bridge would (a TokenReview with the broker's cluster rights).
 */
export async function rogueTunnel(
  stream: Duplex,
  rogue: RogueIdentity,
  counts: RogueCounts,
): Promise<TunnelMux | undefined> {
  try {
    const session = await openTunnel(stream, {
      caCertPem: rogue.ca.certPem,
      certPem: rogue.bridgeCertPem,
      keyPem: rogue.bridgeKeyPem,
      handshakeTimeoutMs: 5_000,
      logger: silentLogger,
    });
    counts.tunnelsOpened++;
    const review = await session.mux
      .request(
        {
          method: 'POST',
          path: '/kube/apis/authentication.k8s.io/v1/tokenreviews',
          headers: { 'content-type': 'application/json' },
        },
        Buffer.from(
          JSON.stringify({
            apiVersion: 'authentication.k8s.io/v1',
            kind: 'TokenReview',
            spec: { token: 'stolen' },
          }),
        ),
        { timeoutMs: 5_000 },
      )
      .catch(() => undefined);
    if (review && review.status < 500) counts.tokenReviewsAnswered++;
    return session.mux;
  } catch {
    stream.destroy();
    return undefined;
  }
}

/**
 * A rogue party that knows only the init hash (and the beacon address): keeps `waiters` bridge connections in
 * the init room with its own CA, and one in its own operational room. Each waiter re-announces after a pairing or
 * a refusal, as an attacker would.
 */
export function startRogueBridge(options: {
  beaconAddress: string;
  initHash: string;
  waiters: number;
  rogue?: RogueIdentity;
}): { counts: RogueCounts; rogue: RogueIdentity; stop(): void } {
  const rogue = options.rogue ?? rogueIdentity();
  const counts = emptyCounts();
  const stop = new AbortController();
  const [host, port] = [options.beaconAddress.split(':')[0], Number(options.beaconAddress.split(':')[1])];
  const target = { door: 'tls' as const, host: 'localhost', port };
  const loop = async (hash: string, room: 'init' | 'operational') => {
    while (!stop.signal.aborted) {
      try {
        const stream = await waitForPeer({
          target,
          ip: host,
          role: 'bridge',
          hash,
          caCertPem: beaconCert.certPem,
          signal: stop.signal,
          onWaiting: () => {
            counts.waitingAccepted++;
          },
        });
        if (room === 'init') {
          counts.initPairings++;
          void rogueBootstrap(stream, rogue, counts);
        } else void rogueTunnel(stream, rogue, counts);
      } catch (err) {
        const code = (err as { code?: string }).code ?? 'unknown';
        counts.refused[code] = (counts.refused[code] ?? 0) + 1;
        await new Promise((done) => setTimeout(done, 50));
      }
    }
  };
  for (let i = 0; i < options.waiters; i++) void loop(options.initHash, 'init');
  void loop(rogue.operationalHash, 'operational');
  return { counts, rogue, stop: () => stop.abort() };
}

/**
 * Samples a broker's /status every 50 ms and remembers whether it was ever operational on the rogue CA (the
 * attack succeeding) and every status it showed (for the "no fingerprint in /status" check).
 */
export function watchBroker(healthPort: number, rogueOperationalHash: string) {
  const seen: BrokerStatusView[] = [];
  let operationalOnRogue = false;
  let stopped = false;
  const rogueHashPrefix = rogueOperationalHash.slice(0, 12);
  const loop = (async () => {
    while (!stopped) {
      const status = await statusOf(healthPort);
      if (status) {
        seen.push(status);
        if (status.phase === 'operational' && status.operationalHashPrefix === rogueHashPrefix)
          operationalOnRogue = true;
      }
      await new Promise((done) => setTimeout(done, 50));
    }
  })();
  return {
    seen,
    get operationalOnRogue() {
      return operationalOnRogue;
    },
    latest: () => seen.at(-1),
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/**
 * Fake brokers hammering a room: each announces as a broker, and when paired plays a TLS server with a
 * self-signed certificate (so the bridge does its part of a handshake), then goes again at once. Refusals by the
 * beacon are retried after a short pause, as a determined attacker would.
 */
export function startFakeBrokers(options: { beaconAddress: string; hash: string; count: number }): {
  readonly counts: { pairings: number; refused: Record<string, number> };
  stop(): void;
} {
  const counts = { pairings: 0, refused: {} as Record<string, number> };
  const stop = new AbortController();
  const [host, port] = [options.beaconAddress.split(':')[0], Number(options.beaconAddress.split(':')[1])];
  const fake = issueSelfSigned();
  const loop = async () => {
    while (!stop.signal.aborted) {
      try {
        const stream = await waitForPeer({
          target: { door: 'tls', host: 'localhost', port },
          ip: host,
          role: 'broker',
          hash: options.hash,
          caCertPem: beaconCert.certPem,
          signal: stop.signal,
        });
        counts.pairings++;
        const server = createTlsServer({ cert: fake.certPem, key: fake.keyPem, minVersion: 'TLSv1.3' });
        server.on('tlsClientError', () => stream.destroy());
        server.on('secureConnection', (socket) => socket.destroy());
        stream.on('error', () => {});
        server.emit('connection', stream);
        await new Promise<void>((done) => {
          const timer = setTimeout(done, 2_000);
          stream.once('close', () => {
            clearTimeout(timer);
            done();
          });
        });
        stream.destroy();
      } catch (err) {
        const code = (err as { code?: string }).code ?? 'unknown';
        counts.refused[code] = (counts.refused[code] ?? 0) + 1;
        await new Promise((done) => setTimeout(done, 20));
      }
    }
  };
  for (let i = 0; i < options.count; i++) void loop();
  return { counts, stop: () => stop.abort() };
}

function issueSelfSigned() {
  return issueSelfSignedSync({ commonName: 'fake broker', extKeyUsage: ['serverAuth'] });
}
