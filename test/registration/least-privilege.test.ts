/**
 * The shipped OpenBao policies (runtime/registration/policies.ts) are exactly what the two identities need:
 * every operation of the registrar and of the bridge succeeds with them on the OpenBao test server (whose ACL
 * follows upstream: namespaces, `+`, create vs update, sudo), and each capability of each line is needed:
 * taking it away makes a named operation fail with CT_OPENBAO_PERMISSION_DENIED. A new line without an
 * operation that needs it fails here.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createClusterDiscovery } from '../../runtime/bridge/discovery.js';
import { CloudtaserError, isCloudtaserError } from '../../runtime/core/errors.js';
import { silentLogger } from '../../runtime/core/log.js';
import { startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { newMigrationNonce, serveMigration } from '../../runtime/migration/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { issueSelfSignedSync } from '../../runtime/pki/index.js';
import {
  clusterNamespace,
  deregisterCluster,
  ensureBeaconClientCa,
  getClusterStatus,
  KUBERNETES_AUTH_MOUNT,
  loadBeaconClientCa,
  loadClusterTrust,
  loadReviewerSha256,
  loadTokenReviewCa,
  markClusterInitialized,
  missingRegistrarCapabilities,
  POLICY_NAMES,
  POLICY_ROWS,
  type PolicyCapability,
  type PolicyIdentity,
  type PolicyRow,
  paths,
  RECORDS_MOUNT,
  rearmCluster,
  registerCluster,
  renderPolicyHcl,
  WORKLOAD_MOUNT,
} from '../../runtime/registration/index.js';
import { provisionIdentities } from '../openbao-identities.js';

interface World {
  readonly admin: OpenBaoClient;
  readonly registrar: OpenBaoClient;
  readonly bridge: OpenBaoClient;
  readonly namespaceRoot: string;
}

type Operation = readonly [name: string, run: (world: World, fingerprint: string) => Promise<unknown>];

/** Everything the registrar does (CLI, provider and constructs call the same functions). */
const REGISTRAR_OPERATIONS: readonly Operation[] = [
  ['register', (w, fp) => registerCluster(w.registrar, { fingerprint: fp, namespaceRoot: w.namespaceRoot })],
  [
    'register with new settings',
    (w, fp) =>
      registerCluster(w.registrar, { fingerprint: fp, namespaceRoot: w.namespaceRoot, migration: true }),
  ],
  [
    'renew the bridge certificate',
    async (w, fp) => {
      // A certificate the cluster CA did not issue: the next register replaces it (as it does near expiry).
      const stranger = issueSelfSignedSync({ commonName: 'stranger' });
      await w.admin
        .withNamespace(clusterNamespace(w.namespaceRoot, fp))
        .kvWrite(RECORDS_MOUNT, paths.bridgeClient, {
          certificate: stranger.certPem,
          private_key: stranger.keyPem,
          ca_chain: stranger.certPem,
        });
      return registerCluster(w.registrar, { fingerprint: fp, namespaceRoot: w.namespaceRoot });
    },
  ],
  [
    're-point TokenReview',
    (w, fp) =>
      registerCluster(w.registrar, {
        fingerprint: fp,
        namespaceRoot: w.namespaceRoot,
        tokenReviewEndpoint: 'https://cloudtaser-bridge.openbao.svc:8444',
      }),
  ],
  [
    'repair a reviewer record that does not match the credential',
    async (w, fp) => {
      // What an earlier release (a random credential) or a run that stopped between its two writes leaves.
      await w.admin
        .withNamespace(clusterNamespace(w.namespaceRoot, fp))
        .kvWrite(RECORDS_MOUNT, 'system/tokenreview', {
          reviewer_sha256: 'f'.repeat(64),
          created_at: 'then',
        });
      return registerCluster(w.registrar, { fingerprint: fp, namespaceRoot: w.namespaceRoot });
    },
  ],
  [
    'register after the discovery journal was soft-deleted',
    async (w, fp) => {
      await w.admin.withNamespace(w.namespaceRoot).kvDelete(RECORDS_MOUNT, paths.discoveryJournal);
      // A settings change writes the registration record, so it is announced in the journal.
      return registerCluster(w.registrar, {
        fingerprint: fp,
        namespaceRoot: w.namespaceRoot,
        migration: false,
      });
    },
  ],
  ['status', (w, fp) => getClusterStatus(w.registrar, { fingerprint: fp, namespaceRoot: w.namespaceRoot })],
  ['beacon-ca', (w) => ensureBeaconClientCa(w.registrar, { namespaceRoot: w.namespaceRoot })],
  ['rearm', (w, fp) => rearmCluster(w.registrar, { fingerprint: fp, namespaceRoot: w.namespaceRoot })],
  [
    'deregister',
    (w, fp) => deregisterCluster(w.registrar, { fingerprint: fp, namespaceRoot: w.namespaceRoot }),
  ],
  [
    'status of the namespace a deregistration kept',
    (w, fp) =>
      getClusterStatus(w.registrar, {
        fingerprint: fp,
        namespaceRoot: w.namespaceRoot,
        inspectNamespace: true,
      }),
  ],
  [
    'register over the namespace a deregistration kept',
    (w, fp) => registerCluster(w.registrar, { fingerprint: fp, namespaceRoot: w.namespaceRoot }),
  ],
  [
    'deregister --purge',
    async (w, fp) => {
      await registerCluster(w.admin, { fingerprint: fp, namespaceRoot: w.namespaceRoot });
      return deregisterCluster(w.registrar, { fingerprint: fp, namespaceRoot: w.namespaceRoot, purge: true });
    },
  ],
];

