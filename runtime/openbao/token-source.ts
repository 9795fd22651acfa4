/**
 * A token that stays valid for a long-running process (the bridge): log in, renew at two thirds of the lease as
 * OpenBao's own LifetimeWatcher does (api/lifetime_watcher.go), log in again when renewal is refused or the lease
 * has reached the role's `token_max_ttl`, and, when OpenBao answers permission denied to a request, check whether
 * the token itself died (revoked, expired while the process was paused) and log in again at once if so.
 *
 * A login that fails is retried with backoff while the old token lasts; the process logs it once per code (then a
 * summary), and `state()` says so for /status. The token never reaches a log line or an error.
 */
import { timerDelay } from '../core/backoff.js';
import { CloudtaserError } from '../core/errors.js';
import { type Logger, moduleLogger } from '../core/log.js';
import { createLogSummarizer } from '../core/log-summary.js';
import type { OpenBaoClient } from './client.js';
import type { AuthResult } from './types.js';

/** Where a client gets the token it sends, when that token changes while the process runs. */
export interface OpenBaoTokenSource {
  /** The token to send now. */
  current(): string;
  /**
   * OpenBao answered permission denied to a request that carried `sent`. Resolves true when a new token is in
   * place (the request may be sent again with it), false when `sent` is still valid (a policy refused) or no new
   * one could be had.
   */
  refused(sent: string): Promise<boolean>;
}

export interface TokenLoginState {
  readonly state: 'ok' | 'failing';
  /** When the current token expires; undefined for a token that does not. */
  readonly expiresAt?: string;
  readonly lastErrorCode?: string;
  readonly lastError?: string;
  readonly logins: number;
  readonly renewals: number;
}

export interface RenewingLoginOptions {
  /** A client without a token, for renew-self and lookup-self with the token given. */
  readonly client: OpenBaoClient;
  /** One login (AppRole, Kubernetes auth); called again whenever a new token is needed. */
  readonly login: () => Promise<AuthResult>;
  /** Says which login this is in messages, e.g. `AppRole login at auth/approle`. Never a credential. */
  readonly description: string;
  readonly logger?: Logger;
  /** Shortest time between two logins caused by refused requests. @default 10000 */
  readonly minReloginIntervalMs?: number;
  /** @default 2000 / 60000 */
  readonly retryInitialMs?: number;
  readonly retryMaxMs?: number;
  /**
   * When the first login cannot reach OpenBao (unreachable, timed out, sealed), start without a token and keep
   * trying (a request meanwhile goes without one, and one refused logs in at once), instead of throwing: a bridge
   * pod that exits is restarted with a growing delay and comes back minutes after OpenBao does. A login OpenBao
   * refuses still throws. @default false
   */
  readonly startBeforeOpenBao?: boolean;
}

/** Answers that say OpenBao is away for now, not that the login is wrong. */
export const OPENBAO_AWAY_CODES: ReadonlySet<string> = new Set([
  'CT_OPENBAO_UNREACHABLE',
  'CT_OPENBAO_TIMEOUT',
  'CT_OPENBAO_SEALED',
  'CT_PROXY_UNREACHABLE',
]);

export interface RenewingLogin extends OpenBaoTokenSource {
  state(): TokenLoginState;
  close(): void;
}

