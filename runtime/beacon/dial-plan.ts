/**
 * Address resolution and replica fan-out: every A/AAAA record of a beacon name is a replica to dial, unless an
 * HTTP proxy must resolve the name itself; then the dial goes by name and one log line says the fan-out is
 * reduced (and one more when it is whole again). The broker and the bridge both plan and report here.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { CloudtaserError, type Logger, silentLogger } from '../core/index.js';
import {
  authority,
  type ProxyRoute,
  type ProxySetting,
  proxySettingFromEnvironment,
  routeFor,
} from '../proxy/settings.js';
import { type BeaconTarget, parseBeaconAddress } from './address.js';

/** Resolves a host name to every address (A and AAAA); injectable for tests and custom discovery. */
export type BeaconResolver = (host: string) => Promise<string[]>;

export const systemResolver: BeaconResolver = async (host) =>
  (await dnsLookup(host, { all: true, verbatim: true })).map((entry) => entry.address);

/** Parses the address and resolves its host to every replica IP (an IP literal resolves to itself). */
export async function resolveBeacon(
  address: string,
  resolve: BeaconResolver = systemResolver,
): Promise<{ target: BeaconTarget; ips: string[] }> {
  const target = parseBeaconAddress(address);
  if (isIP(target.host)) return { target, ips: [target.host] };
  let ips: string[];
  try {
    ips = [...new Set(await resolve(target.host))];
  } catch (err) {
    throw new CloudtaserError(
      'CT_BEACON_UNREACHABLE',
      `beacon name ${target.host} did not resolve: ${String(err)}`,
      {
        cause: err,
      },
    );
  }
  if (ips.length === 0) {
    throw new CloudtaserError('CT_BEACON_UNREACHABLE', `beacon name ${target.host} resolved to no address`);
  }
  return { target, ips };
}

/** How one beacon address is dialled: the target, the proxy decision and the replica addresses. */
export interface BeaconDialPlan {
  /** The address as configured (`host:port`, `wss://...`). */
  readonly address: string;
  readonly target: BeaconTarget;
  /** Which HTTP proxy carries the connections, or why none does. */
  readonly route: ProxyRoute;
  /** Every A/AAAA record of the name; the name itself when only the proxy can resolve it. */
  readonly replicas: readonly string[];
  /** Set when the plan dials by name instead of every replica, saying why. */
  readonly reducedBecause?: string;
}

export interface BeaconPlanOptions {
  readonly resolve?: BeaconResolver;
  /**
   * How the beacon is reached: through a fixed HTTP proxy, never through one, or as HTTPS_PROXY/NO_PROXY say.
   * Every door is a TLS destination for the rule (the plain door too: it shares the beacon's TLS port).
   * @default proxySettingFromEnvironment()
   */
  readonly proxy?: ProxySetting;
}

/**
 * Decides how to reach one beacon address. Directly, a name that does not resolve is an error. Through a proxy
 * this host may not be able to resolve the name at all (the proxy resolves it): the plan then dials by name and
 * says so in `reducedBecause`.
 */
export async function planBeaconDial(
  address: string,
  options: BeaconPlanOptions = {},
): Promise<BeaconDialPlan> {
  const target = parseBeaconAddress(address);
  const route = routeFor(options.proxy ?? proxySettingFromEnvironment(), {
    secure: true,
    host: target.host,
    port: target.port,
  });
  if (!route.proxy || isIP(target.host)) {
    const { ips } = await resolveBeacon(address, options.resolve);
    return { address, target, route, replicas: ips };
  }
  try {
    const { ips } = await resolveBeacon(address, options.resolve);
    return { address, target, route, replicas: ips };
  } catch (err) {
    return {
      address,
      target,
      route,
      replicas: [target.host],
      reducedBecause: `this host cannot resolve ${target.host} (${(err as Error).message}), so the proxy resolves it`,
    };
  }
}

/**
 * Addresses (per proxy) currently dialled by name, with the reason that was logged; one memory per logger, so
 * each broker or bridge in a process reports for itself.
 */
const reducedFanOut = new WeakMap<object, Map<string, string>>();
const NO_LOGGER = {};

export function fanOutMemory(logger: Logger | undefined): Map<string, string> {
  const owner = logger ?? NO_LOGGER;
  let memory = reducedFanOut.get(owner);
  if (!memory) {
    memory = new Map();
    reducedFanOut.set(owner, memory);
  }
  return memory;
}

/**
 * Logs once when a beacon address starts being dialled by name through the proxy instead of on every replica,
 * and once when every replica is reachable again. Both the broker (dialBeacon) and the bridge report here.
 */
export function reportFanOut(
  logger: Logger | undefined,
  plan: BeaconDialPlan,
  reducedBecause: string | undefined,
): void {
  const key = fanOutKey(plan);
  const memory = fanOutMemory(logger);
  // The caller's logger as it is: it already names the process (and the part of it) that dials.
  const log = logger ?? silentLogger;
  const beacon = authority(plan.target.host, plan.target.port);
  if (reducedBecause !== undefined) {
    if (memory.has(key)) return;
    memory.set(key, reducedBecause);
    log.warn(
      {
        event: 'beacon.fanout_reduced',
        address: plan.address,
        proxy: plan.route.proxy?.display,
        proxySource: plan.route.proxy?.source,
        reason: reducedBecause,
      },
      `replica fan-out reduced: dialing beacon ${beacon} by name through the HTTP proxy, which reaches one replica of its choosing, because ${reducedBecause}. ` +
        'A broker and a bridge that both dial by name may wait on different replicas; allow CONNECT to the replica addresses, or give one side a direct path',
    );
  } else if (memory.delete(key)) {
    log.info(
      { event: 'beacon.fanout_restored', address: plan.address, proxy: plan.route.proxy?.display },
      `every replica of beacon ${beacon} is reachable through the HTTP proxy again`,
    );
  }
}

/** One line per beacon address at start: which HTTP proxy carries it, or why none does. */
export function logBeaconRoutes(
  logger: Logger,
  addresses: readonly string[],
  setting: ProxySetting = proxySettingFromEnvironment(),
): void {
  for (const address of addresses) {
    let target: BeaconTarget;
    try {
      target = parseBeaconAddress(address);
    } catch {
      continue; // the first dial reports a malformed address with its code
    }
    const route = routeFor(setting, { secure: true, host: target.host, port: target.port });
    logger.info(
      {
        event: 'beacon.route',
        address,
        proxy: route.proxy?.display,
        proxySource: route.proxy?.source,
        reason: route.reason,
      },
      route.proxy
        ? `beacon ${address} through HTTP proxy ${route.proxy.describe()}`
        : `beacon ${address} dialled directly: ${route.reason}`,
    );
  }
}

/** Why a plan dials by name after the proxy refused every replica address (the same words on both sides). */
export function everyReplicaRefused(plan: BeaconDialPlan, errors: readonly CloudtaserError[]): string {
  const statuses = [...new Set(errors.map((err) => err.details.status ?? 'no answer'))].join(', ');
  return `the proxy refused CONNECT to every replica address of ${plan.target.host} (${plan.replicas.length} addresses; ${statuses})`;
}

export function fanOutKey(plan: BeaconDialPlan): string {
  return `${plan.route.proxy?.display ?? 'direct'}|${plan.address}`;
}
