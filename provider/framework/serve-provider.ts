/**
 * Entry points that put a provider definition on the wire:
 * - `startProviderServer`: in-process, plaintext, for tests and tools (attach with TF_REATTACH_PROVIDERS);
 * - `runProviderProcess`: what the executable does when Terraform (or a person with --debug) starts it.
 */
import type { Block } from '../schema/schema.js';
import { createHclogLogger, type ProviderLogger } from '../wire/hclog.js';
import { type RunPluginProcessOptions, runPluginProcess } from '../wire/plugin-process.js';
import { type PluginServerHandle, startPluginServer } from '../wire/serve.js';
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
    // Terraform and OpenTofu name the provider by different registry hosts; one process answers to both.
    providerAddress: [definition.address, ...(definition.aliases ?? [])],
    network: options.network,
    logger,
  });
  return { ...handle, reattachEnv: { TF_REATTACH_PROVIDERS: handle.reattachConfig } };
}

export type RunProviderProcessOptions = RunPluginProcessOptions;

/** Runs a provider definition as Terraform's child process (see wire/plugin-process.ts). */
export function runProviderProcess<PB extends Block, Client>(
  definition: ProviderDefinition<PB, Client>,
  options: RunProviderProcessOptions = {},
): Promise<void> {
  return runPluginProcess(
    definition,
    async (logger) => createProviderHandlers(definition, { logger }),
    options,
  );
}
