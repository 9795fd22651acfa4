/**
 * The injected init container, run as a node would run it: the pod is built exactly as the webhook's JSON patch
 * makes it (applied with the Kubernetes test server's RFC 6902 code), and the init container's command line comes
 * from the operator image's Dockerfile (ENTRYPOINT + CMD/args), against the local stack. The pod opts out of the
 * automounted service-account token, so the login can only work with the token volume the webhook injects.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyJsonPatch } from '../../runtime/dev/kube/patch.js';
import {
  INIT_CONTAINER_NAME,
  INJECT_LABEL,
  ROLE_ANNOTATION,
  SERVICE_ACCOUNT_TOKEN_PATH,
  VOLUME_NAME,
  WEBHOOK_PATH,
} from '../../runtime/webhook/index.js';
import { type ContainerImage, type Kubelet, readImageFromDockerfile, runContainer } from './kubelet.js';
import {
  APP_NAMESPACE,
  BOUND_SA,
  type OperationalStack,
  ROLE,
  SECRET_PATH,
  SECRET_VALUE,
  startOperationalStack,
} from './stack.js';

// biome-ignore lint/suspicious/noExplicitAny: pod JSON read loosely
type Loose = any;

const IMAGE = 'ghcr.io/cloudtaser/cloudtaser-operator:test';
let stack: OperationalStack;
let image: ContainerImage;
let webhookAgent: Agent;
let kubelet: Kubelet;

beforeAll(async () => {
  [stack, image] = await Promise.all([
    startOperationalStack({
      broker: {
        webhook: { host: '127.0.0.1', port: 0, dnsNames: ['localhost'], injection: { image: IMAGE } },
      },
    }),
    readImageFromDockerfile('runtime/images/Dockerfile.operator'),
  ]);
  webhookAgent = new Agent({ connect: { ca: stack.broker.status().webhookCaPem } });
  kubelet = {
    mintToken: (r) =>
      stack.kube.issueServiceAccountToken(r.namespace, r.serviceAccount, {
        audiences: [r.audience],
        expirationSeconds: r.expirationSeconds,
        boundPod: r.pod,
      }),
  };
}, 120_000);
afterAll(async () => {
  await webhookAgent?.close();
  await stack?.close();
});

async function injected(pod: Loose): Promise<Loose> {
  const url = new URL(stack.broker.webhookUrl!);
  const response = await request(`https://localhost:${url.port}${WEBHOOK_PATH}`, {
    method: 'POST',
    dispatcher: webhookAgent,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      kind: 'AdmissionReview',
      apiVersion: 'admission.k8s.io/v1',
      request: {
        uid: 'init-1',
        kind: { group: '', version: 'v1', kind: 'Pod' },
        resource: { group: '', version: 'v1', resource: 'pods' },
        namespace: APP_NAMESPACE,
        operation: 'CREATE',
        userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' },
        object: pod,
      },
    }),
  });
  const review = (await response.body.json()) as Loose;
  expect(review.response.allowed).toBe(true);
  return applyJsonPatch(pod, JSON.parse(Buffer.from(review.response.patch, 'base64').toString('utf8')));
}

function appPod(extra: object = {}): Loose {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'app-7d4b9',
      uid: '0b6c1d6e-2f1e-4d0a-9c55-3e7f3a0f6a11',
      namespace: APP_NAMESPACE,
      labels: { [INJECT_LABEL]: 'true' },
      annotations: { 'cloudtaser.io/secret-db': SECRET_PATH, [ROLE_ANNOTATION]: ROLE },
    },
    spec: {
      serviceAccountName: BOUND_SA,
      automountServiceAccountToken: false,
      containers: [{ name: 'app', image: 'busybox' }],
      ...extra,
    },
  };
}

describe('injected init container, run from the operator image entry point', () => {
  it('logs in with the projected token and writes the secret into the memory volume of a pod without an automounted token', async () => {
    // The premise: this machine has no automounted token, as such a pod would not.
    expect(existsSync(SERVICE_ACCOUNT_TOKEN_PATH)).toBe(false);
    const pod = await injected(appPod());
    const run = await runContainer(pod, INIT_CONTAINER_NAME, image, kubelet);
    try {
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout).toContain('fetched 1 secret(s): db');
      const volume = run.volumes.get(VOLUME_NAME)!;
      expect(JSON.parse(await readFile(join(volume, 'db.json'), 'utf8')).password).toBe(SECRET_VALUE);
      expect(await readFile(join(volume, 'ca.crt'), 'utf8')).toBe(stack.podApiCaPem);
    } finally {
      await run.cleanup();
    }
  }, 60_000);

  it('works the same when the service account, not the pod, opts out of automounting', async () => {
    const pod = await injected(appPod({ automountServiceAccountToken: undefined }));
    const run = await runContainer(pod, INIT_CONTAINER_NAME, image, kubelet);
    try {
      expect(run.code).toBe(0);
    } finally {
      await run.cleanup();
    }
  }, 60_000);

  it('fails with a clear CT_ error naming the token file when the token volume is missing (a pod injected before the upgrade)', async () => {
    const pod = await injected(appPod());
    const init = pod.spec.initContainers[0];
    init.volumeMounts = init.volumeMounts.filter((m: { name: string }) => m.name === VOLUME_NAME);
    const run = await runContainer(pod, INIT_CONTAINER_NAME, image, kubelet);
    try {
      expect(run.code).not.toBe(0);
      expect(run.stderr).toMatch(
        /CT_INVALID_ARGUMENT: no service-account token at \/var\/run\/cloudtaser-token\/token/,
      );
    } finally {
      await run.cleanup();
    }
  }, 60_000);
});
