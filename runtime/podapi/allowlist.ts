/**
 * The pod API's allow-list: the only OpenBao requests a pod may send through the broker. Both ends check it
 * (the broker before the tunnel, the bridge before OpenBao), so a broker that is not ours still cannot reach
 * anything else. Paths are relative to the cluster namespace, which the bridge adds; a pod cannot name another.
 */
import { NAMESPACE_ROOT_RULE } from '../core/rules.js';
import { healthQuery, parseGoBool } from './health.js';

/** What a pod asked for, once it passed the allow-list. `path` has no leading slash and no query. */
export interface AllowedPodRequest {
  /** Stable name of the allow-list entry, for logs and metrics (never the path, which may name a secret). */
  readonly route: PodApiRoute;
  /** The method carried through the tunnel (a pod's HEAD on sys/health travels as GET). */
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'LIST';
  /** Cluster-namespace-relative OpenBao path, percent-encoded per segment, e.g. `secret/data/app/db`. */
  readonly path: string;
  /** Only the query parameters the route understands (`version`, `list`, sys/health's codes). */
  readonly query: string;
}

export type PodApiRoute =
  | 'kubernetes-login'
  | 'kv-read'
  | 'kv-write'
  | 'kv-delete'
  | 'kv-metadata-read'
  | 'kv-metadata-write'
  | 'kv-metadata-delete'
  | 'kv-versions'
  | 'kv-list'
  | 'kv-mount-info'
  | 'sys-health'
  | 'sys-seal-status'
  | 'sys-init'
  | 'sys-leader'
  | 'token-lookup-self'
  | 'token-renew-self'
  | 'token-revoke-self';

export interface PodApiRefusal {
  readonly status: 400 | 403 | 404 | 405 | 414 | 415;
  readonly errors: string[];
}

/** OpenBao's own texts (wire-facts A0.3), so clients see the errors they already handle. */
export const PERMISSION_DENIED = 'permission denied';
/**
 * Said after OpenBao's text when the allow-list (not an OpenBao policy) refused: the same 403 and first error, so
 * clients handle it as they do, and a person reading it knows not to edit OpenBao policies that are right.
 */
export const NOT_ON_ALLOW_LIST =
  'CT_PODAPI_NOT_ALLOWED: this request is not on the cloudtaser pod API allow-list (login, KV v2 under secret/, token self-service, sys/health, sys/seal-status, sys/init, sys/leader); the OpenBao policy was not consulted';

const KV_MOUNT = 'secret';
const MAX_SEGMENTS = 64;
const MAX_SEGMENT_CHARS = 512;

type WireMethod = AllowedPodRequest['method'];

/** How one verb on a route's paths travels, or why it is refused; `params` is the pod's query. */
type VerbDecision = (
  params: URLSearchParams,
) => { readonly route: PodApiRoute; readonly method: WireMethod; readonly query?: string } | PodApiRefusal;

interface AllowListEntry {
  /** Decoded segments: a literal, `*` for one segment, or a last `**` for any number of further segments. */
  readonly path: string;
  /** The verbs allowed (after `?list` turned a GET into LIST, unless `verbAsSent`). */
  readonly verbs: Readonly<Partial<Record<string, VerbDecision>>>;
  /** The answer to any other verb. @default 403 permission denied */
  readonly otherVerbs?: PodApiRefusal;
  /** Decided on the verb as sent: `list` and `scan` mean nothing here. */
  readonly verbAsSent?: true;
}

const to =
  (route: PodApiRoute, method: WireMethod, query?: (params: URLSearchParams) => string): VerbDecision =>
  (params) => ({ route, method, query: query?.(params) });

const sysHealth: VerbDecision = (params) => {
  const health = healthQuery(params);
  if ('error' in health) return { status: 400, errors: [health.error] };
  return { route: 'sys-health', method: 'GET', query: health.query };
};

/**
 * A KV v2 read, with the version asked for. A number passes as it is (OpenBao answers 404 for one it does not
 * have); anything else is refused with OpenBao's own 400 (the test server's kv-engine says the same). It used to be
 * dropped, and the pod got the latest version with a 200 instead of the version it asked for, or an error.
 */
const kvRead: VerbDecision = (params) => {
  const version = params.get('version');
  if (version === null || version === '') return { route: 'kv-read', method: 'GET', query: '' };
  if (!/^\d{1,20}$/.test(version))
    return { status: 400, errors: ['error converting input for field "version"'] };
  return { route: 'kv-read', method: 'GET', query: `version=${version}` };
};

