/**
 * Test fixtures for the bridge/broker tests: an OpenBao test server, beacons on 127.0.0.1 and 127.0.0.2 with
 * the SAME port (one name, two replicas through an injected resolver), a registered cluster.
 */
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { afterAll, beforeAll } from 'vitest';
import { type BeaconHandle, createBeacon } from '../../runtime/beacon/index.js';
import { type BridgeHandle, type BridgeOptions, startBridge } from '../../runtime/bridge/index.js';
import { type BrokerHandle, type BrokerOptions, startBroker } from '../../runtime/broker/index.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import {
  createCertificateAuthority,
  issueCertificate,
  issueSelfSignedSync,
} from '../../runtime/pki/index.js';
import { type RegistrationResult, registerCluster } from '../../runtime/registration/index.js';
import { type CloudtaserIdentities, provisionIdentities } from '../openbao-identities.js';

export const BEACON_NAME = 'beacon.test';
export const REPLICA_IPS = ['127.0.0.1', '127.0.0.2'];

/** Short bounds so tests see waits, expiries and retries within a second. */
export const FAST_BEACON_LIMITS = { brokerWaitMs: 2_000, bridgeWaitMs: 5_000, keepaliveIntervalMs: 1_000 };
export const FAST_BROKER_TIMING = {
  stepTimeoutMs: 3_000,
  backoffInitialMs: 50,
  backoffMaxMs: 1_000,
  rejectedRetryMs: 300,
  pairTimeoutMs: 4_000,
};
/** FAST_BROKER_TIMING as `broker run` flags, for the tests that run the built CLI. */
export const FAST_BROKER_FLAGS = [
  '--backoff-initial',
  '50ms',
  '--backoff-max',
  '1s',
  '--step-timeout',
  '3s',
  '--pair-timeout',
  '4s',
] as const;
export const FAST_BRIDGE_TIMING = {
  pollIntervalMs: 200,
  stepTimeoutMs: 3_000,
  backoffInitialMs: 50,
  backoffMaxMs: 1_000,
  waitRefreshMs: 3_000,
  // A closing test bridge with no replica beside it waits this long for its brokers to move before it closes.
  closeMoveWaitMs: 1_500,
};

export const beaconCert = issueSelfSignedSync({
  commonName: 'cloudtaser test beacon',
  dnsNames: [BEACON_NAME, 'localhost'],
  ipAddresses: REPLICA_IPS,
});

/**
 * The bridges' identity towards the test beacons, as production has it: a beacon client CA the beacons trust
 * and a client certificate from it that every test bridge presents.
 */
export const beaconClientCa = createCertificateAuthority({ commonName: 'test beacon client CA' });
const testBridgeClient = issueCertificate(beaconClientCa, {
  commonName: 'cloudtaser-bridge',
  extKeyUsage: ['clientAuth'],
});
export const testBeaconIdentity = {
  current: () => ({ certPem: testBridgeClient.certPem, keyPem: testBridgeClient.keyPem! }),
};

/**
 * `bridge run` flags that give a bridge process the test beacon client certificate as files (what a cert-manager
 * Secret gives it), so it is admitted by beacons built with `bridgeCaPems: [beaconClientCa.certPem]`.
 */
export async function beaconClientFlags(dir: string): Promise<string[]> {
  const { certPem, keyPem } = testBeaconIdentity.current();
  const cert = join(dir, 'beacon-client.crt');
  const key = join(dir, 'beacon-client.key');
  await writeFile(cert, certPem);
  await writeFile(key, keyPem, { mode: 0o600 });
  return ['--beacon-client-identity', 'files', '--beacon-client-cert', cert, '--beacon-client-key', key];
}

export const testResolve = async (host: string) => (host === BEACON_NAME ? [...REPLICA_IPS] : [host]);

export interface Replicas {
  readonly port: number;
  readonly address: string;
  readonly handles: (BeaconHandle | undefined)[];
  stop(index: number): Promise<void>;
  start(index: number): Promise<void>;
  close(): Promise<void>;
}

/** Beacon replicas, one per loopback IP, sharing one port. */
export async function startReplicas(count = REPLICA_IPS.length): Promise<Replicas> {
  const first = await createBeacon({
    host: REPLICA_IPS[0],
    port: 0,
    tls: beaconCert,
    bridgeCaPems: [beaconClientCa.certPem],
    limits: FAST_BEACON_LIMITS,
  });
  const port = first.port;
  const handles: (BeaconHandle | undefined)[] = [first];
  const start = async (index: number) => {
    handles[index] = await createBeacon({
      host: REPLICA_IPS[index],
      port,
      tls: beaconCert,
      bridgeCaPems: [beaconClientCa.certPem],
      limits: FAST_BEACON_LIMITS,
    });
  };
  for (let i = 1; i < count; i++) await start(i);
  return {
    port,
    address: `${BEACON_NAME}:${port}`,
    handles,
    async stop(index) {
      await handles[index]?.close();
      handles[index] = undefined;
    },
    start,
    async close() {
      for (const handle of handles) await handle?.close();
    },
  };
}

