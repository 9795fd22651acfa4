/**
 * How a failed Kubernetes API call becomes a CloudtaserError with a stable CT_KUBE_* code and a message that says
 * what to do: HTTP statuses, transport and TLS failures, proxy failures and credential plugins that cannot run.
 * Bearer tokens never reach these messages.
 */
import { CloudtaserError, type ErrorCode } from '../core/index.js';
import { proxyFailure } from '../proxy/errors.js';
import { parseProxyUrl } from '../proxy/settings.js';
import type { KubeConfig } from './client-node.js';
import { describePermission, type KubeCall } from './permissions.js';

/** What every message names: the server, where the connection came from, and the kubeconfig behind it. */
export interface KubeErrorContext {
  readonly server: string;
  /** Says where the connection came from (never secret). */
  readonly description: string;
  readonly kubeConfig: KubeConfig;
}

/** The request an HTTP status answered, for the message. */
export interface FailedCall {
  readonly method: string;
  readonly path: string;
  /** The call's row in KUBE_CALLS: what RBAC must allow, said in the Forbidden message. */
  readonly call: KubeCall;
  /** The object named, for that message. */
  readonly target?: { readonly name?: string; readonly namespace?: string };
}

/** Socket errors that mean the server is not reachable from here (as opposed to TLS or protocol failures). */
const NETWORK_ERRORS = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'EPIPE',
  'ECONNABORTED',
]);

export function cancelledError(ctx: KubeErrorContext, cause: unknown): CloudtaserError {
  return new CloudtaserError(
    'CT_CANCELLED',
    `request to the Kubernetes API server at ${ctx.server} was cancelled`,
    { cause },
  );
}

export function credentialError(ctx: KubeErrorContext, err: unknown): CloudtaserError {
  const error = err as NodeJS.ErrnoException & { path?: string; spawnargs?: string[] };
  const user = ctx.kubeConfig.getCurrentUser();
  const exec = (user?.exec ?? undefined) as { command?: string; installHint?: string } | undefined;
  if (exec?.command !== undefined) {
    if (error.code === 'ENOENT' || error.code === 'EACCES') {
      const hint = exec.installHint
        ? ` ${exec.installHint.trim()}`
        : ' Install it or fix the command path in the kubeconfig or exec block.';
      return new CloudtaserError(
        'CT_KUBE_CONFIG',
        `exec credential plugin ${JSON.stringify(exec.command)} could not be run (${error.code}) for ${ctx.description}.${hint}`,
        {
          cause: err,
          details: { command: exec.command },
        },
      );
    }
    return new CloudtaserError(
      'CT_KUBE_CREDENTIAL_PLUGIN',
      `exec credential plugin ${JSON.stringify(exec.command)} failed for ${ctx.description}: ${firstLine(error.message)}; log in again with the cloud CLI (gcloud auth login, aws sso login, az login) and retry`,
      { cause: err, details: { command: exec.command } },
    );
  }
  if (/HTTP protocol is not allowed/.test(error.message ?? '')) {
    return new CloudtaserError(
      'CT_KUBE_CONFIG',
      `the server ${ctx.server} uses http://; use https:// or set insecure-skip-tls-verify explicitly (${ctx.description})`,
      { cause: err },
    );
  }
  return new CloudtaserError(
    'CT_KUBE_CONFIG',
    `credentials for ${ctx.description} could not be loaded: ${firstLine(error.message)}`,
    {
      cause: err,
      details: error.path === undefined ? {} : { path: error.path },
    },
  );
}

export function transportError(ctx: KubeErrorContext, err: unknown): CloudtaserError {
  const proxied = proxyError(ctx, err);
  if (proxied) return proxied;
  const error = err as NodeJS.ErrnoException;
  const code = error.code ?? '';
  if (NETWORK_ERRORS.has(code)) {
    return new CloudtaserError(
      'CT_KUBE_UNREACHABLE',
      `the Kubernetes API server at ${ctx.server} could not be reached (${code}); check the server address in ${ctx.description} and that the cluster is running`,
      {
        cause: err,
        details: { server: ctx.server, errno: code },
      },
    );
  }
  if (
    /CERT|SSL|TLS|SIGNATURE|ALTNAME|EPROTO/i.test(code) ||
    /certificate|ssl|tls/i.test(error.message ?? '')
  ) {
    return new CloudtaserError(
      'CT_KUBE_TLS',
      `TLS with the Kubernetes API server at ${ctx.server} failed (${code || firstLine(error.message)}); check the cluster CA certificate in ${ctx.description}`,
      {
        cause: err,
        details: { server: ctx.server, errno: code },
      },
    );
  }
  return new CloudtaserError(
    'CT_KUBE_UNREACHABLE',
    `the Kubernetes API server at ${ctx.server} could not be reached: ${firstLine(error.message)}`,
    {
      cause: err,
      details: { server: ctx.server, errno: code },
    },
  );
}

/** With the kubeconfig's http(s) proxy-url (client-node tunnels through it), a failure the proxy caused. */
function proxyError(ctx: KubeErrorContext, err: unknown): CloudtaserError | undefined {
  const proxyUrl = ctx.kubeConfig.getCurrentCluster()?.proxyUrl;
  if (!proxyUrl || !/^https?:\/\//i.test(proxyUrl)) return undefined;
  try {
    return proxyFailure(err, parseProxyUrl(proxyUrl, 'the kubeconfig proxy-url'), new URL(ctx.server).host);
  } catch {
    return undefined; // a proxy-url we cannot read: the plain transport error says what happened
  }
}

export function statusError(
  ctx: KubeErrorContext,
  status: number,
  body: unknown,
  spec: FailedCall,
): CloudtaserError {
  const kubeStatus = (typeof body === 'object' && body !== null ? body : {}) as {
    message?: unknown;
    reason?: unknown;
  };
  const serverMessage =
    typeof kubeStatus.message === 'string' ? kubeStatus.message.slice(0, 500) : `HTTP ${status}`;
  const details = {
    server: ctx.server,
    status,
    reason: typeof kubeStatus.reason === 'string' ? kubeStatus.reason : undefined,
  };
  const make = (code: ErrorCode, message: string) => new CloudtaserError(code, message, { details });
  switch (status) {
    case 401:
      return make(
        'CT_KUBE_UNAUTHORIZED',
        `the Kubernetes API server at ${ctx.server} rejected the credentials of ${ctx.description} (401 Unauthorized): the token has expired or is invalid, or the exec plugin returned a bad token; refresh the credentials and retry`,
      );
    case 403:
      return make(
        'CT_KUBE_FORBIDDEN',
        `${serverMessage}; RBAC must allow: ${describePermission(spec.call, spec.target)}`,
      );
    case 404:
      return make('CT_KUBE_NOT_FOUND', serverMessage);
    case 409:
      return make('CT_KUBE_CONFLICT', `${serverMessage}; read the object again and retry`);
    default:
      return make(
        'CT_KUBE_ERROR',
        `the Kubernetes API server at ${ctx.server} answered ${spec.method} ${spec.path} with ${status}: ${serverMessage}`,
      );
  }
}
export function firstLine(text: string | undefined): string {
  return (text ?? '').trim().split('\n')[0].slice(0, 300) || 'no message';
}
