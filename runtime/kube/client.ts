/**
 * A thin Kubernetes API client: the handful of calls cloudtaser makes, each typed, with errors mapped to stable
 * CT_ codes. The HTTP exchange, credentials and error mapping are in transport.ts and errors.ts.
 */
import { CloudtaserError } from '../core/index.js';
import type { KubeConfig } from './client-node.js';
import { describeConnection, type KubeConnection, loadKubeConfig } from './connection.js';
import { type CallOptions, type KubeClientOptions, KubeTransport, type RequestSpec } from './transport.js';
import type {
  JsonPatchOperation,
  KubeConfigMap,
  KubeDeployment,
  KubeEvent,
  KubeLease,
  KubeLeaseSpec,
  KubeList,
  KubeMutatingWebhookConfiguration,
  KubeNamespace,
  KubeSecret,
  KubeVersion,
  NewEvent,
  NewSecret,
  ObjectReference,
  ServiceAccountToken,
  TokenReviewStatus,
} from './types.js';

export type { CallOptions, KubeClientOptions } from './transport.js';

export class KubeClient {
  /** The API server URL of the current context. */
  readonly server: string;
  private readonly transport: KubeTransport;

  constructor(kubeConfig: KubeConfig, options: KubeClientOptions = {}) {
    this.transport = new KubeTransport(kubeConfig, options);
    this.server = this.transport.server;
  }

  static fromConnection(
    connection: KubeConnection,
    options: Omit<KubeClientOptions, 'description'> = {},
  ): KubeClient {
    return new KubeClient(loadKubeConfig(connection), {
      ...options,
      description: describeConnection(connection),
    });
  }

  async getVersion(options?: CallOptions): Promise<KubeVersion> {
    return this.request<KubeVersion>({
      ...options,
      method: 'GET',
      path: '/version',
      call: 'getVersion',
    });
  }

  async getNamespace(name: string, options?: CallOptions): Promise<KubeNamespace> {
    return this.request<KubeNamespace>({
      ...options,
      method: 'GET',
      path: `/api/v1/namespaces/${segment(name, 'namespace name')}`,
      call: 'getNamespace',
      target: { name },
    });
  }

  /** Service-account issuer discovery (`/.well-known/openid-configuration`); served only when the issuer is a URL. */
  async getOpenIdConfiguration(options?: CallOptions): Promise<Record<string, unknown>> {
    return this.request<Record<string, unknown>>({
      ...options,
      method: 'GET',
      path: '/.well-known/openid-configuration',
      call: 'getOpenIdConfiguration',
    });
  }

  /** The public keys that verify the cluster's service-account tokens (`/openid/v1/jwks`). */
  async getServiceAccountJwks(options?: CallOptions): Promise<unknown> {
    return this.request<unknown>({
      ...options,
      method: 'GET',
      path: '/openid/v1/jwks',
      call: 'getServiceAccountJwks',
    });
  }

  /**
   * Asks the API server whether `token` is valid for `audiences` (the server's own when empty). A rejected
   * token is not an error: the status says `authenticated` is not true and carries `error`.
   */
  async createTokenReview(
    token: string,
    audiences: readonly string[] = [],
    options?: CallOptions,
  ): Promise<TokenReviewStatus> {
    if (typeof token !== 'string' || token === '')
      throw new CloudtaserError('CT_INVALID_ARGUMENT', 'createTokenReview needs a non-empty token');
    const response = await this.request<{ status?: TokenReviewStatus }>({
      ...options,
      method: 'POST',
      path: '/apis/authentication.k8s.io/v1/tokenreviews',
      body: {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: { token, ...(audiences.length === 0 ? {} : { audiences: [...audiences] }) },
      },
      call: 'createTokenReview',
    });
    return response.status ?? {};
  }

  async getSecret(namespace: string, name: string, options?: CallOptions): Promise<KubeSecret> {
    return this.request<KubeSecret>({
      ...options,
      method: 'GET',
      path: `${secretsPath(namespace)}/${segment(name, 'secret name')}`,
      call: 'getSecret',
      target: { name, namespace },
    });
  }

  /** Lists secrets in one namespace, or in all when `namespace` is undefined. One page; follow `metadata.continue`. */
  async listSecrets(
    namespace: string | undefined,
    options: CallOptions & {
      labelSelector?: string;
      fieldSelector?: string;
      limit?: number;
      continue?: string;
    } = {},
  ): Promise<KubeList<KubeSecret>> {
    return this.request<KubeList<KubeSecret>>({
      ...options,
      method: 'GET',
      path: namespace === undefined ? '/api/v1/secrets' : secretsPath(namespace),
      query: {
        labelSelector: options.labelSelector,
        fieldSelector: options.fieldSelector,
        limit: options.limit,
        continue: options.continue,
      },
      call: 'listSecrets',
      target: { namespace },
    });
  }

