/**
 * docs/error-codes.md from the one catalogue of codes (runtime/core/errors.ts `ErrorCodes`), so the shipped docs
 * explain every code the product emits: the source file is not in the package.
 */
import { exitCodeFor } from '../../runtime/cli/output.js';
import { type ErrorCode, ErrorCodes } from '../../runtime/core/errors.js';

export function renderErrorCodesMarkdown(): string {
  const rows = Object.entries(ErrorCodes).map(
    ([code, meaning]) =>
      `| \`${code}\` | ${exitCodeFor(code as ErrorCode)} | ${meaning.replace(/\|/g, '\\|')} |`,
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
    '`exit` is the exit code of a `cloudtaser-cli` command that fails with the code: 2 for a usage error (what was',
    'typed is wrong), 75 for a temporary failure (OpenBao or another service down, slow, sealed, rate-limited or',
    'lagging, or another run changed a record at the same moment: the same command may pass if run again later, so',
    'a script retries these), 1 for the rest (something needs fixing first). A doctor reports a broken link with',
    'its own exit codes, 10 to 29 (README, "Operating cloudtaser").',
    '',
    '| code | exit | meaning |',
    '| --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}
