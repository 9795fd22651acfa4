/**
 * The OpenBao ACL policies of cloudtaser's two identities, written once: one row per path with its
 * capabilities and why. `cloudtaser-cli source policy`, the docs, the Bridge construct and the tests that run
 * the bridge and registration with exactly these policies all render them from this table.
 *
 * Where they live: both policies are written in the ROOT namespace, and both identities log in there (the
 * bridge by AppRole or a token, the registrar with the token the CLI, the provider and the constructs read
 * from CLOUDTASER_SECRETSTORE_TOKEN). A root-namespace token is valid in every child namespace, and OpenBao
 * checks a policy path against the full request path from the policy's namespace (policy.go parsePath:
 * "Ensure we are using the full request path internally"; acl.go AllowOperation: `ns.Path + req.Path`). So
 * `cloudtaser/...` reaches the namespace root and `cloudtaser/+/...` every cluster namespace `cloudtaser/<fp8>`:
 * `+` matches exactly one path segment, here the namespace name.
 *
 * This module imports nothing, so the constructs can render it at synth time. Its mount names are the
 * registration layout's (RECORDS_MOUNT, WORKLOAD_MOUNT, KUBERNETES_AUTH_MOUNT); a test holds them equal.
 * To add a path: add one row.
 */

export type PolicyIdentity = 'bridge' | 'registrar';

/** OpenBao capabilities this table may grant. */
export type PolicyCapability = 'create' | 'read' | 'update' | 'delete' | 'list' | 'sudo';

/**
 * Which namespace a row's path is relative to: the root namespace, the namespace root (`cloudtaser`), or every
 * cluster namespace (`cloudtaser/+`).
 */
export type PolicyScope = 'root' | 'namespace-root' | 'cluster';

export interface PolicyRow {
  readonly identity: PolicyIdentity;
  readonly scope: PolicyScope;
  /** Path relative to `scope`; `{namespaceRoot}` stands for the namespace root's name. */
  readonly path: string;
  readonly capabilities: readonly PolicyCapability[];
  /** The operation that needs it, and why. */
  readonly why: string;
  /** Rows a deployment may leave out when it does not use the feature. */
  readonly feature?: 'migration' | 'beacon-client-ca';
  /** Capabilities of this row that only `deregister --purge` (`purge_on_destroy`) uses. */
  readonly purgeOnly?: readonly PolicyCapability[];
  /** Capabilities other than `delete` that deregister needs too (asked before a change that deregisters). */
  readonly deregisterUses?: readonly PolicyCapability[];
}

export const POLICY_NAMES: Readonly<Record<PolicyIdentity, string>> = Object.freeze({
  bridge: 'cloudtaser-bridge',
  registrar: 'cloudtaser-registrar',
});

const RECORDS = 'cloudtaser';
const WORKLOAD = 'secret';
const KUBERNETES = 'kubernetes';

