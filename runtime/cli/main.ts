#!/usr/bin/env node
import { reportFailure } from './output.js';
import { buildProgram, usageError } from './program.js';

const program = buildProgram();
// Commander already printed usage text for its own errors; we add the coded one-liner and the exit code.
program.configureOutput({ writeErr: (text) => process.stderr.write(text.startsWith('error:') ? '' : text) });
try {
  await program.parseAsync(process.argv);
} catch (err) {
  const usage = usageError(err);
  if (usage === 'exit-ok') process.exitCode = 0;
  else if (usage) process.exitCode = reportFailure(usage) + 1;
  else process.exitCode = reportFailure(err);
}
