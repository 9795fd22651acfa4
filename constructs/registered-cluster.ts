/**
 * `RegisteredCluster`: one cluster connected to the secret store, as infrastructure. Reads the cluster's
 * fingerprint (the kube-system namespace UID), registers it with OpenBao through the cloudtaser provider, and
 * deploys the operator chart with the one value it needs (the beacon address) plus the CA pin.
 */

import { DEFAULT_NAMESPACE_ROOT } from '../runtime/registration/defaults.js';
import type { CloudtaserProvider } from './bindings/index.js';
import { ClusterRegistration, DataCloudtaserClusterFingerprint } from './bindings/index.js';
import { Annotations, Construct, type IResolvable, TerraformStack, Token } from './cdktf.js';
import {
  chartFullname,
  createChartRelease,
  DEFAULT_NAMESPACE,
  type HelmChartOptions,
  providerAlias,
  resolveHelmProvider,
  validateChartOptions,
} from './helm-chart.js';
import {
  type HelmProvider,
  type KubernetesProvider,
  newDataKubernetesNamespace,
  newKubernetesProvider,
  type Release,
} from './kubernetes.js';
import {
  type KubernetesConnection,
  toFingerprintDataSourceConfig,
  toKubernetesProviderConfig,
  validateKubernetesConnection,
} from './kubernetes-connection.js';
import { type ProxyProps, proxyChartSettings, proxyChartValues, validateProxyProps } from './proxy.js';
import { secretStoreProvider } from './secret-store-provider.js';
import {
  ConstructRefusal,
  isUnresolved,
  refuseProp,
  requireBeaconAddress,
  requireDnsSubdomain,
  requireFingerprint,
  requireHttpUrl,
  requireIssuer,
  requireJwks,
  requireMatch,
  requireNamespaceRoot,
  validateAt,
  warnIfPlainHttp,
} from './validation.js';

/** The OpenBao side. The token is deliberately absent: the provider reads `CLOUDTASER_SECRETSTORE_TOKEN`. */
export interface SecretStoreProps {
  /** OpenBao address, e.g. `https://openbao.example.eu:8200`. Required unless `provider` is given. @default - none */
  readonly address?: string;
  /** PEM CA certificate(s) for OpenBao's TLS, instead of the system roots. @default - system roots */
  readonly caCertPem?: string;
  /** OpenBao namespace that holds every cluster namespace and the registration records. @default 'cloudtaser' */
  readonly namespaceRoot?: string;
  /** An existing cloudtaser provider to share between several clusters. @default - one is created */
  readonly provider?: CloudtaserProvider;
}

/** The beacon the cluster's broker dials. */
export interface BeaconEndpointProps {
  /** `host:port` (e.g. `beacon.example.com:443`, or `Beacon.brokerAddress`) or `wss://host[:port]`. */
  readonly address: string;
  /**
   * ConfigMap (key `ca.crt`) in the operator's namespace with the beacon certificate's CA, when it is not from a
   * public CA (the same option `Bridge` takes). @default - system roots
   */
  readonly caConfigMap?: string;
}

/** Where OpenBao's Kubernetes auth reaches the bridge's TokenReview endpoint for this cluster. */
export interface TokenReviewEndpointProps {
  /** The bridge's TokenReview Service as OpenBao reaches it: `Bridge.tokenReviewEndpoint`. */
  readonly endpoint: string;
  /**
   * PEM CA of the listener certificate, only when you bring it (bridge chart `bridge.tokenReview.tls.secretName`).
   * @default - the listener CA registration keeps in OpenBao
   */
  readonly caCertPem?: string;
}

/** Where the fingerprint comes from when it is not given literally. */
export type FingerprintSource = 'kubernetes' | 'cloudtaser';

/** How the operator gets onto the cluster. */
export class OperatorInstall {
  /** A Helm release of the operator chart, made by this construct (the default). */
  public static helmRelease(options: HelmChartOptions = {}): OperatorInstall {
    return new OperatorInstall(options);
  }

