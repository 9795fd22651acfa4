/**
 * Whom a bridge replica without the cluster's tunnel asks for OpenBao's TokenReview. With sharding it knows the
 * shard's holders (their addresses on their member Leases) and asks them only; the other peers only when every
 * holder says "not here" (a tunnel still moving off a replica that gave the shard up) or a holder does not answer
 * in time (hung); never itself. A Lease is written by anyone with the bridge's Lease rights, so it narrows whom to
 * ask and never adds anyone: an address that is not one of the Service's A-records is asked nothing.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import {
  startTokenReviewServer,
  type TokenReviewOutcome,
  type TokenReviewPeers,
} from '../../runtime/bridge/tokenreview.js';
import { silentLogger } from '../../runtime/core/index.js';
import { createCertificateAuthority, issueCertificate } from '../../runtime/pki/index.js';
import { TOKENREVIEW_TUNNEL_PATH } from '../../runtime/podapi/protocol.js';
import type { TunnelHandler, TunnelMux } from '../../runtime/tunnel/index.js';
import { freePort } from '../ports.js';
import { tunnelPair } from './tunnel-pair.js';

/** Three replicas' pod IPs (the headless Service's A-records), and an address outside them. */
const REPLICA_IPS = ['127.0.0.21', '127.0.0.22', '127.0.0.23'];
const OUTSIDER_IP = '127.0.0.24';
const SERVICE_NAME = 'cloudtaser-bridge.test';
const CREDENTIAL = 'reviewer-credential';
const TIMEOUT_MS = 4_000;
const fingerprint = randomUUID();

const listenerCa = createCertificateAuthority({ commonName: 'tokenreview listener ca' });
const listener = issueCertificate(listenerCa, {
  commonName: SERVICE_NAME,
  dnsNames: [SERVICE_NAME],
  ipAddresses: [...REPLICA_IPS, OUTSIDER_IP],
  extKeyUsage: ['serverAuth'],
});

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const answering: TunnelHandler = (req) =>
  req.path === TOKENREVIEW_TUNNEL_PATH
    ? {
        status: 201,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ status: { authenticated: true } }),
      }
    : { status: 404 };

interface World {
  readonly port: number;
  /** What each replica answered, in order. */
  readonly outcomes: TokenReviewOutcome[][];
  /** Connections made to the address outside the A-records. */
  readonly outsiderConnections: () => number;
}

/**
 * The replicas listed in `running` listen on one port (the others' addresses refuse connections, and `hung` ones
 * accept and never answer); the tunnel is on `tunnelAt`; every replica's Leases name `holders` for the cluster.
 */
async function replicas(options: {
  tunnelAt: number;
  holders: readonly string[] | undefined;
  hung?: readonly string[];
}): Promise<World> {
  const port = await freePort(REPLICA_IPS[0]);
  const pair = await tunnelPair(answering);
  cleanups.push(() => pair.broker.close());
  const outcomes: TokenReviewOutcome[][] = REPLICA_IPS.map(() => []);
  const hung = new Set(options.hung ?? []);
  for (const [index, host] of REPLICA_IPS.entries()) {
    if (hung.has(host)) {
      cleanups.push(await silentListener(host, port));
      continue;
    }
    const peers: TokenReviewPeers = {
      resolve: async () => [...REPLICA_IPS],
      port,
      servername: SERVICE_NAME,
      caPem: () => listenerCa.certPem,
      self: host,
      holdersOf: (fp) => (fp === fingerprint ? options.holders : undefined),
    };
    const server = await startTokenReviewServer({
      host,
      port,
      tls: { certPem: listener.certPem, keyPem: listener.keyPem! },
      tunnelFor: (fp): TunnelMux | undefined =>
        fp === fingerprint && index === options.tunnelAt ? pair.bridge : undefined,
      reviewerFor: async (fp) =>
        fp === fingerprint ? createHash('sha256').update(CREDENTIAL).digest('hex') : undefined,
      peers,
      timeoutMs: TIMEOUT_MS,
      observe: (outcome) => outcomes[index].push(outcome),
      logger: silentLogger,
    });
    cleanups.push(() => server.close());
  }
  let outsider = 0;
  const counting = createServer((socket) => {
    outsider++;
    socket.destroy();
  });
  await new Promise<void>((done) => counting.listen(port, OUTSIDER_IP, done));
  cleanups.push(() => new Promise((done) => counting.close(done)));
  return { port, outcomes, outsiderConnections: () => outsider };
}

