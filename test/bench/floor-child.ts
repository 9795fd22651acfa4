/**
 * The transport floor for `secret.read_latency`: the same processes and the same TLS layers as the real path
 * (pod HTTPS -> broker -> inner mutual TLS over the beacon's TLS door -> bridge -> OpenBao HTTPS), with every
 * byte piped and nothing parsed. No allow-list, no multiplexer, no HTTP at the ends: what any design with this
 * topology pays on this machine before it does its own work. The beacon in between is the real one.
 *
 *   node floor-child.js broker   # pod-facing TLS server; per pod connection: dial the beacon, inner TLS server
 *                                # (concurrent pod connections each get their own pairing and tunnel)
 *   node floor-child.js bridge   # keeps one waiter parked; per pairing: inner TLS client, then TLS to OpenBao
 *
 * and the HTTP termination floor: the same topology where both ends terminate HTTP with the stock libraries and
 * nothing of ours (no allow-list, no multiplexer, no namespace rewriting): what any design that must read each
 * pod request (as the allow-list does) pays for Node's HTTP stack. Sequential reads only (one tunnel).
 *
 *   node floor-child.js http-broker  # Node HTTPS server for pods; each request re-issued with an undici Client
 *                                    # over one inner TLS tunnel (the broker is its TLS server, as in production)
 *   node floor-child.js http-bridge  # per pairing: a Node HTTP server on the inner TLS tunnel; each request
 *                                    # re-issued to OpenBao with an undici Agent
 *
 * Configuration arrives in CT_BENCH_FLOOR (JSON, see FloorConfig); the broker reports its port over IPC.
 */
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  createSecureContext,
  createServer as createTlsServer,
  type SecureContext,
  type TLSSocket,
  type Server as TlsServer,
  connect as tlsConnect,
} from 'node:tls';
import { Agent, Client, type Dispatcher } from 'undici';
import { waitForPeer } from '../../runtime/beacon/index.js';

export interface FloorConfig {
  readonly beaconPort: number;
  readonly beaconCaPem: string;
  readonly room: string;
  readonly caPem: string;
  readonly broker: { readonly certPem: string; readonly keyPem: string };
  readonly bridge: { readonly certPem: string; readonly keyPem: string };
  /** The pod-facing certificate of the floor broker. */
  readonly podApi: { readonly certPem: string; readonly keyPem: string };
  readonly openbaoPort: number;
  readonly openbaoCaPem: string;
  /** The floor bridge's client certificate towards the beacon (a bridge proves itself, as the real one does). */
  readonly beaconClient: { readonly certPem: string; readonly keyPem: string };
}

const config = JSON.parse(process.env.CT_BENCH_FLOOR ?? '{}') as FloorConfig;
const target = { door: 'tls' as const, host: '127.0.0.1', port: config.beaconPort };

function splice(a: Duplex, b: Duplex): void {
  a.pipe(b);
  b.pipe(a);
  const down = () => {
    a.destroy();
    b.destroy();
  };
  a.on('error', down).on('close', down);
  b.on('error', down).on('close', down);
}

/** The broker end of the inner mutual TLS: a never-listening server, fed the paired stream by hand. */
function brokerInnerServer(): TlsServer {
  return createTlsServer({
    cert: config.broker.certPem,
    key: config.broker.keyPem,
    ca: config.caPem,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
  });
}

function pairAsBroker(): Promise<Duplex> {
  return waitForPeer({
    target,
    ip: '127.0.0.1',
    role: 'broker',
    hash: config.room,
    caCertPem: config.beaconCaPem,
  });
}

async function runBroker(): Promise<void> {
  const server = createTlsServer(
    { cert: config.podApi.certPem, key: config.podApi.keyPem, noDelay: true },
    (pod) => {
      pod.pause();
      // A never-listening tls.Server per pod connection (only through one does Node verify the client
      // certificate), so that concurrent pod connections each get their own tunnel.
      const inner = brokerInnerServer();
      pairAsBroker().then(
        (stream) => {
          inner.once('secureConnection', (tunnel: TLSSocket) => {
            splice(pod, tunnel);
            pod.resume();
          });
          inner.emit('connection', stream);
        },
        (err: Error) => {
          console.error('floor broker: pairing failed:', err.message);
          pod.destroy();
        },
      );
    },
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  process.send!({ port: (server.address() as AddressInfo).port });
}

async function runBridge(): Promise<void> {
  const inner = bridgeInnerContext();
  const openbao = createSecureContext({ ca: config.openbaoCaPem });
  process.send!({ port: 0 });
  const toOpenBao = (tunnel: TLSSocket) => {
    const upstream = tlsConnect({
      host: '127.0.0.1',
      port: config.openbaoPort,
      secureContext: openbao,
    });
    upstream.setNoDelay(true);
    upstream.once('secureConnect', () => {
      splice(tunnel, upstream);
    });
    upstream.on('error', () => tunnel.destroy());
  };
  // Several waiters, as the real bridge keeps one per room and replica: concurrent pod connections pair at once.
  await Promise.all(
    Array.from({ length: FLOOR_BRIDGE_WAITERS }, () => acceptTunnels(inner, 'floor bridge', toOpenBao)),
  );
}

/** Waiters the floor bridge keeps parked (the beacon takes up to 8 per room and role). */
const FLOOR_BRIDGE_WAITERS = 4;

function bridgeInnerContext(): SecureContext {
  return createSecureContext({
    cert: config.bridge.certPem,
    key: config.bridge.keyPem,
    ca: config.caPem,
    minVersion: 'TLSv1.3',
  });
}

/** One waiter of a floor bridge: pairs, completes the inner TLS as its client, hands each tunnel on; forever. */
async function acceptTunnels(
  inner: SecureContext,
  label: string,
  onTunnel: (tunnel: TLSSocket) => void,
): Promise<never> {
  for (;;) {
    const stream = await waitForPeer({
      target,
      ip: '127.0.0.1',
      role: 'bridge',
      hash: config.room,
      caCertPem: config.beaconCaPem,
      clientCertificate: config.beaconClient,
    }).catch(() => undefined);
    if (!stream) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      continue;
    }
    const tunnel = tlsConnect({ socket: stream, servername: 'broker', secureContext: inner });
    tunnel.on('error', (err) => {
      console.error(`${label}: inner TLS failed:`, err.message);
      tunnel.destroy();
    });
    tunnel.once('secureConnect', () => onTunnel(tunnel));
  }
}

