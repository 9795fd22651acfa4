/**
 * `cloudtaser-cli source doctor`: walks the secret-store side of the path for one cluster with OpenBao
 * credentials (the registrar's or an admin's): its records, namespace, mounts and Kubernetes auth, then the bridge's
 * health, the beacon replicas as the bridge sees them (its /metrics), and whether it holds the cluster's tunnel.
 */
import { beaconRefusalFix, bootstrapRefusalFix } from '../bridge/refusal-fix.js';
import { shardOf } from '../bridge/shards.js';
import { fingerprintPrefix } from '../core/hashes.js';
import type { OpenBaoClient } from '../openbao/index.js';
import {
  clusterNamespace,
  DEFAULT_NAMESPACE_ROOT,
  getClusterStatus,
  loadReviewerSha256,
} from '../registration/index.js';
import {
  type BrokerKeyView,
  brokerKeyView,
  brokerName,
  tunnelHolderText,
  tunnelKeysOf,
} from './broker-keys.js';
import {
  broken,
  type CheckResult,
  type DoctorReport,
  ok,
  SOURCE_LINKS,
  type SourceLinkId,
  walkLinks,
  warn,
} from './report.js';
export interface SourceDoctorOptions {
  readonly openbao: OpenBaoClient;
  readonly fingerprint: string;
  /** @default 'cloudtaser' */
  readonly namespaceRoot?: string;
  /**
   * The bridge's probe port (`http://host:port`), serving /readyz, /status and /metrics; one per bridge pod to check
   * them all (a broker keeps one tunnel, on one of the replicas).
   */
  readonly bridgeHealthUrl?: string | readonly string[];
  /**
   * A broker's probe port (`http://host:port`, serving /status), one per operator pod (a port-forward each). Read
   * only when two brokers want the cluster: the one whose key the bridge sees at the other end of the tunnel is
   * named as its holder, the rest as the other. Without it the doctor prints the key hash for a person to compare.
   */
  readonly brokerStatusUrl?: string | readonly string[];
  /** @default 5000 */
  readonly timeoutMs?: number;
}

interface BridgeStatusView {
  readonly clusters?: Array<{
    fingerprintPrefix: string;
    initialized: boolean;
    waiting: number;
    tunnels: number;
    lastBootstrapRefusal?: { code: string; at: string; why?: string };
    lastTunnelReplacedAt?: string;
    /** Per open tunnel, the broker key at its other end; read through tunnelKeysOf (untrusted input). */
    tunnelBrokers?: unknown;
  }>;
  readonly lastPollError?: string;
  readonly beaconIdentityError?: string;
  /** Present when the bridge serves OpenBao's TokenReviews (bridge run --tokenreview-listen). */
  readonly tokenReview?: unknown;
  /** With sharding (bridge run --shards): which shards this replica holds, and who holds the others. */
  readonly shards?: {
    readonly shards: number;
    readonly held: number[];
    readonly identity?: string;
    readonly leaseNamespace?: string;
    readonly leasePrefix?: string;
    readonly holders?: string[][];
  };
}

/**
 * The cluster's shard as the bridge asked sees it, when that replica is sharded: whether it holds the shard, and
 * which other replicas do (the shard's other slot, or all of its slots when it holds none). A broker keeps one
 * tunnel, on one of them; undefined for a replica that is not sharded.
 */
function shardView(bridge: BridgeStatusView | undefined, fingerprint: string) {
  const sharding = bridge?.shards;
  if (!sharding) return undefined;
  const shard = shardOf(fingerprint, sharding.shards);
  const identity = sharding.identity ?? 'this replica';
  return {
    shard,
    held: sharding.held.includes(shard),
    others: (sharding.holders?.[shard] ?? []).filter((holder) => holder !== sharding.identity),
    identity,
    leases: `kubectl -n ${sharding.leaseNamespace ?? '<bridge namespace>'} get leases -l cloudtaser.io/bridge-leases=${sharding.leasePrefix ?? 'cloudtaser-bridge'}`,
  };
}

