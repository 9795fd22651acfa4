/**
 * The admin commands of issue 11, run as users run them: `target trust show|pin|reset` (the explicit step that
 * moves a cluster to another CA), `source beacon-ca` (the bridges' identity, printed for the beacon), and
 * `bridge run` refusing to start when that identity does not exist yet.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { KubeClient } from '../../runtime/kube/index.js';
import { runCli } from './run-cli.js';

let openbao: OpenBaoTestServer;
let kube: KubeTestServer;
let dir: string;
let kubeconfig: string;

beforeAll(async () => {
  openbao = await startOpenBaoTestServer();
  kube = await startKubeTestServer();
  dir = await mkdtemp(join(tmpdir(), 'cloudtaser-cli-trust-'));
  kubeconfig = join(dir, 'kubeconfig');
  await kube.writeKubeconfig(kubeconfig);
  await kube.createNamespace('cloudtaser-system');
});
afterAll(async () => {
  await openbao?.close();
  await kube?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('cloudtaser-cli target trust', () => {
  const HASH = 'ab'.repeat(32);
  const NEXT = 'cd'.repeat(32);
  const trust = (...args: string[]) => runCli(['target', 'trust', ...args, '--kubeconfig', kubeconfig]);

  it('shows an empty record, pins a CA (creating the record), moves it to another CA, and resets it', async () => {
    const empty = await trust('show', '--output', 'json');
    expect(empty.code, empty.stderr).toBe(0);
    expect(JSON.parse(empty.stdout)).toMatchObject({
      record: 'ConfigMap cloudtaser-system/cloudtaser-trust',
      caSha256: null,
    });

    const pinned = await trust('pin', '--ca-sha256', HASH.toUpperCase());
    expect(pinned.code, pinned.stderr).toBe(0);
    expect(pinned.stdout).toContain(`CA SHA-256:  ${HASH}`);
    expect(pinned.stdout).toContain('Recorded by: cloudtaser-cli target trust pin');

    const moved = await trust('pin', '--ca-sha256', NEXT, '--output', 'json');
    expect(JSON.parse(moved.stdout)).toMatchObject({ caSha256: NEXT });
    const admin = KubeClient.fromConnection({ kind: 'kubeconfig', path: kubeconfig });
    try {
      expect((await admin.getConfigMap('cloudtaser-system', 'cloudtaser-trust')).data?.caSha256).toBe(NEXT);
    } finally {
      admin.close();
    }

    const reset = await trust('reset', '--output', 'json');
    expect(reset.code, reset.stderr).toBe(0);
    expect(JSON.parse(reset.stdout)).toMatchObject({ caSha256: null });
    const shown = await trust('show');
    expect(shown.stdout).toContain('(none: the next broker start trusts the first CA it meets)');
  }, 120_000);

  it('refuses a hash that is not 64 hex characters and a malformed record name, with CT_INVALID_ARGUMENT', async () => {
    const bad = await trust('pin', '--ca-sha256', 'abc');
    expect(bad.code).toBe(2); // usage errors exit 2 (test/cli/conventions.test.ts)
    expect(bad.stderr).toMatch(/^CT_INVALID_ARGUMENT: --ca-sha256 must be 64 hex characters/);
    const badRef = await trust('show', '--trust-record', 'no-slash');
    expect(badRef.code).toBe(2);
    expect(badRef.stderr).toMatch(/--trust-record "no-slash" must be <namespace>\/<configmap name>/);
  }, 120_000);

  it('says which permission is missing when the kubeconfig may not read the record', async () => {
    await kube.createServiceAccount('cloudtaser-system', 'nobody');
    const limited = join(dir, 'nobody');
    await kube.writeKubeconfig(limited, {
      token: kube.issueServiceAccountToken('cloudtaser-system', 'nobody'),
    });
    const denied = await runCli(['target', 'trust', 'show', '--kubeconfig', limited]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(
      /^CT_TRUST_RECORD_UNAVAILABLE: cannot read the trust record ConfigMap cloudtaser-system\/cloudtaser-trust: CT_KUBE_FORBIDDEN/,
    );
    expect(denied.stderr).toContain('the broker needs get and patch on it');
  }, 120_000);
});

describe('cloudtaser-cli target trust against an API server that is down', () => {
  it.each(['show', 'reset'])(
    'trust %s says CT_KUBE_UNREACHABLE as every target command does, in one code and without the RBAC hint',
    async (sub) => {
      const refused = join(dir, 'refused-kubeconfig');
      await writeFile(
        refused,
        'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]\nusers: [{name: u, user: {token: abc}}]\ncontexts: [{name: ctx, context: {cluster: c, user: u}}]\ncurrent-context: ctx\n',
      );
      const result = await runCli(['target', 'trust', sub, '--kubeconfig', refused]);
      expect(result.code).toBe(75);
      expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(result.stderr).toMatch(/^CT_KUBE_UNREACHABLE: /);
      expect(result.stderr.match(/CT_[A-Z_]+:/g)).toHaveLength(1);
      expect(result.stderr).not.toContain('the broker needs get and patch');
    },
    60_000,
  );
});

describe('cloudtaser-cli source beacon-ca and bridge run', () => {
  it('refuses to start a bridge without a beacon client CA, saying what to run', async () => {
    const bridge = await runCli(
      ['bridge', 'run', '--secretstore-address', openbao.address, '--beacon', '127.0.0.1:1'],
      { CLOUDTASER_SECRETSTORE_TOKEN: openbao.rootToken },
    );
    expect(bridge.code).toBe(1);
    expect(bridge.stderr).toMatch(
      /CT_BEACON_IDENTITY: OpenBao has no beacon client CA .*cloudtaser-cli source beacon-ca/,
    );
  }, 120_000);

  it('creates the CA once and prints the same public certificate every time (pem or json)', async () => {
    const env = { CLOUDTASER_SECRETSTORE_TOKEN: openbao.rootToken };
    const first = await runCli(['source', 'beacon-ca', '--secretstore-address', openbao.address], env);
    expect(first.code, first.stderr).toBe(0);
    expect(new X509Certificate(first.stdout).ca).toBe(true);
    expect(first.stdout).not.toMatch(/PRIVATE KEY/);
    const again = await runCli(
      ['source', 'beacon-ca', '--secretstore-address', openbao.address, '--output', 'json'],
      env,
    );
    const parsed = JSON.parse(again.stdout);
    expect(parsed).toMatchObject({ created: false, certPem: first.stdout });
    expect(parsed.sha256).toMatch(/^[0-9a-f]{64}$/);
    const wrong = await runCli(
      ['source', 'beacon-ca', '--secretstore-address', openbao.address, '--output', 'yaml'],
      env,
    );
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/CT_INVALID_ARGUMENT/);
  }, 120_000);
});
