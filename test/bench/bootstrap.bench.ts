/**
 * bootstrap.operational_ms: from startBroker() to phase `operational` (fingerprint in hand, bridge already
 * waiting), through the in-process dev stack: beacon TLS door, init TLS + CSR signing + cas=0 write in the
 * OpenBao test server, operational mutual TLS, tunnel info round trip. Baseline: one direct inner mutual-TLS
 * handshake on loopback, same run.
 */
import { randomUUID } from 'node:crypto';
import { createServer as createTlsServer, connect as tlsConnect } from 'node:tls';
import { startBridge, startMintedBeaconIdentity } from '../../runtime/bridge/index.js';
import { startBroker } from '../../runtime/broker/index.js';
import { startDevStack } from '../../runtime/dev/stack.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { createCertificateAuthority, issueCertificate } from '../../runtime/pki/index.js';
import { deregisterCluster, registerCluster } from '../../runtime/registration/index.js';
import { waitUntil } from '../support/wait.js';
import { type Benchmark, median, percentile, sample, sized } from './harness.js';

async function directMutualTlsHandshakes(count: number): Promise<number[]> {
  const ca = createCertificateAuthority({ commonName: 'bench ca' });
  const server = issueCertificate(ca, { commonName: 'server', extKeyUsage: ['serverAuth'] });
  const client = issueCertificate(ca, { commonName: 'client', extKeyUsage: ['clientAuth'] });
  const tlsServer = createTlsServer({
    cert: server.certPem,
    key: server.keyPem,
    ca: [ca.certPem],
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
  });
  tlsServer.on('secureConnection', (socket) => socket.end());
  await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
  const port = (tlsServer.address() as { port: number }).port;
  const once = () =>
    new Promise<void>((resolve, reject) => {
      const socket = tlsConnect({
        host: '127.0.0.1',
        port,
        cert: client.certPem,
        key: client.keyPem,
        ca: [ca.certPem],
        checkServerIdentity: () => undefined,
        minVersion: 'TLSv1.3',
      });
      socket.once('secureConnect', () => {
        socket.destroy();
        resolve();
      });
      socket.once('error', reject);
    });
  try {
    return await sample(count, once, 5);
  } finally {
    await new Promise((resolve) => tlsServer.close(resolve));
  }
}

export const benchmarks: Benchmark[] = [
  {
    name: 'bootstrap',
    async run(ctx) {
      const runs = sized(ctx, 30, 8, 2);
      const stack = await startDevStack();
      const admin = new OpenBaoClient({ address: stack.secretstoreAddress, token: stack.secretstoreToken });
      // The beacon admits only bridges with a client certificate from its bridge CA: the production default,
      // minted from the CA kept in OpenBao (what `bridge run` does without flags).
      const beaconIdentity = await startMintedBeaconIdentity({ openbao: admin });
      const bridge = await startBridge({
        openbao: admin,
        beacons: [stack.beaconAddress],
        beaconCaPem: stack.beaconCaPem,
        beaconIdentity,
        timing: { pollIntervalMs: 60_000 },
      });
      const samples: number[] = [];
      try {
        for (let i = 0; i < runs + 2; i++) {
          const fingerprint = randomUUID();
          await registerCluster(admin, { fingerprint });
          await bridge.pollNow();
          // "Bridge already waiting": the init room has a waiter on the beacon before the clock starts.
          // Bounded: a bridge the beacon refuses never waits; its status then says why.
          await waitUntil(() => bridge.status().clusters.some((c) => c.waiting > 0), {
            what: 'the bridge to wait in the init room',
            timeoutMs: 10_000,
            intervalMs: 5,
          }).catch((err: Error) => {
            throw new Error(`${err.message}; bridge status: ${JSON.stringify(bridge.status())}`);
          });
          const started = performance.now();
          const broker = await startBroker({
            fingerprint,
            beacons: [stack.beaconAddress],
            beaconCaPem: stack.beaconCaPem,
          });
          await broker.waitForPhase('operational', 10_000);
          const elapsed = performance.now() - started;
          if (i >= 2) samples.push(elapsed); // two warm-up runs
          await broker.close();
          await deregisterCluster(admin, { fingerprint });
          await bridge.pollNow();
        }
      } finally {
        await bridge.close();
        beaconIdentity.close();
        await admin.close();
        await stack.close();
      }
      const handshakes = await directMutualTlsHandshakes(sized(ctx, 200, 50, 10));
      const value = median(samples);
      const baseline = median(handshakes);
      ctx.log(
        `bootstrap: ${value.toFixed(1)} ms to operational (p90 ${percentile(samples, 90).toFixed(1)}) vs ${baseline.toFixed(2)} ms per direct mTLS handshake`,
      );
      return [
        {
          name: 'bootstrap.operational_ms',
          value,
          unit: 'ms',
          baseline,
          baselineLabel: 'one direct inner mTLS handshake (ECDSA, loopback)',
          ratio: value / baseline,
          goal: { op: '<=', limit: 300, on: 'value' },
          extra: { p90_ms: percentile(samples, 90), runs: samples.length },
        },
      ];
    },
  },
];
