/**
 * Shared setup for the doctor tests: the local operational stack with what `cloudtaser-cli target doctor` reads on
 * a real cluster (the operator's Deployment, its MutatingWebhookConfiguration), and the assertions on a report.
 * doctor.test.ts and doctor-service-proxy.test.ts use it.
 */
import { createServer } from 'node:net';
import { expect, vi } from 'vitest';
import { createBridgeMetrics } from '../../runtime/bridge/index.js';
import { buildProgram } from '../../runtime/cli/program.js';
import type { DoctorReport } from '../../runtime/doctor/index.js';
import { OPERATOR_NAMESPACE, type OperationalStack, startOperationalStack } from './stack.js';

/** An apps/v1 Deployment as the operator chart renders it, with the status the Deployment controller would report. */
export function operatorDeployment(name: string, args: string[], available = 1) {
  const probe = (path: string) => ({ httpGet: { path, port: 'health' } });
  return {
    metadata: { name, namespace: OPERATOR_NAMESPACE },
    spec: {
      replicas: 1,
      template: {
        spec: {
          containers: [
            { name: 'operator', args, livenessProbe: probe('/healthz'), readinessProbe: probe('/readyz') },
          ],
        },
      },
    },
    status: { replicas: 1, availableReplicas: available, readyReplicas: available },
  };
}

/**
 * Starts the operational stack (OpenBao, beacon replicas on both addresses the beacon name resolves to, bridge,
 * broker with its webhook) and places the operator Deployment `cloudtaser` and the MutatingWebhookConfiguration
 * `cloudtaser` whose caBundle is the webhook's serving CA: every target link is healthy.
 */
export async function startDoctorStack(): Promise<OperationalStack> {
  const stack = await startOperationalStack({
    bridge: {
      health: { host: '127.0.0.1', port: 0 },
      metrics: createBridgeMetrics({ processMetrics: false }),
    },
    broker: {
      webhook: { host: '127.0.0.1', port: 0, dnsNames: ['localhost'], injection: { image: 'operator:test' } },
    },
  });
  await stack.replicas.start(1);
  await stack.kube.createMutatingWebhookConfiguration(
    webhookConfiguration('cloudtaser', stack.broker.status().webhookCaPem!),
  );
  stack.kube.applyDeployment(operatorDeployment('cloudtaser', operatorArgs(stack)));
  return stack;
}

/** The operator's command line as the chart renders it for this stack. */
export function operatorArgs(stack: OperationalStack): string[] {
  return [
    'broker',
    'run',
    `--beacon=${stack.replicas.address}`,
    `--ca-sha256=${stack.cluster.operationalHash}`,
    '--webhook-configuration=cloudtaser',
  ];
}

export function webhookConfiguration(name: string, caPem: string) {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name },
    webhooks: [
      {
        name: 'inject.cloudtaser.io',
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        clientConfig: {
          service: { name: 'cloudtaser', namespace: OPERATOR_NAMESPACE, path: '/mutate-pods' },
          caBundle: Buffer.from(caPem).toString('base64'),
        },
      },
    ],
  };
}

/** The report stops at `link` with `code`, says what to do there, and checked exactly the links before it. */
export function expectBrokenAt(report: DoctorReport, link: string, code: number): void {
  expect(report.healthy).toBe(false);
  expect(report.brokenLink).toBe(link);
  expect(report.exitCode).toBe(code);
  const index = report.steps.findIndex((s) => s.link === link);
  expect(report.steps[index].fix?.length).toBeGreaterThan(10);
  for (const step of report.steps.slice(0, index)) expect(step.state).not.toBe('not-checked');
  for (const step of report.steps.slice(index + 1)) expect(step.state).toBe('not-checked');
}

/** A loopback port nothing listens on. */
export async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Runs `cloudtaser-cli <args>` in this process as a user would (`--output json`), and gives back the exit code it
 * set and the report it printed; stdout and process.exitCode are restored afterwards.
 */
export async function runDoctorCli(
  args: string[],
): Promise<{ exitCode: number | undefined; report: DoctorReport; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out.push(String(chunk));
    return true;
  });
  const errSpy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    err.push(String(chunk));
    return true;
  });
  const previous = process.exitCode;
  let exitCode: number | undefined;
  try {
    await buildProgram().parseAsync(['node', 'cloudtaser-cli', ...args]);
    exitCode = process.exitCode === undefined ? undefined : Number(process.exitCode);
  } finally {
    spy.mockRestore();
    errSpy.mockRestore();
    process.exitCode = previous;
  }
  return { exitCode, report: JSON.parse(out.join('')) as DoctorReport, stderr: err.join('') };
}
