/**
 * OpenBao in production: HA standbys whose reads lag a write, standbys that answer 307 instead of forwarding,
 * and rate-limit quotas. Runs against the OpenBao test server's standby nodes and quotas. The cases that need a
 * real cluster's standby run against one when CLOUDTASER_TEST_OPENBAO_ADDR/TOKEN and
 * CLOUDTASER_TEST_OPENBAO_STANDBY_ADDR are set (openbao-ha.contract.test.ts); the quota case runs there too.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CloudtaserError } from '../../runtime/core/errors.js';
import { createLogger } from '../../runtime/core/log.js';
import {
  type OpenBaoStandby,
  type OpenBaoTestServer,
  startOpenBaoTestServer,
} from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { createOpenBaoForwarder, OPENBAO_TUNNEL_PREFIX } from '../../runtime/podapi/index.js';
import {
  deregisterCluster,
  getClusterStatus,
  listRegisteredClusters,
  markClusterInitialized,
  registerCluster,
} from '../../runtime/registration/index.js';

let server: OpenBaoTestServer;
const standbys: OpenBaoStandby[] = [];
const clients: OpenBaoClient[] = [];

beforeAll(async () => {
  server = await startOpenBaoTestServer();
});
afterEach(async () => {
  for (const client of clients.splice(0)) await client.close();
  for (const standby of standbys.splice(0)) await standby.close();
});
afterAll(async () => {
  await server?.close();
});

function capture(): { lines: () => Record<string, unknown>[]; logger: ReturnType<typeof createLogger> } {
  const seen: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      seen.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      callback();
    },
  });
  return {
    lines: () => seen.map((line) => JSON.parse(line) as Record<string, unknown>),
    logger: createLogger('ha-test', { level: 'debug', destination }),
  };
}

async function standby(options: Parameters<OpenBaoTestServer['startStandby']>[0]): Promise<OpenBaoStandby> {
  const node = await server.startStandby(options);
  standbys.push(node);
  return node;
}

function client(address: string, extra: Partial<ConstructorParameters<typeof OpenBaoClient>[0]> = {}) {
  const made = new OpenBaoClient({
    address,
    token: server.rootToken,
    retries: 2,
    retryBaseDelayMs: 10,
    timeoutMs: 5_000,
    ...extra,
  });
  clients.push(made);
  return made;
}

async function failure(promise: Promise<unknown>): Promise<CloudtaserError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(CloudtaserError);
    return err as CloudtaserError;
  }
  throw new Error('expected the call to fail');
}

describe('a standby whose reads lag the active node', () => {
  it('the test server: a standby does not see a fresh namespace or KV version for readLagMs, the active does', async () => {
    const lagging = await standby({ readLagMs: 60_000 });
    const active = client(server.address);
    const name = `lag-${randomUUID().slice(0, 8)}`;
    await active.createNamespace(name);
    const raw = await fetch(`${lagging.address}/v1/sys/mounts`, {
      headers: { 'x-vault-token': server.rootToken, 'x-vault-namespace': name },
    });
    expect(raw.status).toBe(404);
    expect(await raw.json()).toEqual({ errors: ['namespace not found'] });
    await active.kvWrite('secret', `${name}/k`, { v: 1 });
    const read = await fetch(`${lagging.address}/v1/secret/data/${name}/k`, {
      headers: { 'x-vault-token': server.rootToken },
    });
    expect(read.status).toBe(404);
    const health = await fetch(`${lagging.address}/v1/sys/health`);
    expect(health.status).toBe(429);
    expect(await health.json()).toMatchObject({ standby: true, sealed: false });
    expect((await fetch(`${lagging.address}/v1/sys/health?standbyok=true`)).status).toBe(200);
  });

  it('registers a cluster through a lagging standby: each read after its own write waits for it, and says so in the log', async () => {
    const lagging = await standby({ readLagMs: 400 });
    const log = capture();
    const viaStandby = client(lagging.address, { logger: log.logger });
    const fingerprint = randomUUID();
    const result = await registerCluster(viaStandby, {
      fingerprint,
      namespaceRoot: `ha${fingerprint.slice(0, 6)}`,
    });
    expect(result.changed).toBe(true);
    const status = await getClusterStatus(client(server.address), {
      fingerprint,
      namespaceRoot: `ha${fingerprint.slice(0, 6)}`,
    });
    expect(status).toMatchObject({ registered: true, operationalHash: result.operationalHash });
    expect(log.lines().some((line) => line.event === 'openbao.read_lag')).toBe(true);
    // A re-run through the same lagging standby, right away, changes nothing.
    const again = await registerCluster(viaStandby, {
      fingerprint,
      namespaceRoot: `ha${fingerprint.slice(0, 6)}`,
    });
    expect(again).toMatchObject({ changed: false, operationalHash: result.operationalHash });
  });

  it('reads back its own KV writes through a lagging standby', async () => {
    const lagging = await standby({ readLagMs: 300 });
    const viaStandby = client(lagging.address);
    const key = `own/${randomUUID()}`;
    await viaStandby.kvWrite('secret', key, { n: 1 });
    expect((await viaStandby.kvRead('secret', key))?.data).toEqual({ n: 1 });
    await viaStandby.kvWrite('secret', key, { n: 2 });
    expect((await viaStandby.kvRead('secret', key))?.version).toBe(2);
  });

  it('after a check-and-set conflict with a write it could not see yet, reads that write instead of the stale state', async () => {
    const lagging = await standby({ readLagMs: 400 });
    const viaStandby = client(lagging.address);
    const key = `cas/${randomUUID()}`;
    // Another process (another register run, another bridge replica) writes first, through the active node.
    await client(server.address).kvWrite('secret', key, { owner: 'first' });
    // This one does not see it yet, so it tries a create-once write, which loses...
    expect(await viaStandby.kvRead('secret', key)).toBeUndefined();
    const lost = await failure(viaStandby.kvWrite('secret', key, { owner: 'second' }, { cas: 0 }));
    expect(lost.code).toBe('CT_OPENBAO_CAS_MISMATCH');
    // ...and the read that follows (ensureClusterCa, ensureBridgeCertificate, markClusterInitialized do this)
    // waits for the winner instead of showing nothing again and looping on writes.
    expect((await viaStandby.kvRead('secret', key))?.data).toEqual({ owner: 'first' });
  });

  it("the bridge's reads after its own bootstrap write (discovery poll, tunnel admission) see that write", async () => {
    const lagging = await standby({ readLagMs: 500 });
    const bridgeClient = client(lagging.address);
    const fingerprint = randomUUID();
    const namespaceRoot = `br${fingerprint.slice(0, 6)}`;
    await registerCluster(client(server.address), { fingerprint, namespaceRoot });
    await expect
      .poll(async () => (await listRegisteredClusters(bridgeClient, { namespaceRoot })).length, {
        timeout: 5_000,
      })
      .toBe(1);
    await markClusterInitialized(bridgeClient, {
      fingerprint,
      namespaceRoot,
      brokerCertSha256: 'a'.repeat(64),
      brokerKeySha256: 'b'.repeat(64),
    });
    // The next discovery poll must not see the cluster as uninitialized (that would drop its operational room)...
    expect(await listRegisteredClusters(bridgeClient, { namespaceRoot })).toEqual([
      expect.objectContaining({ fingerprint, initialized: true }),
    ]);
    // ...and the tunnel admission check must know the key the bootstrap was just signed for.
    const status = await getClusterStatus(bridgeClient, { fingerprint, namespaceRoot });
    expect(status.initializedBrokerKeySha256).toBe('b'.repeat(64));
    // An attested re-bootstrap replaces the record: the admission check must see the new key, not the old one.
    await markClusterInitialized(bridgeClient, {
      fingerprint,
      namespaceRoot,
      brokerCertSha256: 'c'.repeat(64),
      brokerKeySha256: 'd'.repeat(64),
      replacesVersion: status.initializedVersion,
    });
    expect(
      (await getClusterStatus(bridgeClient, { fingerprint, namespaceRoot })).initializedBrokerKeySha256,
    ).toBe('d'.repeat(64));
  });

  it('fails with CT_OPENBAO_READ_LAG, bounded, when the standby never catches up', async () => {
    const stuck = await standby({ readLagMs: 600_000 });
    const viaStandby = client(stuck.address, { readAfterWriteTimeoutMs: 300 });
    const started = Date.now();
    const err = await failure(
      registerCluster(viaStandby, { fingerprint: randomUUID(), namespaceRoot: 'stuck' }),
    );
    expect(err.code).toBe('CT_OPENBAO_READ_LAG');
    expect(err.message).toMatch(/HA standby is lagging the active node.*point the client at the active node/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('deregisters through a lagging standby what it registered through it', async () => {
    const lagging = await standby({ readLagMs: 300 });
    const viaStandby = client(lagging.address);
    const fingerprint = randomUUID();
    const namespaceRoot = `dr${fingerprint.slice(0, 6)}`;
    await registerCluster(viaStandby, { fingerprint, namespaceRoot });
    const removed = await deregisterCluster(viaStandby, { fingerprint, namespaceRoot, purge: true });
    expect(removed).toMatchObject({ removed: true, purged: true });
    expect((await getClusterStatus(client(server.address), { fingerprint, namespaceRoot })).registered).toBe(
      false,
    );
  });
});

describe('read-your-writes on a lagging standby (the test server, after OpenBao internal/http/index.go)', () => {
  const put = (address: string, key: string, value: string) =>
    fetch(`${address}/v1/secret/data/ryw/${key}`, {
      method: 'PUT',
      headers: { 'x-vault-token': server.rootToken, 'content-type': 'application/json' },
      body: JSON.stringify({ data: { value } }),
    });
  /** Repeated headers stay separate lines (fetch would join them with a comma, which OpenBao reads otherwise). */
  const get = async (address: string, key: string, headers: Record<string, string | string[]> = {}) => {
    const answer = await request(`${address}/v1/secret/data/ryw/${key}`, {
      headers: { 'x-vault-token': server.rootToken, ...headers },
    });
    await answer.body.text();
    return { status: answer.statusCode, retryAfter: answer.headers['retry-after'] };
  };

  it('a write answers an index of this cluster; a read that carries it fails (429), is forwarded, or waits, as asked', async () => {
    const lagMs = 1_500;
    const lagging = await standby({ readLagMs: lagMs });
    const written = await put(server.address, 'k', 'v1');
    const writtenAt = Date.now();
    const index = written.headers.get('x-vault-index')!;
    expect(JSON.parse(Buffer.from(index, 'base64').toString())).toEqual({
      cluster: expect.any(String),
      value: expect.stringMatching(/^\d+$/),
    });
    expect((await get(lagging.address, 'k')).status).toBe(404);
    expect(await get(lagging.address, 'k', { 'x-vault-index': index })).toEqual({
      status: 429,
      retryAfter: '1',
    });
    const forwarded = await get(lagging.address, 'k', {
      'x-vault-index': index,
      'x-vault-inconsistent': 'forward-active-node',
    });
    expect(forwarded.status).toBe(200);
    const awaited = await get(lagging.address, 'k', {
      'x-vault-index': index,
      'x-vault-inconsistent': ['await-state', 'fail'],
    });
    expect(awaited.status).toBe(200);
    // It answered only once the standby had applied the write: the index's time plus the lag (writtenAt is later).
    expect(Date.now() - writtenAt).toBeGreaterThanOrEqual(lagMs - 50);
  });

  it("ignores another cluster's index, and refuses an unreadable index or a comma-joined policy with 400", async () => {
    const lagging = await standby({ readLagMs: 60_000 });
    await put(server.address, 'other', 'v1');
    const foreign = Buffer.from(
      JSON.stringify({ cluster: 'another', value: String(Date.now() + 1e9) }),
    ).toString('base64');
    expect((await get(lagging.address, 'other', { 'x-vault-index': foreign })).status).toBe(404);
    expect((await get(lagging.address, 'other', { 'x-vault-index': 'not base64!' })).status).toBe(400);
    const index = (await put(server.address, 'other', 'v2')).headers.get('x-vault-index')!;
    const joined = await get(lagging.address, 'other', {
      'x-vault-index': index,
      'x-vault-inconsistent': 'await-state, fail',
    });
    expect(joined.status).toBe(400);
  });
});

