/**
 * The dev stack (dev-only): an OpenBao test server, a Kubernetes test server and a beacon with a dev CA, all on
 * free loopback ports. Backs `cloudtaser-cli dev up`, the local demo and the end-to-end tests. Never a
 * production code path.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createBeacon } from '../beacon/index.js';
import { DEFAULT_TRUST_RECORD_NAME } from '../broker/trust-record.js';
import { type Logger, moduleLogger, silentLogger } from '../core/log.js';
import { KubeClient } from '../kube/index.js';
import { operatorKubeAccess, rbacRules } from '../kube/permissions.js';
import { OpenBaoClient } from '../openbao/index.js';
import { issueSelfSignedSync } from '../pki/index.js';
import {
  ensureBeaconClientCa,
  DEFAULT_OPERATOR_SERVICE_ACCOUNT as OPERATOR_SERVICE_ACCOUNT,
} from '../registration/index.js';
import { provisionIdentities } from './identities.js';
import { startKubeTestServer } from './kube/index.js';
import { type StandbyOptions, startOpenBaoTestServer } from './openbao/index.js';

export interface DevStackOptions {
  /** Folder for the kubeconfig and the beacon CA. @default a new temp folder, removed on close */
  readonly dir?: string;
  readonly logger?: Logger;
  /** Also open the beacon's plain door. @default false */
  readonly plainBeacon?: boolean;
  /** Also start an HA standby of the OpenBao test server (its address is `secretstoreStandbyAddress`). */
  readonly standby?: StandbyOptions;
}

export interface DevStackInfo {
  readonly secretstoreAddress: string;
  /**
   * An HA standby of the same OpenBao (reads lag, writes forwarded or answered 307 to the active node), when asked
   * for: point a CLI, bridge or provider at it to see what they do against a real cluster's standby. Else null.
   */
  readonly secretstoreStandbyAddress: string | null;
  /** The OpenBao test server's root token: the admin's, for inspection only. */
  readonly secretstoreToken: string;
  /** A token with exactly the shipped registrar policy: for `source register`, Terraform and CDKTF. */
  readonly registrarToken: string;
  /** A token with exactly the shipped bridge policy (an AppRole login): for `bridge run`. */
  readonly bridgeToken: string;
  readonly kubeconfig: string;
  readonly kubeSystemUid: string;
  readonly beaconAddress: string;
  /** The dev beacon's Prometheus metrics (`cloudtaser_beacon_*`). */
  readonly beaconMetricsUrl: string;
  readonly beaconCaFile: string;
  /**
   * The beacon client CA (public certificate) the beacon trusts; it is in the dev OpenBao, so `bridge run` mints
   * its beacon client certificate from it with no flag.
   */
  readonly beaconClientCaFile: string;
  /** The broker's trust record ConfigMap (`broker run --trust-record`), which the operator may get and patch. */
  readonly trustRecord: string;
  /**
   * Kubeconfig of the operator's service account (`cloudtaser-system/cloudtaser`) with the least privilege the
   * broker needs: read the kube-system namespace, review tokens, request tokens for itself (attestation), and
   * read and delete Secrets (migration), as the chart grants it.
   */
  readonly operatorKubeconfig: string;
}

export interface DevStack extends DevStackInfo {
  readonly beaconCaPem: string;
  readonly kubeUrl: string;
  readonly kubeAdminToken: string;
  /**
   * Places the operator's Deployment as the chart would (with its status), standing in for the operator the demo
   * runs as a local process, so `target doctor` finds it. The Kubernetes test server serves Deployments read-only.
   */
  placeOperatorDeployment(args: readonly string[]): void;
  close(): Promise<void>;
}

