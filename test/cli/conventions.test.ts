/**
 * The CLI's conventions, uniformly, through the built `cloudtaser-cli` (README "Command reference"):
 * one `CT_CODE: message` line per error on stderr, usage errors exit 2, temporary failures 75 and others 1, --help exits 0 on
 * every command, --log-level / CLOUDTASER_LOG_LEVEL checked and honoured, log lines with one key of each name.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProgram } from '../../runtime/cli/program.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { makeCerts } from '../beacon/helpers.js';
import { freePort, isListening, occupyPort } from '../ports.js';
import { CLI, runCli } from './run-cli.js';

const FP = '0ad50c05-1153-4508-9237-4cb2912e2c23';
const dir = mkdtempSync(join(tmpdir(), 'ct-cli-conventions-'));

/** stderr must be exactly one line: the coded error. */
function oneLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l !== '');
  expect(lines, stderr).toHaveLength(1);
  return lines[0];
}

describe('usage errors: exit 2, one CT_ line on stderr, nothing on stdout', () => {
  const notAKubeconfig = join(dir, 'values.yaml');
  writeFileSync(notAKubeconfig, 'replicaCount: 2\nimage: {repository: nginx}\n');
  const token = { CLOUDTASER_SECRETSTORE_TOKEN: 'root' };
  const address = ['--secretstore-address', 'http://127.0.0.1:9'];

  it.each([
    [
      '--output yaml',
      ['source', 'status', '--fingerprint', FP, ...address, '--output', 'yaml'],
      token,
      /--output must be "text" or "json", not "yaml"/,
    ],
    [
      'a secret-store address that is not a URL',
      ['source', 'status', '--fingerprint', FP, '--secretstore-address', 'openbao:8200'],
      token,
      /"openbao:8200" must start with https:\/\/ or http:\/\//,
    ],
    [
      'no secret-store address',
      ['source', 'status', '--fingerprint', FP],
      token,
      /no secret-store address: pass --secretstore-address/,
    ],
    [
      // Checked before the kubeconfig is loaded: it was CT_KUBE_CONFIG (exit 1) on a host without one.
      'a broker pin that is not a hash, on a host without a kubeconfig',
      [
        'broker',
        'run',
        '--beacon',
        'beacon.test:443',
        '--ca-sha256',
        'zz',
        '--kubeconfig',
        join(dir, 'none'),
      ],
      {},
      /^CT_INVALID_ARGUMENT: --ca-sha256 must be 64 hex characters/,
    ],
    [
      'no secret-store token',
      ['source', 'status', '--fingerprint', FP, ...address],
      {},
      /^CT_TOKEN_MISSING: .*CLOUDTASER_SECRETSTORE_TOKEN/,
    ],
    [
      'a fingerprint that is not a UUID',
      ['source', 'status', '--fingerprint', 'nope', ...address],
      token,
      /^CT_INVALID_FINGERPRINT: /,
    ],
    [
      'beacon serve without TLS',
      ['beacon', 'serve', '--listen', '127.0.0.1:0'],
      {},
      /beacon serve needs --tls-cert and --tls-key/,
    ],
    [
      'a missing required flag',
      ['source', 'register'],
      {},
      /required option '--fingerprint <uuid>' not specified \(see cloudtaser-cli source register --help\)$/,
    ],
    ['an unknown command', ['nosuch'], {}, /unknown command 'nosuch' \(see cloudtaser-cli --help\)$/],
    [
      'an unknown subcommand',
      ['source', 'regster'],
      {},
      /unknown command 'regster'.*\(see cloudtaser-cli source --help\)$/,
    ],
    [
      'a command group without a command',
      ['source'],
      {},
      /cloudtaser-cli source needs a command: policy, register, deregister, beacon-ca, status/,
    ],
    [
      'an unknown flag',
      ['source', 'status', '--fingerprint', FP, '--no-such-flag'],
      {},
      /unknown option '--no-such-flag'/,
    ],
    [
      'an unknown flag with a value (never printed: it may be a mistyped token)',
      ['source', 'status', '--fingerprint', FP, '--secretstore-tokn=hvs.CANARY0123456789'],
      {},
      /unknown option '--secretstore-tokn=…' \(see cloudtaser-cli source status --help\)$/,
    ],
    [
      'a known secret flag on a command without it',
      ['bridge', 'run', '--approle-secretid=7f0c2c1e-CANARY'],
      {},
      /unknown option '--approle-secretid=…' \(see cloudtaser-cli bridge run --help\)$/,
    ],
    [
      '--log-level bogus',
      ['target', 'fingerprint', '--log-level', 'bogus'],
      {},
      /--log-level must be one of fatal, error, warn, info, debug, trace, silent, not "bogus"/,
    ],
    [
      'CLOUDTASER_LOG_LEVEL=bogus',
      ['target', 'fingerprint'],
      { CLOUDTASER_LOG_LEVEL: 'bogus' },
      /CLOUDTASER_LOG_LEVEL must be one of/,
    ],
    [
      '--timeout 0',
      ['source', 'status', '--fingerprint', FP, ...address, '--timeout', '0'],
      token,
      /--timeout must be a number of seconds from 1 to 600/,
    ],
    [
      '--wait abc on migrate',
      ['target', 'migrate', '--wait', 'abc'],
      {},
      /--wait must be a whole number of seconds/,
    ],
  ] as const)('%s', async (_name, args, env, message) => {
    const result = await runCli([...args], env);
    const line = oneLine(result.stderr);
    expect(line).toMatch(/^CT_[A-Z_]+: /);
    expect(line).toMatch(message);
    expect(result.stdout).toBe('');
    expect(result.code).toBe(2);
  });
});