describe('a standby that answers 307 instead of forwarding', () => {
  it('follows the redirect to the active node with the same token, method and body, and logs the hop', async () => {
    const redirecting = await standby({ requestForwarding: false, serveReads: false });
    const log = capture();
    const viaStandby = client(redirecting.address, { logger: log.logger });
    const before = server.requestLog().length;
    const fingerprint = randomUUID();
    const result = await registerCluster(viaStandby, {
      fingerprint,
      namespaceRoot: `rd${fingerprint.slice(0, 6)}`,
    });
    expect(result.changed).toBe(true);
    expect(log.lines().filter((line) => line.event === 'openbao.redirected').length).toBeGreaterThan(3);
    const writes = server
      .requestLog()
      .slice(before)
      .filter((entry) => entry.method === 'POST' && entry.status < 300);
    expect(writes.length).toBeGreaterThan(3);
    expect(JSON.stringify(log.lines())).not.toContain(server.rootToken);
  });

  it('refuses to follow a redirect to another scheme (the token would go over http, or to an unpinned https)', async () => {
    const downgrade = await standby({
      requestForwarding: false,
      serveReads: false,
      redirectAddress: 'https://127.0.0.1:1',
    });
    const err = await failure(client(downgrade.address).kvRead('secret', 'x'));
    expect(err.code).toBe('CT_OPENBAO_REDIRECT');
    expect(err.message).toMatch(
      /another scheme than http, which is not followed; point the client at the active node/,
    );
  });

  it('stops a redirect loop after a bounded number of hops', async () => {
    let own = '';
    const loop = await standby({ requestForwarding: false, serveReads: false, redirectAddress: () => own });
    own = loop.address;
    const before = server.requestLog().length;
    const err = await failure(client(loop.address, { retries: 0 }).kvRead('secret', 'x'));
    expect(err.code).toBe('CT_OPENBAO_REDIRECT');
    expect(err.message).toMatch(/4 times .*a redirect loop/);
    // The first request and three hops, then no more.
    expect(
      server
        .requestLog()
        .slice(before)
        .filter((entry) => entry.status === 307),
    ).toHaveLength(4);
  });

  it('refuses a 307 without a Location', async () => {
    const bare: Server = createServer((_req, res) => {
      res.statusCode = 307;
      res.end();
    });
    await new Promise<void>((resolve) => bare.listen(0, '127.0.0.1', resolve));
    try {
      const port = (bare.address() as AddressInfo).port;
      const err = await failure(client(`http://127.0.0.1:${port}`).kvRead('secret', 'x'));
      expect(err.code).toBe('CT_OPENBAO_REDIRECT');
      expect(err.message).toMatch(/without a Location header/);
    } finally {
      bare.closeAllConnections();
      await new Promise((resolve) => bare.close(resolve));
    }
  });

  it('the bridge follows it for a pod request, and never hands the 307 to the pod', async () => {
    const redirecting = await standby({ requestForwarding: false, serveReads: false });
    await client(server.address).kvWrite('secret', 'pod/db', { password: 'p' });
    const forwarder = createOpenBaoForwarder({ address: redirecting.address, timeoutMs: 5_000 });
    try {
      const answer = await forwarder.forward('', {
        method: 'GET',
        path: `${OPENBAO_TUNNEL_PREFIX}secret/data/pod/db`,
        headers: { 'x-vault-token': server.rootToken },
        body: Buffer.alloc(0),
      });
      expect(answer.status).toBe(200);
      expect(JSON.parse(String(answer.body)).data.data).toEqual({ password: 'p' });
    } finally {
      await forwarder.close();
    }
  });
});

