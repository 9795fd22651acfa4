/**
 * The mutating admission decision for pods (AdmissionReview v1, wire-facts B5). A pod labelled
 * `cloudtaser.io/inject=true` gets what it needs to fetch its secrets at start into memory only: a
 * memory-backed emptyDir, an init container that logs in through the broker's pod API and writes the secrets
 * there, and VAULT_ADDR / VAULT_CACERT in every container so apps can also talk to the pod API themselves.
 * No Kubernetes Secret is created. While the bridge is not connected such pods are refused at once.
 */
import { CloudtaserError } from '../core/errors.js';
import { isKvPath, isSecretFileName } from './secret-files.js';

export const INJECT_LABEL = 'cloudtaser.io/inject';
export const INJECTED_ANNOTATION = 'cloudtaser.io/injected';
export const ROLE_ANNOTATION = 'cloudtaser.io/role';
/** `cloudtaser.io/secret-<file>: <path under the secret mount>`, e.g. `cloudtaser.io/secret-db: app/db`. */
export const SECRET_ANNOTATION_PREFIX = 'cloudtaser.io/secret-';
export const VOLUME_NAME = 'cloudtaser-secrets';
export const INIT_CONTAINER_NAME = 'cloudtaser-fetch';
/** `cloudtaser.io/token-audience: <aud>`: the audience of the login token, when the OpenBao role names another. */
export const TOKEN_AUDIENCE_ANNOTATION = 'cloudtaser.io/token-audience';
/**
 * The init container's own service-account token, projected by the kubelet (upstream: a pod or service account
 * with `automountServiceAccountToken: false` gets no token file, so the injected container brings its own).
 */
export const TOKEN_VOLUME_NAME = 'cloudtaser-token';
export const TOKEN_MOUNT_PATH = '/var/run/cloudtaser-token';
export const TOKEN_FILE = 'token';
/**
 * Default audience of the login token: OpenBao's, not the API server's, so a token OpenBao (or anyone between)
 * sees cannot be replayed against the cluster's API. A Kubernetes auth role with no `audience` accepts it (OpenBao
 * then asks TokenReview for the token's own audience); a role with `audience: openbao` pins it.
 */
export const DEFAULT_TOKEN_AUDIENCE = 'openbao';
/** The API server's minimum for a projected token; the init container uses it once, within seconds. */
export const TOKEN_EXPIRATION_SECONDS = 600;
/**
 * Arguments of the init container. The command is left to the image: its ENTRYPOINT runs `cloudtaser-cli`
 * (`node /app/cloudtaser-cli.mjs` in the distroless operator image, which has no shell and no PATH entry for it).
 */
export const INIT_CONTAINER_ARGS: readonly string[] = Object.freeze(['pod', 'fetch-secrets']);

export interface WebhookState {
  /** True while the broker's tunnel to the bridge is up. */
  readonly connected: boolean;
  /** The pod API URL pods use (the operator Service name on the certificate). */
  readonly podApiUrl?: string;
  /** The cluster CA (public) that signed the pod API certificate. */
  readonly podApiCaPem?: string;
  /**
   * Set while the bridge refuses this cluster's bootstrap (broker phase `rejected`): that needs an admin (a
   * re-arm, fixed attestation settings), not time, and the refusal says so instead of "retry in a few seconds".
   */
  readonly bootstrapRefused?: { readonly code: string; readonly reason: string };
}

export interface InjectionConfig {
  /** Image of the init container (the operator image, which has `cloudtaser-cli`). */
  readonly image: string;
  /** Arguments after the image's entry point. @default INIT_CONTAINER_ARGS */
  readonly args?: readonly string[];
  /** Audience of the projected login token, unless the pod's annotation names one. @default DEFAULT_TOKEN_AUDIENCE */
  readonly tokenAudience?: string;
  /** Where the memory volume is mounted in every container. @default '/var/run/cloudtaser' */
  readonly mountPath?: string;
  /** Resources of the injected init container. @default DEFAULT_INJECTED_RESOURCES */
  readonly resources?: InjectedResources;
  /**
   * Namespaces never injected, whatever the webhook configuration sends: the operator's own (POD_NAMESPACE) on top
   * of ALWAYS_EXCLUDED_NAMESPACES. @default none
   */
  readonly excludedNamespaces?: readonly string[];
}

