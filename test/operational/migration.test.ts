import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildProgram } from '../../runtime/cli/program.js';
import { annotateSecretsForMigration, MIGRATE_ANNOTATION } from '../../runtime/migration/index.js';
import { registerCluster } from '../../runtime/registration/index.js';
import { type OperationalStack, startOperationalStack } from './stack.js';

// biome-ignore lint/suspicious/noExplicitAny: AdmissionReview and Event JSON are read loosely in assertions
type Loose = any;

const NS = 'legacy';
let stack: OperationalStack;
/** Per-secret behaviour of the hook between the verified write and the delete. */
const between = new Map<string, () => Promise<void>>();

beforeAll(async () => {
  stack = await startOperationalStack({
    registration: { migration: true },
    broker: {
      migration: {
        intervalMs: 0,
        afterVerifiedWrite: async ({ name }) => {
          const step = between.get(name);
          between.delete(name);
          await step?.();
        },
      },
    },
  });
  await stack.kube.createNamespace(NS);
}, 60_000);
afterAll(async () => {
  await stack?.close();
});
afterEach(() => between.clear());

const b64 = (text: string) => Buffer.from(text).toString('base64');

async function createSecret(name: string, data: Record<string, string>, extra: object = {}) {
  const entries = Object.entries(data).map(([k, v]) => [k, b64(v)]);
  return stack.kubeAdmin.createSecret(NS, {
    metadata: { name, labels: { app: 'legacy' } },
    data: Object.fromEntries(entries),
    ...extra,
  });
}

async function mark(name: string) {
  await stack.kubeAdmin.patchSecretMetadata(NS, name, { annotations: { [MIGRATE_ANNOTATION]: 'true' } });
}

async function secretExists(name: string): Promise<boolean> {
  return stack.kubeAdmin.getSecret(NS, name).then(
    () => true,
    () => false,
  );
}

async function stored(name: string) {
  return stack.clusterAdmin.kvRead('secret', `k8s/${NS}/${name}`);
}

async function events(name: string): Promise<Array<{ reason: string; type: string; message: string }>> {
  const response = await request(`${stack.kube.url}/api/v1/namespaces/${NS}/events`, {
    headers: { authorization: `Bearer ${stack.kube.adminToken}` },
    dispatcher: new (await import('undici')).Agent({ connect: { ca: stack.kube.caCertPem } }),
  });
  const list = (await response.body.json()) as { items: Array<Record<string, Loose>> };
  return list.items
    .filter((e) => e.involvedObject?.name === name)
    .map((e) => ({ reason: e.reason, type: e.type, message: e.message }));
}

const migrator = () => stack.broker.migrator!;

