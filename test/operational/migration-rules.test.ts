/**
 * The bridge's migration rules (runtime/migration/bridge-side.ts) one by one, against the OpenBao test server
 * with the bridge's shipped least-privilege policy, and the broker's proof check with a bridge that lies.
 */
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloudtaserError } from '../../runtime/core/errors.js';
import { createLogger, silentLogger } from '../../runtime/core/log.js';
import { createLogSummarizer } from '../../runtime/core/log-summary.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import type { KubeSecret } from '../../runtime/kube/index.js';
import {
  MIGRATION_MARKER,
  MIGRATION_OWNERSHIP_MS,
  type MigrationAnswer,
  migrationProof,
  newMigrationNonce,
  serveMigration,
  startSecretMigrator,
} from '../../runtime/migration/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { registerCluster } from '../../runtime/registration/index.js';
import { DEFAULT_TUNNEL_LIMITS, type TunnelMux, type TunnelRequest } from '../../runtime/tunnel/index.js';
import { provisionIdentities } from '../openbao-identities.js';

let server: OpenBaoTestServer;
let admin: OpenBaoClient;
/** The cluster namespace as the bridge sees it (bridge policy, AppRole token). */
let asBridge: OpenBaoClient;
/** The same namespace with the root token, for what an admin or another tool does. */
let asAdmin: OpenBaoClient;
let clock = Date.now();

beforeAll(async () => {
  server = await startOpenBaoTestServer();
  admin = new OpenBaoClient({ address: server.address, token: server.rootToken });
  const identities = await provisionIdentities(admin);
  const cluster = await registerCluster(admin.withToken(identities.registrarToken), {
    fingerprint: randomUUID(),
    migration: true,
  });
  asBridge = admin.withToken(identities.bridgeToken).withNamespace(cluster.namespace);
  asAdmin = admin.withNamespace(cluster.namespace);
});
afterAll(async () => {
  await admin?.close();
  await server?.close();
});

function put(name: string, body: unknown, options: { enabled?: boolean; method?: string } = {}) {
  const request: TunnelRequest = {
    method: options.method ?? 'PUT',
    path: `/migration/v1/secrets/ns1/${name}`,
    headers: { 'content-type': 'application/json' },
    body: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)),
  };
  return serveMigration(request, {
    cluster: asBridge,
    enabled: options.enabled ?? true,
    log: silentLogger,
    now: () => clock,
  }).then((reply) => ({
    status: reply.status,
    text: String(reply.body ?? ''),
    body: JSON.parse(String(reply.body ?? '{}')) as Record<string, unknown> & Partial<MigrationAnswer>,
  }));
}

const source = (uid = randomUUID(), resourceVersion = '100') => ({ uid, resourceVersion });

