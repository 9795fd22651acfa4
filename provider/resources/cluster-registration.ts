/**
 * `cloudtaser_cluster_registration`: registers one cluster (by fingerprint) with OpenBao. Create = register,
 * Read = status (gone -> recreate), Delete = deregister (workload secrets kept unless purge_on_destroy),
 * Import by fingerprint. Key material never reaches state: only the CA certificate (public) and hashes.
 *
 * One registration has one owner: creating a registration that already exists in OpenBao (registered by the
 * CLI or another state) is refused, at plan and again at apply, unless `adopt_existing` says to take it over.
 */
import { type JsonWebKey, X509Certificate } from 'node:crypto';
import { parseJwks, refusePrivateJwks } from '../../runtime/attestation/verify.js';
import { CloudtaserError, isCloudtaserError } from '../../runtime/core/errors.js';
import { initHash } from '../../runtime/core/hashes.js';
import {
  DEFAULT_OPERATOR_SERVICE_ACCOUNT_REF,
  FINGERPRINT_RULE,
  ISSUER_RULE,
  isFingerprint,
  parseServiceAccountRef,
  ruleViolation,
  SERVICE_ACCOUNT_RULE,
} from '../../runtime/core/rules.js';
import { DEFAULT_NAMESPACE_ROOT } from '../../runtime/registration/layout.js';
import {
  DEFAULT_TOKENREVIEW_ENDPOINT,
  tokenReviewEndpointProblem,
} from '../../runtime/registration/tokenreview-endpoint.js';
import { isUnknown, unknown } from '../cty/values.js';
import { attributeError, type Diagnostic, DiagnosticsError } from '../framework/diagnostics.js';
import type { PrivateState } from '../framework/private-state.js';
import {
  defineResource,
  type OperationContext,
  PartialCreateError,
  type Warn,
} from '../framework/provider.js';
import { loadSecretStoreDomain } from '../load-domain.js';
import { attr, type InferValues } from '../schema/schema.js';
import type { CloudtaserProviderClient } from './provider-config.js';

/** Where a Terraform user gets a fingerprint, appended to a refusal. */
export const FINGERPRINT_HINT =
  'read it with `kubectl get namespace kube-system -o jsonpath={.metadata.uid}` or the cloudtaser_cluster_fingerprint data source';

/** The operator's service account in the Helm chart's defaults (runtime: DEFAULT_OPERATOR_SERVICE_ACCOUNT). */
export const DEFAULT_ATTESTATION_SERVICE_ACCOUNT = DEFAULT_OPERATOR_SERVICE_ACCOUNT_REF;

function jwksProblem(text: string): string | undefined {
  try {
    refusePrivateJwks(text);
    parseJwks(text);
    return undefined;
  } catch (err) {
    return `${(err as Error).message} (for example data.cloudtaser_cluster_fingerprint.<name>.service_account_jwks)`;
  }
}