/** Accepts connections at host:port and never answers (a hung replica). */
async function silentListener(host: string, port: number): Promise<() => Promise<void>> {
  const open = new Set<Socket>();
  const server = createServer((socket) => {
    open.add(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((done) => server.listen(port, host, done));
  return async () => {
    for (const socket of open) socket.destroy();
    await new Promise((done) => server.close(done));
  };
}

/** A TokenReview as OpenBao sends it, to the replica at `index`: its status and how long it took. */
async function review(world: World, index: number): Promise<{ status: number; ms: number }> {
  const dispatcher = new Agent({ connect: { ca: listenerCa.certPem, servername: SERVICE_NAME } });
  cleanups.push(() => dispatcher.close());
  const started = performance.now();
  const response = await request(
    `https://${REPLICA_IPS[index]}:${world.port}/clusters/${fingerprint}/apis/authentication.k8s.io/v1/tokenreviews`,
    {
      method: 'POST',
      dispatcher,
      headers: { authorization: `Bearer ${CREDENTIAL}`, 'content-type': 'application/json' },
      body: JSON.stringify({ spec: { token: 'a-pod-token' } }),
    },
  );
  await response.body.dump();
  return { status: response.statusCode, ms: performance.now() - started };
}

describe("TokenReview forwarding to a shard's holders", () => {
  it('asks the holder only, never itself nor the replica that does not hold the shard', async () => {
    const world = await replicas({ tunnelAt: 1, holders: [REPLICA_IPS[1]] });
    for (let i = 0; i < 3; i++) expect((await review(world, 0)).status).toBe(201);
    expect(world.outcomes).toEqual([
      ['forwarded', 'forwarded', 'forwarded'],
      ['relayed', 'relayed', 'relayed'],
      [],
    ]);
  });

  it('asks the other peers once every holder said "not here" (a tunnel still moving off the replica that gave the shard up)', async () => {
    const world = await replicas({ tunnelAt: 2, holders: [REPLICA_IPS[1]] });
    expect((await review(world, 0)).status).toBe(201);
    expect(world.outcomes).toEqual([['forwarded'], ['peer_no_tunnel'], ['relayed']]);
  });

  it('asks the other peers when a holder does not answer (hung), long before the review times out', async () => {
    const world = await replicas({ tunnelAt: 2, holders: [REPLICA_IPS[1]], hung: [REPLICA_IPS[1]] });
    const answer = await review(world, 0);
    expect(answer.status).toBe(201);
    // The hedge is a quarter of the timeout at most (1 s here): well inside the review's time limit.
    expect(answer.ms).toBeLessThan(TIMEOUT_MS);
    expect(world.outcomes).toEqual([['forwarded'], [], ['relayed']]);
  });

  it('asks nothing of a holder address outside the A-records (a written Lease): every peer is asked instead', async () => {
    const world = await replicas({ tunnelAt: 1, holders: [OUTSIDER_IP] });
    expect((await review(world, 0)).status).toBe(201);
    expect(world.outsiderConnections()).toBe(0);
    // Replica 2 is asked alongside (its "not here" may come after the answer, so it is not compared).
    expect(world.outcomes.slice(0, 2)).toEqual([['forwarded'], ['relayed']]);
  });

  it('asks every peer but itself when the Leases name no address (replicas run without one)', async () => {
    const world = await replicas({ tunnelAt: 2, holders: undefined });
    expect((await review(world, 0)).status).toBe(201);
    expect([world.outcomes[0], world.outcomes[2]]).toEqual([['forwarded'], ['relayed']]);
  });

  it('answers 503 when neither the holder nor any other peer has the tunnel', async () => {
    const world = await replicas({ tunnelAt: -1, holders: [REPLICA_IPS[1]] });
    expect((await review(world, 0)).status).toBe(503);
    expect(world.outcomes).toEqual([['no_tunnel'], ['peer_no_tunnel'], ['peer_no_tunnel']]);
  });
});
