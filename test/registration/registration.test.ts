import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initHash } from '../../runtime/core/hashes.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import {
  auditRegistrations,
  DEFAULT_TOKENREVIEW_ENDPOINT,
  deregisterCluster,
  ensureBeaconClientCa,
  getClusterStatus,
  listRegisteredClusters,
  loadClusterTrust,
  loadTokenReviewCa,
  markClusterInitialized,
  POLICY_ROWS,
  readTokenReviewEndpoint,
  rearmCluster,
  registerCluster,
  renderPolicyHcl,
  validateNamespaceRoot,
} from '../../runtime/registration/index.js';
import { captureLogger } from '../beacon/helpers.js';
import { provisionIdentities } from '../openbao-identities.js';

const FP = '0ad50c05-1153-4508-9237-4cb2912e2c23';
const CLASHING_FP = '0ad50c05-ffff-4508-9237-4cb2912e2c23';

function randomFingerprint(): string {
  return crypto.randomUUID();
}

describe('registration against the OpenBao test server', () => {
  let server: OpenBaoTestServer;
  /** Root token, only to inspect what registration wrote. */
  let admin: OpenBaoClient;
  /** Registration runs with exactly the shipped registrar policy, the bridge's calls with the bridge policy. */
  let registrar: OpenBaoClient;
  let registrarToken: string;
  let bridge: OpenBaoClient;

  beforeAll(async () => {
    server = await startOpenBaoTestServer();
    admin = new OpenBaoClient({ address: server.address, token: server.rootToken, retries: 0 });
    const identities = await provisionIdentities(admin);
    registrar = admin.withToken(identities.registrarToken);
    registrarToken = identities.registrarToken;
    bridge = admin.withToken(identities.bridgeToken);
  });
  afterAll(async () => {
    await admin.close();
    await server.close();
  });

  it('repairs a damaged record on a plain re-run and keeps what it still says (migration, registered_at)', async () => {
    // The repair every CT_REGISTRATION_CORRUPT names; an outside audit saw it turn migration off and reset the date.
    const fp = randomFingerprint();
    const records = admin.withNamespace('cloudtaser');
    const first = await registerCluster(registrar, { fingerprint: fp, migration: true });
    const path = `clusters/${fp}/registered`;
    const stored = (await records.kvRead('cloudtaser', path))!.data;
    const { ca_sha256: _dropped, ...damaged } = stored;
    await records.kvWrite('cloudtaser', path, damaged);
    await expect(getClusterStatus(registrar, { fingerprint: fp })).rejects.toMatchObject({
      code: 'CT_REGISTRATION_CORRUPT',
    });
    const repaired = await registerCluster(registrar, { fingerprint: fp });
    expect(repaired).toMatchObject({ migrationEnabled: true, operationalHash: first.operationalHash });
    const after = (await records.kvRead('cloudtaser', path))!.data;
    expect(after).toMatchObject({
      fingerprint: fp,
      ca_sha256: first.operationalHash,
      migration_enabled: true,
      registered_at: stored.registered_at,
    });
    // A record naming another fingerprint is not this cluster's to keep anything from: rewritten, no loop.
    await records.kvWrite('cloudtaser', path, { ...after, fingerprint: randomFingerprint() });
    await registerCluster(registrar, { fingerprint: fp });
    expect((await getClusterStatus(registrar, { fingerprint: fp })).registered).toBe(true);
    // The other tests here count the clusters registered.
    await deregisterCluster(admin, { fingerprint: fp, purge: true });
  });

  it('creates the namespace, mounts, CA, bridge certificate and records at the documented paths', async () => {
    const result = await registerCluster(registrar, { fingerprint: FP });
    expect(result).toMatchObject({
      fingerprint: FP,
      namespace: 'cloudtaser/0ad50c05',
      initialized: false,
      changed: true,
    });
    expect(result.initHash).toBe('5af11b82299622a908c5aa10383bfcfd84f6cd251c7094e2246c7daf419dc463');
    const ca = new X509Certificate(result.caCertPem);
    expect(result.operationalHash).toBe(ca.fingerprint256.replaceAll(':', '').toLowerCase());

    const root = admin.withNamespace('cloudtaser');
    const record = await root.kvRead('cloudtaser', `clusters/${FP}/registered`);
    expect(record?.data).toMatchObject({
      fingerprint: FP,
      namespace: 'cloudtaser/0ad50c05',
      ca_sha256: result.operationalHash,
    });
    const cluster = admin.withNamespace('cloudtaser/0ad50c05');
    const mounts = await cluster.listMounts();
    expect(Object.keys(mounts)).toEqual(expect.arrayContaining(['cloudtaser/', 'secret/']));
    expect((await cluster.kvRead('cloudtaser', 'system/bridge-ca'))?.data.certificate).toBe(result.caCertPem);
    const bridge = await cluster.kvRead('cloudtaser', 'system/bridge-client');
    expect(new X509Certificate(String(bridge?.data.certificate)).checkIssued(ca)).toBe(true);
  });

  it('gives up with a clear CT_OPENBAO_CAS_MISMATCH when the CA record keeps changing under it', async () => {
    server.injectFault({
      pathPattern: /\/data\/system\/bridge-ca$/,
      method: 'POST',
      status: 400,
      errors: ['check-and-set parameter did not match the current version'],
      times: 5,
    });
    const hasty = new OpenBaoClient({
      address: server.address,
      token: server.rootToken,
      retries: 0,
      readAfterWriteTimeoutMs: 0,
    });
    try {
      const err = await registerCluster(hasty, { fingerprint: randomFingerprint() }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'CT_OPENBAO_CAS_MISMATCH' });
      expect((err as Error).message).toMatch(/changed under this registration 5 times.*run this one again/);
    } finally {
      await hasty.close();
    }
  });

  it('stops with a clear error, not a loop, when the CA record was soft-deleted (kv delete) and register runs again', async () => {
    const fp = randomFingerprint();
    const first = await registerCluster(admin, { fingerprint: fp });
    await admin.withNamespace(first.namespace).kvDelete('cloudtaser', 'system/bridge-ca');
    const err = await registerCluster(admin, { fingerprint: fp }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'CT_OPENBAO_CAS_MISMATCH' });
    expect((err as Error).message).toMatch(/cluster CA record changed .* 5 times.*kv undelete/);
  });

  it('is idempotent: a second run keeps the same CA and reports no change', async () => {
    const first = await registerCluster(registrar, { fingerprint: FP });
    const second = await registerCluster(registrar, { fingerprint: FP });
    expect(second.operationalHash).toBe(first.operationalHash);
    expect(second.registeredAt).toBe(first.registeredAt);
    expect(second.changed).toBe(false);
  });

  it('keeps the TokenReview endpoint a cluster points at when a re-run does not name one', async () => {
    const fingerprint = 'e7000000-0000-4000-8000-000000000071';
    const explicit = 'http://127.0.0.1:47144';
    await registerCluster(registrar, { fingerprint, tokenReviewEndpoint: explicit });
    const again = await registerCluster(registrar, { fingerprint });
    // Before: the re-run moved it to the default (an outside upgrade test), breaking every pod login.
    expect(again.changed).toBe(false);
    const status = await getClusterStatus(registrar, { fingerprint });
    const ns = admin.withNamespace(status.namespace);
    expect(await readTokenReviewEndpoint(ns, fingerprint)).toBe(explicit);
    // Named, it moves; a new registration gets the default.
    await registerCluster(registrar, { fingerprint, tokenReviewEndpoint: 'https://bridge.example:8444' });
    expect(await readTokenReviewEndpoint(ns, fingerprint)).toBe('https://bridge.example:8444');
    const fresh = 'e7100000-0000-4000-8000-000000000072';
    const created = await registerCluster(registrar, { fingerprint: fresh });
    expect(await readTokenReviewEndpoint(admin.withNamespace(created.namespace), fresh)).toBe(
      DEFAULT_TOKENREVIEW_ENDPOINT,
    );
  });

  it('completes a half-done earlier run (namespace created, records missing)', async () => {
    const fp = randomFingerprint();
    await admin
      .withNamespace('cloudtaser')
      .createNamespace(fp.slice(0, 8), { customMetadata: { cloudtaser_fingerprint: fp } });
    const result = await registerCluster(registrar, { fingerprint: fp });
    expect(result.changed).toBe(true);
    expect((await getClusterStatus(registrar, { fingerprint: fp })).registered).toBe(true);
  });

  it('agrees on one CA when two registrations of the same cluster race', async () => {
    const fp = randomFingerprint();
    const [a, b] = await Promise.all([
      registerCluster(registrar, { fingerprint: fp }),
      registerCluster(registrar, { fingerprint: fp }),
    ]);
    expect(a.operationalHash).toBe(b.operationalHash);
    // One record, written once: both runs report the registration time that is stored (an outside fleet test saw
    // each run report its own `registeredAt`, one of which was overwritten by the other's write).
    const stored = await admin.withNamespace('cloudtaser').kvRead('cloudtaser', `clusters/${fp}/registered`);
    expect(stored?.version).toBe(1);
    expect(a.registeredAt).toBe(stored?.data.registered_at);
    expect(b.registeredAt).toBe(stored?.data.registered_at);
  });

  it('loses no setting when two runs change one registration at once: the later write fails as a race to run again', async () => {
    // Before, the record write had no check-and-set: of a run turning migration off and one turning attestation on,
    // the later write undid the other's setting and both reported success.
    const fp = randomFingerprint();
    await registerCluster(registrar, { fingerprint: fp, migration: true });
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = { ...pair.publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'ES256', use: 'sig' };
    const attestation = { issuer: 'https://kubernetes.default.svc', jwks: { keys: [jwk] } };
    const [migrationOff, attested] = await Promise.allSettled([
      registerCluster(registrar, { fingerprint: fp, migration: false }),
      registerCluster(registrar, { fingerprint: fp, attestation }),
    ]);
    const stored = (await admin.withNamespace('cloudtaser').kvRead('cloudtaser', `clusters/${fp}/registered`))
      ?.data;
    // What a run reported done is what is stored: no success whose setting another write undid.
    if (migrationOff.status === 'fulfilled') expect(stored?.migration_enabled).toBeUndefined();
    if (attested.status === 'fulfilled') expect(stored?.attestation).toBeDefined();
    const lost = [migrationOff, attested].filter((o) => o.status === 'rejected');
    expect(lost.length).toBeLessThanOrEqual(1);
    for (const o of lost)
      expect((o as PromiseRejectedResult).reason).toMatchObject({
        code: 'CT_OPENBAO_CAS_MISMATCH',
        message: expect.stringContaining('run this one again'),
      });
  });

  it('says to fix the policy first when it refuses a step, since a plain rerun meets the same refusal', async () => {
    // An outside docs drill used another namespace root than the registrar policy's and was told to run it again.
    await expect(
      registerCluster(registrar, { fingerprint: randomFingerprint(), namespaceRoot: 'elsewhere' }),
    ).rejects.toMatchObject({
      code: 'CT_OPENBAO_PERMISSION_DENIED',
      message: expect.stringMatching(/`cloudtaser-cli source policy registrar` prints what register needs/),
    });
  });

  it('refuses a fingerprint whose 8-character prefix belongs to another cluster, writing nothing', async () => {
    await registerCluster(registrar, { fingerprint: FP });
    await expect(registerCluster(registrar, { fingerprint: CLASHING_FP })).rejects.toMatchObject({
      code: 'CT_NAMESPACE_CLASH',
    });
    const status = await getClusterStatus(registrar, { fingerprint: CLASHING_FP });
    expect(status.registered).toBe(false);
    // The original cluster is untouched.
    expect((await getClusterStatus(registrar, { fingerprint: FP })).registered).toBe(true);
  });

  it('lets exactly one of two clusters sharing a prefix register when both register at once; the other owns nothing', async () => {
    // OpenBao's namespace create overwrites an existing namespace's custom metadata (its owner), so the namespace
    // cannot be the claim: both runs used to find no owner and no record, both wrote, and the two clusters shared
    // one namespace and one cluster CA. A create-once prefix claim (check-and-set 0) decides.
    for (let round = 0; round < 5; round++) {
      const prefix = randomFingerprint().slice(0, 8);
      const fingerprints = [0, 1].map(() => `${prefix}${randomFingerprint().slice(8)}`);
      const outcomes = await Promise.allSettled(
        fingerprints.map((fingerprint) => registerCluster(registrar, { fingerprint })),
      );
      const won = outcomes.flatMap((o, i) => (o.status === 'fulfilled' ? [fingerprints[i]] : []));
      expect(won, `round ${round}`).toHaveLength(1);
      const lost = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
      expect(lost.reason).toMatchObject({ code: 'CT_NAMESPACE_CLASH', details: { owner: won[0] } });
      const loser = fingerprints.find((fp) => fp !== won[0])!;
      expect((await getClusterStatus(registrar, { fingerprint: loser })).registered).toBe(false);
      const namespace = await admin.withNamespace('cloudtaser').readNamespace(prefix);
      expect(namespace?.customMetadata).toEqual({ cloudtaser_fingerprint: won[0] });
    }
  });

  it('registers again right after deregister --purge with the same client (a program using the library)', async () => {
    // The client's read-your-writes ledger remembered the mounts it enabled in the purged namespace and waited for
    // the new namespace of that name to show them: the register failed after 10 s with CT_OPENBAO_READ_LAG.
    const fp = randomFingerprint();
    const first = await registerCluster(registrar, { fingerprint: fp });
    await deregisterCluster(registrar, { fingerprint: fp, purge: true });
    const started = performance.now();
    const again = await registerCluster(registrar, { fingerprint: fp });
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(again.changed).toBe(true);
    expect(again.operationalHash).not.toBe(first.operationalHash);
  });

  it('changes only the registration it expects (a Terraform update): one deregistered or registered again since is refused, nothing written', async () => {
    const fp = randomFingerprint();
    const first = await registerCluster(registrar, { fingerprint: fp });
    const cluster = admin.withNamespace(first.namespace);
    // Deregistered since the change was planned: before, the update registered it anew with a new CA.
    await deregisterCluster(registrar, { fingerprint: fp });
    await expect(
      registerCluster(registrar, {
        fingerprint: fp,
        migration: true,
        expectedOperationalHash: first.operationalHash,
      }),
    ).rejects.toMatchObject({ code: 'CT_NOT_REGISTERED', message: expect.stringContaining('Plan again') });
    expect((await getClusterStatus(registrar, { fingerprint: fp })).registered).toBe(false);
    expect(await cluster.kvRead('cloudtaser', 'system/bridge-ca')).toBeUndefined();
    // Registered again with another CA since: refused, the new registration left as it is.
    const again = await registerCluster(registrar, { fingerprint: fp });
    await expect(
      registerCluster(registrar, {
        fingerprint: fp,
        migration: true,
        expectedOperationalHash: first.operationalHash,
      }),
    ).rejects.toMatchObject({ code: 'CT_REGISTRATION_EXISTS' });
    expect(await getClusterStatus(registrar, { fingerprint: fp })).toMatchObject({
      operationalHash: again.operationalHash,
      migrationEnabled: false,
    });
    // The registration it expects: changed.
    const changed = await registerCluster(registrar, {
      fingerprint: fp,
      migration: true,
      expectedOperationalHash: again.operationalHash,
    });
    expect(changed.migrationEnabled).toBe(true);
  });

  it('holds the prefix with its claim when the namespace is gone, and releases it only with --purge', async () => {
    const prefix = randomFingerprint().slice(0, 8);
    const [first, second] = [0, 1].map(() => `${prefix}${randomFingerprint().slice(8)}`);
    await registerCluster(registrar, { fingerprint: first });
    const root = admin.withNamespace('cloudtaser');
    expect((await root.kvRead('cloudtaser', `prefixes/${prefix}`))?.data).toMatchObject({
      fingerprint: first,
    });
    // The namespace deleted behind registration's back: the claim still refuses another cluster, writing nothing.
    await root.deleteNamespace(prefix, { wait: true });
    await expect(registerCluster(registrar, { fingerprint: second })).rejects.toMatchObject({
      code: 'CT_NAMESPACE_CLASH',
      details: { owner: first },
    });
    expect(await root.readNamespace(prefix)).toBeUndefined();
    // Deregistered without --purge, the claim stays with the namespace it would have kept: the refusal says how to
    // release it.
    await deregisterCluster(registrar, { fingerprint: first });
    await expect(registerCluster(registrar, { fingerprint: second })).rejects.toMatchObject({
      code: 'CT_NAMESPACE_CLASH',
      message: expect.stringContaining(`which is no longer registered`),
    });
    await deregisterCluster(registrar, { fingerprint: first, purge: true });
    expect(await root.kvRead('cloudtaser', `prefixes/${prefix}`)).toBeUndefined();
    await registerCluster(registrar, { fingerprint: second });
    expect((await root.kvRead('cloudtaser', `prefixes/${prefix}`))?.data).toMatchObject({
      fingerprint: second,
    });
  });

  it('keeps the prefix claimed when deregister --purge leaves the namespace standing (owned by someone else now)', async () => {
    const prefix = randomFingerprint().slice(0, 8);
    const [first, second] = [0, 1].map(() => `${prefix}${randomFingerprint().slice(8)}`);
    await registerCluster(registrar, { fingerprint: first });
    const root = admin.withNamespace('cloudtaser');
    // The namespace's owner rewritten behind registration's back: purge does not delete a namespace it does not own.
    await root.request('POST', `sys/namespaces/${prefix}`, {
      body: { custom_metadata: { note: 'kept by an admin' } },
    });
    const gone = await deregisterCluster(registrar, { fingerprint: first, purge: true });
    expect(gone.purged).toBe(false);
    expect(await root.readNamespace(prefix)).toBeDefined();
    // Before: the claim was released, and another cluster sharing the prefix could take the namespace (and the
    // workload secrets left in it).
    expect((await root.kvRead('cloudtaser', `prefixes/${prefix}`))?.data).toMatchObject({
      fingerprint: first,
    });
    await expect(registerCluster(registrar, { fingerprint: second })).rejects.toMatchObject({
      code: 'CT_NAMESPACE_CLASH',
    });
  });

  it('claims the prefix of a cluster registered before claims on its next run, and a claim not written by cloudtaser still holds the prefix', async () => {
    const fp = randomFingerprint();
    await registerCluster(registrar, { fingerprint: fp });
    const root = admin.withNamespace('cloudtaser');
    // As a registration from before prefix claims left it.
    await root.kvDeleteMetadata('cloudtaser', `prefixes/${fp.slice(0, 8)}`);
    const again = await registerCluster(registrar, { fingerprint: fp });
    expect(again.changed).toBe(false);
    expect((await root.kvRead('cloudtaser', `prefixes/${fp.slice(0, 8)}`))?.data).toMatchObject({
      fingerprint: fp,
    });

    // A hand-written record where a claim would be: nobody takes the prefix silently.
    const prefix = randomFingerprint().slice(0, 8);
    await root.kvWrite('cloudtaser', `prefixes/${prefix}`, { note: 'reserved by hand' });
    const hopeful = `${prefix}${randomFingerprint().slice(8)}`;
    await expect(registerCluster(registrar, { fingerprint: hopeful })).rejects.toMatchObject({
      code: 'CT_NAMESPACE_CLASH',
    });
    expect(await root.readNamespace(prefix)).toBeUndefined();
  });

  it('refuses to register with a registrar policy from before prefix claims, saying which policy to write', async () => {
    const rows = POLICY_ROWS.filter((row) => !row.path.includes('prefixes/'));
    await admin.writePolicy('registrar-before-claims', renderPolicyHcl('registrar', { rows }));
    const token = await admin.createToken({ policies: ['registrar-before-claims'], ttl: '10m' });
    const before = admin.withToken(token.clientToken);
    const fp = randomFingerprint();
    await expect(registerCluster(before, { fingerprint: fp })).rejects.toMatchObject({
      code: 'CT_OPENBAO_PERMISSION_DENIED',
      message: expect.stringContaining('cloudtaser-cli source policy registrar'),
    });
    expect(await admin.withNamespace('cloudtaser').readNamespace(fp.slice(0, 8))).toBeUndefined();
  });

  it('refuses a fingerprint that is not a UUID before sending any request', async () => {
    const before = server.requestLog().length;
    await expect(registerCluster(registrar, { fingerprint: 'not-a-uuid' })).rejects.toMatchObject({
      code: 'CT_INVALID_FINGERPRINT',
    });
    await expect(registerCluster(registrar, { fingerprint: `${FP}/../x` })).rejects.toMatchObject({
      code: 'CT_INVALID_FINGERPRINT',
    });
    expect(server.requestLog().length).toBe(before);
  });

  it('reports a wrong token as permission denied without echoing the token', async () => {
    const bad = new OpenBaoClient({
      address: server.address,
      token: 'hvs.definitely-wrong-token',
      retries: 0,
    });
    const err = await registerCluster(bad, { fingerprint: randomFingerprint() }).catch((e) => e);
    expect(err.code).toBe('CT_OPENBAO_PERMISSION_DENIED');
    expect(JSON.stringify({ m: err.message, d: err.details })).not.toContain('definitely-wrong-token');
    await bad.close();
  });

  it('reports an unreachable address with the address in the message', async () => {
    const nowhere = new OpenBaoClient({ address: 'http://127.0.0.1:1', token: 't', retries: 0 });
    const err = await registerCluster(nowhere, { fingerprint: randomFingerprint() }).catch((e) => e);
    expect(err.code).toBe('CT_OPENBAO_UNREACHABLE');
    expect(err.message).toContain('127.0.0.1:1');
    await nowhere.close();
  });

  it('tells the admin that namespaces need OpenBao >= 2.3 when the server has none', async () => {
    const old = await startOpenBaoTestServer({ namespaces: false });
    const client = new OpenBaoClient({ address: old.address, token: old.rootToken, retries: 0 });
    const err = await registerCluster(client, { fingerprint: randomFingerprint() }).catch((e) => e);
    expect(err.code).toBe('CT_OPENBAO_NAMESPACES_UNSUPPORTED');
    expect(err.message).toMatch(/2\.3/);
    await client.close();
    await old.close();
  });

  it('marks a cluster initialized exactly once; re-arm allows one more', async () => {
    const fp = randomFingerprint();
    await registerCluster(registrar, { fingerprint: fp });
    const results = await Promise.allSettled(
      [1, 2, 3].map(() =>
        markClusterInitialized(bridge, { fingerprint: fp, brokerCertSha256: 'a'.repeat(64) }),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(rejected.reason.code).toBe('CT_ALREADY_INITIALIZED');
    expect(rejected.reason.message).toContain('--rearm');
    expect((await rearmCluster(registrar, { fingerprint: fp })).wasInitialized).toBe(true);
    await markClusterInitialized(bridge, { fingerprint: fp, brokerCertSha256: 'b'.repeat(64) });
    expect((await getClusterStatus(registrar, { fingerprint: fp })).initialized).toBe(true);
  });

  it('lists registered clusters and hands the bridge its trust material', async () => {
    const fp = randomFingerprint();
    const result = await registerCluster(registrar, { fingerprint: fp });
    const found = (await listRegisteredClusters(bridge)).find((c) => c.fingerprint === fp);
    expect(found).toEqual({
      fingerprint: fp,
      namespace: result.namespace,
      operationalHash: result.operationalHash,
      registeredAt: result.registeredAt,
      initialized: false,
    });
    const trust = await loadClusterTrust(bridge, { namespace: result.namespace });
    expect(trust.ca.certPem).toBe(result.caCertPem);
    expect(new X509Certificate(trust.bridgeCertPem).checkIssued(trust.ca.certificate)).toBe(true);
  });

  it('refuses a record naming another namespace than its fingerprint gives, and a plain re-run repairs it', async () => {
    // The bridge forwards a cluster's pod requests into the namespace its record names: a record changed to name
    // another cluster's namespace must not be followed there, by the bridge or shown as fine by status.
    const victim = await registerCluster(registrar, { fingerprint: randomFingerprint() });
    const fp = randomFingerprint();
    await registerCluster(registrar, { fingerprint: fp });
    const records = admin.withNamespace('cloudtaser');
    const path = `clusters/${fp}/registered`;
    const stored = (await records.kvRead('cloudtaser', path))!.data;
    await records.kvWrite('cloudtaser', path, { ...stored, namespace: victim.namespace });

    const corrupt: string[] = [];
    const listed = await listRegisteredClusters(bridge, {
      onCorrupt: (fingerprint, err) => corrupt.push(`${fingerprint} ${err.code} ${err.message}`),
    });
    expect(listed.map((c) => c.fingerprint)).not.toContain(fp);
    expect(listed.map((c) => c.fingerprint)).toContain(victim.fingerprint);
    expect(corrupt).toEqual([
      expect.stringContaining(
        `${fp} CT_REGISTRATION_CORRUPT the registration record for ${fp} names namespace`,
      ),
    ]);
    await expect(getClusterStatus(registrar, { fingerprint: fp })).rejects.toMatchObject({
      code: 'CT_REGISTRATION_CORRUPT',
      message: expect.stringContaining(`not cloudtaser/${fp.slice(0, 8)}`),
    });

    await registerCluster(registrar, { fingerprint: fp });
    expect((await records.kvRead('cloudtaser', path))!.data.namespace).toBe(`cloudtaser/${fp.slice(0, 8)}`);
    expect((await listRegisteredClusters(bridge)).map((c) => c.fingerprint)).toContain(fp);
  });

  it('deregisters without touching workload secrets, and a new registration gets a fresh CA', async () => {
    const fp = randomFingerprint();
    const first = await registerCluster(registrar, { fingerprint: fp });
    const cluster = admin.withNamespace(first.namespace);
    await cluster.kvWrite('secret', 'app/db', { password: 'kept' });
    const removed = await deregisterCluster(registrar, { fingerprint: fp });
    expect(removed).toMatchObject({ removed: true, purged: false, namespaceKept: true });
    expect((await getClusterStatus(registrar, { fingerprint: fp })).registered).toBe(false);
    // Status tells the namespace left with its secrets (it said "none" before) when it may read namespaces.
    expect(await getClusterStatus(registrar, { fingerprint: fp, inspectNamespace: true })).toMatchObject({
      registered: false,
      incomplete: false,
      namespaceKept: true,
      deregisteredAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    expect((await cluster.kvRead('secret', 'app/db'))?.data).toEqual({ password: 'kept' });
    expect((await listRegisteredClusters(bridge)).map((c) => c.fingerprint)).not.toContain(fp);
    const again = await registerCluster(registrar, { fingerprint: fp });
    expect(again.operationalHash).not.toBe(first.operationalHash);
    expect((await cluster.kvRead('secret', 'app/db'))?.data).toEqual({ password: 'kept' });
  });

  it('tells a namespace a first register left half-way from one a deregistration kept, and gives it no re-arm window', async () => {
    // A fleet operator's first registration failed right after creating the namespace (a 503 on the CA write); the
    // rerun the README advises took the namespace for one a deregistration kept and opened a one-hour window, after
    // which the operator's first broker was refused. Only a deregistration marks a namespace as kept.
    const fp = randomFingerprint();
    const faulty = admin.withNamespace('cloudtaser');
    await registerCluster(registrar, { fingerprint: randomFingerprint() }); // the root exists, as in a fleet
    await faulty.createNamespace(fp.slice(0, 8), { customMetadata: { cloudtaser_fingerprint: fp } });
    await faulty.kvWrite('cloudtaser', `prefixes/${fp.slice(0, 8)}`, { fingerprint: fp, claimed_at: 'then' });
    const before = await getClusterStatus(registrar, { fingerprint: fp, inspectNamespace: true });
    expect(before).toMatchObject({ registered: false, namespaceKept: true });
    expect(before.deregisteredAt).toBeUndefined();
    const finished = await registerCluster(registrar, { fingerprint: fp, rearmWindowMs: 1_000 });
    expect(finished.rearmExpiresAt).toBeUndefined();
    expect((await getClusterStatus(registrar, { fingerprint: fp })).rearmExpiresAt).toBeUndefined();
    // Deregistered without purge and registered again: that namespace was kept on purpose, and gets its window.
    await deregisterCluster(registrar, { fingerprint: fp });
    const again = await registerCluster(registrar, { fingerprint: fp, rearmWindowMs: 60_000 });
    expect(again.rearmExpiresAt).toBeDefined();
  });

  describe('register and deregister --purge of one cluster at the same time', () => {
    // An outside fleet test ran a reconcile pipeline (register) and a decommission pipeline (deregister --purge) on
    // one cluster at once: in 4 runs of 10 both exited 0 and left a registration record naming a deleted namespace,
    // which status and list called healthy. Each order now ends consistent, and the side that cannot fix it says so.
    const purgeWhenRequested = async (fp: string, path: RegExp) => {
      const from = server.requestLog().length;
      await new Promise<void>((resolve, reject) => {
        const poll = setInterval(() => {
          if (
            server
              .requestLog()
              .slice(from)
              .some((entry) => path.test(entry.path))
          ) {
            clearInterval(poll);
            deregisterCluster(registrar, { fingerprint: fp, purge: true }).then(() => resolve(), reject);
          }
        }, 2);
      });
    };

    it('a settings change whose record write comes after the purge writes nothing and fails as a race to run again', async () => {
      const fp = randomFingerprint();
      await registerCluster(registrar, { fingerprint: fp });
      const recordWrite = new RegExp(`/v1/cloudtaser/data/clusters/${fp}/registered$`);
      server.injectFault({ pathPattern: recordWrite, method: 'POST', delayMs: 400 });
      const rerun = registerCluster(registrar, { fingerprint: fp, migration: true }).then(
        () => undefined,
        (err: { code?: string; message?: string }) => err,
      );
      await purgeWhenRequested(fp, recordWrite);
      const failure = await rerun;
      // The write is checked against the record this run read, which the purge removed: no record naming a CA
      // that is gone (before stop 39 it was written, and only the CA re-check below caught it).
      expect(failure).toMatchObject({ code: 'CT_OPENBAO_CAS_MISMATCH' });
      expect(failure?.message).toContain('removed while this run was changing it');
      expect(await getClusterStatus(registrar, { fingerprint: fp })).toMatchObject({ registered: false });
      expect((await registerCluster(registrar, { fingerprint: fp })).changed).toBe(true);
    });

    it('a register over a kept namespace whose record lands after the purge fails with CT_REGISTRATION_CORRUPT; status says so; a rerun repairs', async () => {
      const fp = randomFingerprint();
      await registerCluster(registrar, { fingerprint: fp });
      await deregisterCluster(registrar, { fingerprint: fp });
      // A first record over the kept namespace is written with check-and-set 0, which a purge does not change.
      const first = await registerCluster(registrar, { fingerprint: fp, rearmWindowMs: 60_000 });
      await deregisterCluster(registrar, { fingerprint: fp });
      // The rerun's record write waits while the purge runs to its end.
      const recordWrite = new RegExp(`/v1/cloudtaser/data/clusters/${fp}/registered$`);
      server.injectFault({ pathPattern: recordWrite, method: 'POST', delayMs: 400 });
      const rerun = registerCluster(registrar, { fingerprint: fp, rearmWindowMs: 60_000 }).then(
        () => undefined,
        (err: { code?: string; message?: string }) => err,
      );
      await purgeWhenRequested(fp, recordWrite);
      const failure = await rerun;
      expect(failure?.code).toBe('CT_REGISTRATION_CORRUPT');
      expect(failure?.message).toContain('run register again');
      const damaged = await getClusterStatus(registrar, { fingerprint: fp });
      expect(damaged).toMatchObject({ registered: true, caMissing: true });
      const repaired = await registerCluster(registrar, { fingerprint: fp });
      expect(repaired.operationalHash).not.toBe(first.operationalHash);
      const whole = await getClusterStatus(registrar, { fingerprint: fp });
      expect(whole.registered).toBe(true);
      expect(whole.caMissing).toBeUndefined();
    });

    it('a register that finished while the purge was deleting the namespace: the purge removes its record too', async () => {
      const fp = randomFingerprint();
      await registerCluster(registrar, { fingerprint: fp });
      const log = captureLogger();
      // The purge's namespace deletion waits while a register runs to its end (over the emptied namespace).
      const namespaceDelete = new RegExp(`^/v1/sys/namespaces/${fp.slice(0, 8)}$`);
      server.injectFault({ pathPattern: namespaceDelete, method: 'DELETE', delayMs: 600 });
      const purge = deregisterCluster(registrar, { fingerprint: fp, purge: true, logger: log.logger });
      const from = server.requestLog().length;
      while (
        !server
          .requestLog()
          .slice(from)
          .some((entry) => entry.method === 'DELETE' && namespaceDelete.test(entry.path))
      )
        await new Promise((resolve) => setTimeout(resolve, 2));
      await registerCluster(registrar, { fingerprint: fp });
      expect(await purge).toMatchObject({ purged: true });
      expect(log.lines.map((line) => line.event)).toContain('registration.race_removed');
      const after = await getClusterStatus(registrar, { fingerprint: fp, inspectNamespace: true });
      expect(after).toMatchObject({ registered: false, namespaceKept: false });
      expect((await listRegisteredClusters(bridge)).map((c) => c.fingerprint)).not.toContain(fp);
    });
  });

  it('purges the namespace and its workload secrets only when asked', async () => {
    const fp = randomFingerprint();
    const result = await registerCluster(registrar, { fingerprint: fp });
    await admin.withNamespace(result.namespace).kvWrite('secret', 'app/db', { password: 'gone' });
    expect(await deregisterCluster(registrar, { fingerprint: fp, purge: true })).toMatchObject({
      removed: true,
      purged: true,
      namespaceKept: false,
    });
    expect(
      (await getClusterStatus(registrar, { fingerprint: fp, inspectNamespace: true })).namespaceKept,
    ).toBe(false);
    expect(await admin.withNamespace('cloudtaser').readNamespace(fp.slice(0, 8))).toBeUndefined();
  });

  it('deregistering an unknown cluster is not an error', async () => {
    // Nor does it claim a namespace was kept: none existed.
    expect(await deregisterCluster(registrar, { fingerprint: randomFingerprint() })).toMatchObject({
      removed: false,
      namespaceKept: false,
    });
  });

  describe('what a deregistration that stopped half-way leaves', () => {
    /** Registered and bootstrapped, then only the registration record deleted (OpenBao failed right after). */
    const halfDeregistered = async (options: { initialized: boolean }) => {
      const fp = randomFingerprint();
      await registerCluster(registrar, { fingerprint: fp });
      if (options.initialized)
        await markClusterInitialized(bridge, { fingerprint: fp, brokerCertSha256: 'a'.repeat(64) });
      await registrar.withNamespace('cloudtaser').kvDeleteMetadata('cloudtaser', `clusters/${fp}/registered`);
      return fp;
    };

    it('status reports it as incomplete: the initialization record, or (inspecting the namespace) the CA', async () => {
      const initialized = await halfDeregistered({ initialized: true });
      expect(await getClusterStatus(registrar, { fingerprint: initialized })).toMatchObject({
        registered: false,
        incomplete: true,
      });
      const caOnly = await halfDeregistered({ initialized: false });
      expect((await getClusterStatus(registrar, { fingerprint: caOnly })).incomplete).toBe(false);
      expect(
        (await getClusterStatus(registrar, { fingerprint: caOnly, inspectNamespace: true })).incomplete,
      ).toBe(true);
      // Deregistering again finishes it.
      await deregisterCluster(registrar, { fingerprint: caOnly });
      expect(
        (await getClusterStatus(registrar, { fingerprint: caOnly, inspectNamespace: true })).incomplete,
      ).toBe(false);
      // Never for a cluster that was never registered, nor for a registered one.
      const unknown = randomFingerprint();
      expect(
        (await getClusterStatus(registrar, { fingerprint: unknown, inspectNamespace: true })).incomplete,
      ).toBe(false);
      const fresh = randomFingerprint();
      await registerCluster(registrar, { fingerprint: fresh });
      expect(
        (await getClusterStatus(registrar, { fingerprint: fresh, inspectNamespace: true })).incomplete,
      ).toBe(false);
    });

    it('registering it again removes the leftover initialization record, so its broker can bootstrap', async () => {
      const fp = await halfDeregistered({ initialized: true });
      const log = captureLogger();
      const again = await registerCluster(registrar, { fingerprint: fp, logger: log.logger });
      expect(again.initialized).toBe(false);
      expect((await getClusterStatus(registrar, { fingerprint: fp })).initialized).toBe(false);
      expect(log.lines.map((line) => line.event)).toContain('registration.stale_initialization_removed');
      await markClusterInitialized(bridge, { fingerprint: fp, brokerCertSha256: 'b'.repeat(64) });
    });
  });

  describe('requireNew (the Terraform resource creating a registration)', () => {
    it('refuses a cluster that is already registered, with CT_REGISTRATION_EXISTS, changing nothing', async () => {
      const fp = randomFingerprint();
      const first = await registerCluster(registrar, { fingerprint: fp });
      await expect(registerCluster(registrar, { fingerprint: fp, requireNew: true })).rejects.toMatchObject({
        code: 'CT_REGISTRATION_EXISTS',
      });
      expect((await getClusterStatus(registrar, { fingerprint: fp })).registeredAt).toBe(first.registeredAt);
      // Without it (the CLI) a re-run stays idempotent.
      expect((await registerCluster(registrar, { fingerprint: fp })).changed).toBe(false);
    });

    it('of two runs racing for one cluster exactly one wins; the other gets CT_REGISTRATION_EXISTS', async () => {
      const fp = randomFingerprint();
      const results = await Promise.allSettled(
        [1, 2].map(() => registerCluster(registrar, { fingerprint: fp, requireNew: true })),
      );
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(lost.reason.code).toBe('CT_REGISTRATION_EXISTS');
      const winner = (
        results.find((r) => r.status === 'fulfilled') as PromiseFulfilledResult<{ registeredAt: string }>
      ).value;
      expect((await getClusterStatus(registrar, { fingerprint: fp })).registeredAt).toBe(winner.registeredAt);
    });
  });

  describe('create-once records another run created a moment before (the registrar may create them, not update them)', () => {
    // The race, made certain: this run's read of the record is answered 404, as if it read a moment before the other
    // run's create landed. Its check-and-set-0 write then meets the record, which OpenBao treats as an update and
    // refuses to the registrar policy (permission denied, not a mismatch). Before, that refusal failed the run: 1 of
    // 10 first registrations at once on a fresh OpenBao did so, with the "may not write the TokenReview listener CA
    // ... kv undelete" advice.
    const readsAbsent = (path: RegExp, times = 1) =>
      server.injectFault({ pathPattern: path, method: 'GET', status: 404, times });
    /**
     * The other run: another process with the same policy (its own client: a client knows what it wrote itself and
     * reads a 404 of that as a lagging standby, so the race needs a second writer).
     */
    async function asOtherRun<T>(run: (client: OpenBaoClient) => Promise<T>): Promise<T> {
      const other = new OpenBaoClient({ address: server.address, token: registrarToken, retries: 0 });
      try {
        return await run(other);
      } finally {
        await other.close();
      }
    }

    it('the cluster CA: the second run of one cluster uses the CA the first one made', async () => {
      const fp = randomFingerprint();
      const first = await asOtherRun((other) => registerCluster(other, { fingerprint: fp }));
      readsAbsent(/\/v1\/cloudtaser\/data\/system\/bridge-ca$/);
      const second = await registerCluster(registrar, { fingerprint: fp });
      expect(second.operationalHash).toBe(first.operationalHash);
      expect(second.caCertPem).toBe(first.caCertPem);
    });

    it('the TokenReview listener CA: a new cluster uses the one an earlier registration made', async () => {
      await asOtherRun((other) => registerCluster(other, { fingerprint: randomFingerprint() }));
      const before = await loadTokenReviewCa(admin.withNamespace('cloudtaser'));
      readsAbsent(/\/v1\/cloudtaser\/data\/tokenreview\/ca$/);
      await registerCluster(registrar, { fingerprint: randomFingerprint() });
      expect((await loadTokenReviewCa(admin.withNamespace('cloudtaser')))?.certPem).toBe(before?.certPem);
    });

    it('the beacon client CA: a second caller gets the one the first made', async () => {
      const first = await asOtherRun((other) => ensureBeaconClientCa(other));
      readsAbsent(/\/v1\/cloudtaser\/data\/system\/beacon-client-ca$/);
      const second = await ensureBeaconClientCa(registrar);
      expect(second).toMatchObject({ certPem: first.certPem, created: false });
    });

    it('still refuses, with what to do, when the policy really lacks create (nothing there after the refusal)', async () => {
      // A soft-deleted listener CA reads as absent and writing it again is an update: the refusal stands.
      const root = admin.withNamespace('cloudtaser');
      await registerCluster(registrar, { fingerprint: randomFingerprint() });
      await root.kvDelete('cloudtaser', 'tokenreview/ca');
      try {
        const err = await registerCluster(registrar, { fingerprint: randomFingerprint() }).catch(
          (e: unknown) => e,
        );
        expect(err).toMatchObject({ code: 'CT_OPENBAO_PERMISSION_DENIED' });
        expect((err as Error).message).toMatch(/kv undelete/);
      } finally {
        const metadata = await root.kvReadMetadata('cloudtaser', 'tokenreview/ca');
        await root.request('POST', 'cloudtaser/undelete/tokenreview/ca', {
          body: { versions: [metadata!.currentVersion] },
        });
      }
    });
  });

  it('init hash in status is the published function of the fingerprint', async () => {
    expect((await getClusterStatus(registrar, { fingerprint: FP })).initHash).toBe(initHash(FP));
  });
});

describe('namespace root validation', () => {
  it('refuses an unusable namespace root naming it shortened, not echoing a 2 MB value into the plan', () => {
    const huge = `x/${'a'.repeat(2_000_000)}`;
    let message = '';
    try {
      validateNamespaceRoot(huge);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('is not a usable OpenBao namespace name');
    expect(message.length).toBeLessThan(400);
  });
});

describe('source list under a rate-limit quota', () => {
  it('reads again, one at a time, what a quota refused, and lists no healthy cluster as unreadable', async () => {
    // An outside fleet test listed 272 clusters under a quota: 26 healthy ones came out unreadable
    // (CT_OPENBAO_RATE_LIMITED) and the command exited 1. A quota is a pace, not a broken record.
    const server = await startOpenBaoTestServer();
    const admin = new OpenBaoClient({ address: server.address, token: server.rootToken });
    // One retry per request: the concurrent pass runs out of them, as a long listing under a real quota does.
    const impatient = new OpenBaoClient({ address: server.address, token: server.rootToken, retries: 1 });
    try {
      const fingerprints = Array.from({ length: 16 }, () => randomFingerprint());
      for (const fingerprint of fingerprints) await registerCluster(admin, { fingerprint });
      await admin.request('POST', 'sys/quotas/rate-limit/list-test', {
        body: { rate: 8, interval: '1s', path: 'cloudtaser/' },
      });
      const audit = await auditRegistrations(impatient);
      expect(audit.unreadable).toEqual([]);
      expect(audit.clusters.map((c) => c.fingerprint).sort()).toEqual([...fingerprints].sort());
    } finally {
      await impatient.close();
      await admin.close();
      await server.close();
    }
  }, 60_000);
});
