/**
 * DEV-ONLY test infrastructure: the Kubernetes auth method of the OpenBao-compatible test server. Login really
 * calls the configured `kubernetes_host` (trusting the configured CA), as OpenBao does
 * (internal/builtin/credential/kubernetes/{path_login.go,token_review.go,namespace_validator.go}): the JWT's
 * claims and audience, the role's bound names and namespaces (a namespace read for a role with a namespace
 * selector), each refused with its own text, then TokenReview, whose failure is a bare `permission denied`.
 */

import { existsSync, readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { Agent, request as httpRequest } from 'undici';
import { parse as parseYaml } from 'yaml';
import type { Backend, BaoRequest } from './backend.js';
import type { Namespace } from './namespaces.js';
import { authBlock, type TokenStore } from './tokens.js';
import {
  BaoError,
  type BaoResponse,
  badRequest,
  noContent,
  notFoundEmpty,
  ok,
  parseDurationSeconds,
  permissionDenied,
  stringList,
  unsupportedOperation,
  unsupportedPath,
} from './wire.js';

const LOCAL_CA_PATH = '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt';
const LOCAL_JWT_PATH = '/var/run/secrets/kubernetes.io/serviceaccount/token';
const ALLOWED_ALGS = new Set(['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512']);
/** Clock-skew leeway for exp/nbf/iat. */
const LEEWAY_SECONDS = 60;
/** A missing exp counts as (latest of iat/nbf) + 150 s. */
const DEFAULT_EXP_SECONDS = 150;
const TOKEN_REVIEW_TIMEOUT_MS = 10_000;
const MAX_REVIEW_BYTES = 1024 * 1024;

interface KubernetesConfig {
  readonly kubernetesHost: string;
  readonly kubernetesCaCert: string;
  readonly tokenReviewerJwt: string;
  readonly disableLocalCaJwt: boolean;
  readonly agent: Agent | undefined;
}

interface KubernetesRole {
  readonly boundNames: string[];
  readonly boundNamespaces: string[];
  /** bound_service_account_namespace_selector as given (JSON or YAML label selector), '' when unset. */
  readonly namespaceSelector: string;
  readonly policies: string[];
  readonly ttlSeconds: number;
  readonly audience: string;
  readonly aliasNameSource: string;
  readonly noDefaultPolicy: boolean;
}

interface ServiceAccountClaims {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly secretName: string;
  readonly audiences: string[];
}

function globMatch(pattern: string, value: string): boolean {
  if (pattern === '*') return true;
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${escaped}$`).test(value);
}

function checkStarMix(list: string[], field: string): void {
  if (list.includes('*') && list.length > 1) throw badRequest(`can not mix "*" with values`);
  void field;
}

function decodeSegment(segment: string): Record<string, unknown> {
  const parsed = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8')) as unknown;
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not a JSON object');
  return parsed as Record<string, unknown>;
}

/** Parses a JWT without checking its signature (OpenBao does the same unless pem_keys is set). */
function parseJwt(jwt: string, role: KubernetesRole): ServiceAccountClaims {
  const parts = jwt.split('.');
  let header: Record<string, unknown>;
  let claims: Record<string, unknown>;
  try {
    if (parts.length !== 3) throw new Error('compact JWS format must have three parts');
    header = decodeSegment(parts[0]);
    claims = decodeSegment(parts[1]);
  } catch (err) {
    throw new BaoError(403, [`failed to parse token: ${(err as Error).message}`]);
  }
  if (!ALLOWED_ALGS.has(String(header.alg))) {
    throw new BaoError(403, [`unsupported signing algorithm: ${String(header.alg)}`]);
  }
  const now = Date.now() / 1000;
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
  const iat = num(claims.iat);
  const nbf = num(claims.nbf);
  let exp = num(claims.exp);
  if (iat !== undefined || nbf !== undefined || exp !== undefined) {
    if (exp === undefined) exp = Math.max(iat ?? 0, nbf ?? 0) + DEFAULT_EXP_SECONDS;
    if (exp + LEEWAY_SECONDS < now)
      throw new BaoError(403, ['invalid expiration time (exp) claim: token is expired']);
    if (nbf !== undefined && nbf - LEEWAY_SECONDS > now) {
      throw new BaoError(403, ['invalid not before (nbf) claim: token not yet valid']);
    }
    if (iat !== undefined && iat - LEEWAY_SECONDS > now) {
      throw new BaoError(403, ['invalid issued at (iat) claim: token issued in the future']);
    }
  }
  const audiences =
    typeof claims.aud === 'string' ? [claims.aud] : Array.isArray(claims.aud) ? claims.aud.map(String) : [];
  if (role.audience !== '' && !audiences.includes(role.audience)) {
    throw new BaoError(403, [
      'invalid audience (aud) claim: audience claim does not match any expected audience',
    ]);
  }
  const projected = claims['kubernetes.io'] as
    | { namespace?: string; serviceaccount?: { name?: string; uid?: string }; secret?: { name?: string } }
    | undefined;
  if (projected && typeof projected === 'object') {
    return {
      namespace: String(projected.namespace ?? ''),
      name: String(projected.serviceaccount?.name ?? ''),
      uid: String(projected.serviceaccount?.uid ?? ''),
      secretName: String(projected.secret?.name ?? ''),
      audiences,
    };
  }
  return {
    namespace: String(claims['kubernetes.io/serviceaccount/namespace'] ?? ''),
    name: String(claims['kubernetes.io/serviceaccount/service-account.name'] ?? ''),
    uid: String(claims['kubernetes.io/serviceaccount/service-account.uid'] ?? ''),
    secretName: String(claims['kubernetes.io/serviceaccount/secret.name'] ?? ''),
    audiences,
  };
}

export function createKubernetesAuthBackend(deps: {
  readonly tokens: TokenStore;
  readonly logger: Logger;
  readonly namespace: Namespace;
}): Backend {
  let config: KubernetesConfig | undefined;
  const roles = new Map<string, KubernetesRole>();

  function writeConfig(body: Record<string, unknown>): BaoResponse {
    // Stored exactly as given; only calls trim a trailing slash (path_config.go, token_review.go).
    const host = typeof body.kubernetes_host === 'string' ? body.kubernetes_host : '';
    if (host === '') throw badRequest('no host provided');
    const disableLocalCaJwt = body.disable_local_ca_jwt === true || body.disable_local_ca_jwt === 'true';
    let ca = typeof body.kubernetes_ca_cert === 'string' ? body.kubernetes_ca_cert : '';
    if (ca === '' && disableLocalCaJwt)
      throw badRequest('kubernetes_ca_cert must be given when disable_local_ca_jwt is true');
    if (ca === '') {
      // OpenBao falls back to the pod's CA file; outside a pod that read fails, and so does the config write.
      if (!existsSync(LOCAL_CA_PATH)) throw badRequest(`open ${LOCAL_CA_PATH}: no such file or directory`);
      ca = readFileSync(LOCAL_CA_PATH, 'utf8');
    }
    // Upstream only warns: the config is stored and TLS to an https host fails later (path_config.go).
    const warnings = ca.includes('-----BEGIN CERTIFICATE-----')
      ? []
      : ['Configured CA PEM data contains no valid certificates, TLS verification will fail'];
    if (body.pem_keys !== undefined && stringList(body.pem_keys).length > 0) {
      throw badRequest('pem_keys are not supported by this test server');
    }
    void config?.agent?.close();
    config = {
      kubernetesHost: host,
      kubernetesCaCert: ca,
      tokenReviewerJwt: typeof body.token_reviewer_jwt === 'string' ? body.token_reviewer_jwt : '',
      disableLocalCaJwt,
      agent: host.startsWith('https://') ? new Agent({ connect: { ca } }) : undefined,
    };
    return warnings.length > 0 ? ok(null, { warnings }) : noContent();
  }

  function writeRole(name: string, body: Record<string, unknown>): BaoResponse {
    const boundNames = stringList(body.bound_service_account_names);
    const boundNamespaces = stringList(body.bound_service_account_namespaces);
    if (boundNames.length === 0) throw badRequest('"bound_service_account_names" can not be empty');
    if (boundNamespaces.length === 0 && !body.bound_service_account_namespace_selector) {
      throw badRequest(
        '"bound_service_account_namespaces" can not be empty if "bound_service_account_namespace_selector" is not set',
      );
    }
    checkStarMix(boundNames, 'bound_service_account_names');
    checkStarMix(boundNamespaces, 'bound_service_account_namespaces');
    const selector =
      typeof body.bound_service_account_namespace_selector === 'string'
        ? body.bound_service_account_namespace_selector
        : '';
    if (selector !== '') parseNamespaceSelector(selector);
    roles.set(name, {
      boundNames,
      boundNamespaces,
      namespaceSelector: selector,
      policies: stringList(body.token_policies ?? body.policies),
      ttlSeconds: parseDurationSeconds(body.token_ttl ?? body.ttl, 'token_ttl'),
      audience: typeof body.audience === 'string' ? body.audience : '',
      aliasNameSource:
        typeof body.alias_name_source === 'string' ? body.alias_name_source : 'serviceaccount_uid',
      noDefaultPolicy: body.token_no_default_policy === true,
    });
    return noContent();
  }

  /** The bearer of every call to the host: token_reviewer_jwt, else the local token file, else the client's JWT. */
  function reviewerOf(jwt: string, cfg: KubernetesConfig): string {
    let reviewer = cfg.tokenReviewerJwt;
    if (reviewer === '' && !cfg.disableLocalCaJwt && existsSync(LOCAL_JWT_PATH)) {
      reviewer = readFileSync(LOCAL_JWT_PATH, 'utf8').trim();
    }
    return reviewer === '' ? jwt : reviewer;
  }

  /** `GET {host}/api/v1/namespaces/{ns}` and the selector over its labels (namespace_validator.go). */
  async function namespaceMatches(namespace: string, selector: string, jwt: string, cfg: KubernetesConfig) {
    const url = new URL(`${cfg.kubernetesHost.replace(/\/$/, '')}/api/v1/namespaces/${namespace}`);
    const response = await httpRequest(url, {
      method: 'GET',
      dispatcher: cfg.agent,
      headers: { authorization: `Bearer ${reviewerOf(jwt, cfg)}`, accept: 'application/json' },
      headersTimeout: TOKEN_REVIEW_TIMEOUT_MS,
      bodyTimeout: TOKEN_REVIEW_TIMEOUT_MS,
    });
    const text = await response.body.text();
    if (response.statusCode !== 200) throw new Error(`failed to get namespace (code ${response.statusCode})`);
    const labels = ((JSON.parse(text) as { metadata?: { labels?: Record<string, string> } }).metadata
      ?.labels ?? {}) as Record<string, string>;
    return selectorMatches(parseNamespaceSelector(selector), labels);
  }

  async function review(
    jwt: string,
    claims: ServiceAccountClaims,
    role: KubernetesRole,
    cfg: KubernetesConfig,
  ) {
    const reviewer = reviewerOf(jwt, cfg);
    const audiences = role.audience !== '' ? [role.audience] : claims.audiences;
    const spec: Record<string, unknown> = { token: jwt };
    if (audiences.length > 0) spec.audiences = audiences;
    const url = new URL(
      `${cfg.kubernetesHost.replace(/\/$/, '')}/apis/authentication.k8s.io/v1/tokenreviews`,
    );
    const response = await httpRequest(url, {
      method: 'POST',
      dispatcher: cfg.agent,
      headers: {
        authorization: `Bearer ${reviewer}`,
        'content-type': 'application/json',
        accept: 'application/json',
      },
      body: JSON.stringify({ metadata: {}, spec, status: { user: {} } }),
      headersTimeout: TOKEN_REVIEW_TIMEOUT_MS,
      bodyTimeout: TOKEN_REVIEW_TIMEOUT_MS,
    });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of response.body) {
      size += chunk.length;
      if (size > MAX_REVIEW_BYTES) throw new Error('TokenReview response too large');
      chunks.push(chunk as Buffer);
    }
    if (response.statusCode < 200 || response.statusCode > 206) {
      throw new Error(`TokenReview answered ${response.statusCode}`);
    }
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
    const status = body.status;
    // OpenBao first reads the body as a metav1.Status: unless `status` is an object, it must be "Success".
    if (status === null || typeof status !== 'object') {
      if (status !== 'Success') throw new Error('TokenReview answered with a Status that is not Success');
      throw new Error('TokenReview answered without a review status');
    }
    const result = status as {
      error?: string;
      authenticated?: boolean;
      audiences?: string[];
      user?: { username?: string; uid?: string };
    };
    if (result.error) throw new Error(`TokenReview error: ${result.error}`);
    if (result.authenticated !== true) throw new Error('TokenReview did not authenticate the token');
    if (audiences.length > 0 && !(result.audiences ?? []).some((aud) => audiences.includes(aud))) {
      throw new Error('TokenReview audiences do not overlap the requested ones');
    }
    const parts = (result.user?.username ?? '').split(':');
    if (parts.length !== 4 || parts[0] !== 'system' || parts[1] !== 'serviceaccount') {
      throw new Error('TokenReview username is not a service account');
    }
    if (parts[2] !== claims.namespace || parts[3] !== claims.name || result.user?.uid !== claims.uid) {
      throw new Error('TokenReview identity does not match the JWT claims');
    }
  }

  async function login(body: Record<string, unknown>): Promise<BaoResponse> {
    const roleName = typeof body.role === 'string' ? body.role.toLowerCase() : '';
    const jwt = typeof body.jwt === 'string' ? body.jwt : '';
    if (roleName === '') throw badRequest('missing role');
    if (jwt === '') throw badRequest('missing jwt');
    const role = roles.get(roleName);
    if (!role) throw badRequest(`invalid role name "${roleName}"`);
    if (!config) throw new BaoError(500, ['could not load backend configuration']);
    const claims = parseJwt(jwt, role);
    if (!role.boundNames.some((pattern) => globMatch(pattern, claims.name))) {
      throw new BaoError(403, ['service account name not authorized']);
    }
    if (!role.boundNamespaces.some((pattern) => globMatch(pattern, claims.namespace))) {
      if (role.namespaceSelector === '') throw new BaoError(403, ['namespace not authorized']);
      let matched: boolean;
      try {
        matched = await namespaceMatches(claims.namespace, role.namespaceSelector, jwt, config);
      } catch (err) {
        throw new BaoError(403, [`namespace not authorized err=${(err as Error).message}`]);
      }
      if (!matched) throw new BaoError(403, ['namespace not authorized']);
    }
    try {
      await review(jwt, claims, role, config);
    } catch (err) {
      deps.logger.debug(
        { event: 'openbao_dev.k8s_login_denied', reason: (err as Error).message },
        'login denied',
      );
      throw permissionDenied();
    }
    const entry = deps.tokens.create({
      namespace: deps.namespace,
      policies: role.policies,
      ttlSeconds: role.ttlSeconds,
      displayName: `kubernetes-${claims.namespace}-${claims.name}`,
      meta: {
        role: roleName,
        service_account_name: claims.name,
        service_account_namespace: claims.namespace,
        service_account_secret_name: claims.secretName,
        service_account_uid: claims.uid,
      },
      path: 'auth/kubernetes/login',
      noDefaultPolicy: role.noDefaultPolicy,
    });
    return { kind: 'data', auth: authBlock(entry) };
  }

  return {
    isUnauthenticated: (path) => path === 'login',
    async close() {
      await config?.agent?.close();
    },
    async handle(request: BaoRequest) {
      const { operation, body } = request;
      const path = request.mountPath.replace(/\/$/, '');
      const write = operation === 'create' || operation === 'update';
      if (path === 'login') {
        if (!write) throw unsupportedOperation(true);
        return login(body);
      }
      if (path === 'config') {
        if (write) return writeConfig(body);
        if (operation !== 'read') throw unsupportedOperation();
        if (!config) throw notFoundEmpty();
        return ok({
          disable_iss_validation: true,
          disable_local_ca_jwt: config.disableLocalCaJwt,
          issuer: '',
          kubernetes_ca_cert: config.kubernetesCaCert,
          kubernetes_host: config.kubernetesHost,
          pem_keys: [],
          token_reviewer_jwt_set: config.tokenReviewerJwt !== '',
        });
      }
      if (path === 'role' && operation === 'list') {
        if (roles.size === 0) throw notFoundEmpty();
        return ok({ keys: [...roles.keys()].sort() });
      }
      if (path.startsWith('role/')) {
        const name = path.slice('role/'.length).toLowerCase();
        if (name === '' || name.includes('/')) throw unsupportedPath();
        if (write) return writeRole(name, body);
        if (operation === 'delete') {
          roles.delete(name);
          return noContent();
        }
        if (operation !== 'read') throw unsupportedOperation();
        const role = roles.get(name);
        if (!role) throw notFoundEmpty();
        const data: Record<string, unknown> = {
          alias_name_source: role.aliasNameSource,
          bound_service_account_names: role.boundNames,
          bound_service_account_namespace_selector: role.namespaceSelector,
          bound_service_account_namespaces: role.boundNamespaces,
          token_bound_cidrs: [],
          token_explicit_max_ttl: 0,
          token_max_ttl: 0,
          token_no_default_policy: role.noDefaultPolicy,
          token_num_uses: 0,
          token_period: 0,
          token_policies: role.policies,
          token_strictly_bind_ip: false,
          token_ttl: role.ttlSeconds,
          token_type: 'default',
        };
        if (role.audience !== '') data.audience = role.audience;
        return ok(data);
      }
      throw unsupportedPath();
    },
  };
}

interface LabelSelector {
  readonly matchLabels: Record<string, string>;
  readonly matchExpressions: Array<{ key: string; operator: string; values: string[] }>;
}

/** A metav1.LabelSelector in JSON or YAML, as the role takes it; 400 when it does not parse. */
function parseNamespaceSelector(text: string): LabelSelector {
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (err) {
    throw badRequest(
      `invalid "bound_service_account_namespace_selector" configured: ${(err as Error).message}`,
    );
  }
  const raw = (value ?? {}) as { matchLabels?: unknown; matchExpressions?: unknown };
  const matchLabels = (
    typeof raw.matchLabels === 'object' && raw.matchLabels ? raw.matchLabels : {}
  ) as Record<string, string>;
  const matchExpressions = (Array.isArray(raw.matchExpressions) ? raw.matchExpressions : []) as Array<{
    key: string;
    operator: string;
    values?: string[];
  }>;
  for (const e of matchExpressions)
    if (!['In', 'NotIn', 'Exists', 'DoesNotExist'].includes(e.operator))
      throw badRequest(
        `invalid "bound_service_account_namespace_selector" configured: operator ${e.operator}`,
      );
  return { matchLabels, matchExpressions: matchExpressions.map((e) => ({ ...e, values: e.values ?? [] })) };
}

/** Kubernetes label selector semantics (apimachinery labels.Selector): every requirement must hold. */
function selectorMatches(selector: LabelSelector, labels: Record<string, string>): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels)) if (labels[key] !== value) return false;
  for (const { key, operator, values } of selector.matchExpressions) {
    const has = Object.hasOwn(labels, key);
    if (operator === 'In' && !(has && values.includes(labels[key]))) return false;
    if (operator === 'NotIn' && has && values.includes(labels[key])) return false;
    if (operator === 'Exists' && !has) return false;
    if (operator === 'DoesNotExist' && has) return false;
  }
  return true;
}
