/** What the three chart-deploying constructs share: where the chart comes from and how the release is made. */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Construct } from 'constructs';
import {
  DefaultTokenResolver,
  type ITerraformDependable,
  StringConcat,
  TerraformStack,
  Token,
  Tokenization,
} from './cdktf.js';
import {
  type HelmProvider,
  newHelmProvider,
  newRelease,
  type Release,
  type ReleaseSet,
} from './kubernetes.js';
import { type KubernetesConnection, toHelmKubernetesConfig } from './kubernetes-connection.js';
import { ConstructRefusal, requireChartVersion, requireDnsLabel, requireNonEmpty } from './validation.js';
import { CLOUDTASER_VERSION, DEFAULT_CHART_REPOSITORY } from './version.js';

export type CloudtaserChartName = 'cloudtaser' | 'cloudtaser-beacon' | 'cloudtaser-bridge';

/** Where a chart comes from and how its release is named. */
export interface HelmChartOptions {
  /** Chart repository: an `oci://` registry or an https chart repository; ignored for a local chart directory. @default 'oci://ghcr.io/cloudtaser/charts' */
  readonly repository?: string;
  /** Chart version. @default - the cloudtaser version of these constructs ('0.2.0') */
  readonly version?: string;
  /** Chart name in the repository, or a path to a chart directory (see `bundledChartPath`). @default - the chart's own name */
  readonly chart?: string;
  /** Helm release name. @default - the chart's own name */
  readonly releaseName?: string;
  /** Kubernetes namespace of the release. @default 'cloudtaser-system' */
  readonly namespace?: string;
  /** Create the namespace when it does not exist. @default true */
  readonly createNamespace?: boolean;
  /** Extra chart values, merged over the chart defaults (never put secrets here: they land in `cdktf.out`). @default - none */
  readonly values?: { readonly [key: string]: unknown };
}

/** The absolute path of a chart shipped inside the installed cloudtaser package (no chart registry needed). */
export function bundledChartPath(chart: CloudtaserChartName): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('bundledChartPath: the cloudtaser package root was not found');
    dir = parent;
  }
  return join(dir, 'runtime', 'charts', chart);
}

export const DEFAULT_NAMESPACE = 'cloudtaser-system';

export function validateChartOptions(prop: string, options: HelmChartOptions): void {
  requireNonEmpty(`${prop}.repository`, options.repository);
  requireChartVersion(`${prop}.version`, options.version);
  requireNonEmpty(`${prop}.chart`, options.chart);
  requireDnsLabel(`${prop}.releaseName`, options.releaseName);
  requireDnsLabel(`${prop}.namespace`, options.namespace);
}

/**
 * A provider alias unique in the stack and readable in the plan ("prod-eu" for a construct at stack/prod-eu).
 * When the path had to be rewritten to fit an alias (ids `prod.eu` or nested paths `a/b`), a hash of the path
 * keeps it apart from the id that reads the same (`prod_eu`, `a_b`).
 */
export function providerAlias(scope: Construct, suffix = ''): string {
  const stack = TerraformStack.of(scope);
  const relative = scope.node.path.slice(stack.node.path.length + 1) || scope.node.id;
  const wanted = `${relative}${suffix}`;
  let alias = wanted.replace(/[^A-Za-z0-9_-]/g, '_');
  if (alias !== wanted) alias = `${alias}_${createHash('sha256').update(wanted).digest('hex').slice(0, 8)}`;
  return /^[A-Za-z]/.test(alias) ? alias : `ct_${alias}`;
}

/**
 * The alias of a provider shared by a stack's constructs: `<prefix>_<hash>`, the hash taken over the provider's
 * settings as Terraform sees them (tokens resolved to their references). It does not depend on which construct
 * made the provider, so removing or renaming that construct leaves the provider (and the resources of the
 * constructs that still use it) where they were.
 */
