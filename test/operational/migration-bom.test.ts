/**
 * Secret migration of a value that starts with a UTF-8 byte-order mark (common in files written by Windows and .NET
 * tools). TextDecoder strips a leading BOM by default, so the broker's decoded value, and the proof over it, were
 * three bytes short: OpenBao stored 20 of 23 bytes and the Secret was deleted. Found by an adversarial review;
 * failed before the fix.
 */
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATE_ANNOTATION } from '../../runtime/migration/index.js';
import { type OperationalStack, startOperationalStack } from './stack.js';

const NS = 'legacy-scratch';
let stack: OperationalStack;

beforeAll(async () => {
  stack = await startOperationalStack({
    registration: { migration: true },
    broker: { migration: { intervalMs: 0 } },
  });
  await stack.kube.createNamespace(NS);
}, 60_000);
afterAll(async () => {
  await stack?.close();
});

async function createRaw(name: string, data: Record<string, Buffer>) {
  const entries = Object.entries(data).map(([k, v]) => [k, v.toString('base64')]);
  // Built without a prototype so a `__proto__` key is an own property, as JSON.parse makes it.
  // Sent as raw JSON (what kubectl sends), so no client-side object handling is involved.
  const body = `{"apiVersion":"v1","kind":"Secret","metadata":{"name":${JSON.stringify(name)},"annotations":{"${MIGRATE_ANNOTATION}":"true"}},"data":{${entries
    .map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`)
    .join(',')}}}`;
  const response = await request(`${stack.kube.url}/api/v1/namespaces/${NS}/secrets`, {
    method: 'POST',
    headers: { authorization: `Bearer ${stack.kube.adminToken}`, 'content-type': 'application/json' },
    body,
    dispatcher: new Agent({ connect: { ca: stack.kube.caCertPem } }),
  });
  expect(response.statusCode).toBe(201);
  await response.body.dump();
}

async function secretExists(name: string): Promise<boolean> {
  return stack.kubeAdmin.getSecret(NS, name).then(
    () => true,
    () => false,
  );
}

describe('migration keeps a Secret whose bytes OpenBao does not hold exactly', () => {
  it('a value starting with a UTF-8 byte-order mark keeps its byte-order mark in OpenBao before the Secret is deleted', async () => {
    const original = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"conn":"Server=db"}')]);
    await createRaw('bom-value', { 'appsettings.json': original });
    const outcomes = (await stack.broker.migrator!.runOnce()).filter((o) => o.name === 'bom-value');
    const stored = await stack.clusterAdmin.kvRead('secret', `k8s/${NS}/bom-value`);
    const exists = await secretExists('bom-value');
    const storedBytes =
      typeof stored?.data?.['appsettings.json'] === 'string'
        ? Buffer.from(stored.data['appsettings.json'] as string, 'utf8')
        : undefined;
    const exact = storedBytes?.equals(original) === true;
    expect({ outcome: outcomes[0]?.result, exists, exact, storedLength: storedBytes?.length }).toSatisfy(
      (r: { exists: boolean; exact: boolean }) => r.exists || r.exact,
    );
  });
});