  async createSecret(namespace: string, secret: NewSecret, options?: CallOptions): Promise<KubeSecret> {
    return this.request<KubeSecret>({
      ...options,
      method: 'POST',
      path: secretsPath(namespace),
      body: { apiVersion: 'v1', kind: 'Secret', ...secret },
      call: 'createSecret',
      target: { namespace },
    });
  }

  /**
   * Merge-patches a secret's labels and annotations (a `null` value removes the key). With `resourceVersion`
   * the patch only applies to that version; otherwise CT_KUBE_CONFLICT.
   */
  async patchSecretMetadata(
    namespace: string,
    name: string,
    patch: { labels?: Record<string, string | null>; annotations?: Record<string, string | null> },
    options: CallOptions & { resourceVersion?: string } = {},
  ): Promise<KubeSecret> {
    const metadata: Record<string, unknown> = {};
    if (patch.labels !== undefined) metadata.labels = patch.labels;
    if (patch.annotations !== undefined) metadata.annotations = patch.annotations;
    if (options.resourceVersion !== undefined) metadata.resourceVersion = options.resourceVersion;
    return this.request<KubeSecret>({
      ...options,
      method: 'PATCH',
      path: `${secretsPath(namespace)}/${segment(name, 'secret name')}`,
      body: { metadata },
      contentType: 'application/merge-patch+json',
      call: 'patchSecretMetadata',
      target: { name, namespace },
    });
  }

  async getDeployment(namespace: string, name: string, options?: CallOptions): Promise<KubeDeployment> {
    return this.request<KubeDeployment>({
      ...options,
      method: 'GET',
      path: `/apis/apps/v1/namespaces/${segment(namespace, 'namespace name')}/deployments/${segment(name, 'deployment name')}`,
      call: 'getDeployment',
      target: { name, namespace },
    });
  }

  /** GET through the API server's service proxy (`services/<name>:<port>/proxy/<path>`): a pod's plain-HTTP port. */
  async getServiceProxy(
    namespace: string,
    service: string,
    port: string,
    path: string,
    options?: CallOptions,
  ): Promise<unknown> {
    return this.request<unknown>({
      ...options,
      method: 'GET',
      path: `/api/v1/namespaces/${segment(namespace, 'namespace name')}/services/${segment(`${service}:${port}`, 'service name')}/proxy/${path.replace(/^\/+/, '')}`,
      call: 'getServiceProxy',
      target: { name: service, namespace },
    });
  }

  async getConfigMap(namespace: string, name: string, options?: CallOptions): Promise<KubeConfigMap> {
    return this.request<KubeConfigMap>({
      ...options,
      method: 'GET',
      path: `${configMapsPath(namespace)}/${segment(name, 'configmap name')}`,
      call: 'getConfigMap',
      target: { name, namespace },
    });
  }

  async createConfigMap(
    namespace: string,
    configMap: {
      metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
      data?: Record<string, string>;
    },
    options?: CallOptions,
  ): Promise<KubeConfigMap> {
    return this.request<KubeConfigMap>({
      ...options,
      method: 'POST',
      path: configMapsPath(namespace),
      body: { apiVersion: 'v1', kind: 'ConfigMap', ...configMap },
      call: 'createConfigMap',
      target: { name: configMap.metadata.name, namespace },
    });
  }

  /**
   * Merge-patches a ConfigMap's data (a `null` value removes the key), leaving its labels and annotations (Helm's
   * ownership among them) as they are. With `resourceVersion` the patch only applies to that version; otherwise
   * CT_KUBE_CONFLICT.
   */
  async patchConfigMapData(
    namespace: string,
    name: string,
    data: Record<string, string | null>,
    options: CallOptions & { resourceVersion?: string } = {},
  ): Promise<KubeConfigMap> {
    return this.request<KubeConfigMap>({
      ...options,
      method: 'PATCH',
      path: `${configMapsPath(namespace)}/${segment(name, 'configmap name')}`,
      body: {
        ...(options.resourceVersion !== undefined
          ? { metadata: { resourceVersion: options.resourceVersion } }
          : {}),
        data,
      },
      contentType: 'application/merge-patch+json',
      call: 'patchConfigMapData',
      target: { name, namespace },
    });
  }

