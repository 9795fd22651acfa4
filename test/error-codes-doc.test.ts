/**
 * docs/error-codes.md lists every code in the catalogue, with its meaning, as the package ships it (an outside
 * docs review found ~20 emitted codes explained nowhere a user of the package can read). Regenerate with
 * `UPDATE_DOCS=1 npx vitest run test/error-codes-doc.test.ts`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../runtime/core/errors.js';
import { renderErrorCodesMarkdown } from './support/error-codes-doc.js';

const DOC = join(import.meta.dirname, '..', 'docs', 'error-codes.md');

describe('docs/error-codes.md', () => {
  it('is in step with the catalogue of codes', () => {
    const rendered = renderErrorCodesMarkdown();
    if (process.env.UPDATE_DOCS === '1') writeFileSync(DOC, rendered);
    expect(readFileSync(DOC, 'utf8'), 'run UPDATE_DOCS=1 npx vitest run test/error-codes-doc.test.ts').toBe(
      rendered,
    );
  });

  it('names every code once, including the ones only the source explained before', () => {
    const doc = readFileSync(DOC, 'utf8');
    for (const code of Object.keys(ErrorCodes)) expect(doc.split(`\`${code}\``).length - 1, code).toBe(1);
    for (const code of [
      'CT_PKI_CA_PIN_MISMATCH',
      'CT_WEBHOOK_REFUSED',
      'CT_KUBE_NOT_FOUND',
      'CT_RENEWAL_REFUSED',
    ])
      expect(doc).toContain(`| \`${code}\` |`);
  });
});
