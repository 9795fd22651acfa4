#!/usr/bin/env node
import { reportFailure } from './output.js';
import { buildProgram, usageError } from './program.js';

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  const usage = usageError(err);
  process.exitCode = usage === 'exit-ok' ? 0 : reportFailure(usage ?? err);
}