describe('usage errors thrown by a command itself name its --help, once', () => {
  const token = { CLOUDTASER_SECRETSTORE_TOKEN: 'root' };
  const address = ['--secretstore-address', 'http://127.0.0.1:9'];
  const refusedKubeconfig = join(dir, 'refused-kubeconfig.yaml');
  writeFileSync(
    refusedKubeconfig,
    'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]\nusers: [{name: u, user: {token: abc}}]\ncontexts: [{name: ctx, context: {cluster: c, user: u}}]\ncurrent-context: ctx\n',
  );

  it.each([
    [
      '--output yaml',
      ['source', 'status', '--fingerprint', FP, ...address, '--output', 'yaml'],
      'source status',
    ],
    ['--timeout 0', ['source', 'status', '--fingerprint', FP, ...address, '--timeout', '0'], 'source status'],
    [
      'target trust pin --ca-sha256 zz',
      ['target', 'trust', 'pin', '--ca-sha256', 'zz', '--kubeconfig', refusedKubeconfig],
      'target trust pin',
    ],
    ['beacon serve without --tls-cert', ['beacon', 'serve', '--allow-anonymous-bridges'], 'beacon serve'],
    ['--log-level bogus', ['target', 'fingerprint', '--log-level', 'bogus'], 'target fingerprint'],
    // commander's own usage error already names it: not twice.
    ['an unknown flag', ['source', 'status', '--no-such-flag'], 'source status'],
  ] as const)('%s', async (_name, args, command) => {
    const result = await runCli([...args], token);
    const line = oneLine(result.stderr);
    expect(line).toMatch(/^CT_[A-Z_]+: /);
    expect(line.endsWith(`(see cloudtaser-cli ${command} --help)`), line).toBe(true);
    expect(line.split('--help').length - 1, line).toBe(1);
    expect(result.code).toBe(2);
  });
});

describe('contradictory flags', () => {
  it.each([[['--migration', '--no-migration']], [['--no-migration', '--migration']]])(
    'source register %j is a usage error before OpenBao is contacted',
    async (flags) => {
      const result = await runCli(
        ['source', 'register', '--fingerprint', FP, '--secretstore-address', 'http://127.0.0.1:9', ...flags],
        { CLOUDTASER_SECRETSTORE_TOKEN: 'root' },
      );
      expect(oneLine(result.stderr)).toMatch(/^CT_INVALID_ARGUMENT: .*--migration.*--no-migration/);
      expect(result.code).toBe(2);
    },
  );
});