export const clusterRegistrationBlock = {
  description:
    'Registers a Kubernetes cluster with the secret store: creates its OpenBao namespace, its CA and the ' +
    "bridge's client certificate (kept in OpenBao only), and records the registration the bridge discovers. " +
    'Destroying it deregisters the cluster; stored workload secrets stay unless `purge_on_destroy` is set.',
  attributes: {
    fingerprint: attr.string({
      description: "The cluster's fingerprint: the UID of its `kube-system` namespace (a lower-case UUID).",
      required: true,
      forceNew: true,
      validate: [(v) => ruleViolation(FINGERPRINT_RULE, 'fingerprint', v, FINGERPRINT_HINT)?.message],
    }),
    // --- ownership (issue 15) ---
    adopt_existing: attr.bool({
      description:
        'When true, creating this resource takes over a registration that already exists in OpenBao (made by ' +
        '`cloudtaser-cli source register` or another Terraform state) instead of refusing. Prefer ' +
        '`terraform import`, which keeps one owner explicit; never set it in two states for one cluster. ' +
        'Defaults to `false`.',
      optional: true,
      computed: true,
      default: false,
    }),
    // --- end ownership ---
    purge_on_destroy: attr.bool({
      description:
        "When true, destroying the registration also deletes the cluster's OpenBao namespace with every " +
        'workload secret in it. Defaults to `false`.',
      optional: true,
      computed: true,
      default: false,
    }),
    attestation_issuer: attr.string({
      description:
        "Turns on attested bootstrap: the cluster's service-account issuer (`issuer` of " +
        '`/.well-known/openid-configuration`, e.g. `data.cloudtaser_cluster_fingerprint.<name>.service_account_issuer`). ' +
        "The broker then proves with a token of the operator's service account that it runs in this cluster. " +
        'Set together with `attestation_jwks`. Left out, the stored setting stays as it is (as with the CLI); ' +
        'to turn attestation off, replace the registration (`terraform apply -replace=...`).',
      optional: true,
      computed: true,
      validate: [(v) => ruleViolation(ISSUER_RULE, 'attestation_issuer', v)?.message],
    }),
    attestation_jwks: attr.string({
      description:
        "The cluster's service-account public keys as JSON text (`/openid/v1/jwks`, e.g. " +
        '`data.cloudtaser_cluster_fingerprint.<name>.service_account_jwks`). Public material only. A new value ' +
        '(the cluster rotated its signing key) updates the registration in place.',
      optional: true,
      computed: true,
      validate: [jwksProblem],
    }),
    attestation_service_account: attr.string({
      description:
        "The operator's service account, `<namespace>/<name>`: the only subject whose token bootstraps the " +
        `cluster. Defaults to \`${DEFAULT_ATTESTATION_SERVICE_ACCOUNT}\` when \`attestation_issuer\` is set.`,
      optional: true,
      computed: true,
      validate: [(v) => ruleViolation(SERVICE_ACCOUNT_RULE, 'attestation_service_account', v)?.message],
    }),
    tokenreview_endpoint: attr.string({
      description:
        "The bridge's TokenReview Service as OpenBao reaches it (the bridge chart's NOTES print it); the cluster's " +
        'Kubernetes auth calls `<endpoint>/clusters/<fingerprint>` with a reviewer credential set here. ' +
        `Defaults to \`${DEFAULT_TOKENREVIEW_ENDPOINT}\`. A change updates the registration in place.`,
      optional: true,
      computed: true,
      default: DEFAULT_TOKENREVIEW_ENDPOINT,
      validate: [(v) => tokenReviewEndpointProblem(v)],
    }),
    tokenreview_ca_cert: attr.string({
      description:
        "PEM CA of the bridge listener's certificate, only when you bring that certificate (bridge chart " +
        '`bridge.tokenReview.tls.secretName`). Left out, the listener CA registration keeps in OpenBao.',
      optional: true,
      validate: [
        (v) => (v.includes('-----BEGIN CERTIFICATE-----') ? undefined : 'must be a PEM certificate'),
      ],
    }),
    attested: attr.bool({
      description: 'Whether bootstrap requires an attestation token (as recorded in OpenBao).',
      computed: true,
    }),
    migration_enabled: attr.bool({
      description:
        "When true, the bridge migrates this cluster's Kubernetes Secrets (marked with `cloudtaser-cli target " +
        "migrate`, moved by the broker run with `--migrate`) into `secret/k8s/<namespace>/<name>` of the cluster's " +
        'namespace, writing only keys that hold no other value. When false the bridge refuses migration with ' +
        '`CT_MIGRATION_DISABLED`, whatever the operator chart says. Defaults to `false`: when you import a ' +
        'registration made with migration on (`cloudtaser-cli source status` shows it), set `true` here, or the ' +
        'next apply turns it off (the plan shows `true -> false`).',
      optional: true,
      computed: true,
      default: false,
    }),
    id: attr.string({ description: 'Same as `fingerprint`.', computed: true }),
    namespace: attr.string({
      description: "The cluster's OpenBao namespace, `<namespace_root>/<fingerprint[:8]>`.",
      computed: true,
    }),
    init_hash: attr.string({
      description:
        'SHA-256 of `cloudtaser-init:<fingerprint>` (hex): the beacon room the broker bootstraps in.',
      computed: true,
    }),
    operational_hash: attr.string({
      description:
        "SHA-256 of the cluster CA certificate's DER (hex): the beacon room of the operational tunnel.",
      computed: true,
    }),
    ca_cert_pem: attr.string({
      description: 'The cluster CA certificate (PEM, public). Its private key stays in OpenBao.',
      computed: true,
    }),
    initialized: attr.bool({
      description: "Whether the cluster's broker has completed its one-time bootstrap.",
      computed: true,
    }),
  },
};

type Registration = InferValues<typeof clusterRegistrationBlock>;

/** The namespace root is recovered from state so read and destroy work even if provider config moved. */
function namespaceRootOf(
  state: Registration,
  client: CloudtaserProviderClient | undefined,
): string | undefined {
  if (typeof state.namespace === 'string' && state.namespace.includes('/')) {
    return state.namespace.slice(0, state.namespace.lastIndexOf('/'));
  }
  return client?.namespaceRoot;
}

function normalizePem(pem: string | undefined): string | null {
  if (!pem) return null;
  return new X509Certificate(pem).toString();
}

function namespaceFor(root: string, fingerprint: string): string {
  return `${root}/${fingerprint.slice(0, 8)}`;
}

const isSet = (value: unknown) => value !== null && value !== undefined;

/** The TokenReview endpoint settings registerCluster takes. */
function tokenReviewOf(planned: Registration) {
  return {
    tokenReviewEndpoint: planned.tokenreview_endpoint ?? DEFAULT_TOKENREVIEW_ENDPOINT,
    ...(isSet(planned.tokenreview_ca_cert) ? { tokenReviewCaCertPem: planned.tokenreview_ca_cert } : {}),
  };
}

/** The attestation settings registerCluster takes, from planned (known) values; undefined when off. */
function attestationSettingsOf(planned: Registration) {
  if (!isSet(planned.attestation_issuer)) return undefined;
  return {
    issuer: planned.attestation_issuer,
    jwks: planned.attestation_jwks!,
    serviceAccount: parseServiceAccountRef(
      'attestation_service_account',
      planned.attestation_service_account ?? DEFAULT_ATTESTATION_SERVICE_ACCOUNT,
    ),
  };
}

/** Stored JWKS as state text: the state's own text while it means the same keys, so formatting is no drift. */
function jwksStateText(stored: { keys: readonly JsonWebKey[] }, stateText: string | null): string {
  const canonical = JSON.stringify({ keys: stored.keys });
  if (typeof stateText === 'string') {
    try {
      if (JSON.stringify(parseJwks(stateText)) === canonical) return stateText;
    } catch {
      // unreadable state text: show the stored keys
    }
  }
  return canonical;
}