/**
 * A KV v2 LIST, with its page if one is asked for: `after` (keys after this one) and `limit` (at most this many),
 * as OpenBao's paginated list takes them (path_metadata.go; the Go client's `Logical().ListPage`). They used to be
 * dropped: a paging loop got the whole list every time, and one that pages while a page is full never ended. A
 * limit that is not a number gets the 400 the test server's kv-engine gives, as a version does.
 */
const kvList: VerbDecision = (params) => {
  let query = 'list=true';
  const after = params.get('after');
  if (after !== null && after !== '') query += `&after=${encodeURIComponent(after)}`;
  const limit = params.get('limit');
  if (limit !== null && limit !== '') {
    if (!/^-?\d{1,9}$/.test(limit))
      return { status: 400, errors: ['error converting input for field "limit"'] };
    query += `&limit=${limit}`;
  }
  return { route: 'kv-list', method: 'LIST', query };
};

/**
 * The allow-list, first match wins. Every path not here, and every verb not named for a path, is refused with
 * OpenBao's 403 (or the entry's `otherVerbs`).
 */
const ALLOW_LIST: readonly AllowListEntry[] = [
  // Unauthenticated on OpenBao, and HEAD is what load balancers and hvac send (internal/http/sys_health.go).
  {
    path: 'sys/health',
    verbs: { GET: sysHealth, HEAD: sysHealth },
    otherVerbs: { status: 405, errors: [] },
    verbAsSent: true,
  },
  // Unauthenticated too: what `bao status` / `vault status` read first (command/status.go, api SealStatus).
  {
    path: 'sys/seal-status',
    verbs: { GET: to('sys-seal-status', 'GET') },
    otherVerbs: { status: 405, errors: [] },
    verbAsSent: true,
  },
  // Unauthenticated as well (internal/http/sys_init.go): hvac's `sys.is_initialized()`, in start-up and readiness
  // checks beside `is_sealed()` (an outside hvac drill got 403 here). Read only: initialising is not a pod's business.
  {
    path: 'sys/init',
    verbs: { GET: to('sys-init', 'GET') },
    otherVerbs: { status: 405, errors: [] },
    verbAsSent: true,
  },
  // Answered by the pod API itself (health.ts leaderAnswer): `bao status` asks it after sys/seal-status.
  {
    path: 'sys/leader',
    verbs: { GET: to('sys-leader', 'GET') },
    otherVerbs: { status: 405, errors: [] },
    verbAsSent: true,
  },
  {
    path: 'auth/kubernetes/login',
    verbs: { POST: to('kubernetes-login', 'POST'), PUT: to('kubernetes-login', 'POST') },
    otherVerbs: { status: 405, errors: ['unsupported operation'] },
  },
  {
    path: 'auth/token/lookup-self',
    verbs: {
      GET: to('token-lookup-self', 'GET'),
      POST: to('token-lookup-self', 'POST'),
      PUT: to('token-lookup-self', 'POST'),
    },
  },
  {
    path: 'auth/token/renew-self',
    verbs: { POST: to('token-renew-self', 'POST'), PUT: to('token-renew-self', 'POST') },
  },
  {
    path: 'auth/token/revoke-self',
    verbs: { POST: to('token-revoke-self', 'POST'), PUT: to('token-revoke-self', 'POST') },
  },
  // The KV preflight of the `bao`/`vault` CLI (command/kv_helpers.go `kvPreflightVersionRequest`) and of
  // consul-template (`isKVv2`): which mount a path is in and its KV version. Only for the `secret/` mount, and
  // OpenBao decides with the pod's token whether it may know (the token needs some capability under the mount).
  { path: `sys/internal/ui/mounts/${KV_MOUNT}/**`, verbs: { GET: to('kv-mount-info', 'GET') } },
  // KV v2 under `secret/`, the whole secret API of the engine (builtin/logical/kv path_data.go, path_metadata.go,
  // path_delete.go, path_undelete.go, path_destroy.go), so `bao kv delete|undelete|destroy|metadata put|patch|
  // delete` and External Secrets' PushSecret (a metadata write with `custom_metadata` before the data write, and
  // DELETE of data and metadata for deletionPolicy: Delete) work. The OpenBao policy decides who may; the mount's
  // own configuration (`secret/config`) stays off the list.
  {
    path: `${KV_MOUNT}/data/*/**`,
    verbs: {
      GET: kvRead,
      POST: to('kv-write', 'POST'),
      PUT: to('kv-write', 'POST'),
      PATCH: to('kv-write', 'PATCH'),
      DELETE: to('kv-delete', 'DELETE'),
    },
  },
  {
    path: `${KV_MOUNT}/metadata/*/**`,
    verbs: {
      GET: to('kv-metadata-read', 'GET'),
      LIST: kvList,
      POST: to('kv-metadata-write', 'POST'),
      PUT: to('kv-metadata-write', 'POST'),
      PATCH: to('kv-metadata-write', 'PATCH'),
      DELETE: to('kv-metadata-delete', 'DELETE'),
    },
  },
  ...(['delete', 'undelete', 'destroy'] as const).map(
    (family): AllowListEntry => ({
      path: `${KV_MOUNT}/${family}/*/**`,
      verbs: { POST: to('kv-versions', 'POST'), PUT: to('kv-versions', 'POST') },
    }),
  ),
  { path: `${KV_MOUNT}/metadata`, verbs: { LIST: kvList } },
];