describe('an invalid --beacon is a usage error at start, not an endless retry', () => {
  const refusedKubeconfig = join(dir, 'refused-kubeconfig-beacon.yaml');
  writeFileSync(
    refusedKubeconfig,
    'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]\nusers: [{name: u, user: {token: abc}}]\ncontexts: [{name: ctx, context: {cluster: c, user: u}}]\ncurrent-context: ctx\n',
  );
  const broker = ['broker', 'run', '--kubeconfig', refusedKubeconfig];
  const bridge = [
    'bridge',
    'run',
    '--secretstore-address',
    'http://127.0.0.1:9',
    '--beacon-client-identity',
    'none',
  ];

  it.each([
    ['broker run, port out of range', [...broker, '--beacon', '127.0.0.1:99999']],
    ['broker run, port by service name', [...broker, '--beacon', 'beacon.example.com:https']],
    ['bridge run, port out of range', [...bridge, '--beacon', '127.0.0.1:99999']],
    ['bridge run, one bad among good ones', [...bridge, '--beacon', '127.0.0.1:443', '--beacon', 'a b:1']],
  ])('%s', async (_name, args) => {
    const result = await runCli(
      [...args, '--log-level', 'silent'],
      { CLOUDTASER_SECRETSTORE_TOKEN: 'x' },
      12_000,
    );
    expect(oneLine(result.stderr)).toMatch(/^CT_INVALID_ARGUMENT: .*--beacon/);
    expect(result.code).toBe(2);
  });
});

describe('a port that cannot be listened on names its flag', () => {
  const certs = makeCerts();
  const cert = join(dir, 'beacon-cert.pem');
  const key = join(dir, 'beacon-key.pem');
  writeFileSync(cert, certs.beacon.certPem);
  writeFileSync(key, certs.beacon.keyPem);
  const serve = ['beacon', 'serve', '--tls-cert', cert, '--tls-key', key, '--allow-anonymous-bridges'];
  let busy: { port: number; release(): Promise<void> };
  beforeAll(async () => {
    busy = await occupyPort();
  });
  afterAll(() => busy?.release());

  it('beacon serve --listen on a busy port: CT_LISTEN_FAILED naming --listen, the address and what to do, exit 1', async () => {
    const result = await runCli([
      ...serve,
      '--listen',
      `127.0.0.1:${busy.port}`,
      '--metrics-listen',
      'off',
      '--log-level',
      'silent',
    ]);
    const line = oneLine(result.stderr);
    // The host's state, not a typo: before, a usage error (exit 2) that sent an outside SRE drill to the flags.
    expect(line).toMatch(/^CT_LISTEN_FAILED: .*--listen/);
    expect(line).toContain(`127.0.0.1:${busy.port}`);
    expect(line).toContain('`ss -ltnp` names it');
    expect(line).not.toMatch(/this is a bug/);
    expect(result.code).toBe(1);
  });

  it('bridge run whose health port is busy exits, leaving its TokenReview port free (it kept running before)', async () => {
    // An outside docs drill: the bridge printed its fatal line and kept running, holding --tokenreview-listen and
    // its OpenBao connections, so the next start failed on that port too.
    const openbao = await startOpenBaoTestServer();
    const tokenReviewPort = await freePort();
    try {
      const result = await runCli(
        [
          'bridge',
          'run',
          '--secretstore-address',
          openbao.address,
          '--beacon',
          '127.0.0.1:9',
          '--beacon-client-identity',
          'none',
          '--health-listen',
          `127.0.0.1:${busy.port}`,
          '--tokenreview-listen',
          `127.0.0.1:${tokenReviewPort}`,
          '--tokenreview-plain-http',
          '--log-level',
          'silent',
        ],
        { CLOUDTASER_SECRETSTORE_TOKEN: openbao.rootToken },
        15_000,
      );
      expect(oneLine(result.stderr)).toMatch(/^CT_LISTEN_FAILED: cannot listen for health probes/);
      expect(result.code).toBe(1);
      expect(await isListening(tokenReviewPort)).toBe(false);
    } finally {
      await openbao.close();
    }
  });

  it('beacon serve --metrics-listen on a busy port: names --metrics-listen, without an error class name', async () => {
    const result = await runCli([
      ...serve,
      '--listen',
      '127.0.0.1:0',
      '--metrics-listen',
      `127.0.0.1:${busy.port}`,
      '--log-level',
      'silent',
    ]);
    const line = oneLine(result.stderr);
    expect(line).toMatch(/^CT_LISTEN_FAILED: .*--metrics-listen/);
    expect(line).toContain(`127.0.0.1:${busy.port}`);
    expect(line).not.toContain('Error:');
    expect(result.code).toBe(1);
  });
});