export interface SecretStore {
  readonly server: OpenBaoTestServer;
  /** Root token: for what the test inspects or breaks on purpose, never for the bridge or registration. */
  readonly admin: OpenBaoClient;
  /** Exactly the shipped registrar policy (register, status, rearm, deregister). */
  readonly registrar: OpenBaoClient;
  /** Exactly the shipped bridge policy, logged in through AppRole. */
  readonly bridge: OpenBaoClient;
  readonly identities: CloudtaserIdentities;
  register(fingerprint?: string): Promise<RegistrationResult>;
  /** How many times `clusters/<fp>/initialized` was written successfully. */
  initializedWrites(fingerprint: string): number;
  close(): Promise<void>;
}

/**
 * A secret store and `replicaCount` beacon replicas for the tests of a file (or a `describe`): started before them,
 * closed after them, after `closeFirst` has closed what the tests started on top (brokers, then bridges).
 */
export function useStoreAndReplicas(
  replicaCount: number,
  closeFirst?: () => Promise<unknown>,
): { readonly store: SecretStore; readonly replicas: Replicas } {
  let store: SecretStore | undefined;
  let replicas: Replicas | undefined;
  beforeAll(async () => {
    store = await startSecretStore();
    replicas = await startReplicas(replicaCount);
  });
  afterAll(async () => {
    await closeFirst?.();
    await replicas?.close();
    await store?.close();
  });
  return {
    get store() {
      if (!store) throw new Error('the secret store starts in beforeAll');
      return store;
    },
    get replicas() {
      if (!replicas) throw new Error('the beacon replicas start in beforeAll');
      return replicas;
    },
  };
}

export async function startSecretStore(): Promise<SecretStore> {
  const server = await startOpenBaoTestServer();
  const admin = new OpenBaoClient({ address: server.address, token: server.rootToken });
  const identities = await provisionIdentities(admin);
  const registrar = admin.withToken(identities.registrarToken);
  return {
    server,
    admin,
    registrar,
    bridge: admin.withToken(identities.bridgeToken),
    identities,
    register: (fingerprint = randomUUID()) => registerCluster(registrar, { fingerprint }),
    initializedWrites: (fingerprint) =>
      server
        .requestLog()
        .filter(
          (entry) =>
            (entry.method === 'POST' || entry.method === 'PUT') &&
            entry.path.endsWith(`data/clusters/${fingerprint}/initialized`) &&
            entry.status < 300,
        ).length,
    async close() {
      await admin.close();
      await server.close();
    },
  };
}

/**
 * A JS Duplex between a paired stream and its user, so a test can see or hold back the bytes: `pass` decides per
 * chunk (and direction) whether it goes through. Backpressure, end, close and errors pass through unchanged.
 */
export function interpose(inner: Duplex, pass: (chunk: Buffer, direction: 'out' | 'in') => boolean): Duplex {
  const proxy = new Duplex({
    read() {
      inner.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      if (!pass(chunk, 'out')) return callback();
      inner.write(chunk, callback);
    },
    final(callback) {
      inner.end();
      callback();
    },
    destroy(err, callback) {
      inner.destroy();
      callback(err);
    },
  });
  inner.on('data', (chunk: Buffer) => {
    if (pass(chunk, 'in') && !proxy.push(chunk)) inner.pause();
  });
  inner.on('end', () => proxy.push(null));
  inner.on('close', () => proxy.destroy());
  inner.on('error', (err) => proxy.destroy(err));
  return proxy;
}

/**
 * Records every byte a paired stream carries in both directions, as the relay sees it. It sits as a JS
 * Duplex between the beacon connection and the inner TLS, so nothing bypasses it.
 */
export class Capture {
  readonly chunks: Buffer[] = [];

  wrap = (inner: Duplex): Duplex =>
    interpose(inner, (chunk) => {
      this.chunks.push(Buffer.from(chunk));
      return true;
    });

  all(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** A bridge as every test starts one: the test beacon CA and resolver, fast timing; `options` override. */
export function startTestBridge(
  options: Partial<BridgeOptions> & Pick<BridgeOptions, 'openbao' | 'beacons'>,
): Promise<BridgeHandle> {
  return startBridge({
    beaconCaPem: beaconCert.certPem,
    beaconIdentity: testBeaconIdentity,
    resolve: testResolve,
    timing: FAST_BRIDGE_TIMING,
    ...options,
  });
}

/** A broker as every test starts one: the test beacon CA and resolver, fast timing; `options` override. */
export function startTestBroker(
  options: Partial<BrokerOptions> & Pick<BrokerOptions, 'fingerprint' | 'beacons'>,
): Promise<BrokerHandle> {
  return startBroker({
    beaconCaPem: beaconCert.certPem,
    resolve: testResolve,
    timing: FAST_BROKER_TIMING,
    ...options,
  });
}
