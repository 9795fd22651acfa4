/**
 * A TokenReview the bridge cancelled (its time limit, a tunnel cut) says nothing about the API server. Before, it
 * counted as an API server failure: /status said TokenReviews were failing with CT_CANCELLED while the API server
 * was fine, and the pod API turned a concurrent genuine 403 (an unbound pod) into a retryable 503.
 */
import { describe, expect, it } from 'vitest';
import { serveTokenReview } from '../../runtime/broker/tokenreview.js';
import { CloudtaserError, silentLogger } from '../../runtime/core/index.js';

describe('a TokenReview cancelled by its requester', () => {
  it('is not counted as a failure of the API server', async () => {
    const failed: string[] = [];
    const abort = new AbortController();
    const kube = {
      // A healthy API server that answers in 200 ms, cancelled like KubeClient cancels (cancelledError).
      createTokenReview: (_token: string, _aud: string[], options?: { signal?: AbortSignal }) =>
        new Promise<never>((resolve, reject) => {
          const timer = setTimeout(() => resolve({ authenticated: false } as never), 200);
          options?.signal?.addEventListener('abort', () => {
            clearTimeout(timer);
            reject(new CloudtaserError('CT_CANCELLED', 'request to the Kubernetes API server was cancelled'));
          });
        }),
    };
    const served = serveTokenReview(
      kube as never,
      {
        method: 'POST',
        path: '/kube/apis/authentication.k8s.io/v1/tokenreviews',
        headers: {},
        body: Buffer.from(JSON.stringify({ spec: { token: 'eyJ.x.y' } })),
      },
      silentLogger,
      abort.signal,
      { answered: () => undefined, failed: (error) => failed.push(error.code) },
    );
    // The bridge resets the stream (its requester went away): the mux aborts the handler's signal.
    setTimeout(() => abort.abort(), 20);
    await served;
    expect(failed).toEqual([]);
  });
});
