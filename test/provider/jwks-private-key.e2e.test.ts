/**
 * attestation_jwks is public material only and not sensitive: a JWKS that also carries a private key is refused at
 * plan, naming the key. Before the fix it passed (OpenBao got only the public keys) while the private "d" was shown
 * in the plan and written to terraform.tfstate. Found by an adversarial review of the provider.
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCloudtaserProvider } from '../../provider/cloudtaser.js';
import { type ProviderServerHandle, startProviderServer } from '../../provider/framework/serve-provider.js';
import { silentProviderLogger } from '../../provider/wire/hclog.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { createWorkspace, type TerraformWorkspace } from './support/terraform.js';

const FP = 'e1b2c3d4-0000-4000-8000-000000000005';

describe('attestation_jwks with a private key in it', () => {
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

  it('is refused at plan instead of landing in state', async () => {
    const pub = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
    const priv = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
    const jwks = {
      keys: [
        { kid: 'pub', ...pub },
        { kid: 'signing', ...priv },
      ],
    };
    ws.write('jwks.json', JSON.stringify(jwks));
    ws.write(
      'main.tf',
      `terraform {
  required_providers {
    cloudtaser = { source = "registry.terraform.io/cloudtaser/cloudtaser" }
  }
}
provider "cloudtaser" { secretstore_address = "${openbao.address}" }
resource "cloudtaser_cluster_registration" "r" {
  fingerprint        = "${FP}"
  attestation_issuer = "https://kubernetes.default.svc.cluster.local"
  attestation_jwks   = file("\${path.module}/jwks.json")
}
`,
    );
    const apply = await ws.run(['apply', '-auto-approve', '-no-color']);
    const leakedInPlan = apply.stdout.includes(String(priv.d));
    let leakedInState = false;
    try {
      leakedInState = readFileSync(join(ws.dir, 'terraform.tfstate'), 'utf8').includes(String(priv.d));
    } catch {
      // no state: refused
    }
    expect({ leakedInPlan, leakedInState }).toEqual({ leakedInPlan: false, leakedInState: false });
    expect(apply.code).not.toBe(0);
    expect(apply.stderr).toMatch(/private key \(key "signing" has private members/);
  });
});