/** Logs in once (throws what the login throws), then keeps the token valid until `close()`. */
export async function startRenewingLogin(options: RenewingLoginOptions): Promise<RenewingLogin> {
  const log = moduleLogger(options.logger, 'openbao-token');
  const summary = createLogSummarizer(log, { summaryEvent: 'openbao.login_failures_summary' });
  const minRelogin = options.minReloginIntervalMs ?? 10_000;
  const retryInitial = options.retryInitialMs ?? 2_000;
  const retryMax = options.retryMaxMs ?? 60_000;
  let failure: { code: string; message: string } | undefined;
  let auth: AuthResult;
  try {
    auth = await options.login();
  } catch (err) {
    const code = err instanceof CloudtaserError ? err.code : undefined;
    if (!options.startBeforeOpenBao || code === undefined || !OPENBAO_AWAY_CODES.has(code)) throw err;
    // No token yet: requests go without one until a login works (the timer below, or the first refusal).
    auth = {
      clientToken: '',
      accessor: '',
      policies: [],
      leaseDuration: 0,
      renewable: false,
      metadata: null,
    };
    failure = { code, message: (err as Error).message };
    log.warn(
      { event: 'openbao.login_pending', code, reason: failure.message },
      `${options.description} cannot reach OpenBao yet: starting without a token and logging in as soon as it answers`,
    );
  }
  /** The lease a login gives; each renewal asks for as much again. */
  let loginLease = auth.leaseDuration;
  let obtainedAt = Date.now();
  let lastLoginAt = obtainedAt;
  /**
   * When a login was last tried. 0 when the first one could not reach OpenBao: the first request OpenBao refuses
   * may then log in at once; later refusals wait minReloginIntervalMs, so refused requests (some a stranger can
   * cause) never turn into a login each when the login itself is refused.
   */
  let lastAttemptAt = failure ? 0 : obtainedAt;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let inflight: Promise<boolean> | undefined;
  let retryDelay = retryInitial;
  const counts = { logins: failure ? 0 : 1, renewals: 0 };

  const leaseMs = () => auth.leaseDuration * 1000;
  const expiresAt = () => (auth.leaseDuration > 0 ? obtainedAt + leaseMs() : undefined);

  function schedule(delayMs: number): void {
    clearTimeout(timer);
    if (closed) return;
    // A lease beyond 24.8 days (a long max TTL) wakes at the timer's limit and renews early: harmless.
    timer = setTimeout(() => void keep(), timerDelay(Math.max(1_000, delayMs)));
    timer.unref();
  }

  function scheduleFromLease(): void {
    if (auth.leaseDuration > 0) schedule((leaseMs() * 2) / 3);
  }

  /** One renewal or login, one at a time. */
  function exclusive(work: () => Promise<boolean>): Promise<boolean> {
    inflight ??= work().finally(() => {
      inflight = undefined;
    });
    return inflight;
  }

  async function relogin(reason: string): Promise<boolean> {
    lastAttemptAt = Date.now();
    try {
      const next = await options.login();
      auth = next;
      loginLease = next.leaseDuration;
      obtainedAt = Date.now();
      lastLoginAt = obtainedAt;
      counts.logins++;
      retryDelay = retryInitial;
      if (failure) {
        log.info(
          { event: 'openbao.login_recovered', after: failure.code },
          `${options.description} works again`,
        );
      } else {
        log.info({ event: 'openbao.relogin', reason }, `logged in to OpenBao again (${reason})`);
      }
      failure = undefined;
      scheduleFromLease();
      return true;
    } catch (err) {
      const code = err instanceof CloudtaserError ? err.code : 'CT_INTERNAL';
      const message = err instanceof Error ? err.message : String(err);
      failure = { code, message };
      summary.warn(
        code,
        {
          event: 'openbao.login_failed',
          code,
          reason: message,
          tokenExpiresAt: expiresAt() === undefined ? undefined : new Date(expiresAt()!).toISOString(),
        },
        `${options.description} failed; the current OpenBao token is kept while it lasts and the login is retried. Check the credentials (AppRole secret ID expiry or use limit, the Kubernetes auth role) and OpenBao's audit log`,
      );
      schedule(retryDelay);
      retryDelay = Math.min(retryMax, retryDelay * 2);
      return false;
    }
  }

  async function renew(): Promise<boolean> {
    if (!auth.renewable) return relogin('the token is not renewable and two thirds of its lease passed');
    try {
      const renewed = await options.client
        .withToken(auth.clientToken)
        .request<{ auth?: { lease_duration?: number } }>('POST', 'auth/token/renew-self', {
          body: { increment: `${loginLease}s` },
        });
      const lease = Number(renewed.body?.auth?.lease_duration ?? 0);
      // Less than half of what a login gives: the role's token_max_ttl caps it, so log in while the token lasts.
      if (!(lease > 0 && lease * 2 >= loginLease)) return relogin('the token reached its maximum TTL');
      auth = { ...auth, leaseDuration: lease };
      obtainedAt = Date.now();
      counts.renewals++;
      log.debug({ event: 'openbao.token_renewed', leaseSeconds: lease }, 'OpenBao token renewed');
      scheduleFromLease();
      return true;
    } catch {
      return relogin('renewing the token was refused');
    }
  }

  async function keep(): Promise<void> {
    if (closed) return;
    // A failed login retries until it works; otherwise the lease says when to renew.
    await exclusive(() => (failure ? relogin('retrying a failed login') : renew()));
  }

  if (failure) schedule(retryInitial);
  else scheduleFromLease();

  return {
    current: () => auth.clientToken,
    async refused(sent) {
      if (closed) return false;
      if (sent !== auth.clientToken) return true;
      // No login yet (OpenBao was away at start): OpenBao answering at all is the moment to log in.
      if (auth.clientToken === '') {
        if (Date.now() - lastAttemptAt < minRelogin) return false;
        return exclusive(() => relogin('OpenBao answers again'));
      }
      if (inflight) {
        await inflight;
        return sent !== auth.clientToken;
      }
      // Most refusals are policies saying no: only a token OpenBao no longer knows is replaced.
      const alive = await options.client
        .withToken(sent)
        .lookupSelf()
        .then(
          () => true,
          (err: unknown) => !(err instanceof CloudtaserError && err.code === 'CT_OPENBAO_PERMISSION_DENIED'),
        );
      if (alive || sent !== auth.clientToken) return sent !== auth.clientToken;
      if (Date.now() - lastLoginAt < minRelogin) return false;
      return exclusive(() => relogin('OpenBao no longer accepts the token'));
    },
    state: () => ({
      state: failure ? 'failing' : 'ok',
      ...(expiresAt() === undefined ? {} : { expiresAt: new Date(expiresAt()!).toISOString() }),
      ...(failure ? { lastErrorCode: failure.code, lastError: failure.message } : {}),
      logins: counts.logins,
      renewals: counts.renewals,
    }),
    close() {
      closed = true;
      clearTimeout(timer);
      summary.close();
    },
  };
}

