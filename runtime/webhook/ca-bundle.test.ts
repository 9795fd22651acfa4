import { describe, expect, it } from 'vitest';
import { CloudtaserError } from '../core/index.js';
import type { JsonPatchOperation, KubeMutatingWebhookConfiguration } from '../kube/index.js';
import { caBundlePatch, keepWebhookCaBundle, type WebhookConfigurationApi } from './ca-bundle.js';

const CA_PEM = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';
const WANTED = Buffer.from(CA_PEM).toString('base64');

/** An in-memory stand-in for the API server's handling of one object: resourceVersion, JSON patch `test`. */
class FakeConfigurations implements WebhookConfigurationApi {
  object:
    | {
        metadata: { name: string; uid: string; resourceVersion: string };
        webhooks: { name: string; clientConfig: { caBundle?: string } }[];
      }
    | undefined;
  failWith: CloudtaserError | undefined;
  /** Runs between our GET and our PATCH: someone else edits the object. */
  beforePatch: (() => void) | undefined;
  patches: JsonPatchOperation[][] = [];

  create(webhooks = 1): void {
    this.object = {
      metadata: { name: 'cloudtaser', uid: 'f3b0c2a4-0000-4000-8000-000000000001', resourceVersion: '1' },
      webhooks: Array.from({ length: webhooks }, (_, i) => ({
        name: `inject${i}.cloudtaser.io`,
        clientConfig: {},
      })),
    };
  }

  bump(): void {
    this.object!.metadata.resourceVersion = String(Number(this.object!.metadata.resourceVersion) + 1);
  }

  async getMutatingWebhookConfiguration(name: string): Promise<KubeMutatingWebhookConfiguration> {
    if (this.failWith) throw this.failWith;
    if (!this.object || name !== this.object.metadata.name)
      throw new CloudtaserError('CT_KUBE_NOT_FOUND', `mutatingwebhookconfigurations "${name}" not found`);
    return structuredClone(this.object);
  }

  async patchMutatingWebhookConfiguration(
    _name: string,
    operations: readonly JsonPatchOperation[],
  ): Promise<KubeMutatingWebhookConfiguration> {
    this.beforePatch?.();
    this.beforePatch = undefined;
    this.patches.push([...operations]);
    for (const op of operations) {
      if (op.op === 'test' && op.path === '/metadata/resourceVersion') {
        if (op.value !== this.object!.metadata.resourceVersion)
          throw new CloudtaserError(
            'CT_KUBE_ERROR',
            'the server rejected our request: test operation failed (422)',
          );
      } else if (op.op === 'add') {
        const index = Number(/^\/webhooks\/(\d+)\/clientConfig\/caBundle$/.exec(op.path)![1]);
        this.object!.webhooks[index].clientConfig.caBundle = op.value as string;
      }
    }
    this.bump();
    return structuredClone(this.object!);
  }
}

const bundles = (fake: FakeConfigurations) => fake.object!.webhooks.map((w) => w.clientConfig.caBundle);

