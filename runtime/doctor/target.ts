/**
 * `cloudtaser-cli target doctor`: walks the target side of the path with an admin's kubeconfig, from the API
 * server to the operator, its webhook, every beacon replica and the trust record, and ends with the broker's own
 * verdict (its /status phase). It stops at the first broken link and says what to do.
 */
import { parseCaSha256 } from '../broker/trust-record.js';
import { OPERATOR_CHART } from '../core/chart-location.js';
import { CloudtaserError } from '../core/errors.js';
import type { KubeClient, KubeDeployment } from '../kube/index.js';
import { REARM_COMMAND } from '../registration/initialization.js';
import {
  beaconTarget,
  type ReplicaCertificate,
  type Resolve,
  resolveReplicas,
  tcpProbe,
  tlsProbe,
} from './beacon.js';
import { brokerKeyView } from './broker-keys.js';
import {
  broken,
  type CheckResult,
  type DoctorReport,
  ok,
  TARGET_LINKS,
  type TargetLinkId,
  walkLinks,
  warn,
} from './report.js';

/** The Kubernetes reads the target doctor makes (an admin's kubeconfig has them). */
export type TargetDoctorKube = Pick<
  KubeClient,
  | 'getVersion'
  | 'getNamespace'
  | 'getDeployment'
  | 'getMutatingWebhookConfiguration'
  | 'getConfigMap'
  | 'getServiceProxy'
> & { readonly server?: string };

export interface TargetDoctorOptions {
  readonly kube: TargetDoctorKube;
  /** The operator's namespace. @default 'cloudtaser-system' */
  readonly namespace?: string;
  /** The operator's Deployment (and Service) name: the chart's full name. @default 'cloudtaser' */
  readonly deployment?: string;
  /**
   * Read the broker's /status here (e.g. a `kubectl port-forward`) instead of through the API server's service
   * proxy (`services/<deployment>:metrics/proxy/status`). @default the service proxy
   */
  readonly brokerStatusUrl?: string;
  /** The beacon address. @default the operator's `--beacon` argument */
  readonly beacon?: string;
  /** PEM CA of the beacon's certificate. @default the system roots */
  readonly beaconCaPem?: string;
  /** The MutatingWebhookConfiguration. @default the operator's `--webhook-configuration` argument */
  readonly webhookConfiguration?: string;
  readonly resolve?: Resolve;
  /** Per network probe. @default 5000 */
  readonly timeoutMs?: number;
  /** A certificate with less time left than this is a warning. @default 14 */
  readonly certificateWarnDays?: number;
  readonly now?: () => Date;
}

/** The part of the broker's /status the doctor reads. */
interface BrokerStatusView {
  readonly phase?: string;
  readonly reason?: string;
  readonly lastErrorCode?: string;
  readonly operationalHashPrefix?: string;
  readonly certificateNotAfter?: string;
  readonly certificateRenewalError?: {
    readonly code?: string;
    readonly reason?: string;
    readonly at?: string;
  };
  readonly beaconIp?: string;
  /** Untrusted: read through brokerKeyView. */
  readonly pod?: unknown;
  readonly brokerKeySha256?: unknown;
  readonly webhookCaPem?: string;
  readonly webhookCaBundle?: { readonly current?: boolean; readonly lastError?: string } | string;
  readonly tokenReview?: {
    readonly state?: string;
    readonly lastErrorCode?: string;
    readonly lastError?: string;
  };
}

