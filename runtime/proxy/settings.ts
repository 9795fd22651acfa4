/**
 * Which HTTP proxy an outbound connection takes. One rule for the whole process: the beacon dialer (broker and
 * bridge) and the OpenBao client (CLI, provider, bridge) both decide here.
 *
 * The rule, as curl applies it (curl(1) "ENVIRONMENT"; libcurl CURLOPT_PROXY and CURLOPT_NOPROXY):
 * - `https_proxy` / `HTTPS_PROXY` for TLS destinations (the beacon, on every door; https:// OpenBao),
 *   `http_proxy` / `HTTP_PROXY` for http:// destinations only. Neither falls back to the other (curl and Go's
 *   golang.org/x/net/http/httpproxy agree; undici's EnvHttpProxyAgent would use http_proxy for https too, which
 *   is why the OpenBao client takes its proxy from here and not from undici's own environment reading).
 * - The lower-case variable wins when both are set (curl; undici's EnvHttpProxyAgent). Go reads the upper case
 *   first, so set only one spelling when Go tools share the environment.
 * - An empty variable counts as unset.
 * - `no_proxy` / `NO_PROXY` (lower case first): entries separated by commas or whitespace. `*` alone: no proxy at
 *   all. A name matches itself and every subdomain (a leading `.` or `*.` is ignored); `name:port` only that
 *   port; an IP address only itself; a CIDR block (`10.0.0.0/8`, `fd00::/8`) every IP-literal destination inside
 *   it (curl >= 7.86 and Go do; undici does not). Names are never resolved for the check, and loopback is not
 *   exempt by itself (curl and undici proxy it; Go does not).
 * - A proxy URL is `http://[user:password@]host[:port]` or `https://...` (TLS to the proxy). Without a scheme it is
 *   http:// (curl). The port defaults to 80 / 443 as in any URL (curl's default is 1080: always write the port).
 *   Credentials are percent-decoded and sent as `Proxy-Authorization: Basic`; they never appear in a log line or
 *   an error message.
 */
import { BlockList, isIP } from 'node:net';
import { CloudtaserError } from '../core/errors.js';

/** One HTTP proxy. Its credentials stay private: `display`, `toJSON()` and `toString()` never include them. */
export class ProxyEndpoint {
  /** `scheme://host:port` without credentials: the only form logs and messages use. */
  readonly display: string;
  readonly protocol: 'http:' | 'https:';
  /** Host name or IP, without brackets. */
  readonly host: string;
  readonly port: number;
  /** Where the URL came from (`--beacon-proxy`, `https_proxy`, `HTTPS_PROXY`, ...), for messages. */
  readonly source: string;
  readonly #authorization: string | undefined;

  constructor(fields: {
    protocol: 'http:' | 'https:';
    host: string;
    port: number;
    source: string;
    authorization?: string;
  }) {
    this.protocol = fields.protocol;
    this.host = fields.host;
    this.port = fields.port;
    this.source = fields.source;
    this.#authorization = fields.authorization;
    this.display = `${fields.protocol}//${authority(fields.host, fields.port)}`;
  }

  /** Whether the URL carried credentials (which are never shown). */
  get hasCredentials(): boolean {
    return this.#authorization !== undefined;
  }

  /** The `Proxy-Authorization` header value, for the CONNECT request only. Never log it. */
  authorization(): string | undefined {
    return this.#authorization;
  }

  /** `http://proxy.corp:3128 (HTTPS_PROXY)`: how messages name the proxy. */
  describe(): string {
    return `${this.display} (${this.source})`;
  }

  toJSON(): string {
    return this.display;
  }

  toString(): string {
    return this.display;
  }
}

