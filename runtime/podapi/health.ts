/**
 * `GET|HEAD /v1/sys/health` through the pod API. It is unauthenticated on OpenBao and answers in status codes
 * (internal/http/sys_health.go `getSysHealth`): 200 active, 429 standby, 472 DR secondary, 473 performance standby,
 * 501 not initialised, 503 sealed, each replaceable by a query parameter. While the tunnel is up the pod gets
 * OpenBao's own answer; while it is down (or OpenBao cannot be reached from the bridge) the pod API answers the
 * way a sealed server does, because that is what it is to the pod: a server that cannot serve secrets now.
 */

/** The parameters OpenBao reads, and their kind; others are dropped, as OpenBao ignores them. */
const HEALTH_PARAMETERS: Record<string, 'bool' | 'code'> = {
  standbyok: 'bool',
  perfstandbyok: 'bool',
  activecode: 'code',
  standbycode: 'code',
  drsecondarycode: 'code',
  performancestandbycode: 'code',
  sealedcode: 'code',
  uninitcode: 'code',
};

/** Go's strconv.ParseBool, which OpenBao uses for `standbyok`, `perfstandbyok` and `list`. */
export function parseGoBool(value: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  return undefined;
}

/**
 * The query a pod's sys/health request may carry on: only OpenBao's parameters, each validated as OpenBao does
 * (a code that is not an integer, or a flag that is not a boolean, is a 400). Codes must be valid HTTP statuses
 * (100-599): OpenBao would pass any integer to Go's WriteHeader, which fails on the rest.
 */
export function healthQuery(params: URLSearchParams): { query: string } | { error: string } {
  const kept = new URLSearchParams();
  for (const [name, kind] of Object.entries(HEALTH_PARAMETERS)) {
    const value = params.get(name);
    if (value === null) continue;
    if (kind === 'bool' && parseGoBool(value) === undefined)
      return {
        error: `bad value for ${name} parameter: ${JSON.stringify(value.slice(0, 32))} is not a boolean`,
      };
    if (kind === 'code' && !(/^\d{3}$/.test(value) && Number(value) >= 100 && Number(value) <= 599))
      return {
        error: `bad value for ${name} parameter: ${JSON.stringify(value.slice(0, 32))} is not an HTTP status code`,
      };
    kept.set(name, value);
  }
  return { query: kept.toString() };
}

/**
 * What the pod API answers on sys/health when the secret store cannot be reached: OpenBao's sealed answer
 * (status 503, or `sealedcode`), with the body fields a sealed server sends (no cluster name or id). `version` is
 * the last one OpenBao reported through this process, if any (a sealed server still reports its own).
 */
export function unavailableHealthAnswer(query: string, version = ''): { status: number; body: string } {
  const sealedCode = new URLSearchParams(query).get('sealedcode');
  const body = {
    initialized: true,
    sealed: true,
    standby: false,
    performance_standby: false,
    replication_performance_mode: 'disabled',
    replication_dr_mode: 'disabled',
    server_time_utc: Math.floor(Date.now() / 1000),
    version,
  };
  return { status: sealedCode === null ? 503 : Number(sealedCode), body: `${JSON.stringify(body)}\n` };
}

/**
 * sys/seal-status while the secret store cannot be reached: a sealed server's answer (200, `sealed: true`; the
 * fields of vault/api SealStatusResponse that a sealed server fills), as sys/health says sealed then. It was a 503
 * after the tunnel wait: hvac's `sys.is_sealed()` raised VaultDown 5 s later while sys/health said sealed at once
 * (an outside hvac drill), and code written as `if client.sys.is_sealed(): wait()` broke on it.
 */
export function unavailableSealStatusAnswer(version = ''): { status: 200; body: string } {
  const body = {
    type: 'shamir',
    initialized: true,
    sealed: true,
    t: 0,
    n: 0,
    progress: 0,
    nonce: '',
    version,
    build_date: '',
    migration: false,
    recovery_seal: false,
    storage_type: '',
  };
  return { status: 200, body: `${JSON.stringify(body)}\n` };
}

/** The `version` of an OpenBao sys/health or sys/seal-status answer, when it carries a plausible one. */
export function reportedVersion(body: Buffer | string): string | undefined {
  if (body.length > 4096) return undefined;
  try {
    const version = (JSON.parse(body.toString()) as { version?: unknown }).version;
    return typeof version === 'string' && /^[0-9A-Za-z.+-]{1,64}$/.test(version) ? version : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `GET /v1/sys/leader`, which `bao status` / `vault status` ask right after sys/seal-status and fail on when it
 * errors (command/status.go). Answered by the pod API itself, never by OpenBao: OpenBao's answer names its own
 * API and cluster addresses, which pods have no use for. To a pod the pod API is one server, not an HA cluster.
 * The fields are internal/http/sys_leader.go's.
 */
export function leaderAnswer(): { status: 200; body: string } {
  return {
    status: 200,
    body: `${JSON.stringify({
      ha_enabled: false,
      is_self: false,
      active_time: '0001-01-01T00:00:00Z',
      leader_address: '',
      leader_cluster_address: '',
      performance_standby: false,
      performance_standby_last_remote_wal: 0,
    })}\n`,
  };
}
