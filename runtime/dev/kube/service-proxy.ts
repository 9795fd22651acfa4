/**
 * The API server's service proxy in the Kubernetes test server (dev-only):
 * `/api/v1/namespaces/{ns}/services/[{scheme}:]{name}[:{port}]/proxy/{path}`. The test server runs no pods, so a
 * test registers the backend a Service's endpoints would lead to. Answers follow kube-apiserver's
 * (pkg/registry/core/service/proxy.go and the ResourceLocation of its storage): a Service with no ready endpoint is
 * 503 ServiceUnavailable `no endpoints available for service "<name>"`, an unknown Service is 404, and a backend
 * that does not answer is 503 `error trying to reach service: <cause>`. RBAC: the verb of the method on the
 * subresource `services/proxy`.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import { KubeStatusError, notFound } from './status.js';

/** A parsed service-proxy path. */
export interface ServiceProxyTarget {
  readonly namespace: string;
  /** `http`, `https`, or '' when the path names none. */
  readonly scheme: string;
  readonly service: string;
  /** Port name or number, or '' when the path names none. */
  readonly port: string;
  /** The path below `/proxy`, with its leading slash. */
  readonly path: string;
}

const PROXY_PATH = /^\/api\/v1\/namespaces\/([^/]+)\/services\/([^/]+)\/proxy(\/.*)?$/;
const SCHEMES = new Set(['', 'http', 'https']);

/** The service-proxy target of a request path, or undefined when the path is not a service proxy. */
export function parseServiceProxyPath(pathname: string): ServiceProxyTarget | undefined {
  const m = PROXY_PATH.exec(pathname);
  if (m === null) return undefined;
  const namespace = decodeURIComponent(m[1]);
  // `name`, `name:port`, `scheme:name:port` or `scheme:name:` (k8s.io/apimachinery net.SplitSchemeNamePort).
  const parts = decodeURIComponent(m[2]).split(':');
  let scheme = '';
  let service: string;
  let port = '';
  if (parts.length === 1) [service] = parts;
  else if (parts.length === 2) [service, port] = parts;
  else if (parts.length === 3) [scheme, service, port] = parts;
  else throw new KubeStatusError(400, 'BadRequest', `invalid service request "${parts.join(':')}"`);
  if (service === '' || !SCHEMES.has(scheme))
    throw new KubeStatusError(400, 'BadRequest', `invalid service request "${parts.join(':')}"`);
  return { namespace, scheme, service, port, path: m[3] ?? '/' };
}

/** Where each registered Service port leads; `null` is a Service that exists with no ready endpoint. */
export class ServiceBackends {
  private readonly services = new Map<string, Map<string, string | null>>();

  register(namespace: string, service: string, port: string | number, backendUrl: string | null): void {
    const key = `${namespace}/${service}`;
    const ports = this.services.get(key) ?? new Map<string, string | null>();
    ports.set(String(port), backendUrl === null ? null : backendUrl.replace(/\/+$/, ''));
    this.services.set(key, ports);
  }

  remove(namespace: string, service: string): void {
    this.services.delete(`${namespace}/${service}`);
  }

  /** The backend URL for a target; throws the Status the API server would answer with. */
  resolve(target: ServiceProxyTarget): string {
    const ports = this.services.get(`${target.namespace}/${target.service}`);
    if (ports === undefined) throw notFound('services', target.service);
    // Without a port, a Service with exactly one port uses it, as the API server's unnamed-port lookup finds it.
    const port = target.port === '' && ports.size === 1 ? [...ports.keys()][0] : target.port;
    const backend = ports.get(port);
    if (backend === undefined || backend === null)
      throw new KubeStatusError(
        503,
        'ServiceUnavailable',
        `no endpoints available for service "${target.service}"`,
      );
    return backend;
  }
}

/** Forwards one request to `backend` and copies its answer back; an unreachable backend is a 503 Status. */
export async function forwardToService(
  req: IncomingMessage,
  res: ServerResponse,
  body: Buffer,
  backend: string,
  target: ServiceProxyTarget,
  search: string,
): Promise<void> {
  const base = new URL(backend);
  if (target.scheme !== '') base.protocol = `${target.scheme}:`;
  const url = new URL(`${base.pathname.replace(/\/+$/, '')}${target.path}${search}`, base);
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    // The API server's credentials are for the API server, never for the backend.
    if (value === undefined || name === 'authorization' || name === 'host' || name === 'connection') continue;
    headers[name] = value;
  }
  const send = url.protocol === 'https:' ? https.request : http.request;
  await new Promise<void>((resolve) => {
    const upstream = send(
      url,
      // The API server does not verify a service's serving certificate on this path either.
      { method: req.method, headers, rejectUnauthorized: false, timeout: 10_000 },
      (answer) => {
        const copied: Record<string, string | string[]> = {};
        for (const [name, value] of Object.entries(answer.headers))
          if (value !== undefined && name !== 'connection' && name !== 'transfer-encoding')
            copied[name] = value;
        res.writeHead(answer.statusCode ?? 502, copied);
        answer.pipe(res);
        answer.on('end', resolve);
        answer.on('error', () => {
          res.destroy();
          resolve();
        });
      },
    );
    upstream.on('timeout', () => upstream.destroy(new Error('i/o timeout')));
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (!res.headersSent) {
        const status = new KubeStatusError(
          503,
          'ServiceUnavailable',
          `error trying to reach service: ${err.code ? `dial tcp ${url.host}: ${err.code}` : err.message}`,
        );
        const text = JSON.stringify(status.body);
        res.writeHead(503, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        res.end(text);
      } else res.destroy();
      resolve();
    });
    upstream.end(body);
  });
}