describe('file-system mistakes name the flag, not "this is a bug"', () => {
  const aFile = join(dir, 'a-file');
  writeFileSync(aFile, 'x\n');

  it.each([
    [
      'provider install --bundle <missing file>',
      ['provider', 'install', '--mirror', join(dir, 'mirror-a'), '--bundle', join(dir, 'no-such-bundle.cjs')],
      '--bundle',
    ],
    [
      'provider install --mirror <path under a file>',
      ['provider', 'install', '--mirror', join(aFile, 'mirror')],
      '--mirror',
    ],
    [
      'dev up --dir <path under a file>',
      ['dev', 'up', '--dir', join(aFile, 'dev'), '--log-level', 'silent'],
      '--dir',
    ],
  ])('%s', async (_name, args, flag) => {
    const result = await runCli(args);
    const line = oneLine(result.stderr);
    expect(line).toMatch(/^CT_INVALID_ARGUMENT: /);
    expect(line).not.toMatch(/this is a bug/);
    expect(line).toContain(flag);
    expect(result.code).toBe(2);
  });
});

describe('other failures: exit 1, or 75 when the same command may pass later; one CT_ line', () => {
  it('a file that is not a kubeconfig is named as such, not as a kubeconfig without a current-context', async () => {
    const file = join(dir, 'values.yaml');
    const result = await runCli(['target', 'fingerprint', '--kubeconfig', file]);
    expect(oneLine(result.stderr)).toBe(
      `CT_KUBE_CONFIG: ${file} is not a kubeconfig: it has no clusters, contexts or users (a kubeconfig is YAML with kind: Config, as kubectl writes to ~/.kube/config); check the path`,
    );
    expect(result.code).toBe(1);
  });

  it('a file that is not YAML at all says so with the line, in one line', async () => {
    const file = join(dir, 'notes.txt');
    writeFileSync(file, 'key: value\n  - broken: [\n');
    const result = await runCli(['target', 'fingerprint', '--kubeconfig', file]);
    expect(oneLine(result.stderr)).toMatch(
      /^CT_KUBE_CONFIG: .*notes\.txt is not a usable kubeconfig: it is not YAML \(.* on line \d+\)$/,
    );
    expect(result.code).toBe(1);
  });

  it('an OpenBao that refuses connections is temporary (exit 75); a token it refuses is not (exit 1)', async () => {
    const closed = await occupyPort();
    await closed.release();
    const unreachable = await runCli(
      ['source', 'status', '--fingerprint', FP, '--secretstore-address', `http://127.0.0.1:${closed.port}`],
      { CLOUDTASER_SECRETSTORE_TOKEN: 'root' },
    );
    expect(oneLine(unreachable.stderr)).toMatch(/^CT_OPENBAO_UNREACHABLE: /);
    expect(unreachable.code).toBe(75);
    const openbao = await startOpenBaoTestServer();
    try {
      const denied = await runCli(
        ['source', 'register', '--fingerprint', FP, '--secretstore-address', openbao.address],
        { CLOUDTASER_SECRETSTORE_TOKEN: 'not-a-token' },
      );
      expect(oneLine(denied.stderr)).toMatch(/^CT_OPENBAO_PERMISSION_DENIED: /);
      expect(denied.code).toBe(1);
    } finally {
      await openbao.close();
    }
  });

  describe('an OpenBao that accepts connections and never answers', () => {
    let silent: Server;
    const sockets: Socket[] = [];
    beforeAll(async () => {
      silent = createServer((socket) => sockets.push(socket)).listen(0, '127.0.0.1');
      await once(silent, 'listening');
    });
    afterAll(() => {
      for (const s of sockets) s.destroy();
      silent.close();
    });

    it('times out after --timeout and names that flag in the message', async () => {
      const { port } = silent.address() as { port: number };
      const started = performance.now();
      const result = await runCli(
        [
          'source',
          'status',
          '--fingerprint',
          FP,
          '--secretstore-address',
          `http://127.0.0.1:${port}`,
          '--timeout',
          '1',
        ],
        { CLOUDTASER_SECRETSTORE_TOKEN: 'root' },
      );
      const line = oneLine(result.stderr);
      expect(line).toMatch(
        /^CT_OPENBAO_TIMEOUT: OpenBao at http:\/\/127\.0\.0\.1:\d+ did not answer .* within 1000 ms/,
      );
      expect(line).toContain('raise the timeout (--timeout SECONDS)');
      // Temporary (the same command may pass later): 75, so a fleet script retries it and stops on the rest.
      expect(result.code).toBe(75);
      // One second per attempt, not the ten-second default.
      expect(performance.now() - started).toBeLessThan(9_000);
    });
  });
});

