/** `Bridge`: the process beside OpenBao that serves every registered cluster, from the cloudtaser-bridge chart. */
import { Construct } from 'constructs';
import type { BridgeIdentity } from './bridge-identity.js';
import {
  type ChartSetting,
  createChartRelease,
  type HelmChartOptions,
  resolveHelmProvider,
  validateChartOptions,
} from './helm-chart.js';
import type { HelmProvider, Release } from './kubernetes.js';
import { type KubernetesConnection, validateKubernetesConnection } from './kubernetes-connection.js';
import {
  refuseProp,
  requireBeaconAddress,
  requireDnsSubdomain,
  requireHttpUrl,
  requireIntegerInRange,
  requireNonEmpty,
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

/** How the bridge logs in to OpenBao. Credentials are always referenced, never passed. */
export class BridgeAuth {
  /** AppRole, with the role-id and secret-id read from a Kubernetes Secret at run time. */
  public static appRoleFromSecret(options: AppRoleSecretOptions): BridgeAuth {
    const hostile = options as AppRoleSecretOptions & { roleId?: unknown; secretId?: unknown };
    const why =
      'credentials are read from the Secret named by secretName, so they never land in cdktf.out or state';
    refuseProp('BridgeAuth.appRoleFromSecret(roleId)', hostile.roleId, why);
    refuseProp('BridgeAuth.appRoleFromSecret(secretId)', hostile.secretId, why);
    requireDnsSubdomain('BridgeAuth.appRoleFromSecret(secretName)', options.secretName);
    if (options.secretName === undefined)
      throw new TypeError("'BridgeAuth.appRoleFromSecret(secretName)' is required");
    requireNonEmpty('BridgeAuth.appRoleFromSecret(roleIdKey)', options.roleIdKey);
    requireNonEmpty('BridgeAuth.appRoleFromSecret(secretIdKey)', options.secretIdKey);
    requireNonEmpty('BridgeAuth.appRoleFromSecret(mountPath)', options.mountPath);
    return new BridgeAuth({ ...options });
  }

  private constructor(
    /** @internal */
    public readonly _appRole: AppRoleSecretOptions,
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
}

export interface BridgeBeaconProps {
  /** The beacon's address; for a beacon in the same cluster use `Beacon.headlessAddress`. */
  readonly address: string;
  /** ConfigMap (key `ca.crt`) with the beacon's CA. @default - system roots */
  readonly caConfigMap?: string;
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
  /** Number of replicas; any replica serves any cluster. @default 2 */
  readonly replicas?: number;
  /** Chart source, release name, namespace and extra values. @default - the published chart, release 'cloudtaser-bridge' */
  readonly chart?: HelmChartOptions;
  /** How to reach the cluster that runs the bridge. @default - none (then `helmProvider` is required) */
  readonly kubernetes?: KubernetesConnection;
  /** An existing hashicorp/helm provider. @default - made from `kubernetes` */
  readonly helmProvider?: HelmProvider;
}

export class Bridge extends Construct {
  /** The Helm release (child id 'Resource'). */
  public readonly release: Release;

  public constructor(scope: Construct, id: string, props: BridgeProps) {
    super(scope, id);
    if (props.beacon?.address === undefined) throw new TypeError("'beacon.address' is required");
    requireBeaconAddress('beacon.address', props.beacon.address);
    if (props.openBao?.address === undefined) throw new TypeError("'openBao.address' is required");
    requireHttpUrl('openBao.address', props.openBao.address);
    requireDnsSubdomain('beacon.caConfigMap', props.beacon.caConfigMap);
    requireDnsSubdomain('openBao.caConfigMap', props.openBao.caConfigMap);
    refuseProp(
      'openBao.token',
      (props.openBao as { token?: unknown }).token,
      "use 'auth' (a Secret reference)",
    );
    if (!(props.auth instanceof BridgeAuth))
      throw new TypeError("'auth' must come from BridgeAuth.appRoleFromSecret()");
    const certificate = props.beaconCertificate ?? BridgeBeaconCertificate.minted();
    if (!(certificate instanceof BridgeBeaconCertificate))
      throw new TypeError(
        "'beaconCertificate' must come from BridgeBeaconCertificate.minted() or BridgeBeaconCertificate.fromSecret()",
      );
    requireIntegerInRange('replicas', props.replicas, 1, 100);
    if (props.kubernetes !== undefined) validateKubernetesConnection(this, 'kubernetes', props.kubernetes);
    if (props.chart !== undefined) validateChartOptions('chart', props.chart);

    const appRole = props.auth._appRole;
    const set: ChartSetting[] = [
      { name: 'replicas', value: String(props.replicas ?? 2), type: 'auto' },
      { name: 'bridge.beacon.address', value: props.beacon.address },
      { name: 'bridge.openbao.address', value: props.openBao.address },
      { name: 'bridge.openbao.auth.method', value: 'approle' },
      { name: 'bridge.openbao.auth.approle.secretName', value: appRole.secretName },
      { name: 'bridge.beacon.clientIdentity.source', value: certificate._source },
    ];
    if (certificate._secretName !== undefined)
      set.push({ name: 'bridge.beacon.clientIdentity.secretName', value: certificate._secretName });
    const optional: Array<[string, string | undefined]> = [
      ['bridge.beacon.caConfigMap', props.beacon.caConfigMap],
      ['bridge.openbao.caConfigMap', props.openBao.caConfigMap],
      ['bridge.openbao.namespaceRoot', props.openBao.namespaceRoot],
      ['bridge.openbao.auth.approle.roleIdKey', appRole.roleIdKey],
      ['bridge.openbao.auth.approle.secretIdKey', appRole.secretIdKey],
      ['bridge.openbao.auth.approle.mountPath', appRole.mountPath],
    ];
    for (const [name, value] of optional) if (value !== undefined) set.push({ name, value });

    this.release = createChartRelease(this, 'Resource', {
      chartName: 'cloudtaser-bridge',
      options: props.chart ?? {},
      provider: resolveHelmProvider(this, 'Bridge', props.helmProvider, props.kubernetes),
      set,
      // The bridge mints its beacon certificate at start: the CA must exist by then.
      dependsOn: certificate._identity ? [certificate._identity.resource] : undefined,
    });
  }
}
