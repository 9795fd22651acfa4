/**
 * `cloudtaser-cli target doctor` and `cloudtaser-cli source doctor`: thin commands over runtime/doctor. They print
 * the report (text or --output json) and exit with the first broken link's code (0 when healthy; the table is in
 * README "Operating cloudtaser").
 */
import type { Command } from 'commander';
import { CloudtaserError } from '../core/errors.js';
import type { DoctorReport } from '../doctor/index.js';
import { readCaBundleFile } from '../tunnel/flags.js';
import { oneLine, parseOutputFormat, personAtTerminal, printJson } from './output.js';
import { addSecretStoreOptions, openSecretStore, type SecretStoreFlags } from './secret-store.js';

export function registerTargetDoctorCommand(target: Command): void {
  target
    .command('doctor')
    .description(
      'walk the target side of the path (API server, operator, webhook, beacon replicas, trust, broker) and name the first broken link',
    )
    .option(
      '--kubeconfig <path>',
      'kubeconfig file (default: in-cluster config, else $KUBECONFIG or ~/.kube/config)',
    )
    .option('--context <name>', 'kubeconfig context (default: the current context)')
    .option('--namespace <name>', "the operator's namespace", 'cloudtaser-system')
    .option(
      '--release <name>',
      "the operator's Deployment and Service name (the chart's full name)",
      'cloudtaser',
    )
    .option(
      '--broker-status-url <url>',
      "read the broker's /status here (e.g. a port-forward) instead of through the API server's service proxy",
    )
    .option('--beacon <host:port>', "the beacon address (default: the operator's --beacon)")
    .option('--beacon-ca <path>', "PEM CA of the beacon's certificate (default: the system roots)")
    .option(
      '--webhook-configuration <name>',
      "the MutatingWebhookConfiguration (default: the operator's --webhook-configuration)",
    )
    .option('--output <format>', 'text or json', 'text')
    .action(
      async (opts: {
        kubeconfig?: string;
        context?: string;
        namespace: string;
        release: string;
        brokerStatusUrl?: string;
        beacon?: string;
        beaconCa?: string;
        webhookConfiguration?: string;
        output: string;
      }) => {
        const format = parseOutputFormat(opts.output);
        const brokerStatusUrl =
          opts.brokerStatusUrl === undefined
            ? undefined
            : httpUrl(opts.brokerStatusUrl, '--broker-status-url');
        const { defaultKubeConnection, KubeClient } = await import('../kube/index.js');
        const { runTargetDoctor } = await import('../doctor/index.js');
        const kube = KubeClient.fromConnection(
          defaultKubeConnection({ kubeconfig: opts.kubeconfig, context: opts.context }),
          { interactive: personAtTerminal() },
        );
        try {
          const report = await runTargetDoctor({
            kube,
            namespace: opts.namespace,
            deployment: opts.release,
            brokerStatusUrl,
            beacon: opts.beacon,
            beaconCaPem: await readCaBundleFile(opts.beaconCa, '--beacon-ca'),
            webhookConfiguration: opts.webhookConfiguration,
          });
          await print(report, format);
        } finally {
          kube.close();
        }
      },
    );
}

export function registerSourceDoctorCommand(source: Command): void {
  addSecretStoreOptions(
    source
      .command('doctor')
      .description(
        "walk the secret-store side of one cluster's path (records, namespace, Kubernetes auth, bridge, beacon replicas, tunnel) and name the first broken link",
      )
      .requiredOption('--fingerprint <uuid>', 'the cluster fingerprint')
      .option(
        '--bridge-health-url <url>',
        "a bridge pod's probe port, e.g. http://127.0.0.1:9090 (a port-forward); repeat it once per bridge pod: the broker's one tunnel is on one of the replicas",
        (url: string, earlier: string[] | undefined) => [...(earlier ?? []), url],
      )
      .option(
        '--broker-status-url <url>',
        "an operator pod's probe port, e.g. http://127.0.0.1:8081 (a port-forward); repeat it once per operator pod: when two brokers want the cluster, the doctor names the one holding the tunnel",
        (url: string, earlier: string[] | undefined) => [...(earlier ?? []), url],
      )
      .option('--output <format>', 'text or json', 'text'),
  ).action(
    async (
      opts: SecretStoreFlags & {
        fingerprint: string;
        bridgeHealthUrl?: string[];
        brokerStatusUrl?: string[];
        output: string;
      },
    ) => {
      const format = parseOutputFormat(opts.output);
      // Checked before anything is asked: a mistyped URL is a usage error (exit 2), not a broken bridge (24).
      const bridgeHealthUrl = opts.bridgeHealthUrl?.map((url) => httpUrl(url, '--bridge-health-url'));
      const brokerStatusUrl = opts.brokerStatusUrl?.map((url) => httpUrl(url, '--broker-status-url'));
      const { runSourceDoctor } = await import('../doctor/index.js');
      const openbao = await openSecretStore(opts);
      try {
        const report = await runSourceDoctor({
          openbao,
          fingerprint: opts.fingerprint,
          namespaceRoot: opts.namespaceRoot,
          bridgeHealthUrl,
          brokerStatusUrl,
        });
        await print(report, format);
      } finally {
        await openbao.close();
      }
    },
  );
}

/** An http(s) URL of a probe port, as given; CT_INVALID_ARGUMENT otherwise. */
function httpUrl(value: string, flag: string): string {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (url && (url.protocol === 'http:' || url.protocol === 'https:')) return value;
  throw new CloudtaserError(
    'CT_INVALID_ARGUMENT',
    `${flag} ${JSON.stringify(value)} must be an http:// or https:// URL, e.g. http://127.0.0.1:9090 (a kubectl port-forward of the pod's probe port)`,
  );
}

async function print(report: DoctorReport, format: 'text' | 'json'): Promise<void> {
  const { formatDoctorReport } = await import('../doctor/index.js');
  if (format === 'json') printJson(report);
  else process.stdout.write(formatDoctorReport(report));
  // The report is the output; the exit code names the broken link for scripts, and stderr carries the one coded
  // line every failing command prints (README, "Command reference"; an outside docs drill found stderr empty and
  // CT_DOCTOR_BROKEN_LINK documented but never printed).
  process.exitCode = report.exitCode;
  const broken = report.steps.find((step) => step.link === report.brokenLink);
  if (!report.healthy && broken)
    process.stderr.write(
      `CT_DOCTOR_BROKEN_LINK: ${broken.link} (exit ${report.exitCode}): ${oneLine(broken.detail)}${broken.code ? ` [${broken.code}]` : ''}\n`,
    );
}
