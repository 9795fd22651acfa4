/**
 * Pod shapes the admission webhook meets, checked on the patch it returns (applied here as the API server would).
 * Each case was found by an adversarial review and failed before its fix:
 *   - a container's own VAULT_ADDR / VAULT_CACERT was overridden (the last duplicate env entry wins);
 *   - a copy of an injected pod that kept the spec but not the annotation (kubectl debug --copy-to --keep-labels)
 *     was injected again: duplicate volume and init container names, a pod the API server refuses;
 *   - a pod running as root (runAsUser: 0) passed it to the init container, whose runAsNonRoot the kubelet then
 *     refuses: the pod never started;
 *   - native sidecars (init containers with restartPolicy: Always) got neither the secrets mount nor the env;
 *   - a Pod Security "restricted" pod that sets seccomp per container was refused once the init container (no
 *     seccompProfile) was added.
 */
import { describe, expect, it } from 'vitest';
import {
  INIT_CONTAINER_NAME,
  INJECT_LABEL,
  reviewPod,
  VOLUME_NAME,
} from '../../runtime/webhook/admission.js';

// biome-ignore lint/suspicious/noExplicitAny: pod JSON is read loosely
type Loose = any;

const STATE = {
  connected: true,
  podApiUrl: 'https://cloudtaser.cloudtaser-system.svc:8443',
  podApiCaPem: 'CA',
};
const CONFIG = { image: 'ghcr.io/cloudtaser/cloudtaser-operator:test' };

function mutate(pod: Loose): Loose {
  const response = reviewPod('u', { kind: { kind: 'Pod' }, operation: 'CREATE', object: pod }, STATE, CONFIG);
  expect(response.allowed).toBe(true);
  // No patch: the pod is admitted as it is.
  const ops = response.patch
    ? JSON.parse(Buffer.from(response.patch as string, 'base64').toString('utf8'))
    : [];
  const doc = structuredClone(pod);
  for (const op of ops) {
    const parts = op.path
      .split('/')
      .slice(1)
      .map((p: string) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop();
    let target = doc;
    for (const part of parts) target = target[part];
    if (Array.isArray(target)) {
      if (last === '-') target.push(op.value);
      else target.splice(Number(last), 0, op.value);
    } else target[last] = op.value;
  }
  return doc;
}

const labelled = (spec: Loose, annotations: Record<string, string> = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'app', namespace: 'team-a', labels: { [INJECT_LABEL]: 'true' }, annotations },
  spec: { serviceAccountName: 'app-a', ...spec },
});

/** The API server's rule: names are unique among volumes, and among all (init) containers. */
function duplicates(names: string[]): string[] {
  return names.filter((n, i) => names.indexOf(n) !== i);
}