/**
 * Decides whether `method` + `rawPath` (as a pod sent it, starting with `/v1/`, query included) may pass.
 * Anything odd (dot segments, encoded slashes, control characters, empty segments) is refused, never cleaned up,
 * so what the bridge forwards is exactly what was checked.
 */
export function checkPodRequest(method: string, rawPath: string): AllowedPodRequest | PodApiRefusal {
  const queryAt = rawPath.indexOf('?');
  const pathPart = queryAt < 0 ? rawPath : rawPath.slice(0, queryAt);
  const params = new URLSearchParams(queryAt < 0 ? '' : rawPath.slice(queryAt + 1));
  if (!pathPart.startsWith('/v1/')) {
    // OpenBao's plain 404 off its API; a near miss of it (`/V1/`, `//v1/`) gets a hint, which a person who
    // mistyped it needs (an outside hostile drill got bare 404s).
    if (/^\/+v1(\/|$)/i.test(pathPart))
      return {
        status: 404,
        errors: [
          'CT_PODAPI_NOT_ALLOWED: the API is under /v1/ exactly (lower case, one leading slash); nothing else is served',
        ],
      };
    return { status: 404, errors: [] };
  }
  const segments = splitSegments(pathPart.slice('/v1/'.length));
  if (!segments) return denied();
  const entry = ALLOW_LIST.find((candidate) => matchesPath(candidate.path, segments));
  let verb: string | PodApiRefusal = method.toUpperCase();
  if (!entry?.verbAsSent) verb = readVerb(verb, params);
  if (typeof verb !== 'string') return verb;
  if (!entry) return denied();
  // Own keys only: a verb is the pod's text and must never find an inherited property.
  const decide = Object.hasOwn(entry.verbs, verb) ? entry.verbs[verb] : undefined;
  if (!decide) return entry.otherVerbs ? copyRefusal(entry.otherVerbs) : denied();
  const decision = decide(params);
  if ('status' in decision) return decision;
  // A trailing slash is kept where OpenBao gives it a meaning, never cleaned away: a LIST's folder takes it or
  // not alike; a write is refused as OpenBao refuses it (internal/vault/request_handling.go, create, update and
  // patch); a read or delete goes to the path as written (OpenBao: no such key, 404). Before, it was dropped for
  // every verb, so a write to `app/db/` replaced `app/db`.
  const trailingSlash = pathPart.endsWith('/') && decision.method !== 'LIST';
  if (trailingSlash && (decision.method === 'POST' || decision.method === 'PATCH'))
    return { status: 400, errors: ["cannot write to a path ending in '/'"] };
  return {
    route: decision.route,
    method: decision.method,
    path: `${segments.map((s) => encodeURIComponent(s)).join('/')}${trailingSlash ? '/' : ''}`,
    query: decision.query ?? '',
  };
}