describe('keepWebhookCaBundle', () => {
  it('patches every webhook of the configuration on start, guarded by the resourceVersion it read', async () => {
    const fake = new FakeConfigurations();
    fake.create(2);
    const keeper = keepWebhookCaBundle({ kube: fake, configurationName: 'cloudtaser', caPem: CA_PEM });
    await keeper.syncNow();
    expect(bundles(fake)).toEqual([WANTED, WANTED]);
    expect(fake.patches[0][0]).toEqual({ op: 'test', path: '/metadata/resourceVersion', value: '1' });
    expect(keeper.status()).toMatchObject({ configuration: 'cloudtaser', state: 'current' });
    await keeper.close();
  });

  it('leaves a current configuration alone: no write when nothing differs', async () => {
    const fake = new FakeConfigurations();
    fake.create();
    const keeper = keepWebhookCaBundle({ kube: fake, configurationName: 'cloudtaser', caPem: CA_PEM });
    await keeper.syncNow();
    await keeper.syncNow();
    await keeper.syncNow();
    expect(fake.patches).toHaveLength(1);
    await keeper.close();
  });

  it('puts the bundle back after a helm upgrade re-applied the configuration without it', async () => {
    const fake = new FakeConfigurations();
    fake.create();
    const keeper = keepWebhookCaBundle({ kube: fake, configurationName: 'cloudtaser', caPem: CA_PEM });
    await keeper.syncNow();
    fake.object!.webhooks[0].clientConfig = {};
    fake.bump();
    await keeper.syncNow();
    expect(bundles(fake)).toEqual([WANTED]);
    expect(fake.patches).toHaveLength(2);
    await keeper.close();
  });

  it('replaces a stale bundle left by the previous operator pod', async () => {
    const fake = new FakeConfigurations();
    fake.create();
    fake.object!.webhooks[0].clientConfig.caBundle = Buffer.from('old ca').toString('base64');
    const keeper = keepWebhookCaBundle({ kube: fake, configurationName: 'cloudtaser', caPem: CA_PEM });
    await keeper.syncNow();
    expect(bundles(fake)).toEqual([WANTED]);
    await keeper.close();
  });

  it('never overwrites a concurrent edit: the conditional patch fails and the next round reads again', async () => {
    const fake = new FakeConfigurations();
    fake.create();
    fake.beforePatch = () => {
      fake.object!.webhooks[0].name = 'edited-by-someone-else.cloudtaser.io';
      fake.bump();
    };
    const keeper = keepWebhookCaBundle({
      kube: fake,
      configurationName: 'cloudtaser',
      caPem: CA_PEM,
      retryMs: 60_000,
    });
    // The round started on creation meets the edit; syncNow waits for it, then reads again and patches.
    await keeper.syncNow();
    expect(fake.patches).toHaveLength(2);
    expect(fake.patches[0][0]).toEqual({ op: 'test', path: '/metadata/resourceVersion', value: '1' });
    expect(fake.patches[1][0]).toEqual({ op: 'test', path: '/metadata/resourceVersion', value: '2' });
    expect(bundles(fake)).toEqual([WANTED]);
    expect(fake.object!.webhooks[0].name).toBe('edited-by-someone-else.cloudtaser.io');
    expect(keeper.status().state).toBe('current');
    await keeper.close();
  });

  it('reports a missing configuration with what to do, and heals once it exists (install order)', async () => {
    const fake = new FakeConfigurations();
    const keeper = keepWebhookCaBundle({
      kube: fake,
      configurationName: 'cloudtaser',
      caPem: CA_PEM,
      retryMs: 60_000,
    });
    await keeper.syncNow();
    expect(keeper.status()).toMatchObject({ state: 'failing', lastErrorCode: 'CT_KUBE_NOT_FOUND' });
    expect(keeper.status().reason).toMatch(/MutatingWebhookConfiguration cloudtaser does not exist/);
    fake.create();
    await keeper.syncNow();
    expect(keeper.status().state).toBe('current');
    expect(keeper.status().lastErrorCode).toBeUndefined();
    expect(keeper.status().reason).toBeUndefined();
    await keeper.close();
  });

  it('names the RBAC rule it needs when forbidden', async () => {
    const fake = new FakeConfigurations();
    fake.create();
    fake.failWith = new CloudtaserError('CT_KUBE_FORBIDDEN', 'forbidden');
    const keeper = keepWebhookCaBundle({
      kube: fake,
      configurationName: 'cloudtaser',
      caPem: CA_PEM,
      retryMs: 60_000,
    });
    await keeper.syncNow();
    expect(keeper.status().reason).toMatch(
      /get and patch on mutatingwebhookconfigurations with resourceNames \[cloudtaser\]/,
    );
    await keeper.close();
  });

  it('retries on its own after a failure, without anyone calling it', async () => {
    const fake = new FakeConfigurations();
    const keeper = keepWebhookCaBundle({
      kube: fake,
      configurationName: 'cloudtaser',
      caPem: CA_PEM,
      retryMs: 20,
    });
    // The configuration does not exist yet: the first attempt fails.
    await expect.poll(() => keeper.status().state, { timeout: 2_000 }).toBe('failing');
    fake.create();
    await expect.poll(() => keeper.status().state, { timeout: 2_000 }).toBe('current');
    await keeper.close();
  });
});

describe('caBundlePatch', () => {
  it('is empty when every webhook already carries the bundle, and adds the member where it is missing', () => {
    const current = {
      metadata: { resourceVersion: '7' },
      webhooks: [{ clientConfig: { caBundle: WANTED } }],
    };
    expect(caBundlePatch(current, WANTED)).toEqual([]);
    expect(caBundlePatch({ metadata: { resourceVersion: '7' }, webhooks: [{}] }, WANTED)).toEqual([
      { op: 'test', path: '/metadata/resourceVersion', value: '7' },
      { op: 'add', path: '/webhooks/0/clientConfig/caBundle', value: WANTED },
    ]);
  });

  it('has nothing to patch in a configuration without webhooks', () => {
    expect(caBundlePatch({ metadata: { resourceVersion: '1' } }, WANTED)).toEqual([]);
  });
});
