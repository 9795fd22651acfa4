import { once } from 'node:events';
import { constants } from 'node:fs';
import { access, mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { CloudtaserError } from '../core/errors.js';
import { createLogger } from '../core/log.js';
import { parseDurationOrZero } from '../core/shutdown.js';
import { printJson } from './output.js';

export function registerDevCommands(program: Command): void {
  const dev = program.command('dev').description('a local dev stack (test servers, not for production)');
  dev
    .command('up')
    .description(
      'start an OpenBao test server, a Kubernetes test server and a beacon on loopback; print one JSON line; run until Ctrl-C',
    )
    .option(
      '--dir <path>',
      'folder for the kubeconfig and beacon CA (default: a temp folder removed on exit)',
    )
    .option('--json', 'print only the JSON line (the default output is that line too; kept for scripts)')
    .option(
      '--standby <mode>',
      'also start an HA standby of the OpenBao test server (secretstoreStandbyAddress): "forward" passes writes to the active node as OpenBao does by default, "redirect" answers them 307 (request forwarding off)',
    )
    .option(
      '--standby-read-lag <duration>',
      "how far the standby's reads trail the active node, e.g. 200ms (OpenBao >= 2.5 serves reads on standbys)",
      '0',
    )
    .action(async (opts: { dir?: string; json?: boolean; standby?: string; standbyReadLag: string }) => {
      const logger = createLogger('dev');
      // Listen before the JSON line goes out: a script that reads it and stops us at once must not find the
      // default action (exit by signal, temp files left behind).
      const stopRequested = Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]);
      if (opts.dir !== undefined) await prepareDir(opts.dir);
      const standby = parseStandby(opts.standby, opts.standbyReadLag);
      const { startDevStack } = await import('../dev/stack.js');
      const stack = await startDevStack({ dir: opts.dir, logger, standby });
      const info = {
        secretstoreAddress: stack.secretstoreAddress,
        secretstoreStandbyAddress: stack.secretstoreStandbyAddress,
        secretstoreToken: stack.secretstoreToken,
        registrarToken: stack.registrarToken,
        bridgeToken: stack.bridgeToken,
        kubeconfig: stack.kubeconfig,
        operatorKubeconfig: stack.operatorKubeconfig,
        kubeSystemUid: stack.kubeSystemUid,
        beaconAddress: stack.beaconAddress,
        // Where the metrics are: the beacon's now; bridge and broker serve theirs on the port --metrics-listen names.
        metrics: {
          beacon: stack.beaconMetricsUrl,
          bridge: 'http://<bridge run --metrics-listen host:port>/metrics (cloudtaser_bridge_*)',
          broker: 'http://<broker run --metrics-listen host:port>/metrics (cloudtaser_broker_*)',
        },
        beaconCaFile: stack.beaconCaFile,
        beaconClientCaFile: stack.beaconClientCaFile,
        trustRecord: stack.trustRecord,
      };
      printJson(info);
      if (!opts.json && process.stderr.isTTY) {
        process.stderr.write(
          `dev stack up. Try:\n  KUBECONFIG=${stack.kubeconfig} cloudtaser-cli target fingerprint\n  CLOUDTASER_SECRETSTORE_TOKEN=${stack.registrarToken} cloudtaser-cli source register --secretstore-address ${stack.secretstoreAddress} --fingerprint ${stack.kubeSystemUid}\nMetrics: beacon ${stack.beaconMetricsUrl}; bridge and broker on their --metrics-listen port (/metrics).\nDiagnose: cloudtaser-cli source doctor --fingerprint ${stack.kubeSystemUid} --bridge-health-url <bridge --health-listen url>, and KUBECONFIG=${stack.kubeconfig} cloudtaser-cli target doctor --broker-status-url <broker --health-listen url> --beacon ${stack.beaconAddress} --beacon-ca ${stack.beaconCaFile} (this stack runs no operator Deployment: the doctor checks the broker you point it at)\nCtrl-C stops it.\n`,
        );
      }
      await stopRequested;
      await stack.close();
    });
}

/** The standby `--standby` and `--standby-read-lag` ask for, checked before anything starts. */
function parseStandby(
  mode: string | undefined,
  readLag: string,
): { requestForwarding: boolean; readLagMs: number } | undefined {
  // A duration with its unit, as every duration flag (a bare number is refused: see parseDuration).
  const lag = parseDurationOrZero(readLag, '--standby-read-lag');
  if (lag > 60_000)
    throw new CloudtaserError('CT_INVALID_ARGUMENT', '--standby-read-lag must be at most 60s');
  if (mode === undefined) {
    if (lag !== 0)
      throw new CloudtaserError('CT_INVALID_ARGUMENT', '--standby-read-lag needs --standby forward|redirect');
    return undefined;
  }
  if (mode !== 'forward' && mode !== 'redirect')
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `--standby must be "forward" or "redirect", not ${JSON.stringify(mode)}`,
    );
  return { requestForwarding: mode === 'forward', readLagMs: lag };
}

/** Creates the --dir folder and checks it is writable, so a wrong path is named as such before anything starts. */
async function prepareDir(dir: string): Promise<void> {
  try {
    await makeDirectories(resolve(dir));
    if (!(await stat(dir)).isDirectory())
      throw Object.assign(new Error(`${dir} is not a directory`), { code: 'ENOTDIR' });
    await access(dir, constants.W_OK);
  } catch (err) {
    const { code, message } = err as NodeJS.ErrnoException;
    throw new CloudtaserError('CT_INVALID_ARGUMENT', `cannot use --dir ${dir}: ${code ?? message}`, {
      cause: err,
    });
  }
}

/**
 * `mkdir -p` one level at a time. Node 20's own `mkdir(..., { recursive: true })` spins forever on a path under a
 * pseudo file system that refuses new entries with ENOENT (`--dir /proc/x` hung `dev up` at full CPU).
 */
async function makeDirectories(dir: string): Promise<void> {
  try {
    await mkdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    const parent = dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw err;
    await makeDirectories(parent);
    // The parent exists now: a second ENOENT is the file system refusing, and is thrown.
    await mkdir(dir).catch((again: NodeJS.ErrnoException) => {
      if (again.code !== 'EEXIST') throw again;
    });
  }
}
