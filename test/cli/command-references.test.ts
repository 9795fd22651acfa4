/**
 * Every `cloudtaser-cli ...` command the product tells a person to run (fix texts in code, alert descriptions in
 * the charts, the README and docs) names a command that exists. The doctor, two alerts and the bridge's refusal
 * once said `cloudtaser-cli source rearm`, which never existed (`source register --rearm` does): the on-call
 * pasted it and got "unknown command".
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../runtime/cli/program.js';

const ROOT = join(import.meta.dirname, '../..');
/** Where commands are shown to people; tests and the changelog (history) are not. */
const SOURCES = ['runtime', 'provider', 'constructs', 'examples', 'docs', 'README.md', 'SECURITY.md'];

function files(path: string): string[] {
  const full = join(ROOT, path);
  if (statSync(full).isFile()) return [path];
  return readdirSync(full).flatMap((name) =>
    name === 'node_modules' || name.startsWith('.') ? [] : files(join(path, name)),
  );
}

/** The command words of each reference: inline code spans, and lines of shell blocks that start with the CLI. */
function references(text: string): string[] {
  const found: string[] = [];
  for (const match of text.matchAll(/`cloudtaser-cli ([^`\n]*)`?/g)) found.push(match[1]);
  for (const match of text.matchAll(/^\s*(?:\$ )?cloudtaser-cli ([^\n]*)$/gm)) found.push(match[1]);
  return found;
}

/** The words that name subcommands: up to the first flag, placeholder, variable or argument. */
function commandWords(rest: string): string[] {
  const words: string[] = [];
  for (const word of rest.trim().split(/\s+/)) {
    if (!/^[a-z][a-z-]*$/.test(word)) break;
    words.push(word);
  }
  return words;
}

/** Undefined when the words lead to a command; else the first word that is not a subcommand where one is due. */
function unknownWord(program: Command, words: string[]): string | undefined {
  let command = program;
  for (const word of words) {
    if (command.commands.length === 0) return undefined; // a leaf: the rest are its arguments
    const next = command.commands.find((c) => c.name() === word || c.aliases().includes(word));
    if (!next) return word;
    command = next;
  }
  return undefined;
}

describe('commands the product tells people to run', () => {
  it('all exist', () => {
    const program = buildProgram();
    const wrong: string[] = [];
    let checked = 0;
    for (const file of SOURCES.flatMap(files)) {
      if (!/\.(ts|md|yaml|tpl|txt)$/.test(file) || file.endsWith('.test.ts')) continue;
      for (const rest of references(readFileSync(join(ROOT, file), 'utf8'))) {
        const words = commandWords(rest);
        if (words.length === 0) continue;
        checked++;
        const unknown = unknownWord(program, words);
        if (unknown)
          wrong.push(
            `${relative(ROOT, join(ROOT, file))}: cloudtaser-cli ${words.join(' ')} (no "${unknown}")`,
          );
      }
    }
    expect(wrong).toEqual([]);
    // The scan found the references it is for (a broken pattern would check nothing).
    expect(checked).toBeGreaterThan(50);
  });
});
