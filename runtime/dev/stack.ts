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
import { type Logger, silentLogger } from '../core/log.js';
import { KubeClient } from '../kube/index.js';
import { OpenBaoClient } from '../openbao/index.js';
import { issueSelfSignedSync } from '../pki/index.js';
import {
  ensureBeaconClientCa,
  DEFAULT_OPERATOR_SERVICE_ACCOUNT as OPERATOR_SERVICE_ACCOUNT,
} from '../registration/index.js';
import { startKubeTestServer } from './kube/index.js';
import { startOpenBaoTestServer } from './openbao/index.js';

export interface DevStackOptions {
  /** Folder for the kubeconfig and the beacon CA. @default a new temp folder, removed on close */
  readonly dir?: string;
  readonly logger?: Logger;
  /** Also open the beacon's plain door. @default false */
  readonly plainBeacon?: boolean;
}

export interface DevStackInfo {
  readonly secretstoreAddress: string;
  readonly secretstoreToken: string;
  readonly kubeconfig: string;
  readonly kubeSystemUid: string;
  readonly beaconAddress: string;
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
   * broker needs: read the kube-system namespace, review tokens, and request tokens for itself (attestation).
   */
  readonly operatorKubeconfig: string;
}

export interface DevStack extends DevStackInfo {
  readonly beaconCaPem: string;
  readonly kubeUrl: string;
  readonly kubeAdminToken: string;
  close(): Promise<void>;
}

export async function startDevStack(options: DevStackOptions = {}): Promise<DevStack> {
  const logger = options.logger ?? silentLogger;
  const ownsDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'cloudtaser-dev-')));
  await mkdir(dir, { recursive: true });
  const closers: Array<() => Promise<void>> = [];
  try {
    const openbao = await startOpenBaoTestServer({ logger: logger.child({ component: 'dev-openbao' }) });
    closers.push(() => openbao.close());
    const kube = await startKubeTestServer({ logger: logger.child({ component: 'dev-kube' }) });
    closers.push(() => kube.close());
    const kubeconfig = join(dir, 'kubeconfig');
    await kube.writeKubeconfig(kubeconfig);
    const operator = { namespace: OPERATOR_SERVICE_ACCOUNT.namespace, name: OPERATOR_SERVICE_ACCOUNT.name };
    await kube.createServiceAccount(operator.namespace, operator.name);
    kube.grant(operator, { verbs: ['get'], resources: ['namespaces'], resourceNames: ['kube-system'] });
    kube.grant(operator, {
      verbs: ['create'],
      resources: ['tokenreviews'],
      apiGroups: ['authentication.k8s.io'],
    });
    kube.grant(operator, {
      verbs: ['create'],
      resources: ['serviceaccounts/token'],
      resourceNames: [operator.name],
      namespace: operator.namespace,
    });
    // The trust record, created as the chart does; the operator may read and patch exactly this one ConfigMap
    // (RBAC cannot limit `create` by name, so the broker never needs it).
    const trustRecord = { namespace: operator.namespace, name: DEFAULT_TRUST_RECORD_NAME };
    const admin = KubeClient.fromConnection({ kind: 'kubeconfig', path: kubeconfig });
    try {
      await admin.createConfigMap(trustRecord.namespace, { metadata: { name: trustRecord.name } });
    } finally {
      admin.close();
    }
    kube.grant(operator, {
      verbs: ['get', 'patch'],
      resources: ['configmaps'],
      resourceNames: [trustRecord.name],
      namespace: trustRecord.namespace,
    });
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
      metrics: false,
      logger: logger.child({ component: 'dev-beacon' }),
    });
    closers.push(() => beacon.close());

    return {
      secretstoreAddress: openbao.address,
      secretstoreToken: openbao.rootToken,
      kubeconfig,
      operatorKubeconfig,
      kubeSystemUid: kube.kubeSystemUid,
      kubeUrl: kube.url,
      kubeAdminToken: kube.adminToken,
      beaconAddress: beacon.address,
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
