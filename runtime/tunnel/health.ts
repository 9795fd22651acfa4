/**
 * The probe endpoint of the broker and the bridge: the shared health server plus `/status` (JSON for humans
 * and tests).
 */
import { type HealthServer, startHealthServer as startProbeServer } from '../core/health-server.js';
import type { Logger } from '../core/log.js';

export { parseListenAddress } from '../core/health-server.js';
export type { HealthServer };

export interface HealthServerOptions {
  readonly host?: string;
  readonly port: number;
  readonly status: () => unknown;
  readonly ready?: () => boolean;
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
    },
  });
}
