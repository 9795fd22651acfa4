/**
 * adopt_existing = true on a registration the CLI made with attestation, from a configuration without attestation
 * settings: registerCluster keeps the stored attestation (as documented), so `attested` is known only after apply.
 * Before the fix the plan said false and apply failed with "Provider produced inconsistent result after apply".
 * Found by an adversarial review of the provider.
 */
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCloudtaserProvider } from '../../provider/cloudtaser.js';
import { type ProviderServerHandle, startProviderServer } from '../../provider/framework/serve-provider.js';
import { silentProviderLogger } from '../../provider/wire/hclog.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { registerCluster } from '../../runtime/registration/index.js';
import { createWorkspace, type TerraformWorkspace } from './support/terraform.js';

const FP = 'f1b2c3d4-0000-4000-8000-000000000006';

describe('adopt_existing on an attested registration', () => {
  let openbao: OpenBaoTestServer;
  let admin: OpenBaoClient;
  let provider: ProviderServerHandle;
  let ws: TerraformWorkspace;
  beforeAll(async () => {
    openbao = await startOpenBaoTestServer();
    admin = new OpenBaoClient({ address: openbao.address, token: openbao.rootToken });
    provider = await startProviderServer(
      createCloudtaserProvider({ env: { CLOUDTASER_SECRETSTORE_TOKEN: openbao.rootToken } }),
      { logger: silentProviderLogger },
    );
    ws = createWorkspace({ env: provider.reattachEnv });
  }, 60_000);
  afterAll(async () => {
    await provider?.close();
    await admin?.close();
    await openbao?.close();
    ws?.dispose();
  });

  it('adopts it without "Provider produced inconsistent result after apply"', async () => {
    const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
    await registerCluster(admin, {
      fingerprint: FP,
      attestation: { issuer: 'https://kubernetes.default.svc', jwks: { keys: [{ kid: 'k', ...jwk }] } },
    });
    ws.write(
      'main.tf',
      `terraform {
  required_providers {
    cloudtaser = { source = "registry.terraform.io/cloudtaser/cloudtaser" }
  }
}
provider "cloudtaser" { secretstore_address = "${openbao.address}" }
resource "cloudtaser_cluster_registration" "r" {
  fingerprint    = "${FP}"
  adopt_existing = true
}
`,
    );
    const apply = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    const again = await ws.run(['plan', '-detailed-exitcode', '-no-color']);
    expect(again.code, again.stdout + again.stderr).toBe(0);
  });
});