/**
 * The control plane's namespaces: the chart's namespaceSelector keeps them out, and so does the webhook itself, so a
 * hand-written or older MutatingWebhookConfiguration cannot inject into them (an outside hostile drill posted a
 * kube-system pod and got a patch).
 */
export const ALWAYS_EXCLUDED_NAMESPACES: readonly string[] = [
  'kube-system',
  'kube-public',
  'kube-node-lease',
];

/** Requests and limits of the injected init container, as Kubernetes quantities (validated by parseInjectedResources). */
export interface InjectedResources {
  readonly requests?: Readonly<Partial<Record<ResourceName, string>>>;
  readonly limits?: Readonly<Partial<Record<ResourceName, string>>>;
}
type ResourceName = 'cpu' | 'memory' | 'ephemeral-storage';
const RESOURCE_NAMES: readonly ResourceName[] = ['cpu', 'memory', 'ephemeral-storage'];

/**
 * What `pod fetch-secrets` needs: one login and a few reads. No CPU limit by default (throttling a short TLS
 * client only makes pods start slower); a namespace whose ResourceQuota tracks limits.cpu refuses pods whose
 * containers have none, so `--inject-resources` (chart `webhook.injection.resources`) can set every value.
 */
export const DEFAULT_INJECTED_RESOURCES: InjectedResources = Object.freeze({
  requests: Object.freeze({ cpu: '10m', memory: '32Mi' }),
  limits: Object.freeze({ memory: '128Mi' }),
});

/** Kubernetes' quantity syntax (apimachinery resource.Quantity): a number with an optional suffix. */
const QUANTITY = /^[+]?(\d+(\.\d*)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+)?$/;

/**
 * Parses `--inject-resources` (JSON: `{"requests":{...},"limits":{...}}`), refusing what the API server would
 * refuse in a pod, so a typo fails the operator's start and not every labelled pod's creation.
 */
export function parseInjectedResources(text: string): InjectedResources {
  const bad = (why: string) =>
    new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `--inject-resources ${why}; e.g. {"requests":{"cpu":"10m","memory":"32Mi"},"limits":{"cpu":"200m","memory":"128Mi"}}`,
    );
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw bad('is not JSON');
  }
  if (!isObject(parsed)) throw bad('must be a JSON object');
  const out: { requests?: Record<string, string>; limits?: Record<string, string> } = {};
  for (const [section, values] of Object.entries(parsed)) {
    if (section !== 'requests' && section !== 'limits')
      throw bad(`has "${section}": only requests and limits`);
    if (!isObject(values)) throw bad(`${section} must be an object`);
    const kept: Record<string, string> = {};
    for (const [name, value] of Object.entries(values)) {
      if (!RESOURCE_NAMES.includes(name as ResourceName))
        throw bad(`${section} has "${name}": only ${RESOURCE_NAMES.join(', ')}`);
      if (typeof value !== 'string' || !QUANTITY.test(value))
        throw bad(
          `${section}.${name} ${JSON.stringify(value)} is not a Kubernetes quantity such as 100m or 64Mi`,
        );
      kept[name] = value;
    }
    out[section] = kept;
  }
  return out;
}

export interface AdmissionResponse {
  readonly uid: string;
  readonly allowed: boolean;
  readonly patchType?: 'JSONPatch';
  readonly patch?: string;
  readonly status?: { readonly code: number; readonly reason: string; readonly message: string };
  readonly warnings?: string[];
}

export interface AdmissionReviewReply {
  readonly apiVersion: 'admission.k8s.io/v1';
  readonly kind: 'AdmissionReview';
  readonly response: AdmissionResponse;
}

interface JsonPatchOp {
  readonly op: 'add';
  readonly path: string;
  readonly value: unknown;
}

type Json = Record<string, unknown>;

export const NOT_CONNECTED_MESSAGE =
  'CT_WEBHOOK_REFUSED: the cloudtaser secret-store bridge is not connected yet, so this pod could not get its secrets; retry in a few seconds (the controller retries on its own)';