  async getMutatingWebhookConfiguration(
    name: string,
    options?: CallOptions,
  ): Promise<KubeMutatingWebhookConfiguration> {
    return this.request<KubeMutatingWebhookConfiguration>({
      ...options,
      method: 'GET',
      path: `${WEBHOOK_CONFIGURATIONS_PATH}/${segment(name, 'MutatingWebhookConfiguration name')}`,
      call: 'getMutatingWebhookConfiguration',
      target: { name },
    });
  }

  /** Applies an RFC 6902 JSON patch; start it with a `test` of /metadata/resourceVersion to make it conditional. */
  async patchMutatingWebhookConfiguration(
    name: string,
    operations: readonly JsonPatchOperation[],
    options?: CallOptions,
  ): Promise<KubeMutatingWebhookConfiguration> {
    return this.request<KubeMutatingWebhookConfiguration>({
      ...options,
      method: 'PATCH',
      path: `${WEBHOOK_CONFIGURATIONS_PATH}/${segment(name, 'MutatingWebhookConfiguration name')}`,
      body: operations,
      contentType: 'application/json-patch+json',
      call: 'patchMutatingWebhookConfiguration',
      target: { name },
    });
  }

  /** Deletes a secret only if it still has the given resourceVersion/uid (CT_KUBE_CONFLICT otherwise). */
  async deleteSecret(
    namespace: string,
    name: string,
    preconditions: { resourceVersion?: string; uid?: string } = {},
    options?: CallOptions,
  ): Promise<void> {
    const hasPreconditions = preconditions.resourceVersion !== undefined || preconditions.uid !== undefined;
    await this.request<unknown>({
      ...options,
      method: 'DELETE',
      path: `${secretsPath(namespace)}/${segment(name, 'secret name')}`,
      body: {
        apiVersion: 'v1',
        kind: 'DeleteOptions',
        propagationPolicy: 'Background',
        ...(hasPreconditions ? { preconditions } : {}),
      },
      call: 'deleteSecret',
      target: { name, namespace },
    });
  }

  /** Records a core/v1 Event about an object, as controllers do. */
  async createEvent(namespace: string, event: NewEvent, options?: CallOptions): Promise<KubeEvent> {
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    const reference: ObjectReference = {
      ...event.involvedObject,
      namespace: event.involvedObject.namespace ?? namespace,
    };
    return this.request<KubeEvent>({
      ...options,
      method: 'POST',
      path: `/api/v1/namespaces/${segment(namespace, 'namespace name')}/events`,
      body: {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { generateName: `${event.involvedObject.name}.`, namespace },
        involvedObject: reference,
        reason: event.reason,
        message: event.message,
        type: event.type ?? 'Normal',
        source: { component: event.component },
        reportingComponent: event.component,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
      call: 'createEvent',
      target: { namespace },
    });
  }

  /** TokenRequest: a short-lived token for a service account (`kubectl create token`). */
  async createServiceAccountToken(
    namespace: string,
    name: string,
    request: {
      audiences?: readonly string[];
      expirationSeconds?: number;
      boundObjectRef?: ObjectReference;
    } = {},
    options?: CallOptions,
  ): Promise<ServiceAccountToken> {
    const response = await this.request<{ status?: Partial<ServiceAccountToken> }>({
      ...options,
      method: 'POST',
      path: `/api/v1/namespaces/${segment(namespace, 'namespace name')}/serviceaccounts/${segment(name, 'service account name')}/token`,
      body: {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: {
          audiences: request.audiences === undefined ? null : [...request.audiences],
          expirationSeconds: request.expirationSeconds ?? null,
          boundObjectRef: request.boundObjectRef ?? null,
        },
      },
      call: 'createServiceAccountToken',
      target: { name, namespace },
    });
    const status = response.status;
    if (typeof status?.token !== 'string' || status.token === '') {
      throw new CloudtaserError(
        'CT_KUBE_ERROR',
        `the API server at ${this.server} returned a TokenRequest without a token`,
      );
    }
    return { token: status.token, expirationTimestamp: String(status.expirationTimestamp ?? '') };
  }

  /** A Lease; CT_KUBE_NOT_FOUND when there is none by that name. */
  async getLease(namespace: string, name: string, options?: CallOptions): Promise<KubeLease> {
    return withLeaseSpec(
      await this.request<KubeLease>({
        ...options,
        method: 'GET',
        path: `${leasesPath(namespace)}/${segment(name, 'lease name')}`,
        call: 'getLease',
        target: { name, namespace },
      }),
    );
  }

  /** Every Lease in the namespace (optionally by label selector), following continue tokens page by page. */
  async listLeases(
    namespace: string,
    options: CallOptions & { labelSelector?: string } = {},
  ): Promise<KubeLease[]> {
    const leases: KubeLease[] = [];
    let next: string | undefined;
    do {
      const page: KubeList<KubeLease> = await this.request<KubeList<KubeLease>>({
        ...options,
        method: 'GET',
        path: leasesPath(namespace),
        query: { labelSelector: options.labelSelector, limit: LEASE_PAGE_SIZE, continue: next },
        call: 'listLeases',
        target: { namespace },
      });
      for (const item of page.items ?? []) leases.push(withLeaseSpec(item));
      next = page.metadata?.continue || undefined;
    } while (next !== undefined);
    return leases;
  }

  /** Creates a Lease; CT_KUBE_CONFLICT when one by that name exists (another replica got there first). */
  async createLease(
    namespace: string,
    lease: {
      metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
      spec: KubeLeaseSpec;
    },
    options?: CallOptions,
  ): Promise<KubeLease> {
    return withLeaseSpec(
      await this.request<KubeLease>({
        ...options,
        method: 'POST',
        path: leasesPath(namespace),
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: lease.metadata,
          spec: lease.spec,
        },
        call: 'createLease',
        target: { name: lease.metadata.name, namespace },
      }),
    );
  }

