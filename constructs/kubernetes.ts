/**
 * The one place that declares the hashicorp/kubernetes and hashicorp/helm resources the constructs create: the
 * helm and kubernetes providers, `helm_release` and the `kubernetes_namespace` data source. They are small
 * bindings on the CDK seam (`./cdktf.ts`) covering the attributes we set, instead of the prebuilt
 * `@cdktf/provider-helm` and `@cdktf/provider-kubernetes` packages: those extend `cdktf` itself, so they cannot
 * join a `cdktn` app (the fork's stack calls methods their base classes lack), the fork publishes no helm or
 * kubernetes package, and the kubernetes one weighs 145 MB for the one data source we read.
 * `test/constructs/kubernetes-bindings.test.ts` proves they synthesize the same JSON as the prebuilt ones.
 * An app may still pass its own provider objects (prebuilt or `cdktf get`): the props take any TerraformProvider.
 */
import type { Construct } from 'constructs';
import {
  cdktf,
  type IResolvable,
  type ITerraformDependable,
  TerraformDataSource,
  type TerraformMetaArguments,
  TerraformProvider,
  TerraformResource,
} from './cdktf.js';

/** Versions of the providers these bindings describe (the same as the prebuilt packages we replaced). */
const HELM = { providerName: 'helm', providerVersion: '3.1.1', providerVersionConstraint: '~> 3.0' };
const KUBERNETES = {
  providerName: 'kubernetes',
  providerVersion: '2.38.0',
  providerVersionConstraint: '~> 2.0',
};

// --- configuration shapes (camelCase, as the prebuilt packages name them) ---

export interface KubernetesExec {
  readonly apiVersion: string;
  readonly command: string;
  /** @default - none */
  readonly args?: string[];
  /** @default - none */
  readonly env?: { [name: string]: string };
}

interface ClusterAccess {
  readonly host?: string;
  readonly clusterCaCertificate?: string;
  readonly token?: string;
  readonly configPath?: string;
  readonly configContext?: string;
}

export interface HelmProviderConfig {
  /** @default - the default provider configuration */
  readonly alias?: string;
  /** Cluster access; `exec` is one object in helm provider 3.x. @default - the provider's own defaults */
  readonly kubernetes?: ClusterAccess & { readonly exec?: KubernetesExec };
}

export interface KubernetesProviderConfig extends ClusterAccess {
  readonly alias?: string;
  /** A block list in the kubernetes provider (at most one). */
  readonly exec?: KubernetesExec[];
}

export interface ReleaseSet {
  readonly name: string;
  /** @default - empty */
  readonly value?: string;
  /** @default - Helm decides ('auto') */
  readonly type?: string;
}

export interface ReleaseConfig extends TerraformMetaArguments {
  readonly name: string;
  readonly chart: string;
  readonly namespace?: string;
  readonly createNamespace?: boolean | IResolvable;
  readonly repository?: string;
  readonly version?: string;
  readonly values?: string[];
  readonly set?: ReleaseSet[] | IResolvable;
}

export interface DataKubernetesNamespaceConfig extends TerraformMetaArguments {
  readonly metadata: { readonly name?: string };
}

export interface DataKubernetesServiceConfig extends TerraformMetaArguments {
  readonly metadata: { readonly name: string; readonly namespace?: string };
}

/** Any helm provider: ours, a prebuilt `@cdktf/provider-helm` one, or one from `cdktf get`. */
export type HelmProvider = TerraformProvider;
/** Any kubernetes provider, as for `HelmProvider`. */
export type KubernetesProvider = TerraformProvider;

// --- a declarative attribute map, shared by the JSON and HCL synthesizers ---

type Attribute =
  | { readonly kind: 'string' | 'bool' | 'number' | 'stringList' | 'stringMap'; readonly tf: string }
  | {
      readonly kind: 'object';
      readonly tf: string;
      readonly fields: Fields;
      /** How cdktf's HCL writer files a single nested block: a struct (helm) or a list of one (kubernetes). */
      readonly hclType: 'struct' | 'list';
    }
  | { readonly kind: 'objectList'; readonly tf: string; readonly fields: Fields; readonly block: boolean };
