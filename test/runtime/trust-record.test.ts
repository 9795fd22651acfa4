/**
 * The broker's trust record (a ConfigMap): the first CA accepted without a pin is recorded before the broker goes
 * operational on it; a record it cannot read or write keeps it closed with a reason in /status; an admin pin wins
 * and says so in the log when it replaces a different record. The Kubernetes test server enforces RBAC as a real
 * API server does (resourceNames limit get/patch; they cannot limit create).
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type BrokerHandle,
  configMapTrustRecord,
  DEFAULT_TRUST_RECORD_NAME,
} from '../../runtime/broker/index.js';
import type { Logger } from '../../runtime/core/index.js';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { KubeClient } from '../../runtime/kube/index.js';
import { waitUntil } from '../support/wait.js';
import {
  type Replicas,
  type SecretStore,
  startReplicas,
  startSecretStore,
  startTestBridge,
  startTestBroker,
} from './fixtures.js';

const NAMESPACE = 'cloudtaser-system';
const OPERATOR = { namespace: NAMESPACE, name: 'cloudtaser' };
const RECORD = { namespace: NAMESPACE, name: DEFAULT_TRUST_RECORD_NAME };

let replicas: Replicas;
let store: SecretStore;
let kube: KubeTestServer;
let dir: string;
let admin: KubeClient;
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  replicas = await startReplicas();
  store = await startSecretStore();
  kube = await startKubeTestServer();
  dir = await mkdtemp(join(tmpdir(), 'trust-record-'));
  await kube.createServiceAccount(OPERATOR.namespace, OPERATOR.name);
  await kube.writeKubeconfig(join(dir, 'admin'));
  admin = KubeClient.fromConnection({ kind: 'kubeconfig', path: join(dir, 'admin') });
});
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});
afterAll(async () => {
  admin?.close();
  await replicas?.close();
  await store?.close();
  await kube?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A Kubernetes client as the operator's service account, with only the grants RBAC gave it. */
async function operatorClient(): Promise<KubeClient> {
  const path = join(dir, `operator-${randomUUID()}`);
  await kube.writeKubeconfig(path, {
    token: kube.issueServiceAccountToken(OPERATOR.namespace, OPERATOR.name, { expirationSeconds: 3600 }),
  });
  const client = KubeClient.fromConnection({ kind: 'kubeconfig', path });
  closers.push(async () => client.close());
  return client;
}

function captured(): { logger: Logger; events: Record<string, unknown>[] } {
  const events: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      for (const line of String(chunk).split('\n')) if (line) events.push(JSON.parse(line));
      callback();
    },
  });
  return { logger: pino({ level: 'info', base: { component: 'broker' } }, destination), events };
}

async function cluster() {
  const registered = await store.register();
  const bridge = await startTestBridge({ openbao: store.admin, beacons: [replicas.address] });
  closers.push(() => bridge.close());
  return { registered, bridge };
}

async function broker(options: Parameters<typeof startTestBroker>[0]): Promise<BrokerHandle> {
  const handle = await startTestBroker(options);
  closers.push(() => handle.close());
  return handle;
}

async function resetRecord(): Promise<void> {
  await admin.createConfigMap(NAMESPACE, { metadata: { name: RECORD.name } }).catch(() => undefined);
  const current = await admin.getConfigMap(NAMESPACE, RECORD.name);
  await admin.patchConfigMapData(
    NAMESPACE,
    RECORD.name,
    { caSha256: null, recordedAt: null, recordedBy: null },
    {
      resourceVersion: current.metadata.resourceVersion,
    },
  );
}

