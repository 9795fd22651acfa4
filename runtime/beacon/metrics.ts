import type { Server } from 'node:http';
import { Counter, Gauge, type Registry } from 'prom-client';
import { startHealthServer } from '../core/health-server.js';
import { createProcessRegistry } from '../core/metrics.js';

/** Plain numbers the hot path bumps; Prometheus reads them at scrape time, so relaying costs one addition. */
export interface BeaconCounters {
  connections: number;
  waitingBroker: number;
  waitingBridge: number;
  paired: number;
  bytesBrokerToBridge: number;
  bytesBridgeToBroker: number;
}

export interface BeaconMetrics {
  readonly registry: Registry;
  readonly counters: BeaconCounters;
  rejection(reason: string): void;
  /** A client closed during the outer TLS handshake (see BeaconDoors: it may not trust the certificate). */
  tlsAborted(): void;
  pairing(brokerDoor: string, bridgeDoor: string): void;
  accepted(door: string): void;
  /** The notAfter of the certificate the TLS door serves now (set at start and at every reload). */
  certificate(notAfter: Date): void;
}

export interface BeaconMetricsOptions {
  /** Also export the process's own metrics (CPU, memory). */
  readonly processMetrics: boolean;
  /** The bound on open connections (`--max-connections`), exported so an alert can compare the count with it. */
  readonly maxConnections: number;
}

export function createBeaconMetrics(options: BeaconMetricsOptions): BeaconMetrics {
  const registry = createProcessRegistry('cloudtaser_beacon_', options.processMetrics);
  const counters: BeaconCounters = {
    connections: 0,
    waitingBroker: 0,
    waitingBridge: 0,
    paired: 0,
    bytesBrokerToBridge: 0,
    bytesBridgeToBroker: 0,
  };
  const rejections = new Counter({
    name: 'cloudtaser_beacon_rejections_total',
    help: 'Connections the beacon closed because a bound was hit or the protocol was broken, by reason',
    labelNames: ['reason'],
    registers: [registry],
  });
  const tlsAborted = new Counter({
    name: 'cloudtaser_beacon_tls_handshakes_aborted_total',
    help: "Clients that closed during the outer TLS handshake: clients that do not trust the beacon's certificate do so, as do hasty probes",
    registers: [registry],
  });
  const pairings = new Counter({
    name: 'cloudtaser_beacon_pairings_total',
    help: 'Broker/bridge pairs matched, by the door each side came through',
    labelNames: ['broker_door', 'bridge_door'],
    registers: [registry],
  });
  const accepted = new Counter({
    name: 'cloudtaser_beacon_connections_accepted_total',
    help: 'Connections that passed the first-bytes check, by door',
    labelNames: ['door'],
    registers: [registry],
  });
  new Gauge({
    name: 'cloudtaser_beacon_connections',
    help: 'Open client connections of every state',
    registers: [registry],
    collect() {
      this.set(counters.connections);
    },
  });
  // The bound lives in a flag (chart: beacon.extraArgs), so only the process can tell Prometheus what it is.
  new Gauge({
    name: 'cloudtaser_beacon_max_connections',
    help: 'The bound on open connections (--max-connections); over it new connections are closed at accept',
    registers: [registry],
  }).set(options.maxConnections);
  new Gauge({
    name: 'cloudtaser_beacon_waiting',
    help: 'Connections announced and waiting for a peer, by role',
    labelNames: ['role'],
    registers: [registry],
    collect() {
      this.set({ role: 'broker' }, counters.waitingBroker);
      this.set({ role: 'bridge' }, counters.waitingBridge);
    },
  });
  new Gauge({
    name: 'cloudtaser_beacon_paired',
    help: 'Pairs currently relaying',
    registers: [registry],
    collect() {
      this.set(counters.paired);
    },
  });
  let reportedBrokerToBridge = 0;
  let reportedBridgeToBroker = 0;
  new Counter({
    name: 'cloudtaser_beacon_relayed_bytes_total',
    help: 'Payload bytes relayed between paired connections, by direction',
    labelNames: ['direction'],
    registers: [registry],
    collect() {
      this.inc({ direction: 'broker_to_bridge' }, counters.bytesBrokerToBridge - reportedBrokerToBridge);
      this.inc({ direction: 'bridge_to_broker' }, counters.bytesBridgeToBroker - reportedBridgeToBroker);
      reportedBrokerToBridge = counters.bytesBrokerToBridge;
      reportedBridgeToBroker = counters.bytesBridgeToBroker;
    },
  });
  // An expired beacon certificate fails every client's handshake at once (brokers and bridges alike); the files are
  // re-read when they change, so this says whether the renewal reached the process (an outside SRE drill found no
  // way to alert on it).
  const certificateNotAfter = new Gauge({
    name: 'cloudtaser_beacon_certificate_not_after_seconds',
    help: "When the certificate the beacon's TLS door serves expires (Unix seconds)",
    registers: [registry],
  });
  return {
    registry,
    counters,
    certificate: (notAfter) => certificateNotAfter.set(Math.floor(notAfter.getTime() / 1000)),
    rejection: (reason) => rejections.inc({ reason }),
    tlsAborted: () => tlsAborted.inc(),
    pairing: (brokerDoor, bridgeDoor) => pairings.inc({ broker_door: brokerDoor, bridge_door: bridgeDoor }),
    accepted: (door) => accepted.inc({ door }),
  };
}

/** `/healthz` (process alive), `/readyz` (accepting connections), `/metrics` (Prometheus text). */
export async function startMetricsServer(
  metrics: BeaconMetrics,
  host: string,
  port: number,
  isReady: () => boolean,
): Promise<{ server: Server; url: string }> {
  const { server, url } = await startHealthServer({
    host,
    port,
    ready: isReady,
    routes: {
      '/metrics': async () => ({
        contentType: metrics.registry.contentType,
        body: await metrics.registry.metrics(),
      }),
    },
  });
  server.headersTimeout = 10_000;
  return { server, url };
}

export { formatHost } from '../core/health-server.js';
