/** `Bridge`: the process beside OpenBao that serves every registered cluster, from the cloudtaser-bridge chart. */
// The one runtime module constructs may load at synth time: the policy table, pure data that imports nothing.
import { POLICY_NAMES, renderPolicyHcl } from '../runtime/registration/policies.js';
import { Beacon } from './beacon.js';
import type { BridgeIdentity } from './bridge-identity.js';
import { Construct } from './cdktf.js';
import {
  type ChartSetting,
  chartFullname,
  createChartRelease,
  DEFAULT_NAMESPACE,
  type HelmChartOptions,
  resolveHelmProvider,
  validateChartOptions,
} from './helm-chart.js';
import type { HelmProvider, Release } from './kubernetes.js';
import { type KubernetesConnection, validateKubernetesConnection } from './kubernetes-connection.js';
import { type ProxyProps, proxyChartSettings, validateProxyProps } from './proxy.js';
import {
  ConstructRefusal,
  refuseProp,
  requireBeaconAddress,
  requireDnsSubdomain,
  requireHttpUrl,
  requireIntegerInRange,
  requireNonEmpty,
  validateAt,
  warnIfPlainHttp,
} from './validation.js';

export interface AppRoleSecretOptions {
  /** A Secret in the release namespace holding the role-id and the secret-id (you create it; never a prop value). */
  readonly secretName: string;
  /** Key of the role-id in the Secret. @default 'role-id' */
  readonly roleIdKey?: string;
  /** Key of the secret-id in the Secret. @default 'secret-id' */
  readonly secretIdKey?: string;
  /** Mount path of the AppRole auth method in OpenBao. @default 'approle' */
  readonly mountPath?: string;
}

export interface KubernetesAuthOptions {
  /** OpenBao role bound to the bridge's service account. @default 'cloudtaser-bridge' */
  readonly role?: string;
  /** Mount path of OpenBao's Kubernetes auth method. @default 'kubernetes' */
  readonly mountPath?: string;
  /** Audience of the bridge's projected token (the role's `audience`). @default - the API server's */
  readonly audience?: string;
}

/** How the bridge logs in to OpenBao. Credentials are always referenced, never passed. */
export class BridgeAuth {
  /**
   * OpenBao's Kubernetes auth with the bridge's own projected service-account token, for an OpenBao in the
   * bridge's cluster: nothing to create beforehand, no stored credential.
   */
  public static kubernetes(options: KubernetesAuthOptions = {}): BridgeAuth {
    requireNonEmpty('BridgeAuth.kubernetes(role)', options.role);
    requireNonEmpty('BridgeAuth.kubernetes(mountPath)', options.mountPath);
    requireNonEmpty('BridgeAuth.kubernetes(audience)', options.audience);
    return new BridgeAuth(undefined, { ...options });
  }

  /** AppRole, with the role-id and secret-id read from a Kubernetes Secret at run time. */
  public static appRoleFromSecret(options: AppRoleSecretOptions): BridgeAuth {
    const hostile = options as AppRoleSecretOptions & { roleId?: unknown; secretId?: unknown };
    const why =
      'credentials are read from the Secret named by secretName, so they never land in cdktf.out or state';
    refuseProp('BridgeAuth.appRoleFromSecret(roleId)', hostile.roleId, why);
    refuseProp('BridgeAuth.appRoleFromSecret(secretId)', hostile.secretId, why);
    requireDnsSubdomain('BridgeAuth.appRoleFromSecret(secretName)', options.secretName);
    if (options.secretName === undefined)
      throw new ConstructRefusal("'BridgeAuth.appRoleFromSecret(secretName)' is required");
    requireNonEmpty('BridgeAuth.appRoleFromSecret(roleIdKey)', options.roleIdKey);
    requireNonEmpty('BridgeAuth.appRoleFromSecret(secretIdKey)', options.secretIdKey);
    requireNonEmpty('BridgeAuth.appRoleFromSecret(mountPath)', options.mountPath);
    return new BridgeAuth({ ...options }, undefined);
  }

  private constructor(
    /** @internal */
    public readonly _appRole: AppRoleSecretOptions | undefined,
    /** @internal */
    public readonly _kubernetes: KubernetesAuthOptions | undefined,
  ) {}
}

/** Where the bridge's client certificate for the beacon comes from (the beacon admits only such bridges). */
export class BridgeBeaconCertificate {
  /**
   * Minted by the bridge in memory from the beacon client CA in OpenBao, and renewed (the default). Pass the
   * `BridgeIdentity` that creates the CA so the bridge starts after it; without one the CA must already exist
   * (`cloudtaser-cli source beacon-ca`).
   */
  public static minted(identity?: BridgeIdentity): BridgeBeaconCertificate {
    return new BridgeBeaconCertificate('openbao', identity, undefined);
  }

  /** A `kubernetes.io/tls` Secret in the release namespace (e.g. from cert-manager), re-read when renewed. */
  public static fromSecret(secretName: string): BridgeBeaconCertificate {
    requireDnsSubdomain('BridgeBeaconCertificate.fromSecret(secretName)', secretName);
    return new BridgeBeaconCertificate('files', undefined, secretName);
  }

