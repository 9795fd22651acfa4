#!/usr/bin/env node
/**
 * terraform-provider-cloudtaser. Terraform starts it; nothing may reach stdout before the handshake line.
 */
import { createCloudtaserProvider } from './cloudtaser.js';
import { runProviderProcess } from './framework/serve-provider.js';

const major = Number(process.versions.node.split('.')[0]);
if (major < 20) {
  // The first stdout line is shown to the Terraform user verbatim.
  process.stdout.write(
    `terraform-provider-cloudtaser needs Node.js >= 20 on PATH; found ${process.versions.node}\n`,
  );
  process.exit(1);
}

runProviderProcess(createCloudtaserProvider()).catch((err: unknown) => {
  process.stdout.write(`terraform-provider-cloudtaser failed to start: ${(err as Error).message}\n`);
  process.exit(1);
});
