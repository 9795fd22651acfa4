/**
 * The registration's lifecycle after the first apply, with the real terraform binary against the OpenBao test
 * server: replacing it with itself (`-replace`, a tainted object), two owners racing for one cluster, a changed
 * namespace_root, and applies and destroys that OpenBao broke off half-way (the fault proxy of test/faults).
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import {
  deregisterCluster,
  getClusterStatus,
  POLICY_NAMES,
  renderPolicyHcl,
} from '../../runtime/registration/index.js';
import { provisionIdentities } from '../openbao-identities.js';
import { listenOnLoopback } from '../support/loopback.js';
import { CLOUDTASER_TERRAFORM_HEADER, useProviderAgainstOpenBao } from './support/openbao-provider.js';
import type { TerraformWorkspace } from './support/terraform.js';

/** Terraform wraps long messages at ~80 columns; compare with whitespace collapsed. */
const flat = (text: string) => text.replace(/\s+/g, ' ');

describe('cloudtaser_cluster_registration lifecycle (real terraform)', () => {
  const bao = useProviderAgainstOpenBao({ faultProxy: true });
  const workspace = () => bao.workspace();
  /** A registration of `fp` through `address` (the OpenBao test server or the fault proxy in front of it). */
  const registration = (address: string, fp: string, extra = '') =>
    `${CLOUDTASER_TERRAFORM_HEADER}provider "cloudtaser" { secretstore_address = "${address}" }
resource "cloudtaser_cluster_registration" "r" {
  fingerprint = "${fp}"
${extra}}
`;
  const apply = (ws: TerraformWorkspace, ...args: string[]) =>
    ws.run(['apply', '-auto-approve', '-no-color', ...args]);
  const status = (fingerprint: string) => getClusterStatus(bao.admin, { fingerprint });

  describe('replacing a registration with itself', () => {
    it('turns attestation off with the documented `terraform apply -replace=...`', async () => {
      const fp = 'd1000000-0000-4000-8000-000000000001';
      const ws = workspace();
      const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
      ws.write('jwks.json', JSON.stringify({ keys: [{ kid: 'k', ...jwk }] }));
      const attested =
        '  attestation_issuer = "https://kubernetes.default.svc"\n  attestation_jwks = file("jwks.json")\n';
      ws.write('main.tf', registration(bao.openbao.address, fp, attested));
      const first = await apply(ws);
      expect(first.code, first.stdout + first.stderr).toBe(0);
      const before = await status(fp);
      ws.write('main.tf', registration(bao.openbao.address, fp));
      const replace = await apply(ws, '-replace=cloudtaser_cluster_registration.r');
      expect(replace.code, replace.stdout + replace.stderr).toBe(0);
      const after = await status(fp);
      expect(after.attestation).toBeUndefined();
      expect(after.operationalHash).not.toBe(before.operationalHash);
      const plan = await ws.run(['plan', '-detailed-exitcode', '-no-color']);
      expect(plan.code, plan.stdout + plan.stderr).toBe(0);
    });

    it('re-creates a tainted registration (terraform taint)', async () => {
      const fp = 'd2000000-0000-4000-8000-000000000002';
      const ws = workspace();
      ws.write('main.tf', registration(bao.openbao.address, fp));
      expect((await apply(ws)).code).toBe(0);
      const before = await status(fp);
      expect((await ws.run(['taint', 'cloudtaser_cluster_registration.r'])).code).toBe(0);
      const again = await apply(ws);
      expect(again.code, again.stdout + again.stderr).toBe(0);
      const after = await status(fp);
      expect(after.registered).toBe(true);
      expect(after.operationalHash).not.toBe(before.operationalHash);
    });

    it('refuses a rename without a moved block at plan, every time, and the cluster stays registered', async () => {
      const fp = 'd2100000-0000-4000-8000-000000000021';
      const ws = workspace();
      const named = (name: string, extra = '') =>
        registration(bao.openbao.address, fp).replace('"r"', `"${name}"`) + extra;
      ws.write('main.tf', named('old'));
      expect((await apply(ws)).code).toBe(0);
      const before = await status(fp);
      ws.write('main.tf', named('new'));
      // The plan of the old address's destroy and the new one's create run concurrently: before, the create passed
      // whenever the old object's refresh came first (4 plans in 6 in an outside test), and the apply deregistered.
      for (let i = 0; i < 3; i++) {
        const plan = await ws.run(['plan', '-no-color']);
        expect(plan.code, plan.stdout + plan.stderr).toBe(1);
        expect(flat(plan.stderr)).toMatch(/CT_REGISTRATION_EXISTS[\s\S]*(declare the move|Declare the move)/);
      }
      const refused = await apply(ws);
      expect(refused.code).toBe(1);
      expect(refused.stdout).not.toContain('Destroying');
      const after = await status(fp);
      expect(after.registered).toBe(true);
      expect(after.operationalHash).toBe(before.operationalHash);
      // The documented way keeps it.
      ws.write(
        'main.tf',
        named(
          'new',
          'moved {\n  from = cloudtaser_cluster_registration.old\n  to   = cloudtaser_cluster_registration.new\n}\n',
        ),
      );
      const moved = await apply(ws);
      expect(moved.code, moved.stdout + moved.stderr).toBe(0);
      expect((await status(fp)).operationalHash).toBe(before.operationalHash);
    });

    it('refuses the same cluster declared at a second address at plan, naming it, every time', async () => {
      const fp = 'd2200000-0000-4000-8000-000000000022';
      const ws = workspace();
      const one = registration(bao.openbao.address, fp).replace('"r"', '"a"');
      ws.write('main.tf', one);
      expect((await apply(ws)).code).toBe(0);
      const second = one
        .slice(one.indexOf('resource "cloudtaser_cluster_registration"'))
        .replace('"a"', '"b"');
      ws.write('main.tf', `${one}\n${second}`);
      // Before: the second address's plan passed whenever the first one's refresh came first ("not in this
      // Terraform state", though it was), and every apply failed the same way (an outside fleet test).
      for (let i = 0; i < 2; i++) {
        const plan = await ws.run(['plan', '-no-color']);
        expect(plan.code, plan.stdout + plan.stderr).toBe(1);
        expect(flat(plan.stderr)).toContain('declares the same cluster twice');
      }
    });

    it("still refuses another state's registration, at plan and at apply", async () => {
      const fp = 'd3000000-0000-4000-8000-000000000003';
      const owner = workspace();
      owner.write('main.tf', registration(bao.openbao.address, fp));
      expect((await apply(owner)).code).toBe(0);
      const other = workspace();
      other.write('main.tf', registration(bao.openbao.address, fp));
      const plan = await other.run(['plan', '-no-color']);
      expect(plan.code).toBe(1);
      expect(flat(plan.stderr)).toContain('CT_REGISTRATION_EXISTS');
      // A -replace in the owner's state is the owner's business; the other state is still refused afterwards.
      expect((await apply(owner, '-replace=cloudtaser_cluster_registration.r')).code).toBe(0);
      const refused = await apply(other);
      expect(refused.code).toBe(1);
      expect(flat(refused.stderr)).toContain('CT_REGISTRATION_EXISTS');
    });
  });

  describe('two owners for one cluster', () => {
    it('two stacks applying the same cluster at the same time: one of them is refused with CT_REGISTRATION_EXISTS', async () => {
      const fp = 'a5000000-0000-4000-8000-000000000005';
      const stacks = [workspace(), workspace()];
      for (const ws of stacks) ws.write('main.tf', registration(bao.openbao.address, fp));
      const applies = await Promise.all(stacks.map((ws) => apply(ws)));
      const output = applies.map((r) => r.stdout + r.stderr).join('\n----\n');
      expect(applies.map((r) => r.code).sort(), output).toEqual([0, 1]);
      expect(
        applies.filter((r) => r.code !== 0 && flat(r.stderr).includes('CT_REGISTRATION_EXISTS')),
      ).toHaveLength(1);
      // The winner's state holds the registration OpenBao has.
      const winner = stacks[applies.findIndex((r) => r.code === 0)];
      const state = JSON.parse(readFileSync(join(winner.dir, 'terraform.tfstate'), 'utf8'));
      expect(state.resources[0].instances[0].attributes.operational_hash).toBe(
        (await status(fp)).operationalHash,
      );
    });

    it('two resources for one cluster in one configuration: one apply does not register it twice', async () => {
      const fp = 'a2000000-0000-4000-8000-000000000002';
      const ws = workspace();
      ws.write(
        'main.tf',
        `${CLOUDTASER_TERRAFORM_HEADER}provider "cloudtaser" { secretstore_address = "${bao.openbao.address}" }
resource "cloudtaser_cluster_registration" "a" { fingerprint = "${fp}" }
resource "cloudtaser_cluster_registration" "b" { fingerprint = "${fp}" }
`,
      );
      const result = await apply(ws);
      expect(result.code, result.stdout).not.toBe(0);
      expect(flat(result.stderr)).toContain('CT_REGISTRATION_EXISTS');
    });
  });

  it('a changed provider namespace_root plans a replacement with a warning that says what moves', async () => {
    const fp = 'a4000000-0000-4000-8000-000000000004';
    const ws = workspace();
    const tf = (root: string) =>
      `${CLOUDTASER_TERRAFORM_HEADER}provider "cloudtaser" {
  secretstore_address = "${bao.openbao.address}"
  namespace_root      = "${root}"
}
resource "cloudtaser_cluster_registration" "r" { fingerprint = "${fp}" }
`;
    ws.write('main.tf', tf('cloudtaser'));
    expect((await apply(ws)).code).toBe(0);
    ws.write('main.tf', tf('ct-eu2'));
    const plan = await ws.run(['plan', '-detailed-exitcode', '-no-color']);
    expect(plan.code, plan.stdout + plan.stderr).toBe(2);
    expect(plan.stdout).toContain('must be replaced');
    expect(flat(plan.stdout + plan.stderr)).toContain('Registration moves to another namespace_root');
    const moved = await apply(ws);
    expect(moved.code, moved.stdout + moved.stderr).toBe(0);
    expect((await status(fp)).registered).toBe(false);
    expect((await getClusterStatus(bao.admin, { fingerprint: fp, namespaceRoot: 'ct-eu2' })).registered).toBe(
      true,
    );
    const clean = await ws.run(['plan', '-detailed-exitcode', '-no-color']);
    expect(clean.code, clean.stdout + clean.stderr).toBe(0);
  });

  it('another OpenBao address plans the create with a warning that the registration stays at the old one', async () => {
    // Before: "has been deleted" then "will be created", nothing more; the old OpenBao kept a live registration and
    // the cluster got a new CA at the new one (an outside CDKTF test moved a fleet so).
    const fp = 'a4400000-0000-4000-8000-000000000044';
    const other = await startOpenBaoTestServer({ rootToken: bao.openbao.rootToken });
    try {
      const ws = workspace();
      ws.write('main.tf', registration(bao.openbao.address, fp));
      expect((await apply(ws)).code).toBe(0);
      ws.write('main.tf', registration(other.address, fp));
      const plan = await ws.run(['plan', '-detailed-exitcode', '-no-color']);
      expect(plan.code, plan.stdout + plan.stderr).toBe(2);
      const text = flat(plan.stdout + plan.stderr);
      expect(text).toContain('Registration not found at the new OpenBao address');
      expect(text).toContain(`was registered at ${bao.openbao.address}`);
      expect(text).toContain(`--secretstore-address ${bao.openbao.address}`);
      // The same address again: the registration is where it was, and nothing is planned.
      ws.write('main.tf', registration(bao.openbao.address, fp));
      const back = await ws.run(['plan', '-detailed-exitcode', '-no-color']);
      expect(back.code, back.stdout + back.stderr).toBe(0);
      expect(flat(back.stdout + back.stderr)).not.toContain('Registration not found');
      expect((await status(fp)).registered).toBe(true);
    } finally {
      await other.close();
    }
  });

  it("refuses at plan a namespace_root move the registrar's policy does not cover, and the registration stays", async () => {
    const fp = 'a6000000-0000-4000-8000-000000000006';
    const ws = workspace();
    // The registrar's own token with the shipped policy for the root "cloudtaser" only, as an admin wrote it.
    const ids = await provisionIdentities(bao.admin);
    const tf = (root: string) =>
      `${CLOUDTASER_TERRAFORM_HEADER}provider "cloudtaser" {
  secretstore_address = "${bao.openbao.address}"
  secretstore_token   = "${ids.registrarToken}"
  namespace_root      = "${root}"
}
resource "cloudtaser_cluster_registration" "r" { fingerprint = "${fp}" }
`;
    ws.write('main.tf', tf('cloudtaser'));
    const first = await apply(ws);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    const before = await status(fp);
    ws.write('main.tf', tf('ct-eu3'));
    // Before: the plan passed with a warning, and the apply deregistered the cluster under "cloudtaser", then
    // failed to register it under "ct-eu3" (permission denied): the cluster was left unregistered.
    const plan = await ws.run(['plan', '-no-color']);
    expect(plan.code, plan.stdout + plan.stderr).toBe(1);
    const said = flat(plan.stderr);
    expect(said).toContain('CT_OPENBAO_PERMISSION_DENIED');
    expect(said).toContain('namespace root "ct-eu3"');
    expect(said).toContain('Nothing was changed');
    expect(said).toContain('cloudtaser-cli source policy registrar --namespace-root ct-eu3');
    expect((await apply(ws)).code).toBe(1);
    const after = await status(fp);
    expect(after.registered).toBe(true);
    expect(after.operationalHash).toBe(before.operationalHash);
    // Once the admin writes the policy for both roots, the same configuration plans and moves the cluster.
    await bao.admin.writePolicy(
      POLICY_NAMES.registrar,
      `${renderPolicyHcl('registrar')}\n${renderPolicyHcl('registrar', { namespaceRoot: 'ct-eu3' })}`,
    );
    const moved = await apply(ws);
    expect(moved.code, moved.stdout + moved.stderr).toBe(0);
    expect((await status(fp)).registered).toBe(false);
    expect((await getClusterStatus(bao.admin, { fingerprint: fp, namespaceRoot: 'ct-eu3' })).registered).toBe(
      true,
    );
  });

  describe('changes made outside this state, and a wrong address', () => {
    it('an update planned before an out-of-band deregistration is refused at apply and registers nothing anew', async () => {
      const fp = 'f5000000-0000-4000-8000-000000000005';
      const ws = workspace();
      ws.write('main.tf', registration(bao.openbao.address, fp, '  migration_enabled = false\n'));
      expect((await apply(ws)).code).toBe(0);
      ws.write('main.tf', registration(bao.openbao.address, fp, '  migration_enabled = true\n'));
      const plan = await ws.run(['plan', '-out', 'update.plan', '-no-color']);
      expect(plan.code, plan.stdout + plan.stderr).toBe(0);
      await deregisterCluster(bao.admin, { fingerprint: fp });
      // Before: the update registered the cluster anew with a new CA, and terraform reported "Provider produced
      // inconsistent result after apply" (ca_cert_pem, operational_hash): a deliberate deregistration undone.
      const applied = await ws.run(['apply', '-no-color', 'update.plan']);
      expect(applied.code).toBe(1);
      expect(flat(applied.stderr)).toContain('CT_NOT_REGISTERED');
      expect(flat(applied.stderr)).not.toContain('inconsistent result');
      expect((await status(fp)).registered).toBe(false);
      // A new plan shows the registration to create, and applying it registers the cluster again.
      const again = await apply(ws);
      expect(again.code, again.stdout + again.stderr).toBe(0);
      expect((await status(fp)).registered).toBe(true);
    });

    it('a plan after an out-of-band deregistration warns that applying mints a new CA, then registers again', async () => {
      // Before: "has been deleted" and "will be created", nothing more; only the operational_hash output showed
      // that the running operator would no longer trust the cluster's new CA.
      const fp = 'f5100000-0000-4000-8000-000000000051';
      const ws = workspace();
      ws.write('main.tf', registration(bao.openbao.address, fp));
      expect((await apply(ws)).code).toBe(0);
      const before = await status(fp);
      await deregisterCluster(bao.admin, { fingerprint: fp });
      const plan = await ws.run(['plan', '-detailed-exitcode', '-no-color']);
      expect(plan.code, plan.stdout + plan.stderr).toBe(2);
      const text = flat(plan.stdout + plan.stderr);
      expect(text).toContain('Registration removed outside Terraform');
      expect(text).toContain(`Cluster ${fp} is no longer registered at ${bao.openbao.address}`);
      expect(text).toContain('operator.broker.trust.caSha256');
      expect(text).not.toContain('Registration not found at the new OpenBao address');
      const again = await apply(ws);
      expect(again.code, again.stdout + again.stderr).toBe(0);
      const after = await status(fp);
      expect(after.registered).toBe(true);
      expect(after.operationalHash).not.toBe(before.operationalHash);
      const clean = await ws.run(['plan', '-detailed-exitcode', '-no-color']);
      expect(clean.code, clean.stdout + clean.stderr).toBe(0);
      expect(flat(clean.stdout + clean.stderr)).not.toContain('Registration removed');
    });

    it('a refresh against a server that is not OpenBao fails and keeps the registration in state', async () => {
      const fp = 'f6000000-0000-4000-8000-000000000006';
      const ws = workspace();
      ws.write('main.tf', registration(bao.openbao.address, fp));
      expect((await apply(ws)).code).toBe(0);
      // Any web server (here one answering 404 pages to everything), or a proxy's catch-all page.
      const notOpenBao = await listenOnLoopback(
        createServer((req, res) => {
          req.resume();
          res.writeHead(404, { 'content-type': 'text/html' });
          res.end('<html><body>404 Not Found</body></html>');
        }),
      );
      try {
        ws.write('main.tf', registration(notOpenBao.address, fp));
        // Before: "cloudtaser_cluster_registration.r will be created" in the plan, and a refresh-only apply
        // removed it from state without an error.
        const refresh = await ws.run(['apply', '-refresh-only', '-auto-approve', '-no-color']);
        expect(refresh.code, refresh.stdout + refresh.stderr).toBe(1);
        expect(flat(refresh.stderr)).toContain('CT_OPENBAO_BAD_RESPONSE');
        const list = await ws.run(['state', 'list']);
        expect(list.stdout).toContain('cloudtaser_cluster_registration.r');
      } finally {
        await notOpenBao.close();
      }
    });

    it('-replace with purge_on_destroy registers the cluster again in one apply', async () => {
      // The destroy purges the namespace and the create makes it again in one provider process. (A guard: this
      // passed before cd1b2df too, as the apply's client had written nothing in that namespace; the library case
      // it fixed, one client registering, purging and registering again, is in test/registration.)
      const fp = 'f7000000-0000-4000-8000-000000000007';
      const ws = workspace();
      ws.write('main.tf', registration(bao.openbao.address, fp, '  purge_on_destroy = true\n'));
      expect((await apply(ws)).code).toBe(0);
      const before = await status(fp);
      const replaced = await apply(ws, '-replace=cloudtaser_cluster_registration.r');
      expect(replaced.code, replaced.stdout + replaced.stderr).toBe(0);
      const after = await status(fp);
      expect(after.registered).toBe(true);
      expect(after.operationalHash).not.toBe(before.operationalHash);
    });
  });

  describe('OpenBao failing half-way', () => {
    /** OpenBao answers 503 to this request (after carrying it out, when afterForward) and to every retry. */
    const down = (method: string, pathPattern: RegExp, afterForward = false) =>
      bao.proxy.inject({ method, pathPattern, status: 503, afterForward, times: 100 });

    it('a re-apply after OpenBao failed right after the registration record was written converges, without import', async () => {
      const fp = 'e1000000-0000-4000-8000-000000000001';
      const ws = workspace();
      ws.write('main.tf', registration(bao.proxy.address, fp));
      down('POST', new RegExp(`clusters/${fp}/registered$`), true);
      const failed = await apply(ws);
      bao.proxy.clear();
      expect(failed.code, failed.stdout + failed.stderr).not.toBe(0);
      expect((await status(fp)).registered).toBe(true);
      const again = await apply(ws);
      expect(again.code, again.stdout + again.stderr).toBe(0);
      expect(again.stdout).toContain('tainted');
      const plan = await ws.run(['plan', '-detailed-exitcode', '-no-color']);
      expect(plan.code, plan.stdout + plan.stderr).toBe(0);
    });

    it('purge_on_destroy: a destroy retried after OpenBao failed half-way still purges the namespace', async () => {
      const fp = 'e2000000-0000-4000-8000-000000000002';
      const ws = workspace();
      ws.write('main.tf', registration(bao.proxy.address, fp, '  purge_on_destroy = true\n'));
      expect((await apply(ws)).code).toBe(0);
      const ns = `cloudtaser/${fp.slice(0, 8)}`;
      await bao.admin.withNamespace(ns).kvWrite('secret', 'app/db', { password: 'to-be-purged' });
      // The registration record is deleted, then OpenBao stops answering.
      down('DELETE', new RegExp(`clusters/${fp}/initialized$`));
      const failed = await ws.run(['destroy', '-auto-approve', '-no-color']);
      bao.proxy.clear();
      expect(failed.code, failed.stdout + failed.stderr).not.toBe(0);
      expect((await status(fp)).registered).toBe(false);
      const plan = await ws.run(['plan', '-no-color']);
      expect(flat(plan.stdout + plan.stderr)).toContain('Registration half removed');
      const retried = await ws.run(['destroy', '-auto-approve', '-no-color']);
      expect(retried.code, retried.stdout + retried.stderr).toBe(0);
      expect(retried.stdout).toContain('1 destroyed');
      expect(await bao.admin.withNamespace('cloudtaser').readNamespace(fp.slice(0, 8))).toBeUndefined();
    });

    it('a cluster registered again after a half-failed destroy starts uninitialized (its broker can bootstrap)', async () => {
      const fp = 'e3000000-0000-4000-8000-000000000003';
      const ws = workspace();
      ws.write('main.tf', registration(bao.proxy.address, fp));
      expect((await apply(ws)).code).toBe(0);
      // The broker bootstraps: the bridge writes the one-time initialized record (a client of its own, whose
      // write this test's reads need not wait for once it is deleted).
      const bridge = new OpenBaoClient({ address: bao.openbao.address, token: bao.openbao.rootToken });
      await bridge.withNamespace('cloudtaser').kvWrite('cloudtaser', `clusters/${fp}/initialized`, {
        initialized_at: new Date().toISOString(),
        broker_cert_sha256: 'a'.repeat(64),
      });
      await bridge.close();
      down('DELETE', new RegExp(`clusters/${fp}/initialized$`));
      expect((await ws.run(['destroy', '-auto-approve', '-no-color'])).code).not.toBe(0);
      bao.proxy.clear();
      // Applied again instead of destroyed: the half-removed registration is replaced, and starts uninitialized.
      const again = await apply(ws);
      expect(again.code, again.stdout + again.stderr).toBe(0);
      expect(again.stdout).toContain('1 added, 0 changed, 1 destroyed');
      const after = await status(fp);
      expect(after.registered).toBe(true);
      expect(after.initialized).toBe(false);
      const clean = await ws.run(['plan', '-detailed-exitcode', '-no-color']);
      expect(clean.code, clean.stdout + clean.stderr).toBe(0);
    });
  });
});
