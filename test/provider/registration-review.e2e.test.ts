/**
 * The provider as a platform engineer meets it, with the real terraform binary: cases found by an adversarial
 * review of the provider, each failing before its fix.
 *   - adopt_existing on a registration the CLI made with attestation: registerCluster keeps the stored attestation,
 *     so `attested` is known only after apply ("Provider produced inconsistent result after apply" before);
 *   - a JWKS that also holds a private key is refused at plan, naming the key (its "d" landed in the plan and
 *     terraform.tfstate before, while OpenBao got only the public key);
 *   - cloudtaser_beacon_client_ca with provider arguments known only during apply keeps its stored CA and warns,
 *     as the registration does (the whole plan failed with CT_PROVIDER_CONFIG_UNKNOWN before);
 *   - attestation turned on for an existing registration with an issuer known only at apply: "Provider produced
 *     inconsistent final plan" (attested and the default account stayed known at plan time);
 *   - a TokenReview endpoint set outside Terraform: refresh kept the state's (after an import, the default), so an
 *     unrelated in-place update silently re-pointed the cluster's Kubernetes auth, with no line in the plan.
 * Known and left: after an import, a JWKS written with other whitespace than OpenBao's canonical form plans a
 * whitespace-only update (the apply changes nothing).
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { getClusterStatus, registerCluster } from '../../runtime/registration/index.js';
import { CLOUDTASER_TERRAFORM_HEADER, useProviderAgainstOpenBao } from './support/openbao-provider.js';

const FP_A = 'a1b2c3d4-0000-4000-8000-000000000001';
const FP_B = 'b1b2c3d4-0000-4000-8000-000000000002';
const FP_ADOPT = 'f1b2c3d4-0000-4000-8000-000000000006';
const FP_JWKS = 'e1b2c3d4-0000-4000-8000-000000000005';
const ISSUER = 'https://kubernetes.default.svc.cluster.local';
const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
const JWKS_OBJ = { keys: [{ kid: 'k1', alg: 'ES256', use: 'sig', ...jwk }] };

describe('the cloudtaser provider: cases from an adversarial review', () => {
  const bao = useProviderAgainstOpenBao();
  const workspace = () => bao.workspace();
  const kubernetesHost = async (fp: string) => {
    const r = await bao.admin
      .withNamespace(`cloudtaser/${fp.slice(0, 8)}`)
      .request<{ data?: Record<string, unknown> }>('GET', 'auth/kubernetes/config', { allow404: true });
    return r.body?.data?.kubernetes_host;
  };

  it('turns attestation on for an existing registration when the issuer is only known at apply', async () => {
    const ws = workspace();
    const base = `${CLOUDTASER_TERRAFORM_HEADER}provider "cloudtaser" { secretstore_address = "${bao.openbao.address}" }\n`;
    ws.write(
      'main.tf',
      `${base}resource "cloudtaser_cluster_registration" "r" { fingerprint = "${FP_A}" }\n`,
    );
    const first = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    // The issuer and keys now come from something created in the same run (as with a data source that
    // depends on a cluster being changed): unknown during plan.
    ws.write(
      'main.tf',
      `${base}
resource "terraform_data" "oidc" {
  input = { issuer = "${ISSUER}", jwks = ${JSON.stringify(JSON.stringify(JWKS_OBJ))} }
}
resource "cloudtaser_cluster_registration" "r" {
  fingerprint        = "${FP_A}"
  attestation_issuer = terraform_data.oidc.output.issuer
  attestation_jwks   = terraform_data.oidc.output.jwks
}
`,
    );
    const apply = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(apply.stdout + apply.stderr).not.toContain('inconsistent');
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect((await getClusterStatus(bao.admin, { fingerprint: FP_A })).attestation).toBeDefined();
  });

  it('shows a changed TokenReview endpoint before an unrelated in-place update rewrites it', async () => {
    // Registered outside Terraform (CLI) with a custom endpoint, then imported.
    const custom = 'https://bridge.example.internal:9444';
    await registerCluster(bao.admin, { fingerprint: FP_B, tokenReviewEndpoint: custom });
    expect(await kubernetesHost(FP_B)).toBe(`${custom}/clusters/${FP_B}`);
    const ws = workspace();
    const base = `${CLOUDTASER_TERRAFORM_HEADER}provider "cloudtaser" { secretstore_address = "${bao.openbao.address}" }\n`;
    ws.write(
      'main.tf',
      `${base}resource "cloudtaser_cluster_registration" "r" { fingerprint = "${FP_B}" }\n`,
    );
    const imported = await ws.run(['import', '-no-color', 'cloudtaser_cluster_registration.r', FP_B]);
    expect(imported.code, imported.stdout + imported.stderr).toBe(0);
    const state = JSON.parse(readFileSync(join(ws.dir, 'terraform.tfstate'), 'utf8'));
    const attributes = state.resources[0].instances[0].attributes;
    // The state should say what OpenBao has...
    const stateEndpoint = attributes.tokenreview_endpoint;
    // ...and a plan after an unrelated change must not silently re-point the cluster's auth.
    ws.write(
      'main.tf',
      `${base}resource "cloudtaser_cluster_registration" "r" {\n  fingerprint = "${FP_B}"\n  migration_enabled = true\n}\n`,
    );
    const plan = await ws.run(['plan', '-no-color']);
    const showsEndpoint = /tokenreview_endpoint/.test(plan.stdout);
    const apply = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    const after = await kubernetesHost(FP_B);
    // The state says what OpenBao has, and the plan shows the endpoint going back to the configured default.
    expect({ stateEndpoint, showsEndpoint }).toEqual({ stateEndpoint: custom, showsEndpoint: true });
    expect(after).toBe(`https://cloudtaser-bridge.cloudtaser-system.svc:8444/clusters/${FP_B}`);
  });

  it('adopts an attested registration without "Provider produced inconsistent result after apply"', async () => {
    const ws = workspace();
    const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
    await registerCluster(bao.admin, {
      fingerprint: FP_ADOPT,
      attestation: { issuer: 'https://kubernetes.default.svc', jwks: { keys: [{ kid: 'k', ...jwk }] } },
    });
    ws.write(
      'main.tf',
      `${CLOUDTASER_TERRAFORM_HEADER}provider "cloudtaser" { secretstore_address = "${bao.openbao.address}" }
resource "cloudtaser_cluster_registration" "r" {
  fingerprint    = "${FP_ADOPT}"
  adopt_existing = true
}
`,
    );
    const apply = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    const again = await ws.run(['plan', '-detailed-exitcode', '-no-color']);
    expect(again.code, again.stdout + again.stderr).toBe(0);
  });

  it('refuses at plan a JWKS holding a private key instead of writing it to the plan and state', async () => {
    const ws = workspace();
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
      `${CLOUDTASER_TERRAFORM_HEADER}provider "cloudtaser" { secretstore_address = "${bao.openbao.address}" }
resource "cloudtaser_cluster_registration" "r" {
  fingerprint        = "${FP_JWKS}"
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

  it('plans a beacon client CA with provider arguments known only at apply (keeping the stored CA) instead of failing', async () => {
    const ws = workspace();
    ws.write(
      'main.tf',
      `${CLOUDTASER_TERRAFORM_HEADER}provider "cloudtaser" { secretstore_address = "${bao.openbao.address}" }
resource "cloudtaser_beacon_client_ca" "this" {}
`,
    );
    const first = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    ws.write(
      'main.tf',
      `${CLOUDTASER_TERRAFORM_HEADER}resource "terraform_data" "next" { input = "${bao.openbao.address}" }
provider "cloudtaser" { secretstore_address = terraform_data.next.output }
resource "cloudtaser_beacon_client_ca" "this" {}
resource "cloudtaser_cluster_registration" "r" { fingerprint = "d1b2c3d4-0000-4000-8000-000000000004" }
`,
    );
    const plan = await ws.run(['plan', '-no-color']);
    expect(plan.code, plan.stdout + plan.stderr).toBe(0);
  });
});