/** The provider's problem without its provider-block attribute path (it would be read against this resource). */
function secretStoreProblemFor(client: CloudtaserProviderClient | undefined): CloudtaserError | undefined {
  const problem = client?.secretStoreProblem();
  return problem ? new CloudtaserError(problem.code, problem.message) : undefined;
}

/**
 * Registrations this provider configuration read from state during the current command (its refresh), by
 * `registrationKey`. A tainted object reaches the plan of its replacement without prior state or private state
 * (Terraform drops both), so this is how that plan knows the registration it finds is the one the state holds.
 * Kept per configured client: a provider process serves one command, and a reattached one is configured anew by
 * each command.
 */
const refreshedRegistrations = new WeakMap<CloudtaserProviderClient, Set<string>>();

function registrationKey(status: { namespace: string; fingerprint: string; registeredAt?: string }): string {
  return `${status.namespace}#${status.fingerprint}#${status.registeredAt ?? ''}`;
}

function rememberRefreshed(client: CloudtaserProviderClient, key: string): void {
  let keys = refreshedRegistrations.get(client);
  if (!keys) {
    keys = new Set();
    refreshedRegistrations.set(client, keys);
  }
  keys.add(key);
}

/**
 * What this command plans for the registrations its state holds, by namespace and fingerprint: `destroy` (an
 * address gone from the configuration) or `keep` (any other plan of an object in state, no-ops included), with the
 * plans of creates waiting to hear of one. The old object's refresh makes a registration look like a tainted object
 * of this state (see refreshedRegistrations), and a create of the same cluster at another address must tell the
 * three apart: a rename without a declared move (the old address is destroyed), the same cluster declared twice (the
 * other address keeps it), a tainted object (its replacement is this very create; nothing else is planned for it).
 * Terraform plans an object right after its refresh, in the same step, so waiting a moment decides it.
 */
const plannedElsewhere = new WeakMap<
  CloudtaserProviderClient,
  { readonly kinds: Map<string, 'destroy' | 'keep'>; readonly waiters: Set<() => void> }
>();

/** How long the plan of a create waits to hear what this command plans for the registration it found. */
const RENAME_WAIT_MS = 2_000;

function plansOf(client: CloudtaserProviderClient) {
  let plans = plannedElsewhere.get(client);
  if (!plans) {
    plans = { kinds: new Map(), waiters: new Set() };
    plannedElsewhere.set(client, plans);
  }
  return plans;
}

function notePlanned(
  client: CloudtaserProviderClient,
  namespace: string,
  fingerprint: string,
  kind: 'destroy' | 'keep',
): void {
  const plans = plansOf(client);
  plans.kinds.set(`${namespace}#${fingerprint}`, kind);
  for (const wake of [...plans.waiters]) wake();
}

/** What this command plans for that registration at another address; undefined after `waitMs` without news. */
function plannedAtAnotherAddress(
  client: CloudtaserProviderClient,
  namespace: string,
  fingerprint: string,
  waitMs: number,
): Promise<'destroy' | 'keep' | undefined> {
  const plans = plansOf(client);
  const key = `${namespace}#${fingerprint}`;
  const known = plans.kinds.get(key);
  if (known) return Promise.resolve(known);
  return new Promise((resolve) => {
    const finish = (kind: 'destroy' | 'keep' | undefined) => {
      clearTimeout(timer);
      plans.waiters.delete(check);
      resolve(kind);
    };
    const check = () => {
      const kind = plans.kinds.get(key);
      if (kind) finish(kind);
    };
    const timer = setTimeout(() => finish(undefined), waitMs);
    plans.waiters.add(check);
  });
}

function declaredTwice(fingerprint: string, namespace: string): CloudtaserError {
  return attributeError(
    ['fingerprint'],
    'CT_REGISTRATION_EXISTS',
    `cluster ${fingerprint} (namespace ${namespace}) is already registered by this state at another address, which ` +
      'keeps it: the configuration declares the same cluster twice. Remove one of the two resources (or give it ' +
      'another fingerprint); two owners of one registration would deregister it under each other.',
  );
}

function renamedWithoutMove(fingerprint: string, namespace: string): CloudtaserError {
  return attributeError(
    ['fingerprint'],
    'CT_REGISTRATION_EXISTS',
    `cluster ${fingerprint} (namespace ${namespace}) is registered by this state at another address, which this ` +
      'plan destroys: the resource was renamed or moved without a declared move. Applying would deregister the ' +
      "live cluster and register it again with a new CA (the operator's trust pin, operational_hash, would no " +
      'longer match), or fail half-way with the cluster deregistered. Declare the move instead: a moved block ' +
      '(moved { from = <old address>, to = <new address> }; in CDKTF, moveTo or moveFromId), so Terraform keeps ' +
      'the registration. To replace it on purpose, apply the removal first, then the addition.',
  );
}

/** The operation in flight per cluster (by namespace) in this provider process. */
const operationsInFlight = new Map<string, Promise<unknown>>();

/**
 * Runs create, update and delete of one cluster one at a time. Terraform orders the delete and create of one
 * replaced object, but not those of two objects for one cluster (a construct renamed without a declared move, two
 * resources for one fingerprint): interleaved, a delete could remove the CA a create is just registering with.
 */