export async function runTargetDoctor(options: TargetDoctorOptions): Promise<DoctorReport> {
  const kube = options.kube;
  const namespace = options.namespace ?? 'cloudtaser-system';
  const name = options.deployment ?? 'cloudtaser';
  const timeoutMs = options.timeoutMs ?? 5_000;
  const now = options.now ?? (() => new Date());
  const signal = () => AbortSignal.timeout(timeoutMs * 2);
  let fingerprint: string | undefined;
  let deployment: KubeDeployment | undefined;
  let args: readonly string[] = [];
  let status: BrokerStatusView | undefined;
  let replicas: string[] = [];
  let target: ReturnType<typeof beaconTarget> | undefined;
  /** No operator Deployment, and the caller pointed at a broker (--broker-status-url): there are no flags to read. */
  let operatorOutsideChart = false;

  /** A flag of the operator's command, as `--flag=value` (the chart's form) or `--flag value`. */
  const flag = (name: string): string | undefined => {
    for (let i = 0; i < args.length; i++) {
      if (args[i].startsWith(`${name}=`)) return args[i].slice(name.length + 1);
      if (args[i] === name) return args[i + 1];
    }
    return undefined;
  };

  const checks: Record<TargetLinkId, () => Promise<CheckResult>> = {
    async cluster() {
      try {
        const version = await kube.getVersion({ signal: signal() });
        return ok(`${kube.server ?? 'the API server'} answers (${version.gitVersion})`, {
          version: version.gitVersion,
        });
      } catch (err) {
        return broken(
          `the API server does not answer: ${(err as Error).message}`,
          'check the kubeconfig and context (--kubeconfig, --context), the VPN or bastion, and that the credentials are current',
          { code: codeOf(err) },
        );
      }
    },
    async fingerprint() {
      try {
        const uid = (await kube.getNamespace('kube-system', { signal: signal() })).metadata?.uid;
        if (!uid) return broken('kube-system has no UID', 'this API server does not look like Kubernetes');
        fingerprint = uid;
        return ok(`${uid} (register it with \`cloudtaser-cli source register --fingerprint ${uid}\`)`, {
          fingerprint: uid,
        });
      } catch (err) {
        return broken(
          `cannot read the kube-system namespace: ${(err as Error).message}`,
          'these credentials need `get namespaces`; use an admin kubeconfig',
          { code: codeOf(err) },
        );
      }
    },
    async operator() {
      try {
        deployment = await kube.getDeployment(namespace, name, { signal: signal() });
      } catch (err) {
        // A broker the caller points at directly (a process outside the chart: the dev stack, a debugging run)
        // is checked without its Deployment; the operator's flags are then the doctor's own (before, the walk
        // stopped here, exit 12, with the broker answering: an outside SRE drill on the dev stack).
        if (codeOf(err) === 'CT_KUBE_NOT_FOUND' && options.brokerStatusUrl) {
          operatorOutsideChart = true;
          return warn(
            `no Deployment ${namespace}/${name}: checking the broker at ${options.brokerStatusUrl} without it (an operator run outside the chart, or another release name)`,
            `for a chart install, pass its release and namespace (--release, --namespace); otherwise give what the Deployment's flags would say: --beacon, --beacon-ca${options.webhookConfiguration ? '' : ', --webhook-configuration'}`,
            { code: codeOf(err) },
          );
        }
        return broken(
          `no Deployment ${namespace}/${name}: ${(err as Error).message}`,
          `install the operator chart (helm install ${name} ${OPERATOR_CHART} -n ${namespace} --set operator.broker.beacon.address=<beacon host:port>), or pass --namespace/--release for another release`,
          { code: codeOf(err) },
        );
      }
      const container = deployment.spec?.template?.spec?.containers?.[0];
      args = container?.args ?? [];
      const probes = {
        liveness: container?.livenessProbe?.httpGet?.path,
        readiness: container?.readinessProbe?.httpGet?.path,
      };
      const available = deployment.status?.availableReplicas ?? 0;
      const facts = { replicas: deployment.spec?.replicas, available, probes };
      if (available < 1) {
        const condition = deployment.status?.conditions?.find((c) => c.status !== 'True');
        return broken(
          `the operator has no available replica${condition?.message ? ` (${condition.type}: ${condition.message})` : ''}`,
          `look at \`kubectl -n ${namespace} describe deployment ${name}\` and the pod's events and logs (image pull, crash loop, failing /healthz)`,
          { facts },
        );
      }
      if (probes.liveness !== '/healthz' || probes.readiness !== '/readyz')
        return warn(
          `available, but its probes are not /healthz and /readyz (${JSON.stringify(probes)})`,
          'use the chart as shipped: without the probes Kubernetes cannot restart a stuck operator',
          facts,
        );
      return ok(
        `${available}/${deployment.spec?.replicas ?? 1} available, probes /healthz and /readyz`,
        facts,
      );
    },
    async 'broker-status'() {
      try {
        status = (await readBrokerStatus(
          kube,
          namespace,
          name,
          options.brokerStatusUrl,
          signal(),
        )) as BrokerStatusView;
      } catch (err) {
        return broken(
          `cannot read the broker's /status ${options.brokerStatusUrl ? `at ${options.brokerStatusUrl}` : `through the API server's service proxy (services/${name}:metrics)`}: ${(err as Error).message}`,
          options.brokerStatusUrl
            ? 'check the URL (a `kubectl port-forward` to the metrics port) and that the operator pod is ready'
            : `these credentials need \`get services/proxy\` in ${namespace}; or run \`kubectl -n ${namespace} port-forward deploy/${name} 8081\` and pass --broker-status-url http://127.0.0.1:8081`,
          { code: codeOf(err) },
        );
      }
      const key = brokerKeyView(options.brokerStatusUrl ?? `services/${name}:metrics`, status);
      return ok(`phase ${status.phase}: ${status.reason}`, {
        phase: status.phase,
        lastErrorCode: status.lastErrorCode,
        pod: key.pod ?? null,
        brokerKeySha256: key.keySha256 ?? null,
      });
    },
    async webhook() {
      const configuration = options.webhookConfiguration ?? flag('--webhook-configuration');
      if (!configuration)
        return warn(
          'the operator runs without --webhook-configuration (its certificate comes from a Secret, or it runs outside the chart): caBundle not checked',
          'pass --webhook-configuration <name> to check the caBundle cert-manager keeps',
        );
      let webhooks: Awaited<ReturnType<TargetDoctorKube['getMutatingWebhookConfiguration']>>['webhooks'];
      try {
        webhooks = (await kube.getMutatingWebhookConfiguration(configuration, { signal: signal() })).webhooks;
      } catch (err) {
        return broken(
          `no MutatingWebhookConfiguration ${configuration}: ${(err as Error).message}`,
          'reinstall or upgrade the operator chart; without it pods are created without their secrets',
          { code: codeOf(err) },
        );
      }
      const bundles = (webhooks ?? []).map((w) => w.clientConfig?.caBundle ?? '');
      if (bundles.length === 0 || bundles.some((b) => b === ''))
        return broken(
          `${configuration} has a webhook without a caBundle: the API server cannot call the webhook`,
          `the operator fills it within 30 s of starting; if it stays empty, its log says why (it needs get and patch on this configuration)`,
        );
      if (status?.webhookCaPem) {
        const expected = Buffer.from(status.webhookCaPem).toString('base64');
        if (bundles.some((b) => b !== expected))
          return broken(
            `${configuration}'s caBundle is not the CA the webhook serves with: the API server refuses the webhook's certificate`,
            'the operator patches it every 30 s; if it does not, check its RBAC (patch mutatingwebhookconfigurations) and its log',
          );
      }
      return ok(
        `${configuration}: ${bundles.length} webhook(s), caBundle ${status?.webhookCaPem ? 'matches the serving CA' : 'set'}`,
      );
    },
    async 'beacon-dns'() {
      const address = options.beacon ?? flag('--beacon');
      if (!address)
        return operatorOutsideChart
          ? broken(
              'no beacon address to check: there is no operator Deployment to read its --beacon from',
              'pass the beacon the broker dials: --beacon host:port (and --beacon-ca for a private CA)',
            )
          : broken(
              'the operator has no --beacon argument',
              'set operator.broker.beacon.address in the chart values',
            );
      target = beaconTarget(address);
      try {
        replicas = await resolveReplicas(target, options.resolve);
      } catch (err) {
        return broken(
          `${target.host} does not resolve: ${(err as Error).message}`,
          'check the name and the cluster DNS (a private zone the cluster cannot see?)',
          { code: 'CT_BEACON_UNREACHABLE' },
        );
      }
      if (replicas.length === 0)
        return broken(
          `${target.host} has no A-record`,
          'the beacon Service has no ready replica, or the DNS record is missing',
          {
            code: 'CT_BEACON_UNREACHABLE',
          },
        );
      return ok(`${target.host} -> ${replicas.join(', ')}`, { host: target.host, replicas });
    },
    async 'beacon-tcp'() {
      const port = target!.port;
      const results = await Promise.all(
        replicas.map(async (ip) => ({ ip, problem: await tcpProbe(ip, port, timeoutMs) })),
      );
      const failed = results.filter((r) => r.problem);
      const facts = { replicas: results };
      if (failed.length === results.length)
        return broken(
          `no beacon replica accepts TCP on port ${port}: ${failed.map((f) => `${f.ip} ${f.problem}`).join('; ')}`,
          'check egress from the cluster (NetworkPolicy, firewall, proxy: --beacon-proxy) and that the beacon pods run',
          { code: 'CT_BEACON_UNREACHABLE', facts },
        );
      if (failed.length > 0)
        return broken(
          `replica(s) ${failed.map((f) => `${f.ip} (${f.problem})`).join(', ')} refuse TCP on port ${port}; the others answer`,
          'a broker and a bridge that meet only there cannot pair: fix or remove that replica (its DNS record)',
          { code: 'CT_BEACON_UNREACHABLE', facts },
        );
      return ok(`${results.length} replica(s) accept TCP on port ${port}`, facts);
    },
    async 'beacon-tls'() {
      if (target!.door === 'plain')
        return warn(
          'the beacon address uses the plain door: no TLS to check',
          'use the TLS door in production',
        );
      const certificates: ReplicaCertificate[] = await Promise.all(
        replicas.map((ip) => tlsProbe(target!, ip, { caPem: options.beaconCaPem, timeoutMs, now: now() })),
      );
      const bad = certificates.filter((c) => c.problem);
      if (bad.length > 0)
        return broken(
          bad.map((c) => `${c.ip}: ${c.problem}`).join('; '),
          'renew or correct the beacon certificate (its names must cover the address the operator dials), or give the operator the CA that signed it (operator.broker.beacon.caConfigMap)',
          { code: 'CT_BEACON_UNREACHABLE', facts: { certificates } },
        );
      const soonest = Math.min(...certificates.map((c) => c.daysLeft ?? Number.POSITIVE_INFINITY));
      if (soonest < (options.certificateWarnDays ?? 14))
        return warn(
          `every replica's certificate is valid, but one expires in ${soonest} day(s)`,
          'renew the beacon certificate before it expires',
          { certificates },
        );
      return ok(
        `${certificates.length} replica(s) present a valid certificate for ${target!.host} (${soonest} days left)`,
        {
          certificates,
        },
      );
    },
    async trust() {
      const pin = flag('--ca-sha256');
      const ref = flag('--trust-record');
      let recorded: string | undefined;
      if (ref) {
        const [recordNamespace, recordName] = ref.split('/');
        try {
          const map = await kube.getConfigMap(recordNamespace, recordName, { signal: signal() });
          recorded = map.data?.caSha256 ? parseCaSha256(map.data.caSha256, ref) : undefined;
        } catch (err) {
          if (codeOf(err) !== 'CT_KUBE_NOT_FOUND')
            return broken(
              `cannot read the trust record ${ref}: ${(err as Error).message}`,
              'use an admin kubeconfig',
              {
                code: codeOf(err),
              },
            );
        }
      }
      const live = status?.operationalHashPrefix;
      const facts = { pin: pin ?? null, recorded: recorded ?? null, brokerCaPrefix: live ?? null };
      if (pin && recorded && pin !== recorded)
        return broken(
          `the pin (--ca-sha256 ${pin.slice(0, 12)}...) and the trust record ${ref} (${recorded.slice(0, 12)}...) disagree`,
          'the broker rewrites the record from the pin at start: restart the operator, or correct operator.broker.trust.caSha256',
          { code: 'CT_PKI_CA_PIN_MISMATCH', facts },
        );
      const expected = pin ?? recorded;
      if (expected && live && !expected.startsWith(live))
        return broken(
          `the broker runs with cluster CA ${live}... but ${pin ? 'the pin' : 'the trust record'} names ${expected.slice(0, 12)}...`,
          'after a re-registration with a new CA: `cloudtaser-cli target trust pin --ca-sha256 <operational hash>` and restart the operator',
          { code: 'CT_PKI_CA_PIN_MISMATCH', facts },
        );
      if (!expected && operatorOutsideChart)
        return warn(
          `not checked: without an operator Deployment there is no --ca-sha256 or --trust-record to read${live ? ` (the broker uses cluster CA ${live}...)` : ''}`,
          "compare the broker's CA with `cloudtaser-cli source status` (operational hash) by hand",
          facts,
        );
      if (!expected)
        return warn(
          'no pin and no trust record yet: the broker trusts the first cluster CA it meets',
          'pin it: `cloudtaser-cli target trust pin --ca-sha256 <operational hash from source register>`',
          facts,
        );
      return ok(
        `cluster CA ${expected.slice(0, 12)}... ${pin ? 'pinned' : 'recorded'}${live ? ', the broker uses it' : ''}`,
        facts,
      );
    },
    async 'broker-phase'() {
      if (status?.phase === 'operational') {
        // The broker renews its certificate through the tunnel ahead of expiry; a renewal that keeps failing (a
        // bridge before 0.2.0, a broker before it that never renews) would end in the bridge refusing the tunnel
        // and a bootstrap that needs attestation or a re-arm. Said as soon as a due renewal failed, and 14 days ahead.
        const notAfter = status.certificateNotAfter ? Date.parse(status.certificateNotAfter) : Number.NaN;
        const daysLeft = (notAfter - now().getTime()) / 86_400_000;
        const renewal = status.certificateRenewalError;
        if (renewal || daysLeft < (options.certificateWarnDays ?? 14)) {
          const failed = renewal
            ? `its renewal through the tunnel failed (${renewal.code ?? 'no code'}: ${renewal.reason ?? ''})`
            : 'it was not renewed (a broker before 0.2.0 never renews)';
          return warn(
            `operational, but the broker's certificate expires ${status.certificateNotAfter} (in ${Math.max(0, Math.floor(daysLeft))} day(s)) and ${failed}`,
            renewal?.code === 'CT_RENEWAL_REFUSED' && /404/.test(renewal.reason ?? '')
              ? 'upgrade the bridge (0.2.0 or later renews broker certificates); the broker tries again every hour'
              : `the broker retries every hour (log event broker.certificate_renewal_failed); if it cannot before expiry, restart the operator (kubectl rollout restart): with attested bootstrap it bootstraps again on its own; without, re-arm first (${REARM_COMMAND(fingerprint ?? '<fingerprint>')})`,
            {
              certificateNotAfter: status.certificateNotAfter,
              ...(renewal?.code ? { renewalErrorCode: renewal.code } : {}),
            },
          );
        }
        // The key's hash is what `source doctor` matches against the tunnel the bridge holds (two brokers of one
        // cluster replace each other with CT_BROKER_REPLACED; only one holds the tunnel at a time).
        return ok(`operational through beacon replica ${status.beaconIp ?? '?'}, ${brokerKeyText(status)}`, {
          beaconIp: status.beaconIp,
          ...(status.certificateNotAfter ? { certificateNotAfter: status.certificateNotAfter } : {}),
        });
      }
      return broken(
        `the broker is ${status?.phase ?? 'unknown'}: ${status?.reason ?? 'no reason given'}${status?.lastErrorCode === 'CT_BROKER_REPLACED' ? ` (this one: ${brokerKeyText(status)}; \`cloudtaser-cli source doctor\` names the key that holds the tunnel)` : ''}`,
        brokerFix(status?.lastErrorCode, fingerprint),
        { code: status?.lastErrorCode, facts: { phase: status?.phase } },
      );
    },
    async tokenreview() {
      const review = status?.tokenReview;
      if (review?.state === 'failing')
        return broken(
          `the last TokenReview failed (${review.lastErrorCode ?? 'no code'}): ${review.lastError ?? ''}; every pod login fails`,
          review.lastErrorCode === 'CT_KUBE_FORBIDDEN'
            ? `bind the broker's service account to system:auth-delegator (the chart's ClusterRoleBinding): \`kubectl create clusterrolebinding cloudtaser-auth-delegator --clusterrole=system:auth-delegator --serviceaccount=${namespace}:<operator service account>\``
            : "the Kubernetes API server refuses or fails TokenReviews from the broker; the broker's log (broker.tokenreview_failed) has the answer",
          { code: review.lastErrorCode },
        );
      return ok(review ? 'the last TokenReview succeeded' : 'no pod has logged in since the broker started');
    },
  };
  return walkLinks('target', TARGET_LINKS, (link) => checks[link.id]());
}

