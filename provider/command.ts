/** `cloudtaser-cli provider install --mirror DIR`: wired into the CLI by the lead. */
import type { Command } from 'commander';
import { DEFAULT_PLATFORMS } from './packaging/platforms.js';

export function registerProviderCommand(program: Command): void {
  const provider = program.command('provider').description('terraform-provider-cloudtaser helpers');
  provider
    .command('install')
    .description(
      'Install terraform-provider-cloudtaser into a filesystem mirror for Terraform and OpenTofu and print the CLI configuration to use',
    )
    .requiredOption('--mirror <dir>', 'mirror directory (created if missing)')
    .option('--packed', 'write zip archives instead of unpacked directories', false)
    .option('--platform <os_arch...>', `platforms to install (default: ${DEFAULT_PLATFORMS.join(' ')})`)
    .option('--bundle <file>', 'provider bundle to install (default: the one shipped in this package)')
    .option('--json', 'print the result as JSON', false)
    .action(
      async (options: {
        mirror: string;
        packed: boolean;
        platform?: string[];
        bundle?: string;
        json: boolean;
      }) => {
        // Loaded on use: the mirror pulls in the provider's schema, which `--help` does not need.
        const { installProviderMirror } = await import('./packaging/mirror.js');
        const result = installProviderMirror(options.mirror, {
          layout: options.packed ? 'packed' : 'unpacked',
          platforms: options.platform,
          bundlePath: options.bundle,
        });
        if (options.json) {
          process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
          return;
        }
        process.stdout.write(
          `Installed ${result.providerAddresses.join(' and ')} ${result.version} into ${result.mirrorDir} ` +
            `(${result.files.length} packages: the same bytes under both hosts).\n` +
            `Lock hash (same for every platform and both addresses): ${result.h1}\n\n` +
            'Add this to your CLI configuration: ~/.terraformrc for Terraform, ~/.tofurc for OpenTofu, or the file\n' +
            'TF_CLI_CONFIG_FILE names (both tools read it). It covers both tools:\n\n' +
            `${result.cliConfig}\n` +
            'In configurations keep source = "cloudtaser/cloudtaser": Terraform resolves it to registry.terraform.io,\n' +
            'OpenTofu to registry.opentofu.org, and the mirror serves both.\n' +
            'Requires Node.js >= 20.18 on the PATH terraform or tofu runs with.\n',
        );
      },
    );
}