export const POLICY_ROWS: readonly PolicyRow[] = Object.freeze([
  // --- registrar: `source register|status|deregister`, cloudtaser_cluster_registration, RegisteredCluster ---
  {
    identity: 'registrar',
    scope: 'root',
    path: 'sys/namespaces/{namespaceRoot}',
    capabilities: ['read', 'update'],
    why: 'register creates the namespace root on first use (update: OpenBao has no existence check there); status and deregister read it',
  },
  {
    identity: 'registrar',
    scope: 'namespace-root',
    path: 'sys/mounts',
    capabilities: ['read'],
    why: 'register looks for the records mount before mounting it',
  },
  {
    identity: 'registrar',
    scope: 'namespace-root',
    path: `sys/mounts/${RECORDS}`,
    capabilities: ['update'],
    why: 'register mounts the records KV v2 on first use',
  },
  {
    identity: 'registrar',
    scope: 'namespace-root',
    path: 'sys/namespaces/+',
    capabilities: ['read', 'update', 'delete'],
    why: "register reads a cluster namespace's owner and creates it; deregister --purge deletes it",
    purgeOnly: ['delete'],
  },
  {
    identity: 'registrar',
    scope: 'namespace-root',
    path: `${RECORDS}/metadata/clusters/`,
    capabilities: ['list'],
    why: 'register refuses a fingerprint whose 8-character prefix a registration from before prefix claims holds; source list lists the registrations',
  },
  {
    identity: 'registrar',
    scope: 'namespace-root',
    path: `${RECORDS}/data/prefixes/+`,
    capabilities: ['create', 'read'],
    why: 'register claims the 8-character fingerprint prefix once (check-and-set 0), so two clusters sharing it never share a namespace, and reads who holds it',
  },
  {
    identity: 'registrar',
    scope: 'namespace-root',
    path: `${RECORDS}/metadata/prefixes/+`,
    capabilities: ['delete'],
    why: 'deregister --purge releases the prefix with the namespace',
    purgeOnly: ['delete'],
  },
  {
    identity: 'registrar',
    scope: 'namespace-root',
    path: `${RECORDS}/data/clusters/+/registered`,
    capabilities: ['create', 'read', 'update'],
    why: 'register writes the registration record (update when attestation or migration settings change, or --rearm sets its window); status and list read it',
  },
  {
    identity: 'registrar',
    scope: 'namespace-root',
    path: `${RECORDS}/metadata/clusters/+/registered`,
    capabilities: ['delete'],
    why: 'deregister removes the registration record',
  },
  {
    identity: 'registrar',
    scope: 'namespace-root',
    path: `${RECORDS}/data/clusters/+/initialized`,
    capabilities: ['read'],
    why: 'register, status and list report whether the broker has bootstrapped',
  },
  {
    identity: 'registrar',
    scope: 'namespace-root',
    path: `${RECORDS}/metadata/clusters/+/initialized`,
    capabilities: ['delete'],
    why: 'register --rearm and deregister remove the initialization record',
  },
  {
    identity: 'registrar',
    scope: 'namespace-root',
    path: `${RECORDS}/data/discovery/journal`,
    capabilities: ['create', 'read', 'update'],
    why: 'register, --rearm and deregister append their change to the discovery journal (read, then check-and-set write; create on first use) so every bridge sees it within one poll',
  },
  {
    identity: 'registrar',
    scope: 'namespace-root',
    path: `${RECORDS}/metadata/discovery/journal`,
    capabilities: ['read'],
    why: 'an append to a discovery journal someone soft-deleted reads its last version, to replace it with check-and-set',
  },
  {
    identity: 'registrar',
    scope: 'cluster',
    path: 'sys/mounts',
    capabilities: ['read'],
    why: "register looks for the cluster namespace's KV mounts before mounting them",
  },
  {
    identity: 'registrar',
    scope: 'cluster',
    path: `sys/mounts/${RECORDS}`,
    capabilities: ['update'],
    why: "register mounts the cluster's records KV v2 (CA and bridge certificate)",
  },
  {
    identity: 'registrar',
    scope: 'cluster',
    path: `sys/mounts/${WORKLOAD}`,
    capabilities: ['update'],
    why: 'register mounts the workload secrets KV v2',
  },
  {
    identity: 'registrar',
    scope: 'cluster',
    path: 'sys/auth',
    capabilities: ['read'],
    why: 'register looks for the Kubernetes auth method before enabling it',
  },
  {
    identity: 'registrar',
    scope: 'cluster',
    path: `sys/auth/${KUBERNETES}`,
    capabilities: ['update', 'sudo'],
    why: 'register enables Kubernetes auth for pods (sudo: OpenBao root-protects sys/auth/*)',
  },
  {
    identity: 'registrar',
    scope: 'cluster',
    path: `auth/${KUBERNETES}/config`,
    capabilities: ['read', 'update'],
    why: "register points Kubernetes auth at the bridge's TokenReview endpoint (read first: unchanged = no write)",
  },
  {
    identity: 'registrar',
    scope: 'cluster',
    path: `${RECORDS}/data/system/bridge-ca`,
    capabilities: ['create', 'read'],
    why: 'register creates the cluster CA once (check-and-set) and reuses it; status reads its certificate',
  },
  {
    identity: 'registrar',
    scope: 'cluster',
    path: `${RECORDS}/data/system/bridge-client`,
    capabilities: ['create', 'read', 'update'],
    why: "register issues the bridge's client certificate, and renews it (update) when it nears expiry",
  },
  {
    identity: 'registrar',
    scope: 'cluster',
    path: `${RECORDS}/metadata/system/bridge-ca`,
    capabilities: ['delete'],
    why: 'deregister removes the cluster CA, so a later registration gets a fresh one',
  },
  {
    identity: 'registrar',
    scope: 'cluster',
    path: `${RECORDS}/metadata/system/bridge-client`,
    capabilities: ['delete'],
    why: "deregister removes the bridge's client certificate",
  },
  {
    identity: 'registrar',
    scope: 'cluster',
    path: `${RECORDS}/data/system/deregistered`,
    capabilities: ['create', 'read', 'update'],
    why: 'deregister marks the namespace it keeps, so a register over it opens a re-arm window (one over a namespace an interrupted register left does not); status reads it',
    deregisterUses: ['create', 'update'],
  },

  {
    identity: 'registrar',
    scope: 'namespace-root',
    path: `${RECORDS}/data/tokenreview/ca`,
    capabilities: ['create', 'read'],
    why: "register creates the TokenReview listener CA once (check-and-set) and gives its certificate to each cluster's Kubernetes auth",
  },
  {
    identity: 'registrar',
    scope: 'cluster',
    path: `${RECORDS}/data/system/tokenreview`,
    capabilities: ['create', 'read', 'update'],
    why: "register records the SHA-256 of the cluster's reviewer credential (update: it repairs a record that does not match the credential, e.g. one an earlier release wrote)",
  },
  {
    identity: 'registrar',
    scope: 'cluster',
    path: `${RECORDS}/metadata/system/tokenreview`,
    capabilities: ['delete'],
    why: "deregister removes the reviewer record, so the bridge refuses the cluster's TokenReviews at once",
  },
  {
    identity: 'registrar',
    scope: 'namespace-root',
    path: `${RECORDS}/data/system/beacon-client-ca`,
    capabilities: ['create', 'read'],
    why: 'source beacon-ca (and cloudtaser_beacon_client_ca) creates the beacon client CA once (check-and-set) and reads its certificate',
    feature: 'beacon-client-ca',
  },

  // --- bridge: `bridge run` (discovery, bootstrap, tunnels, migration) ---
  {
    identity: 'bridge',
    scope: 'namespace-root',
    path: `${RECORDS}/metadata/clusters/`,
    capabilities: ['list'],
    why: 'lists registered clusters when discovery resyncs in full (at start, on a new journal epoch, when it fell behind the journal, every 6 h); steady polls read only the journal',
  },
  {
    identity: 'bridge',
    scope: 'namespace-root',
    path: `${RECORDS}/data/clusters/+/registered`,
    capabilities: ['read'],
    why: 'reads each registration (CA hash, attestation keys, migration setting); it never writes one',
  },
  {
    identity: 'bridge',
    scope: 'namespace-root',
    path: `${RECORDS}/data/clusters/+/initialized`,
    capabilities: ['create', 'read', 'update'],
    why: 'marks a cluster initialized once (create, check-and-set 0); an attested re-bootstrap rewrites it (update, check-and-set); read at discovery and bootstrap',
  },
  {
    identity: 'bridge',
    scope: 'namespace-root',
    path: `${RECORDS}/data/discovery/journal`,
    capabilities: ['create', 'read', 'update'],
    why: 'discovery reads the discovery journal at every poll (one request however many clusters) and creates it when missing; a bootstrap appends its announcement (check-and-set)',
  },
  {
    identity: 'bridge',
    scope: 'namespace-root',
    path: `${RECORDS}/metadata/discovery/journal`,
    capabilities: ['read'],
    why: 'discovery replaces a discovery journal someone soft-deleted: it reads the last version for check-and-set',
  },
  {
    identity: 'bridge',
    scope: 'cluster',
    path: `${RECORDS}/data/system/bridge-ca`,
    capabilities: ['read'],
    why: "signs a bootstrapping broker's CSR with the cluster CA",
  },
  {
    identity: 'bridge',
    scope: 'cluster',
    path: `${RECORDS}/data/system/bridge-client`,
    capabilities: ['read'],
    why: 'its client certificate for the mutual-TLS tunnel',
  },
  {
    identity: 'bridge',
    scope: 'namespace-root',
    path: `${RECORDS}/data/system/beacon-client-ca`,
    capabilities: ['read'],
    why: 'mints its beacon client certificate in memory from the beacon client CA at start (the beacon admits only such bridges)',
  },
  {
    identity: 'bridge',
    scope: 'namespace-root',
    path: `${RECORDS}/data/tokenreview/ca`,
    capabilities: ['read'],
    why: 'issues its TokenReview listener certificate in memory from the listener CA',
  },
  {
    identity: 'bridge',
    scope: 'cluster',
    path: `${RECORDS}/data/system/tokenreview`,
    capabilities: ['read'],
    why: "checks the reviewer credential OpenBao sends on every TokenReview against the cluster's recorded hash",
  },
  {
    identity: 'bridge',
    scope: 'cluster',
    path: `${WORKLOAD}/metadata/k8s/+/+`,
    capabilities: ['read', 'update'],
    why: 'migration: reads who wrote the current version, records its own write (custom metadata)',
    feature: 'migration',
  },
  {
    identity: 'bridge',
    scope: 'cluster',
    path: `${WORKLOAD}/data/k8s/+/+`,
    capabilities: ['create', 'read', 'update'],
    why: 'migration: writes a migrated Secret (create; update only over its own write of the same Secret) and reads it back for the proof; nothing outside secret/k8s/',
    feature: 'migration',
  },
] satisfies PolicyRow[]);

