/** Reads a chart folder the way the tests need it: parsed metadata, values, schema and raw templates. */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';

export const CHARTS_DIR = resolve(import.meta.dirname, '../../runtime/charts');
export const CHART_NAMES = ['cloudtaser', 'cloudtaser-beacon', 'cloudtaser-bridge'] as const;
export type ChartName = (typeof CHART_NAMES)[number];

export interface ChartFiles {
  readonly name: ChartName;
  readonly dir: string;
  readonly chart: Record<string, unknown>;
  readonly values: Record<string, unknown>;
  readonly exampleValues: Record<string, unknown>;
  readonly schema: Record<string, unknown>;
  /** File name -> text, for everything under templates/ (NOTES.txt and _helpers.tpl included). */
  readonly templates: ReadonlyMap<string, string>;
}

export function readChart(name: ChartName): ChartFiles {
  const dir = join(CHARTS_DIR, name);
  const read = (...parts: string[]) => readFileSync(join(dir, ...parts), 'utf8');
  const templates = new Map<string, string>();
  for (const file of readdirSync(join(dir, 'templates')).sort()) templates.set(file, read('templates', file));
  return {
    name,
    dir,
    chart: parse(read('Chart.yaml')),
    values: parse(read('values.yaml')),
    exampleValues: parse(read('ci', 'example-values.yaml')),
    schema: JSON.parse(read('values.schema.json')),
    templates,
  };
}

/** Helm's value merge: maps merge key by key, anything else from the override replaces the default. */
export function mergeValues(base: unknown, override: unknown): unknown {
  if (isMap(base) && isMap(override)) {
    const out: Record<string, unknown> = { ...base };
    for (const [key, value] of Object.entries(override)) out[key] = mergeValues(base[key], value);
    return out;
  }
  return override === undefined ? base : override;
}

/** `--set a.b.c=value` applied to a copy of the values. */
export function withValue(values: unknown, dotted: string, value: unknown): Record<string, unknown> {
  const override: Record<string, unknown> = {};
  let cursor = override;
  const keys = dotted.split('.');
  keys.forEach((key, index) => {
    if (index === keys.length - 1) cursor[key] = value;
    else cursor = cursor[key] = {} as Record<string, unknown>;
  });
  return mergeValues(values, override) as Record<string, unknown>;
}

export function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Every `.Values.a.b.c` path named in template actions (`$.Values` included). */
export function valuePathsIn(template: string): string[] {
  const paths = new Set<string>();
  for (const action of template.matchAll(/\{\{(.*?)\}\}/gs)) {
    for (const match of action[1].matchAll(/\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g))
      paths.add(match[1].slice(1));
  }
  return [...paths].sort();
}

/** Opening and closing control keywords, in order, to check that every block ends. */
export function controlKeywords(template: string): string[] {
  const keywords: string[] = [];
  for (const action of template.matchAll(/\{\{-?\s*(if|with|range|define|end|else)\b/g))
    keywords.push(action[1]);
  return keywords;
}