/** Replicas holding the cluster's shard, as the replicas asked see the Leases, other than those asked. */
function holdersNotAsked(views: ReadonlyArray<ReturnType<typeof shardView>>): string[] {
  const asked = new Set(views.map((view) => view?.identity));
  return [...new Set(views.flatMap((view) => view?.others ?? []))].filter((holder) => !asked.has(holder));
}

const askThatPod = (pod: string) =>
  `run doctor again with --bridge-health-url pointing at that pod's probe port (kubectl port-forward pod/${pod} <probe port>)`;

export async function runSourceDoctor(options: SourceDoctorOptions): Promise<DoctorReport> {
  const root = options.namespaceRoot ?? DEFAULT_NAMESPACE_ROOT;
  const fp = options.fingerprint;
  const fp8 = fingerprintPrefix(fp);
  const timeoutMs = options.timeoutMs ?? 5_000;
  const bridgeUrls = [options.bridgeHealthUrl ?? []].flat().map((url) => url.replace(/\/+$/, ''));
  const brokerUrls = [
    ...new Set([options.brokerStatusUrl ?? []].flat().map((url) => url.replace(/\/+$/, ''))),
  ];
  let record: Awaited<ReturnType<typeof getClusterStatus>> | undefined;
  /** Each bridge replica asked, with its /status, once the bridge link checked out. */
  const bridges: Array<{
    readonly url: string;
    readonly status: BridgeStatusView;
    /** The cluster's shard as that replica sees it; undefined when it is not sharded. */
    readonly view: ReturnType<typeof shardView>;
  }> = [];
  /** Names the replica in a message when more than one was asked. */
  const at = (url: string) => (bridgeUrls.length > 1 ? ` at ${url}` : '');
  const namespace = clusterNamespace(root, fp);
  const get = (url: string, path: string) =>
    fetch(`${url}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
  /** The latest bootstrap refusal of this cluster any replica asked reports (it clears once one is signed). */
  const lastRefusal = () =>
    bridges
      .map((b) => b.status.clusters?.find((c) => c.fingerprintPrefix === fp8)?.lastBootstrapRefusal)
      .filter((r): r is { code: string; at: string; why?: string } => r !== undefined)
      .sort((a, b) => b.at.localeCompare(a.at))[0];
  /** Each broker asked, by its /status; one that does not answer has an unknown key. */
  const readBrokerKeys = (): Promise<BrokerKeyView[]> =>
    Promise.all(
      brokerUrls.map(async (url) => {
        try {
          const response = await get(url, '/status');
          if (response.status !== 200) {
            await response.body?.cancel();
            return { url, problem: `its /status answered ${response.status}` };
          }
          return brokerKeyView(url, await response.json());
        } catch (err) {
          return { url, problem: `its /status did not answer: ${(err as Error).message}` };
        }
      }),
    );
  /** The broker key at the other end of each tunnel the bridges asked hold; undefined when none says. */
  const tunnelKeys = () => {
    const lists = bridges.map((b) =>
      tunnelKeysOf(b.status.clusters?.find((c) => c.fingerprintPrefix === fp8)),
    );
    return lists.every((list) => list === undefined) ? undefined : lists.flatMap((list) => list ?? []);
  };
  const noBridge = () =>
    warn(
      'no --bridge-health-url: not checked',
      "pass each bridge pod's probe port, e.g. a port-forward per pod (--bridge-health-url once per pod)",
    );

  const checks: Record<SourceLinkId, () => Promise<CheckResult>> = {
    async openbao() {
      try {
        const health = await options.openbao.health();
        await options.openbao.lookupSelf();
        return ok(`${options.openbao.address} answers (version ${health.version ?? '?'}), token valid`);
      } catch (err) {
        return broken(
          `${(err as Error).message}`,
          'check CLOUDTASER_SECRETSTORE_ADDRESS, the CA (--secretstore-ca-cert) and the token',
          {
            code: codeOf(err),
          },
        );
      }
    },
    async registration() {
      record = await getClusterStatus(options.openbao, { fingerprint: fp, namespaceRoot: root });
      if (!record.registered)
        return broken(
          `no registration record for ${fp}`,
          `register it: \`cloudtaser-cli source register --fingerprint ${fp}\``,
          {
            code: 'CT_NOT_REGISTERED',
          },
        );
      return ok(`registered at ${record.registeredAt ?? '?'}, namespace ${record.namespace}`, {
        namespace: record.namespace,
      });
    },
    async namespace() {
      const cluster = options.openbao.withNamespace(namespace);
      try {
        const mounts = await cluster.listMounts();
        const auth = await cluster.listAuthMounts();
        const missing = [
          ...['cloudtaser/', 'secret/'].filter((m) => !mounts[m]),
          ...['kubernetes/'].filter((m) => !auth[m]).map((m) => `auth/${m}`),
        ];
        if (missing.length > 0)
          return broken(
            `namespace ${namespace} lacks ${missing.join(', ')}`,
            `run \`cloudtaser-cli source register --fingerprint ${fp}\` again (it is idempotent)`,
          );
        return ok(`namespace ${namespace} with cloudtaser/, secret/ and auth/kubernetes/`);
      } catch (err) {
        return broken(
          `cannot read namespace ${namespace}: ${(err as Error).message}`,
          `run \`cloudtaser-cli source register --fingerprint ${fp}\` again`,
          {
            code: codeOf(err),
          },
        );
      }
    },
    async 'kubernetes-auth'() {
      const response = await options.openbao
        .withNamespace(namespace)
        .request<{ data?: { kubernetes_host?: string } }>('GET', 'auth/kubernetes/config', {
          allow404: true,
        });
      const host = response.body?.data?.kubernetes_host;
      if (!host)
        return broken(
          'auth/kubernetes has no kubernetes_host: pods cannot log in',
          `run \`cloudtaser-cli source register --fingerprint ${fp} --tokenreview-endpoint <bridge URL>\``,
        );
      // A registration from before 0.2.0 has no reviewer credential: bridges of 0.2.0 refuse every TokenReview for
      // it, so every pod login gets a bare 403 (an outside upgrade test saw "Healthy" here meanwhile). A token that
      // may not read the record says nothing either way.
      const cluster = options.openbao.withNamespace(namespace);
      const reviewer = await loadReviewerSha256(cluster).catch(() => 'unknown');
      if (reviewer === undefined)
        return broken(
          `auth/kubernetes calls ${host}, but the registration has no TokenReview reviewer credential (registered by a version before 0.2.0): the bridge refuses every TokenReview, so every pod login gets 403`,
          `run \`cloudtaser-cli source register --fingerprint ${fp}\` with this version (it keeps the endpoint; name another with --tokenreview-endpoint)`,
        );
      return ok(`TokenReviews go to ${host}`, { kubernetesHost: host });
    },
    async bridge() {
      if (bridgeUrls.length === 0) return noBridge();
      for (const url of bridgeUrls) {
        let status: BridgeStatusView;
        try {
          const ready = await get(url, '/readyz');
          status = (await (await get(url, '/status')).json()) as BridgeStatusView;
          if (ready.status !== 200)
            return broken(`the bridge${at(url)} is not ready (${ready.status})`, 'look at the bridge log');
        } catch (err) {
          return broken(
            `the bridge does not answer at ${url}: ${(err as Error).message}`,
            'check the URL and that the bridge pods run',
          );
        }
        if (status.lastPollError) {
          const code = /^(CT_[A-Z0-9_]+)/.exec(status.lastPollError)?.[1];
          return broken(
            `the bridge${at(url)} cannot list clusters: ${status.lastPollError}`,
            pollFix(code),
            code ? { code } : {},
          );
        }
        if (status.beaconIdentityError)
          return broken(
            `the beacon refuses the bridge${at(url)}: ${status.beaconIdentityError}`,
            beaconRefusalFix(status.beaconIdentityError),
            {
              code: 'CT_BEACON_UNAUTHENTICATED',
            },
          );
        bridges.push({ url, status, view: shardView(status, fp) });
      }
      // OpenBao's Kubernetes auth asks the bridge to review every pod login: a bridge without the listener leaves
      // every login refused with a bare 403 while the tunnel itself works.
      if (bridges.every((b) => b.status.tokenReview === undefined))
        return broken(
          `${bridges.length === 1 ? 'the bridge does not serve' : 'no bridge replica asked serves'} OpenBao's TokenReviews (no --tokenreview-listen): every pod login is refused with 403 permission denied, although the tunnel works`,
          `run the bridge with --tokenreview-listen (the bridge chart does), and register the cluster with --tokenreview-endpoint set to where OpenBao reaches that listener (the kubernetes-auth line above shows where it calls now)`,
          { code: 'CT_TOKENREVIEW_UNAVAILABLE' },
        );
      const served = bridges.map((b) => b.status.clusters?.length ?? 0);
      return ok(
        bridges.length === 1
          ? `ready, serving ${served[0]} cluster(s)`
          : `${bridges.length} replicas ready, serving ${served.join(', ')} cluster(s)`,
      );
    },
    async 'beacon-replicas'() {
      if (bridgeUrls.length === 0) return noBridge();
      const reachable = new Set<string>();
      let notice: CheckResult | undefined;
      for (const { url } of bridges) {
        const response = await get(url, '/metrics');
        if (response.status !== 200) {
          await response.body?.cancel();
          notice ??= warn(
            `the bridge${at(url)} serves no /metrics: replicas not checked`,
            'run the bridge with --metrics-listen',
          );
          continue;
        }
        const replicas = [
          ...(await response.text()).matchAll(
            /^cloudtaser_bridge_beacon_replica_up\{replica="([^"]+)"\} (\S+)$/gm,
          ),
        ].map((m) => ({ replica: m[1], up: Number(m[2]) === 1 }));
        const down = replicas.filter((r) => !r.up).map((r) => r.replica);
        if (replicas.length === 0) {
          notice ??= warn(
            `the bridge${at(url)} has not dialled a beacon replica yet`,
            'wait one poll interval and run doctor again',
          );
          continue;
        }
        if (down.length > 0)
          return broken(
            `the bridge${at(url)} cannot reach beacon replica(s) ${down.join(', ')}`,
            'check egress from the bridge to those addresses (firewall, proxy) and those beacon pods',
            {
              code: 'CT_BEACON_UNREACHABLE',
              facts: { replicas },
            },
          );
        for (const r of replicas) reachable.add(r.replica);
      }
      if (notice) return notice;
      const replicas = [...reachable].map((replica) => ({ replica, up: true }));
      return ok(`${replicas.length} replica(s) reachable: ${[...reachable].join(', ')}`, { replicas });
    },
    async 'bridge-cluster'() {
      if (bridgeUrls.length === 0) return noBridge();
      const serving = bridges.filter((b) => b.status.clusters?.some((c) => c.fingerprintPrefix === fp8));
      if (serving.length > 0)
        return ok(
          bridges.length === 1
            ? `the bridge serves ${fp8}`
            : `${serving.length} of the ${bridges.length} bridge replicas asked serve ${fp8}`,
        );
      // Sharded replicas that all leave the cluster's shard to others: one replica's status cannot say whether
      // another serves the cluster, only where to ask. (One that holds the shard and does not serve the cluster
      // does not list its registration: the broken link below.)
      const views = bridges.map((b) => b.view);
      if (views.every((view) => view !== undefined && !view.held)) {
        const [view] = views as NonNullable<(typeof views)[number]>[];
        const others = holdersNotAsked(views);
        if (others.length > 0)
          return warn(
            `not checked here: shard ${view.shard}, which serves ${fp8}, is held by bridge replica ${others.join(', ')}, not by the ${bridges.length === 1 ? `one asked (${view.identity})` : 'ones asked'}`,
            askThatPod(others[0]),
            { shard: view.shard, holders: others },
          );
        return broken(
          `no bridge replica holds shard ${view.shard}, which serves ${fp8} (the one asked, ${view.identity}, holds ${bridges[0].status.shards?.held.join(', ') || 'none'})`,
          `list the shard Leases (${view.leases}); check the bridges' RBAC on coordination.k8s.io leases and their bridge.shard_* log lines`,
          { facts: { shard: view.shard } },
        );
      }
      return broken(
        `the bridge does not serve ${fp8}`,
        "the bridge lists clusters at every poll: check its namespace root (--namespace-root) and its policy's read on the registration records",
      );
    },
    async initialization() {
      const refusal = lastRefusal();
      if (!record?.initialized)
        return refusal
          ? broken(
              `the cluster has not bootstrapped: the bridge refused a bootstrap for it at ${refusal.at} (${refusal.code})`,
              bootstrapRefusalFix(refusal.code, refusal.why),
              { code: refusal.code },
            )
          : broken(
              'the cluster has not bootstrapped since it was registered, and the bridge refused no bootstrap for it',
              `install the operator in the cluster; if it runs already and trusted an earlier registration of this cluster (deregistered and registered again: a new CA), pin the new CA there: \`cloudtaser-cli target trust pin --ca-sha256 ${record?.operationalHash ?? '<operational hash>'}\`; \`cloudtaser-cli target doctor\` in the cluster says which`,
            );
      return ok(`bootstrapped at ${record.initializedAt ?? '?'}`);
    },
    async tunnel() {
      if (bridgeUrls.length === 0) return noBridge();
      const tunnelsAt = bridges.map(
        (b) => b.status.clusters?.find((c) => c.fingerprintPrefix === fp8)?.tunnels ?? 0,
      );
      const holding = bridges.filter((_, i) => tunnelsAt[i] >= 1);
      // A tunnel is up, yet bootstraps keep arriving (refused ones are cleared when a tunnel opens), or a newer
      // bootstrap replaced a live broker: a second broker, or someone who knows the fingerprint. A takeover looks
      // exactly like this from here, so it is never reported as healthy.
      const refusedSince = lastRefusal();
      // A replacement is news for a while: an operator that restarted replaces its own earlier broker once.
      const replacedAt = bridges
        .map((b) => b.status.clusters?.find((c) => c.fingerprintPrefix === fp8)?.lastTunnelReplacedAt)
        .filter((at): at is string => at !== undefined && Date.now() - Date.parse(at) < REPLACEMENT_NEWS_MS)
        .sort()
        .pop();
      // Which key holds the tunnel, for a person or a script to match against the brokers' own /status.
      const held = tunnelKeys();
      const heldFacts = held === undefined ? {} : { tunnelBrokerKeys: held.map((key) => key ?? null) };
      if (holding.length > 0 && (refusedSince || replacedAt)) {
        // Only here are the brokers asked: naming the holder is what this finding lacked.
        const brokers = await readBrokerKeys();
        return {
          ...warn(
            `${tunnelsAt.reduce((sum, n) => sum + n, 0)} tunnel(s) up for ${fp8}, but ${
              refusedSince
                ? `the bridge refused a bootstrap for it at ${refusedSince.at} (${refusedSince.code}) after that tunnel opened`
                : `a newer bootstrap replaced a connected broker of it at ${replacedAt} (CT_BROKER_REPLACED)`
            }: two brokers want this cluster, the operator's own and another (a second operator, or someone who knows the fingerprint); ${tunnelHolderText(held, brokers)}`,
            `check in the cluster which broker is the operator's current one (\`cloudtaser-cli target doctor\`, or brokerKeySha256 in its /status${brokers.length === 0 ? "; pass each operator pod's probe port as --broker-status-url to have this doctor compare them" : ''}). If it holds the tunnel, the other is a stale operator pod (one left on an unreachable node: stop that pod or node) or someone who knows the fingerprint. If it does not, the tunnel belongs to someone else: deregister and register the cluster again (a new CA), then pin the new operational hash in the cluster (\`cloudtaser-cli target trust pin --ca-sha256 <hash>\`); do not re-arm`,
            {
              ...heldFacts,
              brokers: brokers.map((broker) => ({
                url: broker.url,
                pod: broker.pod ?? null,
                brokerKeySha256: broker.keySha256 ?? null,
                holdsTunnel: broker.keySha256 !== undefined && (held ?? []).includes(broker.keySha256),
              })),
            },
          ),
          code: refusedSince?.code ?? 'CT_BROKER_REPLACED',
        };
      }
      if (holding.length > 0)
        return ok(
          `${tunnelsAt.reduce((sum, n) => sum + n, 0)} tunnel(s) up${bridges.length > 1 ? ` (${holding.map((b) => b.url).join(', ')})` : ''}`,
          held === undefined ? undefined : heldFacts,
        );
      // The broker keeps one tunnel: with sharding it may be on a holder of the shard not asked (with two slots per
      // shard, the chart's default, on the twin of the one asked).
      const views = bridges.map((b) => b.view);
      const others = holdersNotAsked(views);
      const shard = views.find((view) => view !== undefined)?.shard;
      if (others.length > 0)
        return warn(
          `not checked here: no bridge replica asked holds a tunnel for ${fp8}; shard ${shard} is ${views.some((v) => v?.held) ? 'also ' : ''}held by bridge replica ${others.join(', ')}, where the broker's tunnel may be`,
          `${askThatPod(others[0])}; if that one holds none either, the broker is not connected: run \`cloudtaser-cli target doctor\` in the cluster`,
          { shard, holders: others },
        );
      // The broker came, and the bridge refused it (a restarted operator without its state, say): the fix is here.
      const refusal = lastRefusal();
      if (refusal)
        return broken(
          `no tunnel for ${fp8}, and the bridge refused a bootstrap for it at ${refusal.at} (${refusal.code}: the operator's broker, or anyone who knows the fingerprint)`,
          bootstrapRefusalFix(refusal.code, refusal.why),
          { code: refusal.code },
        );
      const unsharded = views.some((v) => v === undefined);
      // The broker's own word, when its /status was given (an outside drill had it at hand and the doctor ignored
      // it unless two brokers wanted the cluster).
      const brokers = brokerUrls.length > 0 ? await readBrokerKeys() : [];
      const heard = brokers
        .map((broker) => `; ${brokerName(broker)} says: ${broker.says ?? broker.problem ?? 'nothing'}`)
        .join('');
      return broken(
        (bridges.length === 1
          ? `the bridge holds no tunnel for ${fp8}`
          : `none of the ${bridges.length} bridge replicas asked holds a tunnel for ${fp8}`) + heard,
        bridges.length === 1 && unsharded
          ? 'the broker is not connected: run `cloudtaser-cli target doctor` in the cluster. With several bridge replicas (the chart runs 2) its one tunnel is on one of them: pass --bridge-health-url once per bridge pod to check them all'
          : 'the broker is not connected: run `cloudtaser-cli target doctor` in the cluster',
        {
          code: 'CT_TUNNEL_CLOSED',
        },
      );
    },
  };
  return walkLinks('source', SOURCE_LINKS, (link) => checks[link.id]());
}

