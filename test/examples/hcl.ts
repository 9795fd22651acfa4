/**
 * Just enough of an HCL reader for structural checks of our own modules (terraform can't `init` a module
 * that needs hashicorp/helm offline): top-level blocks with their labels and bodies, and the references in a body.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface HclBlock {
  readonly type: string;
  readonly labels: readonly string[];
  readonly body: string;
}

export interface HclModule {
  readonly dir: string;
  readonly blocks: readonly HclBlock[];
  /** Concatenated text of every .tf file. */
  readonly text: string;
}

export function readHclModule(dir: string): HclModule {
  const text = readdirSync(dir)
    .filter((f) => f.endsWith('.tf'))
    .sort()
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .join('\n');
  return { dir, blocks: topLevelBlocks(text), text };
}

/** Splits a file into its top-level blocks by brace depth, skipping strings and comments. */
export function topLevelBlocks(text: string): HclBlock[] {
  const blocks: HclBlock[] = [];
  let i = 0;
  while (i < text.length) {
    const header = /^[ \t]*([a-z_]+)((?:[ \t]+"[^"]*")*)[ \t]*\{/gm;
    header.lastIndex = i;
    const match = header.exec(text);
    if (!match) break;
    const start = match.index + match[0].length;
    const end = matchingBrace(text, start);
    blocks.push({
      type: match[1],
      labels: [...match[2].matchAll(/"([^"]*)"/g)].map((m) => m[1]),
      body: text.slice(start, end),
    });
    i = end + 1;
  }
  return blocks;
}

function matchingBrace(text: string, from: number): number {
  let depth = 1;
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++;
    } else if (c === '#') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return i;
  }
  throw new Error('unbalanced braces');
}

export const blocksOf = (module: HclModule, type: string) => module.blocks.filter((b) => b.type === type);
export const namesOf = (module: HclModule, type: string) => blocksOf(module, type).map((b) => b.labels[0]);

/** `var.x` names referenced anywhere in the module. */
export function variableReferences(module: HclModule): Set<string> {
  return new Set([...module.text.matchAll(/\bvar\.([a-z_][a-z0-9_]*)/g)].map((m) => m[1]));
}

/** Top-level `name = ...` argument names of a block body. */
export function argumentNames(body: string): string[] {
  const names: string[] = [];
  let depth = 0;
  for (const line of body.split('\n')) {
    const match = /^\s*([a-z_][a-z0-9_]*)\s*=/.exec(line);
    if (depth === 0 && match) names.push(match[1]);
    depth += (line.match(/[{[(]/g) ?? []).length - (line.match(/[}\])]/g) ?? []).length;
  }
  return names;
}
