/**
 * cloudtaser_beacon_client_ca when the provider's OpenBao address is only known during apply: the resource keeps
 * its stored CA and warns, as cloudtaser_cluster_registration does (provider-config.ts promises it for every
 * resource). Before the fix the whole plan failed with CT_PROVIDER_CONFIG_UNKNOWN. Found by an adversarial review.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCloudtaserProvider } from '../../provider/cloudtaser.js';
import { type ProviderServerHandle, startProviderServer } from '../../provider/framework/serve-provider.js';
import { silentProviderLogger } from '../../provider/wire/hclog.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { createWorkspace, type TerraformWorkspace } from './support/terraform.js';

const HEADER = `terraform {
  required_providers {
    cloudtaser = { source = "registry.terraform.io/cloudtaser/cloudtaser" }
  }
}
`;

describe('cloudtaser_beacon_client_ca with provider arguments known only during apply', () => {
  let openbao: OpenBaoTestServer;
  let provider: ProviderServerHandle;
  let ws: TerraformWorkspace;

  beforeAll(async () => {
    openbao = await startOpenBaoTestServer();
    provider = await startProviderServer(
      createCloudtaserProvider({ env: { CLOUDTASER_SECRETSTORE_TOKEN: openbao.rootToken } }),
      { logger: silentProviderLogger },
    );
    ws = createWorkspace({ env: provider.reattachEnv });
  }, 60_000);
  afterAll(async () => {
    await provider?.close();
    await openbao?.close();
    ws?.dispose();
  });

  it('plans (keeping the stored CA) instead of failing', async () => {
    ws.write(
      'main.tf',
      `${HEADER}provider "cloudtaser" { secretstore_address = "${openbao.address}" }
resource "cloudtaser_beacon_client_ca" "this" {}
`,
    );
    const first = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    ws.write(
      'main.tf',
      `${HEADER}resource "terraform_data" "next" { input = "${openbao.address}" }
provider "cloudtaser" { secretstore_address = terraform_data.next.output }
resource "cloudtaser_beacon_client_ca" "this" {}
resource "cloudtaser_cluster_registration" "r" { fingerprint = "d1b2c3d4-0000-4000-8000-000000000004" }
`,
    );
    const plan = await ws.run(['plan', '-no-color']);
    expect(plan.code, plan.stdout + plan.stderr).toBe(0);
  });
});
