import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';

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
  pairing(brokerDoor: string, bridgeDoor: string): void;
  accepted(door: string): void;
}

export function createBeaconMetrics(options: { processMetrics: boolean }): BeaconMetrics {
  const registry = new Registry();
  // Process metrics watch GC and event-loop delay continuously; only pay for that when someone can scrape.
  if (options.processMetrics) collectDefaultMetrics({ register: registry, prefix: 'cloudtaser_beacon_' });
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
  return {
    registry,
    counters,
    rejection: (reason) => rejections.inc({ reason }),
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
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const ready = isReady();
      res
        .writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' })
        .end(ready ? 'ready\n' : 'not ready\n');
    } else if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return { server, url: `http://${formatHost(address.address)}:${address.port}` };
}

export function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