/** Why a labelled pod is refused while the tunnel is down: time heals most causes, a refused bootstrap does not. */
export function notConnectedMessage(state: WebhookState): string {
  const refused = state.bootstrapRefused;
  if (!refused) return NOT_CONNECTED_MESSAGE;
  return (
    `CT_WEBHOOK_REFUSED: the cloudtaser secret-store bridge refuses this cluster's broker (${refused.code}), so this pod could not ` +
    `get its secrets, and retrying will not help until an admin acts: ${refused.reason}. The operator's /status ` +
    'and `cloudtaser-cli target doctor` show the same'
  );
}

/** Validates an AdmissionReview body; throws CT_INVALID_ARGUMENT for anything the API server would not send. */
export function parseAdmissionReview(body: unknown): { uid: string; request: Json } {
  const review = body as Json | null;
  if (!review || typeof review !== 'object' || Array.isArray(review))
    throw invalid('the body is not a JSON object');
  if (review.apiVersion !== 'admission.k8s.io/v1' || review.kind !== 'AdmissionReview')
    throw invalid('expected apiVersion admission.k8s.io/v1 and kind AdmissionReview');
  const request = review.request as Json | undefined;
  if (!request || typeof request !== 'object' || Array.isArray(request)) throw invalid('request is missing');
  const uid = request.uid;
  if (typeof uid !== 'string' || uid === '' || uid.length > 128) throw invalid('request.uid is missing');
  return { uid, request };
}

/** Decides one admission request. Never throws for pod content: odd pods pass untouched or get a refusal. */
export function reviewPod(
  uid: string,
  request: Json,
  state: WebhookState,
  config: InjectionConfig,
): AdmissionResponse {
  const kind = request.kind as Json | undefined;
  const pod = request.object as Json | undefined;
  if (kind?.kind !== 'Pod' || request.operation !== 'CREATE' || !isObject(pod)) return { uid, allowed: true };
  const metadata = isObject(pod.metadata) ? pod.metadata : {};
  const labels = isObject(metadata.labels) ? metadata.labels : {};
  if (labels[INJECT_LABEL] !== 'true') return { uid, allowed: true };
  const namespace = typeof request.namespace === 'string' ? request.namespace : metadata.namespace;
  if (
    typeof namespace === 'string' &&
    (ALWAYS_EXCLUDED_NAMESPACES.includes(namespace) || config.excludedNamespaces?.includes(namespace))
  )
    return {
      uid,
      allowed: true,
      warnings: [
        `cloudtaser injects no pod in namespace ${namespace} (the control plane or the operator's own)`,
      ],
    };
  const spec = pod.spec;
  if (!isObject(spec) || !Array.isArray(spec.containers) || !spec.containers.every(isObject))
    return refuse(
      uid,
      400,
      'BadRequest',
      'the pod has no spec.containers list of containers; cloudtaser injected nothing',
    );
  const annotations = isObject(metadata.annotations) ? metadata.annotations : {};
  // Re-invocation, or a pod copied from an injected one: inject once. A copy may keep the injected spec but drop
  // the annotation (`kubectl debug --copy-to --keep-labels`): the volumes and init container already there say so
  // too (injecting again made duplicate names, a pod the API server refuses).
  if (annotations[INJECTED_ANNOTATION] === 'true' || carriesInjection(pod)) {
    // Re-invoked (reinvocationPolicy IfNeeded) after another webhook added containers: equip those the way the
    // first pass equipped the others, from what that pass put in the pod (it needs no tunnel).
    const late = state.podApiUrl
      ? equipLateContainers(pod, {
          mountPath: config.mountPath ?? DEFAULT_MOUNT_PATH,
          podApiUrl: state.podApiUrl,
        })
      : [];
    return late.length === 0
      ? { uid, allowed: true }
      : {
          uid,
          allowed: true,
          patchType: 'JSONPatch',
          patch: Buffer.from(JSON.stringify(late), 'utf8').toString('base64'),
        };
  }

  if (!state.connected) return refuse(uid, 503, 'ServiceUnavailable', notConnectedMessage(state));
  if (!state.podApiUrl || !state.podApiCaPem) {
    return refuse(
      uid,
      503,
      'ServiceUnavailable',
      'the cloudtaser broker has no pod API certificate yet; retry in a few seconds',
    );
  }
  const secrets: Record<string, string> = {};
  for (const [key, value] of Object.entries(annotations)) {
    if (!key.startsWith(SECRET_ANNOTATION_PREFIX)) continue;
    const file = key.slice(SECRET_ANNOTATION_PREFIX.length);
    if (!isSecretFileName(file) || typeof value !== 'string' || !isKvPath(value)) {
      return refuse(
        uid,
        400,
        'BadRequest',
        `cloudtaser annotation ${key} must name a file ([a-z0-9-_.]) and a path under the secret mount such as app/db`,
      );
    }
    secrets[file] = value;
  }
  const serviceAccount = typeof spec.serviceAccountName === 'string' ? spec.serviceAccountName : 'default';
  const role =
    typeof annotations[ROLE_ANNOTATION] === 'string' ? annotations[ROLE_ANNOTATION] : serviceAccount;
  const audience = annotations[TOKEN_AUDIENCE_ANNOTATION] ?? config.tokenAudience ?? DEFAULT_TOKEN_AUDIENCE;
  if (typeof audience !== 'string' || !/^[\x21-\x7e]{1,256}$/.test(audience)) {
    return refuse(
      uid,
      400,
      'BadRequest',
      `cloudtaser annotation ${TOKEN_AUDIENCE_ANNOTATION} must be one audience (1 to 256 printable characters, no spaces), e.g. ${DEFAULT_TOKEN_AUDIENCE}`,
    );
  }
  const mountPath = config.mountPath ?? DEFAULT_MOUNT_PATH;
  const patch = buildPatch(pod, {
    mountPath,
    image: config.image,
    args: config.args ?? INIT_CONTAINER_ARGS,
    audience,
    podApiUrl: state.podApiUrl,
    caPem: state.podApiCaPem,
    role: String(role),
    secrets,
    resources: config.resources ?? DEFAULT_INJECTED_RESOURCES,
  });
  return {
    uid,
    allowed: true,
    patchType: 'JSONPatch',
    patch: Buffer.from(JSON.stringify(patch), 'utf8').toString('base64'),
  };
}

