/**
 * OpenBao's TokenReviews while a cluster's tunnel moves between bridge replicas (a bridge replica closing, a shard
 * handed over): the broker has opened its next tunnel on the other replica and is closing the old one, which takes
 * nothing new (a RESET CT_TUNNEL_DRAINED, unprocessed). Before, the replica OpenBao reached sent the review on that
 * closing tunnel anyway and answered 503: a failed pod login. Now a replica whose tunnel is closing, or closes under
 * the review, asks its peers, as it does without a tunnel; a TokenReview changes nothing, so asking again is safe.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import {
  startTokenReviewServer,
  type TokenReviewOutcome,
  type TokenReviewServer,
} from '../../runtime/bridge/tokenreview.js';
import { silentLogger } from '../../runtime/core/index.js';
import { createCertificateAuthority, issueCertificate } from '../../runtime/pki/index.js';
import { TOKENREVIEW_TUNNEL_PATH } from '../../runtime/podapi/protocol.js';
import type { TunnelHandler, TunnelMux } from '../../runtime/tunnel/index.js';
import { freePort } from '../ports.js';
import { waitUntil } from '../support/wait.js';
import { tunnelPair } from './tunnel-pair.js';

const REPLICA_IPS = ['127.0.0.5', '127.0.0.6'];
const SERVICE_NAME = 'cloudtaser-bridge.test';
const CREDENTIAL = 'reviewer-credential';
const fingerprint = randomUUID();

const listenerCa = createCertificateAuthority({ commonName: 'tokenreview listener ca' });
const listener = issueCertificate(listenerCa, {
  commonName: SERVICE_NAME,
  dnsNames: [SERVICE_NAME],
  ipAddresses: REPLICA_IPS,
  extKeyUsage: ['serverAuth'],
});

/** What the cluster's API server answers, through whichever tunnel reaches the broker. */
const AUTHENTICATED = JSON.stringify({
  status: { authenticated: true, user: { username: 'system:serviceaccount:a:b' } },
});

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A tunnel from a bridge replica to a broker end serving `brokerHandler`, closed after the test. */
async function tunnelTo(brokerHandler: TunnelHandler): Promise<{ bridge: TunnelMux; broker: TunnelMux }> {
  const pair = await tunnelPair(brokerHandler);
  cleanups.push(() => pair.broker.close());
  return pair;
}

const answering: TunnelHandler = (req) =>
  req.path === TOKENREVIEW_TUNNEL_PATH
    ? { status: 201, headers: { 'content-type': 'application/json' }, body: AUTHENTICATED }
    : { status: 404 };

/** Two bridge replicas' TokenReview listeners on one port (a headless Service's two A-records). */
async function replicas(tunnels: [TunnelMux | undefined, TunnelMux | undefined]) {
  const port = await freePort();
  const outcomes: TokenReviewOutcome[][] = [[], []];
  const servers: TokenReviewServer[] = [];
  for (const [index, host] of REPLICA_IPS.entries()) {
    const server = await startTokenReviewServer({
      host,
      port,
      tls: { certPem: listener.certPem, keyPem: listener.keyPem! },
      tunnelFor: (fp) => (fp === fingerprint ? tunnels[index] : undefined),
      reviewerFor: async (fp) =>
        fp === fingerprint ? createHash('sha256').update(CREDENTIAL).digest('hex') : undefined,
      peers: {
        resolve: async () => [...REPLICA_IPS],
        port,
        servername: SERVICE_NAME,
        caPem: () => listenerCa.certPem,
      },
      timeoutMs: 3_000,
      observe: (outcome) => outcomes[index].push(outcome),
      logger: silentLogger,
    });
    servers.push(server);
    cleanups.push(() => server.close());
  }
  return { port, outcomes };
}

/** A TokenReview as OpenBao sends it, to the replica at `index`. */
async function review(index: number, port: number): Promise<{ status: number; body: string }> {
  const dispatcher = new Agent({ connect: { ca: listenerCa.certPem, servername: SERVICE_NAME } });
  cleanups.push(() => dispatcher.close());
  const response = await request(
    `https://${REPLICA_IPS[index]}:${port}/clusters/${fingerprint}/apis/authentication.k8s.io/v1/tokenreviews`,
    {
      method: 'POST',
      dispatcher,
      headers: { authorization: `Bearer ${CREDENTIAL}`, 'content-type': 'application/json' },
      body: JSON.stringify({ spec: { token: 'a-pod-token', audiences: ['openbao'] } }),
    },
  );
  return { status: response.statusCode, body: await response.body.text() };
}

describe('TokenReviews while the tunnel moves to another bridge replica', () => {
  it('asks the peers when the tunnel here is closing (the broker refused it: moved elsewhere)', async () => {
    // Replica 0 holds the old tunnel: its broker is closing it once idle, held open by a request in flight.
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const old = await tunnelTo(async (req) => {
      if (req.path === '/slow') {
        await held;
        return { status: 200 };
      }
      return answering(req, { signal: new AbortController().signal });
    });
    const slow = old.bridge.request({ method: 'GET', path: '/slow' });
    await waitUntil(() => old.broker.stats().remoteStreams === 1, { what: 'the slow request at the broker' });
    const closing = old.broker.closeWhenIdle('test: the broker moved to another tunnel', 10_000);
    // Replica 1 holds the broker's next tunnel.
    const next = await tunnelTo(answering);
    const { port, outcomes } = await replicas([old.bridge, next.bridge]);

    // The first review reaches replica 0, whose tunnel refuses it unprocessed; the second finds it closing.
    for (let i = 0; i < 2; i++) {
      const answer = await review(0, port);
      expect(answer.status).toBe(201);
      expect(JSON.parse(answer.body).status.authenticated).toBe(true);
    }
    // (The fan-out asks every A-record, replica 0 included, which says "not here": peer_no_tunnel.)
    expect(outcomes[0].filter((outcome) => outcome !== 'peer_no_tunnel')).toEqual(['forwarded', 'forwarded']);
    expect(outcomes[1]).toEqual(['relayed', 'relayed']);
    expect(old.bridge.draining).toBe(true);
    release();
    await slow;
    await closing;
  });

  it('still relays on an open tunnel, and answers 503 when no replica has one that takes it', async () => {
    const healthy = await tunnelTo(answering);
    const first = await replicas([healthy.bridge, undefined]);
    expect((await review(0, first.port)).status).toBe(201);
    expect(first.outcomes[0]).toEqual(['relayed']);
    // Only a closing tunnel anywhere (this replica is closing it, a request still in flight): the review is not
    // sent on it, and nobody else has one.
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const closingOnly = await tunnelTo(async () => {
      await held;
      return { status: 200 };
    });
    const inFlight = closingOnly.bridge.request({ method: 'GET', path: '/held' });
    await waitUntil(() => closingOnly.broker.stats().remoteStreams === 1, {
      what: 'the held request at the broker',
    });
    const closed = closingOnly.bridge.closeWhenIdle('test: closing', 10_000);
    const second = await replicas([closingOnly.bridge, undefined]);
    const answer = await review(0, second.port);
    expect({ draining: closingOnly.bridge.draining, closed: closingOnly.bridge.closed }).toEqual({
      draining: true,
      closed: false,
    });
    expect(answer.status).toBe(503);
    expect(second.outcomes[0].filter((outcome) => outcome !== 'peer_no_tunnel')).toEqual(['no_tunnel']);
    release();
    await inFlight;
    await closed;
  });
});