  /**
   * Replaces a Lease (PUT). It must carry the metadata.resourceVersion it was read at: the write is a
   * compare-and-swap, and a stale version is CT_KUBE_CONFLICT (someone else renewed or took it meanwhile).
   * A Lease deleted since it was read is created again by this PUT, as the API server allows for Leases (create
   * on update), whatever resourceVersion it carries.
   */
  async updateLease(namespace: string, lease: KubeLease, options?: CallOptions): Promise<KubeLease> {
    const name = lease.metadata.name;
    if (!lease.metadata.resourceVersion)
      throw new CloudtaserError(
        'CT_INVALID_ARGUMENT',
        `updateLease needs metadata.resourceVersion of lease ${JSON.stringify(name)}: read it first, so that the update cannot overwrite another holder's renewal`,
      );
    return withLeaseSpec(
      await this.request<KubeLease>({
        ...options,
        method: 'PUT',
        path: `${leasesPath(namespace)}/${segment(name, 'lease name')}`,
        body: {
          ...lease,
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { ...lease.metadata, namespace },
        },
        call: 'updateLease',
        target: { name, namespace },
      }),
    );
  }

  /**
   * Deletes a Lease; with `resourceVersion` only if it still has that version (CT_KUBE_CONFLICT otherwise).
   * CT_KUBE_NOT_FOUND when it is already gone.
   */
  async deleteLease(
    namespace: string,
    name: string,
    options: CallOptions & { resourceVersion?: string } = {},
  ): Promise<void> {
    await this.request<unknown>({
      ...options,
      method: 'DELETE',
      path: `${leasesPath(namespace)}/${segment(name, 'lease name')}`,
      body: {
        apiVersion: 'v1',
        kind: 'DeleteOptions',
        ...(options.resourceVersion === undefined
          ? {}
          : { preconditions: { resourceVersion: options.resourceVersion } }),
      },
      call: 'deleteLease',
      target: { name, namespace },
    });
  }

  /** Closes pooled connections. The client stays usable; new connections are opened on demand. */
  close(): void {
    this.transport.close();
  }

  private request<T>(spec: RequestSpec): Promise<T> {
    return this.transport.request<T>(spec);
  }
}

function segment(value: string, what: string): string {
  if (typeof value !== 'string' || value === '' || value === '.' || value === '..' || value.length > 253) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `${what} ${JSON.stringify(value)} is not a valid Kubernetes name`,
    );
  }
  return encodeURIComponent(value);
}

const WEBHOOK_CONFIGURATIONS_PATH = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations';

function secretsPath(namespace: string): string {
  return `/api/v1/namespaces/${segment(namespace, 'namespace name')}/secrets`;
}

function configMapsPath(namespace: string): string {
  return `/api/v1/namespaces/${segment(namespace, 'namespace name')}/configmaps`;
}

/** Page size when listing Leases: one page per shard set is the common case. */
const LEASE_PAGE_SIZE = 500;

function leasesPath(namespace: string): string {
  return `/apis/coordination.k8s.io/v1/namespaces/${segment(namespace, 'namespace name')}/leases`;
}

/** The API server leaves out an empty spec; callers always get an object to read. */
function withLeaseSpec(lease: KubeLease): KubeLease {
  return lease.spec === undefined || lease.spec === null ? { ...lease, spec: {} } : lease;
}