export function admissionReply(response: AdmissionResponse): AdmissionReviewReply {
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response };
}

function buildPatch(
  pod: Json,
  inject: {
    mountPath: string;
    image: string;
    args: readonly string[];
    audience: string;
    podApiUrl: string;
    caPem: string;
    role: string;
    secrets: Record<string, string>;
    resources: InjectedResources;
  },
): JsonPatchOp[] {
  const ops: JsonPatchOp[] = [];
  const metadata = isObject(pod.metadata) ? pod.metadata : undefined;
  const spec = isObject(pod.spec) ? pod.spec : {};
  if (!metadata) ops.push({ op: 'add', path: '/metadata', value: {} });
  if (!metadata || !isObject(metadata.annotations))
    ops.push({ op: 'add', path: '/metadata/annotations', value: {} });
  ops.push({ op: 'add', path: `/metadata/annotations/${pointer(INJECTED_ANNOTATION)}`, value: 'true' });

  const volume = { name: VOLUME_NAME, emptyDir: { medium: 'Memory', sizeLimit: '4Mi' } };
  const tokenVolume = {
    name: TOKEN_VOLUME_NAME,
    projected: {
      sources: [
        {
          serviceAccountToken: {
            path: TOKEN_FILE,
            audience: inject.audience,
            expirationSeconds: TOKEN_EXPIRATION_SECONDS,
          },
        },
      ],
    },
  };
  appendTo(ops, spec.volumes, '/spec/volumes', volume);
  // Once the first append made the list, the second appends to it.
  ops.push({ op: 'add', path: '/spec/volumes/-', value: tokenVolume });

  const mount = { name: VOLUME_NAME, mountPath: inject.mountPath };
  const initContainer = {
    name: INIT_CONTAINER_NAME,
    image: inject.image,
    // No `command`: the image's ENTRYPOINT (the CLI) runs with these arguments.
    args: [...inject.args],
    env: [
      { name: 'CLOUDTASER_POD_API_URL', value: inject.podApiUrl },
      // Public: the cluster CA. It reaches the pod by injection, never through a Kubernetes Secret.
      { name: 'CLOUDTASER_POD_API_CA_PEM', value: inject.caPem },
      { name: 'CLOUDTASER_ROLE', value: inject.role },
      { name: 'CLOUDTASER_SECRETS', value: JSON.stringify(inject.secrets) },
      { name: 'CLOUDTASER_OUTPUT_DIR', value: inject.mountPath },
      { name: 'CLOUDTASER_TOKEN_FILE', value: `${TOKEN_MOUNT_PATH}/${TOKEN_FILE}` },
    ],
    volumeMounts: [mount, { name: TOKEN_VOLUME_NAME, mountPath: TOKEN_MOUNT_PATH, readOnly: true }],
    resources: inject.resources,
    securityContext: {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      // The image's own user, said here: a pod running as root (runAsUser: 0 at pod level) would otherwise pass
      // it down, and the kubelet refuses runAsNonRoot with uid 0 (the pod never started).
      runAsUser: INIT_CONTAINER_UID,
      runAsGroup: INIT_CONTAINER_UID,
      capabilities: { drop: ['ALL'] },
      // Pod Security "restricted" checks every container: a pod that sets seccomp per container (not at pod
      // level) would otherwise be refused once this one is added.
      seccompProfile: { type: 'RuntimeDefault' },
    },
  };
  // First, so the secrets are in place before any other init container runs.
  if (Array.isArray(spec.initContainers) && spec.initContainers.length > 0)
    ops.push({ op: 'add', path: '/spec/initContainers/0', value: initContainer });
  else ops.push({ op: 'add', path: '/spec/initContainers', value: [initContainer] });

  const equip = (container: unknown, path: string) =>
    equipContainer(ops, container, path, { mountPath: inject.mountPath, podApiUrl: inject.podApiUrl });
  const containers = Array.isArray(spec.containers) ? spec.containers : [];
  containers.forEach((container, index) => {
    equip(container, `/spec/containers/${index}`);
  });
  // Native sidecars (init containers with restartPolicy: Always) run for the pod's whole life as app containers
  // do; they sit one place later now that cloudtaser-fetch is first.
  const initContainers = Array.isArray(spec.initContainers) ? spec.initContainers : [];
  initContainers.forEach((container, index) => {
    if (isObject(container) && container.restartPolicy === 'Always')
      equip(container, `/spec/initContainers/${index + 1}`);
  });
  return ops;
}

