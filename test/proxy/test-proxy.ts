/**
 * A real HTTP proxy for the tests: proxy-chain (Apify's Node proxy server, a dev dependency), started on loopback
 * port 0 with the policies corporate proxies apply: Basic authentication, ports it refuses, a refusal of IP-literal
 * destinations (proxies that tunnel to names only), and its own name resolution. Every request it receives is
 * logged, so a test can prove which destinations were asked for.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP } from 'node:net';
import { RequestError, Server } from 'proxy-chain';

export interface ProxyLogEntry {
  /** `CONNECT` for tunnels, the method for plain HTTP requests. */
  readonly method: string;
  readonly host: string;
  readonly port: number;
  /** What the proxy answered before tunnelling: 200 (tunnel opened), 403, 407. */
  readonly outcome: number;
  readonly username: string;
}

export interface TestProxyPolicy {
  /** Required Basic credentials. @default none required */
  credentials?: { username: string; password: string };
  /** Destination ports answered with 403. @default none */
  refusePorts?: number[];
  /** Destination addresses (IP literals) answered with 403. @default none */
  refuseHosts?: string[];
  /** Answer 403 to every IP-literal destination: a proxy that tunnels to names only. @default false */
  refuseIpLiterals?: boolean;
  /** Names the proxy resolves itself (its own DNS view), e.g. { 'beacon.test': '127.0.0.1' }. */
  hosts?: Record<string, string>;
}

export interface TestProxy {
  /** `http://127.0.0.1:<port>` (no credentials). */
  readonly url: string;
  readonly port: number;
  /** Mutable: tests change the policy between dials. */
  readonly policy: TestProxyPolicy;
  readonly log: ProxyLogEntry[];
  /** `http://user:password@127.0.0.1:<port>`. */
  urlWith(username: string, password: string): string;
  /** Log entries for tunnels to `host:port` (any outcome). */
  tunnelsTo(host: string, port: number): ProxyLogEntry[];
  close(): Promise<void>;
}

export async function startTestProxy(policy: TestProxyPolicy = {}): Promise<TestProxy> {
  const log: ProxyLogEntry[] = [];
  const lookup = (
    hostname: string,
    options: { all?: boolean; family?: number } | number,
    callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
  ) => {
    const mapped = policy.hosts?.[hostname.toLowerCase()];
    const all = typeof options === 'object' && options.all;
    if (mapped === undefined) {
      dnsLookup(hostname, (typeof options === 'object' ? options : {}) as object, callback as never);
      return;
    }
    const family = isIP(mapped);
    if (all) callback(null, [{ address: mapped, family }]);
    else callback(null, mapped, family);
  };
  const server = new Server({
    host: '127.0.0.1',
    port: 0,
    prepareRequestFunction: ({ request, username, password, hostname, port }) => {
      const entry = { method: request.method ?? '', host: hostname, port: Number(port), username };
      const required = policy.credentials;
      if (required && (username !== required.username || password !== required.password)) {
        log.push({ ...entry, outcome: 407 });
        return { requestAuthentication: true, failMsg: 'proxy authentication required' };
      }
      const bareHost = hostname.replace(/^\[|\]$/g, '');
      if (
        policy.refusePorts?.includes(Number(port)) ||
        policy.refuseHosts?.includes(bareHost) ||
        (policy.refuseIpLiterals && isIP(bareHost) !== 0)
      ) {
        log.push({ ...entry, outcome: 403 });
        throw new RequestError(`CONNECT to ${hostname}:${port} is not allowed by policy`, 403);
      }
      log.push({ ...entry, outcome: 200 });
      return { dnsLookup: lookup as never };
    },
  });
  await server.listen();
  const url = `http://127.0.0.1:${server.port}`;
  return {
    url,
    port: server.port,
    policy,
    log,
    urlWith: (username, password) =>
      `http://${encodeURIComponent(username)}:${encodeURIComponent(password)}@127.0.0.1:${server.port}`,
    tunnelsTo: (host, port) =>
      log.filter((entry) => entry.method === 'CONNECT' && entry.host === host && entry.port === port),
    close: () => server.close(true),
  };
}
