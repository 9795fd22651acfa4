/**
 * A broker that gets no tunnel until someone acts (its bootstrap refused, another broker replaced it) tells pods
 * so, with the code, at once. Before, pods waited for a tunnel that would not come and were told "not connected
 * yet; retry in a few seconds" (an outside drill read that during a takeover), while the webhook already said why.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { PodApiServer } from '../../runtime/podapi/server.js';
import { captureLogger } from '../beacon/helpers.js';
import { startPlainPodApi } from '../support/raw-pod-client.js';

let api: PodApiServer | undefined;
afterEach(async () => {
  await api?.close();
  api = undefined;
});

describe('pod API of a broker that is refused', () => {
  it('answers every route 503 with the refusal code and reason at once, without waiting for a tunnel', async () => {
    let refusal: { code: string; reason: string } | undefined = {
      code: 'CT_BROKER_REPLACED',
      reason: 'another broker bootstrapped this cluster and replaced this one at 03:12:05Z',
    };
    let waits = 0;
    api = await startPlainPodApi({
      refusal: () => refusal,
      // A tunnel that never comes: before, each request waited here for the pod API's tunnel wait.
      nextTunnel: (_previous, signal) =>
        new Promise((resolve) => {
          waits++;
          signal.addEventListener('abort', () => resolve(undefined), { once: true });
        }),
      limits: { tunnelWaitMs: 2_000 },
    });
    const started = performance.now();
    for (const [method, path] of [
      ['GET', '/v1/secret/data/app'],
      ['POST', '/v1/auth/kubernetes/login'],
    ]) {
      const response = await fetch(`http://127.0.0.1:${api.port}${path}`, {
        method,
        ...(method === 'POST' ? { body: JSON.stringify({ role: 'app', jwt: 'x' }) } : {}),
      });
      expect(response.status).toBe(503);
      const { errors } = (await response.json()) as { errors: string[] };
      expect(errors).toEqual([
        "CT_BROKER_REPLACED: this cluster's cloudtaser broker serves no secrets: another broker bootstrapped this cluster and replaced this one at 03:12:05Z",
      ]);
    }
    expect(performance.now() - started).toBeLessThan(1_500);
    expect(waits).toBe(0);
    // Once the refusal is over (the broker is let back in), pods are told to retry as for any tunnel outage.
    refusal = undefined;
    const read = await fetch(`http://127.0.0.1:${api.port}/v1/secret/data/app`);
    expect(await read.text()).toMatch(/CT_TUNNEL_CLOSED: the secret-store bridge is not connected yet/);
    expect(waits).toBe(1);
  });
});

describe('pod API of a broker another one replaced, dialing again on its schedule', () => {
  it('waits for a tunnel first, then says why there is none (it said "not connected yet; retry in a few seconds")', async () => {
    // A second outside drill: pods read the transient text for over a minute after an attested replacement.
    api = await startPlainPodApi({
      noTunnelReason: () => ({
        code: 'CT_BROKER_REPLACED',
        reason: 'the tunnel closed (another broker bootstrapped this cluster); dialing again at 03:14:00Z',
      }),
      nextTunnel: (_previous, signal) =>
        new Promise((resolve) => signal.addEventListener('abort', () => resolve(undefined), { once: true })),
      limits: { tunnelWaitMs: 300 },
    });
    const started = performance.now();
    const read = await fetch(`http://127.0.0.1:${api.port}/v1/secret/data/app`);
    expect(read.status).toBe(503);
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    expect(((await read.json()) as { errors: string[] }).errors).toEqual([
      "CT_BROKER_REPLACED: this cluster's cloudtaser broker serves no secrets: the tunnel closed (another broker bootstrapped this cluster); dialing again at 03:14:00Z",
    ]);
  });
});

describe('pod API requests outside the allow-list', () => {
  it('are logged once per pod address and code a minute, naming the pod and the start of the path, never the rest', async () => {
    // An outside hostile drill probed sys/ and other clusters' namespaces: only a counter moved (debug line).
    const log = captureLogger();
    api = await startPlainPodApi({ logger: log.logger });
    const at = `http://127.0.0.1:${api.port}`;
    for (const path of ['/v1/sys/mounts', '/v1/sys/policies/acl', '/v1/auth/token/lookup/s.TOKENINPATH']) {
      const response = await fetch(`${at}${path}`);
      expect(response.status).toBe(403);
    }
    const refused = log.lines.filter((line) => line.event === 'podapi.refused');
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({
      level: 40, // warn
      podAddress: expect.stringMatching(/127\.0\.0\.1/),
      code: 'CT_PODAPI_NOT_ALLOWED',
      pathStart: 'sys/mounts',
      method: 'GET',
    });
    await api.close();
    api = undefined;
    expect(log.lines.find((line) => line.event === 'podapi.refusals_summary')).toMatchObject({
      podAddress: expect.stringMatching(/127\.0\.0\.1/),
      code: 'CT_PODAPI_NOT_ALLOWED',
      suppressed: 2,
    });
    expect(JSON.stringify(log.lines)).not.toContain('TOKENINPATH');
  });
});
