/**
 * The provider's functions: `provider::cloudtaser::init_hash(...)` and friends. Each one calls the runtime's
 * own implementation (core/hashes, registration/layout), so a value computed in a configuration before any
 * apply is the same value the CLI, the broker and the bridge compute.
 */
import { X509Certificate } from 'node:crypto';
import { initHash, operationalHash } from '../../runtime/core/hashes.js';
import { isFingerprint, parseFingerprint } from '../../runtime/core/rules.js';
import {
  clusterNamespace,
  DEFAULT_NAMESPACE_ROOT,
  validateNamespaceRoot,
} from '../../runtime/registration/layout.js';
import { FunctionArgumentError, type FunctionDefinition } from '../framework/functions.js';

const fingerprintParameter = {
  name: 'fingerprint',
  type: 'string',
  description:
    "The cluster's fingerprint: the UID of its `kube-system` namespace (a UUID; upper case and surrounding " +
    'spaces are accepted and normalised).',
} as const;

/** parseFingerprint, with its error pointed at argument `index`. */
function fingerprintArgument(value: unknown, index: number): string {
  try {
    return parseFingerprint(value);
  } catch (err) {
    throw new FunctionArgumentError(index, 'CT_INVALID_FINGERPRINT', (err as Error).message);
  }
}

export const initHashFunction: FunctionDefinition = {
  name: 'init_hash',
  summary: 'The beacon room a cluster bootstraps in: SHA-256 of "cloudtaser-init:" and its fingerprint',
  description:
    'Returns the init hash of a cluster (lower-case hex), the same value as `init_hash` of ' +
    '`cloudtaser_cluster_registration` and `cloudtaser-cli source register`, computed without OpenBao, so it is ' +
    'known at plan time.',
  parameters: [fingerprintParameter],
  returns: 'string',
  examples: [
    {
      expression: 'provider::cloudtaser::init_hash("6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b")',
      // A literal, so module loading never hashes (test/provider/provider-config.test.ts checks it).
      result: '"8f74cb9c2af0c95719a827d412fc185bb549833eb1b92eacde487f39b2bdf3ec"',
    },
  ],
  run: ([fingerprint]) => initHash(fingerprintArgument(fingerprint, 0)),
};

export const namespaceFunction: FunctionDefinition = {
  name: 'namespace',
  summary: "A cluster's OpenBao namespace: <namespace_root>/<first 8 characters of the fingerprint>",
  description:
    "Returns the OpenBao namespace that holds a cluster's CA, Kubernetes auth and workload secrets, the same " +
    'value as `namespace` of `cloudtaser_cluster_registration`. The optional second argument is the ' +
    "provider's `namespace_root` when it is not the default `cloudtaser`.",
  parameters: [fingerprintParameter],
  variadic: {
    name: 'namespace_root',
    type: 'string',
    description: 'Optional: the namespace root (default `cloudtaser`); at most one.',
  },
  returns: 'string',
  examples: [
    {
      expression: 'provider::cloudtaser::namespace("6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b")',
      result: '"cloudtaser/6f1c2a3b"',
    },
    {
      expression: 'provider::cloudtaser::namespace("6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b", "team-a")',
      result: '"team-a/6f1c2a3b"',
    },
  ],
  run: ([fingerprint, ...roots]) => {
    const normalised = fingerprintArgument(fingerprint, 0);
    if (roots.length > 1) {
      throw new FunctionArgumentError(
        2,
        'CT_INVALID_ARGUMENT',
        `namespace takes at most one namespace_root after the fingerprint, got ${roots.length}`,
      );
    }
    let root = DEFAULT_NAMESPACE_ROOT;
    if (roots.length === 1) {
      try {
        root = validateNamespaceRoot(String(roots[0]));
      } catch (err) {
        throw new FunctionArgumentError(1, 'CT_INVALID_ARGUMENT', (err as Error).message);
      }
    }
    return clusterNamespace(root, normalised);
  },
};

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----/g;

export const operationalHashFunction: FunctionDefinition = {
  name: 'operational_hash',
  summary: "The beacon room of a cluster's operational tunnel: SHA-256 of its CA certificate (DER)",
  description:
    'Returns the operational hash (lower-case hex) of a cluster CA certificate in PEM form, e.g. ' +
    '`cloudtaser_cluster_registration.<name>.ca_cert_pem`: the same value as `operational_hash` and the ' +
    "broker's `--ca-sha256` pin.",
  parameters: [
    {
      name: 'ca_cert_pem',
      type: 'string',
      description: 'Exactly one PEM certificate (`-----BEGIN CERTIFICATE-----`).',
    },
  ],
  returns: 'string',
  examples: [
    {
      expression: 'provider::cloudtaser::operational_hash(cloudtaser_cluster_registration.prod.ca_cert_pem)',
      result: 'equals cloudtaser_cluster_registration.prod.operational_hash',
    },
  ],
  run: ([pem]) => {
    const text = String(pem);
    const count = text.match(PEM_CERTIFICATE)?.length ?? 0;
    if (count !== 1) {
      throw new FunctionArgumentError(
        0,
        'CT_PKI_INVALID_CERT',
        count === 0
          ? 'ca_cert_pem is not a PEM certificate (no -----BEGIN CERTIFICATE----- line); pass the cluster CA, e.g. cloudtaser_cluster_registration.<name>.ca_cert_pem'
          : `ca_cert_pem holds ${count} certificates; pass exactly one, the cluster CA`,
      );
    }
    let der: Uint8Array;
    try {
      der = new X509Certificate(text).raw;
    } catch (err) {
      throw new FunctionArgumentError(
        0,
        'CT_PKI_INVALID_CERT',
        `ca_cert_pem could not be parsed as an X.509 certificate (${(err as Error).message})`,
      );
    }
    return operationalHash(der);
  },
};

export const isFingerprintFunction: FunctionDefinition = {
  name: 'is_fingerprint',
  summary: 'Whether a value is a cluster fingerprint (a lower-case UUID)',
  description:
    'Returns true when the value is accepted as `fingerprint` of `cloudtaser_cluster_registration`: a ' +
    'lower-case UUID, as Kubernetes prints namespace UIDs. Useful in variable `validation` blocks; null is ' +
    'false (an optional variable left unset does not fail its own validation).',
  parameters: [{ name: 'value', type: 'string', description: 'Any string, or null.', allowNull: true }],
  returns: 'bool',
  examples: [
    {
      expression: 'provider::cloudtaser::is_fingerprint("6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b")',
      result: 'true',
    },
    { expression: 'provider::cloudtaser::is_fingerprint("prod-eu")', result: 'false' },
    { expression: 'provider::cloudtaser::is_fingerprint(null)', result: 'false' },
  ],
  run: ([value]) => value !== null && value !== undefined && isFingerprint(String(value)),
};

export const cloudtaserFunctions: readonly FunctionDefinition[] = [
  initHashFunction,
  isFingerprintFunction,
  namespaceFunction,
  operationalHashFunction,
];
