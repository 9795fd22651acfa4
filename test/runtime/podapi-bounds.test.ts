/**
 * What one pod can take from the others at the pod API (found by an outside test as a hostile pod): with one
 * server-wide body budget, a pod without any token stalled 64 bodies of 511 KiB and every other pod's login, write
 * and token renewal got 503 for as long as it kept reconnecting; with no connection bound, 4,000 idle TLS
 * connections took the broker from 81 to 345 MiB (the chart's limit is 256 Mi). Now each pod address has a share
 * of the body budget and of the connections, a body must arrive within bodyTimeoutMs, and every refusal carries
 * CT_PODAPI_LIMIT. Pods are told apart by source address: here 127.0.0.2 and 127.0.0.3 play other pods.
 */
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { PodApiServer } from '../../runtime/podapi/server.js';
import { captureLogger } from '../beacon/helpers.js';
import { halfSentLogin as halfSentLogin0, openRaw, startPlainPodApi } from '../support/raw-pod-client.js';
import { waitUntil } from '../support/wait.js';

const BODY = 512 * 1024;
const sockets: Socket[] = [];
let api: PodApiServer | undefined;
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await api?.close();
  api = undefined;
});

const open = (port: number, from?: string) => openRaw(port, sockets, from);
const halfSentLogin = (port: number, from?: string) => halfSentLogin0(port, BODY, sockets, from);

/** A health probe on a connection of its own that closes after the answer; resolves with the answer. */
async function probe(port: number, from?: string): Promise<string> {
  const client = await open(port, from);
  client.socket.write('GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  if (!client.closed) await once(client.socket, 'close');
  return client.answer();
}

const settle = (ms = 300) => new Promise((resolve) => setTimeout(resolve, ms));

async function login(port: number): Promise<{ status: number; text: string }> {
  const response = await fetch(`http://127.0.0.1:${port}/v1/auth/kubernetes/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ role: 'app', jwt: 'x' }),
  });
  return { status: response.status, text: await response.text() };
}

describe('pod API bounds per pod address', () => {
  it("keeps one pod's stalled bodies to its share, so other pods' logins still get through", async () => {
    const capture = captureLogger();
    api = await startPlainPodApi({
      limits: { maxBufferedBodyBytes: 8 * BODY, maxBufferedBodyBytesPerAddress: 2 * BODY },
      logger: capture.logger,
    });
    const hostile = [await halfSentLogin(api.port, '127.0.0.2'), await halfSentLogin(api.port, '127.0.0.2')];
    await settle();
    const third = await halfSentLogin(api.port, '127.0.0.2');
    await once(third.socket, 'close');
    expect(third.answer()).toMatch(/^HTTP\/1\.1 503/);
    expect(third.answer()).toContain('CT_PODAPI_LIMIT: this pod (127.0.0.2) holds too many request bodies');
    for (const held of hostile) expect(held.answer()).toBe('');
    // Another pod is not refused: its login reaches the tunnel (none here, so CT_TUNNEL_CLOSED).
    const other = await login(api.port);
    expect(other.status).toBe(503);
    expect(other.text).toContain('CT_TUNNEL_CLOSED');
    expect(capture.lines.filter((l) => l.event === 'podapi.limit')).toEqual([
      expect.objectContaining({
        code: 'CT_PODAPI_LIMIT',
        limit: 'address_body_budget',
        podAddress: '127.0.0.2',
      }),
    ]);
  });

  it('answers 408 to a body that stops arriving and frees its share at once', async () => {
    api = await startPlainPodApi({
      limits: { maxBufferedBodyBytes: BODY, bodyTimeoutMs: 400 },
    });
    const started = Date.now();
    const stalled = await halfSentLogin(api.port, '127.0.0.2');
    await once(stalled.socket, 'close');
    // Before: held until the request timeout (35 s), the whole budget spent meanwhile.
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(stalled.answer()).toMatch(/^HTTP\/1\.1 408/);
    expect(stalled.answer()).toContain('CT_PODAPI_LIMIT: the request body did not arrive within 0.4 s');
    expect((await login(api.port)).text).toContain('CT_TUNNEL_CLOSED');
  });

  it('closes the connections one pod address opens beyond its bound, and any beyond the total, not the others', async () => {
    const capture = captureLogger();
    api = await startPlainPodApi({
      limits: { maxConnectionsPerAddress: 3, maxConnections: 6 },
      logger: capture.logger,
    });
    const held = [];
    for (let i = 0; i < 3; i++) held.push(await open(api.port, '127.0.0.2'));
    const fourth = await open(api.port, '127.0.0.2');
    await once(fourth.socket, 'close');
    expect(fourth.answer()).toBe('');
    await settle(100);
    expect(held.every((c) => !c.closed)).toBe(true);
    // Another pod still gets answers (a health probe; no tunnel, so sealed).
    expect(await probe(api.port)).toMatch(/^HTTP\/1\.1 503/);
    await settle(100);
    for (let i = 0; i < 3; i++) held.push(await open(api.port, '127.0.0.3'));
    await settle(100);
    expect(held.every((c) => !c.closed)).toBe(true);
    expect(capture.lines.filter((l) => l.event === 'podapi.limit').map((l) => l.limit)).toEqual([
      'address_connections',
    ]);
    expect(await probe(api.port)).toBe('');
    expect(capture.lines.filter((l) => l.event === 'podapi.limit').map((l) => l.limit)).toEqual([
      'address_connections',
      'connections',
    ]);
    // The line says who holds the connections (it named none: an outside hostile drill).
    expect(capture.lines.find((l) => l.limit === 'connections')?.topHolders).toEqual([
      '127.0.0.2 (3)',
      '127.0.0.3 (3)',
    ]);
    // Once they go, connections are accepted again.
    for (const client of held) client.socket.destroy();
    await settle(100);
    expect(await probe(api.port)).toMatch(/^HTTP\/1\.1 503/);
  });

  it("releases a pipelined request's body bytes when its pod goes away before the answer", async () => {
    // A tunnel that answers every request after 300 ms, so the pipelined ones wait behind the first.
    const tunnel = slowTunnel(300);
    api = await startPlainPodApi({
      tunnel: () => tunnel.mux,
      limits: { maxBufferedBodyBytes: 64 * QUARTER, maxBufferedBodyBytesPerAddress: 3 * QUARTER },
    });
    for (let round = 0; round < 3; round++) {
      const client = await open(api.port, '127.0.0.2');
      client.socket.write(Buffer.concat([write(1000), write(QUARTER), write(QUARTER)]));
      await settle(150);
      client.socket.destroy();
      await settle(1_000);
    }
    // Before: each round left the two queued bodies counted for good, so the pod's share stayed spent: 503.
    const answer = await writeOnce(api.port, '127.0.0.2', 300_000);
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
  });

  it("answers one pod's requests beyond its share at once, so the queue every pod shares stays open to others", async () => {
    const tunnel = slowTunnel(200);
    const capture = captureLogger();
    api = await startPlainPodApi({
      tunnel: () => tunnel.mux,
      limits: { maxInFlight: 2, maxRequestsPerAddress: 8 },
      logger: capture.logger,
    });
    const hostile = await open(api.port, '127.0.0.2');
    const read = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\nX-Vault-Token: bogus\r\n\r\n`;
    hostile.socket.write(Array.from({ length: 40 }, (_, i) => read(`/v1/secret/data/h${i}`)).join(''));
    await settle(100);
    const other = await open(api.port, '127.0.0.3');
    other.socket.write(read('/v1/secret/data/other').replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'));
    await once(other.socket, 'close');
    expect(other.answer()).toMatch(/^HTTP\/1\.1 200/);
    // Before: the other pod's read went to the tunnel after all 40 of the hostile pod's (2 at a time).
    expect(tunnel.paths.indexOf('secret/data/other')).toBeLessThan(10);
    // Its own answers come in order: the 503s after the 8 it may have.
    await waitUntil(() => hostile.answer().includes('CT_PODAPI_LIMIT: this pod (127.0.0.2) has 8 requests'), {
      timeoutMs: 5_000,
      what: "the hostile pod's requests beyond its share answered 503",
    });
    expect(capture.lines.some((l) => l.event === 'podapi.limit' && l.limit === 'address_requests')).toBe(
      true,
    );
  });
});