/** `host:port` as an HTTP authority (IPv6 in brackets). */
export function authority(host: string, port: number): string {
  return `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}

/** The value with any `user:password@` replaced, so a malformed URL can be quoted in an error. */
export function redactProxyUrl(value: string): string {
  return value.replace(/^([^/]*\/\/)?[^/@]*@/, (_match, scheme: string | undefined) => `${scheme ?? ''}***@`);
}

/**
 * Parses a proxy URL (see the rule at the top of this file). `source` names the flag or variable in errors.
 * Refuses SOCKS and anything with a path, query or fragment, so a typo fails at start instead of at first dial.
 */
export function parseProxyUrl(value: string, source: string): ProxyEndpoint {
  const text = value.trim();
  const invalid = (why: string) =>
    new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `${source} ${JSON.stringify(redactProxyUrl(text).slice(0, 200))} is not an HTTP proxy URL: ${why}; use http://[user:password@]host:port`,
      { details: { source } },
    );
  if (text === '') throw invalid('it is empty');
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text)?.[1]?.toLowerCase();
  if (scheme !== undefined && scheme !== 'http' && scheme !== 'https') {
    throw invalid(
      scheme.startsWith('socks')
        ? 'SOCKS proxies are not supported, only HTTP proxies that speak CONNECT'
        : `scheme '${scheme}' is not http or https`,
    );
  }
  let url: URL;
  try {
    url = new URL(scheme === undefined ? `http://${text}` : text);
  } catch {
    throw invalid('it does not parse as a URL');
  }
  if (url.pathname !== '' && url.pathname !== '/') throw invalid('a proxy URL has no path');
  if (url.search || url.hash) throw invalid('a proxy URL has no query or fragment');
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (host === '') throw invalid('the host is missing');
  const protocol = url.protocol as 'http:' | 'https:';
  const port = url.port === '' ? (protocol === 'https:' ? 443 : 80) : Number(url.port);
  let authorization: string | undefined;
  if (url.username !== '' || url.password !== '') {
    let user: string;
    let password: string;
    try {
      user = decodeURIComponent(url.username);
      password = decodeURIComponent(url.password);
    } catch {
      throw invalid('the credentials are not valid percent-encoding');
    }
    authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  }
  return new ProxyEndpoint({ protocol, host, port, source, authorization });
}

/** A parsed `NO_PROXY` list (see the rule at the top of this file). */
export class NoProxyList {
  /** Matches every destination (`*`). */
  readonly all: boolean;
  /** The variable it came from, for route descriptions. */
  readonly source: string;
  readonly #names: { name: string; port: number }[] = [];
  readonly #addresses: { address: string; port: number }[] = [];
  readonly #blocks = new BlockList();
  #hasBlocks = false;

  constructor(text: string, source = 'NO_PROXY') {
    this.source = source;
    const entries = text
      .split(/[\s,]+/)
      .map((entry) => entry.trim().toLowerCase())
      .filter(Boolean);
    this.all = entries.includes('*');
    for (const entry of entries) this.#add(entry);
  }

  get empty(): boolean {
    return !this.all && this.#names.length === 0 && this.#addresses.length === 0 && !this.#hasBlocks;
  }

  /** The entry that keeps `host:port` off the proxy, or undefined when the proxy applies. */
  match(host: string, port: number): string | undefined {
    if (this.all) return '*';
    const name = stripBrackets(host.toLowerCase()).replace(/\.$/, '');
    const family = isIP(name);
    if (family !== 0) {
      const address = normaliseIp(name);
      for (const entry of this.#addresses) {
        if (entry.address === address && (entry.port === 0 || entry.port === port))
          return entry.port ? `${entry.address}:${entry.port}` : entry.address;
      }
      if (this.#hasBlocks && this.#blocks.check(address, family === 6 ? 'ipv6' : 'ipv4'))
        return 'a CIDR entry';
      return undefined;
    }
    for (const entry of this.#names) {
      if (entry.port !== 0 && entry.port !== port) continue;
      if (name === entry.name || name.endsWith(`.${entry.name}`))
        return entry.port ? `${entry.name}:${entry.port}` : entry.name;
    }
    return undefined;
  }

  #add(entry: string): void {
    if (entry === '*') return;
    const cidr = /^([0-9a-f.:]+)\/(\d{1,3})$/.exec(entry);
    if (cidr) {
      const family = isIP(cidr[1]);
      const prefix = Number(cidr[2]);
      if (family !== 0 && prefix <= (family === 6 ? 128 : 32)) {
        this.#blocks.addSubnet(cidr[1], prefix, family === 6 ? 'ipv6' : 'ipv4');
        this.#hasBlocks = true;
      }
      return;
    }
    // `[v6]:port`, `[v6]`, bare v6, `v4:port`, `name:port`, `name`.
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
    let host = entry;
    let port = 0;
    if (bracketed) {
      host = bracketed[1];
      port = bracketed[2] ? Number(bracketed[2]) : 0;
    } else if (isIP(entry) !== 6) {
      const withPort = /^(.+):(\d+)$/.exec(entry);
      if (withPort) {
        host = withPort[1];
        port = Number(withPort[2]);
      }
    }
    if (isIP(host) !== 0) {
      this.#addresses.push({ address: normaliseIp(host), port });
      return;
    }
    const name = host.replace(/^\*?\./, '').replace(/\.$/, '');
    if (name !== '') this.#names.push({ name, port });
  }
}