/** Adds the secrets mount (read-only) and VAULT_ADDR / VAULT_CACERT to one container, as patch operations. */
function equipContainer(
  ops: JsonPatchOp[],
  container: unknown,
  path: string,
  inject: { mountPath: string; podApiUrl: string },
): void {
  const c = isObject(container) ? container : {};
  appendTo(ops, c.volumeMounts, `${path}/volumeMounts`, {
    name: VOLUME_NAME,
    mountPath: inject.mountPath,
    readOnly: true,
  });
  // A container's own VAULT_ADDR or VAULT_CACERT stays: the last duplicate wins in Kubernetes, so appending ours
  // silently re-pointed an app configured for another Vault.
  const own = new Set(
    (Array.isArray(c.env) ? c.env : []).map((e) => (isObject(e) ? e.name : undefined)).filter(Boolean),
  );
  const env = [
    { name: 'VAULT_ADDR', value: inject.podApiUrl },
    { name: 'VAULT_CACERT', value: `${inject.mountPath}/ca.crt` },
  ].filter((e) => !own.has(e.name));
  if (env.length === 0) return;
  if (Array.isArray(c.env)) for (const e of env) ops.push({ op: 'add', path: `${path}/env/-`, value: e });
  else ops.push({ op: 'add', path: `${path}/env`, value: env });
}