/** This broker's pod and key hash as a person compares them with what `source doctor` prints. */
function brokerKeyText(status: BrokerStatusView): string {
  const key = brokerKeyView('', status);
  return `${key.pod ? `pod ${key.pod}, ` : ''}${key.keySha256 ? `broker key sha256 ${key.keySha256}` : `broker key unknown (${key.problem})`}`;
}

/** What to do for the broker's last error, pointing at the secret-store side when the fault is there. */
function brokerFix(code: string | undefined, fingerprint: string | undefined): string {
  const fp = fingerprint ?? '<fingerprint>';
  switch (code) {
    case 'CT_ALREADY_INITIALIZED':
      return `this cluster was bootstrapped by an earlier operator: on the secret-store side run \`${REARM_COMMAND(fp)}\` to allow one more bootstrap`;
    case 'CT_NOT_REGISTERED':
      return `register the cluster on the secret-store side: \`cloudtaser-cli source register --fingerprint ${fp}\``;
    case 'CT_ATTESTATION_FAILED':
      return "the bridge refused the operator's attestation token; the broker's /status reason and the bridge's log say why";
    case 'CT_PKI_CA_PIN_MISMATCH':
      return 'the bridge offered another cluster CA than the pin: re-pin with `cloudtaser-cli target trust pin` if the cluster was re-registered';
    // The beacon refuses the broker a place: a bound, or a room full of other brokers. Before bootstrap the room's
    // hash comes from the fingerprint, and announces with it keep the broker out while they last (an outside drill
    // flooded it and this line sent the reader to the secret-store side).
    case 'CT_BEACON_LIMIT':
      return "the beacon refuses this broker a place (the reason above): if it says brokers already wait for this hash, other connections hold the cluster's room (a second operator pod, or a flood by someone who knows the fingerprint; the beacon's log names their addresses, reason waiting_per_hash); otherwise a beacon bound the fleet outgrew (docs/scaling.md)";
    default:
      return `the target side checks out: on the secret-store side run \`cloudtaser-cli source doctor --fingerprint ${fp} --bridge-health-url <url>\` (once per bridge pod)`;
  }
}

async function readBrokerStatus(
  kube: TargetDoctorKube,
  namespace: string,
  service: string,
  url: string | undefined,
  signal: AbortSignal,
): Promise<unknown> {
  if (!url) return kube.getServiceProxy(namespace, service, 'metrics', 'status', { signal });
  const response = await fetch(`${url.replace(/\/+$/, '')}/status`, { signal });
  if (response.status !== 200)
    throw new CloudtaserError('CT_KUBE_ERROR', `${url}/status answered ${response.status}`);
  return response.json();
}

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && code.startsWith('CT_') ? code : undefined;
}