export function settingsAlias(scope: Construct, prefix: string, settings: unknown): string {
  const resolved = Tokenization.resolve(settings, {
    scope: TerraformStack.of(scope),
    resolver: new DefaultTokenResolver(new StringConcat()),
  });
  return `${prefix}_${createHash('sha256').update(canonicalJson(resolved)).digest('hex').slice(0, 12)}`;
}

/**
 * The helm provider to use: the one given, or the stack's provider for this (already validated) connection,
 * one per cluster whatever uses it, made on first use as a child of the stack; or an error naming both props.
 */
export function resolveHelmProvider(
  scope: Construct,
  prop: string,
  helmProvider: HelmProvider | undefined,
  kubernetes: KubernetesConnection | undefined,
): HelmProvider {
  if (helmProvider !== undefined) return helmProvider;
  if (kubernetes === undefined) {
    throw new ConstructRefusal(`'${prop}' needs 'kubernetes' or 'helmProvider' to deploy its Helm chart`);
  }
  const stack = TerraformStack.of(scope);
  const config = toHelmKubernetesConfig(kubernetes);
  const alias = settingsAlias(scope, 'helm', config);
  const id = `HelmProvider-${alias}`;
  return (
    (stack.node.tryFindChild(id) as HelmProvider | undefined) ??
    newHelmProvider(stack, id, { alias, kubernetes: config })
  );
}

/** The chart's `fullname` helper: the release name, or release-chart unless the release name holds the chart's. */
export function chartFullname(releaseName: string, chartName: CloudtaserChartName): string {
  const name = releaseName.includes(chartName) ? releaseName : `${releaseName}-${chartName}`;
  return name.slice(0, 63).replace(/-+$/, '');
}

/** The charts' `suffixedName` helper: the full name shortened so `-<suffix>` fits 63 characters. */
export function chartSuffixedName(fullname: string, suffix: string): string {
  return `${fullname.slice(0, 62 - suffix.length).replace(/-+$/, '')}-${suffix}`;
}

/** One `--set name=value`; `type: 'auto'` lets Helm read numbers and booleans, the default keeps a string. */
export interface ChartSetting {
  readonly name: string;
  readonly value: string;
  /** @default 'string' */
  readonly type?: 'string' | 'auto';
}

export interface ChartReleaseOptions {
  readonly chartName: CloudtaserChartName;
  readonly options: HelmChartOptions;
  readonly provider: HelmProvider;
  /** `--set` values; they win over `options.values`. */
  readonly set: readonly ChartSetting[];
  /** @default - none */
  readonly dependsOn?: ITerraformDependable[];
}

/** `--set` values as the helm provider takes them. */
export function releaseSettings(settings: readonly ChartSetting[]): ReleaseSet[] {
  return settings.map(({ name, value, type }) => ({
    name,
    // Helm parses `set` like `--set`: a literal comma would split the value (tokens are ours: hashes, names).
    value: Token.isUnresolved(value) ? value : value.replaceAll(',', '\\,'),
    type: type ?? 'string',
  }));
}

export function createChartRelease(scope: Construct, id: string, release: ChartReleaseOptions): Release {
  const { options } = release;
  const chart = options.chart ?? release.chartName;
  const isLocalChart = chart.startsWith('/') || chart.startsWith('./') || chart.startsWith('../');
  const set = releaseSettings(release.set);
  return newRelease(scope, id, {
    provider: release.provider,
    name: options.releaseName ?? release.chartName,
    namespace: options.namespace ?? DEFAULT_NAMESPACE,
    createNamespace: options.createNamespace ?? true,
    chart,
    repository: isLocalChart ? undefined : (options.repository ?? DEFAULT_CHART_REPOSITORY),
    version: isLocalChart ? undefined : (options.version ?? CLOUDTASER_VERSION),
    values: options.values === undefined ? undefined : [JSON.stringify(options.values)],
    set,
    dependsOn: release.dependsOn,
  });
}

/** JSON with object keys sorted and undefined left out, so two equal connections give one key. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object')
    return `{${Object.keys(value)
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(value);
}
