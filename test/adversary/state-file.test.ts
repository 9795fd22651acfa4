/**
 * Adversary: someone who can read a Terraform state file (a CI artifact, a shared backend, a laptop backup)
 * must not find a Kubernetes credential in it. Drives the real terraform binary against the Kubernetes test
 * server with the fingerprint data source in host + token mode (the mode that leaked the token), with an exec
 * credential plugin whose arguments and environment carry a secret, and with the credential in the
 * provider's `kubernetes` block fed from an ephemeral variable, then greps every file terraform leaves behind.
 *
 * On the code before this change the host + token case fails: the data source copied its whole
 * configuration, token included, into terraform.tfstate.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCloudtaserProvider } from '../../provider/cloudtaser.js';
import { type ProviderServerHandle, startProviderServer } from '../../provider/framework/serve-provider.js';
import { silentProviderLogger } from '../../provider/wire/hclog.js';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { createWorkspace, type TerraformWorkspace } from '../provider/support/terraform.js';

const HEADER = `terraform {
  required_providers {
    cloudtaser = { source = "registry.terraform.io/cloudtaser/cloudtaser" }
  }
}
`;

/** Every file under dir (state, backups, .terraform), as text, for a plain grep. */
function everyFile(dir: string): { path: string; text: string }[] {
  const out: { path: string; text: string }[] = [];
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) out.push(...everyFile(full));
    else out.push({ path: full, text: readFileSync(full, 'latin1') });
  }
  return out;
}

describe('adversary: a reader of terraform.tfstate finds no Kubernetes credential', () => {
  let kube: KubeTestServer;
  let provider: ProviderServerHandle;
  let ws: TerraformWorkspace;

  beforeAll(async () => {
    kube = await startKubeTestServer();
    provider = await startProviderServer(createCloudtaserProvider({ env: {} }), {
      logger: silentProviderLogger,
    });
    ws = createWorkspace({ env: provider.reattachEnv });
    ws.write('ca.pem', kube.caCertPem ?? '');
  }, 30_000);
  afterAll(async () => {
    await provider?.close();
    await kube?.close();
    ws?.dispose();
  });

  const leaks = (secret: string) =>
    everyFile(ws.dir)
      .filter((file) => file.text.includes(secret))
      .map((file) => file.path.slice(ws.dir.length + 1));

  it('host + token: the token is not in the state, the fingerprint is, and a re-plan is clean', async () => {
    ws.write(
      'main.tf',
      `${HEADER}
variable "k8s_token" {
  type      = string
  sensitive = true
}
data "cloudtaser_cluster_fingerprint" "this" {
  host                   = "${kube.url}"
  token                  = var.k8s_token
  cluster_ca_certificate = file("\${path.module}/ca.pem")
}
output "fingerprint" { value = data.cloudtaser_cluster_fingerprint.this.fingerprint }
`,
    );
    // Through a variable, as a token from another resource or the environment arrives (never in *.tf).
    const vars = { TF_VAR_k8s_token: kube.adminToken };
    const apply = await ws.run(['apply', '-auto-approve', '-no-color'], vars);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    const state = readFileSync(join(ws.dir, 'terraform.tfstate'), 'utf8');
    expect(state).toContain(kube.kubeSystemUid);
    expect(leaks(kube.adminToken)).toEqual([]);
    const attributes = JSON.parse(state).resources[0].instances[0].attributes;
    expect(attributes.token).toBeNull();
    expect(attributes.host).toBe(kube.url);
    // Terraform accepts a data source result without the configured token and plans nothing for it.
    const plan = await ws.run(['plan', '-no-color', '-detailed-exitcode'], vars);
    expect(plan.code, plan.stdout + plan.stderr).toBe(0);
  });

  it('exec: a secret in the plugin arguments or environment is not in the state', async () => {
    const plugin = join(ws.dir, 'cred.cjs');
    ws.write(
      'cred.cjs',
      `process.stdout.write(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1beta1', kind: 'ExecCredential', status: { token: process.env.CT_TOKEN } }));\n`,
    );
    const argSecret = 'arg-secret-4f1d9a7c2e';
    ws.write(
      'main.tf',
      `${HEADER}
variable "k8s_token" {
  type      = string
  sensitive = true
}
variable "arg_secret" {
  type      = string
  sensitive = true
}
data "cloudtaser_cluster_fingerprint" "this" {
  host                   = "${kube.url}"
  cluster_ca_certificate = file("\${path.module}/ca.pem")
  exec {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "${process.execPath}"
    args        = ["${plugin}", "--token=\${var.arg_secret}"]
    env         = { CT_TOKEN = var.k8s_token }
  }
}
output "fingerprint" { value = data.cloudtaser_cluster_fingerprint.this.fingerprint }
`,
    );
    const vars = { TF_VAR_k8s_token: kube.adminToken, TF_VAR_arg_secret: argSecret };
    const apply = await ws.run(['apply', '-auto-approve', '-no-color'], vars);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(JSON.parse((await ws.run(['output', '-json'])).stdout).fingerprint.value).toBe(kube.kubeSystemUid);
    expect(leaks(kube.adminToken)).toEqual([]);
    expect(leaks(argSecret)).toEqual([]);
    const plan = await ws.run(['plan', '-no-color', '-detailed-exitcode'], vars);
    expect(plan.code, plan.stdout + plan.stderr).toBe(0);
  });

  it('provider kubernetes block with an ephemeral variable: the token is in no state, plan file or output', async () => {
    ws.write(
      'main.tf',
      `${HEADER}
variable "k8s_token" {
  type      = string
  sensitive = true
  ephemeral = true
}
provider "cloudtaser" {
  kubernetes {
    host                   = "${kube.url}"
    token                  = var.k8s_token
    cluster_ca_certificate = file("\${path.module}/ca.pem")
  }
}
data "cloudtaser_cluster_fingerprint" "this" {}
output "fingerprint" { value = data.cloudtaser_cluster_fingerprint.this.fingerprint }
`,
    );
    const vars = { TF_VAR_k8s_token: kube.adminToken };
    const plan = await ws.run(['plan', '-no-color', '-out', 'saved.plan'], vars);
    expect(plan.code, plan.stdout + plan.stderr).toBe(0);
    const shown = await ws.run(['show', '-json', 'saved.plan']);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).not.toContain(kube.adminToken);
    const apply = await ws.run(['apply', '-no-color', 'saved.plan'], vars);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(JSON.parse((await ws.run(['output', '-json'])).stdout).fingerprint.value).toBe(kube.kubeSystemUid);
    expect(leaks(kube.adminToken)).toEqual([]);
    const again = await ws.run(['plan', '-no-color', '-detailed-exitcode'], vars);
    expect(again.code, again.stdout + again.stderr).toBe(0);
  });
});
