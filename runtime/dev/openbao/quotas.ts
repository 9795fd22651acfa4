/**
 * DEV-ONLY test infrastructure: rate-limit quotas of the OpenBao-compatible test server, set through
 * `sys/quotas/rate-limit/:name` and `sys/quotas/config` as on OpenBao (internal/vault/quotas/quotas_rate_limit.go,
 * internal/vault/logical_system_quotas.go, internal/http/util.go `rateLimitQuotaWrapping`). A quota allows `rate`
 * requests per `interval` and per client address, in fixed windows (the memory store OpenBao uses refills the
 * whole bucket when the interval ends). The most specific quota whose `path` prefixes the request's namespace
 * path plus URL path applies. A refusal is 429 `request path "<p>": rate limit quota exceeded`.
 */
import { badRequest, notFoundEmpty, parseDurationSeconds } from './wire.js';

interface RateLimitQuota {
  readonly name: string;
  readonly path: string;
  readonly rate: number;
  readonly intervalSeconds: number;
  readonly windows: Map<string, { startMs: number; count: number }>;
}

export type QuotaVerdict =
  | { readonly allowed: true; readonly headers?: Record<string, string> }
  | { readonly allowed: false; readonly headers: Record<string, string> };

/** Paths a quota never limits (OpenBao's default `rate_limit_exempt_paths`). */
const EXEMPT_PATHS = new Set(['sys/health', 'sys/seal-status', 'sys/unseal']);

export class RateLimitQuotas {
  readonly #quotas = new Map<string, RateLimitQuota>();
  #responseHeaders = false;

  write(name: string, body: Record<string, unknown>): void {
    const rate = Number(body.rate);
    if (!Number.isFinite(rate) || rate <= 0) throw badRequest(`invalid rate: ${String(body.rate)}`);
    const intervalSeconds = body.interval === undefined ? 1 : parseDurationSeconds(body.interval, 'interval');
    if (intervalSeconds < 1) throw badRequest('interval must be at least 1s');
    const path = typeof body.path === 'string' ? body.path.replace(/^\/+/, '') : '';
    this.#quotas.set(name, { name, path, rate, intervalSeconds, windows: new Map() });
  }

  read(name: string): Record<string, unknown> {
    const quota = this.#quotas.get(name);
    if (!quota) throw notFoundEmpty();
    return {
      block_interval: 0,
      inheritable: false,
      interval: quota.intervalSeconds,
      name: quota.name,
      path: quota.path,
      rate: quota.rate,
      role: '',
      type: 'rate-limit',
    };
  }

  delete(name: string): void {
    this.#quotas.delete(name);
  }

  names(): string[] {
    return [...this.#quotas.keys()].sort();
  }

  configure(body: Record<string, unknown>): void {
    if ('enable_rate_limit_response_headers' in body)
      this.#responseHeaders =
        body.enable_rate_limit_response_headers === true ||
        body.enable_rate_limit_response_headers === 'true';
  }

  config(): Record<string, unknown> {
    return {
      enable_rate_limit_audit_logging: false,
      enable_rate_limit_response_headers: this.#responseHeaders,
      rate_limit_exempt_paths: [...EXEMPT_PATHS].sort(),
    };
  }

  /** Counts one request to `urlPath` (after /v1/) in `namespacePath` (with trailing slash, '' for root). */
  check(namespacePath: string, urlPath: string, client: string, nowMs = Date.now()): QuotaVerdict {
    if (EXEMPT_PATHS.has(urlPath)) return { allowed: true };
    const full = `${namespacePath}${urlPath}`;
    let quota: RateLimitQuota | undefined;
    for (const candidate of this.#quotas.values()) {
      if (full.startsWith(candidate.path) && (!quota || candidate.path.length > quota.path.length))
        quota = candidate;
    }
    if (!quota) return { allowed: true };
    const intervalMs = quota.intervalSeconds * 1000;
    let window = quota.windows.get(client);
    if (!window || nowMs - window.startMs >= intervalMs) {
      window = { startMs: nowMs, count: 0 };
      quota.windows.set(client, window);
    }
    window.count++;
    const resetMs = window.startMs + intervalMs;
    const remaining = Math.max(0, Math.floor(quota.rate) - window.count);
    const headers = this.#responseHeaders
      ? {
          'X-Ratelimit-Limit': String(quota.rate),
          'X-Ratelimit-Remaining': String(remaining),
          'X-Ratelimit-Reset': String(Math.ceil(resetMs / 1000)),
        }
      : undefined;
    if (window.count <= quota.rate) return { allowed: true, headers };
    return {
      allowed: false,
      headers: {
        ...(headers ?? {}),
        ...(this.#responseHeaders
          ? { 'Retry-After': String(Math.max(1, Math.ceil((resetMs - nowMs) / 1000))) }
          : {}),
      },
    };
  }
}
