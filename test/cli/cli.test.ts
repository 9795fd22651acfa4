import { spawn } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { markClusterInitialized, renderPolicyHcl } from '../../runtime/registration/index.js';
import { provisionIdentities } from '../openbao-identities.js';
import { CLI, runCli } from './run-cli.js';

/** The built CLI refuses `args` as a usage error (exit 2) with `text` on stderr. */
async function expectUsageError(args: string[], text: string): Promise<void> {
  const refused = await runCli(args);
  expect(refused.code, args.join(' ')).toBe(2);
  expect(refused.stderr).toContain(text);
}

describe('cloudtaser-cli against the test servers', () => {
  let openbao: OpenBaoTestServer;
  let kube: KubeTestServer;
  let kubeconfig: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    openbao = await startOpenBaoTestServer();
    kube = await startKubeTestServer();
    const dir = await mkdtemp(join(tmpdir(), 'cloudtaser-cli-'));
    kubeconfig = join(dir, 'kubeconfig');
    await kube.writeKubeconfig(kubeconfig);
    // The CLI registers with the registrar identity only, as an operator following docs/openbao-policies.md.
    const admin = new OpenBaoClient({ address: openbao.address, token: openbao.rootToken });
    env = { CLOUDTASER_SECRETSTORE_TOKEN: (await provisionIdentities(admin)).registrarToken };
    await admin.close();
  });
  afterAll(async () => {
    await openbao?.close();
    await kube?.close();
  });

  it('target fingerprint prints the source description text with the kube-system UID', async () => {
    const result = await runCli(['target', 'fingerprint', '--kubeconfig', kubeconfig]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('cloudtaser Cluster Fingerprint');
    expect(result.stdout).toContain(`Cluster ID: ${kube.kubeSystemUid}`);
    expect(result.stdout).toContain(`cloudtaser-cli source register --fingerprint ${kube.kubeSystemUid}`);
  });

  it('target fingerprint --output json gives the fingerprint', async () => {
    const result = await runCli(['target', 'fingerprint', '--output', 'json'], { KUBECONFIG: kubeconfig });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout).fingerprint).toBe(kube.kubeSystemUid);
  });

  it('register, status and deregister round-trip with JSON output', async () => {
    const fp = kube.kubeSystemUid;
    const base = ['--fingerprint', fp, '--secretstore-address', openbao.address, '--output', 'json'];
    const registered = await runCli(['source', 'register', ...base], env);
    expect(registered.code, registered.stderr).toBe(0);
    const view = JSON.parse(registered.stdout);
    expect(view).toMatchObject({
      fingerprint: fp,
      namespace: `cloudtaser/${fp.slice(0, 8)}`,
      initialized: false,
    });
    expect(view.initHash).toMatch(/^[0-9a-f]{64}$/);
    expect(view.operationalHash).toMatch(/^[0-9a-f]{64}$/);

    const status = JSON.parse((await runCli(['source', 'status', ...base], env)).stdout);
    expect(status).toMatchObject({
      fingerprint: fp,
      registered: true,
      initialized: false,
      namespace: view.namespace,
    });

    const again = JSON.parse((await runCli(['source', 'register', ...base], env)).stdout);
    expect(again.operationalHash).toBe(view.operationalHash);

    // The broker bootstraps (the bridge marks it initialized); --rearm removes that record: a change, once.
    const admin = new OpenBaoClient({ address: openbao.address, token: openbao.rootToken });
    await markClusterInitialized(admin, { fingerprint: fp, brokerCertSha256: 'a'.repeat(64) });
    await admin.close();
    const rearmed = JSON.parse(
      (await runCli(['source', 'register', ...base, '--rearm', '--rearm-window', '30m'], env)).stdout,
    );
    expect(rearmed).toMatchObject({ initialized: false, changed: true });
    // The re-arm closes by itself after its window (30 minutes here, from this run).
    const window = Date.parse(rearmed.rearmExpiresAt) - Date.now();
    expect(window).toBeGreaterThan(25 * 60_000);
    expect(window).toBeLessThanOrEqual(30 * 60_000);
    expect(JSON.parse((await runCli(['source', 'status', ...base], env)).stdout).rearmExpiresAt).toBe(
      rearmed.rearmExpiresAt,
    );
    const text = ['--fingerprint', fp, '--secretstore-address', openbao.address];
    expect((await runCli(['source', 'status', ...text], env)).stdout).toContain(
      `Re-armed:    until ${rearmed.rearmExpiresAt} (one more bootstrap allowed)`,
    );
    // Again: nothing to remove, but the window starts anew (a change: the record is written).
    const rearmedAgain = JSON.parse((await runCli(['source', 'register', ...base, '--rearm'], env)).stdout);
    expect(rearmedAgain).toMatchObject({ initialized: false, changed: true });
    expect(Date.parse(rearmedAgain.rearmExpiresAt) - Date.now()).toBeGreaterThan(55 * 60_000);
    const badWindow = await runCli(['source', 'register', ...base, '--rearm', '--rearm-window', 'soon'], env);
    expect(badWindow.code).toBe(2);
    expect(badWindow.stderr).toMatch(/^CT_INVALID_ARGUMENT: --rearm-window "soon" is not a duration/);
    // The README's "at most 7 days" as typed: 7d is a duration (an outside docs drill was refused it).
    const week = JSON.parse(
      (await runCli(['source', 'register', ...base, '--rearm', '--rearm-window', '7d'], env)).stdout,
    );
    expect(Date.parse(week.rearmExpiresAt) - Date.now()).toBeGreaterThan(6.9 * 86_400_000);
    // A window without --rearm opens nothing here: said on stderr, not dropped without a word (an outside drill).
    const unused = await runCli(['source', 'register', ...base, '--rearm-window', '2h'], env);
    expect(unused.code, unused.stderr).toBe(0);
    expect(unused.stderr).toContain('"event":"registration.rearm_window_unused"');
    const plain = await runCli(['source', 'register', ...base], env);
    expect(plain.stderr).not.toContain('rearm_window_unused');
    // A window of years would be the unbounded re-arm again: refused before anything is written.
    const longWindow = await runCli(
      ['source', 'register', ...base, '--rearm', '--rearm-window', '200h'],
      env,
    );
    expect(longWindow.code).toBe(2);
    expect(longWindow.stderr).toMatch(
      /^CT_INVALID_ARGUMENT: the re-arm window must be between 1 ms and 168 h/,
    );

    const gone = await runCli(['source', 'deregister', ...base], env);
    expect(gone.code).toBe(0);
    expect(JSON.parse(gone.stdout)).toMatchObject({ removed: true, purged: false, namespaceKept: true });
    const after = JSON.parse((await runCli(['source', 'status', ...base], env)).stdout);
    expect(after).toMatchObject({
      registered: false,
      namespaceKept: true,
      registeredAt: null,
      deregisteredAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    // The same keys in every state, so a script need not ask whether a key exists before reading it.
    expect(Object.keys(after)).toEqual(Object.keys(status));
    expect(status).toMatchObject({ namespaceKept: null, registeredAt: expect.any(String) });

    // The text names the namespace left with its secrets (it said "none" before), and what to run.
    const kept = await runCli(['source', 'status', ...text], env);
    expect(kept.stdout).toContain(
      `Namespace:   cloudtaser/${fp.slice(0, 8)} remains with its workload secrets (deregistered without --purge at ${after.deregisteredAt};`,
    );
    const purged = await runCli(['source', 'deregister', ...text, '--purge'], env);
    expect(purged.stdout).toBe(
      `Was not registered: cluster ${fp} (namespace and workload secrets deleted)\n`,
    );
    expect((await runCli(['source', 'status', ...text], env)).stdout).toContain(
      `Namespace:   none (registering creates cloudtaser/${fp.slice(0, 8)})`,
    );
    // A fingerprint never registered: no namespace is named as if kept.
    const never = await runCli(['source', 'deregister', ...text], env);
    expect(never.stdout).toBe(
      `Was not registered: cluster ${fp} (no namespace cloudtaser/${fp.slice(0, 8)} of its own exists)\n`,
    );
  });

  it('source policy prints the shipped policy of each identity, under any namespace root, without OpenBao', async () => {
    for (const identity of ['bridge', 'registrar'] as const) {
      const printed = await runCli(['source', 'policy', identity]);
      expect(printed.code, printed.stderr).toBe(0);
      expect(printed.stdout).toBe(renderPolicyHcl(identity));
    }
    const other = await runCli(['source', 'policy', 'registrar', '--namespace-root', 'acme']);
    expect(other.stdout).toBe(renderPolicyHcl('registrar', { namespaceRoot: 'acme' }));
    expect(other.stdout).toContain('path "acme/+/sys/auth/kubernetes"');
    const lean = await runCli(['source', 'policy', 'bridge', '--no-migration']);
    expect(lean.stdout).not.toContain('/secret/');
    for (const args of [
      ['source', 'policy', 'admin'],
      ['source', 'policy', 'bridge', '--namespace-root', 'a/b'],
    ]) {
      const bad = await runCli(args);
      expect(bad.code, args.join(' ')).toBe(2); // a usage error (test/cli/conventions.test.ts)
      expect(bad.stderr).toMatch(/^CT_INVALID_ARGUMENT: /);
      expect(bad.stdout).toBe('');
    }
  });

  it('register --migration / --no-migration switch the setting; without either it is kept', async () => {
    const fp = crypto.randomUUID();
    const base = ['source', 'register', '--fingerprint', fp, '--secretstore-address', openbao.address];
    const on = await runCli([...base, '--migration', '--output', 'json'], env);
    expect(on.code, on.stderr).toBe(0);
    expect(JSON.parse(on.stdout).migrationEnabled).toBe(true);
    const kept = await runCli(base, env);
    expect(kept.stdout).toContain('Migration:        enabled');
    const off = await runCli([...base, '--no-migration', '--output', 'json'], env);
    expect(JSON.parse(off.stdout).migrationEnabled).toBe(false);
    const status = await runCli(
      ['source', 'status', '--fingerprint', fp, '--secretstore-address', openbao.address],
      env,
    );
    expect(status.stdout).toContain('Migration:   disabled');
    // The hash `target trust pin --ca-sha256` takes, in the text a pin-mismatch message sends people to.
    const hash = /Operational hash: +([0-9a-f]{64})/.exec(kept.stdout)![1];
    expect(status.stdout).toContain(`Operational hash: ${hash}`);
    const rearm = await runCli([...base, '--rearm'], env);
    expect(rearm.stdout).toContain('Re-armed: the next broker that reaches the bridge with this fingerprint');
    // Never bootstrapped: nothing was re-armed, and the first line does not claim it (an outside upgrade test).
    expect(rearm.stdout).toContain(
      'nothing to re-arm, it has not bootstrapped yet; its first bootstrap is open until',
    );
    expect(rearm.stdout).not.toContain('(re-armed: one more bootstrap allowed)');
  });

  it('status tells a run stopped half-way (a CA, no record) from a deregistration that kept the namespace', async () => {
    // An interrupted create read as "deregistered without --purge" (an outside CDKTF test); the hint also lacked
    // the address it needs.
    const fp = crypto.randomUUID();
    const text = ['--fingerprint', fp, '--secretstore-address', openbao.address];
    expect((await runCli(['source', 'register', ...text], env)).code).toBe(0);
    const admin = new OpenBaoClient({ address: openbao.address, token: openbao.rootToken });
    try {
      await admin.withNamespace('cloudtaser').kvDeleteMetadata('cloudtaser', `clusters/${fp}/registered`);
    } finally {
      await admin.close();
    }
    const status = await runCli(['source', 'status', ...text], env);
    expect(status.stdout).toContain(
      `Namespace:   cloudtaser/${fp.slice(0, 8)} exists with a cluster CA but no registration record (a register or a deregister stopped half-way)`,
    );
    expect(status.stdout).not.toContain('deregistered without --purge');
    expect(status.stdout).toContain(
      `Register it with: cloudtaser-cli source register --fingerprint ${fp} --secretstore-address ${openbao.address}\n`,
    );
    expect(
      JSON.parse((await runCli(['source', 'status', ...text, '--output', 'json'], env)).stdout),
    ).toMatchObject({
      registered: false,
      incomplete: true,
      namespaceKept: true,
    });
  });

  it('register in text mode tells the admin the one Helm value to set', async () => {
    const fp = crypto.randomUUID();
    const result = await runCli(
      ['source', 'register', '--fingerprint', fp, '--secretstore-address', openbao.address],
      env,
    );
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`Registered cluster ${fp}`);
    expect(result.stdout).toContain('operator.broker.beacon.address=');
  });

  it.each([
    [['source', 'register', '--fingerprint', 'nope'], 'CT_INVALID_FINGERPRINT'],
    [['source', 'status', '--fingerprint', '../../sys'], 'CT_INVALID_FINGERPRINT'],
  ])('refuses bad input %j with %s and exit 2 (a usage error)', async (args, code) => {
    const result = await runCli([...args, '--secretstore-address', openbao.address], env);
    expect(result.code).toBe(2);
    expect(result.stderr.trim()).toMatch(new RegExp(`^${code}: `));
    expect(result.stdout).toBe('');
  });

  it('reports a wrong token in one line without echoing it', async () => {
    const result = await runCli(
      [
        'source',
        'register',
        '--fingerprint',
        crypto.randomUUID(),
        '--secretstore-address',
        openbao.address,
        '--secretstore-token',
        'wrong-token-123',
      ],
      {},
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^CT_OPENBAO_PERMISSION_DENIED: /);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).not.toContain('wrong-token-123');
  });

  it('reports a missing token with the environment variables to set', async () => {
    const result = await runCli([
      'source',
      'register',
      '--fingerprint',
      crypto.randomUUID(),
      '--secretstore-address',
      openbao.address,
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^CT_TOKEN_MISSING: .*CLOUDTASER_SECRETSTORE_TOKEN/);
  });

  it('reports an unreachable secret store with its address', async () => {
    const result = await runCli(
      [
        'source',
        'status',
        '--fingerprint',
        crypto.randomUUID(),
        '--secretstore-address',
        'http://127.0.0.1:9',
      ],
      env,
    );
    expect(result.code).toBe(75); // temporary: a script may retry it
    expect(result.stderr).toMatch(/^CT_OPENBAO_UNREACHABLE: .*127\.0\.0\.1:9/);
  });

  it('reports an OpenBao without namespaces clearly', async () => {
    const old = await startOpenBaoTestServer({ namespaces: false });
    const result = await runCli(
      ['source', 'register', '--fingerprint', crypto.randomUUID(), '--secretstore-address', old.address],
      {
        CLOUDTASER_SECRETSTORE_TOKEN: old.rootToken,
      },
    );
    await old.close();
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^CT_OPENBAO_NAMESPACES_UNSUPPORTED: .*2\.3/);
  });

  it('reports an unreachable cluster for target fingerprint', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cloudtaser-cli-'));
    const broken = join(dir, 'kubeconfig');
    const text = (await readFile(kubeconfig, 'utf8')).replace(/server: .*/, 'server: https://127.0.0.1:9');
    await (await import('node:fs/promises')).writeFile(broken, text);
    const result = await runCli(['target', 'fingerprint', '--kubeconfig', broken]);
    expect(result.code).toBe(75);
    expect(result.stderr).toMatch(/^CT_KUBE_UNREACHABLE: /);
  });

  it("source commands log the OpenBao client's warnings on stderr (warn by default), and --log-level sets the level", async () => {
    // An outside fleet test ran register under a quota and through an HA standby and saw nothing on stderr: the CLI
    // gave its OpenBao client no logger, so the documented openbao.rate_limited lines (and --log-level) did nothing.
    const limited = await startOpenBaoTestServer();
    try {
      const admin = new OpenBaoClient({ address: limited.address, token: limited.rootToken });
      const registrar = (await provisionIdentities(admin)).registrarToken;
      await admin.request('POST', 'sys/quotas/rate-limit/cli-test', {
        body: { rate: 20, interval: '1s', path: 'cloudtaser/' },
      });
      const args = (fp: string) => [
        'source',
        'register',
        '--fingerprint',
        fp,
        '--secretstore-address',
        limited.address,
      ];
      const quota = { CLOUDTASER_SECRETSTORE_TOKEN: registrar };
      const logged = await runCli(args(crypto.randomUUID()), quota);
      expect(logged.code, logged.stderr).toBe(0);
      const lines = logged.stderr
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(lines.some((line) => line.event === 'openbao.rate_limited' && line.level === 'warn')).toBe(true);
      // Warn and above by default: the registration's info lines stay off a script's stderr.
      expect(lines.filter((line) => line.level === 'info')).toEqual([]);
      const quiet = await runCli([...args(crypto.randomUUID()), '--log-level', 'error'], quota);
      expect(quiet.code).toBe(0);
      expect(quiet.stderr).toBe('');
      await admin.request('DELETE', 'sys/quotas/rate-limit/cli-test');
      await admin.close();
      const chatty = await runCli([...args(crypto.randomUUID()), '--log-level', 'info'], quota);
      expect(chatty.stderr).toContain('"event":"registration.recorded"');
    } finally {
      await limited.close();
    }
  }, 60_000);

  it('usage errors exit 2 with CT_INVALID_ARGUMENT; --help exits 0 everywhere', async () => {
    const unknown = await runCli(['source', 'register', '--no-such-flag']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/CT_INVALID_ARGUMENT: /);
    for (const args of [
      ['--help'],
      ['source', '--help'],
      ['source', 'register', '--help'],
      ['target', 'fingerprint', '--help'],
      ['dev', 'up', '--help'],
    ]) {
      const help = await runCli(args);
      expect(help.code, args.join(' ')).toBe(0);
      expect(help.stdout).toContain('Usage:');
    }
  });

  it('the doctors refuse a probe URL that is not http(s) as a usage error, not as a broken link', async () => {
    // Before: "BROKEN bridge ... Failed to parse URL", exit 24 (a broken bridge), for a typo in a flag.
    await expectUsageError(
      [
        'source',
        'doctor',
        '--secretstore-address',
        'http://127.0.0.1:1',
        '--fingerprint',
        '0ad50c05-1153-4508-9237-4cb2912e2c23',
        '--bridge-health-url',
        'notaurl',
      ],
      'CT_INVALID_ARGUMENT: --bridge-health-url "notaurl" must be an http:// or https:// URL',
    );
    await expectUsageError(
      ['target', 'doctor', '--broker-status-url', 'ftp://x'],
      'CT_INVALID_ARGUMENT: --broker-status-url "ftp://x" must be an http:// or https:// URL',
    );
  });

  it('dev up refuses a --dir it cannot create or that is a file, at once (it hung on /proc/x)', async () => {
    for (const dir of ['/proc/cloudtaser-dev-test/x', CLI])
      await expectUsageError(['dev', 'up', '--dir', dir], `CT_INVALID_ARGUMENT: cannot use --dir ${dir}`);
  });

  it('bridge run and broker run refuse a --beacon-ca that holds no certificate, at start', async () => {
    // An outside drill: both accepted a garbage file and every beacon dial then failed with OpenSSL's text.
    const dir = await mkdtemp(join(tmpdir(), 'cloudtaser-beacon-ca-'));
    const garbage = join(dir, 'ca.pem');
    await writeFile(garbage, 'not a certificate\n');
    for (const process of ['bridge', 'broker']) {
      await expectUsageError(
        [process, 'run', '--beacon', 'beacon.test:443', '--beacon-ca', garbage],
        `CT_INVALID_ARGUMENT: --beacon-ca ${garbage} holds no usable PEM CA certificate`,
      );
    }
  });

  it('bridge run refuses shard settings it cannot use before it connects to anything', async () => {
    const tooMany = await runCli(['bridge', 'run', '--beacon', 'beacon.test:443', '--shards', '2000']);
    expect(tooMany.code).toBe(2);
    expect(tooMany.stderr).toContain(
      'CT_INVALID_ARGUMENT: --shards 2000 must be a whole number from 1 to 1024',
    );
    const replicas = await runCli([
      'bridge',
      'run',
      '--beacon',
      'beacon.test:443',
      '--shards',
      '8',
      '--shard-replicas',
      '5',
    ]);
    expect(replicas.code).toBe(2);
    expect(replicas.stderr).toContain('--shard-replicas 5 must be 1, 2 or 3');
    // Outside a pod, without --shard-namespace: where would the Leases live?
    const nowhere = await runCli(['bridge', 'run', '--beacon', 'beacon.test:443', '--shards', '8']);
    expect(nowhere.code).toBe(2);
    expect(nowhere.stderr).toContain('pass --shard-namespace, or set POD_NAMESPACE');
    // Its own A-record among the TokenReview peers must be an IP address (a name would never match one).
    await expectUsageError(
      ['bridge', 'run', '--beacon', 'beacon.test:443', '--tokenreview-peer-address', 'bridge-0.openbao.svc'],
      'CT_INVALID_ARGUMENT: --tokenreview-peer-address (or POD_IP) "bridge-0.openbao.svc" must be this pod\'s IP address',
    );
  });

  it('dev up --standby redirect starts an HA standby that the CLI registers and reads through', async () => {
    // An outside fleet test imported the test server's startStandby from dist to try a standby; now it is a flag.
    const child = spawn(
      process.execPath,
      [CLI, 'dev', 'up', '--standby', 'redirect', '--standby-read-lag', '200ms'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    try {
      const info = JSON.parse(
        await new Promise<string>((resolve, reject) => {
          createInterface({ input: child.stdout }).once('line', resolve);
          child.once('exit', (code) => reject(new Error(`dev up exited ${code}`)));
        }),
      );
      expect(info.secretstoreStandbyAddress).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(info.secretstoreStandbyAddress).not.toBe(info.secretstoreAddress);
      const health = await fetch(`${info.secretstoreStandbyAddress}/v1/sys/health?standbyok=true`);
      expect(await health.json()).toMatchObject({ standby: true });
      const env = { CLOUDTASER_SECRETSTORE_TOKEN: info.registrarToken };
      const at = [
        '--fingerprint',
        info.kubeSystemUid,
        '--secretstore-address',
        info.secretstoreStandbyAddress,
      ];
      const registered = await runCli(['source', 'register', ...at, '--output', 'json'], env);
      expect(registered.code, registered.stderr).toBe(0);
      const status = await runCli(['source', 'status', ...at, '--output', 'json'], env);
      expect(JSON.parse(status.stdout)).toMatchObject({ registered: true });
    } finally {
      child.kill('SIGTERM');
    }
  });

  it('dev up refuses a --standby mode or read lag it does not know, before starting anything', async () => {
    await expectUsageError(['dev', 'up', '--standby', 'sideways'], 'CT_INVALID_ARGUMENT: --standby must be');
    await expectUsageError(
      ['dev', 'up', '--standby-read-lag', '100ms'],
      'CT_INVALID_ARGUMENT: --standby-read-lag needs --standby',
    );
    // A duration with its unit, as every duration flag.
    await expectUsageError(
      ['dev', 'up', '--standby', 'redirect', '--standby-read-lag', '100'],
      'CT_INVALID_ARGUMENT: --standby-read-lag "100" needs a unit',
    );
  });

  it('dev up prints one JSON line with a working stack and cleans up on SIGTERM', async () => {
    const child = spawn(process.execPath, [CLI, 'dev', 'up', '--json'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // A failed expectation below must not leave the stack running (one did, for the rest of a session).
    onTestFinished(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    const line: string = await new Promise((resolve, reject) => {
      const rl = createInterface({ input: child.stdout });
      rl.once('line', resolve);
      child.once('exit', (code) => reject(new Error(`dev up exited ${code}`)));
    });
    const info = JSON.parse(line);
    // Exactly the keys the README's "Local dev stack" names (it once listed fewer than were printed).
    const readme = await readFile(join(import.meta.dirname, '../../README.md'), 'utf8');
    const paragraph = readme.slice(
      readme.indexOf('### Local dev stack'),
      readme.indexOf('## Operating cloudtaser'),
    );
    const documented = paragraph.slice(paragraph.indexOf('prints one JSON line')).split(') and runs')[0];
    const named = [...documented.matchAll(/`([A-Za-z]+)`/g)].map((m) => m[1]);
    expect(Object.keys(info).sort()).toEqual([...new Set(named)].sort());
    // It says where the metrics are, and the beacon's answer there is Prometheus text.
    expect(info.metrics.bridge).toContain('--metrics-listen');
    expect(info.metrics.broker).toContain('--metrics-listen');
    const scraped = await fetch(info.metrics.beacon);
    expect(scraped.status).toBe(200);
    expect(await scraped.text()).toContain('# TYPE cloudtaser_beacon_connections gauge');
    const fingerprint = JSON.parse(
      (await runCli(['target', 'fingerprint', '--kubeconfig', info.kubeconfig, '--output', 'json'])).stdout,
    ).fingerprint;
    const registered = await runCli(
      [
        'source',
        'register',
        '--fingerprint',
        fingerprint,
        '--secretstore-address',
        info.secretstoreAddress,
        '--output',
        'json',
      ],
      {
        CLOUDTASER_SECRETSTORE_TOKEN: info.secretstoreToken,
      },
    );
    expect(registered.code, registered.stderr).toBe(0);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
