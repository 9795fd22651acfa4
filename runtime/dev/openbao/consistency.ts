/**
 * Read-your-writes on the test server's HA standbys, as OpenBao 2.7 does it (api/index.go, internal/http/index.go,
 * website/content/docs/concepts/consistency.mdx):
 *   - a write may answer `X-Vault-Index`: standard base64 of a JSON object `{cluster, value}`, the value opaque
 *     and storage-specific (here: the time the write was applied, which is what a lagging standby's view is
 *     measured in);
 *   - a request carries at most one index header; an index of another cluster is ignored;
 *   - a standby that has not applied the index does what `X-Vault-Inconsistent` says: `fail` answers 429 with
 *     Retry-After, `forward-active-node` serves it as the active node would, `await-state` waits up to the
 *     server's own bound and then falls back to a second header (`fail` or `forward-active-node`), or to the
 *     listener's fallback. Comma-joined values are not the same as two headers and are refused.
 * Not in upstream's text, so chosen here and kept conservative: the listener fallback (and no header at all) is
 * `fail`, and an index or policy header the server cannot read is a 400.
 */
import type { IncomingMessage } from 'node:http';

export const INDEX_HEADER = 'X-Vault-Index';

const POLICIES = new Set(['fail', 'forward-active-node', 'await-state']);

export function encodeIndex(cluster: string, appliedAtMs: number): string {
  return Buffer.from(JSON.stringify({ cluster, value: String(appliedAtMs) })).toString('base64');
}

export type ConsistencyDecision =
  /** Serve with the standby's own view (no index, another cluster's, or already applied). */
  | { readonly kind: 'local' }
  /** Serve as the active node (forwarded). */
  | { readonly kind: 'active' }
  | {
      readonly kind: 'error';
      readonly status: 400 | 429;
      readonly errors: string[];
      readonly retryAfter?: string;
    };

/**
 * What a standby whose view is `lagMs` behind does with a read's consistency headers. `awaitMs` bounds
 * `await-state`; the wait happens here.
 */
export async function decideConsistency(
  req: IncomingMessage,
  cluster: string,
  lagMs: number,
  awaitMs: number,
): Promise<ConsistencyDecision> {
  const indexes = req.headersDistinct['x-vault-index'];
  if (indexes === undefined || indexes.length === 0) return { kind: 'local' };
  if (indexes.length > 1) return badRequest('at most one X-Vault-Index header may be sent');
  const index = decodeIndex(indexes[0]!);
  if (index === undefined) return badRequest('invalid X-Vault-Index header');
  if (index.cluster !== cluster) return { kind: 'local' };
  const policies = req.headersDistinct['x-vault-inconsistent'] ?? [];
  if (
    policies.length > 2 ||
    policies.some((policy) => !POLICIES.has(policy)) ||
    (policies.length === 2 && (policies[0] !== 'await-state' || policies[1] === 'await-state'))
  ) {
    return badRequest('invalid X-Vault-Inconsistent header');
  }
  const applied = () => Date.now() - lagMs >= index.appliedAtMs;
  if (applied()) return { kind: 'local' };
  let policy = policies[0] ?? 'fail';
  if (policy === 'await-state') {
    const deadline = Date.now() + awaitMs;
    if (index.appliedAtMs + lagMs <= deadline) {
      // A timer may fire a millisecond before the wall clock says it is due: wait again until it is.
      while (!applied() && Date.now() < deadline) {
        const wait = index.appliedAtMs + lagMs - Date.now();
        await new Promise((resolve) => setTimeout(resolve, Math.max(1, wait + 1)));
      }
      if (applied()) return { kind: 'local' };
    }
    policy = policies[1] ?? 'fail';
  }
  if (policy === 'forward-active-node') return { kind: 'active' };
  return {
    kind: 'error',
    status: 429,
    errors: ['node not yet caught up to the requested index'],
    retryAfter: '1',
  };
}

function decodeIndex(header: string): { cluster: string; appliedAtMs: number } | undefined {
  if (header.length > 4096 || !/^[A-Za-z0-9+/]+={0,2}$/.test(header)) return undefined;
  try {
    const parsed = JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as {
      cluster?: unknown;
      value?: unknown;
    };
    if (typeof parsed.cluster !== 'string' || typeof parsed.value !== 'string') return undefined;
    const appliedAtMs = Number(parsed.value);
    return Number.isFinite(appliedAtMs) ? { cluster: parsed.cluster, appliedAtMs } : undefined;
  } catch {
    return undefined;
  }
}

function badRequest(message: string): ConsistencyDecision {
  return { kind: 'error', status: 400, errors: [message] };
}
