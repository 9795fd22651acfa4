/** `Beacon`: the stateless relay, deployed from the cloudtaser-beacon chart. */
import { Construct } from 'constructs';
import type { BridgeIdentity } from './bridge-identity.js';
import { Token } from './cdktf.js';
import {
  type ChartSetting,
  createChartRelease,
  DEFAULT_NAMESPACE,
  type HelmChartOptions,
  releaseSettings,
  resolveHelmProvider,
  validateChartOptions,
} from './helm-chart.js';
import type { HelmProvider, Release } from './kubernetes.js';
import { type KubernetesConnection, validateKubernetesConnection } from './kubernetes-connection.js';
import { requireDnsSubdomain, requireIntegerInRange } from './validation.js';

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
}

export interface BeaconProps {
  /** Number of replicas; they share nothing. @default 2 */
  readonly replicas?: number;
  /** The outer TLS certificate. @default BeaconTls.fromSecret('<releaseName>-tls') */
  readonly tls?: BeaconTls;
  /** How brokers reach the beacon. @default BeaconExposure.clusterOnly() */
  readonly exposure?: BeaconExposure;
  /** Also accept the plain door (no outer TLS; for deployments that pin the cluster CA). @default false */
  readonly plainDoor?: boolean;
  /**
   * The bridges this beacon admits: their identities (or PEM CA certificates). More can be added with
   * `admitBridges()`. Without any, the beacon reads the CAs from the ConfigMap "<release>-bridge-ca", which must
   * then exist. @default - none here
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
  /** In-cluster address of the headless Service: one A-record per replica. Give it to bridges. */
  public readonly headlessAddress: string;
  /** Name of the client-facing Service (ClusterIP or LoadBalancer). */
  public readonly serviceName: string;
  private readonly settings: ChartSetting[];
  private readonly bridgeCaPems: string[] = [];
  private readonly anonymousBridges: boolean;

  public constructor(scope: Construct, id: string, props: BeaconProps = {}) {
    super(scope, id);
    requireIntegerInRange('replicas', props.replicas, 1, 100);
    if (props.kubernetes !== undefined) validateKubernetesConnection(this, 'kubernetes', props.kubernetes);
    if (props.chart !== undefined) validateChartOptions('chart', props.chart);
    if (props.tls !== undefined && !(props.tls instanceof BeaconTls)) {
      throw new TypeError("'tls' must come from BeaconTls.fromSecret()");
    }
    if (props.exposure !== undefined && !(props.exposure instanceof BeaconExposure)) {
      throw new TypeError(
        "'exposure' must come from BeaconExposure.clusterOnly() or BeaconExposure.loadBalancer()",
      );
    }
    if (props.allowAnonymousBridges && props.bridges?.length)
      throw new TypeError("'bridges' is not supported if 'allowAnonymousBridges' is used");
    this.anonymousBridges = props.allowAnonymousBridges === true;
    const chart = props.chart ?? {};
    const releaseName = chart.releaseName ?? 'cloudtaser-beacon';
    this.namespace = chart.namespace ?? DEFAULT_NAMESPACE;
    // The chart's fullname is the release name when it already contains the chart name.
    this.serviceName = releaseName.includes('cloudtaser-beacon')
      ? releaseName
      : `${releaseName}-cloudtaser-beacon`;
    this.headlessAddress = `${this.serviceName}-headless.${this.namespace}.svc:443`;
    const exposure = props.exposure ?? BeaconExposure.clusterOnly();

    const set: ChartSetting[] = [
      { name: 'replicas', value: String(props.replicas ?? 2), type: 'auto' },
      { name: 'service.type', value: exposure._serviceType },
      { name: 'beacon.plainDoor', value: String(props.plainDoor ?? false), type: 'auto' },
      { name: 'beacon.bridgeAuth.allowAnonymous', value: String(this.anonymousBridges), type: 'auto' },
    ];
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
      provider: resolveHelmProvider(this, 'Beacon', props.helmProvider, props.kubernetes),
      set,
    });
    if (props.bridges?.length) this.admitBridges(...props.bridges);
  }

  /**
   * Admits bridges whose client certificates come from these CAs: a `BridgeIdentity` (its public certificate,
   * from Terraform state) or a PEM CA certificate. One beacon can serve the bridges of several OpenBao operators.
   */
  public admitBridges(...bridges: ReadonlyArray<BridgeIdentity | string>): void {
    if (this.anonymousBridges)
      throw new TypeError("'admitBridges()' is not supported if 'allowAnonymousBridges' is used");
    for (const bridge of bridges) {
      const pem = typeof bridge === 'string' ? bridge : bridge.caCertPem;
      if (
        typeof bridge === 'string' &&
        !Token.isUnresolved(pem) &&
        !pem.includes('-----BEGIN CERTIFICATE-----')
      )
        throw new TypeError("'admitBridges()' takes a BridgeIdentity or a PEM CA certificate");
      // One `set` per certificate: a PEM in `values` would be folded by YAML, a `set` value is taken as written.
      this.settings.push({ name: `beacon.bridgeAuth.caPems[${this.bridgeCaPems.length}]`, value: pem });
      this.bridgeCaPems.push(pem);
    }
    this.release.putSet(releaseSettings(this.settings));
  }
}
