#!/usr/bin/env node
/**
 * terraform-provider-cloudtaser. Terraform starts it; nothing may reach stdout before the handshake line.
 */
import { PROVIDER_ADDRESS, PROVIDER_ADDRESSES, PROVIDER_VERSION } from './identity.js';
import { runPluginProcess } from './wire/plugin-process.js';

// The package's engines field: >= 20.18.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 18)) {
  // The first stdout line is shown to the Terraform user verbatim.
  process.stdout.write(
    `terraform-provider-cloudtaser needs Node.js >= 20.18 on PATH; found ${process.versions.node}\n`,
  );
  process.exit(1);
}

const identity = {
  address: PROVIDER_ADDRESS,
  aliases: PROVIDER_ADDRESSES.filter((address) => address !== PROVIDER_ADDRESS),
  version: PROVIDER_VERSION,
};

// The provider itself (framework, schemas, resources) is evaluated on the first RPC, after the handshake line:
// Terraform connects and sets up TLS meanwhile, so that work overlaps instead of adding to every start.
runPluginProcess(identity, async (logger) => {
  const [{ createCloudtaserProvider }, { createProviderHandlers }] = await Promise.all([
    import('./cloudtaser.js'),
    import('./framework/provider.js'),
  ]);
  return createProviderHandlers(createCloudtaserProvider(), { logger });
}).catch((err: unknown) => {
  process.stdout.write(`terraform-provider-cloudtaser failed to start: ${(err as Error).message}\n`);
  process.exit(1);
});