export interface StaticTokenKeeper {
  close(): void;
}

/** How long a static token keeper waits to look again after OpenBao did not answer. */
const STATIC_TOKEN_RETRY_MS = 30_000;

/**
 * Keeps a token given to a long-running process as it is (`--secretstore-token`, CLOUDTASER_SECRETSTORE_TOKEN)
 * alive as long as OpenBao lets it: a renewable token with a TTL is renewed at two thirds of each lease, as
 * startRenewingLogin does for logins. A token that cannot be renewed, or stops gaining time (its max TTL), is said
 * once, with when it expires and what to use instead; one that never expires (root, periodic after renewal) needs
 * nothing. Before, such a token simply expired under the bridge (`dev up`'s bridge token after an hour) and every
 * poll failed with permission denied.
 */
export function keepStaticTokenAlive(options: { client: OpenBaoClient; logger?: Logger }): StaticTokenKeeper {
  const log = moduleLogger(options.logger, 'openbao-token');
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let warned = false;
  const schedule = (delayMs: number) => {
    if (closed) return;
    timer = setTimeout(() => void check(false), timerDelay(Math.max(1_000, delayMs)));
    timer.unref();
  };
  const warnOnce = (ttlSeconds: number, why: string) => {
    if (warned) return;
    warned = true;
    const expiresAt = new Date(Date.now() + ttlSeconds * 1000).toISOString();
    log.warn(
      { event: 'openbao.token_expires', code: 'CT_OPENBAO_TOKEN_EXPIRES', expiresAt, reason: why },
      `the OpenBao token this process was given expires at ${expiresAt} and ${why}; from then on every request is refused. Give it AppRole or Kubernetes auth (it logs in again on its own), or a periodic token`,
    );
  };
  async function check(first: boolean): Promise<void> {
    if (closed) return;
    try {
      const info = await options.client.lookupSelf();
      if (info.ttl <= 0) return;
      if (!info.renewable) return warnOnce(info.ttl, 'cannot be renewed');
      if (first) return schedule((info.ttl * 1000 * 2) / 3);
      const renewed = await options.client.request<{ auth?: { lease_duration?: number } }>(
        'POST',
        'auth/token/renew-self',
        { body: {} },
      );
      const lease = Number(renewed.body?.auth?.lease_duration ?? 0);
      log.debug({ event: 'openbao.token_renewed', leaseSeconds: lease }, 'OpenBao token renewed');
      // No more time than it had: its max TTL caps it now.
      if (lease <= info.ttl) warnOnce(lease, 'has reached its maximum TTL');
      if (lease > 0) schedule((lease * 1000 * 2) / 3);
    } catch (err) {
      // OpenBao not answering is what the polls report; look again later.
      log.debug(
        {
          event: 'openbao.token_check_failed',
          code: err instanceof CloudtaserError ? err.code : 'CT_INTERNAL',
        },
        'could not look up or renew the OpenBao token; trying again',
      );
      schedule(STATIC_TOKEN_RETRY_MS);
    }
  }
  void check(true);
  return {
    close() {
      closed = true;
      clearTimeout(timer);
    },
  };
}
