import { Command, CommanderError } from 'commander';
import { registerProviderCommand } from '../../provider/command.js';
import { registerBeaconCommand } from '../beacon/command.js';
import { registerBridgeCommand } from '../bridge/command.js';
import { registerBrokerCommand } from '../broker/command.js';
import { CloudtaserError } from '../core/errors.js';
import { registerPodCommands } from '../webhook/command.js';
import { registerDevCommands } from './dev.js';
import { registerMigrateCommand } from './migrate.js';
import { registerSourceCommands } from './source.js';
import { registerTargetCommands } from './target.js';

export const VERSION = '0.1.0';

/** Builds the whole `cloudtaser-cli` command tree; tests call this in-process with their own argv. */
export function buildProgram(): Command {
  const program = new Command('cloudtaser-cli')
    .description('connect Kubernetes clusters to an EU-hosted OpenBao through an outbound-only relay')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerTargetCommands(program);
  registerMigrateCommand(program);
  registerPodCommands(program);
  registerSourceCommands(program);
  registerDevCommands(program);
  registerBeaconCommand(program);
  registerBridgeCommand(program);
  registerBrokerCommand(program);
  registerProviderCommand(program);
  // Every subcommand inherits exitOverride so usage errors come back as exceptions we can code.
  const applyOverride = (cmd: Command) => {
    cmd.exitOverride();
    for (const child of cmd.commands) applyOverride(child);
  };
  applyOverride(program);
  return program;
}

/** Maps commander's usage errors to our stable code; help and version requests are not errors. */
export function usageError(err: unknown): CloudtaserError | 'exit-ok' | undefined {
  if (!(err instanceof CommanderError)) return undefined;
  if (
    err.code === 'commander.helpDisplayed' ||
    err.code === 'commander.version' ||
    err.code === 'commander.help'
  ) {
    return 'exit-ok';
  }
  if (err.exitCode === 0) return 'exit-ok';
  return new CloudtaserError('CT_INVALID_ARGUMENT', err.message.replace(/^error: /, ''));
}
