/**
 * What the bridge's and the broker's metrics share: one prom-client Registry per process (never the global one,
 * so several processes in one Node, as in the tests, keep their numbers apart), the `/metrics` route on the probe
 * port, and the label rules that keep a fleet of thousands cheap.
 */
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { HealthRoute } from './health-server.js';
import { CLOUDTASER_VERSION } from './version.js';

/** A registry of its own, with process metrics under `prefix` when someone can scrape them. */
export function createProcessRegistry(prefix: string, processMetrics: boolean): Registry {
  const registry = new Registry();
  // Process metrics watch GC and event-loop delay continuously; only pay for that when someone can scrape.
  if (processMetrics) collectDefaultMetrics({ register: registry, prefix });
  // Which build answers, as Prometheus exporters say it: rollouts with mixed versions show in one query.
  new Gauge({
    name: `${prefix}build_info`,
    help: 'Always 1; the version label is the cloudtaser version of this process, node the Node.js version',
    labelNames: ['version', 'node'],
    registers: [registry],
  }).set({ version: CLOUDTASER_VERSION, node: process.versions.node }, 1);
  return registry;
}

/** `GET /metrics` in the Prometheus text format. */
export function metricsRoute(registry: Registry): HealthRoute {
  return async () => ({ contentType: registry.contentType, body: await registry.metrics() });
}

/** The `code` label of a failure: its CT_ code, or CT_INTERNAL for anything that is not ours. */
export function codeLabel(err: unknown): string {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && /^CT_[A-Z_]+$/.test(code) ? code : 'CT_INTERNAL';
}

/** Latency buckets (seconds) for requests that cross a tunnel or reach OpenBao: 1 ms to 30 s. */
export const REQUEST_SECONDS_BUCKETS: readonly number[] = Object.freeze([
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
]);