describe('--help', () => {
  /** Every command path in the tree, as a user types it. */
  function commandPaths(cmd: Command, prefix: string[] = []): string[][] {
    const here = cmd.parent ? [...prefix, cmd.name()] : [];
    return [here, ...cmd.commands.flatMap((child) => commandPaths(child, here))];
  }

  it('exits 0 with usage on stdout and nothing on stderr for every command', async () => {
    const paths = commandPaths(buildProgram()).filter((p) => p.at(-1) !== 'help');
    expect(paths.length).toBeGreaterThan(15);
    const failures: string[] = [];
    for (let i = 0; i < paths.length; i += 3) {
      await Promise.all(
        paths.slice(i, i + 3).map(async (path) => {
          const result = await runCli([...path, '--help'], {}, 60_000);
          if (result.code !== 0 || result.stderr !== '' || !result.stdout.startsWith('Usage: cloudtaser-cli'))
            failures.push(`${path.join(' ')}: exit ${result.code}, stderr ${JSON.stringify(result.stderr)}`);
          // Readable in an 80-column terminal and in a pipe (commander left descriptions beside long flags
          // unwrapped: lines of 387 characters in `source register --help`). A lone word longer may overflow.
          for (const line of result.stdout.split('\n'))
            if (line.length > 80 && line.trim().includes(' '))
              failures.push(`${path.join(' ')}: a line of ${line.length} characters: ${line.slice(0, 60)}…`);
        }),
      );
    }
    expect(failures).toEqual([]);
  }, 240_000);

  it('help <command> prints what <command> --help prints, at every depth', async () => {
    // Commander's help command takes one name: `help source list` printed the help of `source`.
    for (const path of [['source'], ['source', 'list'], ['bridge', 'run']]) {
      const asCommand = await runCli(['help', ...path]);
      const asFlag = await runCli([...path, '--help']);
      expect(asCommand.code, path.join(' ')).toBe(0);
      expect(asCommand.stdout, path.join(' ')).toBe(asFlag.stdout);
      expect(asCommand.stdout).toMatch(new RegExp(`^Usage: cloudtaser-cli ${path.join(' ')} `));
    }
  });

  it('documents --log-level with its levels on every command that runs', async () => {
    const result = await runCli(['bridge', 'run', '--help']);
    expect(result.stdout.replace(/\s+/g, ' ')).toContain(
      '--log-level <level> minimum level of the JSON log lines on stderr: fatal, error, warn, info, debug, trace, silent (env CLOUDTASER_LOG_LEVEL; default info for the processes that keep running, warn for one-shot commands)',
    );
  });
});

