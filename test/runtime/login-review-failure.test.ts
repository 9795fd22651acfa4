/**
 * A pod login refused while the broker's TokenReview failed is answered 503 naming the failure. The text must be
 * true of that failure: "did not answer" only for an API server that did not answer (CT_KUBE_UNREACHABLE), not for
 * one that answered 401 (the broker's own credential refused) or 500. A login refused while no TokenReview reached
 * the broker at all is told so (CT_TOKENREVIEW_UNAVAILABLE); one refused after a review (a pod its role does not
 * bind) keeps OpenBao's answer.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type PodApiServer, startPodApiServer } from '../../runtime/podapi/server.js';
import type { TunnelMux } from '../../runtime/tunnel/index.js';

let api: PodApiServer | undefined;
afterEach(async () => {
  await api?.close();
  api = undefined;
});

type Reviews = { count: number; code?: string; asked: number };

/**
 * One pod login through a pod API whose tunnel's OpenBao answers `answer`; `meanwhile` plays what the broker's
 * TokenReview side did during the login (asked, failed).
 */
async function login(answer: { status: number; errors: string[] }, meanwhile: (reviews: Reviews) => void) {
  const reviews: Reviews = { count: 0, asked: 0 };
  const tunnel = {
    closed: false,
    async request() {
      meanwhile(reviews);
      return {
        status: answer.status,
        headers: { 'content-type': 'application/json' },
        body: Buffer.from(JSON.stringify({ errors: answer.errors })),
      };
    },
  } as unknown as TunnelMux;
  api = await startPodApiServer({
    host: '127.0.0.1',
    port: 0,
    tls: false,
    tunnel: () => tunnel,
    tokenReviewFailures: () => reviews,
  });
  const response = await fetch(`${api.url}/v1/auth/kubernetes/login`, {
    method: 'POST',
    body: JSON.stringify({ role: 'app', jwt: 'x.y.z' }),
  });
  return { status: response.status, errors: ((await response.json()) as { errors: string[] }).errors };
}

const DENIED = { status: 403, errors: ['permission denied'] };

it('a login refused while the broker\'s own credential was refused (401) is not explained as "did not answer"', async () => {
  // OpenBao's answer to a failed TokenReview; meanwhile the broker's review got 401 from its API server.
  const answer = await login(DENIED, (reviews) => {
    reviews.asked++;
    reviews.count++;
    reviews.code = 'CT_KUBE_UNAUTHORIZED';
  });
  expect(answer.errors.join(' ')).toMatch(/CT_KUBE_UNAUTHORIZED/);
  expect(answer.errors.join(' ')).not.toMatch(/did not answer/);
});

describe('a login refused while no TokenReview reached the broker', () => {
  it("OpenBao's bare 403 without a review: names CT_TOKENREVIEW_UNAVAILABLE and where to look", async () => {
    // Before: the pod saw only "permission denied", what a pod its role does not bind sees.
    const answer = await login(DENIED, () => {});
    expect(answer.status).toBe(403);
    expect(answer.errors[0]).toBe('permission denied');
    expect(answer.errors[1]).toMatch(
      /^CT_TOKENREVIEW_UNAVAILABLE: OpenBao refused this login without its TokenReview/,
    );
    expect(answer.errors[1]).toContain('--tokenreview-peers');
  });

  it("a review reached the broker: OpenBao's answer stands, whatever it says", async () => {
    expect(
      await login(DENIED, (reviews) => {
        reviews.asked++;
      }),
    ).toEqual(DENIED);
  });

  it('another refusal text (bound names checked before a review) or another status is passed on as is', async () => {
    const unbound = { status: 403, errors: ['service account name not authorized'] };
    expect(await login(unbound, () => {})).toEqual(unbound);
    const noRole = { status: 400, errors: ['invalid role name "app"'] };
    expect(await login(noRole, () => {})).toEqual(noRole);
  });
});
