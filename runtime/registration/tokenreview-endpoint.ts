/**
 * The TokenReview endpoint rule, in a module light enough for the provider's eager schema: the default, its
 * validation and the `kubernetes_host` registration derives from it.
 */
import { CloudtaserError } from '../core/errors.js';
import { parseFingerprint } from '../core/rules.js';

/**
 * Where OpenBao reaches the bridge's TokenReview endpoint when nothing else is said: the bridge chart's Service
 * with its default release name and the constructs' default namespace. Name yours with `--tokenreview-endpoint`
 * (the bridge chart's NOTES print it).
 */
export const DEFAULT_TOKENREVIEW_ENDPOINT = 'https://cloudtaser-bridge.cloudtaser-system.svc:8444';

/** The `kubernetes_host` registration configures for a cluster. */
export function tokenReviewHost(endpoint: string, fingerprint: string): string {
  return `${endpoint.replace(/\/+$/, '')}/clusters/${parseFingerprint(fingerprint)}`;
}

/** Why an endpoint is refused, or undefined: an http(s) URL without query or fragment. */
export function tokenReviewEndpointProblem(endpoint: string): string | undefined {
  let url: URL | undefined;
  try {
    url = new URL(endpoint);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.search !== '' || url.hash !== '')
    return `must be an https:// URL of the bridge's TokenReview Service as OpenBao reaches it, e.g. ${DEFAULT_TOKENREVIEW_ENDPOINT}`;
  return undefined;
}

/** Validates `--tokenreview-endpoint`; throws CT_INVALID_ARGUMENT naming the flag. */
export function parseTokenReviewEndpoint(endpoint: string): URL {
  const problem = tokenReviewEndpointProblem(endpoint);
  if (problem)
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `--tokenreview-endpoint ${JSON.stringify(endpoint)} ${problem}`,
    );
  return new URL(endpoint);
}
