/**
 * The broker's probe port: /healthz and /readyz for the kubelet, /status (the broker's status with the live
 * tunnel's last ping) and, when the broker keeps metrics, /metrics.
 */
import type { Logger } from '../core/log.js';
import { type HealthServer, startHealthServer, type TunnelMux } from '../tunnel/index.js';
import type { BrokerMetrics } from './metrics.js';
import type { BrokerStatus } from './status.js';

export interface BrokerHealthContext {
  readonly status: () => BrokerStatus;
  /** The live tunnel, if any: /status adds its last ping round trip. */
  readonly tunnel: () => TunnelMux | undefined;
  /** Ready means the process works; the beacon's state is reported by /status, not by failing probes. */
  readonly ready: () => boolean;
  readonly metrics?: BrokerMetrics;
  readonly logger: Logger;
}

export function startBrokerHealth(
  listen: { readonly host?: string; readonly port: number },
  context: BrokerHealthContext,
): Promise<HealthServer> {
  return startHealthServer({
    host: listen.host,
    port: listen.port,
    status: () => {
      const status = context.status();
      const tunnel = context.tunnel();
      return {
        ...status,
        tunnel: tunnel ? { ...status.tunnel, lastPingRttMs: tunnel.stats().lastPingRttMs } : undefined,
      };
    },
    ready: context.ready,
    metrics: context.metrics?.registry,
    logger: context.logger,
  });
}