  private constructor(
    /** @internal */
    public readonly _source: 'openbao' | 'files',
    /** @internal */
    public readonly _identity: BridgeIdentity | undefined,
    /** @internal */
    public readonly _secretName: string | undefined,
  ) {}
}

export interface BridgeOpenBaoProps {
  /** OpenBao address as the bridge sees it, e.g. `https://openbao.openbao.svc:8200`. */
  readonly address: string;
  /** ConfigMap (key `ca.crt`) with OpenBao's CA. @default - system roots */
  readonly caConfigMap?: string;
  /** Root namespace of the registrations; must match the provider's. @default 'cloudtaser' */
  readonly namespaceRoot?: string;
  /**
   * Send each pod's address to OpenBao as `X-Forwarded-For`, so per-address rate-limit quotas and the audit log see
   * pods, not the bridge. Only for an OpenBao listener that trusts the bridge pods' addresses
   * (`x_forwarded_for_authorized_addrs`, with `x_forwarded_for_reject_not_present = false`). @default false
   */
  readonly forwardedFor?: boolean;
}

export interface BridgeBeaconProps {
  /** The beacon's address. @default - `deployment.headlessAddress` (required when `deployment` is not given) */
  readonly address?: string;
  /** ConfigMap (key `ca.crt`) with the beacon's CA. @default - system roots */
  readonly caConfigMap?: string;
  /**
   * The `Beacon` construct this bridge waits at, when this app deploys it: the bridge's release then waits for
   * the beacon's, and dials its headless Service unless `address` says otherwise. @default - none
   */
  readonly deployment?: Beacon;
}

export interface BridgeProps {
  /** The beacon the bridge waits at. */
  readonly beacon: BridgeBeaconProps;
  /** The OpenBao the bridge serves. */
  readonly openBao: BridgeOpenBaoProps;
  /** How the bridge logs in to OpenBao. */
  readonly auth: BridgeAuth;
  /** The client certificate that lets the bridge wait at the beacon. @default BridgeBeaconCertificate.minted() */
  readonly beaconCertificate?: BridgeBeaconCertificate;
  /** Number of replicas; any replica serves any cluster and any TokenReview. @default 2 */
  readonly replicas?: number;
  /** Port of the TokenReview endpoint OpenBao calls (pods and Service; 1024 or above). @default 8444 */
  readonly tokenReviewPort?: number;
  /** Chart source, release name, namespace and extra values. @default - the published chart, release 'cloudtaser-bridge' */
  readonly chart?: HelmChartOptions;
  /** How to reach the cluster that runs the bridge. @default - none (then `helmProvider` is required) */
  readonly kubernetes?: KubernetesConnection;
  /** An existing hashicorp/helm provider. @default - made from `kubernetes` */
  readonly helmProvider?: HelmProvider;
  /**
   * HTTP proxy settings for the bridge (the chart's `proxy` block); list an in-cluster OpenBao in `noProxy`.
   * @default - no proxy
   */
  readonly proxy?: ProxyProps;
}

export class Bridge extends Construct {
  /** The Helm release (child id 'Resource'). */
  public readonly release: Release;
  /**
   * The TokenReview endpoint as OpenBao reaches it (the bridge's Service, HTTPS): give it to
   * `RegisteredCluster` `tokenReview.endpoint` (and the provider's `tokenreview_endpoint`).
   */
  public readonly tokenReviewEndpoint: string;
  /** Name to give the bridge's OpenBao policy (the AppRole's token policy). */
  public readonly policyName: string = POLICY_NAMES.bridge;
  /**
   * The bridge's least-privilege OpenBao policy (HCL) for `openBao.namespaceRoot`, as
   * `cloudtaser-cli source policy bridge` prints it. Write it in the ROOT namespace and give it to the AppRole
   * the bridge logs in with, e.g. with the hashicorp/vault provider (OpenBao speaks its API):
   * `new Policy(this, 'bridge-policy', { name: bridge.policyName, policy: bridge.policyHcl })`.
   * See docs/openbao-policies.md.
   */
  public readonly policyHcl: string;

