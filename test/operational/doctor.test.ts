/**
 * `doctor` on both sides of the local operational stack: healthy, it exits 0; with one link broken at a time it
 * stops there and names it, with its exit code.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { BrokerHandle } from '../../runtime/broker/index.js';
import { fingerprintPrefix } from '../../runtime/core/hashes.js';
import {
  type DoctorReport,
  formatDoctorReport,
  runSourceDoctor,
  runTargetDoctor,
  SOURCE_LINKS,
  type SourceDoctorOptions,
  TARGET_LINKS,
  type TargetDoctorOptions,
} from '../../runtime/doctor/index.js';
import { KubeClient } from '../../runtime/kube/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import {
  deregisterCluster,
  type RegistrationResult,
  registerCluster,
} from '../../runtime/registration/index.js';
import { beaconCert, startTestBroker, testResolve } from '../runtime/fixtures.js';
import { listenOnLoopback } from '../support/loopback.js';
import {
  deadPort,
  expectBrokenAt,
  operatorArgs,
  operatorDeployment,
  runDoctorCli,
  startDoctorStack,
  webhookConfiguration,
} from './doctor-stack.js';
import { OPERATOR_NAMESPACE, type OperationalStack } from './stack.js';

let stack: OperationalStack;
let dir: string;

beforeAll(async () => {
  // Every target link healthy: the operator Deployment `cloudtaser` and its webhook configuration in place.
  stack = await startDoctorStack();
  dir = await mkdtemp(join(tmpdir(), 'doctor-'));
  // And the broken variants some tests point doctor at instead.
  await stack.kube.createMutatingWebhookConfiguration(webhookConfiguration('stale', beaconCert.certPem));
  const args = operatorArgs(stack);
  stack.kube.applyDeployment(operatorDeployment('crashing', args, 0));
  stack.kube.applyDeployment(
    operatorDeployment('repinned', [...args.slice(0, 3), `--ca-sha256=${'ab'.repeat(32)}`, args[4]]),
  );
}, 60_000);
afterAll(async () => {
  await stack?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const targetOptions = (extra: Partial<TargetDoctorOptions> = {}): TargetDoctorOptions => ({
  kube: stack.kubeAdmin,
  namespace: OPERATOR_NAMESPACE,
  brokerStatusUrl: stack.broker.healthUrl,
  beaconCaPem: beaconCert.certPem,
  resolve: testResolve,
  timeoutMs: 2_000,
  ...extra,
});

/**
 * A stand-in for a health port: everything from `upstream` as it is, except /status, which `edit` changes (what a
 * process reports in a state the test cannot bring about quickly). Closed by the returned function.
 */
async function editedStatus(
  upstream: string,
  edit: (status: Record<string, unknown>) => void,
): Promise<{ address: string; close(): Promise<void> }> {
  return listenOnLoopback(
    createServer(async (req, res) => {
      const real = await fetch(`${upstream}${req.url}`);
      const text = await real.text();
      if (req.url !== '/status') return res.writeHead(real.status).end(text);
      const status = JSON.parse(text) as Record<string, unknown>;
      edit(status);
      res.end(JSON.stringify(status));
    }),
  );
}

