/**
 * The whole operational path on loopback: OpenBao test server, Kubernetes test server, one beacon replica, an
 * in-process bridge (with its TokenReview endpoint) and broker (pod API, webhook, migration), a cluster
 * registered with `--tokenreview-endpoint` pointing at that bridge. Every log line of bridge and broker is
 * captured so tests can prove no token or secret value was written.
 */
import { Writable } from 'node:stream';
import { Agent, request } from 'undici';
import type { BridgeHandle, BridgeOptions } from '../../runtime/bridge/index.js';
import type { BrokerHandle, BrokerOptions } from '../../runtime/broker/index.js';
import { createLogger } from '../../runtime/core/log.js';
import {
  type KubeAuditEntry,
  type KubeTestServer,
  type PolicyRule,
  startKubeTestServer,
} from '../../runtime/dev/kube/index.js';
import {
  type OpenBaoTestServer,
  type OpenBaoTestServerOptions,
  type StandbyOptions,
  startOpenBaoTestServer,
} from '../../runtime/dev/openbao/index.js';
import { KubeClient } from '../../runtime/kube/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import {
  type RegisterOptions,
  type RegistrationResult,
  registerCluster,
} from '../../runtime/registration/index.js';
import { provisionIdentities } from '../openbao-identities.js';
import { freePort } from '../ports.js';
import { type Replicas, startReplicas, startTestBridge, startTestBroker } from '../runtime/fixtures.js';
import { waitUntil } from '../support/wait.js';

export const OPERATOR_NAMESPACE = 'cloudtaser-system';
export const OPERATOR_SA = 'cloudtaser';
export const APP_NAMESPACE = 'team-a';
export const BOUND_SA = 'app-a';
export const UNBOUND_SA = 'app-b';
export const ROLE = 'app';
export const SECRET_PATH = 'app/db';
export const SECRET_VALUE = 'pA55-w0rd-that-must-never-be-logged-7f3a';
export const POD_API_DNS_NAMES = ['localhost', 'cloudtaser.cloudtaser-system.svc'];

export interface OperationalStack {
  readonly openbao: OpenBaoTestServer;
  /** Root token: the OpenBao admin's own work (pod roles and policies, inspection). */
  readonly admin: OpenBaoClient;
  /** Exactly the shipped registrar policy: how the stack registers the cluster. */
  readonly registrar: OpenBaoClient;
  /** Exactly the shipped bridge policy (AppRole login): what the stack's bridge runs with. */
  readonly bridgeOpenBao: OpenBaoClient;
  readonly kube: KubeTestServer;
  /** Admin access to the test cluster (what `kubectl` with the admin kubeconfig does). */
  readonly kubeAdmin: KubeClient;
  /** The broker's own service-account access (TokenReview, Secrets, Events). */
  readonly brokerKube: KubeClient;
  readonly replicas: Replicas;
  readonly bridge: BridgeHandle;
  readonly broker: BrokerHandle;
  readonly cluster: RegistrationResult;
  /** OpenBao client for the cluster namespace, root token. */
  readonly clusterAdmin: OpenBaoClient;
  /** `https://localhost:<port>`: the pod API as a pod reaches it. */
  readonly podApiUrl: string;
  readonly podApiCaPem: string;
  /** undici dispatcher that trusts the pod API's CA. */
  readonly podAgent: Agent;
  /** Every JSON line bridge and broker logged. */
  readonly logs: string[];
  podToken(serviceAccount: string, opts?: { expirationSeconds?: number }): string;
  podRequest(
    method: string,
    path: string,
    options?: { token?: string; body?: unknown },
  ): Promise<{ status: number; body: Record<string, unknown> }>;
  startBroker(extra?: Partial<BrokerOptions>): Promise<BrokerHandle>;
  close(): Promise<void>;
}

