/** Where the secret-store connection comes from when no flag is given: our own variable first, then OpenBao's and Vault's. */
export function resolveSecretStoreToken(
  flagValue?: string,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  return firstNonEmpty(flagValue, env.CLOUDTASER_SECRETSTORE_TOKEN, env.BAO_TOKEN, env.VAULT_TOKEN);
}

export function resolveSecretStoreAddress(
  flagValue?: string,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  return firstNonEmpty(flagValue, env.CLOUDTASER_SECRETSTORE_ADDRESS, env.BAO_ADDR, env.VAULT_ADDR);
}

function firstNonEmpty(...values: (string | undefined)[]): string | undefined {
  for (const value of values) {
    const trimmed = value?.trim();
    if (trimmed) return trimmed;
  }
  return undefined;
}
