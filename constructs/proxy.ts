/**
 * The charts' `proxy` block as construct props, shared by `RegisteredCluster` (operator chart) and `Bridge`
 * (bridge chart). The URL rule mirrors the charts' values.schema.json; test/charts proves both accept the same.
 */
import type { ChartSetting } from './helm-chart.js';
import {
  ConstructRefusal,
  isUnresolved,
  requireDnsSubdomain,
  requireMatch,
  requireNonEmpty,
} from './validation.js';

/** How the operator or the bridge reaches the outside through an HTTP proxy. Nothing here is secret. */
export interface ProxyProps {
  /**
   * HTTP proxy for the beacon only (`--beacon-proxy`), e.g. `http://proxy.corp.example:3128`, or `'none'` to
   * dial the beacon directly whatever `httpsProxy` says. No credentials (see `credentialsSecret`).
   * @default - the beacon follows `httpsProxy` and `noProxy`
   */
  readonly beaconProxy?: string;
  /**
   * `HTTPS_PROXY` of the container, e.g. `http://proxy.corp.example:3128`: the beacon (unless `beaconProxy` is
   * set) and, for the bridge, an https:// OpenBao go through it. No credentials (see `credentialsSecret`).
   * @default - no proxy
   */
  readonly httpsProxy?: string;
  /** `NO_PROXY` entries: names (each covers its subdomains), IP addresses, CIDR blocks. @default - none */
  readonly noProxy?: readonly string[];
  /**
   * A Secret in the release namespace whose key holds the whole proxy URL with its Basic credentials; it becomes
   * `HTTPS_PROXY`, so the credentials never land in `cdktf.out` or state. @default - none
   */
  readonly credentialsSecret?: { readonly name: string; readonly key?: string };
}

/** `http(s)://host[:port]` or `host:port`, no credentials, path or query: what the charts' schema accepts. */
const PROXY_URL = /^(https?:\/\/)?[A-Za-z0-9.\-[\]:]+(:[0-9]{1,5})?\/?$/u;
const NO_PROXY_ENTRY = /^[^@\s,]+$/u;

/** Whether a proxy URL passes the charts' schema (`proxy.httpsProxy`; `proxy.beaconProxy` also takes `none`). */
export function isChartProxyUrl(value: string): boolean {
  return PROXY_URL.test(value);
}

export function validateProxyProps(prop: string, proxy: ProxyProps | undefined): void {
  if (proxy === undefined) return;
  for (const key of ['beaconProxy', 'httpsProxy'] as const) {
    const value = proxy[key];
    if (value === undefined || isUnresolved(value)) continue;
    if (/^[^/]*\/\/[^/]*@|^[^/@]*@/u.test(value)) {
      throw new ConstructRefusal(
        `'${prop}.${key}' must not carry credentials; put the URL with credentials in a Secret and name it in '${prop}.credentialsSecret'`,
      );
    }
    if (key === 'beaconProxy' && value === 'none') continue;
    requireMatch(
      `${prop}.${key}`,
      value,
      PROXY_URL,
      'must be an HTTP proxy URL such as http://proxy.corp.example:3128',
    );
  }
  if (proxy.httpsProxy !== undefined && proxy.credentialsSecret !== undefined) {
    throw new ConstructRefusal(
      `'${prop}.httpsProxy' is not supported if '${prop}.credentialsSecret' is used; the Secret's URL is HTTPS_PROXY`,
    );
  }
  for (const [index, entry] of (proxy.noProxy ?? []).entries()) {
    requireMatch(
      `${prop}.noProxy[${index}]`,
      entry,
      NO_PROXY_ENTRY,
      'must be one name, IP address or CIDR block',
    );
  }
  if (proxy.credentialsSecret !== undefined) {
    if (proxy.credentialsSecret.name === undefined)
      throw new ConstructRefusal(`'${prop}.credentialsSecret.name' is required`);
    requireDnsSubdomain(`${prop}.credentialsSecret.name`, proxy.credentialsSecret.name);
    requireNonEmpty(`${prop}.credentialsSecret.key`, proxy.credentialsSecret.key);
  }
}

/** The chart `--set` values for the props (only those given). */
export function proxyChartSettings(proxy: ProxyProps | undefined): ChartSetting[] {
  if (proxy === undefined) return [];
  const settings: ChartSetting[] = [];
  const add = (name: string, value: string | undefined) => {
    if (value !== undefined) settings.push({ name: `proxy.${name}`, value });
  };
  add('beaconProxy', proxy.beaconProxy);
  add('httpsProxy', proxy.httpsProxy);
  add('noProxy', proxy.noProxy === undefined ? undefined : proxy.noProxy.join(','));
  add('credentialsSecret.name', proxy.credentialsSecret?.name);
  add('credentialsSecret.key', proxy.credentialsSecret?.key);
  return settings;
}

/** The chart's `proxy` values as an object, for `RegisteredCluster.operatorValues` (only what was given). */
export function proxyChartValues(proxy: ProxyProps): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  if (proxy.beaconProxy !== undefined) values.beaconProxy = proxy.beaconProxy;
  if (proxy.httpsProxy !== undefined) values.httpsProxy = proxy.httpsProxy;
  if (proxy.noProxy !== undefined) values.noProxy = proxy.noProxy.join(',');
  if (proxy.credentialsSecret !== undefined) {
    values.credentialsSecret = {
      name: proxy.credentialsSecret.name,
      ...(proxy.credentialsSecret.key === undefined ? {} : { key: proxy.credentialsSecret.key }),
    };
  }
  return values;
}