export async function startDevStack(options: DevStackOptions = {}): Promise<DevStack> {
  const logger = options.logger ?? silentLogger;
  const ownsDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'cloudtaser-dev-')));
  await mkdir(dir, { recursive: true });
  const closers: Array<() => Promise<void>> = [];
  try {
    const openbao = await startOpenBaoTestServer({ logger: moduleLogger(logger, 'openbao-test-server') });
    closers.push(() => openbao.close());
    const standby = options.standby ? await openbao.startStandby(options.standby) : undefined;
    if (standby) closers.push(() => standby.close());
    const admin = new OpenBaoClient({ address: openbao.address, token: openbao.rootToken });
    const identities = await provisionIdentities(admin).finally(() => admin.close());
    // It names its own module (kube-test-server); a second key here would duplicate it.
    const kube = await startKubeTestServer({ logger });
    closers.push(() => kube.close());
    const kubeconfig = join(dir, 'kubeconfig');
    await kube.writeKubeconfig(kubeconfig);
    const operator = { namespace: OPERATOR_SERVICE_ACCOUNT.namespace, name: OPERATOR_SERVICE_ACCOUNT.name };
    await kube.createServiceAccount(operator.namespace, operator.name);
    // The trust record, created as the chart does (the broker may read and patch it, never create it: RBAC
    // cannot limit `create` by name).
    const trustRecord = { namespace: operator.namespace, name: DEFAULT_TRUST_RECORD_NAME };
    const kubeAdmin = KubeClient.fromConnection({ kind: 'kubeconfig', path: kubeconfig });
    try {
      await kubeAdmin.createConfigMap(trustRecord.namespace, { metadata: { name: trustRecord.name } });
    } finally {
      kubeAdmin.close();
    }
    // Exactly what the chart grants with attestation and migration on (one table: runtime/kube/permissions.ts).
    const grants = operatorKubeAccess({
      attestation: { namespace: operator.namespace, serviceAccount: operator.name },
      migration: {},
      trustRecord,
    });
    for (const rule of rbacRules(grants)) kube.grant(operator, rule);
    const operatorKubeconfig = join(dir, 'operator-kubeconfig');
    await kube.writeKubeconfig(operatorKubeconfig, {
      context: 'cloudtaser-operator',
      namespace: operator.namespace,
      token: kube.issueServiceAccountToken(operator.namespace, operator.name, { expirationSeconds: 86_400 }),
    });

    const beaconCert = issueSelfSignedSync({
      commonName: 'cloudtaser dev beacon',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
    });
    const beaconCaFile = join(dir, 'beacon-ca.pem');
    await writeFile(beaconCaFile, beaconCert.certPem);
    // Bridges authenticate to the beacon, as in production: the beacon client CA lives in the dev OpenBao.
    const openbaoAdmin = new OpenBaoClient({ address: openbao.address, token: openbao.rootToken });
    const beaconClientCa = await ensureBeaconClientCa(openbaoAdmin).finally(() => openbaoAdmin.close());
    const beaconClientCaFile = join(dir, 'beacon-client-ca.pem');
    await writeFile(beaconClientCaFile, beaconClientCa.certPem);
    const beacon = await createBeacon({
      host: '127.0.0.1',
      port: 0,
      tls: { certPem: beaconCert.certPem, keyPem: beaconCert.keyPem },
      bridgeCaPems: [beaconClientCa.certPem],
      plain: options.plainBeacon ?? false,
      // Its /metrics on a free loopback port: `dev up` prints it, next to where bridge and broker serve theirs.
      metrics: { host: '127.0.0.1', port: 0 },
      logger: moduleLogger(logger, 'beacon'),
    });
    closers.push(() => beacon.close());

    return {
      secretstoreAddress: openbao.address,
      secretstoreStandbyAddress: standby?.address ?? null,
      secretstoreToken: openbao.rootToken,
      registrarToken: identities.registrarToken,
      bridgeToken: identities.bridgeToken,
      kubeconfig,
      operatorKubeconfig,
      kubeSystemUid: kube.kubeSystemUid,
      kubeUrl: kube.url,
      kubeAdminToken: kube.adminToken,
      placeOperatorDeployment: (args) =>
        kube.applyDeployment({
          metadata: { name: 'cloudtaser', namespace: 'cloudtaser-system' },
          spec: {
            replicas: 1,
            template: {
              spec: {
                containers: [
                  {
                    name: 'operator',
                    args: [...args],
                    livenessProbe: { httpGet: { path: '/healthz', port: 'health' } },
                    readinessProbe: { httpGet: { path: '/readyz', port: 'health' } },
                  },
                ],
              },
            },
          },
          status: { replicas: 1, readyReplicas: 1, availableReplicas: 1 },
        }),
      beaconAddress: beacon.address,
      beaconMetricsUrl: `${beacon.metricsUrl}/metrics`,
      beaconCaFile,
      beaconCaPem: beaconCert.certPem,
      beaconClientCaFile,
      trustRecord: `${trustRecord.namespace}/${trustRecord.name}`,
      async close() {
        for (const close of closers.reverse()) await close().catch(() => undefined);
        if (ownsDir) await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    throw err;
  }
}
