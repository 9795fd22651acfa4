/**
 * What an SRE on call gets from logs, /status and doctor when the path breaks (the in-repo operational stack): one
 * line per cause with its CT_ code (repeats summarized), the cluster's fingerprint prefix to match both sides, no
 * info line per pod request, the cause kept in /status, and doctor naming the broken link. Each case failed before.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createBridgeMetrics } from '../../runtime/bridge/index.js';
import { runTargetDoctor } from '../../runtime/doctor/index.js';
import { deregisterCluster } from '../../runtime/registration/index.js';
import { beaconCert, testResolve } from '../runtime/fixtures.js';
import { operatorArgs, operatorDeployment, webhookConfiguration } from './doctor-stack.js';
import { BOUND_SA, OPERATOR_NAMESPACE, type OperationalStack, ROLE, startOperationalStack } from './stack.js';

type Line = Record<string, unknown> & { level: string; event?: string };
const parse = (logs: string[], from = 0): Line[] => logs.slice(from).map((l) => JSON.parse(l) as Line);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('OpenBao sealed while the bridge polls', () => {
  let stack: OperationalStack;
  beforeAll(async () => {
    stack = await startOperationalStack({ logLevel: 'info' });
  });
  afterAll(async () => stack?.close());

  it('says so once, with the CT_ code as a field, not once per poll', async () => {
    const mark = stack.logs.length;
    stack.openbao.seal();
    await sleep(2_000); // ~10 polls at the test's 200 ms interval (10 s in production: 360 lines an hour)
    stack.openbao.unseal();
    await sleep(500);
    const failed = parse(stack.logs, mark).filter((l) => l.event === 'bridge.poll_failed');
    expect(failed.length).toBeGreaterThan(0);
    expect(failed[0].code).toBe('CT_OPENBAO_SEALED');
    expect(failed.length).toBeLessThanOrEqual(2);
  });

  it('logs no info line per pod login (OpenBao TokenReview)', async () => {
    const mark = stack.logs.length;
    for (let i = 0; i < 10; i++) {
      const r = await stack.podRequest('POST', '/v1/auth/kubernetes/login', {
        body: { role: ROLE, jwt: stack.podToken(BOUND_SA) },
      });
      expect(r.status).toBe(200);
    }
    const info = parse(stack.logs, mark).filter((l) => l.level === 'info');
    expect(info.map((l) => l.event)).not.toContain('broker.tokenreview');
    expect(info.length).toBeLessThan(5);
  });

  it('warns when the broker loses its tunnel, with the code, and not when the bridge drains it', async () => {
    const lost = (from: number) => parse(stack.logs, from).filter((l) => l.event === 'broker.tunnel_lost');
    const liveTunnel = () =>
      vi.waitFor(
        () => {
          const tunnel = stack.bridge.tunnels().find((t) => !t.closed);
          expect(tunnel).toBeDefined();
          return tunnel!;
        },
        { timeout: 10_000 },
      );
    await stack.broker.waitForPhase('operational', 10_000);
    let mark = stack.logs.length;
    // A drain (the bridge closing with nothing in flight): planned, no warning.
    const drained = await liveTunnel();
    drained.close({ code: 'CT_TUNNEL_DRAINED', reason: 'test drain' });
    await vi.waitFor(
      () => expect(stack.broker.tunnel() !== undefined && !stack.broker.tunnel()!.closed).toBe(true),
      {
        timeout: 10_000,
      },
    );
    await stack.broker.waitForPhase('operational', 10_000);
    expect(lost(mark)).toEqual([]);
    // A bridge that went away: pods feel it, so the broker says it at warn (before: info lines only).
    mark = stack.logs.length;
    (await liveTunnel()).close({ code: 'CT_TUNNEL_CLOSED', reason: 'test loss' });
    await vi.waitFor(() => expect(lost(mark)).toHaveLength(1), { timeout: 10_000 });
    expect(lost(mark)[0]).toMatchObject({ level: 'warn', code: 'CT_TUNNEL_CLOSED' });
    await stack.broker.waitForPhase('operational', 10_000);
  });

  it('keeps the cause in /status when the cluster is deregistered under a running broker', async () => {
    await deregisterCluster(stack.registrar, { fingerprint: stack.cluster.fingerprint });
    await stack.bridge.pollNow();
    await vi.waitFor(() => expect(stack.broker.status().phase).not.toBe('operational'), { timeout: 5_000 });
    await sleep(4_500); // two broker waits in the operational room
    const status = stack.broker.status();
    expect(status.lastErrorCode).toBe('CT_NOT_REGISTERED');
    expect(status.reason).toMatch(/not registered/);
    expect(parse(stack.logs).filter((l) => l.event === 'broker.not_registered')).toHaveLength(1);
  });
});

describe('the broker may no longer create TokenReviews (RBAC removed)', () => {
  let stack: OperationalStack;
  beforeAll(async () => {
    stack = await startOperationalStack({
      logLevel: 'info',
      bridge: {
        health: { host: '127.0.0.1', port: 0 },
        metrics: createBridgeMetrics({ processMetrics: false }),
      },
      broker: {
        webhook: {
          host: '127.0.0.1',
          port: 0,
          dnsNames: ['localhost'],
          injection: { image: 'operator:test' },
        },
      },
      operatorRbac: [
        { verbs: ['list', 'delete'], resources: ['secrets'] },
        { verbs: ['create'], resources: ['events'] },
        { verbs: ['get'], resources: ['namespaces'] },
      ],
    });
    await stack.replicas.start(1);
    await stack.kube.createMutatingWebhookConfiguration(
      webhookConfiguration('cloudtaser', stack.broker.status().webhookCaPem!),
    );
    stack.kube.applyDeployment(operatorDeployment('cloudtaser', operatorArgs(stack)));
    // Pods keep trying to log in.
    for (let i = 0; i < 20; i++) {
      const r = await stack.podRequest('POST', '/v1/auth/kubernetes/login', {
        body: { role: ROLE, jwt: stack.podToken(BOUND_SA) },
      });
      expect(r.status).toBe(403);
    }
  });
  afterAll(async () => stack?.close());

  it('logs the failure once and summarizes the repeats, not one warn per pod login', () => {
    const failed = parse(stack.logs).filter((l) => l.event === 'broker.tokenreview_failed');
    expect(failed[0]).toMatchObject({ level: 'warn', code: 'CT_KUBE_FORBIDDEN' });
    expect(failed.length).toBeLessThanOrEqual(2);
  });

  it("carries the cluster fingerprint prefix, so it can be matched with the bridge's lines for that cluster", () => {
    const failed = parse(stack.logs).find((l) => l.event === 'broker.tokenreview_failed');
    expect(failed?.fingerprintPrefix).toBe(stack.cluster.fingerprint.slice(0, 8));
  });

  it('shows it in the broker /status', async () => {
    const body = await (await fetch(`${stack.broker.healthUrl}/status`)).text();
    expect(body).toContain('CT_KUBE_FORBIDDEN');
  });

  it('target doctor does not call the path healthy', async () => {
    await vi.waitFor(
      async () => {
        const ok = await runTargetDoctor({
          kube: stack.kubeAdmin,
          namespace: OPERATOR_NAMESPACE,
          brokerStatusUrl: stack.broker.healthUrl,
          beaconCaPem: beaconCert.certPem,
          resolve: testResolve,
          timeoutMs: 2_000,
        });
        // Every link up to the broker phase checks out (the same wait doctor.test.ts does for the 2nd replica).
        expect(ok.steps.find((s) => s.link === 'beacon-tcp')?.state).not.toBe('broken');
        expect(ok.healthy, JSON.stringify(ok.steps.map((s) => [s.link, s.state]))).toBe(false);
        expect(ok.steps.find((s) => s.link === 'tokenreview')).toMatchObject({ state: 'broken' });
        expect(ok.exitCode).toBe(29);
      },
      { timeout: 8_000, interval: 500 },
    );
  });
});
