/**
 * The monitoring the charts and the repository ship: ServiceMonitor, PodMonitor and PrometheusRule rendered with
 * each switch on and checked against the objects they must select, and every PromQL expression (alerts and the
 * Grafana dashboard) parsed with Prometheus' own grammar (@prometheus-io/lezer-promql) and checked to use only
 * metrics the beacon, bridge and broker export.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parser } from '@prometheus-io/lezer-promql';
import { describe, expect, it } from 'vitest';
import { DEFAULT_BEACON_LIMITS } from '../../runtime/beacon/limits.js';
import { createBeaconMetrics } from '../../runtime/beacon/metrics.js';
import { createBridgeMetrics } from '../../runtime/bridge/index.js';
import { createBrokerMetrics } from '../../runtime/broker/index.js';
import { CHART_NAMES, type ChartName, readChart } from './chart-files.js';
import {
  deepMerge,
  type K8sObject,
  objectsOf,
  only,
  RELEASE_NAMESPACE,
  REQUIRED_VALUES,
  render,
} from './render.js';
import { validateValues } from './values-schema.js';

const DASHBOARD = join(import.meta.dirname, '../../docs/grafana/cloudtaser.json');
const BEACON_SOURCE = join(import.meta.dirname, '../../runtime/beacon');

/** Every series name the processes export, histograms with their _bucket/_sum/_count series. */
async function exportedNames(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const registry of [
    createBridgeMetrics().registry,
    createBrokerMetrics().registry,
    createBeaconMetrics({ processMetrics: true, maxConnections: DEFAULT_BEACON_LIMITS.maxConnections })
      .registry,
  ]) {
    for (const metric of await registry.getMetricsAsJSON()) {
      names.add(metric.name);
      if (String(metric.type) === 'histogram')
        for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${metric.name}${suffix}`);
    }
    registry.clear();
  }
  return names;
}

/** Metric names an expression selects, after parsing it with the PromQL grammar; throws on a syntax error. */
function metricNamesIn(expr: string): string[] {
  // Grafana's interval variable is not PromQL: Grafana substitutes a duration before Prometheus sees it.
  const promql = expr.replaceAll('$__rate_interval', '5m');
  const tree = parser.parse(promql);
  const names: string[] = [];
  const cursor = tree.cursor();
  do {
    if (cursor.type.isError) throw new Error(`PromQL syntax error at ${cursor.from} in: ${promql}`);
    if (cursor.name === 'Identifier' && cursor.node.parent?.name === 'VectorSelector')
      names.push(promql.slice(cursor.from, cursor.to));
  } while (cursor.next());
  return names;
}

type Switch = 'serviceMonitor' | 'podMonitor' | 'prometheusRule';
const SWITCHES: Record<ChartName, Switch[]> = {
  cloudtaser: ['serviceMonitor', 'podMonitor', 'prometheusRule'],
  'cloudtaser-bridge': ['serviceMonitor', 'podMonitor', 'prometheusRule'],
  'cloudtaser-beacon': ['serviceMonitor', 'podMonitor', 'prometheusRule'],
};
const KIND: Record<Switch, string> = {
  serviceMonitor: 'ServiceMonitor',
  podMonitor: 'PodMonitor',
  prometheusRule: 'PrometheusRule',
};

function renderWith(chart: ChartName, on: Switch, extra: Record<string, unknown> = {}) {
  return render(chart, {
    metrics: { [on]: { enabled: true, labels: { release: 'kube-prometheus-stack' }, ...extra } },
  });
}

function includes(labels: Record<string, string>, subset: Record<string, string>): boolean {
  return Object.entries(subset).every(([k, v]) => labels[k] === v);
}

describe.each(CHART_NAMES)('%s chart monitoring', (chart) => {
  it('renders no monitor and no rule by default', () => {
    const rendered = render(chart);
    for (const kind of Object.values(KIND)) expect(objectsOf(rendered, kind)).toEqual([]);
  });

  it.each(SWITCHES[chart])(
    'takes metrics.%s in its closed schema, and refuses a misspelt key or a bad duration there',
    (on) => {
      const { schema, values: defaults } = readChart(chart);
      const values = (metrics: unknown) =>
        deepMerge(deepMerge(defaults, REQUIRED_VALUES[chart]), { metrics });
      const good =
        on === 'prometheusRule'
          ? { enabled: true, for: '5m', labels: { a: 'b' } }
          : { enabled: true, interval: '15s', scrapeTimeout: '5s', labels: { a: 'b' } };
      expect(validateValues(schema, values({ [on]: good }))).toEqual([]);
      expect(validateValues(schema, values({ [on]: { enabeld: true } })).map((p) => p.path)).toContain(
        `metrics.${on}.enabeld`,
      );
      const badDuration = on === 'prometheusRule' ? { for: 'soon' } : { interval: 'soon' };
      expect(validateValues(schema, values({ [on]: badDuration }))).not.toEqual([]);
    },
  );

  if (SWITCHES[chart].includes('serviceMonitor'))
    it('renders a ServiceMonitor that selects the Service with the metrics port, in the release namespace, with the extra labels and interval', () => {
      const rendered = renderWith(chart, 'serviceMonitor', { interval: '15s', scrapeTimeout: '5s' });
      const monitor = only(rendered, 'ServiceMonitor');
      expect(monitor.apiVersion).toBe('monitoring.coreos.com/v1');
      expect(monitor.metadata.namespace).toBe(RELEASE_NAMESPACE);
      expect(monitor.metadata.labels).toMatchObject({
        release: 'kube-prometheus-stack',
        'app.kubernetes.io/part-of': 'cloudtaser',
      });
      expect(monitor.spec.namespaceSelector.matchNames).toEqual([RELEASE_NAMESPACE]);
      const [endpoint] = monitor.spec.endpoints;
      expect(endpoint).toMatchObject({
        port: 'metrics',
        path: '/metrics',
        interval: '15s',
        scrapeTimeout: '5s',
      });
      const selected = objectsOf(rendered, 'Service').filter((s: K8sObject) =>
        includes(s.metadata.labels, monitor.spec.selector.matchLabels),
      );
      const scraped = selected.filter((s: K8sObject) =>
        s.spec.ports.some((p: K8sObject) => p.name === endpoint.port),
      );
      expect(scraped.length).toBe(1);
      // The port it scrapes reaches the container port the process serves /metrics on.
      const deployment = only(rendered, 'Deployment');
      const target = scraped[0].spec.ports.find((p: K8sObject) => p.name === 'metrics').targetPort;
      const ports = deployment.spec.template.spec.containers[0].ports.map((p: K8sObject) => p.name);
      expect(ports).toContain(target);
    });

  if (SWITCHES[chart].includes('podMonitor'))
    it("renders a PodMonitor that selects the chart's pods on the container port serving /metrics", () => {
      const rendered = renderWith(chart, 'podMonitor', { interval: '20s' });
      const monitor = only(rendered, 'PodMonitor');
      expect(monitor.apiVersion).toBe('monitoring.coreos.com/v1');
      expect(monitor.metadata.labels.release).toBe('kube-prometheus-stack');
      const deployment = only(rendered, 'Deployment');
      expect(includes(deployment.spec.template.metadata.labels, monitor.spec.selector.matchLabels)).toBe(
        true,
      );
      const [endpoint] = monitor.spec.podMetricsEndpoints;
      expect(endpoint).toMatchObject({ path: '/metrics', interval: '20s' });
      const container = deployment.spec.template.spec.containers[0];
      const port = container.ports.find((p: K8sObject) => p.name === endpoint.port);
      expect(port, `container port ${endpoint.port}`).toBeDefined();
      // That container port is the one the process was told to serve metrics on.
      expect(container.args).toContain(`--metrics-listen=:${port.containerPort}`);
    });

  if (SWITCHES[chart].includes('prometheusRule'))
    it('renders a PrometheusRule whose every alert parses as PromQL, uses only exported metrics, and says what to do', async () => {
      const exported = await exportedNames();
      const rule = only(renderWith(chart, 'prometheusRule', { for: '7m' }), 'PrometheusRule');
      expect(rule.apiVersion).toBe('monitoring.coreos.com/v1');
      expect(rule.metadata.labels.release).toBe('kube-prometheus-stack');
      const rules = rule.spec.groups.flatMap((g: K8sObject) => g.rules);
      expect(rules.length).toBeGreaterThan(0);
      for (const alert of rules) {
        const names = metricNamesIn(String(alert.expr));
        expect(names.length, alert.alert).toBeGreaterThan(0);
        for (const name of names) expect(exported, `${alert.alert} uses ${name}`).toContain(name);
        expect(alert.labels.severity).toMatch(/^(warning|critical)$/);
        expect(alert.annotations.summary.length).toBeGreaterThan(20);
        expect(alert.annotations.description.length).toBeGreaterThan(20);
        if (alert.for !== undefined) expect(alert.for).toBe('7m');
        expect(String(alert.expr)).toContain(`namespace="${RELEASE_NAMESPACE}"`);
      }
    });
});

describe('alerts across the charts', () => {
  it('cover tunnel down for a cluster, bootstrap refused, beacon replica unreachable, OpenBao errors, polls failing, shard Leases failing, TokenReviews failing, webhook refusing and a broker certificate not renewed', () => {
    const alerts = ['cloudtaser', 'cloudtaser-bridge'].flatMap((chart) =>
      only(renderWith(chart as ChartName, 'prometheusRule'), 'PrometheusRule').spec.groups.flatMap(
        (g: K8sObject) => g.rules,
      ),
    );
    const byName = new Map(alerts.map((a: K8sObject) => [a.alert, String(a.expr)]));
    expect(byName.get('CloudtaserTunnelDown')).toMatch(/max by \(cluster\) \(cloudtaser_bridge_tunnel_up/);
    expect(byName.get('CloudtaserBootstrapRefused')).toContain(
      'cloudtaser_bridge_bootstraps_total{outcome!="signed"',
    );
    expect(byName.get('CloudtaserBrokerBootstrapRefused')).toContain('phase="rejected"');
    expect(byName.get('CloudtaserBeaconReplicaUnreachable')).toContain('cloudtaser_bridge_beacon_replica_up');
    expect(byName.get('CloudtaserBrokerBeaconReplicaUnreachable')).toContain(
      'cloudtaser_broker_beacon_replica_up',
    );
    expect(byName.get('CloudtaserOpenBaoErrors')).toContain('outcome!="ok"');
    expect(byName.get('CloudtaserWebhookRefusing')).toContain('outcome="refused"');
    expect(byName.get('CloudtaserBrokerTunnelDown')).toContain('cloudtaser_broker_tunnel_up');
    // The bridge's own polls, apart from pod traffic (a dead bridge token hid behind thousands of good pod reads).
    expect(byName.get('CloudtaserBridgeCannotPoll')).toMatch(
      /cloudtaser_bridge_polls_total\{outcome!="ok"[\s\S]*unless[\s\S]*cloudtaser_bridge_polls_total\{outcome="ok"/,
    );
    expect(byName.get('CloudtaserBridgeShardLeasesFailing')).toContain(
      'cloudtaser_bridge_shards{kind="round_failing"',
    );
    expect(byName.get('CloudtaserBrokerTokenReviewsFailing')).toContain(
      'cloudtaser_broker_tokenreviews_total{kind="review", status!~"2.."',
    );
    // Found by an outside on-call test: a dead bridge paged nobody on its side, OpenBao down nobody on the cluster side.
    expect(byName.get('CloudtaserBridgeDown')).toContain(
      'absent(cloudtaser_bridge_process_start_time_seconds{',
    );
    expect(byName.get('CloudtaserPodApiErrors')).toContain(
      'cloudtaser_broker_podapi_requests_total{status=~"5.."',
    );
    // Renewed 90 days ahead: 30 days left means two months of failed renewals.
    expect(byName.get('CloudtaserBrokerCertificateExpiring')).toMatch(
      /cloudtaser_broker_certificate_not_after_seconds\{[^}]*\}\) - time\(\) < 30 \* 86400/,
    );
  });
});

describe('beacon chart alerts', () => {
  const rules = () =>
    only(renderWith('cloudtaser-beacon', 'prometheusRule'), 'PrometheusRule').spec.groups.flatMap(
      (g: K8sObject) => g.rules,
    );
  const exprOf = (name: string) => String(rules().find((r: K8sObject) => r.alert === name)?.expr);

  it('page the beacon team when no replica is scraped, a replica nears --max-connections, clients are refused for a misconfiguration, or its certificate nears expiry', () => {
    expect(rules().map((r: K8sObject) => r.alert)).toEqual([
      'CloudtaserBeaconDown',
      'CloudtaserBeaconNearConnectionLimit',
      'CloudtaserBeaconRefusing',
      'CloudtaserBeaconCertificateExpiring',
    ]);
    // Per replica: each serves the certificate it last read (an outside SRE drill found no metric for it).
    expect(exprOf('CloudtaserBeaconCertificateExpiring')).toMatch(
      /min by \(namespace, pod\) \(cloudtaser_beacon_certificate_not_after_seconds\{[^}]*\}\) - time\(\) < 14 \* 86400/,
    );
    // A dead beacon pages on the beacon's side, not only as the bridges' and brokers' replica-unreachable warnings.
    expect(exprOf('CloudtaserBeaconDown')).toContain('absent(cloudtaser_beacon_build_info{');
    // Per replica: each one has its own bound, and at it closes every new connection, waiting bridges included.
    expect(exprOf('CloudtaserBeaconNearConnectionLimit')).toMatch(
      /max by \(namespace, pod\) \(cloudtaser_beacon_connections\{[^}]*\} \/ cloudtaser_beacon_max_connections\{[^}]*\}\) > 0\.8/,
    );
  });

  it('page on refusals that mean a misconfiguration, never on the scanners a public :443 sees all day', () => {
    const expr = exprOf('CloudtaserBeaconRefusing');
    expect(expr).toContain('cloudtaser_beacon_rejections_total{');
    const paged = /reason=~"([^"]+)"/.exec(expr)?.[1].split('|');
    expect(paged?.sort()).toEqual(['bridge_unauthenticated', 'waiting_per_address', 'waiting_total']);
    // A misspelt reason would leave the alert silent forever: each one is a reason the beacon really counts.
    const source = readdirSync(BEACON_SOURCE)
      .filter((file) => file.endsWith('.ts'))
      .map((file) => readFileSync(join(BEACON_SOURCE, file), 'utf8'))
      .join('\n');
    for (const reason of paged ?? []) expect(source, reason).toContain(`'${reason}'`);
  });
});

describe('Grafana dashboard (docs/grafana/cloudtaser.json)', () => {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8'));
  const panels = dashboard.panels.filter((p: K8sObject) => p.type !== 'row');
  const exprs: string[] = panels.flatMap((p: K8sObject) => p.targets.map((t: K8sObject) => t.expr));

  it('uses only metrics the processes export, in PromQL that parses', async () => {
    const exported = await exportedNames();
    expect(exprs.length).toBeGreaterThan(10);
    for (const expr of exprs) {
      const names = metricNamesIn(expr);
      expect(names.length, expr).toBeGreaterThan(0);
      for (const name of names) expect(exported, `${expr} uses ${name}`).toContain(name);
    }
  });

  it('shows every part of the path: tunnels, bootstraps, beacon replicas, pod API, TokenReview, webhook, OpenBao, migration, refusals', () => {
    const all = exprs.join('\n');
    for (const family of [
      'cloudtaser_bridge_tunnel_up',
      'cloudtaser_broker_phase',
      'cloudtaser_bridge_bootstraps_total',
      'cloudtaser_bridge_beacon_replica_up',
      'cloudtaser_broker_podapi_request_duration_seconds_bucket',
      'cloudtaser_bridge_tokenreviews_total',
      'cloudtaser_broker_webhook_admissions_total',
      'cloudtaser_bridge_openbao_request_duration_seconds_bucket',
      'cloudtaser_broker_migration_secrets_total',
      'cloudtaser_bridge_refusals_total',
      'cloudtaser_broker_podapi_limit_refusals_total',
      'cloudtaser_beacon_max_connections',
    ])
      expect(all).toContain(family);
  });

  it('lays its panels out without overlaps, inside the 24 columns', () => {
    type Box = { x: number; y: number; w: number; h: number };
    const boxes: Array<{ title: string; box: Box }> = dashboard.panels.map((p: K8sObject) => ({
      title: p.title,
      box: p.gridPos,
    }));
    for (const { title, box } of boxes) expect(box.x + box.w, title).toBeLessThanOrEqual(24);
    const overlap = (a: Box, b: Box) =>
      a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
    const overlapping = boxes.flatMap((a, i) =>
      boxes
        .slice(i + 1)
        .filter((b) => overlap(a.box, b.box))
        .map((b) => `${a.title} / ${b.title}`),
    );
    expect(overlapping).toEqual([]);
  });

  it('names its datasource through a variable and gives every panel a unique id', () => {
    expect(dashboard.templating.list.map((v: K8sObject) => v.name)).toContain('datasource');
    const ids = dashboard.panels.map((p: K8sObject) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of panels) expect(panel.datasource.uid).toBe(`\${datasource}`);
  });

  it('is caught by the metric check when it names a metric nobody exports', async () => {
    const exported = await exportedNames();
    const names = metricNamesIn('sum(rate(cloudtaser_bridge_tunnels_dropped_total[5m]))');
    expect(names).toEqual(['cloudtaser_bridge_tunnels_dropped_total']);
    expect(exported.has(names[0])).toBe(false);
    expect(() => metricNamesIn('sum(rate(cloudtaser_bridge_tunnel_up[5m])')).toThrow(/syntax error/);
  });
});