/**
 * How a process reaches one kind of destination: as the environment says (the default), always through one
 * proxy (`--beacon-proxy URL`), or never through a proxy (`--beacon-proxy none`).
 */
export type ProxySetting =
  | {
      readonly kind: 'environment';
      readonly https?: ProxyEndpoint;
      readonly http?: ProxyEndpoint;
      readonly noProxy: NoProxyList;
    }
  | { readonly kind: 'fixed'; readonly proxy: ProxyEndpoint }
  | { readonly kind: 'direct'; readonly source: string };

/** Where a connection goes: `secure` is true for TLS destinations (the beacon on every door, https://). */
export interface ProxyDestination {
  readonly secure: boolean;
  readonly host: string;
  readonly port: number;
}

/** The decision for one destination: the proxy (if any) and why, in words fit for a log line. */
export interface ProxyRoute {
  readonly proxy?: ProxyEndpoint;
  readonly reason: string;
}

const ENVIRONMENT_CACHE = new Map<string, ProxySetting>();

/** The names read, lower case first (the rule at the top of this file); the first non-empty one wins. */
function firstSet(
  env: NodeJS.ProcessEnv,
  names: readonly string[],
): { name: string; value: string } | undefined {
  for (const name of names) {
    const value = env[name];
    if (value !== undefined && value.trim() !== '') return { name, value };
  }
  return undefined;
}

/**
 * The environment's proxy setting (https_proxy, HTTPS_PROXY, http_proxy, HTTP_PROXY, no_proxy, NO_PROXY).
 * A malformed proxy URL fails with CT_INVALID_ARGUMENT naming the variable. Cached per set of values.
 */
export function proxySettingFromEnvironment(env: NodeJS.ProcessEnv = process.env): ProxySetting {
  const https = firstSet(env, ['https_proxy', 'HTTPS_PROXY']);
  const http = firstSet(env, ['http_proxy', 'HTTP_PROXY']);
  const noProxy = firstSet(env, ['no_proxy', 'NO_PROXY']);
  const key = JSON.stringify([https, http, noProxy]);
  let setting = ENVIRONMENT_CACHE.get(key);
  if (!setting) {
    setting = {
      kind: 'environment',
      https: https ? parseProxyUrl(https.value, https.name) : undefined,
      http: http ? parseProxyUrl(http.value, http.name) : undefined,
      noProxy: new NoProxyList(noProxy?.value ?? '', noProxy?.name ?? 'NO_PROXY'),
    };
    if (ENVIRONMENT_CACHE.size >= 16) ENVIRONMENT_CACHE.clear();
    ENVIRONMENT_CACHE.set(key, setting);
  }
  return setting;
}

/** The value that turns the proxy off for the beacon whatever the environment says. */
export const NO_PROXY_FLAG_VALUE = 'none';

/**
 * The beacon's setting from `--beacon-proxy` (or the Helm value): a URL (always that proxy; NO_PROXY does not
 * apply to an explicit choice), `none` (always direct), or absent (the environment's rule).
 */
export function beaconProxySetting(
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  source = '--beacon-proxy',
): ProxySetting {
  const text = flag?.trim();
  if (text === undefined || text === '') return proxySettingFromEnvironment(env);
  if (text.toLowerCase() === NO_PROXY_FLAG_VALUE) return { kind: 'direct', source: `${source} none` };
  return { kind: 'fixed', proxy: parseProxyUrl(text, source) };
}

/** Decides the proxy for one destination under a setting. */
export function routeFor(setting: ProxySetting, destination: ProxyDestination): ProxyRoute {
  switch (setting.kind) {
    case 'direct':
      return { reason: setting.source };
    case 'fixed':
      return { proxy: setting.proxy, reason: setting.proxy.source };
    case 'environment': {
      const proxy = destination.secure ? setting.https : setting.http;
      if (!proxy) {
        if (destination.secure && setting.http)
          return {
            reason: `${setting.http.source} is set but applies to http:// destinations only (as in curl and Go); set HTTPS_PROXY for this one`,
          };
        return { reason: 'no proxy variable is set' };
      }
      const bypass = setting.noProxy.match(destination.host, destination.port);
      if (bypass !== undefined) return { reason: `${setting.noProxy.source} entry ${bypass}` };
      return { proxy, reason: proxy.source };
    }
  }
}

function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** One spelling per address, so `::ffff:10.0.0.1`-style and case differences do not defeat an exact entry. */
function normaliseIp(address: string): string {
  if (isIP(address) !== 6) return address;
  try {
    return new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return address.toLowerCase();
  }
}