async function migrate(w: World, fp: string, resourceVersion: string): Promise<void> {
  const reply = await serveMigration(
    {
      method: 'PUT',
      path: '/migration/v1/secrets/ns1/db',
      headers: {},
      body: Buffer.from(
        JSON.stringify({
          data: { password: resourceVersion },
          source: { uid: '0b0c0d0e-0000-4000-8000-000000000001', resourceVersion },
          nonce: newMigrationNonce(),
        }),
      ),
    },
    {
      cluster: w.bridge.withNamespace(clusterNamespace(w.namespaceRoot, fp)),
      enabled: true,
      log: silentLogger,
    },
  );
  if (reply.status !== 200) {
    const body = JSON.parse(String(reply.body)) as { code: 'CT_OPENBAO_PERMISSION_DENIED'; error: string };
    throw new CloudtaserError(body.code, body.error);
  }
}

/** Everything the bridge does with its own token: discovery, bootstrap, tunnels, migration. */
const BRIDGE_OPERATIONS: readonly Operation[] = [
  [
    'discover',
    (w) =>
      createClusterDiscovery({
        openbao: w.bridge,
        namespaceRoot: w.namespaceRoot,
        logger: silentLogger,
      }).poll(),
  ],
  [
    'mint the beacon client certificate',
    (w) => loadBeaconClientCa(w.bridge, { namespaceRoot: w.namespaceRoot }),
  ],
  [
    'load cluster trust',
    (w, fp) => loadClusterTrust(w.bridge, { namespace: clusterNamespace(w.namespaceRoot, fp) }),
  ],
  [
    'bootstrap',
    async (w, fp) => {
      await getClusterStatus(w.bridge, { fingerprint: fp, namespaceRoot: w.namespaceRoot });
      return markClusterInitialized(w.bridge, {
        fingerprint: fp,
        namespaceRoot: w.namespaceRoot,
        brokerCertSha256: 'a'.repeat(64),
      });
    },
  ],
  [
    'attested re-bootstrap',
    async (w, fp) => {
      const status = await getClusterStatus(w.bridge, { fingerprint: fp, namespaceRoot: w.namespaceRoot });
      return markClusterInitialized(w.bridge, {
        fingerprint: fp,
        namespaceRoot: w.namespaceRoot,
        brokerCertSha256: 'b'.repeat(64),
        replacesVersion: status.initializedVersion,
      });
    },
  ],
  [
    'serve TokenReview',
    async (w, fp) => {
      const ca = await loadTokenReviewCa(w.bridge.withNamespace(w.namespaceRoot));
      const reviewer = await loadReviewerSha256(
        w.bridge.withNamespace(clusterNamespace(w.namespaceRoot, fp)),
      );
      if (!ca || !reviewer)
        throw new Error('registration left no TokenReview listener CA or reviewer record');
    },
  ],
  ['migrate', (w, fp) => migrate(w, fp, '1')],
  ['migrate an edited Secret', (w, fp) => migrate(w, fp, '2')],
  [
    'replace a soft-deleted discovery journal',
    async (w) => {
      await w.admin.withNamespace(w.namespaceRoot).kvDelete(RECORDS_MOUNT, paths.discoveryJournal);
      const discovery = createClusterDiscovery({
        openbao: w.bridge,
        namespaceRoot: w.namespaceRoot,
        logger: silentLogger,
      });
      return discovery.poll();
    },
  ],
  [
    'start a discovery journal where none exists',
    async (w) => {
      await w.admin.withNamespace(w.namespaceRoot).kvDeleteMetadata(RECORDS_MOUNT, paths.discoveryJournal);
      const discovery = createClusterDiscovery({
        openbao: w.bridge,
        namespaceRoot: w.namespaceRoot,
        logger: silentLogger,
      });
      return discovery.poll();
    },
  ],
];

