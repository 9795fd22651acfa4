/**
 * Provider-defined functions with the real terraform binary: in `terraform console` and in a plan, before
 * anything is applied and without any provider configuration or OpenBao; bad input fails with a function
 * error that names the argument. Expected values come from the runtime's own functions (one implementation).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TerraformOutput } from '../../constructs/cdktf.js';
import { CloudtaserFunctions, CloudtaserProvider } from '../../constructs/index.js';
import { createCloudtaserProvider } from '../../provider/cloudtaser.js';
import { type ProviderServerHandle, startProviderServer } from '../../provider/framework/serve-provider.js';
import { silentProviderLogger } from '../../provider/wire/hclog.js';
import { initHash, operationalHash } from '../../runtime/core/hashes.js';
import { createCertificateAuthority } from '../../runtime/pki/index.js';
import { newStack, synthJson } from '../constructs/synth.js';
import { createWorkspace, type TerraformWorkspace } from './support/terraform.js';

const FP = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const HEADER = `terraform {
  required_providers {
    cloudtaser = { source = "registry.terraform.io/cloudtaser/cloudtaser" }
  }
}
`;

describe('provider::cloudtaser:: functions with the real terraform binary', () => {
  let provider: ProviderServerHandle;
  let ws: TerraformWorkspace;

  beforeAll(async () => {
    // No token, no address: functions never need the provider's configuration.
    provider = await startProviderServer(createCloudtaserProvider({ env: {} }), {
      logger: silentProviderLogger,
    });
    ws = createWorkspace({ env: provider.reattachEnv });
  }, 30_000);
  afterAll(async () => {
    await provider?.close();
    ws?.dispose();
  });

  it('evaluates every function in terraform console, with no provider block and nothing applied', async () => {
    ws.write('main.tf', HEADER);
    const expressions = [
      `provider::cloudtaser::init_hash("${FP}")`,
      `provider::cloudtaser::init_hash("  ${FP.toUpperCase()} ")`,
      `provider::cloudtaser::namespace("${FP}")`,
      `provider::cloudtaser::namespace("${FP}", "team-a")`,
      `provider::cloudtaser::is_fingerprint("${FP}")`,
      `provider::cloudtaser::is_fingerprint("prod-eu")`,
      // An optional variable left unset: false, not "argument must not be null" (which failed the validation).
      `provider::cloudtaser::is_fingerprint(null)`,
    ];
    // Piped input: terraform console evaluates it and prints the last result, so one expression per run.
    const results: string[] = [];
    for (const expression of expressions) {
      const r = await ws.run(['console'], {}, `${expression}\n`);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      results.push(r.stdout.trim());
    }
    expect(results).toEqual([
      `"${initHash(FP)}"`,
      `"${initHash(FP)}"`,
      `"cloudtaser/${FP.slice(0, 8)}"`,
      `"team-a/${FP.slice(0, 8)}"`,
      'true',
      'false',
      'false',
    ]);
  });

  it('shows function results in a plan before any apply, including operational_hash of a CA', async () => {
    const ca = createCertificateAuthority({ commonName: 'cluster-ca' });
    ws.write('ca.pem', ca.certPem);
    ws.write(
      'main.tf',
      `${HEADER}
variable "fingerprint" {
  type    = string
  default = "${FP}"
  validation {
    condition     = provider::cloudtaser::is_fingerprint(var.fingerprint)
    error_message = "fingerprint must be the kube-system namespace UID."
  }
}
output "init_hash" { value = provider::cloudtaser::init_hash(var.fingerprint) }
output "namespace" { value = provider::cloudtaser::namespace(var.fingerprint) }
output "operational_hash" { value = provider::cloudtaser::operational_hash(file("\${path.module}/ca.pem")) }
`,
    );
    const plan = await ws.run(['plan', '-no-color']);
    expect(plan.code, plan.stdout + plan.stderr).toBe(0);
    expect(plan.stdout).toContain(`init_hash        = "${initHash(FP)}"`);
    expect(plan.stdout).toContain(`namespace        = "cloudtaser/${FP.slice(0, 8)}"`);
    expect(plan.stdout).toContain(`operational_hash = "${operationalHash(ca.certDer)}"`);

    const refused = await ws.run(['plan', '-no-color', '-var', 'fingerprint=prod-eu']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('fingerprint must be the kube-system namespace UID.');
  });

  it('fails the plan with a function error naming the argument and the code for a bad fingerprint', async () => {
    ws.write('main.tf', `${HEADER}output "h" { value = provider::cloudtaser::init_hash("not-a-uuid") }\n`);
    const r = await ws.run(['plan', '-no-color']);
    expect(r.code).toBe(1);
    expect(r.stderr.match(/Error: /g), r.stderr).toHaveLength(1);
    expect(r.stderr).toContain('CT_INVALID_FINGERPRINT');
    // Terraform wraps long messages; compare with whitespace collapsed.
    const text = r.stderr.replace(/\s+/g, ' ');
    expect(text).toContain(
      'Invalid value for "fingerprint" parameter: fingerprint "not-a-uuid" is not a UUID',
    );
    expect(r.stderr).toMatch(/on main\.tf line \d+/);
  });

  it('refuses a PEM with no certificate, or with two, and an unusable namespace root, each with its reason', async () => {
    const ca = createCertificateAuthority({ commonName: 'cluster-ca' }).certPem;
    const cases: [string, RegExp][] = [
      ['provider::cloudtaser::operational_hash("hello")', /no -----BEGIN CERTIFICATE----- line/],
      [
        `provider::cloudtaser::operational_hash(${JSON.stringify(ca + ca)})`,
        /holds 2 certificates; pass exactly one/,
      ],
      [
        `provider::cloudtaser::operational_hash("-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----\\n")`,
        /could not be parsed as an X\.509 certificate/,
      ],
      [`provider::cloudtaser::namespace("${FP}", "sys")`, /not a usable OpenBao namespace name/],
      [`provider::cloudtaser::namespace("${FP}", "a", "b")`, /at most one namespace_root/],
    ];
    for (const [expression, reason] of cases) {
      ws.write('main.tf', `${HEADER}output "x" { value = ${expression} }\n`);
      const r = await ws.run(['plan', '-no-color']);
      expect(r.code, expression).toBe(1);
      expect(r.stderr.replace(/\s+/g, ' '), expression).toMatch(reason);
    }
  });

  it('passes unknown arguments through as unknown results instead of calling the provider', async () => {
    ws.write(
      'main.tf',
      `${HEADER}
resource "terraform_data" "fp" { input = "${FP}" }
output "init_hash" { value = provider::cloudtaser::init_hash(terraform_data.fp.output) }
`,
    );
    const plan = await ws.run(['plan', '-no-color']);
    expect(plan.code, plan.stdout + plan.stderr).toBe(0);
    expect(plan.stdout).toContain('init_hash = (known after apply)');
    const apply = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stdout).toContain(`init_hash = "${initHash(FP)}"`);
  });

  it('are exposed to CDKTF: CloudtaserFunctions synthesizes provider::cloudtaser:: calls that terraform evaluates at plan', async () => {
    const stack = newStack();
    new CloudtaserProvider(stack, 'cloudtaser');
    new TerraformOutput(stack, 'cdk_init_hash', { value: CloudtaserFunctions.initHash(FP) });
    new TerraformOutput(stack, 'cdk_namespace', { value: CloudtaserFunctions.namespace(FP, 'team-a') });
    new TerraformOutput(stack, 'cdk_valid', { value: CloudtaserFunctions.isFingerprint('nope') });
    const json = synthJson(stack);
    expect(json.output.cdk_init_hash.value).toBe(`\${provider::cloudtaser::init_hash("${FP}")}`);
    ws.write('main.tf', '');
    ws.write('main.tf.json', JSON.stringify(json));
    try {
      const plan = await ws.run(['plan', '-no-color']);
      expect(plan.code, plan.stdout + plan.stderr).toBe(0);
      expect(plan.stdout).toContain(`cdk_init_hash = "${initHash(FP)}"`);
      expect(plan.stdout).toContain(`cdk_namespace = "team-a/${FP.slice(0, 8)}"`);
      expect(plan.stdout).toContain('cdk_valid     = false');
    } finally {
      ws.write('main.tf.json', '{}');
    }
  });
});
