/**
 * A pod login refused while the broker's TokenReview failed is answered 503 naming the failure. The text must be
 * true of that failure: "did not answer" only for an API server that did not answer (CT_KUBE_UNREACHABLE), not for
 * one that answered 401 (the broker's own credential refused) or 500.
 */
import { afterEach, expect, it } from 'vitest';
import { type PodApiServer, startPodApiServer } from '../../runtime/podapi/server.js';
import type { TunnelMux } from '../../runtime/tunnel/index.js';

let api: PodApiServer | undefined;
afterEach(async () => {
  await api?.close();
  api = undefined;
});

it('a login refused while the broker\'s own credential was refused (401) is not explained as "did not answer"', async () => {
  const failures = { count: 0, code: undefined as string | undefined };
  const tunnel = {
    closed: false,
    async request() {
      // OpenBao's answer to a failed TokenReview; meanwhile the broker's review got 401 from its API server.
      failures.count++;
      failures.code = 'CT_KUBE_UNAUTHORIZED';
      return {
        status: 403,
        headers: { 'content-type': 'application/json' },
        body: Buffer.from('{"errors":["permission denied"]}'),
      };
    },
  } as unknown as TunnelMux;
  api = await startPodApiServer({
    host: '127.0.0.1',
    port: 0,
    tls: false,
    tunnel: () => tunnel,
    tokenReviewFailures: () => failures,
  });
  const response = await fetch(`${api.url}/v1/auth/kubernetes/login`, {
    method: 'POST',
    body: JSON.stringify({ role: 'app', jwt: 'x.y.z' }),
  });
  const body = (await response.json()) as { errors: string[] };
  expect(body.errors.join(' ')).toMatch(/CT_KUBE_UNAUTHORIZED/);
  expect(body.errors.join(' ')).not.toMatch(/did not answer/);
});