/** Which operation fails first when a capability of a line is taken away: `<identity> <path> <capability>`. */
const NEEDED_BY: Record<string, string> = {
  'registrar sys/namespaces/{namespaceRoot} read': 'register',
  'registrar sys/namespaces/{namespaceRoot} update': 'register',
  'registrar namespace-root:sys/mounts read': 'register',
  'registrar namespace-root:sys/mounts/cloudtaser update': 'register',
  'registrar namespace-root:sys/namespaces/+ read': 'register',
  'registrar namespace-root:sys/namespaces/+ update': 'register',
  'registrar namespace-root:sys/namespaces/+ delete': 'deregister --purge',
  'registrar namespace-root:cloudtaser/metadata/clusters/ list': 'register',
  'registrar namespace-root:cloudtaser/data/prefixes/+ create': 'register',
  'registrar namespace-root:cloudtaser/data/prefixes/+ read': 'register',
  'registrar namespace-root:cloudtaser/metadata/prefixes/+ delete': 'deregister --purge',
  'registrar namespace-root:cloudtaser/data/clusters/+/registered create': 'register',
  'registrar namespace-root:cloudtaser/data/clusters/+/registered read': 'register',
  'registrar namespace-root:cloudtaser/data/clusters/+/registered update': 'register with new settings',
  'registrar namespace-root:cloudtaser/metadata/clusters/+/registered delete': 'deregister',
  'registrar namespace-root:cloudtaser/data/clusters/+/initialized read': 'register',
  'registrar namespace-root:cloudtaser/metadata/clusters/+/initialized delete': 'rearm',
  'registrar cluster:sys/mounts read': 'register',
  'registrar cluster:sys/mounts/cloudtaser update': 'register',
  'registrar cluster:sys/mounts/secret update': 'register',
  'registrar cluster:sys/auth read': 'register',
  'registrar cluster:sys/auth/kubernetes update': 'register',
  'registrar cluster:sys/auth/kubernetes sudo': 'register',
  'registrar cluster:auth/kubernetes/config read': 'register',
  'registrar cluster:auth/kubernetes/config update': 'register',
  'registrar cluster:cloudtaser/data/system/bridge-ca create': 'register',
  'registrar cluster:cloudtaser/data/system/bridge-ca read': 'register',
  'registrar cluster:cloudtaser/data/system/bridge-client create': 'register',
  'registrar cluster:cloudtaser/data/system/bridge-client read': 'register',
  'registrar cluster:cloudtaser/data/system/bridge-client update': 'renew the bridge certificate',
  'registrar cluster:cloudtaser/metadata/system/bridge-ca delete': 'deregister',
  'registrar cluster:cloudtaser/metadata/system/bridge-client delete': 'deregister',
  'registrar cluster:cloudtaser/data/system/deregistered create': 'deregister',
  'registrar cluster:cloudtaser/data/system/deregistered read': 'register with new settings',
  'registrar cluster:cloudtaser/data/system/deregistered update': 'deregister --purge',
  'registrar namespace-root:cloudtaser/data/tokenreview/ca create': 'register',
  'registrar namespace-root:cloudtaser/data/tokenreview/ca read': 'register',
  'registrar cluster:cloudtaser/data/system/tokenreview create': 'register',
  'registrar cluster:cloudtaser/data/system/tokenreview read': 'register',
  'registrar cluster:cloudtaser/data/system/tokenreview update':
    'repair a reviewer record that does not match the credential',
  'registrar cluster:cloudtaser/metadata/system/tokenreview delete': 'deregister',
  'bridge namespace-root:cloudtaser/data/tokenreview/ca read': 'serve TokenReview',
  'registrar namespace-root:cloudtaser/data/system/beacon-client-ca create': 'beacon-ca',
  'registrar namespace-root:cloudtaser/data/system/beacon-client-ca read': 'beacon-ca',
  'bridge namespace-root:cloudtaser/data/system/beacon-client-ca read': 'mint the beacon client certificate',
  'bridge cluster:cloudtaser/data/system/tokenreview read': 'serve TokenReview',
  'registrar namespace-root:cloudtaser/data/discovery/journal create': 'register',
  'registrar namespace-root:cloudtaser/data/discovery/journal read': 'register',
  'registrar namespace-root:cloudtaser/data/discovery/journal update': 'register with new settings',
  'registrar namespace-root:cloudtaser/metadata/discovery/journal read':
    'register after the discovery journal was soft-deleted',
  'bridge namespace-root:cloudtaser/data/discovery/journal create':
    'start a discovery journal where none exists',
  'bridge namespace-root:cloudtaser/data/discovery/journal read': 'discover',
  'bridge namespace-root:cloudtaser/data/discovery/journal update': 'bootstrap',
  'bridge namespace-root:cloudtaser/metadata/discovery/journal read':
    'replace a soft-deleted discovery journal',
  'bridge namespace-root:cloudtaser/metadata/clusters/ list': 'discover',
  'bridge namespace-root:cloudtaser/data/clusters/+/registered read': 'discover',
  'bridge namespace-root:cloudtaser/data/clusters/+/initialized create': 'bootstrap',
  'bridge namespace-root:cloudtaser/data/clusters/+/initialized read': 'discover',
  'bridge namespace-root:cloudtaser/data/clusters/+/initialized update': 'attested re-bootstrap',
  'bridge cluster:cloudtaser/data/system/bridge-ca read': 'load cluster trust',
  'bridge cluster:cloudtaser/data/system/bridge-client read': 'load cluster trust',
  'bridge cluster:secret/metadata/k8s/+/+ read': 'migrate',
  'bridge cluster:secret/metadata/k8s/+/+ update': 'migrate',
  'bridge cluster:secret/data/k8s/+/+ create': 'migrate',
  'bridge cluster:secret/data/k8s/+/+ read': 'migrate',
  'bridge cluster:secret/data/k8s/+/+ update': 'migrate an edited Secret',
};