  /**
   * No Helm release: the operator is deployed some other way (ArgoCD or Flux from git, or the local demo where
   * the broker runs as a process). Feed it `RegisteredCluster.operatorValues`. `serviceAccount`
   * (`<namespace>/<name>`) is the one it runs as, for attested bootstrap.
   */
  public static deployedElsewhere(options: { readonly serviceAccount?: string } = {}): OperatorInstall {
    return new OperatorInstall(undefined, options.serviceAccount);
  }

  private constructor(
    /** @internal undefined = deployed elsewhere */
    public readonly _helm: HelmChartOptions | undefined,
    /** @internal the operator's service account when deployed elsewhere */
    public readonly _serviceAccount?: string,
  ) {}
}

/** The public material that lets the bridge check, offline, a bootstrap token from the cluster. */
export interface AttestationIssuerProps {
  /** `issuer` of the cluster's `/.well-known/openid-configuration`. */
  readonly issuer: string;
  /** The cluster's `/openid/v1/jwks`: JSON text or the parsed object. */
  readonly jwks: string | { readonly keys: readonly unknown[] };
}

/**
 * Attested bootstrap: the operator proves with a token of its own service account, minted by the cluster,
 * that it runs in this very cluster. Without it the first broker to bootstrap is trusted (trust on first use).
 */
export class Attestation {
  /**
   * Read the issuer and its keys from the cluster with `cloudtaser_cluster_fingerprint` (needs `kubernetes`).
   * The default whenever `kubernetes` is given.
   */
  public static fromCluster(): Attestation {
    return new Attestation('cluster', undefined);
  }

  /** Issuer and keys given here, e.g. read by another tool. Refresh `jwks` after the cluster rotates its key. */
  public static fromIssuer(props: AttestationIssuerProps): Attestation {
    return new Attestation('issuer', props);
  }

  /** No attestation: trust on first use. Only ever by choice, or (with a warning) without a `kubernetes` connection. */
  public static disabled(): Attestation {
    return new Attestation('disabled', undefined);
  }

  private constructor(
    /** @internal */
    public readonly _mode: 'cluster' | 'issuer' | 'disabled',
    /** @internal */
    public readonly _issuer: AttestationIssuerProps | undefined,
  ) {}
}

export interface RegisteredClusterProps {
  /** The OpenBao that holds the registration. */
  readonly secretStore: SecretStoreProps;
  /** The beacon the operator's broker dials. */
  readonly beacon: BeaconEndpointProps;
  /**
   * How to reach the cluster (host + token, host + exec, or a kubeconfig). Used for the fingerprint and the
   * Helm release unless `kubernetesProvider` / `helmProvider` are given. @default - none
   */
  readonly kubernetes?: KubernetesConnection;
  /** An existing hashicorp/kubernetes provider for the fingerprint read. @default - made from `kubernetes` */
  readonly kubernetesProvider?: KubernetesProvider;
  /** An existing hashicorp/helm provider for the operator release. @default - made from `kubernetes` */
  readonly helmProvider?: HelmProvider;
  /**
   * Which provider reads the kube-system UID: hashicorp/kubernetes (`kubernetes`) or this project's
   * `cloudtaser_cluster_fingerprint` data source (`cloudtaser`, needs `kubernetes`). @default 'kubernetes'
   */
  readonly fingerprintSource?: FingerprintSource;
  /** The fingerprint itself, when it is already known; no data source is read then. @default - read from the cluster */
  readonly fingerprint?: string;
  /** How the operator is installed. @default OperatorInstall.helmRelease() */
  readonly operator?: OperatorInstall;
  /** Delete the cluster's OpenBao namespace and its workload secrets on destroy. @default false */
  readonly purgeOnDestroy?: boolean;
  /**
   * Migrate this cluster's Kubernetes Secrets into OpenBao: sets `migration_enabled` on the registration (the
   * bridge refuses migration with CT_MIGRATION_DISABLED without it) and `operator.migration.enabled` on the
   * operator release (the broker's `--migrate` and its Secret RBAC). @default false
   */
  readonly migration?: boolean;
  /**
   * Attested bootstrap. @default Attestation.fromCluster() whenever `kubernetes` is given (with
   * `fingerprintSource: 'kubernetes'` a cloudtaser data source reads the keys beside hashicorp/kubernetes);
   * without a `kubernetes` connection it cannot read them: off, with a warning naming Attestation.fromIssuer()
   */
  readonly attestation?: Attestation;
  /**
   * Where OpenBao's Kubernetes auth reaches the bridge's TokenReview endpoint. @default - the bridge chart's
   * defaults, `https://cloudtaser-bridge.cloudtaser-system.svc:8444`
   */
  readonly tokenReview?: TokenReviewEndpointProps;
  /** HTTP proxy settings for the operator (the chart's `proxy` block). @default - no proxy */
  readonly proxy?: ProxyProps;
}