describe('target doctor', () => {
  it('walks every link of a healthy path and exits 0', async () => {
    const aborted = () =>
      stack.replicas.handles.reduce((sum, h) => sum + (h?.stats().tlsHandshakesAborted ?? 0), 0);
    const before = aborted();
    const report = await runTargetDoctor(targetOptions());
    expect(report.steps.map((s) => [s.link, s.state])).toEqual(TARGET_LINKS.map((l) => [l.id, 'ok']));
    expect(report).toMatchObject({ healthy: true, exitCode: 0 });
    // Its certificate check completes its handshakes: the beacon counts no client that gave up on its certificate.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(aborted()).toBe(before);
  });

  it("prints the broker's key hash for comparing with source doctor, and one that is not a hash as unknown", async () => {
    const status = (await (await fetch(`${stack.broker.healthUrl}/status`)).json()) as {
      brokerKeySha256: string;
    };
    expect(status.brokerKeySha256).toMatch(/^[0-9a-f]{64}$/);
    const phase = (report: DoctorReport) => report.steps.find((s) => s.link === 'broker-phase');
    expect(phase(await runTargetDoctor(targetOptions()))?.detail).toContain(
      `broker key sha256 ${status.brokerKeySha256}`,
    );
    const stand = await editedStatus(stack.broker.healthUrl!, (edited) => {
      edited.brokerKeySha256 = 'not-a-hash';
    });
    try {
      const step = phase(await runTargetDoctor(targetOptions({ brokerStatusUrl: stand.address })));
      expect(step).toMatchObject({ state: 'ok', detail: expect.stringContaining('broker key unknown') });
      expect(step?.detail).not.toContain('not-a-hash');
    } finally {
      await stand.close();
    }
  });

  it("warns ahead of the day the broker's certificate expires when it was not renewed", async () => {
    const status = (await (await fetch(`${stack.broker.healthUrl}/status`)).json()) as {
      certificateNotAfter: string;
    };
    // A year after bootstrap by default: the field is there, well ahead.
    expect(Date.parse(status.certificateNotAfter) - Date.now()).toBeGreaterThan(300 * 86_400_000);
    const soon = new Date(Date.now() + 5 * 86_400_000).toISOString();
    const stand = await editedStatus(stack.broker.healthUrl!, (status) => {
      status.certificateNotAfter = soon;
    });
    try {
      const report = await runTargetDoctor(targetOptions({ brokerStatusUrl: stand.address }));
      const step = report.steps.find((s) => s.link === 'broker-phase');
      expect(step).toMatchObject({
        state: 'warn',
        detail: expect.stringContaining('it was not renewed'),
      });
      expect(step?.fix).toContain('--rearm');
      expect(report.exitCode).toBe(0);
    } finally {
      await stand.close();
    }
  });

  it('warns as soon as a due renewal failed, and names the upgrade when the bridge predates renewals', async () => {
    const stand = await editedStatus(stack.broker.healthUrl!, (status) => {
      // 80 days left: inside the 90-day renewal window, outside the 14-day warning.
      status.certificateNotAfter = new Date(Date.now() + 80 * 86_400_000).toISOString();
      status.certificateRenewalError = {
        code: 'CT_RENEWAL_REFUSED',
        reason:
          'the bridge does not renew broker certificates (it answered 404: a version before 0.2.0); upgrade the bridge before this certificate expires',
        at: new Date().toISOString(),
      };
    });
    try {
      const report = await runTargetDoctor(targetOptions({ brokerStatusUrl: stand.address }));
      const step = report.steps.find((s) => s.link === 'broker-phase');
      expect(step).toMatchObject({
        state: 'warn',
        detail: expect.stringContaining('its renewal through the tunnel failed (CT_RENEWAL_REFUSED'),
      });
      expect(step?.fix).toContain('upgrade the bridge');
      expect(report.exitCode).toBe(0);
    } finally {
      await stand.close();
    }
  });

  it('names an unreachable API server (10)', async () => {
    const kube = KubeClient.fromConnection({
      kind: 'token',
      host: `https://127.0.0.1:${await deadPort()}`,
      token: 'x',
    });
    expectBrokenAt(await runTargetDoctor(targetOptions({ kube })), 'cluster', 10);
    kube.close();
  });

  it('checks a broker it is pointed at when there is no Deployment (a process outside the chart), saying so', async () => {
    // The dev stack runs the broker as a local process: target doctor stopped at the operator (12), always.
    const outside = await runTargetDoctor(
      targetOptions({ deployment: 'not-installed', beacon: stack.replicas.address }),
    );
    const states = Object.fromEntries(outside.steps.map((s) => [s.link, s.state]));
    expect(states).toMatchObject({
      operator: 'warn',
      'broker-status': 'ok',
      'beacon-tls': 'ok',
      trust: 'warn',
    });
    expect(outside.steps.find((s) => s.link === 'operator')?.detail).toContain(
      `no Deployment ${OPERATOR_NAMESPACE}/not-installed: checking the broker at ${stack.broker.healthUrl}`,
    );
    expect(outside.steps.find((s) => s.link === 'trust')?.detail).toMatch(
      /^not checked: without an operator Deployment/,
    );
    expect(outside).toMatchObject({ healthy: true, exitCode: 0 });
    // Without --beacon there is nothing to read it from: said so, not "the operator has no --beacon argument".
    const noBeacon = await runTargetDoctor(targetOptions({ deployment: 'not-installed' }));
    expectBrokenAt(noBeacon, 'beacon-dns', 15);
    expect(noBeacon.steps.find((s) => s.link === 'beacon-dns')?.fix).toContain(
      'pass the beacon the broker dials',
    );
  });

  it('names a missing or unavailable operator Deployment (12)', async () => {
    const missing = await runTargetDoctor(
      targetOptions({ deployment: 'not-installed', brokerStatusUrl: undefined }),
    );
    expectBrokenAt(missing, 'operator', 12);
    // The install command names the chart where users get it (the README's OCI reference), not a bare "cloudtaser".
    expect(missing.steps.find((s) => s.link === 'operator')?.fix).toContain(
      'helm install not-installed oci://ghcr.io/cloudtaser/charts/cloudtaser --version ',
    );
    const crashing = await runTargetDoctor(targetOptions({ deployment: 'crashing' }));
    expectBrokenAt(crashing, 'operator', 12);
    expect(crashing.steps[2].detail).toContain('no available replica');
  });

  it('names an unreadable broker /status (13)', async () => {
    expectBrokenAt(
      await runTargetDoctor(targetOptions({ brokerStatusUrl: `http://127.0.0.1:${await deadPort()}` })),
      'broker-status',
      13,
    );
  });

  it('names a webhook configuration whose caBundle is not the serving CA (14)', async () => {
    const report = await runTargetDoctor(targetOptions({ webhookConfiguration: 'stale' }));
    expectBrokenAt(report, 'webhook', 14);
  });

  it('names a beacon name without A-records (15), a replica that refuses TCP (16) and an untrusted certificate (17)', async () => {
    expectBrokenAt(await runTargetDoctor(targetOptions({ resolve: async () => [] })), 'beacon-dns', 15);
    const port = await deadPort();
    const tcp = await runTargetDoctor(targetOptions({ beacon: `127.0.0.1:${port}` }));
    expectBrokenAt(tcp, 'beacon-tcp', 16);
    expect(tcp.steps.find((s) => s.link === 'beacon-tcp')?.detail).toContain('ECONNREFUSED');
    const tls = await runTargetDoctor(targetOptions({ beaconCaPem: undefined }));
    expectBrokenAt(tls, 'beacon-tls', 17);
    expect(tls.steps.find((s) => s.link === 'beacon-tls')?.detail).toContain('not trusted');
  });

  it('names a pin that is not the CA the broker runs with (18)', async () => {
    const report = await runTargetDoctor(targetOptions({ deployment: 'repinned' }));
    expectBrokenAt(report, 'trust', 18);
    expect(report.steps.find((s) => s.link === 'trust')?.code).toBe('CT_PKI_CA_PIN_MISMATCH');
  });

  it('runs as `cloudtaser-cli target doctor --output json` with the exit code of the broken link', async () => {
    const kubeconfig = join(dir, 'kubeconfig');
    await stack.kube.writeKubeconfig(kubeconfig);
    const caFile = join(dir, 'beacon-ca.pem');
    await writeFile(caFile, beaconCert.certPem);
    const { exitCode, report, stderr } = await runDoctorCli([
      'target',
      'doctor',
      '--kubeconfig',
      kubeconfig,
      '--broker-status-url',
      stack.broker.healthUrl!,
      '--beacon',
      `127.0.0.1:${stack.replicas.port}`,
      '--beacon-ca',
      caFile,
      '--webhook-configuration',
      'stale',
      '--output',
      'json',
    ]);
    expect(exitCode).toBe(14);
    expect(report).toMatchObject({ side: 'target', healthy: false, brokenLink: 'webhook', exitCode: 14 });
    // And the one coded line every failing command prints on stderr (it printed nothing: an outside docs drill).
    expect(stderr.trimEnd().split('\n')).toEqual([
      expect.stringMatching(/^CT_DOCTOR_BROKEN_LINK: webhook \(exit 14\): stale's caBundle is not the CA/),
    ]);
  });
  it("points at the beacon's room, not the secret-store side, when the beacon refuses the broker a place (19)", async () => {
    // An outside drill flooded the init room with the fingerprint's hash: the doctor said the target side checks out.
    const stand = await editedStatus(stack.broker.healthUrl!, (status) => {
      status.phase = 'bootstrapping';
      status.reason =
        'the beacon at tls://127.0.0.1:443 (127.0.0.1) refused the connection: CT_BEACON_LIMIT: 8 brokers already wait for this hash';
      status.lastErrorCode = 'CT_BEACON_LIMIT';
    });
    try {
      const report = await runTargetDoctor(targetOptions({ brokerStatusUrl: stand.address }));
      expectBrokenAt(report, 'broker-phase', 19);
      const fix = report.steps.find((s) => s.link === 'broker-phase')?.fix ?? '';
      expect(fix).toContain('waiting_per_hash');
      expect(fix).not.toContain('the target side checks out');
    } finally {
      await stand.close();
    }
  });
});

describe('source doctor', () => {
  const sourceOptions = () => ({
    openbao: stack.admin,
    fingerprint: stack.cluster.fingerprint,
    bridgeHealthUrl: stack.bridge.healthUrl,
    timeoutMs: 2_000,
  });

  it('walks every link of a healthy path, including the beacon replicas the bridge sees, and exits 0', async () => {
    // The bridge dialled the second replica before it started: it is healthy once its backoff brings it back.
    await vi.waitFor(
      async () => {
        const report = await runSourceDoctor(sourceOptions());
        expect(report.steps.map((s) => [s.link, s.state])).toEqual(SOURCE_LINKS.map((l) => [l.id, 'ok']));
        expect(report.exitCode).toBe(0);
      },
      { timeout: 15_000, interval: 200 },
    );
  });

  /**
   * A second cluster registered beside the stack's, for a test to break on its own. Doctor reads OpenBao through
   * its own client, as the CLI does in its own process: a client that made the registration's writes would wait
   * for them to show (read-your-writes) instead of seeing what the test broke since.
   */
  async function withExtraCluster(
    test: (
      cluster: RegistrationResult,
      doctor: (extra?: Partial<SourceDoctorOptions>) => Promise<DoctorReport>,
    ) => Promise<void>,
    namespaceRoot?: string,
  ): Promise<void> {
    const fingerprint = randomUUID();
    const cluster = await registerCluster(namespaceRoot ? stack.admin : stack.registrar, {
      fingerprint,
      tokenReviewEndpoint: stack.bridge.tokenReviewUrl,
      ...(namespaceRoot ? { namespaceRoot } : {}),
    });
    const openbao = new OpenBaoClient({ address: stack.openbao.address, token: stack.openbao.rootToken });
    try {
      await test(cluster, (extra = {}) =>
        runSourceDoctor({
          ...sourceOptions(),
          openbao,
          fingerprint,
          ...(namespaceRoot ? { namespaceRoot } : {}),
          ...extra,
        }),
      );
    } finally {
      await openbao.close();
      await deregisterCluster(namespaceRoot ? stack.admin : stack.registrar, {
        fingerprint,
        ...(namespaceRoot ? { namespaceRoot } : {}),
      });
    }
  }

  const stepOf = (report: DoctorReport, link: string) => report.steps.find((s) => s.link === link);

  /** The text a person reads: the broken link with what to do under it, and the verdict with the exit code. */
  function expectTextSaysWhatToDo(report: DoctorReport, whatToDo: string): void {
    const lines = formatDoctorReport(report).split('\n');
    const at = lines.findIndex((line) => line.trimStart().startsWith(`BROKEN ${report.brokenLink} `));
    expect(at).toBeGreaterThan(-1);
    expect(lines[at + 1].trimStart()).toMatch(/^-> /);
    expect(lines[at + 1]).toContain(whatToDo);
    const code = stepOf(report, report.brokenLink ?? '')?.code;
    expect(lines).toContain(
      `Broken link: ${report.brokenLink} (exit ${report.exitCode})${code ? ` [${code}]` : ''}`,
    );
  }

  it('names a cluster namespace that lost a mount (22)', async () => {
    await withExtraCluster(async (cluster, doctor) => {
      await stack.admin.withNamespace(cluster.namespace).request('DELETE', 'sys/mounts/secret');
      const report = await doctor();
      expectBrokenAt(report, 'namespace', 22);
      expect(stepOf(report, 'namespace')?.detail).toBe(`namespace ${cluster.namespace} lacks secret/`);
      expectTextSaysWhatToDo(report, `cloudtaser-cli source register --fingerprint ${cluster.fingerprint}`);
    });
  });

  it('names a registration without a reviewer credential (23): made before 0.2.0, every pod login would get 403', async () => {
    await withExtraCluster(async (cluster, doctor) => {
      // What a 0.1.0 registration lacks; an outside upgrade test saw "Healthy" while every login was refused.
      await stack.admin
        .withNamespace(cluster.namespace)
        .request('DELETE', 'cloudtaser/metadata/system/tokenreview');
      const report = await doctor();
      expectBrokenAt(report, 'kubernetes-auth', 23);
      expect(stepOf(report, 'kubernetes-auth')?.detail).toContain('no TokenReview reviewer credential');
      expectTextSaysWhatToDo(report, `cloudtaser-cli source register --fingerprint ${cluster.fingerprint}`);
    });
  });

  it('names a cluster namespace that is gone while its registration record stays (22)', async () => {
    await withExtraCluster(async (cluster, doctor) => {
      await stack.admin.withNamespace('cloudtaser').deleteNamespace(fingerprintPrefix(cluster.fingerprint), {
        wait: true,
      });
      const report = await doctor();
      expectBrokenAt(report, 'namespace', 22);
      expect(stepOf(report, 'namespace')).toMatchObject({
        code: 'CT_OPENBAO_NAMESPACE_NOT_FOUND',
        detail: expect.stringContaining(`cannot read namespace ${cluster.namespace}`),
      });
      expectTextSaysWhatToDo(report, `cloudtaser-cli source register --fingerprint ${cluster.fingerprint}`);
    });
  });

  it('names a cluster whose Kubernetes auth has no configuration (23): the method was disabled and enabled again', async () => {
    await withExtraCluster(async (cluster, doctor) => {
      const namespace = stack.admin.withNamespace(cluster.namespace);
      await namespace.request('DELETE', 'sys/auth/kubernetes');
      await namespace.request('POST', 'sys/auth/kubernetes', { body: { type: 'kubernetes' } });
      const report = await doctor();
      expectBrokenAt(report, 'kubernetes-auth', 23);
      expect(stepOf(report, 'namespace')?.state).toBe('ok');
      expect(stepOf(report, 'kubernetes-auth')?.detail).toContain('pods cannot log in');
      expectTextSaysWhatToDo(
        report,
        `cloudtaser-cli source register --fingerprint ${cluster.fingerprint} --tokenreview-endpoint`,
      );
    });
  });

  it('names a bridge that does not serve the cluster (26): registered under a namespace root the bridge does not list', async () => {
    await withExtraCluster(async (cluster, doctor) => {
      await stack.bridge.pollNow();
      const report = await doctor();
      expectBrokenAt(report, 'bridge-cluster', 26);
      expect(stepOf(report, 'bridge-cluster')?.detail).toBe(
        `the bridge does not serve ${fingerprintPrefix(cluster.fingerprint)}`,
      );
      expectTextSaysWhatToDo(report, '--namespace-root');
    }, 'cloudtaser-eu');
  });

  it('names a registered cluster that never bootstrapped (27), then its tunnel once its broker is gone (28)', async () => {
    await withExtraCluster(async (cluster, doctor) => {
      // The bridge serves the new cluster from its next poll on; no broker has come yet.
      await vi.waitFor(
        async () => {
          const report = await doctor();
          expectBrokenAt(report, 'initialization', 27);
          expectTextSaysWhatToDo(report, 'cloudtaser-cli target doctor');
          // Not only "install the operator": a running one that trusted an earlier registration needs the new CA
          // pinned (an outside on-call test got "never bootstrapped, install the operator" after four attempts).
          expectTextSaysWhatToDo(report, `target trust pin --ca-sha256 ${cluster.operationalHash}`);
        },
        { timeout: 15_000, interval: 200 },
      );
      const broker = await startTestBroker({
        fingerprint: cluster.fingerprint,
        beacons: [stack.replicas.address],
        caSha256: cluster.operationalHash,
      });
      try {
        await broker.waitForPhase('operational', 20_000);
        await vi.waitFor(async () => expect((await doctor()).exitCode).toBe(0), {
          timeout: 15_000,
          interval: 200,
        });
      } finally {
        await broker.close();
      }
      await vi.waitFor(
        async () => {
          const report = await doctor();
          expectBrokenAt(report, 'tunnel', 28);
          expect(stepOf(report, 'initialization')?.state).toBe('ok');
          expect(stepOf(report, 'tunnel')).toMatchObject({
            code: 'CT_TUNNEL_CLOSED',
            detail: `the bridge holds no tunnel for ${fingerprintPrefix(cluster.fingerprint)}`,
          });
          expectTextSaysWhatToDo(report, 'cloudtaser-cli target doctor');
        },
        { timeout: 15_000, interval: 200 },
      );
      // Given the broker's /status, the broker's own word goes with it, checked and cut short (an outside drill had
      // it at hand; the doctor read it only when two brokers wanted the cluster). Here a stand-in: a broker that
      // cannot reach the beacon, whose reason carries a terminal escape.
      const unreachable = await editedStatus(stack.broker.healthUrl!, (status) => {
        status.phase = 'reconnecting';
        status.lastErrorCode = 'CT_BEACON_UNREACHABLE';
        status.reason = 'the beacon at tls://beacon.test:443 is unreachable\u001b[31m: connect ECONNREFUSED';
      });
      try {
        const told = await doctor({ brokerStatusUrl: unreachable.address });
        expect(stepOf(told, 'tunnel')?.detail).toContain(
          `says: phase reconnecting, CT_BEACON_UNREACHABLE: the beacon at tls://beacon.test:443 is unreachable [31m: connect ECONNREFUSED`,
        );
      } finally {
        await unreachable.close();
      }
      // The operator restarts without its state (a reinstall): its new broker is refused CT_ALREADY_INITIALIZED.
      // The fix is on this side (a re-arm); before, this said "run target doctor in the cluster" (exit 28).
      const restarted = await startTestBroker({
        fingerprint: cluster.fingerprint,
        beacons: [stack.replicas.address],
        caSha256: cluster.operationalHash,
      });
      try {
        await restarted.waitForPhase('rejected', 20_000);
        const report = await doctor();
        expectBrokenAt(report, 'tunnel', 28);
        expect(stepOf(report, 'tunnel')).toMatchObject({
          code: 'CT_ALREADY_INITIALIZED',
          detail: expect.stringContaining('the bridge refused a bootstrap for it'),
        });
        expectTextSaysWhatToDo(report, `cloudtaser-cli source register --fingerprint <fingerprint> --rearm`);
        // Anyone who knows the fingerprint can draw this refusal: the re-arm comes only after checking that the
        // operator's own broker is the one refused (re-arming on a stranger's refusal opens first contact to it).
        expect(stepOf(report, 'tunnel')?.fix).toMatch(
          /anyone who knows the fingerprint.*target doctor.*Only then/,
        );
      } finally {
        await restarted.close();
      }
    });
  });

  it('never says healthy while a tunnel is up and the bridge keeps refusing bootstraps for the cluster (a takeover looks like that)', async () => {
    await withExtraCluster(async (cluster, doctor) => {
      // Whoever reached the init room first holds the tunnel (here a broker knowing only the fingerprint).
      const first = await startTestBroker({
        fingerprint: cluster.fingerprint,
        beacons: [stack.replicas.address],
      });
      const second = await startTestBroker({
        fingerprint: cluster.fingerprint,
        beacons: [stack.replicas.address],
        caSha256: cluster.operationalHash,
      });
      try {
        await first.waitForPhase('operational', 20_000);
        await second.waitForPhase('rejected', 20_000);
        // Before: "ok tunnel 1 tunnel(s) up" and "Healthy: every link of the path checked out."
        await vi.waitFor(
          async () => {
            const report = await doctor();
            expect(stepOf(report, 'tunnel')).toMatchObject({
              state: 'warn',
              code: 'CT_ALREADY_INITIALIZED',
              detail: expect.stringContaining('two brokers want this cluster'),
            });
            expect(stepOf(report, 'tunnel')?.fix).toContain('target trust pin');
            const text = formatDoctorReport(report);
            expect(text).not.toContain('Healthy: every link of the path checked out.');
            expect(text).toContain('No broken link, but 1 of');
          },
          { timeout: 15_000, interval: 200 },
        );
      } finally {
        await second.close();
        await first.close();
      }
    });
  });

  /**
   * The takeover of the test above, with a probe port on each broker and the pod names an operator's pods have:
   * the first, knowing only the fingerprint, holds the tunnel; the pinned second is refused. Waits for the finding.
   */
  async function withTwoBrokers(
    test: (
      brokers: { holder: BrokerHandle; other: BrokerHandle; holderKey: string; fingerprint: string },
      doctor: (extra?: Partial<SourceDoctorOptions>) => Promise<DoctorReport>,
    ) => Promise<void>,
  ): Promise<void> {
    await withExtraCluster(async (cluster, doctor) => {
      const health = { host: '127.0.0.1', port: 0 };
      const beacons = [stack.replicas.address];
      const holder = await startTestBroker({
        fingerprint: cluster.fingerprint,
        beacons,
        health,
        podName: HOLDER_POD,
      });
      const other = await startTestBroker({
        fingerprint: cluster.fingerprint,
        beacons,
        health,
        podName: OTHER_POD,
        caSha256: cluster.operationalHash,
      });
      try {
        await holder.waitForPhase('operational', 20_000);
        await other.waitForPhase('rejected', 20_000);
        const holderKey = String(
          ((await (await fetch(`${holder.healthUrl}/status`)).json()) as Record<string, unknown>)
            .brokerKeySha256,
        );
        expect(holderKey).toMatch(/^[0-9a-f]{64}$/);
        await vi.waitFor(
          async () =>
            expect((await doctor()).steps.find((s) => s.link === 'tunnel')?.detail).toContain(
              'two brokers want this cluster',
            ),
          { timeout: 15_000, interval: 200 },
        );
        await test({ holder, other, holderKey, fingerprint: cluster.fingerprint }, doctor);
      } finally {
        await other.close();
        await holder.close();
      }
    });
  }
  const HOLDER_POD = 'cloudtaser-7c9d5-holder';
  const OTHER_POD = 'cloudtaser-7c9d5-other';

  it("names the broker holding the tunnel by its pod and key when given each broker's /status, and prints the key to compare without them", async () => {
    await withTwoBrokers(async ({ holder, other, holderKey, fingerprint }, doctor) => {
      const named = stepOf(
        await doctor({ brokerStatusUrl: [holder.healthUrl!, other.healthUrl!] }),
        'tunnel',
      );
      expect(named?.state).toBe('warn');
      expect(named?.detail).toContain(
        `the tunnel is held by pod ${HOLDER_POD} (${holder.healthUrl}), broker key sha256 ${holderKey}`,
      );
      // The refused broker never got a certificate: the other, with no key to match.
      expect(named?.detail).toContain(`the other: pod ${OTHER_POD} (${other.healthUrl}), broker key unknown`);
      expect(named?.facts).toMatchObject({
        tunnelBrokerKeys: [holderKey],
        brokers: [
          { pod: HOLDER_POD, brokerKeySha256: holderKey, holdsTunnel: true },
          { pod: OTHER_POD, brokerKeySha256: null, holdsTunnel: false },
        ],
      });
      // The same through the command, --broker-status-url once per operator pod.
      vi.stubEnv('CLOUDTASER_SECRETSTORE_TOKEN', stack.openbao.rootToken);
      try {
        const { report } = await runDoctorCli([
          ...[
            'source',
            'doctor',
            '--secretstore-address',
            stack.openbao.address,
            '--fingerprint',
            fingerprint,
          ],
          ...['--bridge-health-url', stack.bridge.healthUrl!, '--output', 'json'],
          ...['--broker-status-url', holder.healthUrl!, '--broker-status-url', other.healthUrl!],
        ]);
        expect(stepOf(report, 'tunnel')?.detail).toContain(`the tunnel is held by pod ${HOLDER_POD}`);
      } finally {
        vi.unstubAllEnvs();
      }
      const alone = stepOf(await doctor(), 'tunnel');
      expect(alone?.detail).toContain(
        `the tunnel is held by broker key sha256 ${holderKey} (no broker's /status`,
      );
      expect(alone?.fix).toContain('--broker-status-url');
    });
  });

  it('reports a key hash that is missing, not hex or the wrong length as unknown, never as the holder', async () => {
    await withTwoBrokers(async ({ holder, other, holderKey }, doctor) => {
      const hostile: Array<(status: Record<string, unknown>) => void> = [
        (status) => delete status.brokerKeySha256,
        (status) => (status.brokerKeySha256 = 'zz'.repeat(32)),
        (status) => (status.brokerKeySha256 = holderKey.slice(2)),
        (status) => (status.brokerKeySha256 = `${holderKey}00`),
      ];
      for (const edit of hostile) {
        const stand = await editedStatus(holder.healthUrl!, edit);
        try {
          const step = stepOf(await doctor({ brokerStatusUrl: [stand.address, other.healthUrl!] }), 'tunnel');
          expect(step?.detail).toContain(
            `the tunnel is held by broker key sha256 ${holderKey}, which none of the 2 broker(s) asked presents`,
          );
          expect(step?.detail).not.toContain(`held by pod ${HOLDER_POD}`);
          expect(step?.detail).toContain(`pod ${HOLDER_POD} (${stand.address}), broker key unknown`);
          expect(step?.facts?.brokers).toMatchObject([{ brokerKeySha256: null, holdsTunnel: false }, {}]);
        } finally {
          await stand.close();
        }
      }
      // The bridge's side is read the same way: a tunnel whose key is not a hash has an unknown holder.
      for (const bad of [undefined, 'zz'.repeat(32), holderKey.slice(1)]) {
        const stand = await editedStatus(stack.bridge.healthUrl!, (status) => {
          for (const entry of status.clusters as Array<{ tunnelBrokers?: Array<Record<string, unknown>> }>)
            for (const tunnel of entry.tunnelBrokers ?? []) tunnel.brokerKeySha256 = bad;
        });
        try {
          const step = stepOf(
            await doctor({
              bridgeHealthUrl: stand.address,
              brokerStatusUrl: [holder.healthUrl!, other.healthUrl!],
            }),
            'tunnel',
          );
          expect(step?.detail).toContain('two brokers want this cluster');
          expect(step?.detail).toContain('its holder is unknown, not trusted');
          expect(step?.detail).not.toContain('the tunnel is held by');
          expect(step?.facts).toMatchObject({ tunnelBrokerKeys: [null] });
        } finally {
          await stand.close();
        }
      }
    });
  });

  it('names a fingerprint that is not registered (21) and an unreachable bridge (24)', async () => {
    expectBrokenAt(
      await runSourceDoctor({ ...sourceOptions(), fingerprint: '3f0c2b1e-0000-4000-8000-000000000000' }),
      'registration',
      21,
    );
    expectBrokenAt(
      await runSourceDoctor({ ...sourceOptions(), bridgeHealthUrl: `http://127.0.0.1:${await deadPort()}` }),
      'bridge',
      24,
    );
  });

  it('names a bridge that cannot reach OpenBao (24) with its code, and says to check the network, not the policy', async () => {
    // The bridge's /status as it reads while its polls fail to connect.
    const stand = await editedStatus(stack.bridge.healthUrl!, (status) => {
      status.lastPollError =
        'CT_OPENBAO_UNREACHABLE: cannot reach OpenBao at https://openbao:8200 (ECONNREFUSED)';
    });
    try {
      const report = await runSourceDoctor({ ...sourceOptions(), bridgeHealthUrl: stand.address });
      expectBrokenAt(report, 'bridge', 24);
      const step = report.steps.find((s) => s.link === 'bridge');
      // Before: no code, and "check the bridge's OpenBao token and policy" for a network fault.
      expect(step?.code).toBe('CT_OPENBAO_UNREACHABLE');
      expect(step?.fix).toContain('cannot reach OpenBao');
      expect(step?.fix).not.toContain('policy');
    } finally {
      await stand.close();
    }
  });

  it('says to check the clocks, not to add a CA, when the beacon refuses a certificate outside its validity (24)', async () => {
    const said = async (beaconIdentityError: string) => {
      const stand = await editedStatus(stack.bridge.healthUrl!, (status) => {
        status.beaconIdentityError = beaconIdentityError;
      });
      try {
        const report = await runSourceDoctor({ ...sourceOptions(), bridgeHealthUrl: stand.address });
        expectBrokenAt(report, 'bridge', 24);
        return report.steps.find((s) => s.link === 'bridge')?.fix ?? '';
      } finally {
        await stand.close();
      }
    };
    // A bridge node 2 h ahead (an outside on-call test): the CA was fine, the fix said to add it.
    const skewed = await said(
      'CT_BEACON_UNAUTHENTICATED: the client certificate is not valid before Dec 7 16:21:31 2026 GMT',
    );
    expect(skewed).toContain('clocks');
    expect(skewed).not.toContain('--bridge-ca');
    // A bridge that sent no certificate is fixed on the bridge, not the beacon (an outside docs drill ran one with
    // --beacon-client-identity none and was told to give the beacon the CA it already had).
    const none = await said('CT_BEACON_UNAUTHENTICATED: no client certificate was presented');
    expect(none).toContain('--beacon-client-identity');
    expect(none).not.toContain('--bridge-ca');
    expect(
      await said(
        'CT_BEACON_UNAUTHENTICATED: the client certificate is not issued by a bridge CA this beacon trusts',
      ),
    ).toContain('--bridge-ca');
  });

  it('names a bridge that serves no TokenReviews (24): pod logins fail with a bare 403 while the tunnel works', async () => {
    // The bridge's /status as it reads when it runs without --tokenreview-listen (no tokenReview key).
    const stand = await editedStatus(stack.bridge.healthUrl!, (status) => {
      delete status.tokenReview;
    });
    try {
      // Before: every link ok, "Healthy", while every pod login was refused.
      const report = await runSourceDoctor({ ...sourceOptions(), bridgeHealthUrl: stand.address });
      expectBrokenAt(report, 'bridge', 24);
      const step = report.steps.find((s) => s.link === 'bridge');
      expect(step?.code).toBe('CT_TOKENREVIEW_UNAVAILABLE');
      // It said "the bridge serves OpenBao's TokenReviews" for one that does not (an outside docs drill).
      expect(step?.detail).toMatch(
        /^the bridge does not serve OpenBao's TokenReviews \(no --tokenreview-listen\)/,
      );
      expect(step?.fix).toContain('--tokenreview-listen');
    } finally {
      await stand.close();
    }
  });

  it('names a beacon replica the bridge cannot reach (25), as its /metrics reports it', async () => {
    await stack.replicas.stop(1);
    try {
      await vi.waitFor(
        async () => {
          const report = await runSourceDoctor(sourceOptions());
          expectBrokenAt(report, 'beacon-replicas', 25);
          expect(report.steps.find((s) => s.link === 'beacon-replicas')?.detail).toContain('127.0.0.2');
        },
        { timeout: 15_000, interval: 100 },
      );
    } finally {
      await stack.replicas.start(1);
    }
  });

  it('names OpenBao credentials that do not work (20)', async () => {
    expectBrokenAt(
      await runSourceDoctor({ ...sourceOptions(), openbao: stack.admin.withToken('nope') }),
      'openbao',
      20,
    );
  });

  it('names the broker phase once the bridge is gone (19), after every earlier target link checks out', async () => {
    await stack.bridge.close();
    await vi.waitFor(() => expect(stack.broker.status().phase).not.toBe('operational'), { timeout: 10_000 });
    const report = await runTargetDoctor(targetOptions());
    expectBrokenAt(report, 'broker-phase', 19);
    expect(report.steps.find((step) => step.link === 'broker-phase')?.fix).toContain('source doctor');
  });
});