async function oneAtATime<T>(namespace: string, run: () => Promise<T>): Promise<T> {
  const before = operationsInFlight.get(namespace) ?? Promise.resolve();
  const current = before.catch(() => undefined).then(run);
  const settled = current.catch(() => undefined);
  operationsInFlight.set(namespace, settled);
  try {
    return await current;
  } finally {
    if (operationsInFlight.get(namespace) === settled) operationsInFlight.delete(namespace);
  }
}

/** What create, read and import keep in private state: the registration this object stands for. */
function rememberOwned(priv: PrivateState, fingerprint: string, namespace: string): void {
  priv.set('fingerprint', fingerprint);
  priv.set('namespace', namespace);
}

/**
 * Whether this object's own state (private state of the prior object, or of the object a replacement replaces)
 * says it holds the registration of `fingerprint`.
 *
 * Why private state can be trusted for this: Terraform stores it in the state file beside the resource and only
 * this provider writes it. Whoever can forge it can as well write the resource itself into the state (or run
 * `terraform import`), which claims the registration just as much (a destroy deregisters it), so it grants
 * nothing that owning the state does not. It only skips the plan-time refusal: at apply the replacement's delete
 * runs first, create checks again and writes the registration record with check-and-set 0 (requireNew), so a
 * registration another owner makes meanwhile is still refused.
 */
function ownsRegistration(priv: PrivateState, fingerprint: string, namespace: string | undefined): boolean {
  if (priv.get('fingerprint') !== fingerprint) return false;
  const stored = priv.get('namespace');
  return stored === undefined || namespace === undefined || stored === namespace;
}

function registeredElsewhere(
  fingerprint: string,
  namespace: string,
  registeredAt: string | undefined,
): CloudtaserError {
  return attributeError(
    ['fingerprint'],
    'CT_REGISTRATION_EXISTS',
    `cluster ${fingerprint} is already registered in OpenBao (namespace ${namespace}` +
      `${registeredAt ? `, registered ${registeredAt}` : ''}) but not in this Terraform state: ` +
      'the CLI or another state registered it (or an apply of this configuration was interrupted after it ' +
      'registered the cluster and before Terraform saved it: then import it), and two owners would deregister it ' +
      'under each other. ' +
      `To manage it from this configuration, import it: terraform import cloudtaser_cluster_registration.<name> ${fingerprint} ` +
      '(<name> is this resource\'s name, shown after "with" in this error; with modules, its full address), or add ' +
      `import { to = cloudtaser_cluster_registration.<name>, id = "${fingerprint}" } to the configuration. ` +
      'To take it over as it is instead, set adopt_existing = true. If this configuration renamed or moved the ' +
      'resource, declare the move instead (a moved block; in CDKTF, moveTo or moveFromId), so Terraform keeps the ' +
      'registration rather than destroying it and creating another. If this is `terraform destroy` (its refresh ' +
      'plans the configuration first), run `terraform destroy -refresh=false`: it destroys what this state holds.',
  );
}

/** Refuses to create a registration another owner already holds (see adopt_existing). */
/**
 * Refuses at plan a change the registrar's policy would stop half-way: a replacement deregisters before it
 * registers again, so a policy that does not cover the new namespace root (or lacks a line a newer release
 * needs) would otherwise leave the cluster unregistered. Asks OpenBao once per root (sys/capabilities-self);
 * a token that may not ask (no `default` policy) or a server that does not answer the endpoint (404, 400, an
 * unreadable answer) skips the check, with a warning where it matters: a replacement, which deregisters first.
 */
async function assertRegistrarMayApply(
  action: 'create' | 'update' | 'replace',
  prior: Registration | null,
  config: Registration | null,
  client: CloudtaserProviderClient,
  warn: Warn,
): Promise<void> {
  const fingerprint = config?.fingerprint ?? prior?.fingerprint;
  const root = client.namespaceRoot;
  if (typeof fingerprint !== 'string' || isUnknown(fingerprint) || !isFingerprint(fingerprint)) return;
  if (root === undefined) return;
  const priorRoot = prior ? (namespaceRootOf(prior, undefined) ?? root) : root;
  const deregister: false | 'keep' | 'purge' =
    action !== 'replace' ? false : prior?.purge_on_destroy === true ? 'purge' : 'keep';
  const checks: { namespaceRoot: string; register: boolean; deregister: false | 'keep' | 'purge' }[] =
    priorRoot === root
      ? [{ namespaceRoot: root, register: true, deregister }]
      : [
          { namespaceRoot: priorRoot, register: false, deregister },
          { namespaceRoot: root, register: true, deregister: false },
        ];
  const { missingRegistrarCapabilities, registrarPolicyError } = (await loadSecretStoreDomain()).registration;
  const change =
    action === 'create'
      ? 'this registration'
      : action === 'update'
        ? 'this update'
        : priorRoot === root
          ? 'this replacement (deregister, then register again)'
          : `this move from namespace root "${priorRoot}" (deregister there, then register under "${root}")`;
  for (const check of checks) {
    let missing: Awaited<ReturnType<typeof missingRegistrarCapabilities>>;
    try {
      missing = await missingRegistrarCapabilities(await client.openBao(), { fingerprint, ...check });
    } catch (err) {
      const cannotAsk =
        isCloudtaserError(err, 'CT_OPENBAO_PERMISSION_DENIED') ||
        isCloudtaserError(err, 'CT_OPENBAO_BAD_RESPONSE') ||
        isCloudtaserError(err, 'CT_OPENBAO_NOT_FOUND') ||
        isCloudtaserError(err, 'CT_OPENBAO_BAD_REQUEST');
      if (!cannotAsk) throw err;
      if (action === 'replace') {
        warn({
          summary: "Could not check the registrar's policy",
          detail:
            `OpenBao did not answer sys/capabilities-self (${(err as CloudtaserError).message}), so this plan ` +
            `cannot tell whether the registrar may register under "${root}" after deregistering under ` +
            `"${priorRoot}"; the replacement deregisters first. Check the policy first: cloudtaser-cli source ` +
            `policy registrar${root === DEFAULT_NAMESPACE_ROOT ? '' : ` --namespace-root ${root}`}.`,
          attribute: ['fingerprint'],
        });
      }
      return;
    }
    const refusal = registrarPolicyError(missing, check.namespaceRoot, change);
    if (refusal) throw refusal;
  }
}