export async function startOperationalStack(
  options: {
    broker?: Partial<BrokerOptions>;
    bridge?: Partial<BridgeOptions>;
    /** Registration settings beyond the fingerprint and TokenReview endpoint (e.g. `migration: true`). */
    registration?: Partial<RegisterOptions>;
    logLevel?: string;
    /** The operator's RBAC instead of the default grants (e.g. the rules a rendered chart grants). */
    operatorRbac?: readonly PolicyRule[];
    /** Sees every non-admin Kubernetes request with its RBAC decision. */
    kubeAudit?: (entry: KubeAuditEntry) => void;
    /** Runs before the broker starts (objects the broker expects to find). */
    beforeBroker?: (kube: KubeTestServer) => Promise<void>;
    /** The bridge talks to OpenBao through an HA standby node with these options (registration uses the active). */
    bridgeThroughStandby?: StandbyOptions;
    /** Settings of the OpenBao test server (e.g. its listener's X-Forwarded-For handling). */
    openbao?: OpenBaoTestServerOptions;
  } = {},
): Promise<OperationalStack> {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, callback) {
      logs.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      callback();
    },
  });
  const logger = createLogger('operational-test', {
    level: options.logLevel ?? 'debug',
    destination: sink,
  });
  const closers: Array<() => Promise<unknown>> = [];
  try {
    const openbao = await startOpenBaoTestServer(options.openbao);
    closers.push(() => openbao.close());
    const admin = new OpenBaoClient({ address: openbao.address, token: openbao.rootToken });
    closers.push(() => admin.close());
    // The bridge and registration run with exactly the shipped policies (docs/openbao-policies.md).
    const identities = await provisionIdentities(admin);
    const registrar = admin.withToken(identities.registrarToken);
    let bridgeOpenBao = admin.withToken(identities.bridgeToken);
    const kube = await startKubeTestServer({ audit: options.kubeAudit });
    closers.push(() => kube.close());
    const kubeAdmin = KubeClient.fromConnection({
      kind: 'token',
      host: kube.url,
      token: kube.adminToken,
      clusterCaCertificate: kube.caCertPem,
    });
    closers.push(async () => kubeAdmin.close());

    // The operator's service account with exactly the RBAC the chart must grant.
    await kube.createServiceAccount(OPERATOR_NAMESPACE, OPERATOR_SA);
    const operator = { namespace: OPERATOR_NAMESPACE, name: OPERATOR_SA };
    const grants: readonly PolicyRule[] = options.operatorRbac ?? [
      { verbs: ['create'], resources: ['tokenreviews'], apiGroups: ['authentication.k8s.io'] },
      { verbs: ['list', 'delete'], resources: ['secrets'] },
      { verbs: ['create'], resources: ['events'] },
      { verbs: ['get'], resources: ['namespaces'] },
    ];
    for (const rule of grants) kube.grant(operator, rule);
    const brokerKube = KubeClient.fromConnection({
      kind: 'token',
      host: kube.url,
      token: kube.issueServiceAccountToken(OPERATOR_NAMESPACE, OPERATOR_SA, { expirationSeconds: 7200 }),
      clusterCaCertificate: kube.caCertPem,
    });
    closers.push(async () => brokerKube.close());
    await kube.createServiceAccount(APP_NAMESPACE, BOUND_SA);
    await kube.createServiceAccount(APP_NAMESPACE, UNBOUND_SA);

    const replicas = await startReplicas(1);
    closers.push(() => replicas.close());

    if (options.bridgeThroughStandby) {
      const standby = await openbao.startStandby(options.bridgeThroughStandby);
      closers.push(() => standby.close());
      // The bridge's own identity, through the standby.
      bridgeOpenBao = new OpenBaoClient({ address: standby.address, token: identities.bridgeToken, logger });
      closers.push(() => bridgeOpenBao.close());
    }
    const bridge = await startTestBridge({
      openbao: bridgeOpenBao,
      beacons: [replicas.address],
      tokenReview: { host: '127.0.0.1', port: 0 },
      logger,
      ...options.bridge,
    });
    closers.push(() => bridge.close());

    const cluster = await registerCluster(registrar, {
      fingerprint: kube.kubeSystemUid,
      tokenReviewEndpoint: bridge.tokenReviewUrl,
      ...options.registration,
    });
    const clusterAdmin = admin.withNamespace(cluster.namespace);
    await clusterAdmin.writePolicy(
      'app-read',
      `path "secret/data/app/*" { capabilities = ["read"] }\npath "secret/metadata/app/*" { capabilities = ["read", "list"] }\n`,
    );
    await clusterAdmin.writeKubernetesAuthRole('kubernetes', ROLE, {
      boundServiceAccountNames: [BOUND_SA],
      boundServiceAccountNamespaces: [APP_NAMESPACE],
      policies: ['app-read'],
      ttl: '1h',
    });
    await clusterAdmin.kvWrite('secret', SECRET_PATH, { password: SECRET_VALUE, user: 'app' });
    await bridge.pollNow();
    await options.beforeBroker?.(kube);

    const launch = async (extra: Partial<BrokerOptions> = {}) => {
      const handle = await startTestBroker({
        // Read as `broker run` reads it: the kube-system UID, with the operator's own credentials.
        fingerprint: async (signal) =>
          (await brokerKube.getNamespace('kube-system', { signal })).metadata?.uid ?? '',
        beacons: [replicas.address],
        caSha256: cluster.operationalHash,
        kube: brokerKube,
        // A fixed port, as in production: the broker holds it from its start and listens there after bootstrap.
        podApi: { host: '127.0.0.1', port: await freePort(), dnsNames: POD_API_DNS_NAMES },
        health: { host: '127.0.0.1', port: 0 },
        logger,
        ...options.broker,
        ...extra,
      });
      closers.push(() => handle.close());
      return handle;
    };
    const broker = await launch();
    const status = await broker.waitForPhase('operational', 20_000);
    const listen = new URL(broker.podApiListenUrl() ?? 'https://missing');
    const podApiUrl = `https://localhost:${listen.port}`;
    const podApiCaPem = status.podApiCaPem ?? '';
    const podAgent = new Agent({ connect: { ca: podApiCaPem }, connections: 64 });
    closers.push(() => podAgent.close());

    return {
      openbao,
      admin,
      registrar,
      bridgeOpenBao,
      kube,
      kubeAdmin,
      brokerKube,
      replicas,
      bridge,
      broker,
      cluster,
      clusterAdmin,
      podApiUrl,
      podApiCaPem,
      podAgent,
      logs,
      podToken: (serviceAccount, opts = {}) =>
        kube.issueServiceAccountToken(APP_NAMESPACE, serviceAccount, {
          expirationSeconds: opts.expirationSeconds ?? 3600,
        }),
      async podRequest(method, path, opts = {}) {
        const response = await request(`${podApiUrl}${path}`, {
          method: method as 'GET',
          dispatcher: podAgent,
          headers: {
            ...(opts.token ? { 'x-vault-token': opts.token } : {}),
            ...(opts.body === undefined ? {} : { 'content-type': 'application/json' }),
          },
          body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        });
        const text = await response.body.text();
        return {
          status: response.statusCode,
          body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
        };
      },
      startBroker: launch,
      async close() {
        for (const close of closers.reverse()) await close().catch(() => undefined);
      },
    };
  } catch (err) {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    throw err;
  }
}

