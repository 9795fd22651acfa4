/**
 * `cloudtaser_cluster_registration`: registers one cluster (by fingerprint) with OpenBao. Create = register,
 * Read = status (gone -> recreate), Delete = deregister (workload secrets kept unless purge_on_destroy),
 * Import by fingerprint. Key material never reaches state: only the CA certificate (public) and hashes.
 */
import { X509Certificate } from 'node:crypto';
import { initHash, isFingerprint } from '../../runtime/core/hashes.js';
import { isUnknown } from '../cty/values.js';
import { attributeError } from '../framework/diagnostics.js';
import { defineResource } from '../framework/provider.js';
import { loadSecretStoreDomain } from '../load-domain.js';
import { attr, type InferValues } from '../schema/schema.js';
import type { CloudtaserProviderClient } from './provider-config.js';

export const FINGERPRINT_HINT =
  "must be a lower-case UUID: the UID of the cluster's kube-system namespace (`kubectl get namespace kube-system -o jsonpath={.metadata.uid}` or the cloudtaser_cluster_fingerprint data source)";

export const clusterRegistrationBlock = {
  description:
    'Registers a Kubernetes cluster with the secret store: creates its OpenBao namespace, its CA and the ' +
    "bridge's client certificate (kept in OpenBao only), and records the registration the bridge discovers. " +
    'Destroying it deregisters the cluster; stored workload secrets stay unless `purge_on_destroy` is set.',
  attributes: {
    fingerprint: attr.string({
      description: "The cluster's fingerprint: the UID of its `kube-system` namespace (a lower-case UUID).",
      required: true,
      forceNew: true,
      validate: [(v) => (isFingerprint(v) ? undefined : `"${v.slice(0, 80)}" ${FINGERPRINT_HINT}`)],
    }),
    purge_on_destroy: attr.bool({
      description:
        "When true, destroying the registration also deletes the cluster's OpenBao namespace with every " +
        'workload secret in it. Defaults to `false`.',
      optional: true,
      computed: true,
      default: false,
    }),
    id: attr.string({ description: 'Same as `fingerprint`.', computed: true }),
    namespace: attr.string({
      description: "The cluster's OpenBao namespace, `<namespace_root>/<fingerprint[:8]>`.",
      computed: true,
    }),
    init_hash: attr.string({
      description:
        'SHA-256 of `cloudtaser-init:<fingerprint>` (hex): the beacon room the broker bootstraps in.',
      computed: true,
    }),
    operational_hash: attr.string({
      description:
        "SHA-256 of the cluster CA certificate's DER (hex): the beacon room of the operational tunnel.",
      computed: true,
    }),
    ca_cert_pem: attr.string({
      description: 'The cluster CA certificate (PEM, public). Its private key stays in OpenBao.',
      computed: true,
    }),
    initialized: attr.bool({
      description: "Whether the cluster's broker has completed its one-time bootstrap.",
      computed: true,
    }),
  },
};

type Registration = InferValues<typeof clusterRegistrationBlock>;

/** The namespace root is recovered from state so read and destroy work even if provider config moved. */
function namespaceRootOf(state: Registration, client: CloudtaserProviderClient): string | undefined {
  if (typeof state.namespace === 'string' && state.namespace.includes('/')) {
    return state.namespace.slice(0, state.namespace.lastIndexOf('/'));
  }
  return client.namespaceRoot;
}

function normalizePem(pem: string | undefined): string | null {
  if (!pem) return null;
  return new X509Certificate(pem).toString();
}

function namespaceFor(root: string, fingerprint: string): string {
  return `${root}/${fingerprint.slice(0, 8)}`;
}

export const clusterRegistrationResource = defineResource<CloudtaserProviderClient>()({
  typeName: 'cloudtaser_cluster_registration',
  schema: { version: 0, block: clusterRegistrationBlock },

  modifyPlan({ planned, client }) {
    // Pure functions of a known fingerprint are shown in the plan instead of "(known after apply)".
    const fingerprint = planned.fingerprint;
    if (typeof fingerprint !== 'string' || isUnknown(fingerprint) || !isFingerprint(fingerprint)) return;
    planned.id = fingerprint;
    planned.init_hash = initHash(fingerprint);
    if (isUnknown(planned.namespace) && client?.namespaceRoot) {
      planned.namespace = namespaceFor(client.namespaceRoot, fingerprint);
    }
  },

  async create({ planned, client, signal, private: priv }) {
    signal.throwIfAborted();
    const { registerCluster } = (await loadSecretStoreDomain()).registration;
    const openBao = await client.openBao();
    const result = await registerCluster(openBao, {
      fingerprint: planned.fingerprint!,
      namespaceRoot: client.namespaceRoot,
    });
    priv.set('registered_at', result.registeredAt);
    return {
      ...planned,
      id: result.fingerprint,
      namespace: result.namespace,
      init_hash: result.initHash,
      operational_hash: result.operationalHash,
      ca_cert_pem: normalizePem(result.caCertPem),
      initialized: result.initialized,
    };
  },

  async read({ state, client, signal, private: priv }) {
    signal.throwIfAborted();
    const { getClusterStatus } = (await loadSecretStoreDomain()).registration;
    const openBao = await client.openBao();
    const status = await getClusterStatus(openBao, {
      fingerprint: state.fingerprint!,
      namespaceRoot: namespaceRootOf(state, client),
    });
    if (!status.registered) return null;
    if (status.registeredAt) priv.set('registered_at', status.registeredAt);
    return {
      ...state,
      id: status.fingerprint,
      namespace: status.namespace,
      init_hash: status.initHash,
      operational_hash: status.operationalHash ?? state.operational_hash,
      ca_cert_pem: normalizePem(status.caCertPem) ?? state.ca_cert_pem,
      initialized: status.initialized,
      purge_on_destroy: state.purge_on_destroy ?? false,
    };
  },

  async delete({ state, client, signal }) {
    signal.throwIfAborted();
    const { deregisterCluster } = (await loadSecretStoreDomain()).registration;
    const openBao = await client.openBao();
    await deregisterCluster(openBao, {
      fingerprint: state.fingerprint!,
      namespaceRoot: namespaceRootOf(state, client),
      purge: state.purge_on_destroy === true,
    });
  },

  async importState({ id }) {
    const fingerprint = id.trim();
    if (!isFingerprint(fingerprint)) {
      throw attributeError(
        [],
        'CT_INVALID_FINGERPRINT',
        `import ID "${id.slice(0, 80)}" ${FINGERPRINT_HINT}`,
      );
    }
    // Terraform calls read right after; it fills the rest or reports that nothing is registered.
    return { id: fingerprint, fingerprint, purge_on_destroy: false };
  },
});