async function assertNotRegisteredElsewhere(
  client: CloudtaserProviderClient,
  fingerprint: string,
  namespaceRoot: string | undefined,
  options: { atPlan?: boolean } = {},
): Promise<void> {
  const { getClusterStatus } = (await loadSecretStoreDomain()).registration;
  const status = await getClusterStatus(await client.openBao(), { fingerprint, namespaceRoot });
  if (!status.registered) return;
  if (options.atPlan) {
    // What this command plans for that registration at another address decides (see plannedElsewhere); waited for
    // also when its refresh has not come yet, so the refusal names the cause whichever address Terraform plans first.
    const elsewhere = await plannedAtAnotherAddress(client, status.namespace, fingerprint, RENAME_WAIT_MS);
    if (elsewhere === 'destroy') throw renamedWithoutMove(fingerprint, status.namespace);
    if (elsewhere === 'keep') throw declaredTwice(fingerprint, status.namespace);
    // The registration a tainted object of this state stands for (read during this command's refresh).
    if (refreshedRegistrations.get(client)?.has(registrationKey(status))) return;
  }
  throw registeredElsewhere(fingerprint, status.namespace, status.registeredAt);
}

/** Create: register the cluster, refusing one another owner holds unless adopting. */
async function createRegistration({
  planned,
  client,
  signal,
  private: priv,
}: OperationContext<CloudtaserProviderClient> & { planned: Registration }): Promise<Registration> {
  signal.throwIfAborted();
  const { registerCluster, getClusterStatus } = (await loadSecretStoreDomain()).registration;
  const openBao = await client.openBao();
  const adopt = planned.adopt_existing === true;
  // Checked again here: the plan may be old, or its provider configuration was unknown at plan time.
  if (!adopt) await assertNotRegisteredElsewhere(client, planned.fingerprint, client.namespaceRoot);
  const attestation = attestationSettingsOf(planned);
  // Ours, so a failed run can tell its own registration record from another owner's.
  const registeredAt = new Date().toISOString();
  let result: Awaited<ReturnType<typeof registerCluster>>;
  try {
    result = await registerCluster(openBao, {
      fingerprint: planned.fingerprint,
      namespaceRoot: client.namespaceRoot,
      ...(attestation ? { attestation } : {}),
      ...tokenReviewOf(planned),
      migration: planned.migration_enabled === true,
      // The record is written with check-and-set 0: of two states creating it at once, one is refused.
      requireNew: !adopt,
      registeredAt,
    });
  } catch (err) {
    if (isCloudtaserError(err, 'CT_REGISTRATION_EXISTS')) {
      const status = await getClusterStatus(openBao, {
        fingerprint: planned.fingerprint,
        namespaceRoot: client.namespaceRoot,
      }).catch(() => undefined);
      throw registeredElsewhere(
        planned.fingerprint,
        status?.namespace ?? namespaceFor(client.namespaceRoot ?? 'cloudtaser', planned.fingerprint),
        status?.registeredAt,
      );
    }
    // Failed after our record was written (e.g. OpenBao's answer to it was lost): keep it in state, tainted, so
    // the next apply replaces it instead of refusing a registration that is this state's own.
    const status = await getClusterStatus(openBao, {
      fingerprint: planned.fingerprint,
      namespaceRoot: client.namespaceRoot,
    }).catch(() => undefined);
    if (status?.registered && status.registeredAt === registeredAt) {
      rememberOwned(priv, planned.fingerprint, status.namespace);
      priv.set('registered_at', registeredAt);
      throw new PartialCreateError(
        {
          ...planned,
          id: status.fingerprint,
          namespace: status.namespace,
          init_hash: status.initHash,
          operational_hash: status.operationalHash ?? null,
          ca_cert_pem: normalizePem(status.caCertPem),
          initialized: status.initialized,
          attested: status.attestation !== undefined,
          attestation_service_account: attestation
            ? `${attestation.serviceAccount.namespace}/${attestation.serviceAccount.name}`
            : null,
        },
        err,
      );
    }
    throw err;
  }
  priv.set('registered_at', result.registeredAt);
  priv.set('secretstore_address', openBao.address);
  rememberOwned(priv, result.fingerprint, result.namespace);
  return {
    ...planned,
    migration_enabled: result.migrationEnabled,
    id: result.fingerprint,
    namespace: result.namespace,
    init_hash: result.initHash,
    operational_hash: result.operationalHash,
    ca_cert_pem: normalizePem(result.caCertPem),
    initialized: result.initialized,
    attestation_service_account: attestation
      ? `${attestation.serviceAccount.namespace}/${attestation.serviceAccount.name}`
      : null,
    attested: result.attested,
  };
}