describe('log lines of dev up', () => {
  /** Starts `dev up`, waits for its JSON line, stops it, and returns its stderr log lines. */
  async function devUpLogLines(args: string[], env: Record<string, string> = {}): Promise<string[]> {
    const child = spawn(process.execPath, [CLI, 'dev', 'up', '--json', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    await new Promise((resolve, reject) => {
      createInterface({ input: child.stdout }).once('line', resolve);
      child.once('exit', (code) => reject(new Error(`dev up exited ${code}: ${stderr}`)));
    });
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    expect((await exited)[0]).toBe(0);
    return stderr.split('\n').filter((l) => l !== '');
  }

  /** Top-level keys that appear more than once in a JSON line (JSON.parse would hide them). */
  function duplicateKeys(line: string): string[] {
    const seen = new Map<string, number>();
    let depth = 0;
    let inString = false;
    let start = -1;
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (inString) {
        if (c === '\\') i++;
        else if (c === '"') {
          inString = false;
          const rest = line.slice(i + 1).trimStart();
          if (depth === 1 && rest.startsWith(':')) {
            const key = line.slice(start + 1, i);
            seen.set(key, (seen.get(key) ?? 0) + 1);
          }
        }
      } else if (c === '"') {
        inString = true;
        start = i;
      } else if (c === '{' || c === '[') depth++;
      else if (c === '}' || c === ']') depth--;
    }
    return [...seen].filter(([, n]) => n > 1).map(([k]) => k);
  }

  it('carry one component, one module at most, and an event; nothing twice', async () => {
    const lines = await devUpLogLines([]);
    expect(lines.length).toBeGreaterThanOrEqual(3);
    for (const line of lines) {
      expect(duplicateKeys(line), line).toEqual([]);
      const entry = JSON.parse(line);
      expect(entry.component, line).toBe('dev');
      expect(typeof entry.event, line).toBe('string');
    }
    expect(new Set(lines.map((l) => JSON.parse(l).module))).toEqual(
      new Set(['openbao-test-server', 'kube-test-server', 'beacon']),
    );
  }, 60_000);

  it('--log-level warn drops the info lines; CLOUDTASER_LOG_LEVEL does the same and the flag wins over it', async () => {
    expect(await devUpLogLines(['--log-level', 'warn'])).toEqual([]);
    expect(await devUpLogLines([], { CLOUDTASER_LOG_LEVEL: 'error' })).toEqual([]);
    const flagWins = await devUpLogLines(['--log-level', 'info'], { CLOUDTASER_LOG_LEVEL: 'error' });
    expect(flagWins.length).toBeGreaterThanOrEqual(3);
  }, 90_000);
});

describe('source status of a cluster that is not registered', () => {
  let openbao: OpenBaoTestServer;
  beforeAll(async () => {
    openbao = await startOpenBaoTestServer();
  });
  afterAll(() => openbao?.close());

  it('says it is not registered and names no namespace as if it existed', async () => {
    const result = await runCli(
      ['source', 'status', '--fingerprint', FP, '--secretstore-address', openbao.address],
      {
        CLOUDTASER_SECRETSTORE_TOKEN: openbao.rootToken,
      },
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Registered:  no (no registration record in OpenBao at');
    expect(result.stdout).toContain(`Namespace:   none (registering creates cloudtaser/${FP.slice(0, 8)})`);
    expect(result.stdout).not.toMatch(/Namespace:\s+cloudtaser\//);
    expect(result.stdout).not.toContain('Attested');
    expect(result.stdout).toContain(`Register it with: cloudtaser-cli source register --fingerprint ${FP}`);
  });
});
