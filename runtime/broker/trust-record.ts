/**
 * The cluster's trust record: the SHA-256 of the one cluster CA this cluster's broker accepts, kept in a ConfigMap
 * the operator owns (public data: the hash names a certificate, it opens nothing). Without an admin pin the
 * broker records the first CA it accepts here, before it goes operational on it, and from then on behaves as
 * pinned, across restarts and re-bootstraps. Moving the cluster to another CA is an admin step
 * (`cloudtaser-cli target trust pin|reset`, or the Helm value `operator.broker.trust.caSha256`), never a side
 * effect of pairing. One implementation, used by the broker and the CLI.
 */
import { CloudtaserError, isCloudtaserError } from '../core/errors.js';
import type { KubeClient, KubeConfigMap } from '../kube/index.js';

/** Where the record lives. */
export interface TrustRecordRef {
  readonly namespace: string;
  readonly name: string;
}

/** Helm's default release (`cloudtaser`) gives the chart's record this name, in the operator's namespace. */
export const DEFAULT_TRUST_RECORD_NAME = 'cloudtaser-trust';
export const DEFAULT_TRUST_RECORD_NAMESPACE = 'cloudtaser-system';

/** ConfigMap keys. */
const KEY_CA_SHA256 = 'caSha256';
const KEY_RECORDED_AT = 'recordedAt';
const KEY_RECORDED_BY = 'recordedBy';

export interface TrustRecord {
  /** The accepted cluster CA (64 lower-case hex), or undefined when nothing is recorded (yet, or after a reset). */
  readonly caSha256?: string;
  readonly recordedAt?: string;
  /** Who wrote it: the broker at first bootstrap, an admin pin, the CLI. */
  readonly recordedBy?: string;
  /** The ConfigMap's resourceVersion, for a conditional write; undefined when the ConfigMap does not exist. */
  readonly version?: string;
}

/** What the broker and the CLI need from a trust record, so tests can hold one in memory. */
export interface TrustRecordStore {
  /** Says where the record is, in messages. */
  readonly description: string;
  /**
   * Throws when it cannot tell, never "nothing recorded": CT_TRUST_RECORD_UNAVAILABLE (RBAC, an API error), or the
   * connection's own code when the API server cannot be reached or used (CT_KUBE_UNREACHABLE, CT_KUBE_CONFIG,
   * CT_KUBE_UNAUTHORIZED, CT_KUBE_CREDENTIAL_PLUGIN, CT_KUBE_TLS).
   */
  read(signal?: AbortSignal): Promise<TrustRecord>;
  /**
   * Writes `caSha256` (undefined clears it) if the record is still at `expectedVersion` (undefined: it must not
   * exist). Throws CT_KUBE_CONFLICT when it changed, CT_TRUST_RECORD_UNAVAILABLE when it cannot write (or a
   * connection failure, as for read).
   */
  write(
    next: { caSha256?: string; recordedBy: string },
    expectedVersion: string | undefined,
    signal?: AbortSignal,
  ): Promise<TrustRecord>;
}

export type TrustRecordKubeApi = Pick<KubeClient, 'getConfigMap' | 'createConfigMap' | 'patchConfigMapData'>;

const HEX64 = /^[0-9a-f]{64}$/;

/** Failures of the connection itself, not of the record: rethrown unchanged. */
const CONNECTION_FAILURES = [
  'CT_KUBE_UNREACHABLE',
  'CT_KUBE_CONFIG',
  'CT_KUBE_UNAUTHORIZED',
  'CT_KUBE_CREDENTIAL_PLUGIN',
  'CT_KUBE_TLS',
  'CT_CANCELLED',
] as const;

/** Normalises and checks a CA hash given by an admin; throws CT_INVALID_ARGUMENT naming `what`. */
export function parseCaSha256(value: string, what: string): string {
  const hash = value.trim().toLowerCase();
  if (!HEX64.test(hash))
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `${what} must be 64 hex characters: the cluster's operational hash (\`cloudtaser-cli source status\` or the registration's operational_hash)`,
    );
  return hash;
}

