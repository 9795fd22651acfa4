/**
 * Name resolution for beacon addresses. Production uses DNS (every A/AAAA record); tests inject a resolver,
 * and child processes in tests read CLOUDTASER_DEV_RESOLVE. That variable is for development and tests ONLY:
 * it lets a test point one beacon name at several loopback replicas without touching /etc/hosts.
 */
import { CloudtaserError } from '../core/errors.js';

export type Resolve = (host: string) => Promise<string[]>;

export const DEV_RESOLVE_ENV = 'CLOUDTASER_DEV_RESOLVE';

/** Parses `name=ip1,ip2;name2=ip3` into a map. Refuses anything else, so a typo is not silently DNS. */
export function parseDevResolve(spec: string): Map<string, string[]> {
  const table = new Map<string, string[]>();
  for (const entry of spec
    .split(';')
    .map((part) => part.trim())
    .filter(Boolean)) {
    const [name, ips, ...rest] = entry.split('=');
    const addresses = (ips ?? '')
      .split(',')
      .map((ip) => ip.trim())
      .filter(Boolean);
    if (rest.length > 0 || !name?.trim() || addresses.length === 0) {
      throw new CloudtaserError(
        'CT_INVALID_ARGUMENT',
        `${DEV_RESOLVE_ENV} entry ${JSON.stringify(entry.slice(0, 80))} must look like name=ip1,ip2`,
      );
    }
    table.set(name.trim().toLowerCase(), addresses);
  }
  return table;
}

/**
 * The resolver a process should use: the injected one, else the dev table from the environment (names it
 * lists; other names fall through to DNS), else undefined (the dialer's own DNS lookup).
 */
export function resolverFromEnvironment(env: NodeJS.ProcessEnv = process.env): Resolve | undefined {
  const spec = env[DEV_RESOLVE_ENV];
  if (!spec) return undefined;
  const table = parseDevResolve(spec);
  return async (host: string) => {
    const listed = table.get(host.toLowerCase());
    if (listed) return [...listed];
    const { lookup } = await import('node:dns/promises');
    return (await lookup(host, { all: true })).map((record) => record.address);
  };
}