  public constructor(scope: Construct, id: string, props: BridgeProps) {
    super(scope, id);
    const beaconAddress = props.beacon?.address ?? props.beacon?.deployment?.headlessAddress;
    validateAt(this, () => {
      if (beaconAddress === undefined)
        throw new ConstructRefusal(
          "'beacon.address' is required (or 'beacon.deployment', a Beacon of this app)",
        );
      if (props.beacon.deployment !== undefined && !(props.beacon.deployment instanceof Beacon))
        throw new ConstructRefusal("'beacon.deployment' must be a Beacon construct");
      requireBeaconAddress('beacon.address', beaconAddress);
      if (props.openBao?.address === undefined) throw new ConstructRefusal("'openBao.address' is required");
      requireHttpUrl('openBao.address', props.openBao.address, 'https://openbao.openbao.svc:8200');
      requireDnsSubdomain('beacon.caConfigMap', props.beacon.caConfigMap);
      requireDnsSubdomain('openBao.caConfigMap', props.openBao.caConfigMap);
      refuseProp(
        'openBao.token',
        (props.openBao as { token?: unknown }).token,
        "use 'auth' (a Secret reference)",
      );
      if (!(props.auth instanceof BridgeAuth))
        throw new ConstructRefusal(
          "'auth' must come from BridgeAuth.appRoleFromSecret() or BridgeAuth.kubernetes()",
        );
      requireIntegerInRange('replicas', props.replicas, 1, 100);
      requireIntegerInRange('tokenReviewPort', props.tokenReviewPort, 1024, 65535);
      if (props.kubernetes !== undefined) validateKubernetesConnection(this, 'kubernetes', props.kubernetes);
      if (props.chart !== undefined) validateChartOptions('chart', props.chart);
      validateProxyProps('proxy', props.proxy);
      if (props.kubernetes === undefined && props.helmProvider === undefined)
        throw new ConstructRefusal("'Bridge' needs 'kubernetes' or 'helmProvider' to deploy its Helm chart");
    });
    warnIfPlainHttp(
      this,
      'openBao.address',
      props.openBao.address,
      "the bridge's OpenBao token would travel in clear",
    );
    const certificate = props.beaconCertificate ?? BridgeBeaconCertificate.minted();
    validateAt(this, () => {
      if (!(certificate instanceof BridgeBeaconCertificate))
        throw new ConstructRefusal(
          "'beaconCertificate' must come from BridgeBeaconCertificate.minted() or BridgeBeaconCertificate.fromSecret()",
        );
    });

    const set: ChartSetting[] = [
      { name: 'replicas', value: String(props.replicas ?? 2), type: 'auto' },
      { name: 'bridge.beacon.address', value: beaconAddress! },
      { name: 'bridge.openbao.address', value: props.openBao.address },
      { name: 'bridge.beacon.clientIdentity.source', value: certificate._source },
    ];
    if (certificate._secretName !== undefined)
      set.push({ name: 'bridge.beacon.clientIdentity.secretName', value: certificate._secretName });
    const optional: Array<[string, string | undefined]> = [
      ['bridge.beacon.caConfigMap', props.beacon.caConfigMap],
      ['bridge.openbao.caConfigMap', props.openBao.caConfigMap],
      ['bridge.openbao.namespaceRoot', props.openBao.namespaceRoot],
    ];
    const appRole = props.auth._appRole;
    const kubernetesAuth = props.auth._kubernetes;
    if (appRole) {
      set.push({ name: 'bridge.openbao.auth.method', value: 'approle' });
      set.push({ name: 'bridge.openbao.auth.approle.secretName', value: appRole.secretName });
      optional.push(
        ['bridge.openbao.auth.approle.roleIdKey', appRole.roleIdKey],
        ['bridge.openbao.auth.approle.secretIdKey', appRole.secretIdKey],
        ['bridge.openbao.auth.approle.mountPath', appRole.mountPath],
      );
    } else if (kubernetesAuth) {
      set.push({ name: 'bridge.openbao.auth.method', value: 'kubernetes' });
      optional.push(
        ['bridge.openbao.auth.kubernetes.role', kubernetesAuth.role],
        ['bridge.openbao.auth.kubernetes.mountPath', kubernetesAuth.mountPath],
        ['bridge.openbao.auth.kubernetes.audience', kubernetesAuth.audience],
      );
    }
    if (props.tokenReviewPort !== undefined)
      set.push({ name: 'bridge.tokenReview.port', value: String(props.tokenReviewPort), type: 'auto' });
    if (props.openBao.forwardedFor !== undefined)
      set.push({
        name: 'bridge.openbao.forwardedFor',
        value: String(props.openBao.forwardedFor),
        type: 'auto',
      });
    for (const [name, value] of optional) if (value !== undefined) set.push({ name, value });
    set.push(...proxyChartSettings(props.proxy));

    const chart = props.chart ?? {};
    const fullname = chartFullname(chart.releaseName ?? 'cloudtaser-bridge', 'cloudtaser-bridge');
    const port = props.tokenReviewPort ?? DEFAULT_TOKENREVIEW_PORT;
    this.tokenReviewEndpoint = `https://${fullname}.${chart.namespace ?? DEFAULT_NAMESPACE}.svc:${port}`;

    this.policyHcl = renderPolicyHcl('bridge', { namespaceRoot: props.openBao.namespaceRoot });
    this.release = createChartRelease(this, 'Resource', {
      chartName: 'cloudtaser-bridge',
      options: chart,
      provider: validateAt(this, () =>
        resolveHelmProvider(this, 'Bridge', props.helmProvider, props.kubernetes),
      ),
      set,
      dependsOn: [
        // A bridge dialling a beacon that is not there yet only retries; waiting keeps the first apply quiet.
        ...(props.beacon.deployment ? [props.beacon.deployment.release] : []),
        // The bridge mints its beacon certificate at start: the CA must exist by then.
        ...(certificate._identity ? [certificate._identity.resource] : []),
      ],
    });
  }
}

const DEFAULT_TOKENREVIEW_PORT = 8444;
