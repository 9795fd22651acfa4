/** Renders our charts with `helm template` semantics (helm-template.ts) and reads the objects the tests need. */
import { join } from 'node:path';
import { CHARTS_DIR, type ChartName } from './chart-files.js';
import { type RenderedChart, renderChart } from './helm-template.js';

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects read loosely in assertions
export type K8sObject = any;

export const RELEASE_NAMESPACE = 'cloudtaser-system';

/** The values a chart cannot render without. */
export const REQUIRED_VALUES: Record<ChartName, Record<string, unknown>> = {
  cloudtaser: { operator: { broker: { beacon: { address: 'beacon.example.com:443' } } } },
  'cloudtaser-beacon': {},
  'cloudtaser-bridge': {
    bridge: {
      beacon: { address: 'cloudtaser-beacon-headless.cloudtaser-system.svc:8443' },
      openbao: {
        address: 'https://openbao.openbao.svc:8200',
        auth: { approle: { secretName: 'bridge-approle' } },
      },
    },
  },
};

export function render(
  chart: ChartName,
  values: Record<string, unknown> = {},
  release: { name?: string; namespace?: string } = {},
): RenderedChart {
  return renderChart(join(CHARTS_DIR, chart), {
    name: release.name ?? chart,
    namespace: release.namespace ?? RELEASE_NAMESPACE,
    values: deepMerge(REQUIRED_VALUES[chart], values),
  });
}

export function objectsOf(rendered: RenderedChart, kind: string): K8sObject[] {
  return rendered.objects.filter((o) => o.kind === kind);
}

export function only(rendered: RenderedChart, kind: string): K8sObject {
  const found = objectsOf(rendered, kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, rendered ${found.length}`);
  return found[0];
}

/** The args of a Deployment's first container. */
export function containerArgs(deployment: K8sObject): string[] {
  return deployment.spec.template.spec.containers[0].args;
}

/** `--flag=value` values of one flag, in order. */
export function flagValues(args: readonly string[], flag: string): string[] {
  return args.filter((a) => a.startsWith(`${flag}=`)).map((a) => a.slice(flag.length + 1));
}

export const CLUSTER_SCOPED_KINDS = new Set([
  'ClusterRole',
  'ClusterRoleBinding',
  'MutatingWebhookConfiguration',
]);

export function deepMerge(base: unknown, override: unknown): Record<string, unknown> {
  const isMap = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isMap(base) || !isMap(override)) return (override ?? base) as Record<string, unknown>;
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override))
    out[key] = isMap(out[key]) && isMap(value) ? deepMerge(out[key], value) : value;
  return out;
}
