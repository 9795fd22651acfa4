/**
 * `cloudtaser-cli source list` against the OpenBao test server, with the registrar identity only (the shipped
 * policy): every registration under the root, sorted, as text and as JSON; a damaged record listed apart with its
 * code and exit 1 instead of hiding the fleet; an empty or other namespace root; a token OpenBao refuses.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { markClusterInitialized, registerCluster } from '../../runtime/registration/index.js';
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
  it('says so when nothing is registered yet (the namespace root does not even exist)', async () => {
    const result = await runCli(['source', 'list', ...address], env);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      `No cluster is registered under namespace root cloudtaser at ${openbao.address}.\n`,
    );
    const json = await runCli(['source', 'list', ...address, '--output', 'json'], env);
    expect(JSON.parse(json.stdout)).toEqual({ namespaceRoot: 'cloudtaser', clusters: [], unreadable: [] });
  });

  it('lists every registration, sorted by fingerprint, with what the bridges serve of it', async () => {
    const results: Array<{ operationalHash: string }> = [];
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
        initialized: i === 1,
        attested: false,
        migrationEnabled: i === 2,
      }))
      .sort((a, b) => a.fingerprint.localeCompare(b.fingerprint));
    expect(JSON.parse(json.stdout)).toEqual({
      namespaceRoot: 'cloudtaser',
      clusters: expected,
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

  it('lists a damaged record apart with its code and exits 1, and still shows the rest of the fleet', async () => {
    const damaged = randomUUID();
    await admin
      .withNamespace('cloudtaser')
      .kvWrite('cloudtaser', `clusters/${damaged}/registered`, { namespace: 42 });
    try {
      const json = await runCli(['source', 'list', ...address, '--output', 'json'], env);
      expect(json.code).toBe(1);
      const listed = JSON.parse(json.stdout);
      expect(listed.clusters.map((c: { fingerprint: string }) => c.fingerprint).sort()).toEqual(
        [...fingerprints].sort(),
      );
      expect(listed.unreadable).toEqual([
        { fingerprint: damaged, code: 'CT_REGISTRATION_CORRUPT', message: expect.any(String) },
      ]);
      expect(json.stderr).toMatch(
        new RegExp(
          `^CT_REGISTRATION_CORRUPT: cluster ${damaged}: .*source status --fingerprint ${damaged}\\)\\n$`,
        ),
      );
    } finally {
      await admin
        .withNamespace('cloudtaser')
        .kvDeleteMetadata('cloudtaser', `clusters/${damaged}/registered`);
    }
  });

  it('lists under the namespace root it is given, and refuses a malformed one as a usage error', async () => {
    const other = await runCli(['source', 'list', ...address, '--namespace-root', 'elsewhere'], env);
    expect(other.code).toBe(0);
    expect(other.stdout).toContain('No cluster is registered under namespace root elsewhere');
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
