import { CloudtaserError, type ErrorCode } from '../core/errors.js';

export type OutputFormat = 'text' | 'json';

export function parseOutputFormat(value: string): OutputFormat {
  if (value === 'text' || value === 'json') return value;
  throw new CloudtaserError(
    'CT_INVALID_ARGUMENT',
    `--output must be "text" or "json", not ${JSON.stringify(value)}`,
  );
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/**
 * A person runs this command at a terminal: an exec credential plugin may prompt them (a device-code login) and
 * take its time, as with kubectl. Not in CI, pipes or services.
 */
export function personAtTerminal(): boolean {
  return process.stdin.isTTY === true && process.stderr.isTTY === true;
}

/**
 * A one-line progress indicator on stderr while a long call runs, only when stderr is a terminal, so pipes,
 * CI logs and `--output json` consumers never see control characters.
 */
export async function withProgress<T>(label: string, work: () => Promise<T>): Promise<T> {
  if (!process.stderr.isTTY) return work();
  const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
  let i = 0;
  const started = Date.now();
  const timer = setInterval(() => {
    process.stderr.write(
      `\r${frames[i++ % frames.length]} ${label} ${((Date.now() - started) / 1000).toFixed(1)}s`,
    );
  }, 80);
  try {
    return await work();
  } finally {
    clearInterval(timer);
    process.stderr.write('\r\x1b[K');
  }
}

/**
 * Codes that mean "what was typed is wrong" (a flag or environment variable missing or invalid): usage errors,
 * exit 2, as for commander's own (unknown option, missing required flag). Everything else exits 1.
 */
export const USAGE_ERROR_CODES: readonly ErrorCode[] = [
  'CT_INVALID_ARGUMENT',
  'CT_INVALID_FINGERPRINT',
  'CT_TOKEN_MISSING',
];

/**
 * Codes that say "this may pass if run again later, unchanged": the service was down, slow, sealed, rate-limited
 * or lagging, or another run changed a record at the same moment. Exit 75 (EX_TEMPFAIL of sysexits.h), so a fleet
 * script retries these and stops on the rest; before, both exited 1 and scripts had to parse stderr (an outside
 * fleet test). An address that is simply wrong is also "unreachable": a script's retries end either way.
 */
export const TEMPORARY_ERROR_CODES: readonly ErrorCode[] = [
  'CT_OPENBAO_UNREACHABLE',
  'CT_OPENBAO_TIMEOUT',
  'CT_OPENBAO_SEALED',
  'CT_OPENBAO_RATE_LIMITED',
  'CT_OPENBAO_READ_LAG',
  'CT_OPENBAO_CAS_MISMATCH',
  'CT_DISCOVERY_CONTENDED',
  'CT_KUBE_UNREACHABLE',
  'CT_PROXY_UNREACHABLE',
  'CT_BEACON_UNREACHABLE',
];

/** The exit codes of a failed command (a doctor's broken link has its own, 10 to 29: README). */
export const ExitCodes = { failure: 1, usage: 2, temporary: 75 } as const;

/** The exit code a failure with `code` ends the CLI with. */
export function exitCodeFor(code: ErrorCode): number {
  if (USAGE_ERROR_CODES.includes(code)) return ExitCodes.usage;
  if (TEMPORARY_ERROR_CODES.includes(code)) return ExitCodes.temporary;
  return ExitCodes.failure;
}

/**
 * Turns any failure into the one-line `CT_CODE: message` form on stderr and an exit code (2 usage, 75 temporary,
 * 1 other).
 * `helpCommand` is the command that ran: a usage error names its --help, unless the message already names one.
 */
export function reportFailure(err: unknown, context: { readonly helpCommand?: string } = {}): number {
  if (err instanceof CloudtaserError) {
    const usage = USAGE_ERROR_CODES.includes(err.code);
    // One line: a message that carries a newline (a cause's text) is folded.
    let line = oneLine(err.toLine());
    if (usage && context.helpCommand && !/\(see [^()]* --help\)$/.test(line))
      line += ` (see ${context.helpCommand} --help)`;
    process.stderr.write(`${line}\n`);
    return exitCodeFor(err.code);
  }
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(
    `CT_INTERNAL: ${oneLine(message)} (this is a bug; please report it with the command you ran)\n`,
  );
  if (process.env.CLOUDTASER_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  return ExitCodes.failure;
}

/** A message folded onto one line (a cause's text may carry newlines): every coded line on stderr is one line. */
export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ');
}
