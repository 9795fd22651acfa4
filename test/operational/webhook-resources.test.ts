/**
 * The injected init container's requests and limits are the operator's to set (`--inject-resources`, chart
 * `webhook.injection.resources`). They were fixed, with no CPU limit: a namespace whose ResourceQuota tracks
 * limits.cpu refuses every pod with a container that sets none, and app teams could not fix that from their own
 * manifests (found by a cluster admin's review). A value the API server would refuse fails the operator's start.
 */
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_INJECTED_RESOURCES,
  parseInjectedResources,
  reviewPod,
} from '../../runtime/webhook/index.js';
import { readChart } from '../charts/chart-files.js';
import { containerArgs, deepMerge, only, REQUIRED_VALUES, render } from '../charts/render.js';
import { validateValues } from '../charts/values-schema.js';

const STATE = {
  connected: true,
  podApiUrl: 'https://cloudtaser.cloudtaser-system.svc:8443',
  podApiCaPem: 'CA',
};
const POD = {
  metadata: { name: 'app', labels: { 'cloudtaser.io/inject': 'true' } },
  spec: { containers: [{ name: 'app', image: 'app:1' }] },
};

function injectedResources(resources?: ReturnType<typeof parseInjectedResources>) {
  const response = reviewPod('u', { kind: { kind: 'Pod' }, operation: 'CREATE', object: POD }, STATE, {
    image: 'operator:test',
    ...(resources ? { resources } : {}),
  });
  const ops = JSON.parse(Buffer.from(response.patch as string, 'base64').toString('utf8')) as {
    path: string;
    value: { resources?: unknown }[] | { resources?: unknown };
  }[];
  const init = ops.find((op) => op.path === '/spec/initContainers')!.value as { resources?: unknown }[];
  return init[0]!.resources;
}

describe('resources of the injected init container', () => {
  it('uses the defaults, or exactly what the operator was given', () => {
    expect(injectedResources()).toEqual(DEFAULT_INJECTED_RESOURCES);
    const given = parseInjectedResources(
      '{"requests":{"cpu":"20m"},"limits":{"cpu":"200m","memory":"128Mi"}}',
    );
    expect(injectedResources(given)).toEqual({
      requests: { cpu: '20m' },
      limits: { cpu: '200m', memory: '128Mi' },
    });
  });

  it.each([
    ['not json', 'is not JSON'],
    ['[]', 'must be a JSON object'],
    ['{"limit":{"cpu":"1"}}', 'has "limit": only requests and limits'],
    ['{"limits":{"gpu":"1"}}', 'has "gpu": only cpu, memory, ephemeral-storage'],
    ['{"limits":{"cpu":"lots"}}', 'limits.cpu "lots" is not a Kubernetes quantity'],
    ['{"limits":{"memory":128}}', 'limits.memory 128 is not a Kubernetes quantity'],
  ])('refuses %s with CT_INVALID_ARGUMENT', (text, why) => {
    expect(() => parseInjectedResources(text)).toThrow(why);
    try {
      parseInjectedResources(text);
    } catch (err) {
      expect((err as { code?: string }).code).toBe('CT_INVALID_ARGUMENT');
    }
  });

  it('reaches the broker from the chart value, and the chart schema refuses a quantity Kubernetes would', () => {
    const args = containerArgs(
      only(
        render('cloudtaser', { webhook: { injection: { resources: { limits: { cpu: '200m' } } } } }),
        'Deployment',
      ),
    );
    expect(args).toContain('--inject-resources={"limits":{"cpu":"200m"}}');
    expect(
      containerArgs(only(render('cloudtaser'), 'Deployment')).some((a) => a.startsWith('--inject-resources')),
    ).toBe(false);
    const { schema, values } = readChart('cloudtaser');
    const problems = (resources: unknown) =>
      validateValues(
        schema,
        deepMerge(deepMerge(values, REQUIRED_VALUES.cloudtaser), { webhook: { injection: { resources } } }),
      ).map((p) => p.path);
    expect(problems({ limits: { cpu: '200m', memory: '128Mi' } })).toEqual([]);
    expect(problems({ limits: { cpu: 'lots' } })).toEqual(['webhook.injection.resources.limits.cpu']);
    expect(problems({ limit: { cpu: '1' } })).toEqual(['webhook.injection.resources.limit']);
  });
});