/** The Helm values the operator chart needs, for `OperatorInstall.deployedElsewhere()`. */
export interface OperatorValues {
  readonly operator: {
    readonly broker: {
      readonly beacon: { readonly address: string; readonly caConfigMap?: string };
      readonly trust: { readonly caSha256: string };
      /** Whether the broker sends an attestation token: the registration's `attested`. */
      readonly attestation: { readonly enabled: boolean | IResolvable };
    };
  };
  /** The chart's proxy block, when the `proxy` prop is given. @default - absent (no proxy) */
  readonly proxy?: Record<string, unknown>;
}

export class RegisteredCluster extends Construct {
  /** The cluster's fingerprint: the UID of its kube-system namespace. */
  public readonly fingerprint: string;
  /** The cluster's OpenBao namespace, `<namespaceRoot>/<fingerprint[:8]>`. */
  public readonly namespace: string;
  /** SHA-256 of `cloudtaser-init:<fingerprint>`: the beacon room of the one-time bootstrap. */
  public readonly initHash: string;
  /** SHA-256 of the cluster CA's DER: the beacon room of the tunnel, and the operator's CA pin. */
  public readonly operationalHash: string;
  /** The cluster CA certificate (PEM, public). */
  public readonly caCertPem: string;
  /** The `cloudtaser_cluster_registration` resource (child id 'Resource'). */
  public readonly registration: ClusterRegistration;
  /** The cloudtaser provider the registration uses. */
  public readonly cloudtaserProvider: CloudtaserProvider;
  /** The operator's Helm release, unless the operator is deployed elsewhere. */
  public readonly operatorRelease?: Release;
  /** `<namespace>/<name>` of the operator's service account: the only subject attested bootstrap accepts. */
  public readonly operatorServiceAccount: string;

  private readonly beaconAddress: string;
  private readonly beaconCaConfigMap?: string;
  private readonly proxy?: ProxyProps;

