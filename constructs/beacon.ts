/** `Beacon`: the stateless relay, deployed from the cloudtaser-beacon chart. */
import type { BridgeIdentity } from './bridge-identity.js';
import { Construct, Fn, Token } from './cdktf.js';
import {
  type ChartSetting,
  chartFullname,
  chartSuffixedName,
  createChartRelease,
  DEFAULT_NAMESPACE,
  type HelmChartOptions,
  providerAlias,
  releaseSettings,
  resolveHelmProvider,
  validateChartOptions,
} from './helm-chart.js';
import {
  type HelmProvider,
  newDataKubernetesService,
  newKubernetesProvider,
  type Release,
} from './kubernetes.js';
import {
  type KubernetesConnection,
  toKubernetesProviderConfig,
  validateKubernetesConnection,
} from './kubernetes-connection.js';
import { ConstructRefusal, requireDnsSubdomain, requireIntegerInRange, validateAt } from './validation.js';

/** Where the beacon's outer TLS certificate comes from. */
export class BeaconTls {
  /** A `kubernetes.io/tls` Secret (keys `tls.crt`, `tls.key`) in the release namespace, e.g. from cert-manager. */
  public static fromSecret(secretName: string): BeaconTls {
    requireDnsSubdomain('BeaconTls.fromSecret(secretName)', secretName);
    return new BeaconTls(secretName);
  }

  private constructor(
    /** @internal */
    public readonly _secretName: string,
  ) {}
}

/** How brokers in other clusters reach the beacon. */
export class BeaconExposure {
  /** Inside the cluster only (plus the headless Service every bridge dials). */
  public static clusterOnly(): BeaconExposure {
    return new BeaconExposure('ClusterIP', {});
  }

  /** A cloud load balancer in front of the replicas; brokers reach any one, bridges wait on all of them. */
  public static loadBalancer(options: BeaconLoadBalancerOptions = {}): BeaconExposure {
    return new BeaconExposure('LoadBalancer', options);
  }

  private constructor(
    /** @internal */
    public readonly _serviceType: 'ClusterIP' | 'LoadBalancer',
    /** @internal */
    public readonly _loadBalancer: BeaconLoadBalancerOptions,
  ) {}
}

export interface BeaconLoadBalancerOptions {
  /** CIDR ranges allowed to connect. @default - everyone */
  readonly sourceRanges?: string[];
  /** Service annotations for the cloud's load balancer controller (e.g. NLB on EKS). @default - none */
  readonly annotations?: { readonly [key: string]: string };
  /**
   * The DNS name pointed at the load balancer (the name on the beacon's certificate); `brokerAddress` uses it.
   * @default - none (`brokerAddress` is then the load balancer's own hostname or IP, read after apply)
   */
  readonly hostname?: string;
}

export interface BeaconProps {
  /** Number of replicas; they share nothing. @default 2 */
  readonly replicas?: number;
  /** The outer TLS certificate. @default BeaconTls.fromSecret('<fullname>-tls') */
  readonly tls?: BeaconTls;
  /** How brokers reach the beacon. @default BeaconExposure.clusterOnly() */
  readonly exposure?: BeaconExposure;
  /** Also accept the plain door (no outer TLS; for deployments that pin the cluster CA). @default false */
  readonly plainDoor?: boolean;
  /** Port the beacon pods listen on (non-root: 1024 or above); bridges dial it on the headless Service. @default 8443 */
  readonly port?: number;
  /** Port brokers dial on the client-facing Service (ClusterIP or LoadBalancer). @default 443 */
  readonly servicePort?: number;
  /**
   * The bridges this beacon admits: their identities (or PEM CA certificates). More can be added with
   * `admitBridges()`. Without any, the chart's ConfigMap "<fullname>-bridge-ca" keeps what was written into it
   * (empty at first: the beacon then refuses every bridge, logging `no_bridge_ca`). @default - none here
   */
  readonly bridges?: ReadonlyArray<BridgeIdentity | string>;
  /**
   * INSECURE: let any client wait as a bridge (no client certificate): anyone who knows a room hash can squat it.
   * For closed test networks only. @default false
   */
  readonly allowAnonymousBridges?: boolean;
  /** Chart source, release name, namespace and extra values. @default - the published chart, release 'cloudtaser-beacon' */
  readonly chart?: HelmChartOptions;
  /** How to reach the cluster that runs the beacon. @default - none (then `helmProvider` is required) */
  readonly kubernetes?: KubernetesConnection;
  /** An existing hashicorp/helm provider. @default - made from `kubernetes` */
  readonly helmProvider?: HelmProvider;
}

