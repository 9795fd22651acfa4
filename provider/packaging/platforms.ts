// Import-free, so `provider install --help` shows them without loading the provider (mirror.ts re-exports them).

/** Platforms with a POSIX shell and `#!/usr/bin/env node`; Windows would need a .exe shim. */
export const DEFAULT_PLATFORMS = [
  'linux_amd64',
  'linux_arm64',
  'darwin_amd64',
  'darwin_arm64',
  'freebsd_amd64',
] as const;
