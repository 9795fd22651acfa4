/** The few Kubernetes object shapes cloudtaser reads and writes, as they are on the wire (JSON). */

export interface KubeObjectMeta {
  readonly name: string;
  readonly namespace?: string;
  readonly uid: string;
  readonly resourceVersion: string;
  readonly creationTimestamp?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface KubeNamespace {
  readonly kind?: 'Namespace';
  readonly apiVersion?: 'v1';
  readonly metadata: KubeObjectMeta;
  readonly status?: { readonly phase?: string };
}

export interface KubeSecret {
  readonly kind?: 'Secret';
  readonly apiVersion?: 'v1';
  readonly metadata: KubeObjectMeta;
  readonly type?: string;
  /** Standard base64 of the raw bytes, per key. */
  readonly data?: Readonly<Record<string, string>>;
  readonly immutable?: boolean;
}

export interface KubeConfigMap {
  readonly kind?: 'ConfigMap';
  readonly apiVersion?: 'v1';
  readonly metadata: KubeObjectMeta;
  readonly data?: Readonly<Record<string, string>>;
}

/** The part of an apps/v1 Deployment `doctor` reads: replicas, its first containers' args and probes, status. */
export interface KubeDeployment {
  readonly kind?: 'Deployment';
  readonly apiVersion?: 'apps/v1';
  readonly metadata: KubeObjectMeta;
  readonly spec?: {
    readonly replicas?: number;
    readonly template?: {
      readonly spec?: {
        readonly containers?: ReadonlyArray<{
          readonly name: string;
          readonly args?: readonly string[];
          readonly ports?: ReadonlyArray<{ readonly name?: string; readonly containerPort: number }>;
          readonly livenessProbe?: {
            readonly httpGet?: { readonly path?: string; readonly port?: number | string };
          };
          readonly readinessProbe?: {
            readonly httpGet?: { readonly path?: string; readonly port?: number | string };
          };
        }>;
      };
    };
  };
  readonly status?: {
    readonly replicas?: number;
    readonly readyReplicas?: number;
    readonly availableReplicas?: number;
    readonly conditions?: ReadonlyArray<{
      readonly type: string;
      readonly status: string;
      readonly message?: string;
    }>;
  };
}

/** The part of an admissionregistration.k8s.io/v1 MutatingWebhookConfiguration cloudtaser reads and patches. */
export interface KubeMutatingWebhookConfiguration {
  readonly kind?: 'MutatingWebhookConfiguration';
  readonly apiVersion?: 'admissionregistration.k8s.io/v1';
  readonly metadata: KubeObjectMeta;
  readonly webhooks?: ReadonlyArray<{
    readonly name: string;
    readonly clientConfig?: { readonly caBundle?: string; readonly url?: string; readonly service?: unknown };
  }>;
}

/** One RFC 6902 operation (the subset we send). */
export type JsonPatchOperation =
  | { readonly op: 'test' | 'add' | 'replace'; readonly path: string; readonly value: unknown }
  | { readonly op: 'remove'; readonly path: string };

export interface KubeList<T> {
  readonly metadata: { readonly resourceVersion?: string; readonly continue?: string };
  readonly items: readonly T[];
}

export interface NewSecret {
  readonly metadata: {
    readonly name: string;
    readonly labels?: Readonly<Record<string, string>>;
    readonly annotations?: Readonly<Record<string, string>>;
  };
  readonly type?: string;
  /** Base64 values; use `stringData` for text. */
  readonly data?: Readonly<Record<string, string>>;
  readonly stringData?: Readonly<Record<string, string>>;
}

/** What TokenReview says about a token (`status` of the response). */
export interface TokenReviewStatus {
  readonly authenticated?: boolean;
  readonly user?: {
    readonly username?: string;
    readonly uid?: string;
    readonly groups?: readonly string[];
    readonly extra?: Readonly<Record<string, readonly string[]>>;
  };
  readonly audiences?: readonly string[];
  readonly error?: string;
}

export interface ObjectReference {
  readonly kind: string;
  readonly apiVersion?: string;
  readonly name: string;
  readonly namespace?: string;
  readonly uid?: string;
}

export interface NewEvent {
  readonly involvedObject: ObjectReference;
  readonly reason: string;
  readonly message: string;
  /** @default 'Normal' */
  readonly type?: 'Normal' | 'Warning';
  /** Reporting component, e.g. `cloudtaser-broker`. */
  readonly component: string;
}

export interface KubeEvent {
  readonly metadata: KubeObjectMeta;
  readonly involvedObject: ObjectReference;
  readonly reason?: string;
  readonly message?: string;
  readonly type?: string;
}

export interface ServiceAccountToken {
  readonly token: string;
  readonly expirationTimestamp: string;
}

export interface KubeVersion {
  readonly major: string;
  readonly minor: string;
  readonly gitVersion: string;
}

/** LeaseSpec (coordination.k8s.io/v1). Times are MicroTime: RFC 3339 with six fractional digits, e.g. 2026-12-05T06:30:00.000000Z. */
export interface KubeLeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export interface KubeLease {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    uid?: string;
    creationTimestamp?: string;
  };
  spec: KubeLeaseSpec;
}