/** How long after a broker was replaced the doctor still mentions it (a restart replaces its own once). */
const REPLACEMENT_NEWS_MS = 15 * 60_000;

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && code.startsWith('CT_') ? code : undefined;
}

/** What to do when the bridge's discovery poll fails, by the poll's code. */
function pollFix(code: string | undefined): string {
  switch (code) {
    case 'CT_OPENBAO_UNREACHABLE':
    case 'CT_OPENBAO_TIMEOUT':
    case 'CT_OPENBAO_TLS':
    case 'CT_PROXY_UNREACHABLE':
    case 'CT_PROXY_REFUSED':
      return "the bridge cannot reach OpenBao: check its --secretstore-address, the network (and proxy) between the bridge and OpenBao, OpenBao's TLS certificate, and that OpenBao runs";
    case 'CT_OPENBAO_SEALED':
      return 'OpenBao is sealed: unseal it; the bridge polls again on its own';
    case 'CT_OPENBAO_PERMISSION_DENIED':
      return "check the bridge's OpenBao token and policy (docs/openbao-policies.md); a token that expired needs a login that renews (AppRole or Kubernetes auth)";
    default:
      return "look at the bridge's log for bridge.poll_failed; check its OpenBao token and policy (docs/openbao-policies.md)";
  }
}