export interface PolicyRenderOptions {
  /** @default 'cloudtaser' */
  readonly namespaceRoot?: string;
  /** Leave out the rows of these features (e.g. a bridge whose clusters never migrate). @default [] */
  readonly without?: readonly NonNullable<PolicyRow['feature']>[];
  /** Use these rows instead of POLICY_ROWS (tests that drop one line). */
  readonly rows?: readonly PolicyRow[];
}

/** The rows of one identity, paths resolved to full paths from the root namespace. */
export function policyRows(identity: PolicyIdentity, options: PolicyRenderOptions = {}): PolicyRow[] {
  const namespaceRoot = options.namespaceRoot ?? 'cloudtaser';
  const without = new Set(options.without ?? []);
  return (options.rows ?? POLICY_ROWS)
    .filter((row) => row.identity === identity && !(row.feature && without.has(row.feature)))
    .map((row) => ({ ...row, path: fullPolicyPath(row, namespaceRoot) }));
}

/** A row's path as written in the policy (relative to the root namespace). */
export function fullPolicyPath(row: Pick<PolicyRow, 'scope' | 'path'>, namespaceRoot: string): string {
  const path = row.path.replaceAll('{namespaceRoot}', namespaceRoot);
  if (row.scope === 'root') return path;
  if (row.scope === 'namespace-root') return `${namespaceRoot}/${path}`;
  return `${namespaceRoot}/+/${path}`;
}

/** The policy as OpenBao HCL, one commented `path` block per row. */
export function renderPolicyHcl(identity: PolicyIdentity, options: PolicyRenderOptions = {}): string {
  const namespaceRoot = options.namespaceRoot ?? 'cloudtaser';
  const rows = policyRows(identity, options);
  const header = [
    `# ${POLICY_NAMES[identity]}: the OpenBao policy of the cloudtaser ${identity === 'bridge' ? 'bridge (bridge run)' : 'registrar (source register/status/deregister/list, the Terraform provider, RegisteredCluster)'}.`,
    '# Write it in the ROOT namespace (no -namespace / X-Vault-Namespace), for a token or AppRole of the root namespace:',
    `#   cloudtaser-cli source policy ${identity} | bao policy write ${POLICY_NAMES[identity]} -`,
    `# Paths are full paths from the root: "${namespaceRoot}/..." is the namespace root, "${namespaceRoot}/+/..." every cluster namespace.`,
  ];
  const blocks = rows.map(
    (row) =>
      `# ${row.why}\npath "${row.path}" {\n  capabilities = [${row.capabilities.map((c) => `"${c}"`).join(', ')}]\n}`,
  );
  return `${header.join('\n')}\n\n${blocks.join('\n\n')}\n`;
}
