/**
 * `cloudtaser-cli source list` against the OpenBao test server, with the registrar identity only (the shipped
 * policy): every registration under the root, sorted, as text and as JSON; everything that is not a whole
 * registration (a damaged record, a read the policy refuses, a hand-written key that is no fingerprint, a
 * deregistration that stopped half-way) listed apart with its code and exit 1, never hiding the rest of the fleet
 * (an outside audit found each of these silently dropped or stopping the whole listing); a namespace root that
 * does not exist told apart from an empty one; a token OpenBao refuses.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import {
  markClusterInitialized,
  registerCluster,
  renderPolicyHcl,
} from '../../runtime/registration/index.js';
import { provisionIdentities } from '../openbao-identities.js';
import { runCli } from './run-cli.js';

let openbao: OpenBaoTestServer;
let admin: OpenBaoClient;
let env: Record<string, string>;
let address: string[];
/** Three registrations: one plain, one bootstrapped, one with migration on. */
const fingerprints = [randomUUID(), randomUUID(), randomUUID()];

beforeAll(async () => {
  openbao = await startOpenBaoTestServer();
  admin = new OpenBaoClient({ address: openbao.address, token: openbao.rootToken });
  env = { CLOUDTASER_SECRETSTORE_TOKEN: (await provisionIdentities(admin)).registrarToken };
  address = ['--secretstore-address', openbao.address];
}, 30_000);
afterAll(async () => {
  await admin?.close();
  await openbao?.close();
});