  public constructor(scope: Construct, id: string, props: RegisteredClusterProps) {
    super(scope, id);
    validateAt(this, () => {
      validateProps(props);
      if (props.kubernetes !== undefined) validateKubernetesConnection(this, 'kubernetes', props.kubernetes);
      claimFingerprint(this, props);
    });
    warnIfPlainHttp(
      this,
      'tokenReview.endpoint',
      props.tokenReview?.endpoint,
      'OpenBao would send the reviewer credential and every pod token it reviews in clear',
    );
    this.beaconAddress = props.beacon.address;
    this.beaconCaConfigMap = props.beacon.caConfigMap;
    const helm = (props.operator ?? OperatorInstall.helmRelease())._helm;
    this.operatorServiceAccount = helm
      ? `${helm.namespace ?? DEFAULT_NAMESPACE}/${operatorServiceAccountName(helm)}`
      : (props.operator?._serviceAccount ?? `${DEFAULT_NAMESPACE}/cloudtaser`);
    this.proxy = props.proxy;

    // Shared by the stack (not a child of this construct): removing or renaming this cluster must leave the
    // provider its registration is destroyed through.
    this.cloudtaserProvider = props.secretStore.provider ?? secretStoreProvider(this, props.secretStore);

    const fingerprint = props.fingerprint ?? this.readFingerprint(props);
    const issuer = this.attestationIssuer(props);
    this.registration = new ClusterRegistration(this, 'Resource', {
      provider: this.cloudtaserProvider,
      fingerprint,
      purgeOnDestroy: props.purgeOnDestroy,
      migrationEnabled: props.migration ?? false,
      ...(issuer
        ? {
            attestationIssuer: issuer.issuer,
            attestationJwks: issuer.jwks,
            // Derived from the release, so another release name or namespace still matches the broker.
            attestationServiceAccount: this.operatorServiceAccount,
          }
        : {}),
      ...(props.tokenReview
        ? { tokenreviewEndpoint: props.tokenReview.endpoint, tokenreviewCaCert: props.tokenReview.caCertPem }
        : {}),
    });
    this.fingerprint = this.registration.fingerprint;
    this.namespace = this.registration.namespace;
    this.initHash = this.registration.initHash;
    this.operationalHash = this.registration.operationalHash;
    this.caCertPem = this.registration.caCertPem;

    if (helm !== undefined) {
      this.operatorRelease = createChartRelease(this, 'Operator', {
        chartName: 'cloudtaser',
        options: helm,
        provider: validateAt(this, () =>
          resolveHelmProvider(this, 'operator', props.helmProvider, props.kubernetes),
        ),
        set: [
          { name: 'operator.broker.beacon.address', value: props.beacon.address },
          { name: 'operator.broker.trust.caSha256', value: this.operationalHash },
          // What the registration records, so the broker sends a token exactly when the bridge requires one.
          {
            name: 'operator.broker.attestation.enabled',
            value: Token.asString(this.registration.attested),
            type: 'auto',
          },
          ...(props.beacon.caConfigMap
            ? [{ name: 'operator.broker.beacon.caConfigMap', value: props.beacon.caConfigMap }]
            : []),
          ...proxyChartSettings(props.proxy),
          // Both halves from one prop; the bridge still checks the registration, so the chart value alone does nothing.
          ...(props.migration
            ? [{ name: 'operator.migration.enabled', value: 'true', type: 'auto' as const }]
            : []),
        ],
        // The operator must not start before the bridge can find its registration.
        dependsOn: [this.registration],
      });
    }
  }

  /** What the operator chart needs; safe to commit to git (nothing secret). */
  public get operatorValues(): OperatorValues {
    return {
      operator: {
        broker: {
          beacon: {
            address: this.beaconAddress,
            ...(this.beaconCaConfigMap ? { caConfigMap: this.beaconCaConfigMap } : {}),
          },
          trust: { caSha256: this.operationalHash },
          attestation: { enabled: this.registration.attested },
        },
      },
      ...(this.proxy ? { proxy: proxyChartValues(this.proxy) } : {}),
    };
  }

  private clusterDataSource?: DataCloudtaserClusterFingerprint;

  /** One cloudtaser_cluster_fingerprint read serves both the fingerprint and the issuer keys. */
  private cloudtaserDataSource(props: RegisteredClusterProps): DataCloudtaserClusterFingerprint {
    this.clusterDataSource ??= new DataCloudtaserClusterFingerprint(this, 'Fingerprint', {
      provider: this.cloudtaserProvider,
      ...toFingerprintDataSourceConfig(props.kubernetes!),
    });
    return this.clusterDataSource;
  }

  private attestationIssuer(props: RegisteredClusterProps): { issuer: string; jwks: string } | undefined {
    // On wherever the issuer can be read: the cloudtaser data source reads it with the `kubernetes` connection.
    const attestation =
      props.attestation ??
      (props.kubernetes !== undefined ? Attestation.fromCluster() : Attestation.disabled());
    if (attestation._mode === 'cluster') {
      const source = this.cloudtaserDataSource(props);
      return { issuer: source.serviceAccountIssuer, jwks: source.serviceAccountJwks };
    }
    if (attestation._mode === 'issuer') {
      const { issuer, jwks } = attestation._issuer!;
      return { issuer, jwks: typeof jwks === 'string' ? jwks : JSON.stringify(jwks) };
    }
    // A deliberate Attestation.disabled() is noted; off by default is a warning that says how to turn it on.
    if (props.attestation !== undefined) {
      Annotations.of(this).addInfo(
        'attested bootstrap is off (Attestation.disabled()) for a new registration: the first broker to reach the ' +
          'beacon with the init hash is trusted (trust on first use). A registration already attested stays so ' +
          '(the provider keeps a stored setting it is not given): replace the registration to turn it off',
      );
    } else {
      Annotations.of(this).addWarning(
        "attested bootstrap is off: without a 'kubernetes' connection the construct cannot read the cluster's " +
          'service-account keys, so the first broker to reach the beacon with the init hash is trusted (trust on ' +
          "first use). Give 'kubernetes', or set 'attestation' to Attestation.fromIssuer({ issuer, jwks }), to " +
          'require a token of the operator service account (Attestation.disabled() turns this warning into a note)',
      );
    }
    return undefined;
  }