export class Beacon extends Construct {
  /** The Helm release (child id 'Resource'). */
  public readonly release: Release;
  /** Namespace the beacon runs in. */
  public readonly namespace: string;
  /**
   * In-cluster address of the headless Service (one A-record per replica) on the pods' own port: give it to
   * bridges in the same cluster (`Bridge` `beacon.deployment`). A headless Service translates no port.
   */
  public readonly headlessAddress: string;
  /** Name of the client-facing Service (ClusterIP or LoadBalancer). */
  public readonly serviceName: string;
  /**
   * The address brokers dial (`RegisteredCluster` `beacon.address`): `<hostname>:<servicePort>` with a load
   * balancer hostname, the load balancer's own hostname or IP (known after apply, read with `kubernetes`)
   * without one, or the in-cluster Service name when the beacon is cluster-only.
   */
  public readonly brokerAddress: string;
  private readonly settings: ChartSetting[];
  private readonly bridgeCaPems: string[] = [];
  private readonly anonymousBridges: boolean;

  public constructor(scope: Construct, id: string, props: BeaconProps = {}) {
    super(scope, id);
    validateAt(this, () => {
      requireIntegerInRange('replicas', props.replicas, 1, 100);
      requireIntegerInRange(
        'port',
        props.port ?? numberAt(props.chart?.values, 'beacon', 'port'),
        1024,
        65535,
      );
      requireIntegerInRange(
        'servicePort',
        props.servicePort ?? numberAt(props.chart?.values, 'service', 'port'),
        1,
        65535,
      );
      if (props.kubernetes !== undefined) validateKubernetesConnection(this, 'kubernetes', props.kubernetes);
      if (props.chart !== undefined) validateChartOptions('chart', props.chart);
      if (props.tls !== undefined && !(props.tls instanceof BeaconTls)) {
        throw new ConstructRefusal("'tls' must come from BeaconTls.fromSecret()");
      }
      if (props.exposure !== undefined && !(props.exposure instanceof BeaconExposure)) {
        throw new ConstructRefusal(
          "'exposure' must come from BeaconExposure.clusterOnly() or BeaconExposure.loadBalancer()",
        );
      }
      requireDnsSubdomain('exposure.hostname', props.exposure?._loadBalancer.hostname);
      if (props.kubernetes === undefined && props.helmProvider === undefined)
        throw new ConstructRefusal("'Beacon' needs 'kubernetes' or 'helmProvider' to deploy its Helm chart");
      if (props.allowAnonymousBridges && props.bridges?.length)
        throw new ConstructRefusal("'bridges' is not supported if 'allowAnonymousBridges' is used");
    });
    this.anonymousBridges = props.allowAnonymousBridges === true;
    const chart = props.chart ?? {};
    const releaseName = chart.releaseName ?? 'cloudtaser-beacon';
    this.namespace = chart.namespace ?? DEFAULT_NAMESPACE;
    // The chart's own naming rules (fullname, suffixed names within 63 characters).
    this.serviceName = chartFullname(releaseName, 'cloudtaser-beacon');
    const port = props.port ?? numberAt(chart.values, 'beacon', 'port') ?? DEFAULT_BEACON_PORT;
    const servicePort =
      props.servicePort ?? numberAt(chart.values, 'service', 'port') ?? DEFAULT_SERVICE_PORT;
    this.headlessAddress = `${chartSuffixedName(this.serviceName, 'headless')}.${this.namespace}.svc:${port}`;
    const exposure = props.exposure ?? BeaconExposure.clusterOnly();

    const set: ChartSetting[] = [
      { name: 'replicas', value: String(props.replicas ?? 2), type: 'auto' },
      { name: 'service.type', value: exposure._serviceType },
      { name: 'beacon.plainDoor', value: String(props.plainDoor ?? false), type: 'auto' },
      { name: 'beacon.bridgeAuth.allowAnonymous', value: String(this.anonymousBridges), type: 'auto' },
    ];
    if (props.port !== undefined) set.push({ name: 'beacon.port', value: String(props.port), type: 'auto' });
    if (props.servicePort !== undefined)
      set.push({ name: 'service.port', value: String(props.servicePort), type: 'auto' });
    this.settings = set;
    if (props.tls !== undefined) set.push({ name: 'tls.secretName', value: props.tls._secretName });
    const values: Record<string, unknown> = { ...(chart.values ?? {}) };
    if (
      exposure._loadBalancer.sourceRanges !== undefined ||
      exposure._loadBalancer.annotations !== undefined
    ) {
      values.service = {
        ...((values.service as Record<string, unknown> | undefined) ?? {}),
        ...(exposure._loadBalancer.sourceRanges
          ? { loadBalancerSourceRanges: exposure._loadBalancer.sourceRanges }
          : {}),
        ...(exposure._loadBalancer.annotations ? { annotations: exposure._loadBalancer.annotations } : {}),
      };
    }

    this.release = createChartRelease(this, 'Resource', {
      chartName: 'cloudtaser-beacon',
      options: { ...chart, values: Object.keys(values).length > 0 ? values : undefined },
      provider: validateAt(this, () =>
        resolveHelmProvider(this, 'Beacon', props.helmProvider, props.kubernetes),
      ),
      set,
    });

    if (exposure._serviceType === 'ClusterIP') {
      this.brokerAddress = `${this.serviceName}.${this.namespace}.svc:${servicePort}`;
    } else if (exposure._loadBalancer.hostname !== undefined) {
      this.brokerAddress = `${exposure._loadBalancer.hostname}:${servicePort}`;
    } else {
      this.brokerAddress = `${this.loadBalancerHost(props)}:${servicePort}`;
    }
    if (props.bridges?.length) this.admitBridges(...props.bridges);
  }

