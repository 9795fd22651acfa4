/**
 * A pod API request that finds no tunnel waits up to tunnelWaitMs for the next one, outside the request gate.
 * Before, it waited inside the gate, holding one of the maxInFlight slots: during an outage the n-th request was
 * answered after ~ceil(n / maxInFlight) x tunnelWaitMs, and sys/health, which must answer at once (sealed while
 * the secret store is unreachable; probes have short timeouts), queued behind them.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type PodApiServer, startPodApiServer } from '../../runtime/podapi/server.js';
import type { TunnelMux } from '../../runtime/tunnel/index.js';

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