function lineKey(row: PolicyRow, capability: PolicyCapability): string {
  const where = row.scope === 'root' ? '' : `${row.scope}:`;
  return `${row.identity} ${where}${row.path} ${capability}`;
}

/**
 * A fresh OpenBao, the identities provisioned with `rows`, and every operation of `identity` in order on a fresh
 * fingerprint. Resolves with the first operation that failed and its error, or undefined when all passed.
 */
async function runAs(
  identity: PolicyIdentity,
  rows: readonly PolicyRow[] = POLICY_ROWS,
  namespaceRoot = 'cloudtaser',
): Promise<{ operation: string; error: unknown } | undefined> {
  const server = await startOpenBaoTestServer();
  const admin = new OpenBaoClient({ address: server.address, token: server.rootToken, retries: 0 });
  try {
    const ids = await provisionIdentities(admin, { rows, namespaceRoot });
    const world: World = {
      admin,
      registrar: admin.withToken(ids.registrarToken),
      bridge: admin.withToken(ids.bridgeToken),
      namespaceRoot,
    };
    const fingerprint = randomUUID();
    // The bridge serves registrations an admin made (with the full registrar policy, as in production).
    if (identity === 'bridge') {
      await registerCluster(admin, { fingerprint, namespaceRoot, migration: true, logger: silentLogger });
      await ensureBeaconClientCa(admin, { namespaceRoot });
    }
    const operations = identity === 'bridge' ? BRIDGE_OPERATIONS : REGISTRAR_OPERATIONS;
    for (const [name, run] of operations) {
      try {
        await run(world, fingerprint);
      } catch (error) {
        return { operation: name, error };
      }
    }
    return undefined;
  } finally {
    await admin.close();
    await server.close();
  }
}

