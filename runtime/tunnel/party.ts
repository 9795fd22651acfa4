/** What both ends of the tunnel (the bridge and the broker) are told about reaching the beacon and serving probes. */
import type { TunnelLimits } from './mux.js';
import type { Resolve } from './resolve.js';

export interface RelayPartyOptions {
  /** Beacon addresses (`host:port`, `wss://host:port`, `plain://host:port`); every A-record of each is dialled. */
  readonly beacons: readonly string[];
  /** Trust for the beacon's outer TLS. @default the system roots */
  readonly beaconCaPem?: string;
  /** Injectable resolver for beacon names (tests). @default DNS */
  readonly resolve?: Resolve;
  /** Serve /healthz, /readyz and /status here. @default off */
  readonly health?: { readonly host?: string; readonly port: number };
  readonly tunnelLimits?: Partial<TunnelLimits>;
}
