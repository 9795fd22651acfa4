/**
 * data.cloudtaser_cluster_fingerprint with the real terraform binary against the Kubernetes test server:
 * kubeconfig, host + token, and exec connections; a deferred read; a readable error for a bad token.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCloudtaserProvider } from '../../provider/cloudtaser.js';
import { type ProviderServerHandle, startProviderServer } from '../../provider/framework/serve-provider.js';
import { silentProviderLogger } from '../../provider/wire/hclog.js';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { getClusterStatus } from '../../runtime/registration/index.js';
import { createWorkspace, type TerraformWorkspace } from './support/terraform.js';

const HEADER = `terraform {
  required_providers {
    cloudtaser = { source = "registry.terraform.io/cloudtaser/cloudtaser" }
  }
}
`;

describe('data.cloudtaser_cluster_fingerprint with the real terraform binary', () => {
  let kube: KubeTestServer;
  let openbao: OpenBaoTestServer;
  let provider: ProviderServerHandle;
  let ws: TerraformWorkspace;

  beforeAll(async () => {
    kube = await startKubeTestServer();
    openbao = await startOpenBaoTestServer();
    provider = await startProviderServer(
      createCloudtaserProvider({ env: { CLOUDTASER_SECRETSTORE_TOKEN: openbao.rootToken } }),
      {
        logger: silentProviderLogger,
      },
    );
    ws = createWorkspace({ env: provider.reattachEnv });
    writeFileSync(join(ws.dir, 'ca.pem'), kube.caCertPem ?? '');
  }, 30_000);

  afterAll(async () => {
    await provider?.close();
    await kube?.close();
    await openbao?.close();
    ws?.dispose();
  });

  const fingerprintOutput = async () =>
    JSON.parse((await ws.run(['output', '-json'])).stdout).fingerprint?.value;

  it('reads the fingerprint from a kubeconfig and registers the cluster with it', async () => {
    await kube.writeKubeconfig(join(ws.dir, 'kubeconfig'));
    ws.write(
      'main.tf',
      `${HEADER}
provider "cloudtaser" { secretstore_address = "${openbao.address}" }
data "cloudtaser_cluster_fingerprint" "this" { kubeconfig_path = abspath("\${path.module}/kubeconfig") }
resource "cloudtaser_cluster_registration" "this" { fingerprint = data.cloudtaser_cluster_fingerprint.this.fingerprint }
output "fingerprint" { value = data.cloudtaser_cluster_fingerprint.this.fingerprint }
`,
    );
    const r = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await fingerprintOutput()).toBe(kube.kubeSystemUid);
    const admin = new OpenBaoClient({ address: openbao.address, token: openbao.rootToken });
    expect((await getClusterStatus(admin, { fingerprint: kube.kubeSystemUid })).registered).toBe(true);
    expect((await ws.run(['destroy', '-auto-approve', '-no-color'])).code).toBe(0);
    await admin.close();
  });

  it('reads it with host + token + cluster_ca_certificate', async () => {
    ws.write(
      'main.tf',
      `${HEADER}
data "cloudtaser_cluster_fingerprint" "this" {
  host                   = "${kube.url}"
  token                  = "${kube.adminToken}"
  cluster_ca_certificate = file("\${path.module}/ca.pem")
}
output "fingerprint" { value = data.cloudtaser_cluster_fingerprint.this.fingerprint }
`,
    );
    const r = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await fingerprintOutput()).toBe(kube.kubeSystemUid);
  });

  it('reads it with an exec credential plugin', async () => {
    const plugin = join(ws.dir, 'cred.cjs');
    writeFileSync(
      plugin,
      `process.stdout.write(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1beta1', kind: 'ExecCredential', status: { token: process.env.CT_TOKEN } }));\n`,
    );
    ws.write(
      'main.tf',
      `${HEADER}
data "cloudtaser_cluster_fingerprint" "this" {
  host                   = "${kube.url}"
  cluster_ca_certificate = file("\${path.module}/ca.pem")
  exec {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "${process.execPath}"
    args        = ["${plugin}"]
    env         = { CT_TOKEN = "${kube.adminToken}" }
  }
}
output "fingerprint" { value = data.cloudtaser_cluster_fingerprint.this.fingerprint }
`,
    );
    const r = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await fingerprintOutput()).toBe(kube.kubeSystemUid);
  });

  it('defers the read to apply when an input is unknown at plan time', async () => {
    ws.write(
      'main.tf',
      `${HEADER}
resource "terraform_data" "endpoint" { input = "${kube.url}" }
data "cloudtaser_cluster_fingerprint" "this" {
  host                   = terraform_data.endpoint.output
  token                  = "${kube.adminToken}"
  cluster_ca_certificate = file("\${path.module}/ca.pem")
}
output "fingerprint" { value = data.cloudtaser_cluster_fingerprint.this.fingerprint }
`,
    );
    const plan = await ws.run(['plan', '-no-color']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain('will be read during apply');
    const r = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await fingerprintOutput()).toBe(kube.kubeSystemUid);
    expect((await ws.run(['destroy', '-auto-approve', '-no-color'])).code).toBe(0);
  });

  it('reports a rejected token once, pointing at host', async () => {
    ws.write(
      'main.tf',
      `${HEADER}
data "cloudtaser_cluster_fingerprint" "this" {
  host                   = "${kube.url}"
  token                  = "wrong-token"
  cluster_ca_certificate = file("\${path.module}/ca.pem")
}
`,
    );
    const r = await ws.run(['plan', '-no-color']);
    expect(r.code).toBe(1);
    expect(r.stderr.match(/Error: /g)).toHaveLength(1);
    expect(r.stderr).toContain('CT_KUBE_UNAUTHORIZED');
    expect(r.stderr).toContain('host');
    expect(r.stderr).not.toContain('wrong-token');
  });
});
