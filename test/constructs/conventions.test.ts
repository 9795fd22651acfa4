/** House rules for the constructs that a reviewer would otherwise have to check by eye. */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const DIR = resolve(import.meta.dirname, '../../constructs');
const sources = [
  ...readdirSync(DIR)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => ({ file: f, text: readFileSync(join(DIR, f), 'utf8') })),
  ...readdirSync(join(DIR, 'bindings'))
    .filter((f) => f.endsWith('.ts') && f !== 'generate.ts')
    .map((f) => ({ file: `bindings/${f}`, text: readFileSync(join(DIR, 'bindings', f), 'utf8') })),
];

describe('constructs conventions', () => {
  it('loads cdktf, cdktn and constructs only in constructs/cdktf.ts, and no prebuilt @cdktf/provider-* package', () => {
    for (const { file, text } of sources) {
      const valueImports = [...text.matchAll(/^import (?!type )[^;]*? from '([^']+)'/gms)].map((m) => m[1]);
      const allImports = [...text.matchAll(/from '([^']+)'/g)].map((m) => m[1]);
      if (file !== 'cdktf.ts') {
        for (const peer of ['cdktf', 'cdktn', 'constructs'])
          expect(valueImports, `${file} loads ${peer} itself`).not.toContain(peer);
        expect(allImports, file).not.toContain('cdktf');
      }
      expect(
        allImports.filter((s) => s.startsWith('@cdktf/') || s.startsWith('@cdktn/')),
        file,
      ).toEqual([]);
    }
  });

  it('never loads runtime or provider code at synth time, except the import-free policy table, defaults, input rules and version', () => {
    const allowed = [
      "from '../runtime/registration/policies.js'",
      "from '../runtime/registration/defaults.js'",
      "from '../runtime/core/rules.js'",
      "from '../runtime/core/version.js'",
    ];
    for (const { file, text } of sources) {
      const rest = allowed.reduce((left, from) => left.replaceAll(from, ''), text);
      expect(rest, file).not.toMatch(/from '\.\.\/(\.\.\/)?(runtime|provider)\//);
    }
    const table = readFileSync(resolve(DIR, '../runtime/registration/policies.ts'), 'utf8');
    expect(table).not.toMatch(/^import /m);
    const defaults = readFileSync(resolve(DIR, '../runtime/registration/defaults.ts'), 'utf8');
    expect(defaults).not.toMatch(/^import /m);
    // The one version constant (CLI, constructs, metrics) loads nothing.
    expect(readFileSync(resolve(DIR, '../runtime/core/version.ts'), 'utf8')).not.toMatch(/^import /m);
    // The rules load the error class and nothing else; the error class loads nothing.
    const rules = readFileSync(resolve(DIR, '../runtime/core/rules.ts'), 'utf8');
    expect([...rules.matchAll(/from '([^']+)'/g)].map((m) => m[1])).toEqual(['./errors.js']);
    const errors = readFileSync(resolve(DIR, '../runtime/core/errors.ts'), 'utf8');
    expect(errors).not.toMatch(/^import /m);
  });

  it('documents a default for every optional prop and makes every prop readonly', () => {
    const problems: string[] = [];
    for (const { file, text } of sources.filter((s) => !s.file.startsWith('bindings/'))) {
      for (const match of text.matchAll(/export interface (\w+) \{([\s\S]*?)\n\}/g)) {
        const lines = match[2].split('\n');
        lines.forEach((line, index) => {
          const prop = /^\s{2}(readonly )?(\w+)(\?)?:/.exec(line);
          if (!prop) return;
          if (!prop[1]) problems.push(`${file} ${match[1]}.${prop[2]} is not readonly`);
          const doc = lines.slice(Math.max(0, index - 6), index).join('\n');
          if (prop[3] && !/@default/.test(doc))
            problems.push(`${file} ${match[1]}.${prop[2]} has no @default`);
        });
      }
    }
    expect(problems).toEqual([]);
  });
});
