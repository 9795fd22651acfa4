/** What both ends of the tunnel (the bridge and the broker) are told about reaching the beacon and serving probes. */
import type { ProxySetting } from '../proxy/settings.js';
import type { TunnelLimits } from './mux.js';
import type { Resolve } from './resolve.js';

export interface RelayPartyOptions {
  /** Beacon addresses (`host:port`, `wss://host:port`, `plain://host:port`); every A-record of each is dialled. */
  readonly beacons: readonly string[];
  /** Trust for the beacon's outer TLS. @default the system roots */
  readonly beaconCaPem?: string;
  /**
   * How to reach the beacon: through one HTTP proxy (`--beacon-proxy URL`), never through one
   * (`--beacon-proxy none`), or as HTTPS_PROXY/NO_PROXY say (runtime/proxy/settings.ts has the rule).
   * @default the environment
   */
  readonly beaconProxy?: ProxySetting;
  /** Injectable resolver for beacon names (tests). @default DNS */
  readonly resolve?: Resolve;
  /** Serve /healthz, /readyz and /status here. @default off */
  readonly health?: { readonly host?: string; readonly port: number };
  readonly tunnelLimits?: Partial<TunnelLimits>;
}