/** The verb OpenBao sees: a GET with a true `list` is a LIST. A `scan` (SCAN's other spelling) is refused. */
function readVerb(verb: string, params: URLSearchParams): string | PodApiRefusal {
  if (verb !== 'GET') return verb;
  // OpenBao parses `list` with Go's ParseBool (`list=1` from node-vault's noCustomHTTPVerbs is a list too).
  const list = params.get('list');
  const listing = list === null || list === '' ? false : parseGoBool(list);
  if (listing === undefined)
    return { status: 400, errors: [`bad value for list parameter: ${JSON.stringify(list?.slice(0, 32))}`] };
  // SCAN is not on the allow-list, in either spelling.
  if (params.has('scan')) return denied();
  return listing ? 'LIST' : verb;
}

function matchesPath(pattern: string, segments: readonly string[]): boolean {
  const parts = pattern.split('/');
  const open = parts[parts.length - 1] === '**';
  const fixed = open ? parts.slice(0, -1) : parts;
  if (open ? segments.length < fixed.length : segments.length !== fixed.length) return false;
  return fixed.every((part, i) => part === '*' || part === segments[i]);
}

function copyRefusal(refusal: PodApiRefusal): PodApiRefusal {
  return { status: refusal.status, errors: [...refusal.errors] };
}

export function isRefusal(value: AllowedPodRequest | PodApiRefusal): value is PodApiRefusal {
  return 'status' in value;
}

/** The request headers the allow-list looks at besides the token. */
export interface PodRequestHeaders {
  /** `X-Vault-Namespace` as sent. */
  readonly namespace?: string;
  /**
   * The cluster namespace's own name under the namespace root (the fingerprint's first 8 characters), when known:
   * `<root>/<it>` in the header names the cluster namespace itself.
   */
  readonly clusterNamespaceName?: string;
  /** `X-Vault-Wrap-TTL` as sent. */
  readonly wrapTtl?: string;
}

/**
 * Response wrapping is refused whatever the path (OpenBao Agent's sink wraps with `PUT sys/wrapping/wrap`): the
 * client would get plaintext where it expects a wrapping token, so it gets this 400 instead of a bare 403.
 */
export function checkWrapping(wrapTtl: string | undefined): PodApiRefusal | undefined {
  if (wrapTtl === undefined) return undefined;
  return {
    status: 400,
    errors: [
      'CT_PODAPI_NOT_ALLOWED: response wrapping is not available through the cloudtaser pod API; unset VAULT_WRAP_TTL (X-Vault-Wrap-TTL, -wrap-ttl, the agent sink wrap_ttl) and read the secret directly',
    ],
  };
}

/**
 * Refuses what the pod API cannot honour instead of quietly ignoring it: response wrapping (checkWrapping), and a
 * namespace header naming anything but the cluster namespace the bridge puts every request in. The cluster
 * namespace is `root` (or empty), as the pod sees it, and also its full path `<root>/<fp8>`: what lookup-self shows
 * as `namespace_path` and what the platform team writes secrets with (`bao kv put -namespace=...`); upstream serves
 * a token's own namespace by that header.
 */
export function checkPodHeaders(route: PodApiRoute, headers: PodRequestHeaders): PodApiRefusal | undefined {
  const wrapping = checkWrapping(headers.wrapTtl);
  if (wrapping) return wrapping;
  const namespace = headers.namespace;
  if (namespace === undefined || namespace.trim() === '') return undefined;
  // OpenBao refuses any namespace header on sys/health (internal/http/handler.go `restrictedSysAPIsNonLogical`);
  // sys/seal-status has its own handler, which ignores the header (wire-facts: "ignores the header and always
  // reports the global seal status"), so `bao status` works with VAULT_NAMESPACE set.
  // sys/init is on the same list (`restrictedSysAPIsNonLogical`).
  if (route === 'sys-health' || route === 'sys-init')
    return { status: 400, errors: ['operation unavailable in namespaces'] };
  if (route === 'sys-seal-status') return undefined;
  const cleaned = namespace.trim().replace(/^\/+|\/+$/g, '');
  if (cleaned === '' || cleaned === 'root') return undefined;
  const own = headers.clusterNamespaceName;
  // `<root>/<own>`, the root as registration accepts one (the broker knows its prefix, not the root).
  const [rootSegment, name, ...deeper] = cleaned.split('/');
  if (own !== undefined && name === own && deeper.length === 0 && NAMESPACE_ROOT_RULE.test(rootSegment!))
    return undefined;
  // 403, as upstream answers a token used outside its namespace: a 404 here read as "no such secret" in the Go
  // client (api/logical.go turns any 404 into nil, nil), so External Secrets or the CSI provider said the secret
  // did not exist and never showed why.
  return {
    status: 403,
    errors: [
      PERMISSION_DENIED,
      `CT_PODAPI_NOT_ALLOWED: the cloudtaser pod API serves this cluster's namespace only${own ? ` (root, or <root>/${own})` : ''}; unset VAULT_NAMESPACE (X-Vault-Namespace) or set it to that`,
    ],
  };
}

