/**
 * Runs `beacon serve` through the beacon's own command registration, for tests that kill -9 a beacon
 * process. (Used when the CLI program does not yet wire the beacon command.)
 */
import { Command } from 'commander';
import { registerBeaconCommand } from '../../runtime/beacon/command.js';

const program = new Command('beacon-child');
registerBeaconCommand(program);
await program.parseAsync(process.argv);