describe('the broker trust record', () => {
  it('records the first CA it accepts before it goes operational on it', async () => {
    await resetRecord();
    kube.grant(OPERATOR, {
      verbs: ['get', 'patch'],
      resources: ['configmaps'],
      resourceNames: [RECORD.name],
      namespace: NAMESPACE,
    });
    const { registered, bridge } = await cluster();
    const log = captured();
    const trustRecord = configMapTrustRecord(await operatorClient(), RECORD);
    const first = await broker({
      fingerprint: registered.fingerprint,
      beacons: [replicas.address],
      trustRecord,
      logger: log.logger,
    });
    await first.waitForPhase('operational', 15_000);
    const recorded = await admin.getConfigMap(NAMESPACE, RECORD.name);
    expect(recorded.data).toMatchObject({
      caSha256: registered.operationalHash,
      recordedBy: 'broker (first bootstrap)',
    });
    // Recorded before operational: the record line precedes the operational phase line.
    const events = log.events.map((e) => (e.event === 'broker.phase' ? `phase:${e.phase}` : e.event));
    expect(events.indexOf('broker.trust_recorded')).toBeGreaterThan(-1);
    expect(events.indexOf('broker.trust_recorded')).toBeLessThan(events.indexOf('phase:operational'));
    expect((await trustRecord.read()).caSha256).toBe(registered.operationalHash);
    await first.close();
    expect(bridge.status().bootstrapsSigned).toBe(1);
  });

  it('stays closed, saying why in /status, while the record cannot be read; opens once RBAC allows it', async () => {
    const { registered, bridge } = await cluster();
    // A fresh service account name: no grants at all.
    const account = { namespace: NAMESPACE, name: `no-grants-${randomUUID().slice(0, 8)}` };
    await kube.createServiceAccount(account.namespace, account.name);
    const path = join(dir, `no-grants-${account.name}`);
    await kube.writeKubeconfig(path, {
      token: kube.issueServiceAccountToken(account.namespace, account.name),
    });
    const client = KubeClient.fromConnection({ kind: 'kubeconfig', path });
    closers.push(async () => client.close());
    const handle = await broker({
      fingerprint: registered.fingerprint,
      beacons: [replicas.address],
      trustRecord: configMapTrustRecord(client, { namespace: NAMESPACE, name: 'record-of-no-grants' }),
    });
    await waitUntil(() => handle.status().lastErrorCode === 'CT_TRUST_RECORD_UNAVAILABLE', {
      timeoutMs: 10_000,
      what: 'the record refusal',
    });
    expect(handle.status().phase).toBe('bootstrapping');
    expect(handle.status().reason).toMatch(
      /cannot read the trust record ConfigMap cloudtaser-system\/record-of-no-grants: CT_KUBE_FORBIDDEN/,
    );
    // It did not bootstrap at all: nothing was trusted without knowing what the record says.
    expect(bridge.status().bootstrapsSigned).toBe(0);
    expect(store.initializedWrites(registered.fingerprint)).toBe(0);
    await admin.createConfigMap(NAMESPACE, { metadata: { name: 'record-of-no-grants' } });
    kube.grant(account, {
      verbs: ['get', 'patch'],
      resources: ['configmaps'],
      resourceNames: ['record-of-no-grants'],
      namespace: NAMESPACE,
    });
    await handle.waitForPhase('operational', 15_000);
  });

  it('sends a first-contact bridge nothing until its CA is recorded, so the one-time bootstrap stays unspent; goes once it can record', async () => {
    const { registered, bridge } = await cluster();
    const account = { namespace: NAMESPACE, name: `read-only-${randomUUID().slice(0, 8)}` };
    const name = `record-${account.name}`;
    await kube.createServiceAccount(account.namespace, account.name);
    await admin.createConfigMap(NAMESPACE, { metadata: { name } });
    kube.grant(account, {
      verbs: ['get'],
      resources: ['configmaps'],
      resourceNames: [name],
      namespace: NAMESPACE,
    });
    const path = join(dir, account.name);
    await kube.writeKubeconfig(path, {
      token: kube.issueServiceAccountToken(account.namespace, account.name),
    });
    const client = KubeClient.fromConnection({ kind: 'kubeconfig', path });
    closers.push(async () => client.close());
    const handle = await broker({
      fingerprint: registered.fingerprint,
      beacons: [replicas.address],
      trustRecord: configMapTrustRecord(client, { namespace: NAMESPACE, name }),
    });
    await waitUntil(() => /cannot record it, so it sent nothing/.test(handle.status().reason), {
      timeoutMs: 10_000,
      what: 'the unrecorded CA refusal',
    });
    const status = handle.status();
    expect(status.phase).toBe('bootstrapping');
    expect(status.lastErrorCode).toBe('CT_TRUST_RECORD_UNAVAILABLE');
    expect(status.reason).toMatch(
      new RegExp(
        `presented cluster CA ${registered.operationalHash.slice(0, 8)}… at first contact.*cannot patch the trust record .*CT_KUBE_FORBIDDEN`,
      ),
    );
    expect(handle.tunnel()).toBeUndefined();
    expect(bridge.tunnels()).toHaveLength(0);
    // Nothing was sent: the bridge signed nothing and OpenBao's one-time bootstrap is still unspent, so a restart
    // of this broker (the RBAC fix is usually a `helm upgrade`) meets a bridge that can still answer it.
    expect(bridge.status().bootstrapsSigned).toBe(0);
    expect(store.initializedWrites(registered.fingerprint)).toBe(0);
    kube.grant(account, {
      verbs: ['patch'],
      resources: ['configmaps'],
      resourceNames: [name],
      namespace: NAMESPACE,
    });
    await handle.waitForPhase('operational', 15_000);
    expect((await admin.getConfigMap(NAMESPACE, name)).data?.caSha256).toBe(registered.operationalHash);
  });

  it('refuses a CA that differs from the record and never reads an unreadable record as empty', async () => {
    const { registered } = await cluster();
    const name = `record-${randomUUID().slice(0, 8)}`;
    await admin.createConfigMap(NAMESPACE, { metadata: { name }, data: { caSha256: 'ab'.repeat(32) } });
    const handle = await broker({
      fingerprint: registered.fingerprint,
      beacons: [replicas.address],
      trustRecord: configMapTrustRecord(admin, { namespace: NAMESPACE, name }),
    });
    await waitUntil(() => handle.status().lastErrorCode === 'CT_PKI_CA_PIN_MISMATCH', {
      timeoutMs: 10_000,
      what: 'the pin refusal',
    });
    expect(handle.status().phase).not.toBe('operational');
    expect(handle.status().reason).toContain('The pin in force is the trust record');
    await handle.close();

    const corrupt = `record-${randomUUID().slice(0, 8)}`;
    await admin.createConfigMap(NAMESPACE, { metadata: { name: corrupt }, data: { caSha256: 'not a hash' } });
    const second = await broker({
      fingerprint: registered.fingerprint,
      beacons: [replicas.address],
      trustRecord: configMapTrustRecord(admin, { namespace: NAMESPACE, name: corrupt }),
    });
    await waitUntil(() => second.status().lastErrorCode === 'CT_TRUST_RECORD_UNAVAILABLE', {
      timeoutMs: 10_000,
      what: 'the corrupt record refusal',
    });
    expect(second.status().reason).toMatch(/target trust pin/);
  });

  it('lets an admin pin win over a different record, and says so in the log', async () => {
    const { registered } = await cluster();
    const name = `record-${randomUUID().slice(0, 8)}`;
    await admin.createConfigMap(NAMESPACE, { metadata: { name }, data: { caSha256: 'cd'.repeat(32) } });
    const log = captured();
    const handle = await broker({
      fingerprint: registered.fingerprint,
      beacons: [replicas.address],
      caSha256: registered.operationalHash,
      trustRecord: configMapTrustRecord(admin, { namespace: NAMESPACE, name }),
      logger: log.logger,
    });
    await handle.waitForPhase('operational', 15_000);
    await waitUntil(
      async () => (await admin.getConfigMap(NAMESPACE, name)).data?.caSha256 === registered.operationalHash,
      { timeoutMs: 5_000 },
    );
    expect(log.events).toContainEqual(
      expect.objectContaining({
        event: 'broker.trust_record_replaced',
        previousCaSha256Prefix: 'cdcdcdcd',
        pinnedCaSha256Prefix: registered.operationalHash.slice(0, 8),
      }),
    );
  });

  it('records a mistyped admin pin nowhere: the record keeps the real CA, so removing the typo heals', async () => {
    const { registered } = await cluster();
    const name = `record-${randomUUID().slice(0, 8)}`;
    await admin.createConfigMap(NAMESPACE, {
      metadata: { name },
      data: { caSha256: registered.operationalHash },
    });
    const log = captured();
    const handle = await broker({
      fingerprint: registered.fingerprint,
      beacons: [replicas.address],
      caSha256: 'ab'.repeat(32),
      trustRecord: configMapTrustRecord(admin, { namespace: NAMESPACE, name }),
      logger: log.logger,
    });
    // The bridge's CA does not match the typo: refused in the init room, every attempt.
    await waitUntil(() => handle.status().lastErrorCode === 'CT_PKI_CA_PIN_MISMATCH', {
      timeoutMs: 10_000,
      what: 'the pin mismatch',
    });
    // The advice names the pin in force (the flag, which wins over the record): `target trust pin` would not move
    // it (an outside drill ran it as told and the broker kept refusing with the same advice).
    expect(handle.status().reason).toContain('The pin in force is --ca-sha256');
    expect(handle.status().reason).toContain('`target trust pin` alone does not change this pin');
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await admin.getConfigMap(NAMESPACE, name)).data?.caSha256).toBe(registered.operationalHash);
    expect(log.events.filter((e) => e.event === 'broker.trust_record_replaced')).toEqual([]);
  });

  it('without a configured record keeps the first CA for the life of the process and warns that a restart forgets it', async () => {
    const { registered } = await cluster();
    const log = captured();
    const handle = await broker({
      fingerprint: registered.fingerprint,
      beacons: [replicas.address],
      logger: log.logger,
    });
    await handle.waitForPhase('operational', 15_000);
    expect(log.events).toContainEqual(
      expect.objectContaining({ event: 'broker.trust_record_memory', level: 40 }),
    );
  });
});