function denied(): PodApiRefusal {
  return { status: 403, errors: [PERMISSION_DENIED, NOT_ON_ALLOW_LIST] };
}

/**
 * Read-your-writes headers (OpenBao internal/http/index.go; the Go API client's ReadYourWrites, External Secrets'
 * `readYourWrites` + `forwardInconsistent`): the client sends back the `X-Vault-Index` an answer gave it, and
 * `X-Vault-Inconsistent` says what a standby that has not seen that index does (fail with 429 + Retry-After, forward
 * to the active node, or wait first: `await-state` followed by a second header). Both pass to OpenBao unchanged;
 * what cannot be carried exactly is refused, never reshaped. The tunnel head carries the policy values joined by a
 * comma, which no valid value contains.
 */
export const CONSISTENCY_HEADERS = { index: 'x-vault-index', inconsistent: 'x-vault-inconsistent' } as const;
const MAX_INDEX_CHARS = 4096;
const INCONSISTENT_POLICIES = new Set(['fail', 'forward-active-node', 'await-state']);

export function checkConsistencyHeaders(
  index: readonly string[] | undefined,
  inconsistent: readonly string[] | undefined,
): { readonly carried: Record<string, string> } | PodApiRefusal {
  const carried: Record<string, string> = {};
  if (index !== undefined && index.length > 0) {
    const value = index[0]!;
    if (index.length > 1 || value.length > MAX_INDEX_CHARS || !/^[\x21-\x7e]+$/.test(value)) {
      return {
        status: 400,
        errors: [
          `CT_PODAPI_NOT_ALLOWED: X-Vault-Index must be sent at most once, as at most ${MAX_INDEX_CHARS} printable characters`,
        ],
      };
    }
    carried[CONSISTENCY_HEADERS.index] = value;
  }
  if (inconsistent !== undefined && inconsistent.length > 0) {
    const values = inconsistent.map((value) => value.trim());
    if (values.length > 2 || values.some((value) => !INCONSISTENT_POLICIES.has(value))) {
      return {
        status: 400,
        errors: [
          'CT_PODAPI_NOT_ALLOWED: X-Vault-Inconsistent must be fail, forward-active-node or await-state, once (or await-state, then fail or forward-active-node in a second header)',
        ],
      };
    }
    carried[CONSISTENCY_HEADERS.inconsistent] = values.join(',');
  }
  return { carried };
}

/**
 * OpenBao answer headers a pod gets besides the content type: the read-your-writes index, and what a rate-limit
 * quota says (`Retry-After`, and `X-Ratelimit-*` when the quota has `enable_rate_limit_response_headers`). Nothing
 * else of OpenBao's headers crosses.
 */
export const PASSED_RESPONSE_HEADERS: readonly string[] = [
  'x-vault-index',
  'retry-after',
  'x-ratelimit-limit',
  'x-ratelimit-remaining',
  'x-ratelimit-reset',
];

/** Decoded segments, or undefined when the path is not one we forward verbatim. */
function splitSegments(rest: string): string[] | undefined {
  // A trailing slash is how LIST paths are written; other empty segments are refused.
  const trimmed = rest.endsWith('/') ? rest.slice(0, -1) : rest;
  const raw = trimmed.split('/');
  if (raw.length === 0 || raw.length > MAX_SEGMENTS) return undefined;
  const out: string[] = [];
  for (const part of raw) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(part);
    } catch {
      return undefined;
    }
    if (
      decoded === '' ||
      decoded === '.' ||
      decoded === '..' ||
      decoded.length > MAX_SEGMENT_CHARS ||
      decoded.includes('/') ||
      decoded.includes('\\') ||
      // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
      /[\u0000-\u001f\u007f]/.test(decoded)
    ) {
      return undefined;
    }
    out.push(decoded);
  }
  return out;
}

/** The OpenBao error body: `{"errors":[...]}` plus the newline OpenBao ends bodies with. */
export function openBaoErrorBody(errors: readonly string[]): string {
  return `${JSON.stringify({ errors })}\n`;
}