describe('bridge-side migration rules', () => {
  it('writes a new key once, proves it with an HMAC of the read-back value, and records which Secret wrote it', async () => {
    const nonce = newMigrationNonce();
    const from = source();
    const answer = await put('fresh', { data: { a: '1' }, source: from, nonce });
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ version: 1, proof: migrationProof(nonce, 1, { a: '1' }), written: true });
    expect(answer.body.proof).not.toBe(migrationProof(nonce, 1, { a: '2' }));
    const metadata = await asAdmin.kvReadMetadata('secret', 'k8s/ns1/fresh');
    expect(metadata?.customMetadata).toMatchObject({
      [MIGRATION_MARKER.source]: `${from.uid}/100`,
      [MIGRATION_MARKER.version]: '1',
    });
  });

  it('answers a retry of the same Secret and resourceVersion (a lost answer) with a proof and no second version', async () => {
    const from = source();
    await put('retry', { data: { a: '1' }, source: from, nonce: newMigrationNonce() });
    const nonce = newMigrationNonce();
    const again = await put('retry', { data: { a: '1' }, source: from, nonce });
    expect(again.body).toEqual({ version: 1, proof: migrationProof(nonce, 1, { a: '1' }), written: false });
    expect((await asAdmin.kvRead('secret', 'k8s/ns1/retry'))?.version).toBe(1);
  });

  it('lets a newer resourceVersion of the same Secret replace its own write, but no other Secret', async () => {
    const uid = randomUUID();
    await put('edited', { data: { p: 'old' }, source: source(uid, '1'), nonce: newMigrationNonce() });
    const newer = await put('edited', {
      data: { p: 'new' },
      source: source(uid, '2'),
      nonce: newMigrationNonce(),
    });
    expect(newer.status).toBe(200);
    expect(newer.body.version).toBe(2);
    const other = await put('edited', { data: { p: 'x' }, source: source(), nonce: newMigrationNonce() });
    expect(other.status).toBe(409);
    expect(other.body.code).toBe('CT_MIGRATION_CONFLICT');
    expect((await asAdmin.kvRead('secret', 'k8s/ns1/edited'))?.data).toEqual({ p: 'new' });
  });

  it('gives a migrated value to OpenBao for good after the ownership window: no proof, no replacement', async () => {
    const uid = randomUUID();
    await put('aged', { data: { p: 'v' }, source: source(uid, '1'), nonce: newMigrationNonce() });
    clock += MIGRATION_OWNERSHIP_MS + 1;
    try {
      const retry = await put('aged', {
        data: { p: 'v' },
        source: source(uid, '1'),
        nonce: newMigrationNonce(),
      });
      const replace = await put('aged', {
        data: { p: 'w' },
        source: source(uid, '2'),
        nonce: newMigrationNonce(),
      });
      expect([retry.status, retry.body.code]).toEqual([409, 'CT_MIGRATION_CONFLICT']);
      expect([replace.status, replace.body.code]).toEqual([409, 'CT_MIGRATION_CONFLICT']);
    } finally {
      clock = Date.now();
    }
    expect((await asAdmin.kvRead('secret', 'k8s/ns1/aged'))?.data).toEqual({ p: 'v' });
  });

  it('never touches a version someone else wrote after the migration, even of the same Secret', async () => {
    const uid = randomUUID();
    await put('rotated', { data: { p: 'migrated' }, source: source(uid, '1'), nonce: newMigrationNonce() });
    await asAdmin.kvWrite('secret', 'k8s/ns1/rotated', { p: 'rotated-by-admin' });
    const again = await put('rotated', {
      data: { p: 'migrated' },
      source: source(uid, '1'),
      nonce: newMigrationNonce(),
    });
    expect([again.status, again.body.code]).toEqual([409, 'CT_MIGRATION_CONFLICT']);
    expect((await asAdmin.kvRead('secret', 'k8s/ns1/rotated'))?.data).toEqual({ p: 'rotated-by-admin' });
  });

  it('keeps the Secret (never deletes unverified) when it could not record its write, and refuses to claim it later', async () => {
    const from = source();
    // The marker write fails past the client's retries: the value landed, its ownership was not recorded.
    server.injectFault({
      pathPattern: /\/metadata\/k8s\/ns1\/unmarked$/,
      method: 'POST',
      status: 500,
      times: 4,
    });
    const first = await put('unmarked', { data: { a: '1' }, source: from, nonce: newMigrationNonce() });
    expect([first.status, first.body.code]).toEqual([502, 'CT_OPENBAO_ERROR']);
    expect(first.body.proof).toBeUndefined();
    const retry = await put('unmarked', { data: { a: '1' }, source: from, nonce: newMigrationNonce() });
    expect([retry.status, retry.body.code]).toEqual([409, 'CT_MIGRATION_CONFLICT']);
    expect(retry.body.error).toContain('could not record');
    expect((await asAdmin.kvRead('secret', 'k8s/ns1/unmarked'))?.version).toBe(1);
  });

  it('keeps custom metadata someone else set when it records its own write', async () => {
    await asAdmin.kvWriteMetadata('secret', 'k8s/ns1/annotated', { customMetadata: { owner: 'team-a' } });
    const answer = await put('annotated', { data: { a: '1' }, source: source(), nonce: newMigrationNonce() });
    expect(answer.status).toBe(200);
    expect((await asAdmin.kvReadMetadata('secret', 'k8s/ns1/annotated'))?.customMetadata?.owner).toBe(
      'team-a',
    );
  });

  it('refuses to prove a version that was deleted after it was written (CT_MIGRATION_UNVERIFIED)', async () => {
    const from = source();
    await put('deleted', { data: { a: '1' }, source: from, nonce: newMigrationNonce() });
    await asAdmin.kvDelete('secret', 'k8s/ns1/deleted');
    const retry = await put('deleted', { data: { a: '1' }, source: from, nonce: newMigrationNonce() });
    expect([retry.status, retry.body.code]).toEqual([409, 'CT_MIGRATION_UNVERIFIED']);
  });

  it('refuses everything, before any OpenBao request, when the registration does not enable migration', async () => {
    const before = server.requestLog().length;
    for (const method of ['PUT', 'GET', 'DELETE']) {
      const answer = await put(
        'off',
        { data: { a: '1' }, source: source(), nonce: newMigrationNonce() },
        {
          enabled: false,
          method,
        },
      );
      expect([answer.status, answer.body.code]).toEqual([403, 'CT_MIGRATION_DISABLED']);
    }
    expect(server.requestLog().length).toBe(before);
  });

  it('logs a repeated refusal once per interval, counting what it held back', async () => {
    const lines: string[] = [];
    const log = createLogger('test', {
      level: 'warn',
      destination: new Writable({
        write(chunk, _encoding, callback) {
          lines.push(String(chunk));
          callback();
        },
      }),
    });
    const refusalLog = createLogSummarizer(log, { summaryEvent: 'bridge.migration_refusals_summary' });
    const request = {
      method: 'PUT',
      path: '/migration/v1/secrets/ns1/x',
      headers: {},
      body: Buffer.from('{}'),
    };
    for (let i = 0; i < 100; i++)
      await serveMigration(request, { cluster: asBridge, enabled: false, log, refusalLog });
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0])).toMatchObject({
      event: 'bridge.migration_refused',
      code: 'CT_MIGRATION_DISABLED',
    });
    // The window closes (here: at once): one summary line counts the 99 held back, by code.
    refusalLog.close();
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[1])).toMatchObject({
      event: 'bridge.migration_refusals_summary',
      suppressed: 99,
      byCode: { CT_MIGRATION_DISABLED: 99 },
    });
  });

  it.each([
    ['not JSON', '{"data":'],
    ['a non-string value', { data: { a: 1 }, source: source(), nonce: newMigrationNonce() }],
    [
      'too many keys',
      {
        data: Object.fromEntries(Array.from({ length: 1025 }, (_, i) => [`k${i}`, 'v'])),
        source: source(),
        nonce: newMigrationNonce(),
      },
    ],
    ['no source', { data: { a: 'secret-value-1' }, nonce: newMigrationNonce() }],
    [
      'a bad uid',
      {
        data: { a: 'secret-value-1' },
        source: { uid: '../x', resourceVersion: '1' },
        nonce: newMigrationNonce(),
      },
    ],
    ['a short nonce', { data: { a: 'secret-value-1' }, source: source(), nonce: 'abc' }],
  ])('refuses a malformed request (%s) with CT_INVALID_ARGUMENT and echoes no value', async (_what, body) => {
    const before = server.requestLog().length;
    const answer = await put('malformed', body);
    expect([answer.status, answer.body.code]).toEqual([400, 'CT_INVALID_ARGUMENT']);
    expect(answer.text).not.toContain('secret-value-1');
    expect(server.requestLog().length).toBe(before);
  });

  it('refuses other methods and paths outside /migration/v1/secrets/<namespace>/<name>', async () => {
    const get = await put('x', '', { method: 'GET' });
    expect([get.status, get.body.code]).toEqual([405, 'CT_INVALID_ARGUMENT']);
    const deep = await serveMigration(
      { method: 'PUT', path: '/migration/v1/secrets/a/b/c', headers: {}, body: Buffer.from('{}') },
      { cluster: asBridge, enabled: true, log: silentLogger },
    );
    expect(deep.status).toBe(400);
  });
});

