import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_TOKEN_AUDIENCE,
  INIT_CONTAINER_NAME,
  INJECT_LABEL,
  NOT_CONNECTED_MESSAGE,
  TOKEN_AUDIENCE_ANNOTATION,
  TOKEN_EXPIRATION_SECONDS,
  TOKEN_VOLUME_NAME,
  VOLUME_NAME,
  WEBHOOK_PATH,
} from '../../runtime/webhook/index.js';
import { startTestBridge } from '../runtime/fixtures.js';
import { waitUntil } from '../support/wait.js';
import { type OperationalStack, startOperationalStack } from './stack.js';

// biome-ignore lint/suspicious/noExplicitAny: AdmissionReview and Event JSON are read loosely in assertions
type Loose = any;

const IMAGE = 'ghcr.io/cloudtaser/cloudtaser-operator:test';
let stack: OperationalStack;
let webhookAgent: Agent;

beforeAll(async () => {
  stack = await startOperationalStack({
    broker: {
      webhook: {
        host: '127.0.0.1',
        port: 0,
        dnsNames: ['localhost'],
        injection: { image: IMAGE },
      },
    },
  });
  // The API server trusts the webhook through caBundle = the webhookCaPem that /status shows.
  webhookAgent = new Agent({ connect: { ca: stack.broker.status().webhookCaPem } });
}, 60_000);
afterAll(async () => {
  await webhookAgent?.close();
  await stack?.close();
});

function pod(labels: Record<string, string>, annotations: Record<string, string> = {}, extra: object = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { generateName: 'app-', namespace: 'team-a', labels, annotations },
    spec: {
      serviceAccountName: 'app-a',
      containers: [
        { name: 'app', image: 'busybox', env: [{ name: 'KEEP', value: '1' }] },
        { name: 'sidecar', image: 'busybox' },
      ],
      ...extra,
    },
  };
}

function review(uid: string, object: unknown, kind = 'Pod') {
  return {
    kind: 'AdmissionReview',
    apiVersion: 'admission.k8s.io/v1',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      name: '',
      namespace: 'team-a',
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller', groups: [] },
      object,
      oldObject: null,
      dryRun: false,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
    },
  };
}

