/**
 * The charts README and the images README say only what exists: every `cloudtaser-cli <group> <verb>` they name is
 * a command of the real CLI, every `--flag` in a command's paragraph is a flag of that command, every value path is
 * a value of a chart, and each image's default command is its Dockerfile's CMD.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../runtime/cli/program.js';
import { CHART_NAMES, CHARTS_DIR, isMap, readChart } from './chart-files.js';
import { renderChart } from './helm-template.js';

const program = buildProgram();
const chartsReadme = readFileSync(join(CHARTS_DIR, 'README.md'), 'utf8');
const imagesReadme = readFileSync(join(CHARTS_DIR, '..', 'images', 'README.md'), 'utf8');

function command(group: string, verb: string): Command | undefined {
  return program.commands.find((c) => c.name() === group)?.commands.find((c) => c.name() === verb);
}

describe('runtime/charts/README.md', () => {
  it('names only cloudtaser-cli commands that exist', () => {
    const named = [...chartsReadme.matchAll(/cloudtaser-cli ([a-z-]+) ([a-z-]+)/g)].map((m) => [m[1], m[2]]);
    expect(named.length).toBeGreaterThanOrEqual(3);
    for (const [group, verb] of named) expect(command(group, verb), `${group} ${verb}`).toBeDefined();
  });

  it('lists, in each process paragraph, only flags of that process command', () => {
    const paragraphs = chartsReadme.split(/\n\n/).filter((p) => /^\*\*\w+\*\* \(`cloudtaser-cli /.test(p));
    expect(paragraphs).toHaveLength(3);
    for (const paragraph of paragraphs) {
      const [, group, verb] = /`cloudtaser-cli ([a-z-]+) ([a-z-]+)`/.exec(paragraph)!;
      const known = new Set(command(group, verb)!.options.map((o) => o.long));
      const flags = [...paragraph.matchAll(/`(--[a-z0-9-]+)`/g)].map((m) => m[1]);
      expect(flags.length, `${group} ${verb}`).toBeGreaterThan(3);
      for (const flag of flags) expect(known, `${group} ${verb} ${flag}`).toContain(flag);
    }
  });

  it('names only values the charts have', () => {
    const charts = CHART_NAMES.map(readChart);
    const exists = (path: string) =>
      charts.some((chart) => {
        let cursor: unknown = chart.values;
        for (const key of path.split('.')) {
          if (!isMap(cursor) || !(key in cursor)) return false;
          cursor = cursor[key];
        }
        return true;
      });
    const paths = [
      ...chartsReadme.matchAll(
        /`((?:operator|bridge|beacon|webhook|networkPolicy|tls|service|podDisruptionBudget|image)\.[A-Za-z.]+)`/g,
      ),
    ].map((m) => m[1].replace(/=.*$/, ''));
    expect(paths.length).toBeGreaterThan(8);
    for (const path of paths) expect(exists(path), path).toBe(true);
  });
});

describe('runtime/charts/README.md known limits', () => {
  const limits = chartsReadme.split('## Known limits')[1]?.split('\n## ')[0] ?? '';

  it('says what replaces lookup where nothing answers it at render time (ArgoCD, helm template)', () => {
    expect(limits).toMatch(/`lookup` answers nothing/);
    expect(limits).toMatch(/bridge-ca\.yaml` renders an empty `ca\.crt`/);
    for (const value of ['beacon.bridgeAuth.caPems', 'beacon.bridgeAuth.caConfigMap', 'tls.secretName'])
      expect(limits).toContain(`\`${value}\``);
  });

  it('says that imagePullSecrets reach only the operator pod, and how application namespaces pull the init container', () => {
    expect(limits).toMatch(/`imagePullSecrets` reach only the operator pod/);
    expect(limits).toMatch(/kubectl -n <app-namespace> patch serviceaccount/);
  });
});

describe('docs/scaling.md', () => {
  const scaling = readFileSync(join(CHARTS_DIR, '..', '..', 'docs', 'scaling.md'), 'utf8');

  it('names objects as the charts do: <fullname>-headless and <fullname>-shard-/-member- Leases, not <release>-', () => {
    expect(scaling).not.toMatch(/<release>-/);
    expect(scaling).toContain('`<fullname>-headless`');
    expect(scaling).toContain('`<fullname>-shard-<i>-<slot>`');
    expect(scaling).toContain('`<fullname>-member-<pod>`');
  });
});

describe('runtime/images/README.md', () => {
  it.each(['operator', 'beacon', 'bridge'] as const)(
    'gives the %s image the default command of its Dockerfile, a command of the CLI',
    (image) => {
      const dockerfile = readFileSync(join(CHARTS_DIR, '..', 'images', `Dockerfile.${image}`), 'utf8');
      const cmd = JSON.parse(/^CMD (.+)$/m.exec(dockerfile)![1]) as string[];
      const row = imagesReadme.split('\n').find((line) => line.includes(`Dockerfile.${image}`))!;
      expect(row).toContain(`| \`${cmd.join(' ')}\``);
      expect(command(cmd[0], cmd[1]), cmd.join(' ')).toBeDefined();
    },
  );
});

describe('object names the other docs give', () => {
  const repo = join(CHARTS_DIR, '..', '..');
  const read = (path: string) => readFileSync(join(repo, path), 'utf8');
  /** Names of `kind` the chart renders for a release called `prod` (fullname prod-<chart>: the release lacks it). */
  const names = (chart: string, kind: string, values: Record<string, unknown> = {}) =>
    renderChart(join(CHARTS_DIR, chart), { name: 'prod', namespace: 'ns', values })
      .objects.filter((object) => object.kind === kind)
      .map((object) => object.metadata.name);

  it('call the trust record <fullname>-trust, as the operator chart names it (not <release>-trust)', () => {
    for (const doc of ['README.md', 'docs/design.md', 'docs/threat-model.md']) {
      expect(read(doc), doc).not.toContain('<release>-trust');
      expect(read(doc), doc).toContain('`<fullname>-trust`');
    }
    const beacon = { operator: { broker: { beacon: { address: 'beacon.example.com:443' } } } };
    expect(names('cloudtaser', 'ConfigMap', beacon)).toContain('prod-cloudtaser-trust');
  });

  it("call the Beacon construct's TLS Secret and bridge CA ConfigMap <fullname>-tls and <fullname>-bridge-ca", () => {
    const constructs = read('constructs/README.md');
    expect(constructs).not.toMatch(/<release>-(tls|bridge-ca)/);
    expect(names('cloudtaser-beacon', 'Secret', { tls: { generate: { enabled: true } } })).toContain(
      'prod-cloudtaser-beacon-tls',
    );
    expect(names('cloudtaser-beacon', 'ConfigMap')).toContain('prod-cloudtaser-beacon-bridge-ca');
  });
});
