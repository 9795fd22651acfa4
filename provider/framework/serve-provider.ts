/**
 * Entry points that put a provider definition on the wire:
 * - `startProviderServer`: in-process, plaintext, for tests and tools (attach with TF_REATTACH_PROVIDERS);
 * - `runProviderProcess`: what the executable does when Terraform (or a person with --debug) starts it.
 */
import { unlinkSync } from 'node:fs';
import type { Block } from '../schema/schema.js';
import { createHclogLogger, type ProviderLogger } from '../wire/hclog.js';
import {
  MAGIC_COOKIE_KEY,
  MAGIC_COOKIE_VALUE,
  PLUGIN_PROTOCOL_VERSION,
  type PluginServerHandle,
  startPluginServer,
} from '../wire/serve.js';
import { createProviderHandlers, type ProviderDefinition } from './provider.js';

export interface StartProviderServerOptions {
  readonly logger?: ProviderLogger;
  readonly network?: 'unix' | 'tcp';
  readonly dumpValues?: boolean;
}

export interface ProviderServerHandle extends PluginServerHandle {
  /** `{ TF_REATTACH_PROVIDERS: ... }`, ready to spread into a terraform child's env. */
  readonly reattachEnv: Record<string, string>;
}

export async function startProviderServer<PB extends Block, Client>(
  definition: ProviderDefinition<PB, Client>,
  options: StartProviderServerOptions = {},
): Promise<ProviderServerHandle> {
  const logger = options.logger ?? createHclogLogger();
  const handle = await startPluginServer({
    handlers: createProviderHandlers(definition, { logger, dumpValues: options.dumpValues }),
    providerAddress: definition.address,
    network: options.network,
    logger,
  });
  return { ...handle, reattachEnv: { TF_REATTACH_PROVIDERS: handle.reattachConfig } };
}

export interface RunProviderProcessOptions {
  readonly argv?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  readonly stdout?: (text: string) => void;
  readonly stderr?: (text: string) => void;
  readonly exit?: (code: number) => never | void;
}

const PARENT_POLL_MS = 1000;

/** Runs the provider as Terraform's child process. Resolves once the server is listening. */
export async function runProviderProcess<PB extends Block, Client>(
  definition: ProviderDefinition<PB, Client>,
  options: RunProviderProcessOptions = {},
): Promise<void> {
  const argv = options.argv ?? process.argv.slice(2);
  const env = options.env ?? process.env;
  const stdout = options.stdout ?? ((text: string) => process.stdout.write(text));
  const stderr = options.stderr ?? ((text: string) => process.stderr.write(text));
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const name = `terraform-provider-${definition.address.split('/').pop()}`;

  if (argv.includes('--version')) {
    stdout(`${name} ${definition.version}\n`);
    exit(0);
    return;
  }
  if (argv.includes('--help') || argv.includes('-h')) {
    // A request for usage is not an error: exit 0, text on stdout (Terraform never passes --help).
    stdout(
      `Usage: ${name} [--version | --debug | --help]\n\n` +
        `${name} is a Terraform plugin: Terraform starts it from a configuration that requires "${definition.address}"\n` +
        '(install it with `cloudtaser-cli provider install --mirror DIR`).\n\n' +
        '  --version  print the version and exit\n' +
        '  --debug    serve on a local socket and print a TF_REATTACH_PROVIDERS line to export for terraform\n' +
        '  --help     print this text\n',
    );
    exit(0);
    return;
  }
  if (argv.includes('--debug')) {
    await runDebug(definition, stdout, stderr, exit);
    return;
  }
  if (env[MAGIC_COOKIE_KEY] !== MAGIC_COOKIE_VALUE) {
    stderr(
      `${name} is a Terraform plugin: Terraform starts it, not you.\n` +
        `Use it from a configuration that requires "${definition.address}" (see \`cloudtaser-cli provider install --mirror DIR\`),\n` +
        `or run \`${name} --debug\` and export the TF_REATTACH_PROVIDERS line it prints.\n`,
    );
    exit(1);
    return;
  }
  const offered = (env.PLUGIN_PROTOCOL_VERSIONS ?? String(PLUGIN_PROTOCOL_VERSION))
    .split(',')
    .map((v) => v.trim());
  if (!offered.includes(String(PLUGIN_PROTOCOL_VERSION))) {
    // The first stdout line is shown to the user verbatim when it is not a handshake.
    stdout(
      `${name} speaks plugin protocol 6 only, but this Terraform offered ${offered.join(',')}; use Terraform >= 1.0\n`,
    );
    exit(1);
    return;
  }

  const logger = createHclogLogger({ write: stderr });
  // Terraform's Ctrl-C reaches the whole process group; go-plugin servers ignore it and wait for StopProvider.
  process.on('SIGINT', () => logger.debug('sigint_ignored', 'SIGINT ignored; waiting for StopProvider'));
  const minPort = Number(env.PLUGIN_MIN_PORT ?? 0);
  const maxPort = Number(env.PLUGIN_MAX_PORT ?? 0);
  let handle: PluginServerHandle | undefined;
  const shutdown = (code: number) => {
    const done = () => exit(code);
    if (!handle) return done();
    const hard = setTimeout(done, 250);
    hard.unref();
    void handle.close().then(done, done);
  };
  handle = await startPluginServer({
    handlers: createProviderHandlers(definition, { logger }),
    providerAddress: definition.address,
    network: env.CLOUDTASER_PROVIDER_NETWORK === 'tcp' ? 'tcp' : undefined,
    portRange: [minPort, maxPort],
    clientCertPem: env.PLUGIN_CLIENT_CERT || undefined,
    onShutdown: () => exit(0),
    logger,
  });
  const socketPath = handle.network === 'unix' ? handle.address : undefined;
  process.on('exit', () => {
    if (socketPath) {
      try {
        unlinkSync(socketPath);
      } catch {
        // already removed
      }
    }
  });
  process.on('SIGTERM', () => shutdown(0));
  // If Terraform dies without calling Shutdown we are re-parented; do not linger as an orphan.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) {
      logger.warn('parent_gone', 'Terraform exited without shutting the provider down; exiting');
      shutdown(0);
    }
  }, PARENT_POLL_MS).unref();
  stdout(`${handle.handshakeLine}\n`);
}

async function runDebug<PB extends Block, Client>(
  definition: ProviderDefinition<PB, Client>,
  stdout: (text: string) => void,
  stderr: (text: string) => void,
  exit: (code: number) => never | void,
): Promise<void> {
  const logger = createHclogLogger({ write: stderr });
  const handle = await startProviderServer(definition, { logger });
  const stop = () => void handle.close().then(() => exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  stdout(
    `Provider started in debug mode (plaintext, pid ${process.pid}). To attach Terraform, run in another shell:\n\n` +
      `\texport TF_REATTACH_PROVIDERS='${handle.reattachConfig}'\n\n` +
      `Then run terraform as usual. Press Ctrl-C here to stop the provider.\n`,
  );
}