export const clusterRegistrationResource = defineResource<CloudtaserProviderClient>()({
  typeName: 'cloudtaser_cluster_registration',
  schema: { version: 0, block: clusterRegistrationBlock },

  validate(config) {
    const problems: Diagnostic[] = [];
    const issuer = config.attestation_issuer;
    const jwks = config.attestation_jwks;
    const account = config.attestation_service_account;
    // Unknown values are judged again once known.
    if ([issuer, jwks, account].some((value) => isUnknown(value))) return;
    if (isSet(issuer) !== isSet(jwks)) {
      problems.push({
        severity: 'error',
        summary: 'Incomplete attestation settings',
        detail:
          'attestation_issuer and attestation_jwks go together: set both (e.g. from data.cloudtaser_cluster_fingerprint) or neither',
        attribute: [isSet(issuer) ? 'attestation_jwks' : 'attestation_issuer'],
      });
    }
    if (isSet(account) && !isSet(issuer)) {
      problems.push({
        severity: 'error',
        summary: 'Attestation service account without attestation',
        detail: "'attestation_service_account' only applies when 'attestation_issuer' is set",
        attribute: ['attestation_service_account'],
      });
    }
    if (problems.length > 0) throw new DiagnosticsError(problems);
  },

  observePlan({ action, prior, client }) {
    // A create of the same cluster at another address in this command must hear of it (see plannedElsewhere).
    if (client && typeof prior?.namespace === 'string' && typeof prior.fingerprint === 'string')
      notePlanned(client, prior.namespace, prior.fingerprint, action === 'delete' ? 'destroy' : 'keep');
  },

  async checkPlan({ action, prior, config, client, private: priv, warn }) {
    // Fail at plan what would fail at apply: missing or unusable OpenBao settings (not unknown ones: those are
    // only final during apply, when Terraform configures the provider again).
    const problem = secretStoreProblemFor(client);
    if (problem && problem.code !== 'CT_PROVIDER_CONFIG_UNKNOWN') throw problem;
    if (action === 'delete' || !client || problem) return;
    await assertRegistrarMayApply(action, prior, config, client, warn);
    if (action !== 'create' && action !== 'replace') return;
    const fingerprint = config?.fingerprint;
    const adopt = config?.adopt_existing;
    if (typeof fingerprint !== 'string' || isUnknown(fingerprint) || !isFingerprint(fingerprint)) return;
    if (adopt === true || isUnknown(adopt)) return;
    // The create half of a replacement (-replace, or a forced one) plans with no prior state but with the replaced
    // object's private state: the registration it finds is this state's own, deleted first at apply.
    const namespace = client.namespaceRoot ? namespaceFor(client.namespaceRoot, fingerprint) : undefined;
    if (ownsRegistration(priv, fingerprint, namespace)) return;
    await assertNotRegisteredElsewhere(client, fingerprint, client.namespaceRoot, { atPlan: true });
  },

  requiresReplace({ prior, client, private: priv, warn }) {
    // A destroy that stopped half-way (read noted it): replacing finishes the deregistration and registers anew.
    if (priv.get('incomplete') === true) return [['operational_hash']];
    // Another namespace_root: the registration lives under the old one (read and destroy follow the state), so it
    // moves only by a replacement.
    const root = client?.namespaceRoot;
    const stored = namespaceRootOf(prior, undefined);
    if (root === undefined || stored === undefined || root === stored) return undefined;
    warn({
      summary: 'Registration moves to another namespace_root',
      detail:
        `The provider's namespace_root is now "${root}", but cluster ${prior.fingerprint} is registered under ` +
        `"${stored}" (${prior.namespace}). Applying replaces the registration: it is deregistered there` +
        `${prior.purge_on_destroy === true ? ' and, with purge_on_destroy, its workload secrets are deleted' : ' (its workload secrets stay)'}, ` +
        `and registered under "${root}" with a new CA, so the operator's trust pin (operational_hash) changes too. ` +
        `The old registration is removed first, so this plan checks that the registrar's token may deregister ` +
        `under "${stored}" and register under "${root}" (cloudtaser-cli source policy registrar --namespace-root ` +
        `${root}) and stops if it may not. To keep it where it is, set namespace_root = "${stored}" again.`,
      attribute: ['fingerprint'],
    });
    return [['namespace']];
  },

  modifyPlan({ action, config, planned, client }) {
    // Whether the broker has bootstrapped is OpenBao's to say at apply time, not the stored state's.
    if (action === 'update') planned.initialized = unknown as never;
    const issuer = config.attestation_issuer;
    const accountUnset = config.attestation_service_account === null;
    if (isUnknown(issuer)) {
      // Known only at apply (e.g. from a data source read then): whether it turns attestation on, and the default
      // account that comes with it, are known then too. Before, an update kept the stored `false`/null here and
      // Terraform stopped with "Provider produced inconsistent final plan".
      planned.attested = unknown as never;
      if (accountUnset) planned.attestation_service_account = unknown as never;
    } else if (isSet(issuer)) {
      planned.attested = true;
      if (accountUnset) planned.attestation_service_account = DEFAULT_ATTESTATION_SERVICE_ACCOUNT;
    } else if (issuer === null && action !== 'update') {
      // A new registration without settings has none; an existing one keeps what is stored (computed carry-over).
      planned.attestation_issuer = null;
      planned.attestation_jwks = null;
      if (accountUnset) planned.attestation_service_account = null;
      // Adopting keeps whatever attestation the registration already has (registerCluster keeps stored settings).
      const adopting = planned.adopt_existing === true || isUnknown(planned.adopt_existing);
      planned.attested = adopting ? (unknown as never) : false;
    }
    // Pure functions of a known fingerprint are shown in the plan instead of "(known after apply)".
    const fingerprint = planned.fingerprint;
    if (typeof fingerprint !== 'string' || isUnknown(fingerprint) || !isFingerprint(fingerprint)) return;
    planned.id = fingerprint;
    planned.init_hash = initHash(fingerprint);
    if (isUnknown(planned.namespace) && client?.namespaceRoot) {
      planned.namespace = namespaceFor(client.namespaceRoot, fingerprint);
    }
  },

  create: (context) =>
    oneAtATime(
      namespaceFor(context.client.namespaceRoot ?? DEFAULT_NAMESPACE_ROOT, context.planned.fingerprint),
      () => createRegistration(context),
    ),

  // The attestation settings, migration_enabled and the TokenReview endpoint change in place (key rotation is a
  // plain apply); registerCluster is idempotent for everything else, so re-running it with the new settings is the
  // update.
  async update({ prior, planned, client, signal, private: priv }) {
    signal.throwIfAborted();
    const attestationUnchanged =
      prior.attestation_issuer === planned.attestation_issuer &&
      prior.attestation_jwks === planned.attestation_jwks &&
      prior.attestation_service_account === planned.attestation_service_account;
    // Switching attestation off needs a replacement (see attestation_issuer), so no settings = keep stored.
    const attestation = attestationUnchanged ? undefined : attestationSettingsOf(planned);
    const migrationUnchanged = (prior.migration_enabled ?? false) === (planned.migration_enabled ?? false);
    const tokenReviewUnchanged =
      prior.tokenreview_endpoint === planned.tokenreview_endpoint &&
      (prior.tokenreview_ca_cert ?? null) === (planned.tokenreview_ca_cert ?? null);
    if (attestation === undefined && migrationUnchanged && tokenReviewUnchanged)
      return { ...prior, ...planned, initialized: prior.initialized, attested: prior.attested ?? false };
    const { registerCluster } = (await loadSecretStoreDomain()).registration;
    const openBao = await client.openBao();
    const namespaceRoot = namespaceRootOf(prior, client);
    const result = await oneAtATime(
      namespaceFor(namespaceRoot ?? DEFAULT_NAMESPACE_ROOT, planned.fingerprint),
      () =>
        registerCluster(openBao, {
          fingerprint: planned.fingerprint,
          namespaceRoot,
          ...(attestation ? { attestation } : {}),
          ...tokenReviewOf(planned),
          migration: planned.migration_enabled === true,
          // The registration this state holds, or nothing: never a new one in place of a deregistered one.
          expectedOperationalHash: prior.operational_hash ?? undefined,
        }),
    );
    priv.set('registered_at', result.registeredAt);
    return {
      ...planned,
      migration_enabled: result.migrationEnabled,
      namespace: result.namespace,
      operational_hash: result.operationalHash,
      ca_cert_pem: normalizePem(result.caCertPem),
      initialized: result.initialized,
      attested: result.attested,
    };
  },

  async read({ state, client, signal, private: priv, warn }) {
    signal.throwIfAborted();
    if (client.secretStoreUnknown.length > 0) {
      // A state that was never read (an import) has nothing to show: importing needs OpenBao now.
      if (typeof state.namespace !== 'string') {
        const problem = client.secretStoreProblem()!;
        throw new CloudtaserError(problem.code, `importing cluster ${state.fingerprint}: ${problem.message}`);
      }
      warn({
        summary: 'Registration not refreshed: provider configuration not known yet',
        detail:
          `The cloudtaser provider arguments ${client.secretStoreUnknown.join(', ')} depend on values Terraform only ` +
          'knows during apply, so this plan could not reach OpenBao and shows the registration of cluster ' +
          `${state.fingerprint} as stored in the state; changes made outside Terraform are not shown. Apply ` +
          'configures the provider with the final values; run plan again afterwards to compare with OpenBao.',
      });
      // State written before adopt_existing existed reads as false, so upgrading the provider plans no change.
      return { ...state, adopt_existing: state.adopt_existing ?? false };
    }
    const { getClusterStatus, readTokenReviewEndpoint } = (await loadSecretStoreDomain()).registration;
    const openBao = await client.openBao();
    const status = await getClusterStatus(openBao, {
      fingerprint: state.fingerprint,
      namespaceRoot: namespaceRootOf(state, client),
      inspectNamespace: true,
    });
    if (!status.registered && status.incomplete) {
      // Gone from the bridge's view, but a destroy stopped half-way: dropping it now would leave the rest (and, with
      // purge_on_destroy, the workload secrets) behind, since Terraform calls no delete for an object read as gone.
      warn({
        summary: 'Registration half removed',
        detail:
          `Cluster ${state.fingerprint} has no registration record in OpenBao any more, but ${status.namespace} ` +
          'still holds parts of it (its initialization record or its CA): a destroy stopped half-way. ' +
          '`terraform destroy` finishes removing it' +
          `${state.purge_on_destroy === true ? ' (and deletes its workload secrets, as purge_on_destroy asks)' : ''}; ` +
          '`terraform apply` replaces it (deregisters the rest, then registers the cluster again with a new CA).',
      });
      priv.set('incomplete', true);
      rememberOwned(priv, state.fingerprint, status.namespace);
      return { ...state, initialized: status.initialized, adopt_existing: state.adopt_existing ?? false };
    }
    if (!status.registered) {
      // Not found where the provider now looks. When that is another OpenBao than the one this object was read
      // from, "deleted" is the wrong story: the registration stays there, and the create that follows registers
      // the cluster anew with a new CA (an outside test moved a fleet to another OpenBao that way, unwarned).
      const before = priv.get('secretstore_address');
      if (typeof before === 'string' && before !== openBao.address)
        warn({
          summary: 'Registration not found at the new OpenBao address',
          detail:
            `Cluster ${state.fingerprint} was registered at ${before}; the provider now points at ${openBao.address}, ` +
            "where it is not registered. Applying registers it there with a new CA (the operator's trust pin, " +
            `operational_hash, changes) and leaves the registration at ${before} in place: deregister it there ` +
            `first (cloudtaser-cli source deregister --fingerprint ${state.fingerprint} --secretstore-address ` +
            `${before}), or set secretstore_address back if the change was not meant.`,
          attribute: ['fingerprint'],
        });
      // Where it was registered, and gone: Terraform alone says "has been deleted" and plans a create that reads
      // as harmless, though it mints a new CA the running operator does not trust (an outside CDKTF test saw
      // only the operational_hash output change).
      else
        warn({
          summary: 'Registration removed outside Terraform',
          detail:
            `Cluster ${state.fingerprint} is no longer registered at ${openBao.address}: it was deregistered ` +
            'outside this state (cloudtaser-cli source deregister, another stack, or by hand). While the ' +
            "configuration keeps this resource, applying registers it again with a new CA, so the operator's trust " +
            'pin (operational_hash) changes: its broker reconnects only once the operator runs with the new pin (a ' +
            'Helm release of this configuration that takes operational_hash is updated by the same apply; one ' +
            'deployed elsewhere needs operator.broker.trust.caSha256 set to it). If the deregistration was meant, ' +
            'remove the resource from the configuration (a destroy has nothing left to remove).',
          attribute: ['fingerprint'],
        });
      return null;
    }
    priv.set('incomplete', undefined);
    priv.set('secretstore_address', openBao.address);
    rememberOwned(priv, status.fingerprint, status.namespace);
    rememberRefreshed(client, registrationKey(status));
    // What OpenBao's Kubernetes auth points at, not the last config: a change made with the CLI (or a state from an
    // import, which holds the default) shows as drift instead of being rewritten by the next unrelated update.
    const endpoint = await readTokenReviewEndpoint(
      openBao.withNamespace(status.namespace),
      state.fingerprint,
    );
    const storedEndpoint = state.tokenreview_endpoint;
    const tokenReviewEndpoint =
      endpoint === undefined ||
      (typeof storedEndpoint === 'string' && storedEndpoint.replace(/\/+$/, '') === endpoint)
        ? storedEndpoint
        : endpoint;
    if (status.registeredAt) priv.set('registered_at', status.registeredAt);
    return {
      ...state,
      id: status.fingerprint,
      namespace: status.namespace,
      init_hash: status.initHash,
      operational_hash: status.operationalHash ?? state.operational_hash,
      ca_cert_pem: normalizePem(status.caCertPem) ?? state.ca_cert_pem,
      initialized: status.initialized,
      purge_on_destroy: state.purge_on_destroy ?? false,
      adopt_existing: state.adopt_existing ?? false,
      // The stored record, not the last config: a change made with the CLI shows as drift.
      attestation_issuer: status.attestation?.issuer ?? null,
      attestation_jwks: status.attestation
        ? jwksStateText(status.attestation.jwks, state.attestation_jwks)
        : null,
      attestation_service_account: status.attestation
        ? `${status.attestation.serviceAccount.namespace}/${status.attestation.serviceAccount.name}`
        : null,
      attested: status.attestation !== undefined,
      migration_enabled: status.migrationEnabled,
      tokenreview_endpoint: tokenReviewEndpoint,
    };
  },

  async delete({ state, client, signal }) {
    signal.throwIfAborted();
    const { deregisterCluster } = (await loadSecretStoreDomain()).registration;
    const openBao = await client.openBao();
    const namespaceRoot = namespaceRootOf(state, client);
    await oneAtATime(namespaceFor(namespaceRoot ?? DEFAULT_NAMESPACE_ROOT, state.fingerprint), () =>
      deregisterCluster(openBao, {
        fingerprint: state.fingerprint,
        namespaceRoot,
        purge: state.purge_on_destroy === true,
      }),
    );
  },

  async importState({ id, private: priv }) {
    const fingerprint = id.trim();
    const violation = ruleViolation(FINGERPRINT_RULE, 'the import ID', fingerprint, FINGERPRINT_HINT);
    if (violation) throw attributeError([], violation.code, violation.message);
    priv.set('fingerprint', fingerprint);
    // Terraform calls read right after; it fills the rest or reports that nothing is registered.
    return { id: fingerprint, fingerprint, purge_on_destroy: false, adopt_existing: false };
  },
});
