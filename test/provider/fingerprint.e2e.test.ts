/**
 * data.cloudtaser_cluster_fingerprint with the real terraform binary against the Kubernetes test server:
 * kubeconfig, host + token, and exec connections; a deferred read; a readable error for a bad token.
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCloudtaserProvider } from '../../provider/cloudtaser.js';
import { type ProviderServerHandle, startProviderServer } from '../../provider/framework/serve-provider.js';
import { silentProviderLogger } from '../../provider/wire/hclog.js';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { getClusterStatus, registerCluster } from '../../runtime/registration/index.js';
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

  describe('attested bootstrap', () => {
    let admin: OpenBaoClient;
    const status = () => getClusterStatus(admin, { fingerprint: kube.kubeSystemUid });
    const rotatedKey = () => {
      const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
      return { kty: 'EC', kid: 'rotated', crv: 'P-256', alg: 'ES256', use: 'sig', x: jwk.x, y: jwk.y };
    };
    const registrationTf = (jwks: string, extra = '') => `${HEADER}
provider "cloudtaser" { secretstore_address = "${openbao.address}" }
data "cloudtaser_cluster_fingerprint" "this" {
  host                   = "${kube.url}"
  token                  = "${kube.adminToken}"
  cluster_ca_certificate = file("\${path.module}/ca.pem")
}
resource "cloudtaser_cluster_registration" "this" {
  fingerprint        = data.cloudtaser_cluster_fingerprint.this.fingerprint
  attestation_issuer = data.cloudtaser_cluster_fingerprint.this.service_account_issuer
  attestation_jwks   = ${jwks}
${extra}}
output "fingerprint" { value = data.cloudtaser_cluster_fingerprint.this.fingerprint }
output "attested" { value = cloudtaser_cluster_registration.this.attested }
output "jwks" { value = data.cloudtaser_cluster_fingerprint.this.service_account_jwks }
`;
    const fromDataSource = 'data.cloudtaser_cluster_fingerprint.this.service_account_jwks';
    let servedKeys: { keys: Record<string, unknown>[] };

    beforeAll(() => {
      admin = new OpenBaoClient({ address: openbao.address, token: openbao.rootToken });
    });
    afterAll(async () => {
      const destroyed = await ws.run(['destroy', '-auto-approve', '-no-color']);
      expect(destroyed.code, destroyed.stdout + destroyed.stderr).toBe(0);
      await admin?.close();
    });

    it('registers with the issuer and keys the data source read, and the OpenBao record holds them', async () => {
      ws.write('main.tf', registrationTf(fromDataSource));
      const r = await ws.run(['apply', '-auto-approve', '-no-color']);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const out = JSON.parse((await ws.run(['output', '-json'])).stdout);
      expect(out.attested.value).toBe(true);
      servedKeys = JSON.parse(out.jwks.value);
      const s = await status();
      expect(s.attestation?.issuer).toBe(kube.issuer);
      expect(s.attestation?.serviceAccount).toEqual({ namespace: 'cloudtaser-system', name: 'cloudtaser' });
      expect(s.attestation?.jwks.keys.map((k) => k.kid)).toEqual(servedKeys.keys.map((k) => k.kid));
      expect(s.attestation?.jwks.keys[0].x).toBe(servedKeys.keys[0].x);
      const again = await ws.run(['plan', '-detailed-exitcode', '-no-color']);
      expect(again.code, again.stdout + again.stderr).toBe(0);
    });

    it('updates the keys in place when the JWKS changes (key rotation is a plain apply)', async () => {
      const before = await status();
      ws.write('jwks.json', JSON.stringify({ keys: [...servedKeys.keys, rotatedKey()] }));
      ws.write('main.tf', registrationTf(`file("\${path.module}/jwks.json")`));
      const plan = await ws.run(['plan', '-no-color']);
      expect(plan.code, plan.stderr).toBe(0);
      expect(plan.stdout).toContain('will be updated in-place');
      expect(plan.stdout).toContain('0 to add, 1 to change, 0 to destroy');
      const r = await ws.run(['apply', '-auto-approve', '-no-color']);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const after = await status();
      expect(after.attestation?.jwks.keys.map((k) => k.kid)).toEqual([servedKeys.keys[0].kid, 'rotated']);
      expect(after.operationalHash).toBe(before.operationalHash);
      expect(after.registeredAt).toBe(before.registeredAt);
    });

    it('shows keys changed outside terraform as drift and puts the configured ones back', async () => {
      await registerCluster(admin, {
        fingerprint: kube.kubeSystemUid,
        attestation: { issuer: kube.issuer, jwks: servedKeys },
      });
      const plan = await ws.run(['plan', '-detailed-exitcode', '-no-color']);
      expect(plan.code, plan.stdout + plan.stderr).toBe(2);
      expect(plan.stdout).toContain('0 to add, 1 to change, 0 to destroy');
      expect((await ws.run(['apply', '-auto-approve', '-no-color'])).code).toBe(0);
      expect((await status()).attestation?.jwks.keys).toHaveLength(2);
    });

    it('refuses at plan time a JWKS without a usable public key, pointing at the attribute', async () => {
      ws.write(
        'main.tf',
        registrationTf(
          'jsonencode({ keys = [{ kty = "OKP", crv = "Ed25519", x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" }] })',
        ),
      );
      const r = await ws.run(['plan', '-no-color']);
      expect(r.code).toBe(1);
      expect(r.stderr.match(/Error: /g)).toHaveLength(1);
      expect(r.stderr).toContain('attestation_jwks');
      expect(r.stderr).toContain('no usable RSA or EC public key');
      // A symmetric key is secret material: refused as such, so it never reaches the plan or the state.
      ws.write(
        'main.tf',
        registrationTf('jsonencode({ keys = [{ kty = "oct", kid = "s", k = "c2VjcmV0" }] })'),
      );
      const symmetric = await ws.run(['plan', '-no-color']);
      expect(symmetric.code).toBe(1);
      expect(symmetric.stderr).toMatch(/private key \(key "s" has private members/);
    });

    it('keeps the stored attestation when the settings leave the configuration, as the CLI does', async () => {
      ws.write(
        'main.tf',
        registrationTf(fromDataSource).replace(/ {2}attestation_(issuer|jwks) += .*\n/g, ''),
      );
      const r = await ws.run(['plan', '-detailed-exitcode', '-no-color']);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect((await status()).attestation).toBeDefined();
      const out = await ws.run(['apply', '-auto-approve', '-no-color']);
      expect(out.code, out.stdout + out.stderr).toBe(0);
      expect(JSON.parse((await ws.run(['output', '-json'])).stdout).attested.value).toBe(true);
    });
  });

  it('leaves the issuer keys null with a warning when the cluster forbids discovery, and still reads the fingerprint', async () => {
    const uid = '3a0c6f6e-2b1d-4c5e-8f70-1a2b3c4d5e6f';
    const server: Server = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      if (req.url === '/api/v1/namespaces/kube-system') {
        res.end(JSON.stringify({ metadata: { name: 'kube-system', uid, resourceVersion: '1' } }));
        return;
      }
      res.statusCode = 403;
      res.end(JSON.stringify({ kind: 'Status', reason: 'Forbidden', message: `forbidden: ${req.url}` }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      // Plain HTTP needs an explicit insecure-skip-tls-verify, which only a kubeconfig can say.
      ws.write(
        'forbidding.kubeconfig',
        `apiVersion: v1
kind: Config
clusters: [{ name: c, cluster: { server: "http://127.0.0.1:${port}", insecure-skip-tls-verify: true } }]
users: [{ name: u, user: { token: some-token } }]
contexts: [{ name: x, context: { cluster: c, user: u } }]
current-context: x
`,
      );
      ws.write(
        'main.tf',
        `${HEADER}
data "cloudtaser_cluster_fingerprint" "this" {
  kubeconfig_path = abspath("\${path.module}/forbidding.kubeconfig")
}
output "fingerprint" { value = data.cloudtaser_cluster_fingerprint.this.fingerprint }
output "issuer" { value = coalesce(data.cloudtaser_cluster_fingerprint.this.service_account_issuer, "none") }
`,
      );
      const r = await ws.run(['apply', '-auto-approve', '-no-color']);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout + r.stderr).toContain('Warning: Service-account issuer keys not readable');
      expect(r.stdout + r.stderr).toContain('system:service-account-issuer-discovery');
      const out = JSON.parse((await ws.run(['output', '-json'])).stdout);
      expect(out.fingerprint.value).toBe(uid);
      expect(out.issuer.value).toBe('none');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
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
    expect(r.stderr.match(/Error: /g), r.stderr).toHaveLength(1);
    expect(r.stderr).toContain('CT_KUBE_UNAUTHORIZED');
    expect(r.stderr).toContain('host');
    expect(r.stderr).not.toContain('wrong-token');
  });
});
