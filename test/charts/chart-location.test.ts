/**
 * One documented way to get the charts (issue 12): the OCI registry. What `source register` prints, the
 * constructs' default, the Terraform module's default, the README, the charts README and the examples agree, and
 * nothing points at a `helm repo add` repository that does not exist.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLOUDTASER_VERSION, DEFAULT_CHART_REPOSITORY } from '../../constructs/version.js';
import {
  CHART_REPOSITORY,
  CHART_VERSION,
  operatorInstallCommand,
} from '../../runtime/core/chart-location.js';
import { runCli } from '../cli/run-cli.js';

const ROOT = resolve(import.meta.dirname, '../..');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const INSTALL = `helm install cloudtaser ${CHART_REPOSITORY}/cloudtaser --version ${CHART_VERSION}`;

/** Every document a user reads about installing: READMEs, chart notes, the CLI's source. */
function userFacingFiles(): string[] {
  const files = ['README.md', 'runtime/charts/README.md', 'constructs/README.md', 'runtime/cli/source.ts'];
  for (const chart of readdirSync(join(ROOT, 'runtime/charts'), { withFileTypes: true }))
    if (chart.isDirectory()) files.push(`runtime/charts/${chart.name}/templates/NOTES.txt`);
  for (const example of readdirSync(join(ROOT, 'examples'), { withFileTypes: true }))
    if (example.isDirectory()) files.push(`examples/${example.name}/README.md`);
  return files;
}

describe('where the charts come from', () => {
  it('is one OCI location and one version everywhere: CLI, constructs, Terraform module, package, Chart.yaml', () => {
    expect(CHART_REPOSITORY).toMatch(/^oci:\/\//);
    expect(DEFAULT_CHART_REPOSITORY).toBe(CHART_REPOSITORY);
    for (const file of [
      'examples/terraform-module/variables.tf',
      'examples/terraform-module/modules/operator/variables.tf',
    ]) {
      const text = read(file);
      expect(/variable "chart_repository" \{[^}]*default\s*=\s*"([^"]+)"/.exec(text)?.[1], file).toBe(
        CHART_REPOSITORY,
      );
      expect(/variable "chart_version" \{[^}]*default\s*=\s*"([^"]+)"/.exec(text)?.[1], file).toBe(
        CHART_VERSION,
      );
    }
    expect(CLOUDTASER_VERSION).toBe(CHART_VERSION);
    expect(JSON.parse(read('package.json')).version).toBe(CHART_VERSION);
    for (const chart of ['cloudtaser', 'cloudtaser-beacon', 'cloudtaser-bridge'])
      expect(read(`runtime/charts/${chart}/Chart.yaml`)).toMatch(
        new RegExp(`^version: ${CHART_VERSION}$`, 'm'),
      );
  });

  it('is what the README and the charts README tell a user to run', () => {
    expect(read('README.md')).toContain(INSTALL);
    expect(read('runtime/charts/README.md')).toContain(INSTALL);
    expect(read('runtime/charts/README.md')).toContain(`${CHART_REPOSITORY}/cloudtaser-beacon`);
    expect(read('runtime/charts/README.md')).toContain(`${CHART_REPOSITORY}/cloudtaser-bridge`);
  });

  it('is never a `helm repo add` repository or a repo/chart reference that exists nowhere', () => {
    for (const file of userFacingFiles()) {
      const text = read(file);
      expect(text, file).not.toMatch(/helm repo add/);
      expect(text, file).not.toMatch(/helm (install|upgrade)[^\n]* cloudtaser\/cloudtaser/);
      for (const match of text.matchAll(/oci:\/\/[^\s`'")]+/g))
        expect(match[0].startsWith(CHART_REPOSITORY), `${file}: ${match[0]}`).toBe(true);
    }
  });

  it('is what `source register` prints, with the operational hash as the pin', async () => {
    const { startOpenBaoTestServer } = await import('../../runtime/dev/openbao/index.js');
    const openbao = await startOpenBaoTestServer();
    try {
      const fingerprint = crypto.randomUUID();
      const result = await runCli(
        ['source', 'register', '--fingerprint', fingerprint, '--secretstore-address', openbao.address],
        { CLOUDTASER_SECRETSTORE_TOKEN: openbao.rootToken },
      );
      expect(result.code, result.stderr).toBe(0);
      const hash = /Operational hash: +([0-9a-f]{64})/.exec(result.stdout)![1];
      // Not attested: the printed install turns the chart's attestation off, so its notes say a restart needs a
      // re-arm (before, the chart's default promised a restarted operator would bootstrap again on its own, and
      // the restarted broker was refused with CT_ALREADY_INITIALIZED).
      const printed = operatorInstallCommand('<beacon-host>:443', hash, { attested: false });
      expect(result.stdout).toContain(`  ${printed}\n`);
      expect(printed).toContain(INSTALL);
      expect(printed).toContain('--set operator.broker.attestation.enabled=false');
      expect(result.stdout).toContain(`cloudtaser-cli source register --fingerprint ${fingerprint} --rearm`);
      expect(operatorInstallCommand('<beacon-host>:443', hash, { attested: true })).not.toContain(
        'attestation',
      );
    } finally {
      await openbao.close();
    }
  });
});