type Fields = { readonly [camel: string]: Attribute };

const EXEC: Fields = {
  apiVersion: { kind: 'string', tf: 'api_version' },
  args: { kind: 'stringList', tf: 'args' },
  command: { kind: 'string', tf: 'command' },
  env: { kind: 'stringMap', tf: 'env' },
};
const CLUSTER_ACCESS: Fields = {
  clusterCaCertificate: { kind: 'string', tf: 'cluster_ca_certificate' },
  configContext: { kind: 'string', tf: 'config_context' },
  configPath: { kind: 'string', tf: 'config_path' },
  host: { kind: 'string', tf: 'host' },
  token: { kind: 'string', tf: 'token' },
};
const HELM_PROVIDER: Fields = {
  kubernetes: {
    kind: 'object',
    tf: 'kubernetes',
    hclType: 'struct',
    // In the prebuilt binding's order (by Terraform name), so the HCL output is byte for byte the same.
    fields: sortedByTerraformName({
      ...CLUSTER_ACCESS,
      exec: { kind: 'object', tf: 'exec', hclType: 'struct', fields: EXEC },
    }),
  },
  alias: { kind: 'string', tf: 'alias' },
};
const KUBERNETES_PROVIDER: Fields = {
  ...CLUSTER_ACCESS,
  alias: { kind: 'string', tf: 'alias' },
  exec: { kind: 'objectList', tf: 'exec', block: true, fields: EXEC },
};
const RELEASE: Fields = {
  chart: { kind: 'string', tf: 'chart' },
  createNamespace: { kind: 'bool', tf: 'create_namespace' },
  name: { kind: 'string', tf: 'name' },
  namespace: { kind: 'string', tf: 'namespace' },
  repository: { kind: 'string', tf: 'repository' },
  set: {
    kind: 'objectList',
    tf: 'set',
    block: false,
    fields: {
      name: { kind: 'string', tf: 'name' },
      type: { kind: 'string', tf: 'type' },
      value: { kind: 'string', tf: 'value' },
    },
  },
  values: { kind: 'stringList', tf: 'values' },
  version: { kind: 'string', tf: 'version' },
};
const NAMESPACE_DATA: Fields = {
  metadata: {
    kind: 'object',
    tf: 'metadata',
    hclType: 'list',
    fields: { name: { kind: 'string', tf: 'name' } },
  },
};

const SERVICE_DATA: Fields = {
  metadata: {
    kind: 'object',
    tf: 'metadata',
    hclType: 'list',
    fields: { name: { kind: 'string', tf: 'name' }, namespace: { kind: 'string', tf: 'namespace' } },
  },
};

type Plain = { readonly [key: string]: unknown };

function sortedByTerraformName(fields: Fields): Fields {
  return Object.fromEntries(Object.entries(fields).sort(([, a], [, b]) => a.tf.localeCompare(b.tf)));
}

/** A nested value is passed through untouched when it is a token, as the generated bindings do. */
function passThrough(value: unknown): boolean {
  return !cdktf.canInspect(value) || cdktf.Tokenization.isResolvable(value);
}