async function admit(
  body: unknown,
  path = WEBHOOK_PATH,
  contentType = 'application/json',
): Promise<{ status: number; body: Record<string, Loose> }> {
  const url = new URL(stack.broker.webhookUrl!);
  const response = await request(`https://localhost:${url.port}${path}?timeout=10s`, {
    method: 'POST',
    dispatcher: webhookAgent,
    headers: { 'content-type': contentType },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.statusCode, body: (await response.body.json()) as Record<string, Loose> };
}

/** A minimal RFC 6902 `add` applier: enough to prove the patch applies to the pod it was made for. */
function applyPatch(document: Loose, ops: Array<{ op: string; path: string; value: unknown }>): Loose {
  const doc = structuredClone(document);
  for (const op of ops) {
    expect(op.op).toBe('add');
    const parts = op.path
      .split('/')
      .slice(1)
      .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop()!;
    let target = doc;
    for (const part of parts) {
      expect(target[part], `parent of ${op.path} exists`).toBeDefined();
      target = target[part];
    }
    if (Array.isArray(target)) {
      if (last === '-') target.push(op.value);
      else target.splice(Number(last), 0, op.value);
    } else {
      target[last] = op.value;
    }
  }
  return doc;
}

describe('mutating webhook', () => {
  it('injects a memory volume, an init container and VAULT_ADDR/VAULT_CACERT into a labelled pod, as a base64 JSONPatch with the uid echoed', async () => {
    const original = pod({ [INJECT_LABEL]: 'true' }, { 'cloudtaser.io/secret-db': 'app/db' });
    const answer = await admit(review('705ab4f5-6393-11e8-b7cc-42010a800002', original));
    expect(answer.status).toBe(200);
    expect(answer.body.apiVersion).toBe('admission.k8s.io/v1');
    expect(answer.body.kind).toBe('AdmissionReview');
    const response = answer.body.response;
    expect(response.uid).toBe('705ab4f5-6393-11e8-b7cc-42010a800002');
    expect(response.allowed).toBe(true);
    expect(response.patchType).toBe('JSONPatch');
    const ops = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8'));
    expect(Array.isArray(ops)).toBe(true);
    const mutated = applyPatch(original, ops);

    expect(mutated.metadata.annotations['cloudtaser.io/injected']).toBe('true');
    expect(mutated.spec.volumes).toEqual([
      { name: VOLUME_NAME, emptyDir: { medium: 'Memory', sizeLimit: '4Mi' } },
      {
        name: TOKEN_VOLUME_NAME,
        projected: {
          sources: [
            {
              serviceAccountToken: {
                path: 'token',
                audience: DEFAULT_TOKEN_AUDIENCE,
                expirationSeconds: TOKEN_EXPIRATION_SECONDS,
              },
            },
          ],
        },
      },
    ]);
    const init = mutated.spec.initContainers[0];
    expect(init.name).toBe(INIT_CONTAINER_NAME);
    expect(init.image).toBe(IMAGE);
    // The image's entry point runs the CLI; only the arguments are set.
    expect(init.command).toBeUndefined();
    expect(init.args).toEqual(['pod', 'fetch-secrets']);
    // The projected token is mounted into the init container only; app containers get none from us.
    expect(init.volumeMounts).toContainEqual({
      name: TOKEN_VOLUME_NAME,
      mountPath: '/var/run/cloudtaser-token',
      readOnly: true,
    });
    for (const container of mutated.spec.containers)
      expect(JSON.stringify(container.volumeMounts)).not.toContain(TOKEN_VOLUME_NAME);
    const env = Object.fromEntries(init.env.map((e: { name: string; value: string }) => [e.name, e.value]));
    expect(env.CLOUDTASER_POD_API_URL).toBe(stack.broker.status().podApiUrl);
    expect(env.CLOUDTASER_POD_API_CA_PEM).toBe(stack.cluster.caCertPem);
    expect(env.CLOUDTASER_ROLE).toBe('app-a');
    expect(JSON.parse(env.CLOUDTASER_SECRETS)).toEqual({ db: 'app/db' });
    for (const container of mutated.spec.containers) {
      expect(container.volumeMounts).toContainEqual({
        name: VOLUME_NAME,
        mountPath: '/var/run/cloudtaser',
        readOnly: true,
      });
      expect(container.env).toContainEqual({ name: 'VAULT_ADDR', value: stack.broker.status().podApiUrl });
      expect(container.env).toContainEqual({ name: 'VAULT_CACERT', value: '/var/run/cloudtaser/ca.crt' });
    }
    expect(mutated.spec.containers[0].env[0]).toEqual({ name: 'KEEP', value: '1' });
    // No Kubernetes Secret anywhere in what was added.
    expect(JSON.stringify(ops)).not.toMatch(/secretKeyRef|"secret":\{/);
  });

  it('appends to existing volumes and init containers instead of replacing them', async () => {
    const original = pod(
      { [INJECT_LABEL]: 'true' },
      {},
      {
        volumes: [{ name: 'data', emptyDir: {} }],
        initContainers: [{ name: 'migrate', image: 'busybox' }],
      },
    );
    const answer = await admit(review('uid-2', original));
    const mutated = applyPatch(
      original,
      JSON.parse(Buffer.from(answer.body.response.patch, 'base64').toString()),
    );
    expect(mutated.spec.volumes.map((v: { name: string }) => v.name)).toEqual([
      'data',
      VOLUME_NAME,
      TOKEN_VOLUME_NAME,
    ]);
    expect(mutated.spec.initContainers.map((c: { name: string }) => c.name)).toEqual([
      INIT_CONTAINER_NAME,
      'migrate',
    ]);
  });

  it('lets unlabelled pods, other kinds and already-injected pods pass untouched', async () => {
    for (const [uid, body] of [
      ['u-1', review('u-1', pod({ app: 'x' }))],
      ['u-2', review('u-2', pod({ [INJECT_LABEL]: 'false' }))],
      ['u-3', review('u-3', { kind: 'ConfigMap' }, 'ConfigMap')],
      ['u-4', review('u-4', pod({ [INJECT_LABEL]: 'true' }, { 'cloudtaser.io/injected': 'true' }))],
    ] as const) {
      const answer = await admit(body);
      expect(answer.body.response).toEqual({ uid, allowed: true });
    }
  });

  it('takes the login token audience from the pod annotation and refuses one with spaces', async () => {
    const custom = await admit(
      review('u-aud', pod({ [INJECT_LABEL]: 'true' }, { [TOKEN_AUDIENCE_ANNOTATION]: 'vault' })),
    );
    const ops = JSON.parse(Buffer.from(custom.body.response.patch, 'base64').toString());
    expect(JSON.stringify(ops)).toContain('"audience":"vault"');
    const bad = await admit(
      review('u-aud2', pod({ [INJECT_LABEL]: 'true' }, { [TOKEN_AUDIENCE_ANNOTATION]: 'two words' })),
    );
    expect(bad.body.response.allowed).toBe(false);
    expect(bad.body.response.status.message).toContain(TOKEN_AUDIENCE_ANNOTATION);
  });

  it('refuses a labelled pod whose secret annotation is malformed, with the reason', async () => {
    const answer = await admit(
      review('u-5', pod({ [INJECT_LABEL]: 'true' }, { 'cloudtaser.io/secret-db': '../../sys' })),
    );
    expect(answer.body.response.allowed).toBe(false);
    expect(answer.body.response.status.code).toBe(400);
  });

  it('answers malformed, hostile and misaddressed requests with HTTP errors, not a decision', async () => {
    const notJson = await admit('{not json');
    expect(notJson).toEqual({ status: 400, body: { error: 'CT_INVALID_ARGUMENT: the body is not JSON' } });
    expect(
      (
        await admit({
          kind: 'AdmissionReview',
          apiVersion: 'admission.k8s.io/v1beta1',
          request: { uid: 'x' },
        })
      ).status,
    ).toBe(400);
    expect(
      (await admit({ kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1', request: {} })).status,
    ).toBe(400);
    const notAReview = await admit([1, 2, 3]);
    expect(notAReview.status).toBe(400);
    expect(notAReview.body.error).toMatch(/^CT_INVALID_ARGUMENT: not an AdmissionReview v1/);
    const misaddressed = await admit(review('u', pod({})), '/mutate');
    expect(misaddressed.status).toBe(404);
    expect(misaddressed.body.error).toMatch(/^CT_INVALID_ARGUMENT: /);
    const huge = JSON.stringify(
      review('u-big', { ...pod({ [INJECT_LABEL]: 'true' }), pad: 'x'.repeat(3.5 * 1024 * 1024) }),
    );
    expect((await admit(huge)).status).toBe(413);
    // The API server posts application/json (a charset may follow); a body of another type is not a review, even
    // when it parses as one (an outside hostile drill posted text/plain and was answered with a decision).
    const labelled = review('u-type', pod({ [INJECT_LABEL]: 'true' }));
    expect((await admit(labelled, WEBHOOK_PATH, 'application/json; charset=utf-8')).status).toBe(200);
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/jsonx']) {
      const other = await admit(labelled, WEBHOOK_PATH, type);
      expect(other).toEqual({
        status: 415,
        body: {
          error: expect.stringMatching(
            /^CT_INVALID_ARGUMENT: the webhook reads AdmissionReviews posted as application\/json/,
          ),
        },
      });
    }
  });

  it('refuses labelled pods at once while the bridge is away, keeps passing unlabelled ones, and recovers when it is back', async () => {
    await stack.bridge.close();
    await waitUntil(() => stack.broker.status().phase !== 'operational', {
      timeoutMs: 10_000,
      what: 'broker notices the bridge left',
    });

    const started = Date.now();
    const refused = await admit(review('u-away', pod({ [INJECT_LABEL]: 'true' })));
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(refused.body.response).toEqual({
      uid: 'u-away',
      allowed: false,
      status: { code: 503, reason: 'ServiceUnavailable', message: NOT_CONNECTED_MESSAGE },
    });
    expect(refused.body.response.status.message).toMatch(/not connected yet.*retry/);
    // Its log line carries the refusal's CT_ code as `code` and the HTTP status as `status` (it had `code: 503`).
    const reviewed = stack.logs
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.event === 'webhook.reviewed' && line.allowed === false)
      .at(-1);
    expect(reviewed).toMatchObject({ code: 'CT_WEBHOOK_REFUSED', status: 503 });
    expect((await admit(review('u-plain', pod({ app: 'x' })))).body.response).toEqual({
      uid: 'u-plain',
      allowed: true,
    });
    // The pod API answers in OpenBao's shape too, so Vault clients retry.
    const podApi = await stack.podRequest('GET', '/v1/secret/data/app/db', { token: 'whatever' });
    expect(podApi.status).toBe(503);
    expect(String((podApi.body.errors as string[])[0])).toContain('not connected');

    const bridge = await startTestBridge({ openbao: stack.bridgeOpenBao, beacons: [stack.replicas.address] });
    try {
      await stack.broker.waitForPhase('operational', 20_000);
      const back = await admit(review('u-back', pod({ [INJECT_LABEL]: 'true' })));
      expect(back.body.response.allowed).toBe(true);
      expect(back.body.response.patchType).toBe('JSONPatch');
    } finally {
      await bridge.close();
    }
  });
});