/**
 * On a re-invocation: the app containers and native sidecars another webhook added after the first pass, which
 * lack the secrets mount, equipped with this operator's mount path and pod API URL. Only when the pod holds the
 * injected volume and an injected init container carrying those same values: a copy that dropped them would get
 * a mount of a volume that is not there, and a pod author's look-alike (our names, other values) must not make
 * the webhook point later containers elsewhere.
 */
function equipLateContainers(pod: Json, inject: { mountPath: string; podApiUrl: string }): JsonPatchOp[] {
  const spec = isObject(pod.spec) ? pod.spec : {};
  const volumes = Array.isArray(spec.volumes) ? spec.volumes : [];
  if (!volumes.some((v) => isObject(v) && v.name === VOLUME_NAME)) return [];
  const initContainers = Array.isArray(spec.initContainers) ? spec.initContainers : [];
  const fetcher = initContainers.find((c) => isObject(c) && c.name === INIT_CONTAINER_NAME);
  const envOf = (name: string) => {
    const env = isObject(fetcher) && Array.isArray(fetcher.env) ? fetcher.env : [];
    const entry = env.find((e) => isObject(e) && e.name === name);
    return isObject(entry) && typeof entry.value === 'string' ? entry.value : undefined;
  };
  if (
    envOf('CLOUDTASER_POD_API_URL') !== inject.podApiUrl ||
    envOf('CLOUDTASER_OUTPUT_DIR') !== inject.mountPath
  )
    return [];
  const { mountPath, podApiUrl } = inject;
  const mounted = (container: unknown) =>
    isObject(container) &&
    Array.isArray(container.volumeMounts) &&
    container.volumeMounts.some((m) => isObject(m) && m.name === VOLUME_NAME);
  const ops: JsonPatchOp[] = [];
  const containers = Array.isArray(spec.containers) ? spec.containers : [];
  containers.forEach((container, index) => {
    if (!mounted(container))
      equipContainer(ops, container, `/spec/containers/${index}`, { mountPath, podApiUrl });
  });
  initContainers.forEach((container, index) => {
    if (isObject(container) && container.restartPolicy === 'Always' && !mounted(container))
      equipContainer(ops, container, `/spec/initContainers/${index}`, { mountPath, podApiUrl });
  });
  return ops;
}

/** Where the secrets volume is mounted unless InjectionConfig.mountPath says otherwise. */
const DEFAULT_MOUNT_PATH = '/var/run/cloudtaser';

/** The image's user (runtime/images/Dockerfile.operator: USER 65532:65532). */
const INIT_CONTAINER_UID = 65532;

/** Whether the pod spec already holds what injection adds (a copy of an injected pod without its annotation). */
function carriesInjection(pod: Json): boolean {
  const spec = isObject(pod.spec) ? pod.spec : {};
  const named = (list: unknown, name: string) =>
    Array.isArray(list) && list.some((item) => isObject(item) && item.name === name);
  return (
    named(spec.volumes, VOLUME_NAME) ||
    named(spec.volumes, TOKEN_VOLUME_NAME) ||
    named(spec.initContainers, INIT_CONTAINER_NAME)
  );
}

function appendTo(ops: JsonPatchOp[], existing: unknown, path: string, value: unknown): void {
  if (Array.isArray(existing)) ops.push({ op: 'add', path: `${path}/-`, value });
  else ops.push({ op: 'add', path, value: [value] });
}

/** RFC 6901: `~` -> `~0`, `/` -> `~1`. */
function pointer(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A refusal, whose message (what `kubectl` prints after "denied the request:") starts with the code the webhook's log
 * line and metric carry, as every other refusal of ours does (an outside docs drill found it only in the log).
 */
function refuse(uid: string, code: number, reason: string, message: string): AdmissionResponse {
  const coded = message.startsWith(`${REFUSED_CODE}: `) ? message : `${REFUSED_CODE}: ${message}`;
  return { uid, allowed: false, status: { code, reason, message: coded } };
}

const REFUSED_CODE = 'CT_WEBHOOK_REFUSED';

function invalid(why: string): CloudtaserError {
  return new CloudtaserError('CT_INVALID_ARGUMENT', `not an AdmissionReview v1: ${why}`);
}