const QUARTER = 256 * 1024;

/** A KV write of `size` body bytes, as one pipelined request. */
function write(size: number): Buffer {
  return Buffer.concat([
    Buffer.from(
      `POST /v1/secret/data/x HTTP/1.1\r\nHost: x\r\nX-Vault-Token: t\r\nContent-Type: application/json\r\nContent-Length: ${size}\r\n\r\n`,
    ),
    Buffer.from(`{"data":{"v":"${'a'.repeat(size - 17)}"}}`),
  ]);
}

/** One write on a connection of its own that closes after the answer; resolves with the answer. */
async function writeOnce(port: number, from: string, size: number): Promise<string> {
  const client = await open(port, from);
  const request = write(size);
  const headEnd = request.indexOf('\r\n\r\n');
  client.socket.write(
    Buffer.concat([
      request.subarray(0, headEnd),
      Buffer.from('\r\nConnection: close'),
      request.subarray(headEnd),
    ]),
  );
  if (!client.closed) await once(client.socket, 'close');
  return client.answer();
}

/** A stand-in tunnel that answers 200 after `delayMs`, recording the paths in the order they reach it. */
function slowTunnel(delayMs: number): { mux: never; paths: string[] } {
  const paths: string[] = [];
  const mux = {
    closed: false,
    draining: false,
    request: async (head: { path: string }) => {
      paths.push(head.path.replace(/^.*?\/v1\//, ''));
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      return { status: 200, headers: {}, body: Buffer.from('{}') };
    },
  };
  return { mux: mux as never, paths };
}
