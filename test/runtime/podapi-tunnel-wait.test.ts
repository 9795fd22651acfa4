/**
 * A pod API request that finds no tunnel waits up to tunnelWaitMs for the next one, outside the request gate.
 * Before, it waited inside the gate, holding one of the maxInFlight slots: during an outage the n-th request was
 * answered after ~ceil(n / maxInFlight) x tunnelWaitMs, and sys/health, which must answer at once (sealed while
 * the secret store is unreachable; probes have short timeouts), queued behind them. Also: the failures of such an
 * outage are logged once per code, the rest summarised (the broker side of the summariser had no test of its own).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CloudtaserError } from '../../runtime/core/errors.js';
import { type PodApiServer, startPodApiServer } from '../../runtime/podapi/server.js';
import type { TunnelMux } from '../../runtime/tunnel/index.js';
import { captureLogger } from '../beacon/helpers.js';

let api: PodApiServer | undefined;
afterEach(async () => {
  await api?.close();
  api = undefined;
});

/** A broker reconnecting that never gets a tunnel: resolves undefined once the wait is aborted. */
const noTunnelComes = (_previous: TunnelMux | undefined, signal: AbortSignal) =>
  new Promise<TunnelMux | undefined>((resolve) => {
    if (signal.aborted) return resolve(undefined);
    signal.addEventListener('abort', () => resolve(undefined), { once: true });
  });

const WAIT_MS = 400;

async function start(maxInFlight: number) {
  api = await startPodApiServer({
    host: '127.0.0.1',
    port: 0,
    tls: false,
    tunnel: () => undefined,
    nextTunnel: noTunnelComes,
    limits: { tunnelWaitMs: WAIT_MS, maxInFlight },
  });
  return api;
}

async function timed(url: string): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  const response = await fetch(url, { headers: { 'x-vault-token': 's.x' } });
  await response.arrayBuffer();
  return { status: response.status, ms: performance.now() - started };
}

describe('pod API: waiting for a tunnel inside the request gate', () => {
  it('answers every request of a burst 503 within about tunnelWaitMs while no tunnel comes', async () => {
    const server = await start(2);
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => timed(`${server.url}/v1/secret/data/app`)),
    );
    for (const answer of answers) expect(answer.status).toBe(503);
    const slowest = Math.max(...answers.map((a) => a.ms));
    // Expected: each request waits at most tunnelWaitMs (plus slack). Actual: 5 rounds of 2 => ~2000 ms.
    expect(slowest).toBeLessThan(WAIT_MS * 2);
  });

  it('answers sys/health (sealed) at once while login/read requests wait for a tunnel', async () => {
    const server = await start(2);
    const waiting = Array.from({ length: 6 }, () => timed(`${server.url}/v1/secret/data/app`));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const health = await timed(`${server.url}/v1/sys/health`);
    expect(health.status).toBe(503); // sealed: the secret store cannot be reached
    // Expected: at once (the health path does not wait for a tunnel). Actual: behind 3 rounds of waiters.
    expect(health.ms).toBeLessThan(WAIT_MS / 2);
    await Promise.all(waiting);
  });
});

describe('pod API: the log of a tunnel that fails every request', () => {
  it('logs the first failure of each code and route in full and folds the rest into one summary by code and route', async () => {
    // Every pod retries through an outage: one line per failed request would drown the lines an SRE needs.
    const log = captureLogger();
    let broken = false;
    const failing = {
      closed: false,
      draining: false,
      request: async () => {
        throw new CloudtaserError('CT_TUNNEL_PROTOCOL', 'a frame the broker cannot read');
      },
    } as unknown as TunnelMux;
    api = await startPodApiServer({
      host: '127.0.0.1',
      port: 0,
      tls: false,
      tunnel: () => (broken ? failing : undefined),
      logger: log.logger,
    });
    const url = `${api.url}/v1/secret/data/app`;
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await timed(url)).status);
    broken = true;
    for (let i = 0; i < 5; i++) statuses.push((await timed(url)).status);
    expect(statuses).toEqual(Array(17).fill(503));

    // Another route failing with the same code gets a line (and a summary) of its own, naming its route: keyed by
    // code alone, its failures were folded under the first route's line (an outside drill read kv-read failures
    // summarised as logins).
    for (let i = 0; i < 3; i++) statuses.push((await timed(`${api.url}/v1/auth/token/lookup-self`)).status);

    const failed = () => log.lines.filter((line) => line.event === 'podapi.tunnel_failed');
    expect(failed().map((line) => [line.code, line.route])).toEqual([
      ['CT_TUNNEL_CLOSED', 'kv-read'],
      ['CT_TUNNEL_PROTOCOL', 'kv-read'],
      ['CT_TUNNEL_PROTOCOL', 'token-lookup-self'],
    ]);
    expect(log.lines.filter((line) => line.event === 'podapi.failures_summary')).toEqual([]);
    await api.close();
    api = undefined;
    // Closing writes the summaries of the open windows: one per code and route, with the count it stands for.
    const summaries = log.lines.filter((line) => line.event === 'podapi.failures_summary');
    expect(summaries.map((line) => [line.suppressed, line.byCode, line.route])).toEqual(
      expect.arrayContaining([
        [11, { CT_TUNNEL_CLOSED: 11 }, 'kv-read'],
        [4, { CT_TUNNEL_PROTOCOL: 4 }, 'kv-read'],
        [2, { CT_TUNNEL_PROTOCOL: 2 }, 'token-lookup-self'],
      ]),
    );
    expect(summaries).toHaveLength(3);
    expect(failed()).toHaveLength(3);
  });
});

