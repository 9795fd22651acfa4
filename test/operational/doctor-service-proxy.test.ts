/**
 * `cloudtaser-cli target doctor` in its default mode: it reads the broker's /status through the API server's
 * service proxy (`services/cloudtaser:metrics/proxy/status`), as on a real cluster where the admin has no route to
 * the pod. The Kubernetes test server proxies to the broker's running health server; the doctor reports the
 * broker's phase and reason from there, and names the broken link when the Service has no endpoints or the
 * credentials may not use the proxy.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runTargetDoctor, TARGET_LINKS, type TargetDoctorOptions } from '../../runtime/doctor/index.js';
import { KubeClient } from '../../runtime/kube/index.js';
import { beaconCert, testResolve } from '../runtime/fixtures.js';
import { expectBrokenAt, runDoctorCli, startDoctorStack } from './doctor-stack.js';
import { OPERATOR_NAMESPACE, type OperationalStack } from './stack.js';

let stack: OperationalStack;
let dir: string;

beforeAll(async () => {
  stack = await startDoctorStack();
  // What the chart's Service `cloudtaser` port `metrics` leads to: the broker's health server.
  stack.kube.registerServiceBackend(OPERATOR_NAMESPACE, 'cloudtaser', 'metrics', stack.broker.healthUrl!);
  dir = await mkdtemp(join(tmpdir(), 'doctor-proxy-'));
}, 60_000);

afterAll(async () => {
  await stack?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Default mode: no brokerStatusUrl, so /status comes through the service proxy. */
const defaultMode = (extra: Partial<TargetDoctorOptions> = {}): TargetDoctorOptions => ({
  kube: stack.kubeAdmin,
  namespace: OPERATOR_NAMESPACE,
  beaconCaPem: beaconCert.certPem,
  resolve: testResolve,
  timeoutMs: 2_000,
  ...extra,
});

function step(report: Awaited<ReturnType<typeof runTargetDoctor>>, link: string) {
  const found = report.steps.find((s) => s.link === link);
  if (found === undefined) throw new Error(`no step ${link}`);
  return found;
}

describe('target doctor through the service proxy (default mode)', () => {
  it("walks a healthy path and reports the broker's phase and reason read through the proxy", async () => {
    await stack.broker.waitForPhase('operational');
    const report = await runTargetDoctor(defaultMode());
    expect(report.steps.map((s) => [s.link, s.state])).toEqual(TARGET_LINKS.map((l) => [l.id, 'ok']));
    expect(report).toMatchObject({ healthy: true, exitCode: 0 });
    const status = stack.broker.status();
    expect(step(report, 'broker-status').detail).toBe(`phase operational: ${status.reason}`);
    expect(step(report, 'broker-status').facts).toMatchObject({ phase: 'operational' });
    // The trust link compared the pin with the CA prefix that only /status carries.
    expect(step(report, 'trust').detail).toContain('the broker uses it');
  });

  it('names broker-status (13) when the Service has no endpoints, quoting the API server', async () => {
    stack.kube.registerServiceBackend(OPERATOR_NAMESPACE, 'cloudtaser', 'metrics', null);
    try {
      const report = await runTargetDoctor(defaultMode());
      expectBrokenAt(report, 'broker-status', 13);
      const broken = step(report, 'broker-status');
      expect(broken.detail).toContain("through the API server's service proxy (services/cloudtaser:metrics)");
      expect(broken.detail).toContain('no endpoints available for service "cloudtaser"');
      expect(broken.code).toBe('CT_KUBE_ERROR');
    } finally {
      stack.kube.registerServiceBackend(OPERATOR_NAMESPACE, 'cloudtaser', 'metrics', stack.broker.healthUrl!);
    }
  });

  it('names broker-status (13) with the RBAC to add when the credentials may not use the proxy', async () => {
    await stack.kube.createServiceAccount(OPERATOR_NAMESPACE, 'auditor');
    const who = { namespace: OPERATOR_NAMESPACE, name: 'auditor' };
    // Everything the links before broker-status read, and not services/proxy.
    stack.kube.grant(who, { verbs: ['get'], resources: ['namespaces'], resourceNames: ['kube-system'] });
    stack.kube.grant(who, { verbs: ['get'], apiGroups: ['apps'], resources: ['deployments'] });
    const kube = KubeClient.fromConnection({
      kind: 'token',
      host: stack.kube.url,
      token: stack.kube.issueServiceAccountToken(OPERATOR_NAMESPACE, 'auditor'),
      clusterCaCertificate: stack.kube.caCertPem,
    });
    try {
      const report = await runTargetDoctor(defaultMode({ kube }));
      expectBrokenAt(report, 'broker-status', 13);
      const broken = step(report, 'broker-status');
      expect(broken.code).toBe('CT_KUBE_FORBIDDEN');
      expect(broken.detail).toContain('cannot get resource "services/proxy"');
      expect(broken.fix).toContain('`get services/proxy`');

      stack.kube.grant(who, { verbs: ['get'], resources: ['services/proxy'], namespace: OPERATOR_NAMESPACE });
      const allowed = await runTargetDoctor(defaultMode({ kube }));
      expect(step(allowed, 'broker-status').state).toBe('ok');
    } finally {
      kube.close();
    }
  });

  it('runs as `cloudtaser-cli target doctor --output json` without --broker-status-url', async () => {
    const kubeconfig = join(dir, 'kubeconfig');
    await stack.kube.writeKubeconfig(kubeconfig);
    stack.kube.registerServiceBackend(OPERATOR_NAMESPACE, 'cloudtaser', 'metrics', null);
    let result: Awaited<ReturnType<typeof runDoctorCli>>;
    try {
      result = await runDoctorCli([
        'target',
        'doctor',
        '--kubeconfig',
        kubeconfig,
        '--namespace',
        OPERATOR_NAMESPACE,
        '--output',
        'json',
      ]);
    } finally {
      stack.kube.registerServiceBackend(OPERATOR_NAMESPACE, 'cloudtaser', 'metrics', stack.broker.healthUrl!);
    }
    const { exitCode, report } = result;
    expect(exitCode).toBe(13);
    expect(report).toMatchObject({
      side: 'target',
      healthy: false,
      brokenLink: 'broker-status',
      exitCode: 13,
    });
    expect(JSON.stringify(report)).toContain('no endpoints available for service \\"cloudtaser\\"');
  });

  it('reports a broker that lost its bridge at broker-phase (19) with the phase and reason its /status serves', async () => {
    await stack.bridge.close();
    await vi.waitFor(() => expect(stack.broker.status().phase).not.toBe('operational'), { timeout: 10_000 });
    await vi.waitFor(
      async () => {
        const report = await runTargetDoctor(defaultMode());
        expectBrokenAt(report, 'broker-phase', 19);
        // Read through the proxy at the same moment the broker served it; the reason moves between retries.
        const served = (await stack.kubeAdmin.getServiceProxy(
          OPERATOR_NAMESPACE,
          'cloudtaser',
          'metrics',
          'status',
        )) as { phase: string; reason: string };
        expect(step(report, 'broker-phase').detail).toBe(`the broker is ${served.phase}: ${served.reason}`);
        expect(step(report, 'broker-status').facts).toMatchObject({ phase: served.phase });
      },
      { timeout: 15_000, interval: 200 },
    );
  });
});