  /**
   * Admits bridges whose client certificates come from these CAs: a `BridgeIdentity` (its public certificate,
   * from Terraform state) or a PEM CA certificate. One beacon can serve the bridges of several OpenBao operators.
   */
  public admitBridges(...bridges: ReadonlyArray<BridgeIdentity | string>): void {
    validateAt(this, () => {
      if (this.anonymousBridges)
        throw new ConstructRefusal("'admitBridges()' is not supported if 'allowAnonymousBridges' is used");
      for (const bridge of bridges) {
        if (
          typeof bridge === 'string' &&
          !Token.isUnresolved(bridge) &&
          !bridge.includes('-----BEGIN CERTIFICATE-----')
        )
          throw new ConstructRefusal("'admitBridges()' takes a BridgeIdentity or a PEM CA certificate");
      }
    });
    for (const bridge of bridges) {
      const pem = typeof bridge === 'string' ? bridge : bridge.caCertPem;
      // One `set` per certificate: a PEM in `values` would be folded by YAML, a `set` value is taken as written.
      this.settings.push({ name: `beacon.bridgeAuth.caPems[${this.bridgeCaPems.length}]`, value: pem });
      this.bridgeCaPems.push(pem);
    }
    this.release.putSet(releaseSettings(this.settings));
  }

  /** The load balancer's hostname (AWS) or IP (GCP, Azure), read from the Service after apply. */
  private loadBalancerHost(props: BeaconProps): string {
    if (props.kubernetes === undefined) {
      throw new ConstructRefusal(
        "'exposure' BeaconExposure.loadBalancer() without 'hostname' needs 'kubernetes' to read the load balancer's address, or give 'hostname' (the DNS name on the beacon's certificate)",
        { at: this.node.path },
      );
    }
    const service = newDataKubernetesService(this, 'LoadBalancer', {
      provider: newKubernetesProvider(this, 'KubernetesProvider', {
        alias: providerAlias(this, '_kubernetes'),
        ...toKubernetesProviderConfig(props.kubernetes),
      }),
      metadata: { name: this.serviceName, namespace: this.namespace },
      dependsOn: [this.release],
    });
    const ingress = service.loadBalancerIngress;
    return Fn.coalesce([ingress.hostname, ingress.ip]);
  }
}

const DEFAULT_BEACON_PORT = 8443;
const DEFAULT_SERVICE_PORT = 443;

/** A number in chart values (`values.beacon.port`), when one is given literally. */
function numberAt(values: { readonly [key: string]: unknown } | undefined, section: string, key: string) {
  const value = (values?.[section] as Record<string, unknown> | undefined)?.[key];
  return typeof value === 'number' ? value : undefined;
}