describe('source list', () => {
  it('says that the namespace root does not exist yet (or is mistyped), not merely that it is empty', async () => {
    const result = await runCli(['source', 'list', ...address], env);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      `No cluster is registered: namespace root cloudtaser does not exist at ${openbao.address} (the first register creates it; check --namespace-root for a typo).\n`,
    );
    const json = await runCli(['source', 'list', ...address, '--output', 'json'], env);
    expect(JSON.parse(json.stdout)).toEqual({
      namespaceRoot: 'cloudtaser',
      namespaceRootExists: false,
      clusters: [],
      incomplete: [],
      unreadable: [],
    });
  });

  it('lists every registration, sorted by fingerprint, with what the bridges serve of it', async () => {
    const results: Array<{ operationalHash: string; registeredAt: string }> = [];
    for (const [i, fingerprint] of fingerprints.entries())
      results.push(await registerCluster(admin, { fingerprint, migration: i === 2 }));
    await markClusterInitialized(admin, { fingerprint: fingerprints[1], brokerCertSha256: 'a'.repeat(64) });

    const json = await runCli(['source', 'list', ...address, '--output', 'json'], env);
    expect(json.stderr).toBe('');
    expect(json.code).toBe(0);
    const expected = fingerprints
      .map((fingerprint, i) => ({
        fingerprint,
        namespace: `cloudtaser/${fingerprint.slice(0, 8)}`,
        operationalHash: results[i].operationalHash,
        registeredAt: results[i].registeredAt,
        initialized: i === 1,
        attested: false,
        migrationEnabled: i === 2,
      }))
      .sort((a, b) => a.fingerprint.localeCompare(b.fingerprint));
    expect(JSON.parse(json.stdout)).toEqual({
      namespaceRoot: 'cloudtaser',
      namespaceRootExists: true,
      clusters: expected,
      incomplete: [],
      unreadable: [],
    });

    const text = await runCli(['source', 'list', ...address], env);
    expect(text.code).toBe(0);
    const lines = text.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(`3 clusters registered under namespace root cloudtaser at ${openbao.address}:`);
    expect(lines[1].split(/\s{3,}/)).toEqual([
      'FINGERPRINT',
      'NAMESPACE',
      'BOOTSTRAPPED',
      'ATTESTED',
      'MIGRATION',
    ]);
    expect(lines.slice(2).map((line) => line.split(/\s{3,}/))).toEqual(
      expected.map((c) => [
        c.fingerprint,
        c.namespace,
        c.initialized ? 'yes' : 'no',
        'no',
        c.migrationEnabled ? 'enabled' : 'disabled',
      ]),
    );
  });

  it('lists apart, with a code each and exit 1, every entry that is not a whole registration, and still shows the rest', async () => {
    const records = admin.withNamespace('cloudtaser');
    const damaged = randomUUID();
    const refused = randomUUID();
    const halfDeregistered = randomUUID();
    const written: string[] = [];
    const write = async (path: string, data: Record<string, unknown>) => {
      await records.kvWrite('cloudtaser', path, data);
      written.push(path);
    };
    await write(`clusters/${damaged}/registered`, { namespace: 42 });
    await registerCluster(admin, { fingerprint: refused });
    await write(`clusters/${halfDeregistered}/initialized`, { broker_cert_sha256: 'a'.repeat(64) });
    await write('clusters/not-a-fingerprint/registered', { fingerprint: 'not-a-fingerprint' });
    // Whole-looking records a bridge must not follow: one names another cluster's namespace (a bridge would
    // forward this cluster's pod requests there), one has attestation settings no bridge can use (listed as
    // attested with exit 0 before, while status said CT_REGISTRATION_CORRUPT).
    const tampered = randomUUID();
    const badAttestation = randomUUID();
    for (const [fingerprint, change] of [
      [tampered, { namespace: `cloudtaser/${fingerprints[0].slice(0, 8)}` }],
      [badAttestation, { attestation: { issuer: 'https://issuer.example', jwks: 'not a key set' } }],
    ] as const) {
      await registerCluster(admin, { fingerprint });
      const path = `clusters/${fingerprint}/registered`;
      const record = await records.kvRead('cloudtaser', path);
      await write(path, { ...record?.data, ...change });
    }
    // The registrar policy with one cluster's registration record denied.
    await admin.writePolicy(
      'registrar-but-one',
      `${renderPolicyHcl('registrar')}\npath "cloudtaser/cloudtaser/data/clusters/${refused}/registered" { capabilities = ["deny"] }\n`,
    );
    const partial = await admin.createToken({ policies: ['registrar-but-one'], ttl: '1h' });
    try {
      const json = await runCli(['source', 'list', ...address, '--output', 'json'], {
        CLOUDTASER_SECRETSTORE_TOKEN: partial.clientToken,
      });
      expect(json.code, json.stderr).toBe(1);
      const listed = JSON.parse(json.stdout);
      expect(listed.clusters.map((c: { fingerprint: string }) => c.fingerprint)).toEqual(
        [...fingerprints].sort(),
      );
      expect(listed.incomplete).toEqual([halfDeregistered]);
      expect(listed.unreadable).toEqual(
        [
          { key: damaged, code: 'CT_REGISTRATION_CORRUPT', message: expect.any(String) },
          { key: refused, code: 'CT_OPENBAO_PERMISSION_DENIED', message: expect.any(String) },
          {
            key: tampered,
            code: 'CT_REGISTRATION_CORRUPT',
            message: expect.stringContaining(
              `names namespace "cloudtaser/${fingerprints[0].slice(0, 8)}", not cloudtaser/${tampered.slice(0, 8)}`,
            ),
          },
          {
            key: badAttestation,
            code: 'CT_REGISTRATION_CORRUPT',
            message: expect.stringContaining('attestation settings'),
          },
          {
            key: 'not-a-fingerprint/',
            code: 'CT_REGISTRATION_CORRUPT',
            message: expect.stringContaining('not a cluster fingerprint'),
          },
        ].sort((a, b) => (a.key < b.key ? -1 : 1)),
      );
      // One coded line per entry on stderr, each naming what to run.
      const lines = json.stderr.trimEnd().split('\n');
      expect(lines).toHaveLength(6);
      expect(lines[0]).toMatch(
        new RegExp(
          `^CT_REGISTRATION_INCOMPLETE: cluster ${halfDeregistered} .*source deregister --fingerprint ${halfDeregistered} again$`,
        ),
      );
      expect(lines).toContainEqual(
        expect.stringMatching(
          new RegExp(
            `^CT_REGISTRATION_CORRUPT: clusters/${damaged}: .*source status --fingerprint ${damaged}\\)$`,
          ),
        ),
      );
      expect(lines).toContainEqual(
        expect.stringMatching(new RegExp(`^CT_OPENBAO_PERMISSION_DENIED: clusters/${refused}: `)),
      );
      // The text table shows the same fleet; the entries apart are on stderr only.
      const text = await runCli(['source', 'list', ...address], {
        CLOUDTASER_SECRETSTORE_TOKEN: partial.clientToken,
      });
      expect(text.code).toBe(1);
      expect(text.stdout).toContain('3 clusters registered under namespace root cloudtaser');
      expect(text.stderr).toBe(json.stderr);
    } finally {
      for (const path of written) await records.kvDeleteMetadata('cloudtaser', path);
      await records.kvDeleteMetadata('cloudtaser', `clusters/${refused}/registered`);
    }
  });

  it('lists under the namespace root it is given, and refuses a malformed one as a usage error', async () => {
    const other = await runCli(['source', 'list', ...address, '--namespace-root', 'elsewhere'], env);
    expect(other.code).toBe(0);
    expect(other.stdout).toContain('namespace root elsewhere does not exist');
    const malformed = await runCli(['source', 'list', ...address, '--namespace-root', '../sys'], env);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toMatch(/^CT_INVALID_ARGUMENT: /);
  });

  it('reports a token OpenBao refuses in one coded line, without echoing it', async () => {
    const result = await runCli(['source', 'list', ...address], {
      CLOUDTASER_SECRETSTORE_TOKEN: 's.wrong-token',
    });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^CT_OPENBAO_[A-Z_]+: .*\n$/);
    expect(result.stderr).not.toContain('s.wrong-token');
  });
});
