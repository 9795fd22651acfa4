import { Command, CommanderError, Help, Option } from 'commander';
import { registerProviderCommand } from '../../provider/command.js';
import { registerBeaconCommand } from '../beacon/command.js';
import { registerBridgeCommand } from '../bridge/command.js';
import { registerBrokerCommand } from '../broker/command.js';
import { CloudtaserError } from '../core/errors.js';
import { LOG_LEVELS, parseLogLevel } from '../core/log.js';
import { CLOUDTASER_VERSION } from '../core/version.js';
import { registerPodCommands } from '../webhook/command.js';
import { registerDevCommands } from './dev.js';
import { registerMigrateCommand } from './migrate.js';
import { reportFailure } from './output.js';
import { registerSourceCommands } from './source.js';
import { registerTargetCommands } from './target.js';

export const VERSION = CLOUDTASER_VERSION;

/** Builds the whole `cloudtaser-cli` command tree; tests call this in-process with their own argv. */
export function buildProgram(): Command {
  const program = new Command('cloudtaser-cli')
    .description('connect Kubernetes clusters to an EU-hosted OpenBao through an outbound-only relay')
    .version(VERSION);
  registerTargetCommands(program);
  registerMigrateCommand(program);
  registerPodCommands(program);
  registerSourceCommands(program);
  registerDevCommands(program);
  registerBeaconCommand(program);
  registerBridgeCommand(program);
  registerBrokerCommand(program);
  registerProviderCommand(program);
  // Every command, at every depth: usage errors come back as exceptions we turn into ONE coded line (commander
  // prints nothing itself), and every command that runs takes --log-level.
  const applyConventions = (cmd: Command) => {
    const path = commandPath(cmd);
    cmd.exitOverride((err) => {
      throw Object.assign(err, { commandPath: path, subcommands: cmd.commands.map((c) => c.name()) });
    });
    cmd.configureOutput({ writeErr: () => {}, outputError: () => {} });
    cmd.configureHelp({ formatItem: formatHelpItem });
    refuseContradictoryFlags(cmd);
    if (cmd.commands.length === 0 && cmd !== program) {
      cmd.addOption(
        new Option(
          '--log-level <level>',
          `minimum level of the JSON log lines on stderr: ${LOG_LEVELS.join(', ')} (env CLOUDTASER_LOG_LEVEL; default info for the processes that keep running, warn for one-shot commands)`,
        ),
      );
    }
    for (const child of cmd.commands) applyConventions(child);
  };
  applyConventions(program);
  // Before any command runs: the log level from the flag, else the environment, checked once (a usage error).
  program.hook('preAction', (_program, action) => {
    runningCommand.set(program, commandPath(action));
    const flag = action.opts().logLevel as string | undefined;
    if (flag !== undefined) process.env.CLOUDTASER_LOG_LEVEL = parseLogLevel(flag, '--log-level');
    else if (process.env.CLOUDTASER_LOG_LEVEL !== undefined)
      parseLogLevel(process.env.CLOUDTASER_LOG_LEVEL, 'CLOUDTASER_LOG_LEVEL');
  });
  return program;
}

/** The path of the command whose action runs (`cloudtaser-cli source status`), once parsing has chosen it. */
const runningCommand = new WeakMap<Command, string>();

/**
 * Runs `cloudtaser-cli` with `argv` (as process.argv); a failure is printed as the one coded line and its exit
 * code returned (2 usage, 1 other), success or a help request returns 0. A usage error a command's action throws
 * names that command's --help, as commander's own usage errors do.
 */
export async function runProgram(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(helpAsFlag(argv));
    return 0;
  } catch (err) {
    const usage = usageError(err);
    if (usage === 'exit-ok') return 0;
    if (usage) return reportFailure(usage);
    return reportFailure(err, { helpCommand: runningCommand.get(program) });
  }
}

/** Indent of a description printed under its flag. */
const STACKED_INDENT = 6;

/**
 * One flag or command of a help listing. Commander wraps a description beside its flag only when at least 40
 * columns remain; with our long flags (`--tokenreview-endpoint <url>`) none did, and `source register --help` had
 * lines of 387 characters. Then the description goes under the flag, wrapped to the width, as kubectl prints it.
 */
function formatHelpItem(
  this: Help,
  term: string,
  termWidth: number,
  description: string,
  helper: Help,
): string {
  const width = this.helpWidth ?? 80;
  const besideWidth = width - termWidth - 4; // two columns of indent, two between flag and description
  if (!description || besideWidth >= helper.minWidthToWrap)
    return Help.prototype.formatItem.call(this, term, termWidth, description, helper);
  const indent = ' '.repeat(STACKED_INDENT);
  return `  ${term}\n${indent}${helper.boxWrap(description, width - STACKED_INDENT).replace(/\n/g, `\n${indent}`)}`;
}

/**
 * `help source list` as `source list --help`. Commander's help command takes one
 * command name and ignores the rest, so it printed the help of `source` for `help source list`.
 */
function helpAsFlag(argv: readonly string[]): string[] {
  const [node, script, first, ...rest] = argv;
  if (first !== 'help' || rest.length === 0) return [...argv];
  return [node, script, ...rest, '--help'];
}

/**
 * `--x` and `--no-x` on one command line contradict each other; commander would let the last one win without a
 * word, so the same command could mean either depending on flag order.
 */
function refuseContradictoryFlags(cmd: Command): void {
  for (const negative of cmd.options.filter((option) => option.negate)) {
    const positive = cmd.options.find(
      (option) => !option.negate && option.attributeName() === negative.attributeName(),
    );
    if (!positive?.long || !negative.long) continue;
    const given = new Set<string>();
    cmd.on(`option:${positive.name()}`, () => given.add(positive.name()));
    cmd.on(`option:${negative.name()}`, () => given.add(negative.name()));
    cmd.hook('preAction', () => {
      if (given.size === 2)
        throw new CloudtaserError(
          'CT_INVALID_ARGUMENT',
          `${positive.long} and ${negative.long} contradict each other; give one of them`,
        );
    });
  }
}

function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/**
 * Maps commander's usage errors to our stable code, in one line that names the command's --help; help and
 * version requests are not errors.
 */
export function usageError(err: unknown): CloudtaserError | 'exit-ok' | undefined {
  if (!(err instanceof CommanderError)) return undefined;
  const { commandPath: path = 'cloudtaser-cli', subcommands = [] } = err as CommanderError & {
    commandPath?: string;
    subcommands?: string[];
  };
  if (err.exitCode === 0) return 'exit-ok';
  if (err.code === 'commander.help') {
    // A command group called without a command: commander shows its help as an error.
    return new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `${path} needs a command: ${subcommands.filter((c) => c !== 'help').join(', ')} (see ${path} --help)`,
    );
  }
  const message = err.message
    .replace(/^error: /, '')
    .replace(/\s*\n\s*/g, ' ')
    // commander quotes an unknown `--flag=value` whole: a mistyped --secretstore-token=... must not reach a log.
    .replace(/'(-{1,2}[^'=\s]+)=[^']*'/g, "'$1=…'");
  return new CloudtaserError('CT_INVALID_ARGUMENT', `${message} (see ${path} --help)`);
}
