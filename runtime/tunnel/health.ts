/**
 * The probe endpoint of the broker and the bridge: the shared health server plus `/status` (JSON for humans
 * and tests) and, when the process keeps metrics, `/metrics`.
 */

import type { Registry } from 'prom-client';
import { type HealthServer, startHealthServer as startProbeServer } from '../core/health-server.js';
import type { Logger } from '../core/log.js';
import { metricsRoute } from '../core/metrics.js';

export { parseListenAddress } from '../core/health-server.js';
export type { HealthServer };

export interface HealthServerOptions {
  readonly host?: string;
  readonly port: number;
  readonly status: () => unknown;
  readonly ready?: () => boolean;
  /** Also serve `/metrics` (Prometheus text) from this registry. @default no /metrics */
  readonly metrics?: Registry;
  readonly logger?: Logger;
}

export function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  return startProbeServer({
    host: options.host,
    port: options.port,
    ready: options.ready,
    logger: options.logger,
    routes: {
      '/status': () => ({ contentType: 'application/json', body: `${JSON.stringify(options.status())}\n` }),
      ...(options.metrics ? { '/metrics': metricsRoute(options.metrics) } : {}),
    },
  });
}