describe('webhook patch vs pod shapes', () => {
  it("does not override a container's own VAULT_ADDR / VAULT_CACERT (the last duplicate env entry wins in Kubernetes)", () => {
    const pod = labelled({
      containers: [
        {
          name: 'app',
          image: 'app',
          env: [
            { name: 'VAULT_ADDR', value: 'https://vault.corp.example:8200' },
            { name: 'VAULT_CACERT', value: '/etc/corp/ca.pem' },
          ],
        },
      ],
    });
    const env: Array<{ name: string; value: string }> = mutate(pod).spec.containers[0].env;
    // Kubernetes resolves duplicate env names to the LAST entry (and warns "hides previous definition").
    const effective = (name: string) => env.filter((e) => e.name === name).at(-1)?.value;
    expect({
      VAULT_ADDR: effective('VAULT_ADDR'),
      VAULT_CACERT: effective('VAULT_CACERT'),
      duplicates: duplicates(env.map((e) => e.name)),
    }).toEqual({
      VAULT_ADDR: 'https://vault.corp.example:8200',
      VAULT_CACERT: '/etc/corp/ca.pem',
      duplicates: [],
    });
  });

  it('gives a pod whose spec already carries the injection (a copy of an injected pod without its annotation, e.g. kubectl debug --copy-to --keep-labels) a valid spec', () => {
    // What an injected pod's spec looks like; only metadata.annotations['cloudtaser.io/injected'] is missing.
    const once = mutate(labelled({ containers: [{ name: 'app', image: 'app' }] }));
    const copy = labelled(structuredClone(once.spec));
    const twice = mutate(copy);
    expect({
      volumes: duplicates(twice.spec.volumes.map((v: Loose) => v.name)),
      containers: duplicates(
        [...twice.spec.initContainers, ...twice.spec.containers].map((c: Loose) => c.name),
      ),
      mountPaths: duplicates(twice.spec.containers[0].volumeMounts.map((m: Loose) => m.mountPath)),
    }).toEqual({ volumes: [], containers: [], mountPaths: [] });
  });

  it('equips, when re-invoked (reinvocationPolicy IfNeeded), the containers another webhook added after it, and only those', () => {
    // Before: a re-invocation returned at once, so reinvocationPolicy IfNeeded (a chart value) did nothing.
    const first = mutate(labelled({ containers: [{ name: 'app', image: 'app' }] }));
    first.spec.containers.push({ name: 'late', image: 'late' });
    first.spec.initContainers.push({ name: 'late-sidecar', image: 'sidecar', restartPolicy: 'Always' });
    const again = mutate(first);
    const late = again.spec.containers.find((c: Loose) => c.name === 'late');
    const app = again.spec.containers.find((c: Loose) => c.name === 'app');
    expect(late.volumeMounts).toEqual(app.volumeMounts);
    expect(late.env).toEqual(app.env);
    expect(again.spec.initContainers.find((c: Loose) => c.name === 'late-sidecar').env).toEqual(app.env);
    // Nothing added twice, and a third pass changes nothing.
    expect(app.volumeMounts).toHaveLength(1);
    expect(mutate(again)).toEqual(again);
    // A copy that dropped the injected volume gets no mount of a volume that is not there.
    const copy = structuredClone(again);
    copy.spec.volumes = [];
    copy.spec.containers.push({ name: 'debugger', image: 'busybox' });
    expect(mutate(copy)).toEqual(copy);
    // A look-alike a pod author wrote (our names, another pod API URL and mount path): later containers are not
    // pointed there (found by a security review of the change).
    const lookAlike = structuredClone(again);
    const fetcher = lookAlike.spec.initContainers.find((c: Loose) => c.name === INIT_CONTAINER_NAME);
    fetcher.env = fetcher.env.map((e: Loose) =>
      e.name === 'CLOUDTASER_POD_API_URL' ? { ...e, value: 'https://elsewhere.example:8200' } : e,
    );
    lookAlike.spec.containers.push({ name: 'added-later', image: 'busybox' });
    expect(mutate(lookAlike)).toEqual(lookAlike);
  });

  it('gives an init container a pod running as root (pod securityContext runAsUser: 0) can start', () => {
    // Kubelet: a container's runAsNonRoot: true with an effective runAsUser of 0 is CreateContainerConfigError
    // ("container's runAsUser breaks non-root policy"); the container inherits the pod's runAsUser.
    const pod = mutate(
      labelled({ securityContext: { runAsUser: 0 }, containers: [{ name: 'app', image: 'app' }] }),
    );
    const init = pod.spec.initContainers.find((c: Loose) => c.name === INIT_CONTAINER_NAME);
    const effectiveUser = init.securityContext.runAsUser ?? pod.spec.securityContext?.runAsUser;
    const nonRoot = init.securityContext.runAsNonRoot ?? pod.spec.securityContext?.runAsNonRoot;
    expect(nonRoot === true && effectiveUser === 0, 'runAsNonRoot with runAsUser 0 never starts').toBe(false);
  });

  it('mounts the secrets into a native sidecar (init container with restartPolicy: Always) too', () => {
    // admission.ts header: "VAULT_ADDR / VAULT_CACERT in every container"; a native sidecar runs for the pod's
    // whole life like an app container (it starts after cloudtaser-fetch, which is inserted at index 0).
    const pod = mutate(
      labelled({
        initContainers: [{ name: 'proxy', image: 'proxy', restartPolicy: 'Always' }],
        containers: [{ name: 'app', image: 'app' }],
      }),
    );
    const sidecar = pod.spec.initContainers.find((c: Loose) => c.name === 'proxy');
    expect({
      mounts: (sidecar.volumeMounts ?? []).map((m: Loose) => m.name),
      env: (sidecar.env ?? []).map((e: Loose) => e.name),
    }).toEqual({ mounts: [VOLUME_NAME], env: ['VAULT_ADDR', 'VAULT_CACERT'] });
  });

  it('keeps a Pod Security "restricted" pod restricted after injection: every container, the init container too, has a seccomp profile', () => {
    // Restricted-compliant with seccomp set per container and no pod-level securityContext, as many charts do.
    // The "restricted" level requires RuntimeDefault or Localhost on every container, the injected one included.
    const hardened = {
      allowPrivilegeEscalation: false,
      runAsNonRoot: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    };
    const pod = mutate(labelled({ containers: [{ name: 'app', image: 'app', securityContext: hardened }] }));
    const profiles = Object.fromEntries(
      [...pod.spec.initContainers, ...pod.spec.containers].map((c: Loose) => [
        c.name,
        c.securityContext?.seccompProfile?.type ?? pod.spec.securityContext?.seccompProfile?.type,
      ]),
    );
    expect(profiles).toEqual({ [INIT_CONTAINER_NAME]: 'RuntimeDefault', app: 'RuntimeDefault' });
  });
});