describe('shipped OpenBao policies', () => {
  it("uses the registration layout's mounts and record paths", () => {
    const text = `${renderPolicyHcl('registrar')}\n${renderPolicyHcl('bridge')}`;
    expect(text).toContain(`cloudtaser/${RECORDS_MOUNT}/data/${paths.registered('+')}`);
    expect(text).toContain(`cloudtaser/${RECORDS_MOUNT}/data/${paths.initialized('+')}`);
    expect(text).toContain(`cloudtaser/+/${RECORDS_MOUNT}/data/${paths.bridgeCa}`);
    expect(text).toContain(`cloudtaser/${RECORDS_MOUNT}/data/${paths.beaconClientCa}`);
    expect(text).toContain(`cloudtaser/+/${RECORDS_MOUNT}/data/${paths.bridgeClient}`);
    expect(text).toContain(`cloudtaser/+/auth/${KUBERNETES_AUTH_MOUNT}/config`);
    expect(text).toContain(`cloudtaser/+/${WORKLOAD_MOUNT}/data/k8s/+/+`);
  });

  it('are documented in docs/openbao-policies.md exactly as shipped', () => {
    const doc = readFileSync(resolve(import.meta.dirname, '../../docs/openbao-policies.md'), 'utf8');
    expect(doc).toContain(renderPolicyHcl('registrar'));
    expect(doc).toContain(renderPolicyHcl('bridge'));
    for (const row of POLICY_ROWS) expect(doc).toContain(row.why);
  });

  it.each(['registrar', 'bridge'] as const)('let the %s do everything it does', async (identity) => {
    expect(await runAs(identity)).toBeUndefined();
  });

  it('work the same under another namespace root (source policy --namespace-root)', async () => {
    expect(await runAs('registrar', POLICY_ROWS, 'acme-ct')).toBeUndefined();
    expect(await runAs('bridge', POLICY_ROWS, 'acme-ct')).toBeUndefined();
    expect(renderPolicyHcl('bridge', { namespaceRoot: 'acme-ct' })).not.toMatch(/"cloudtaser\//);
  });

  it('name, for every capability of every line, the operation that needs it', () => {
    const lines = POLICY_ROWS.flatMap((row) => row.capabilities.map((c) => lineKey(row, c)));
    expect(lines.filter((line) => !(line in NEEDED_BY))).toEqual([]);
    expect(Object.keys(NEEDED_BY).filter((line) => !lines.includes(line))).toEqual([]);
  });

  const cases = POLICY_ROWS.flatMap((row, index) =>
    row.capabilities.map((capability) => ({ row, index, capability, line: lineKey(row, capability) })),
  );
  it.each(cases)('need $line', async ({ row, index, capability, line }) => {
    const reduced = POLICY_ROWS.map((r, i) =>
      i === index ? { ...r, capabilities: r.capabilities.filter((c) => c !== capability) } : r,
    ).filter((r) => r.capabilities.length > 0);
    const failure = await runAs(row.identity, reduced);
    expect(failure?.operation, `without "${line}" every operation still passed`).toBe(NEEDED_BY[line]);
    expect(isCloudtaserError(failure?.error, 'CT_OPENBAO_PERMISSION_DENIED'), String(failure?.error)).toBe(
      true,
    );
  });
});

describe('the registrar check asked before a change (missingRegistrarCapabilities)', () => {
  // The provider asks this at plan time, so a replacement never deregisters with a policy that cannot register
  // again. It must name exactly the line taken away, for every line register or deregister needs.
  it('finds nothing missing with the shipped policy and names each registrar line taken away', async () => {
    const server = await startOpenBaoTestServer();
    const admin = new OpenBaoClient({ address: server.address, token: server.rootToken, retries: 0 });
    try {
      const ids = await provisionIdentities(admin, { namespaceRoot: 'acme-ct' });
      const registrar = admin.withToken(ids.registrarToken);
      const fingerprint = randomUUID();
      const everything = {
        fingerprint,
        namespaceRoot: 'acme-ct',
        register: true,
        deregister: 'purge',
      } as const;
      expect(await missingRegistrarCapabilities(registrar, everything)).toEqual([]);
      expect(await missingRegistrarCapabilities(admin, everything)).toEqual([]);
      // Another root than the policy's: every line is missing, named with this cluster's paths.
      const elsewhere = await missingRegistrarCapabilities(registrar, {
        ...everything,
        namespaceRoot: 'other',
      });
      expect(elsewhere.map((m) => m.path)).toContain(`other/${fingerprint.slice(0, 8)}/sys/auth/kubernetes`);
      expect(elsewhere.map((m) => m.path)).toContain(
        `other/cloudtaser/data/clusters/${fingerprint}/registered`,
      );
      expect(elsewhere.map((m) => m.path)).toContain(
        `other/cloudtaser/data/prefixes/${fingerprint.slice(0, 8)}`,
      );

      const registrarCases = POLICY_ROWS.flatMap((row, index) =>
        row.identity === 'registrar' && row.feature !== 'beacon-client-ca'
          ? row.capabilities.map((capability) => ({ row, index, capability }))
          : [],
      );
      expect(registrarCases.length).toBeGreaterThan(30);
      for (const { row, index, capability } of registrarCases) {
        const reduced = POLICY_ROWS.map((r, i) =>
          i === index ? { ...r, capabilities: r.capabilities.filter((c) => c !== capability) } : r,
        ).filter((r) => r.capabilities.length > 0);
        await admin.writePolicy(
          POLICY_NAMES.registrar,
          renderPolicyHcl('registrar', { rows: reduced, namespaceRoot: 'acme-ct' }),
        );
        const line = lineKey(row, capability);
        const missing = await missingRegistrarCapabilities(registrar, everything);
        expect(
          missing.map((m) => m.missing),
          line,
        ).toEqual([[capability]]);
        // What each kind of change asks: register never needs delete; deregister without purge never needs
        // what only a purge uses.
        const forRegister = await missingRegistrarCapabilities(registrar, {
          ...everything,
          deregister: false,
        });
        expect(forRegister.length, line).toBe(capability === 'delete' ? 0 : 1);
        const keep = await missingRegistrarCapabilities(registrar, { ...everything, deregister: 'keep' });
        expect(keep.length, line).toBe(row.purgeOnly?.includes(capability) ? 0 : 1);
      }
      // A namespace root that is itself named like a records folder: its name is not a path segment of the rows
      // (before: `clusters/<fingerprint>/sys/mounts` was asked instead of `clusters/<prefix>/sys/mounts`).
      const odd = await provisionIdentities(admin, { namespaceRoot: 'clusters' });
      // Written for this cluster's namespace only (an admin may narrow `+` to the prefixes it registers).
      await admin.writePolicy(
        POLICY_NAMES.registrar,
        renderPolicyHcl('registrar', { namespaceRoot: 'clusters' }).replaceAll(
          '"clusters/+/',
          `"clusters/${fingerprint.slice(0, 8)}/`,
        ),
      );
      expect(
        await missingRegistrarCapabilities(admin.withToken(odd.registrarToken), {
          ...everything,
          namespaceRoot: 'clusters',
        }),
      ).toEqual([]);
    } finally {
      await admin.close();
      await server.close();
    }
  });
});

describe('what the identities cannot do', () => {
  async function world() {
    const server = await startOpenBaoTestServer();
    const admin = new OpenBaoClient({ address: server.address, token: server.rootToken, retries: 0 });
    const ids = await provisionIdentities(admin);
    const fingerprint = randomUUID();
    const cluster = await registerCluster(admin, { fingerprint, migration: true });
    await admin.withNamespace(cluster.namespace).kvWrite(WORKLOAD_MOUNT, 'app/db', { password: 'workload' });
    return {
      fingerprint,
      namespace: cluster.namespace,
      bridge: admin.withToken(ids.bridgeToken),
      registrar: admin.withToken(ids.registrarToken),
      async close() {
        await admin.close();
        await server.close();
      },
    };
  }

  const denied = async (promise: Promise<unknown>) =>
    expect(
      await promise.then(
        () => 'allowed',
        (err) => (err as CloudtaserError).code,
      ),
    ).toBe('CT_OPENBAO_PERMISSION_DENIED');

  it('the bridge reads no workload secret outside secret/k8s/, writes no registration, creates no namespace', async () => {
    const w = await world();
    try {
      const cluster = w.bridge.withNamespace(w.namespace);
      const root = w.bridge.withNamespace('cloudtaser');
      await denied(cluster.kvRead(WORKLOAD_MOUNT, 'app/db'));
      await denied(cluster.kvList(WORKLOAD_MOUNT, 'app'));
      await denied(cluster.kvWrite(WORKLOAD_MOUNT, 'app/db', { password: 'planted' }));
      await denied(
        root.kvWrite(RECORDS_MOUNT, paths.registered(w.fingerprint), { fingerprint: w.fingerprint }),
      );
      await denied(root.kvDeleteMetadata(RECORDS_MOUNT, paths.registered(w.fingerprint)));
      await denied(root.kvWrite(RECORDS_MOUNT, paths.registered(randomUUID()), { planted: true }));
      await denied(cluster.kvWrite(RECORDS_MOUNT, paths.bridgeCa, { certificate: 'x', private_key: 'y' }));
      await denied(w.bridge.createNamespace('elsewhere'));
      await denied(root.createNamespace('abcdef12'));
      await denied(cluster.writePolicy('mine', 'path "*" { capabilities = ["sudo"] }'));
      await denied(cluster.enableAuth('userpass-x', 'approle'));
      await denied(cluster.request('GET', `auth/${KUBERNETES_AUTH_MOUNT}/config`));
      // Migration reach is exactly two segments below k8s/: no deeper path, no listing.
      await denied(cluster.kvWrite(WORKLOAD_MOUNT, 'k8s/a/b/c', { v: '1' }));
      await denied(cluster.kvList(WORKLOAD_MOUNT, 'k8s'));
    } finally {
      await w.close();
    }
  });

  it('the registrar reads no workload secret and cannot mark a cluster initialized', async () => {
    const w = await world();
    try {
      const cluster = w.registrar.withNamespace(w.namespace);
      await denied(cluster.kvRead(WORKLOAD_MOUNT, 'app/db'));
      await denied(cluster.kvWrite(WORKLOAD_MOUNT, 'app/db', { password: 'planted' }));
      await denied(cluster.kvWrite(WORKLOAD_MOUNT, 'k8s/ns/db', { password: 'planted' }));
      await denied(
        markClusterInitialized(w.registrar, { fingerprint: w.fingerprint, brokerCertSha256: 'c'.repeat(64) }),
      );
      await denied(cluster.writePolicy('mine', 'path "*" { capabilities = ["read"] }'));
      await denied(w.registrar.writePolicy('cloudtaser-bridge', 'path "*" { capabilities = ["read"] }'));
    } finally {
      await w.close();
    }
  });

  it('without the migration lines the bridge policy names no secret/ path and migration fails with a hint', async () => {
    const hcl = renderPolicyHcl('bridge', { without: ['migration'] });
    expect(hcl).not.toContain('/secret/');
    const rows = POLICY_ROWS.filter((row) => row.feature !== 'migration');
    const failure = await runAs('bridge', rows);
    expect(failure?.operation).toBe('migrate');
    expect(String((failure?.error as CloudtaserError | undefined)?.message)).toContain(
      'cloudtaser-cli source policy bridge',
    );
  });
});