  private readFingerprint(props: RegisteredClusterProps): string {
    if (props.fingerprintSource === 'cloudtaser') return this.cloudtaserDataSource(props).fingerprint;
    let provider = props.kubernetesProvider;
    if (provider === undefined) {
      provider = newKubernetesProvider(this, 'KubernetesProvider', {
        alias: providerAlias(this, '_kubernetes'),
        ...toKubernetesProviderConfig(props.kubernetes!),
      });
    }
    const kubeSystem = newDataKubernetesNamespace(this, 'KubeSystem', {
      provider,
      metadata: { name: 'kube-system' },
    });
    return kubeSystem.metadata.uid;
  }
}

/** The operator chart's service account name for these release options (serviceAccount.name, else the fullname). */
function operatorServiceAccountName(helm: HelmChartOptions): string {
  const named = (helm.values?.serviceAccount as { name?: unknown } | undefined)?.name;
  return typeof named === 'string' && named !== ''
    ? named
    : chartFullname(helm.releaseName ?? 'cloudtaser', 'cloudtaser');
}

/**
 * The literal fingerprints of this app's RegisteredClusters, by the OpenBao (and namespace root) they register
 * with, and the path of the construct that registers each. A second construct for one of them would plan
 * "2 to add" and fail at apply (in one stack), or give the registration two owners that deregister it under each
 * other (in two stacks, each with its own state); refused at synth instead. A fingerprint read from the cluster
 * is a token until apply: the provider's plan-time checks cover it.
 */
const literalFingerprints = new WeakMap<object, Map<string, string>>();

function claimFingerprint(scope: Construct, props: RegisteredClusterProps): void {
  const fingerprint = props.fingerprint;
  if (fingerprint === undefined || isUnresolved(fingerprint)) return;
  const { provider, address, namespaceRoot } = props.secretStore;
  // The same literal address (and root) is the same OpenBao in every stack; a reference is only known to be the
  // same within its stack; a provider passed in, only as that provider.
  const store = provider
    ? `provider ${provider.node.path}`
    : isUnresolved(address)
      ? `${TerraformStack.of(scope).node.path} ${address}`
      : `${address?.replace(/\/+$/u, '')} ${namespaceRoot ?? DEFAULT_NAMESPACE_ROOT}`;
  const claims = literalFingerprints.get(scope.node.root) ?? new Map<string, string>();
  literalFingerprints.set(scope.node.root, claims);
  const key = `${store}#${fingerprint}`;
  const owner = claims.get(key);
  if (owner !== undefined && owner !== scope.node.path) {
    throw new ConstructRefusal(
      `'fingerprint' ${fingerprint} is already registered by ${owner} with the same OpenBao: one cluster registered ` +
        'twice fails at apply in one stack, and in two stacks gets two owners that deregister it under each other. ' +
        'Keep one RegisteredCluster per cluster (to move one to another stack, see "Moving a cluster to another ' +
        'stack" in the constructs README).',
      { code: 'CT_REGISTRATION_EXISTS' },
    );
  }
  claims.set(key, scope.node.path);
}