/**
 * A second replica of the stack's bridge, waiting in the cluster's rooms as a rollout's new pod does (the broker's
 * tunnel stays on the first). The caller closes it.
 */
export async function startWaitingBridgeReplica(stack: OperationalStack): Promise<BridgeHandle> {
  const second = await startTestBridge({ openbao: stack.bridgeOpenBao, beacons: [stack.replicas.address] });
  await second.pollNow();
  await waitUntil(() => (second.status().clusters[0]?.waiting ?? 0) >= 2, {
    what: 'the second bridge replica waiting in both rooms',
  });
  return second;
}

/** A pod of the bound service account logs in through the pod API (the answer as is). */
export function podLogin(stack: OperationalStack): ReturnType<OperationalStack['podRequest']> {
  return stack.podRequest('POST', '/v1/auth/kubernetes/login', {
    body: { role: ROLE, jwt: stack.podToken(BOUND_SA) },
  });
}

/** A bound pod's OpenBao token, from a login that must succeed. */
export async function podClientToken(stack: OperationalStack): Promise<string> {
  const login = await podLogin(stack);
  if (login.status !== 200)
    throw new Error(`pod login answered ${login.status}: ${JSON.stringify(login.body)}`);
  return (login.body.auth as { client_token: string }).client_token;
}

/**
 * `readers` pods read their secret and renew their token (every third request) in a loop until `stop`: what a
 * rollout must not disturb. Resolves with every answer's status.
 */
export function podLoad(
  stack: OperationalStack,
  token: string,
  readers: number,
  stop: AbortSignal,
): Promise<number[]> {
  const statuses: number[] = [];
  const loop = async (n: number) => {
    for (let i = 0; !stop.aborted; i++) {
      const renew = (i + n) % 3 === 0;
      const answer = renew
        ? await stack.podRequest('POST', '/v1/auth/token/renew-self', { token, body: {} })
        : await stack.podRequest('GET', `/v1/secret/data/${SECRET_PATH}`, { token });
      statuses.push(answer.status);
    }
  };
  return Promise.all(Array.from({ length: readers }, (_, n) => loop(n))).then(() => statuses);
}