describe('the broker deletes nothing it has not verified', () => {
  const secret = (name: string): KubeSecret =>
    ({
      metadata: {
        name,
        namespace: 'ns1',
        uid: randomUUID(),
        resourceVersion: '7',
        annotations: { 'cloudtaser.io/migrate': 'true' },
      },
      type: 'Opaque',
      data: { password: Buffer.from('kept-value').toString('base64') },
    }) as KubeSecret;

  /** A broker-side migrator against a fake bridge that answers `reply` to every migration. */
  async function runAgainst(
    reply: (body: Record<string, unknown>) => { status: number; body: unknown },
    items = [secret('one'), secret('two')],
    passes = 1,
  ) {
    const deleted: string[] = [];
    const events: Array<{ reason: string; message: string }> = [];
    const requests: number[] = [];
    const tunnel = {
      closed: false,
      async request(_head: unknown, body?: string) {
        requests.push(Buffer.byteLength(body ?? ''));
        // As the mux does (runtime/tunnel/mux.ts request()): a body over the limit is refused before it is sent.
        if (Buffer.byteLength(body ?? '') > DEFAULT_TUNNEL_LIMITS.maxBodyBytes)
          throw new CloudtaserError('CT_INVALID_ARGUMENT', 'request body exceeds the tunnel limit');
        const answer = reply(JSON.parse(body ?? '{}'));
        return { status: answer.status, headers: {}, body: Buffer.from(JSON.stringify(answer.body)) };
      },
    } as unknown as TunnelMux;
    const migrator = startSecretMigrator({
      intervalMs: 0,
      tunnel: () => tunnel,
      kube: {
        listSecrets: async () => ({ metadata: {}, items }),
        deleteSecret: async (_ns: string, name: string) => {
          deleted.push(name);
          items.splice(
            items.findIndex((item) => item.metadata.name === name),
            1,
          );
        },
        createEvent: async (_ns: string, event: { reason: string; message: string }) => {
          events.push({ reason: event.reason, message: event.message });
        },
      } as never,
    });
    let outcomes = await migrator.runOnce();
    for (let pass = 1; pass < passes; pass++) outcomes = await migrator.runOnce();
    const status = migrator.status();
    await migrator.close();
    return { deleted, events, outcomes, status, requests };
  }

  const proveEverything = (body: Record<string, unknown>) => ({
    status: 200,
    body: {
      version: 1,
      proof: migrationProof(String(body.nonce), 1, body.data as Record<string, string>),
      written: true,
    },
  });

  it('keeps the Secret when the proof does not match its data (CT_MIGRATION_UNVERIFIED)', async () => {
    const run = await runAgainst((body) => ({
      status: 200,
      body: {
        version: 1,
        proof: migrationProof(String(body.nonce), 1, { password: 'something-else' }),
        written: true,
      },
    }));
    expect(run.deleted).toEqual([]);
    expect(run.outcomes.map((o) => [o.result, o.reason])).toEqual([
      ['failed', 'CT_MIGRATION_UNVERIFIED'],
      ['failed', 'CT_MIGRATION_UNVERIFIED'],
    ]);
  });

  it('deletes after a matching proof, and only then', async () => {
    const run = await runAgainst((body) => ({
      status: 200,
      body: {
        version: 3,
        proof: migrationProof(String(body.nonce), 3, body.data as Record<string, string>),
        written: true,
      },
    }));
    expect(run.deleted).toEqual(['one', 'two']);
    expect(run.status.state).toBe('active');
  });

  it('skips a Secret whose data escapes to more JSON than a tunnel request carries: one Event, kept, never sent', async () => {
    // 700 KiB of control bytes: within Kubernetes' 1 MiB of data, but JSON writes each as \u00XX (6 bytes).
    const huge = secret('escapes');
    (huge as { data: Record<string, string> }).data = {
      blob: Buffer.alloc(700 * 1024, 1).toString('base64'),
    };
    const run = await runAgainst(proveEverything, [huge, secret('small')], 3);
    expect(run.deleted).toEqual(['small']);
    expect(run.requests.every((bytes) => bytes <= DEFAULT_TUNNEL_LIMITS.maxBodyBytes)).toBe(true);
    expect(run.outcomes.find((o) => o.name === 'escapes')).toMatchObject({ result: 'skipped' });
    const skips = run.events.filter((e) => e.reason === 'MigrationSkipped');
    expect(skips).toHaveLength(1);
    expect(skips[0].message).toContain('CT_MIGRATION_TOO_LARGE');
    expect(run.events.filter((e) => e.reason === 'MigrationFailed')).toEqual([]);
  });

  it('on CT_MIGRATION_DISABLED asks once, keeps every Secret, says why on each and in its status', async () => {
    let asked = 0;
    const run = await runAgainst(() => {
      asked++;
      return {
        status: 403,
        body: { code: 'CT_MIGRATION_DISABLED', error: 'not enabled; register with --migration' },
      };
    });
    expect(asked).toBe(1);
    expect(run.deleted).toEqual([]);
    expect(run.outcomes.map((o) => o.result)).toEqual(['refused', 'refused']);
    expect(run.events.map((e) => e.reason)).toEqual(['MigrationRefused', 'MigrationRefused']);
    expect(run.events[0].message).toContain('CT_MIGRATION_DISABLED');
    expect(run.status).toMatchObject({ state: 'refused', lastErrorCode: 'CT_MIGRATION_DISABLED' });
  });
});