/** Pairs once as the broker and completes the inner mutual TLS as its server: the tunnel of the HTTP floor. */
async function brokerTunnel(): Promise<TLSSocket> {
  const inner = brokerInnerServer();
  const stream = await pairAsBroker();
  const secured = once(inner, 'secureConnection') as Promise<[TLSSocket]>;
  inner.emit('connection', stream);
  const [tunnel] = await secured;
  tunnel.setNoDelay?.(true);
  return tunnel;
}

/** Reads a request's body and forwards method, URL and the two Vault headers with `dispatcher`; replies as is. */
async function relayRequest(
  req: IncomingMessage,
  res: ServerResponse,
  dispatcher: Dispatcher,
  origin: string,
): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const headers: Record<string, string> = {};
  for (const name of ['x-vault-token', 'x-vault-namespace', 'content-type']) {
    const value = req.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  const answer = await dispatcher.request({
    origin,
    path: req.url ?? '/',
    method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
    headers,
    body: chunks.length > 0 ? Buffer.concat(chunks) : undefined,
  });
  const body = Buffer.from(await answer.body.arrayBuffer());
  res.writeHead(answer.statusCode, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
}

function failWith502(res: ServerResponse, err: Error): void {
  console.error('floor: relay failed:', err.message);
  if (!res.headersSent) res.writeHead(502).end();
  else res.destroy();
}

async function runHttpBroker(): Promise<void> {
  // One tunnel at a time, paired again whenever undici connects (the first request, or after the tunnel closed):
  // handing back a tunnel that had closed left the next read waiting for headers until undici's 300 s timeout
  // (the full `--only=secret` run idles the HTTP floor longer than Node's keep-alive between its phases).
  const client = new Client('http://tunnel', {
    keepAliveTimeout: 600_000,
    keepAliveMaxTimeout: 600_000,
    connect: (_options, callback) => {
      // Called back on a later turn: undici 7 never writes a request on a socket handed back synchronously.
      brokerTunnel().then(
        (tunnel) => setImmediate(() => callback(null, tunnel)),
        (err: Error) => callback(err, null),
      );
    },
  });
  const server = createHttpsServer(
    { cert: config.podApi.certPem, key: config.podApi.keyPem, noDelay: true },
    (req, res) => {
      relayRequest(req, res, client, 'http://tunnel').catch((err: Error) => failWith502(res, err));
    },
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  process.send!({ port: (server.address() as AddressInfo).port });
}

async function runHttpBridge(): Promise<void> {
  const origin = `https://127.0.0.1:${config.openbaoPort}`;
  const openbao = new Agent({ connect: { ca: config.openbaoCaPem } });
  const server = createHttpServer((req, res) => {
    relayRequest(req, res, openbao, origin).catch((err: Error) => failWith502(res, err));
  });
  // The tunnel is this server's one connection, kept for the whole run as the real bridge keeps its tunnel: Node's
  // default closes it after 5 s idle.
  server.keepAliveTimeout = 0;
  process.send!({ port: 0 });
  // One waiter: the HTTP floor measures sequential reads over one tunnel.
  await acceptTunnels(bridgeInnerContext(), 'floor http bridge', (tunnel) => {
    tunnel.setNoDelay?.(true);
    server.emit('connection', tunnel);
  });
}

process.on('disconnect', () => process.exit(0));
if (process.argv[2] === 'broker') await runBroker();
else if (process.argv[2] === 'bridge') await runBridge();
else if (process.argv[2] === 'http-broker') await runHttpBroker();
else if (process.argv[2] === 'http-bridge') await runHttpBridge();
else throw new Error(`floor-child: unknown role ${process.argv[2]}`);