/** The trust record in a ConfigMap. The broker needs get and update on that one name (the chart creates it). */
export function configMapTrustRecord(kube: TrustRecordKubeApi, ref: TrustRecordRef): TrustRecordStore {
  const description = `ConfigMap ${ref.namespace}/${ref.name}`;
  const unavailable = (verb: string, err: unknown) => {
    // The API server down, a kubeconfig that does not load, credentials it refuses: not about this record, and
    // said as every other Kubernetes call says it.
    if (CONNECTION_FAILURES.some((code) => isCloudtaserError(err, code))) return err as CloudtaserError;
    const cause = err instanceof CloudtaserError ? err : undefined;
    // Only a refusal (403) or a missing namespace or object (404) is what the Role and the chart decide.
    const rbacHint =
      isCloudtaserError(err, 'CT_KUBE_FORBIDDEN') || isCloudtaserError(err, 'CT_KUBE_NOT_FOUND')
        ? `; the broker needs get and patch on it (the chart creates it and its Role grants both, resourceNames: [${ref.name}])`
        : '';
    return new CloudtaserError(
      'CT_TRUST_RECORD_UNAVAILABLE',
      `cannot ${verb} the trust record ${description}: ${cause ? cause.toLine() : String(err)}${rbacHint}`,
      { cause: err },
    );
  };
  return {
    description,
    async read(signal) {
      let configMap: KubeConfigMap;
      try {
        configMap = await kube.getConfigMap(ref.namespace, ref.name, { signal });
      } catch (err) {
        if (isCloudtaserError(err, 'CT_KUBE_NOT_FOUND')) return {};
        throw unavailable('read', err);
      }
      return fromConfigMap(configMap, description);
    },
    async write(next, expectedVersion, signal) {
      const data: Record<string, string | null> =
        next.caSha256 === undefined
          ? { [KEY_CA_SHA256]: null, [KEY_RECORDED_AT]: null, [KEY_RECORDED_BY]: null }
          : {
              [KEY_CA_SHA256]: parseCaSha256(next.caSha256, 'the CA hash to record'),
              [KEY_RECORDED_AT]: new Date().toISOString(),
              [KEY_RECORDED_BY]: next.recordedBy,
            };
      try {
        // A merge patch keeps the chart's labels and annotations (Helm's ownership, resource-policy: keep).
        const written =
          expectedVersion === undefined
            ? await kube.createConfigMap(
                ref.namespace,
                {
                  metadata: {
                    name: ref.name,
                    labels: {
                      'app.kubernetes.io/part-of': 'cloudtaser',
                      'app.kubernetes.io/component': 'trust',
                    },
                  },
                  data: Object.fromEntries(
                    Object.entries(data).filter((entry): entry is [string, string] => entry[1] !== null),
                  ),
                },
                { signal },
              )
            : await kube.patchConfigMapData(ref.namespace, ref.name, data, {
                resourceVersion: expectedVersion,
                signal,
              });
        return fromConfigMap(written, description);
      } catch (err) {
        // Someone wrote first (a create that meets an existing object is the same race).
        if (isCloudtaserError(err, 'CT_KUBE_CONFLICT')) throw err;
        throw unavailable(expectedVersion === undefined ? 'create' : 'patch', err);
      }
    },
  };
}

/** A record kept only in this process: what a library broker without a store uses (restarts forget it). */
export function memoryTrustRecord(): TrustRecordStore {
  let record: TrustRecord = {};
  let version = 0;
  return {
    description: 'process memory (no trust record configured)',
    async read() {
      return record;
    },
    async write(next, expectedVersion) {
      if (expectedVersion !== record.version)
        throw new CloudtaserError('CT_KUBE_CONFLICT', 'the in-memory trust record changed');
      version++;
      record = {
        ...(next.caSha256 !== undefined
          ? { caSha256: next.caSha256, recordedAt: new Date().toISOString(), recordedBy: next.recordedBy }
          : {}),
        version: String(version),
      };
      return record;
    },
  };
}

function fromConfigMap(configMap: KubeConfigMap, description: string): TrustRecord {
  const data = configMap.data ?? {};
  const stored = data[KEY_CA_SHA256];
  if (stored !== undefined && stored !== '' && !HEX64.test(stored)) {
    // A record nobody can read must not count as "no record": that would open trust on first use again.
    throw new CloudtaserError(
      'CT_TRUST_RECORD_UNAVAILABLE',
      `the trust record ${description} holds ${KEY_CA_SHA256}=${JSON.stringify(stored.slice(0, 80))}, not 64 lower-case hex; fix it with \`cloudtaser-cli target trust pin --ca-sha256 <hash>\` or clear it with \`target trust reset\``,
    );
  }
  return {
    ...(stored ? { caSha256: stored } : {}),
    ...(data[KEY_RECORDED_AT] ? { recordedAt: data[KEY_RECORDED_AT] } : {}),
    ...(data[KEY_RECORDED_BY] ? { recordedBy: data[KEY_RECORDED_BY] } : {}),
    version: configMap.metadata.resourceVersion,
  };
}