describe('migration of Kubernetes Secrets into OpenBao', () => {
  it('the CLI marks the selected Secrets (dry run changes nothing) and shows progress', async () => {
    await createSecret('cli-a', { k: 'v' });
    await createSecret('cli-b', { k: 'v' });
    await stack.kubeAdmin.createSecret(NS, {
      metadata: { name: 'unrelated', labels: { app: 'other' } },
      data: { k: b64('v') },
    });
    const kubeconfig = join(tmpdir(), `ct-migrate-${process.pid}.yaml`);
    await stack.kube.writeKubeconfig(kubeconfig);
    const out: string[] = [];
    /** `target migrate` of the legacy Secrets, in process, its stdout kept in `out`. */
    const migrate = async (...extra: string[]) => {
      const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
        out.push(String(chunk));
        return true;
      });
      try {
        await buildProgram().parseAsync([
          'node',
          'cloudtaser-cli',
          'target',
          'migrate',
          '--kubeconfig',
          kubeconfig,
          '--namespace',
          NS,
          '--selector',
          'app=legacy',
          ...extra,
        ]);
      } finally {
        spy.mockRestore();
      }
    };
    try {
      await migrate('--dry-run');
      expect(
        (await stack.kubeAdmin.getSecret(NS, 'cli-a')).metadata.annotations?.[MIGRATE_ANNOTATION],
      ).toBeUndefined();
      await migrate();
      // Waiting for a broker that does not come: exit 3, so a script can tell the time ran out (before: 0).
      process.exitCode = undefined;
      try {
        await migrate('--wait', '1');
        expect(process.exitCode).toBe(3);
      } finally {
        process.exitCode = undefined;
      }
      const text = out.join('');
      expect(text).toContain('[1/2] would-annotate');
      expect(text).toContain('Dry run: nothing was changed.');
      expect(text).toMatch(/\[2\/2\] annotated\s+legacy\/cli-b/);
      expect((await stack.kubeAdmin.getSecret(NS, 'cli-a')).metadata.annotations?.[MIGRATE_ANNOTATION]).toBe(
        'true',
      );
      expect(
        (await stack.kubeAdmin.getSecret(NS, 'unrelated')).metadata.annotations?.[MIGRATE_ANNOTATION],
      ).toBeUndefined();

      const outcomes = await migrator().runOnce();
      expect(outcomes.filter((o) => o.name.startsWith('cli-')).map((o) => o.result)).toEqual([
        'migrated',
        'migrated',
      ]);
      // Asked again once all are migrated: it says so, without the troubleshooting text for what is left (an
      // outside drill read "0 marked Secret(s) not migrated yet. The broker migrates them when ..." after a full
      // success).
      out.length = 0;
      await migrate();
      expect(out.join('')).toContain('Every marked Secret is migrated.');
      expect(out.join('')).not.toContain('not migrated yet');
    } finally {
      await rm(kubeconfig, { force: true });
    }
    await stack.kubeAdmin.deleteSecret(NS, 'unrelated');
  });

  it('writes an annotated Secret to secret/k8s/<ns>/<name>, verifies it, deletes it, and reports an Event', async () => {
    await createSecret('db', { password: 'hunter2-migrated', user: 'app' });
    await createSecret('keep', { x: 'not annotated' });
    await mark('db');
    const outcomes = await migrator().runOnce();
    expect(outcomes).toEqual([
      expect.objectContaining({ name: 'db', result: 'migrated', kvPath: `k8s/${NS}/db`, version: 1 }),
    ]);
    expect((await stored('db'))?.data).toEqual({ password: 'hunter2-migrated', user: 'app' });
    expect(await secretExists('db')).toBe(false);
    expect(await secretExists('keep')).toBe(true);
    expect(await events('db')).toContainEqual(
      expect.objectContaining({ reason: 'Migrated', type: 'Normal' }),
    );
    // The bridge wrote it with its own credentials: the broker holds no OpenBao token at all.
    expect(stack.logs.some((l) => l.includes('"event":"bridge.migration_written"'))).toBe(true);
  });

  it('loses nothing when the broker crashes between write and delete, and a rerun finishes the job', async () => {
    await createSecret('crashy', { token: 'crash-test-value' });
    await mark('crashy');
    between.set('crashy', async () => {
      throw new Error('simulated crash after the verified write');
    });
    const first = await migrator().runOnce();
    expect(first).toEqual([expect.objectContaining({ name: 'crashy', result: 'failed' })]);
    expect(await secretExists('crashy')).toBe(true);
    expect((await stored('crashy'))?.data).toEqual({ token: 'crash-test-value' });

    const second = await migrator().runOnce();
    expect(second).toEqual([expect.objectContaining({ name: 'crashy', result: 'migrated', version: 1 })]);
    expect(await secretExists('crashy')).toBe(false);
    // The rerun found the verified copy and did not write a second version.
    expect((await stored('crashy'))?.version).toBe(1);
  });

  it('does not delete a Secret edited after it was read, and migrates its new content on the next pass', async () => {
    await createSecret('edited', { password: 'old-value' });
    await mark('edited');
    between.set('edited', async () => {
      const response = await request(`${stack.kube.url}/api/v1/namespaces/${NS}/secrets/edited`, {
        method: 'PATCH',
        headers: {
          authorization: `Bearer ${stack.kube.adminToken}`,
          'content-type': 'application/merge-patch+json',
        },
        body: JSON.stringify({ data: { password: b64('new-value') } }),
        dispatcher: new (await import('undici')).Agent({ connect: { ca: stack.kube.caCertPem } }),
      });
      expect(response.statusCode).toBe(200);
      await response.body.dump();
    });
    const first = await migrator().runOnce();
    expect(first).toEqual([expect.objectContaining({ name: 'edited', result: 'conflict' })]);
    expect(await secretExists('edited')).toBe(true);
    expect(await events('edited')).toContainEqual(
      expect.objectContaining({ reason: 'MigrationConflict', type: 'Warning' }),
    );

    const second = await migrator().runOnce();
    expect(second).toEqual([expect.objectContaining({ name: 'edited', result: 'migrated', version: 2 })]);
    expect((await stored('edited'))?.data).toEqual({ password: 'new-value' });
    expect(await secretExists('edited')).toBe(false);
  });

  it('skips Secrets Kubernetes manages and binary values, keeps them, and reports it once', async () => {
    await createSecret(
      'binary',
      {},
      { data: { blob: Buffer.from([0xff, 0xfe, 0x00, 0x80]).toString('base64') } },
    );
    await mark('binary');
    const first = await migrator().runOnce();
    expect(first).toEqual([expect.objectContaining({ name: 'binary', result: 'skipped' })]);
    await migrator().runOnce();
    expect(await secretExists('binary')).toBe(true);
    expect(await stored('binary')).toBeUndefined();
    expect((await events('binary')).filter((e) => e.reason === 'MigrationSkipped')).toHaveLength(1);
  });

  it('annotates through the library with an exact result, and refuses nothing silently', async () => {
    await createSecret('lib-1', { a: '1' });
    const result = await annotateSecretsForMigration(stack.kubeAdmin, {
      namespace: NS,
      selector: 'app=legacy',
    });
    expect(result.annotated.map((s) => s.name)).toContain('lib-1');
    expect(result.alreadyAnnotated.map((s) => s.name)).toContain('binary');
    const outcomes = await migrator().runOnce();
    expect(outcomes.find((o) => o.name === 'lib-1')?.result).toBe('migrated');
  });

  it('keeps a Secret whose OpenBao path already holds a hand-written value, and says so on the Secret', async () => {
    await stack.clusterAdmin.kvWrite('secret', `k8s/${NS}/handmade`, { password: 'set-by-an-admin' });
    await createSecret('handmade', { password: 'cluster-copy' });
    await mark('handmade');
    const outcomes = (await migrator().runOnce()).filter((o) => o.name === 'handmade');
    expect(outcomes).toEqual([
      expect.objectContaining({ name: 'handmade', result: 'failed', reason: 'CT_MIGRATION_CONFLICT' }),
    ]);
    expect(await secretExists('handmade')).toBe(true);
    expect((await stored('handmade'))?.data).toEqual({ password: 'set-by-an-admin' });
    expect(await events('handmade')).toContainEqual(
      expect.objectContaining({
        reason: 'MigrationFailed',
        message: expect.stringContaining('CT_MIGRATION_CONFLICT'),
      }),
    );
    await stack.kubeAdmin.deleteSecret(NS, 'handmade');
  });

  it('stops when the registration turns migration off: every Secret kept, CT_MIGRATION_DISABLED in /status; on again, it resumes', async () => {
    const register = (migration: boolean) =>
      registerCluster(stack.registrar, {
        fingerprint: stack.cluster.fingerprint,
        tokenReviewEndpoint: stack.bridge.tokenReviewUrl,
        migration,
      });
    await register(false);
    await stack.bridge.pollNow();
    await createSecret('paused', { token: 'paused-value' });
    await mark('paused');
    const refused = (await migrator().runOnce()).filter((o) => o.name === 'paused');
    expect(refused).toEqual([
      expect.objectContaining({ name: 'paused', result: 'refused', reason: 'CT_MIGRATION_DISABLED' }),
    ]);
    expect(await secretExists('paused')).toBe(true);
    expect(await stored('paused')).toBeUndefined();
    const health = await request(`${stack.broker.healthUrl}/status`);
    const status = (await health.body.json()) as Loose;
    expect(status.migration).toMatchObject({ state: 'refused', lastErrorCode: 'CT_MIGRATION_DISABLED' });
    expect(status.migration.reason).toContain('--migration');
    expect(await events('paused')).toContainEqual(
      expect.objectContaining({ reason: 'MigrationRefused', type: 'Warning' }),
    );
    expect(
      stack.logs.some(
        (l) => l.includes('"event":"migration.refused"') && l.includes('CT_MIGRATION_DISABLED'),
      ),
    ).toBe(true);

    await register(true);
    await stack.bridge.pollNow();
    expect((await migrator().runOnce()).filter((o) => o.name === 'paused')).toEqual([
      expect.objectContaining({ name: 'paused', result: 'migrated' }),
    ]);
    expect(stack.broker.status().migration?.state).toBe('active');
    expect(await secretExists('paused')).toBe(false);
  });

  it('wrote no migrated secret value to any log line', () => {
    const all = stack.logs.join('\n');
    for (const value of [
      'hunter2-migrated',
      'crash-test-value',
      'old-value',
      'new-value',
      'cluster-copy',
      'set-by-an-admin',
      'paused-value',
    ])
      expect(all).not.toContain(value);
  });
});
