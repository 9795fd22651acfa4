#!/usr/bin/env node
import { runProgram } from './program.js';

// Only a failure sets the exit code: a long-running command (beacon serve) sets its own when it stops.
const code = await runProgram(process.argv);
if (code !== 0) process.exitCode = code;