function validateProps(props: RegisteredClusterProps): void {
  const secretStore = props.secretStore as SecretStoreProps & { token?: unknown };
  refuseProp(
    'secretStore.token',
    secretStore.token,
    'the provider reads CLOUDTASER_SECRETSTORE_TOKEN (or BAO_TOKEN / VAULT_TOKEN) from the environment so the token never lands in cdktf.out',
  );
  if (secretStore.provider !== undefined) {
    for (const key of ['address', 'caCertPem', 'namespaceRoot'] as const) {
      if (secretStore[key] !== undefined) {
        throw new ConstructRefusal(
          `'secretStore.${key}' is not supported if 'secretStore.provider' is used; configure the provider instead`,
        );
      }
    }
  } else if (secretStore.address === undefined) {
    throw new ConstructRefusal(
      "'secretStore.address' is required (or pass an existing 'secretStore.provider')",
    );
  }
  requireHttpUrl('secretStore.address', secretStore.address, 'https://openbao.example.eu:8200');
  requireNamespaceRoot('secretStore.namespaceRoot', secretStore.namespaceRoot);
  if (props.beacon?.address === undefined) throw new ConstructRefusal("'beacon.address' is required");
  requireBeaconAddress('beacon.address', props.beacon.address);
  requireDnsSubdomain('beacon.caConfigMap', props.beacon.caConfigMap);
  if (props.tokenReview !== undefined) {
    if (props.tokenReview.endpoint === undefined)
      throw new ConstructRefusal("'tokenReview.endpoint' is required");
    requireHttpUrl(
      'tokenReview.endpoint',
      props.tokenReview.endpoint,
      'https://cloudtaser-bridge.openbao.svc:8444',
    );
    requireMatch(
      'tokenReview.caCertPem',
      props.tokenReview.caCertPem,
      /-----BEGIN CERTIFICATE-----/u,
      'must be a PEM certificate (the CA of the listener certificate you bring)',
    );
  }

  const source = props.fingerprintSource;
  if (source !== undefined && source !== 'kubernetes' && source !== 'cloudtaser') {
    throw new ConstructRefusal(
      `'fingerprintSource' must be 'kubernetes' or 'cloudtaser'; got ${JSON.stringify(source)}`,
    );
  }
  if (props.fingerprint !== undefined) {
    requireFingerprint('fingerprint', props.fingerprint);
    if (source !== undefined)
      throw new ConstructRefusal("'fingerprintSource' is not supported if 'fingerprint' is used");
  } else if (source === 'cloudtaser') {
    if (props.kubernetes === undefined) {
      throw new ConstructRefusal(
        "'kubernetes' is required if 'fingerprintSource' is 'cloudtaser' (the data source connects by itself)",
      );
    }
    if (props.kubernetesProvider !== undefined) {
      throw new ConstructRefusal(
        "'kubernetesProvider' is not supported if 'fingerprintSource' is 'cloudtaser'",
      );
    }
  } else if (props.kubernetes === undefined && props.kubernetesProvider === undefined) {
    throw new ConstructRefusal(
      "'kubernetes' or 'kubernetesProvider' is required to read the fingerprint (or give 'fingerprint')",
    );
  } else if (
    props.kubernetes !== undefined &&
    props.kubernetesProvider !== undefined &&
    props.helmProvider !== undefined
  ) {
    throw new ConstructRefusal(
      "'kubernetes' is not supported if both 'kubernetesProvider' and 'helmProvider' are used (it would be ignored)",
    );
  }
  const attestation = props.attestation;
  if (attestation !== undefined && !(attestation instanceof Attestation)) {
    throw new ConstructRefusal(
      "'attestation' must come from Attestation.fromCluster(), Attestation.fromIssuer() or Attestation.disabled()",
    );
  }
  if (attestation?._mode === 'cluster' && props.kubernetes === undefined) {
    throw new ConstructRefusal(
      "'kubernetes' is required if 'attestation' is Attestation.fromCluster() (cloudtaser_cluster_fingerprint reads the keys with it)",
    );
  }
  if (attestation?._mode === 'issuer') {
    const { issuer, jwks } = attestation._issuer ?? ({} as Partial<AttestationIssuerProps>);
    if (issuer === undefined) throw new ConstructRefusal("'attestation.issuer' is required");
    requireIssuer('attestation.issuer', issuer);
    requireJwks('attestation.jwks', jwks);
  }
  validateProxyProps('proxy', props.proxy);
  const helm = props.operator?._helm;
  if (helm !== undefined) validateChartOptions('operator', helm);
  if (props.operator !== undefined && !(props.operator instanceof OperatorInstall)) {
    throw new ConstructRefusal(
      "'operator' must come from OperatorInstall.helmRelease() or OperatorInstall.deployedElsewhere()",
    );
  }
}