function toTerraform(fields: Fields, value: Plain | undefined): Plain | undefined {
  if (value === undefined || passThrough(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [camel, attribute] of Object.entries(fields))
    out[attribute.tf] = attributeToTerraform(attribute, value[camel]);
  return out;
}

function attributeToTerraform(attribute: Attribute, value: unknown): unknown {
  switch (attribute.kind) {
    case 'string':
      return cdktf.stringToTerraform(value);
    case 'bool':
      return cdktf.booleanToTerraform(value);
    case 'number':
      return cdktf.numberToTerraform(value);
    case 'stringList':
      return cdktf.listMapper(cdktf.stringToTerraform, false)(value);
    case 'stringMap':
      return cdktf.hashMapper(cdktf.stringToTerraform)(value);
    case 'object':
      return toTerraform(attribute.fields, value as Plain | undefined);
    case 'objectList':
      return cdktf.listMapper((item: Plain) => toTerraform(attribute.fields, item), attribute.block)(value);
  }
}

function toHcl(fields: Fields, value: Plain | undefined): Plain | undefined {
  if (value === undefined || passThrough(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [camel, attribute] of Object.entries(fields)) {
    const entry = attributeToHcl(attribute, value[camel]);
    if (entry.value !== undefined) out[attribute.tf] = entry;
  }
  return out;
}

function attributeToHcl(attribute: Attribute, value: unknown): { value: unknown } & Plain {
  switch (attribute.kind) {
    case 'string':
      return {
        value: cdktf.stringToHclTerraform(value),
        isBlock: false,
        type: 'simple',
        storageClassType: 'string',
      };
    case 'bool':
      return {
        value: cdktf.booleanToHclTerraform(value),
        isBlock: false,
        type: 'simple',
        storageClassType: 'boolean',
      };
    case 'number':
      return {
        value: cdktf.numberToHclTerraform(value),
        isBlock: false,
        type: 'simple',
        storageClassType: 'number',
      };
    case 'stringList':
      return {
        value: cdktf.listMapperHcl(cdktf.stringToHclTerraform, false)(value),
        isBlock: false,
        type: 'list',
        storageClassType: 'stringList',
      };
    case 'stringMap':
      return {
        value: cdktf.hashMapperHcl(cdktf.stringToHclTerraform)(value),
        isBlock: false,
        type: 'map',
        storageClassType: 'stringMap',
      };
    case 'object':
      return {
        value: toHcl(attribute.fields, value as Plain | undefined),
        isBlock: true,
        type: attribute.hclType,
      };
    case 'objectList':
      return {
        value: cdktf.listMapperHcl((item: Plain) => toHcl(attribute.fields, item), attribute.block)(value),
        isBlock: true,
        type: 'list',
      };
  }
}

function pick(config: Plain, fields: Fields): Plain {
  return Object.fromEntries(Object.keys(fields).map((key) => [key, config[key]]));
}

// --- the bindings ---

/**
 * A provider block. `alias` is read by cdktf's base class (for `fqn`, which every resource's `provider` names), so
 * it must be a getter over the configuration, as the generated bindings have it.
 */
class ProviderBinding extends TerraformProvider {
  private readonly config: Plain;
  constructor(
    scope: Construct,
    id: string,
    type: 'helm' | 'kubernetes',
    private readonly fields: Fields,
    config: HelmProviderConfig | KubernetesProviderConfig,
  ) {
    super(scope, id, {
      terraformResourceType: type,
      terraformGeneratorMetadata: type === 'helm' ? HELM : KUBERNETES,
      terraformProviderSource: type,
    });
    this.config = pick(config as Plain, fields);
  }
  override get alias(): string | undefined {
    return this.config.alias as string | undefined;
  }
  override set alias(_value: string | undefined) {
    throw new TypeError('the alias of a cloudtaser-made provider is fixed at construction');
  }
  protected override synthesizeAttributes(): Record<string, unknown> {
    return { ...toTerraform(this.fields, this.config) };
  }
  protected override synthesizeHclAttributes(): Record<string, unknown> {
    return { ...toHcl(this.fields, this.config) };
  }
}

/** `helm_release`. */
export class Release extends TerraformResource {
  private config: Plain;
  constructor(scope: Construct, id: string, config: ReleaseConfig) {
    super(scope, id, {
      terraformResourceType: 'helm_release',
      terraformGeneratorMetadata: HELM,
      ...metaArguments(config),
    });
    this.config = pick(config as unknown as Plain, RELEASE);
  }
  /** Replaces the `set` entries (as the generated bindings' `putSet` does): for values added after creation. */
  putSet(set: ReleaseSet[] | IResolvable): void {
    this.config = { ...this.config, set };
  }
  /** The release's status (`deployed`, ...), known after apply. */
  get status(): string {
    return this.getStringAttribute('status');
  }
  protected override synthesizeAttributes(): Record<string, unknown> {
    return { ...toTerraform(RELEASE, this.config) };
  }
  protected override synthesizeHclAttributes(): Record<string, unknown> {
    return { ...toHcl(RELEASE, this.config) };
  }
}

/** The `kubernetes_namespace` data source; `metadata.uid` is what the fingerprint is read from. */
export class DataKubernetesNamespace extends TerraformDataSource {
  private readonly config: Plain;
  constructor(scope: Construct, id: string, config: DataKubernetesNamespaceConfig) {
    super(scope, id, {
      terraformResourceType: 'kubernetes_namespace',
      terraformGeneratorMetadata: KUBERNETES,
      ...metaArguments(config),
    });
    this.config = pick(config as unknown as Plain, NAMESPACE_DATA);
  }
  get metadata(): { readonly uid: string; readonly name: string } {
    return {
      uid: this.getStringAttribute('metadata[0].uid'),
      name: this.getStringAttribute('metadata[0].name'),
    };
  }
  protected override synthesizeAttributes(): Record<string, unknown> {
    return { ...toTerraform(NAMESPACE_DATA, this.config) };
  }
  protected override synthesizeHclAttributes(): Record<string, unknown> {
    return { ...toHcl(NAMESPACE_DATA, this.config) };
  }
}

/** The `kubernetes_service` data source; read for a LoadBalancer Service's external address. */
export class DataKubernetesService extends TerraformDataSource {
  private readonly config: Plain;
  constructor(scope: Construct, id: string, config: DataKubernetesServiceConfig) {
    super(scope, id, {
      terraformResourceType: 'kubernetes_service',
      terraformGeneratorMetadata: KUBERNETES,
      ...metaArguments(config),
    });
    this.config = pick(config as unknown as Plain, SERVICE_DATA);
  }
  /** The first load-balancer ingress (hostname on AWS, IP on GCP and Azure), known after apply. */
  get loadBalancerIngress(): { readonly hostname: string; readonly ip: string } {
    const ingress = 'status[0].load_balancer[0].ingress[0]';
    return {
      hostname: this.getStringAttribute(`${ingress}.hostname`),
      ip: this.getStringAttribute(`${ingress}.ip`),
    };
  }
  protected override synthesizeAttributes(): Record<string, unknown> {
    return { ...toTerraform(SERVICE_DATA, this.config) };
  }
  protected override synthesizeHclAttributes(): Record<string, unknown> {
    return { ...toHcl(SERVICE_DATA, this.config) };
  }
}

function metaArguments(config: TerraformMetaArguments) {
  const { provider, dependsOn, count, lifecycle, provisioners, connection, forEach } = config;
  return {
    provider,
    dependsOn,
    count,
    lifecycle,
    provisioners,
    connection,
    forEach,
  } as TerraformMetaArguments & {
    dependsOn?: ITerraformDependable[];
  };
}

export function newHelmProvider(scope: Construct, id: string, config: HelmProviderConfig): HelmProvider {
  return new ProviderBinding(scope, id, 'helm', HELM_PROVIDER, config);
}

export function newRelease(scope: Construct, id: string, config: ReleaseConfig): Release {
  return new Release(scope, id, config);
}

export function newKubernetesProvider(
  scope: Construct,
  id: string,
  config: KubernetesProviderConfig,
): KubernetesProvider {
  return new ProviderBinding(scope, id, 'kubernetes', KUBERNETES_PROVIDER, config);
}

export function newDataKubernetesNamespace(
  scope: Construct,
  id: string,
  config: DataKubernetesNamespaceConfig,
): DataKubernetesNamespace {
  return new DataKubernetesNamespace(scope, id, config);
}

export function newDataKubernetesService(
  scope: Construct,
  id: string,
  config: DataKubernetesServiceConfig,
): DataKubernetesService {
  return new DataKubernetesService(scope, id, config);
}