describe('pod API: sys/health while OpenBao hangs behind a live tunnel', () => {
  it('answers as a sealed server after healthAnswerMs instead of holding the probe for the forward timeout', async () => {
    // A tunnel that takes the request and never answers (OpenBao hanging behind the bridge) until the pod API
    // gives up on it. Before: the probe waited for the bridge's 15 s forward timeout (an outside test measured it).
    let abandoned = 0;
    const hanging = {
      closed: false,
      draining: false,
      request: (_head: unknown, _body: unknown, options: { signal?: AbortSignal }) =>
        new Promise((_resolve, reject) => {
          options.signal?.addEventListener('abort', () => {
            abandoned++;
            reject(new CloudtaserError('CT_CANCELLED', 'given up'));
          });
        }),
    } as unknown as TunnelMux;
    api = await startPodApiServer({
      host: '127.0.0.1',
      port: 0,
      tls: false,
      tunnel: () => hanging,
      limits: { healthAnswerMs: 300 },
    });
    const started = performance.now();
    const response = await fetch(`${api.url}/v1/sys/health`);
    const ms = performance.now() - started;
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ initialized: true, sealed: true });
    expect(ms).toBeLessThan(3_000);
    // The probe's own codes still apply (sealedcode), and the request in the tunnel is abandoned, not left open.
    expect((await fetch(`${api.url}/v1/sys/health?sealedcode=200`)).status).toBe(200);
    expect(abandoned).toBe(2);
  });
});

describe('pod API: a path longer than the tunnel head carries', () => {
  it('answers 414 with CT_PODAPI_LIMIT before the tunnel, and passes one just within the bound', async () => {
    // A LIST page `after` a long key, or a long key itself: it failed inside the tunnel as 503 "retry shortly"
    // (a security review), which a retry never heals and which counted as a pod API error.
    const sent: string[] = [];
    const recording = {
      closed: false,
      draining: false,
      request: async (head: { path: string }) => {
        sent.push(head.path);
        return { status: 200, headers: {}, body: Buffer.from('{"data":{"keys":["a"]}}') };
      },
    } as unknown as TunnelMux;
    api = await startPodApiServer({ host: '127.0.0.1', port: 0, tls: false, tunnel: () => recording });
    const list = (after: string) =>
      fetch(`${api!.url}/v1/secret/metadata/app?list=true&after=${after}`, {
        headers: { 'x-vault-token': 's.x' },
      });
    const tooLong = await list('k'.repeat(5000));
    expect(tooLong.status).toBe(414);
    expect(await tooLong.json()).toEqual({
      errors: [
        expect.stringMatching(
          /^CT_PODAPI_LIMIT: the request path and query are longer than .*\(4096 characters in all\); a retry gets the same$/,
        ),
      ],
    });
    expect(sent).toEqual([]);
    const within = await list('k'.repeat(3900));
    expect(within.status).toBe(200);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.length).toBeLessThanOrEqual(4096);
  });
});

describe('pod API: the sealed answers made while OpenBao cannot be reached', () => {
  it('carry the version OpenBao last reported through this broker (a sealed server reports its own)', async () => {
    let up = true;
    const health = {
      closed: false,
      draining: false,
      request: async () => ({
        status: 200,
        headers: {},
        body: Buffer.from('{"initialized":true,"sealed":false,"version":"2.5.5"}'),
      }),
    } as unknown as TunnelMux;
    api = await startPodApiServer({
      host: '127.0.0.1',
      port: 0,
      tls: false,
      tunnel: () => (up ? health : undefined),
    });
    const read = async (path: string) =>
      (await (await fetch(`${api!.url}/v1/${path}`)).json()) as Record<string, unknown>;
    expect(await read('sys/health')).toMatchObject({ version: '2.5.5', sealed: false });
    up = false;
    expect(await read('sys/health')).toMatchObject({ version: '2.5.5', sealed: true });
    expect(await read('sys/seal-status')).toMatchObject({ version: '2.5.5', sealed: true });
  });
});