describe('rate-limit quotas', () => {
  afterEach(async () => {
    const admin = client(server.address);
    for (const name of ['burst', 'tight']) await admin.request('DELETE', `sys/quotas/rate-limit/${name}`);
    await admin.request('POST', 'sys/quotas/config', { body: { enable_rate_limit_response_headers: false } });
  });

  it('the test server answers 429 with OpenBao text once a path quota is used up, and exempts sys/health', async () => {
    const admin = client(server.address);
    await admin.request('POST', 'sys/quotas/rate-limit/tight', {
      body: { rate: 1, interval: '1s', path: 'secret/data/quota-a' },
    });
    const hit = () =>
      fetch(`${server.address}/v1/secret/data/quota-a/x`, { headers: { 'x-vault-token': server.rootToken } });
    await (await hit()).text();
    const refused = await hit();
    expect(refused.status).toBe(429);
    expect(await refused.json()).toEqual({
      errors: ['request path "secret/data/quota-a/x": rate limit quota exceeded'],
    });
    expect((await fetch(`${server.address}/v1/sys/health`)).status).toBe(200);
    expect((await admin.request('GET', 'sys/quotas/rate-limit/tight')).body).toMatchObject({
      data: { rate: 1, interval: 1, path: 'secret/data/quota-a', type: 'rate-limit' },
    });
  });

  it('retries 429 with a backoff that outlasts the quota window, logging each retry', async () => {
    const admin = client(server.address);
    await admin.request('POST', 'sys/quotas/rate-limit/burst', {
      body: { rate: 2, interval: '1s', path: 'secret/data/quota-b' },
    });
    const log = capture();
    const busy = client(server.address, { retries: 3, logger: log.logger });
    const answers = await Promise.all(
      Array.from({ length: 5 }, (_, i) => busy.kvWrite('secret', `quota-b/k${i}`, { i })),
    );
    expect(answers.map((a) => a.version)).toEqual([1, 1, 1, 1, 1]);
    const retries = log.lines().filter((line) => line.event === 'openbao.rate_limited');
    expect(retries.length).toBeGreaterThanOrEqual(3);
    expect(retries[0]).toMatchObject({
      path: expect.stringContaining('secret/data/quota-b/'),
      delayMs: expect.any(Number),
    });
    expect(retries.every((line) => Number(line.delayMs) >= 500)).toBe(true);
  });

  it('honours Retry-After when the quota sends response headers, and gives up with CT_OPENBAO_RATE_LIMITED', async () => {
    const admin = client(server.address);
    await admin.request('POST', 'sys/quotas/config', { body: { enable_rate_limit_response_headers: true } });
    await admin.request('POST', 'sys/quotas/rate-limit/tight', {
      body: { rate: 1, interval: '1s', path: 'secret/data/quota-c' },
    });
    const log = capture();
    const patient = client(server.address, { retries: 2, logger: log.logger });
    await patient.kvWrite('secret', 'quota-c/a', { a: 1 });
    await patient.kvWrite('secret', 'quota-c/b', { b: 1 });
    expect(log.lines().find((line) => line.event === 'openbao.rate_limited')).toMatchObject({
      retryAfter: 1,
      delayMs: 1000,
    });
    const impatient = client(server.address, { retries: 0 });
    await impatient.kvWrite('secret', 'quota-c/c', { c: 1 }).catch(() => undefined);
    const err = await failure(impatient.kvWrite('secret', 'quota-c/d', { d: 1 }));
    expect(err.code).toBe('CT_OPENBAO_RATE_LIMITED');
    expect(err.message).toMatch(/rate limit quota exceeded.*raise the quota \(sys\/quotas\/rate-limit\)/);
  });
});
