import type { Command } from 'commander';
import { CloudtaserError } from '../core/errors.js';
import { parseSecretFiles } from './secret-files.js';

/** `cloudtaser-cli pod fetch-secrets`: the injected init container's entry point; configured by env only. */
export function registerPodCommands(program: Command): void {
  const pod = program
    .command('pod')
    .description('commands run inside application pods (injected by the webhook)');
  pod
    .command('fetch-secrets')
    .description(
      'log in to the pod API with the pod service-account token and write the requested secrets into the memory volume',
    )
    .addHelpText(
      'after',
      `
Configured by environment only (the cloudtaser webhook sets it on the init
container it injects):
  CLOUDTASER_POD_API_URL
      the broker's pod API, e.g. https://cloudtaser.cloudtaser-system.svc:8200
  CLOUDTASER_POD_API_CA_PEM
      PEM CA of the pod API certificate
  CLOUDTASER_ROLE
      the OpenBao Kubernetes-auth role to log in with
  CLOUDTASER_OUTPUT_DIR
      the memory volume to write <file>.json and ca.crt into
  CLOUDTASER_SECRETS
      JSON object of file name to path under the secret mount, e.g.
      {"db":"app/db"}
  CLOUDTASER_TOKEN_FILE
      the service-account token (default: the automounted one)`,
    )
    .action(async () => {
      const env = process.env;
      const missing = [
        'CLOUDTASER_POD_API_URL',
        'CLOUDTASER_POD_API_CA_PEM',
        'CLOUDTASER_ROLE',
        'CLOUDTASER_OUTPUT_DIR',
      ].filter((name) => !env[name]);
      if (missing.length > 0)
        throw new CloudtaserError(
          'CT_INVALID_ARGUMENT',
          `missing ${missing.join(', ')} (set by the cloudtaser webhook)`,
        );
      let secrets: unknown;
      try {
        secrets = JSON.parse(env.CLOUDTASER_SECRETS ?? '{}');
      } catch {
        throw new CloudtaserError('CT_INVALID_ARGUMENT', 'CLOUDTASER_SECRETS is not a JSON object');
      }
      // Loaded on use: the pod API client (undici) is for this command only, not for every CLI start.
      const { fetchPodSecrets } = await import('./fetch.js');
      const result = await fetchPodSecrets({
        podApiUrl: env.CLOUDTASER_POD_API_URL!,
        caPem: env.CLOUDTASER_POD_API_CA_PEM!,
        role: env.CLOUDTASER_ROLE!,
        secrets: parseSecretFiles(secrets),
        outputDir: env.CLOUDTASER_OUTPUT_DIR!,
        tokenFile: env.CLOUDTASER_TOKEN_FILE || undefined,
      });
      process.stdout.write(`fetched ${result.written.length} secret(s): ${result.written.join(', ')}\n`);
    });
}