describe('RBAC on the trust record in the Kubernetes test server', () => {
  it('limits get and patch to the named ConfigMap and never allows create through resourceNames (as upstream RBAC)', async () => {
    const account = { namespace: NAMESPACE, name: `rbac-${randomUUID().slice(0, 8)}` };
    await kube.createServiceAccount(account.namespace, account.name);
    kube.grant(account, {
      verbs: ['get', 'patch', 'create'],
      resources: ['configmaps'],
      resourceNames: ['only-this'],
      namespace: NAMESPACE,
    });
    const path = join(dir, account.name);
    await kube.writeKubeconfig(path, {
      token: kube.issueServiceAccountToken(account.namespace, account.name),
    });
    const client = KubeClient.fromConnection({ kind: 'kubeconfig', path });
    closers.push(async () => client.close());
    await admin.createConfigMap(NAMESPACE, { metadata: { name: 'only-this' } });
    await admin.createConfigMap(NAMESPACE, { metadata: { name: 'another' } });
    await expect(client.getConfigMap(NAMESPACE, 'only-this')).resolves.toMatchObject({
      metadata: { name: 'only-this' },
    });
    await expect(client.getConfigMap(NAMESPACE, 'another')).rejects.toMatchObject({
      code: 'CT_KUBE_FORBIDDEN',
    });
    await expect(client.createConfigMap(NAMESPACE, { metadata: { name: 'new-one' } })).rejects.toMatchObject({
      code: 'CT_KUBE_FORBIDDEN',
    });
    // A stale resourceVersion is a conflict, not an overwrite.
    const current = await client.getConfigMap(NAMESPACE, 'only-this');
    await client.patchConfigMapData(
      NAMESPACE,
      'only-this',
      { caSha256: 'ef'.repeat(32) },
      { resourceVersion: current.metadata.resourceVersion },
    );
    await expect(
      client.patchConfigMapData(
        NAMESPACE,
        'only-this',
        { caSha256: '01'.repeat(32) },
        { resourceVersion: current.metadata.resourceVersion },
      ),
    ).rejects.toMatchObject({ code: 'CT_KUBE_CONFLICT' });
    expect((await client.getConfigMap(NAMESPACE, 'only-this')).data?.caSha256).toBe('ef'.repeat(32));
  });
});
