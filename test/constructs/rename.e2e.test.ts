/**
 * A RegisteredCluster whose construct goes away or changes its id (a removal, a rename, a move into another
 * construct), as CDKTF users refactor: the synthesized stack is planned and applied with the real terraform binary
 * against the OpenBao test server.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { App, TerraformStack } from '../../constructs/cdktf.js';
import { Attestation, OperatorInstall, RegisteredCluster } from '../../constructs/index.js';
import { getClusterStatus } from '../../runtime/registration/index.js';
import { useProviderAgainstOpenBao } from '../provider/support/openbao-provider.js';

const FP = 'c1000000-0000-4000-8000-000000000001';
const FP2 = 'c2000000-0000-4000-8000-000000000002';
const FP3 = 'c3000000-0000-4000-8000-000000000003';

/**
 * The stack's Terraform JSON, backend dropped, for clusters by construct id; `moves` renames with moveFromId
 * (new id -> old id).
 */
function synth(address: string, ids: Record<string, string>, moves: Record<string, string> = {}): string {
  const outdir = mkdtempSync(join(tmpdir(), 'ct-rename-synth-'));
  const app = new App({ outdir });
  const stack = new TerraformStack(app, 'prod');
  for (const [id, fingerprint] of Object.entries(ids)) {
    const cluster = new RegisteredCluster(stack, id, {
      secretStore: { address },
      beacon: { address: 'beacon.example.eu:443' },
      fingerprint,
      attestation: Attestation.disabled(),
      operator: OperatorInstall.deployedElsewhere(),
    });
    const from = moves[id];
    if (from) cluster.registration.moveFromId(`cloudtaser_cluster_registration.${from}`);
  }
  app.synth();
  const json = JSON.parse(readFileSync(join(outdir, 'stacks', 'prod', 'cdk.tf.json'), 'utf8'));
  rmSync(outdir, { recursive: true, force: true });
  delete json.terraform.backend;
  return JSON.stringify(json, null, 2);
}

/** The logical id cdktf gives the registration of the cluster with construct id `id`. */
function registrationId(tfJson: string, id: string): string {
  const ids = Object.keys(JSON.parse(tfJson).resource.cloudtaser_cluster_registration);
  return ids.find((logical) => logical.startsWith(`${id}_`))!;
}

describe('removing or renaming a RegisteredCluster construct (real terraform)', () => {
  const bao = useProviderAgainstOpenBao();
  const workspace = () => bao.workspace();

  it('removing one of two clusters from the stack plans its deregistration (not "Provider configuration not present")', async () => {
    const ws = workspace();
    ws.write('cdk.tf.json', synth(bao.openbao.address, { 'prod-eu': FP, 'prod-eu-2': FP2 }));
    const first = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    ws.write('cdk.tf.json', synth(bao.openbao.address, { 'prod-eu': FP }));
    const plan = await ws.run(['plan', '-no-color']);
    expect(plan.code, plan.stdout + plan.stderr).toBe(0);
    expect(plan.stdout).toContain('0 to add, 0 to change, 1 to destroy');
    const apply = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect((await getClusterStatus(bao.admin, { fingerprint: FP2 })).registered).toBe(false);
    expect((await getClusterStatus(bao.admin, { fingerprint: FP })).registered).toBe(true);
  });

  it('a rename declared with moveFromId keeps the registration (no destroy, no create)', async () => {
    const ws = workspace();
    const before = synth(bao.openbao.address, { 'prod-us': FP3 });
    ws.write('cdk.tf.json', before);
    expect((await ws.run(['apply', '-auto-approve', '-no-color'])).code).toBe(0);
    const registered = await getClusterStatus(bao.admin, { fingerprint: FP3 });
    ws.write(
      'cdk.tf.json',
      synth(bao.openbao.address, { 'us-prod': FP3 }, { 'us-prod': registrationId(before, 'prod-us') }),
    );
    const plan = await ws.run(['plan', '-no-color', '-detailed-exitcode']);
    expect(plan.stdout + plan.stderr).toContain('has moved to');
    expect(plan.stdout).toContain('0 to add, 0 to change, 0 to destroy');
    const apply = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    const after = await getClusterStatus(bao.admin, { fingerprint: FP3 });
    expect(after.registeredAt).toBe(registered.registeredAt);
    expect(after.operationalHash).toBe(registered.operationalHash);
  });
});
