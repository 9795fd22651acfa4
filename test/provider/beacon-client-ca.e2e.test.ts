/**
 * `cloudtaser_beacon_client_ca` with the real terraform binary against the OpenBao test server: creates the CA
 * once (or adopts the one `cloudtaser-cli source beacon-ca` made), keeps only the public certificate in state,
 * plans no changes after apply, and leaves the CA in OpenBao on destroy (bridges keep their identity).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCloudtaserProvider } from '../../provider/cloudtaser.js';
import { type ProviderServerHandle, startProviderServer } from '../../provider/framework/serve-provider.js';
import { silentProviderLogger } from '../../provider/wire/hclog.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { ensureBeaconClientCa, readBeaconClientCaCertificate } from '../../runtime/registration/index.js';
import { createWorkspace, type TerraformWorkspace } from './support/terraform.js';

describe('cloudtaser_beacon_client_ca with the real terraform binary', () => {
  let openbao: OpenBaoTestServer;
  let provider: ProviderServerHandle;
  let ws: TerraformWorkspace;
  let admin: OpenBaoClient;

  beforeAll(async () => {
    openbao = await startOpenBaoTestServer();
    admin = new OpenBaoClient({ address: openbao.address, token: openbao.rootToken });
    provider = await startProviderServer(
      createCloudtaserProvider({ env: { CLOUDTASER_SECRETSTORE_TOKEN: openbao.rootToken } }),
      { logger: silentProviderLogger },
    );
    ws = createWorkspace({ env: provider.reattachEnv });
    ws.write(
      'main.tf',
      `
terraform {
  required_providers {
    cloudtaser = { source = "registry.terraform.io/cloudtaser/cloudtaser" }
  }
}
provider "cloudtaser" {
  secretstore_address = "${openbao.address}"
}
resource "cloudtaser_beacon_client_ca" "this" {}
output "ca_cert_pem" { value = cloudtaser_beacon_client_ca.this.ca_cert_pem }
output "ca_sha256" { value = cloudtaser_beacon_client_ca.this.ca_sha256 }
`,
    );
  }, 30_000);

  afterAll(async () => {
    await provider?.close();
    await admin?.close();
    await openbao?.close();
    ws?.dispose();
  });

  it('creates the CA in OpenBao and keeps only its certificate and hash in state', async () => {
    const apply = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(apply.code, apply.stderr).toBe(0);
    const stored = await readBeaconClientCaCertificate(admin);
    const outputs = JSON.parse((await ws.run(['output', '-json'])).stdout) as Record<
      string,
      { value: string }
    >;
    expect(outputs.ca_sha256.value).toBe(stored?.sha256);
    expect(outputs.ca_cert_pem.value).toBe(stored?.certPem);
    const state = readFileSync(join(ws.dir, 'terraform.tfstate'), 'utf8');
    expect(state).toContain('BEGIN CERTIFICATE');
    expect(state).not.toMatch(/PRIVATE KEY/);
    expect(state).not.toContain(openbao.rootToken);
    const attributes = JSON.parse(state).resources[0].instances[0].attributes;
    expect(Object.keys(attributes).sort()).toEqual(['ca_cert_pem', 'ca_sha256', 'id']);
  });

  it('plans no changes on a second plan, and the CLI sees the same CA', async () => {
    const plan = await ws.run(['plan', '-detailed-exitcode', '-no-color']);
    expect(plan.code, plan.stdout + plan.stderr).toBe(0);
    const again = await ensureBeaconClientCa(admin);
    expect(again.created).toBe(false);
  });

  it('leaves the CA in OpenBao on destroy, and adopts it on the next apply', async () => {
    const before = await readBeaconClientCaCertificate(admin);
    const destroy = await ws.run(['destroy', '-auto-approve', '-no-color']);
    expect(destroy.code, destroy.stderr).toBe(0);
    expect((await readBeaconClientCaCertificate(admin))?.sha256).toBe(before?.sha256);
    const apply = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(apply.code, apply.stderr).toBe(0);
    const outputs = JSON.parse((await ws.run(['output', '-json'])).stdout) as Record<
      string,
      { value: string }
    >;
    expect(outputs.ca_sha256.value).toBe(before?.sha256);
  });
});
