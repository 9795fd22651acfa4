/**
 * docs/error-codes.md from the one catalogue of codes (runtime/core/errors.ts `ErrorCodes`), so the shipped docs
 * explain every code the product emits: the source file is not in the package.
 */
import { ErrorCodes } from '../../runtime/core/errors.js';

export function renderErrorCodesMarkdown(): string {
  const rows = Object.entries(ErrorCodes).map(
    ([code, meaning]) => `| \`${code}\` | ${meaning.replace(/\|/g, '\\|')} |`,
  );
  return [
    '# Error codes',
    '',
    'Every error cloudtaser reports carries one of these codes: in CLI output (`CT_...: message`), log lines',
    '(`code`), `/status` (`lastErrorCode`), metrics labels (`code`, `outcome`) and Terraform diagnostics. Codes are',
    'stable: adding one is a minor change, renaming or reusing one a breaking change (CHANGELOG.md). The message',
    'next to a code says what happened in that case and what to do; this table says what the code means in general.',
    '',
    'Generated from the catalogue in the source (`runtime/core/errors.ts`); a test keeps it in step.',
    '',
    '| code | meaning |',
    '| --- | --- |',
    ...rows,
    '',
  ].join('\n');
}