describe('pods the webhook never injects, whatever its configuration sends (an outside hostile drill)', () => {
  const review = (pod: Loose, namespace: string, config: Loose = CONFIG) =>
    reviewPod('u', { kind: { kind: 'Pod' }, operation: 'CREATE', namespace, object: pod }, STATE, config);

  it("leaves the control plane's namespaces and the operator's own alone, with a warning, not a patch", () => {
    // The chart's namespaceSelector excluded them; a hand-written configuration did not, and kube-system got a patch.
    for (const namespace of ['kube-system', 'kube-public', 'kube-node-lease']) {
      const response = review(labelled({ containers: [{ name: 'c', image: 'x' }] }), namespace);
      expect(response).toMatchObject({ allowed: true, warnings: [expect.stringContaining(namespace)] });
      expect(response.patch).toBeUndefined();
    }
    const operator = review(labelled({ containers: [{ name: 'c', image: 'x' }] }), 'cloudtaser-system', {
      ...CONFIG,
      excludedNamespaces: ['cloudtaser-system'],
    });
    expect(operator.patch).toBeUndefined();
    // Any other namespace is injected as before.
    expect(review(labelled({ containers: [{ name: 'c', image: 'x' }] }), 'team-a').patch).toBeDefined();
  });

  it('refuses a pod whose spec.containers is not a list of containers instead of patching part of it', () => {
    for (const containers of ['x', [1], undefined]) {
      const response = review(labelled({ containers }), 'team-a');
      expect(response).toMatchObject({ allowed: false, status: { code: 400 } });
      expect(response.patch).toBeUndefined();
    }
  });
});

describe('what kubectl prints for a refused pod', () => {
  // kubectl shows `admission webhook "..." denied the request: <message>`; the message now starts with the code the
  // webhook's log line and metric carry (an outside docs drill found the code only in the log).
  const container = [{ name: 'c', image: 'x' }];
  const request = (pod: Loose) => ({ kind: { kind: 'Pod' }, operation: 'CREATE', object: pod });
  it.each([
    ['the bridge not connected', labelled({ containers: container }), { connected: false }],
    [
      'a bootstrap the bridge refused',
      labelled({ containers: container }),
      {
        connected: false,
        bootstrapRefused: { code: 'CT_ALREADY_INITIALIZED', reason: 'run register --rearm' },
      },
    ],
    ['no pod API certificate yet', labelled({ containers: container }), { connected: true }],
    ['no containers list', labelled({ containers: 'x' }), STATE],
    [
      'a bad secret annotation',
      labelled({ containers: container }, { 'cloudtaser.io/secret-..': 'x' }),
      STATE,
    ],
    [
      'a bad audience annotation',
      labelled({ containers: container }, { 'cloudtaser.io/token-audience': 'two words' }),
      STATE,
    ],
  ])('%s: the message starts with CT_WEBHOOK_REFUSED, once', (_name, pod, state) => {
    const response = reviewPod('u', request(pod), state, CONFIG);
    expect(response.allowed).toBe(false);
    expect(response.status?.message).toMatch(/^CT_WEBHOOK_REFUSED: \S/);
    expect(response.status?.message.match(/CT_WEBHOOK_REFUSED/g)).toHaveLength(1);
  });
});
