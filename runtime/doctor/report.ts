/**
 * What `doctor` reports: the links of the path in the order they are walked, each with its exit code, and the
 * report of one walk. One table per side, so the CLI, the README's exit-code table and the tests read the same
 * numbers.
 */

export interface DoctorLink {
  readonly id: string;
  readonly title: string;
  /** The process exit code when this is the first broken link. */
  readonly exitCode: number;
}

/** The target side, walked from the cluster's API server out to the beacon and back through the broker. */
export const TARGET_LINKS = [
  { id: 'cluster', title: 'Kubernetes API server reachable with this kubeconfig', exitCode: 10 },
  { id: 'fingerprint', title: 'cluster fingerprint (kube-system UID) readable', exitCode: 11 },
  { id: 'operator', title: 'operator Deployment available, with its probes', exitCode: 12 },
  { id: 'broker-status', title: "broker's /status readable", exitCode: 13 },
  { id: 'webhook', title: 'webhook configuration present and its caBundle trusts the webhook', exitCode: 14 },
  { id: 'beacon-dns', title: 'beacon address resolves to one or more A-records', exitCode: 15 },
  { id: 'beacon-tcp', title: 'every beacon replica accepts TCP', exitCode: 16 },
  { id: 'beacon-tls', title: 'every beacon replica presents a valid certificate for the name', exitCode: 17 },
  { id: 'trust', title: 'pinned cluster CA and trust record agree with the broker', exitCode: 18 },
  { id: 'broker-phase', title: 'broker operational (tunnel to the bridge up)', exitCode: 19 },
  {
    id: 'tokenreview',
    title: "pod logins: the broker's TokenReviews for OpenBao's Kubernetes auth succeed",
    exitCode: 29,
  },
] as const satisfies readonly DoctorLink[];

/** The secret-store side, walked from OpenBao's records to the bridge and the beacon replicas it sees. */
export const SOURCE_LINKS = [
  { id: 'openbao', title: 'OpenBao reachable and these credentials valid', exitCode: 20 },
  { id: 'registration', title: 'cluster registration record present', exitCode: 21 },
  { id: 'namespace', title: 'cluster namespace and its mounts present', exitCode: 22 },
  { id: 'kubernetes-auth', title: "cluster's Kubernetes auth configured", exitCode: 23 },
  { id: 'bridge', title: 'bridge healthy and polling OpenBao', exitCode: 24 },
  { id: 'beacon-replicas', title: 'every beacon replica reachable from the bridge', exitCode: 25 },
  { id: 'bridge-cluster', title: 'bridge serves this cluster', exitCode: 26 },
  { id: 'initialization', title: 'cluster bootstrapped (initialization record present)', exitCode: 27 },
  { id: 'tunnel', title: 'bridge holds a tunnel to the cluster broker', exitCode: 28 },
] as const satisfies readonly DoctorLink[];

export type TargetLinkId = (typeof TARGET_LINKS)[number]['id'];
export type SourceLinkId = (typeof SOURCE_LINKS)[number]['id'];

export type StepState = 'ok' | 'warn' | 'broken' | 'not-checked';

export interface DoctorStep {
  readonly link: string;
  readonly title: string;
  readonly state: StepState;
  /** What was found, for a person. */
  readonly detail: string;
  /** What to do, when broken or warned. */
  readonly fix?: string;
  /** The CT_ code behind a broken link, when there is one. */
  readonly code?: string;
  /** Machine-readable facts (addresses, phases, expiry dates); never a secret. */
  readonly facts?: Record<string, unknown>;
}

export interface DoctorReport {
  readonly side: 'target' | 'source';
  readonly healthy: boolean;
  /** 0 when healthy, else the first broken link's code. */
  readonly exitCode: number;
  readonly brokenLink?: string;
  readonly steps: readonly DoctorStep[];
}

/** The outcome of one check. */
export type CheckResult = Omit<DoctorStep, 'link' | 'title'>;

export const ok = (detail: string, facts?: Record<string, unknown>): CheckResult => ({
  state: 'ok',
  detail,
  ...(facts ? { facts } : {}),
});
export const warn = (detail: string, fix: string, facts?: Record<string, unknown>): CheckResult => ({
  state: 'warn',
  detail,
  fix,
  ...(facts ? { facts } : {}),
});
export const broken = (
  detail: string,
  fix: string,
  extra: { code?: string; facts?: Record<string, unknown> } = {},
): CheckResult => ({ state: 'broken', detail, fix, ...extra });

/**
 * Walks `links` in order with `check`, stopping at the first broken one; the rest are listed as not checked. A
 * check that throws is a broken link with the error's code.
 */
export async function walkLinks<L extends DoctorLink>(
  side: 'target' | 'source',
  links: readonly L[],
  check: (link: L) => Promise<CheckResult>,
): Promise<DoctorReport> {
  const steps: DoctorStep[] = [];
  let brokenLink: L | undefined;
  for (const link of links) {
    if (brokenLink) {
      steps.push({
        link: link.id,
        title: link.title,
        state: 'not-checked',
        detail: 'an earlier link is broken',
      });
      continue;
    }
    let result: CheckResult;
    try {
      result = await check(link);
    } catch (err) {
      const code = (err as { code?: string }).code;
      result = broken(
        (err as Error).message,
        'fix what the message says, then run doctor again',
        code ? { code } : {},
      );
    }
    steps.push({ link: link.id, title: link.title, ...result });
    if (result.state === 'broken') brokenLink = link;
  }
  return {
    side,
    healthy: brokenLink === undefined,
    exitCode: brokenLink?.exitCode ?? 0,
    ...(brokenLink ? { brokenLink: brokenLink.id } : {}),
    steps,
  };
}

const MARK: Record<StepState, string> = { ok: 'ok', warn: 'WARN', broken: 'BROKEN', 'not-checked': '-' };

/** The report for people: one line per link, what to do under a broken or warned one, the verdict last. */
export function formatDoctorReport(report: DoctorReport): string {
  const width = Math.max(...report.steps.map((s) => s.link.length));
  const lines = [`cloudtaser ${report.side} doctor`, ''];
  for (const step of report.steps) {
    lines.push(`  ${MARK[step.state].padEnd(6)} ${step.link.padEnd(width)}  ${step.detail}`);
    if (step.fix && step.state !== 'ok') lines.push(`  ${''.padEnd(6)} ${''.padEnd(width)}  -> ${step.fix}`);
  }
  lines.push('');
  const broke = report.steps.find((s) => s.state === 'broken');
  // "Every link checked out" only when every link was checked and none warned: skipped links are not healthy ones.
  const warned = report.steps.filter((s) => s.state === 'warn' || s.state === 'not-checked').length;
  lines.push(
    !report.healthy
      ? `Broken link: ${broke?.link} (exit ${report.exitCode})${broke?.code ? ` [${broke.code}]` : ''}`
      : warned === 0
        ? 'Healthy: every link of the path checked out.'
        : `No broken link, but ${warned} of ${report.steps.length} link(s) warned or were not checked: read the WARN lines above.`,
  );
  return `${lines.join('\n')}\n`;
}
