/** Helpers for synth tests: a fresh stack, its parsed JSON, and a scan for anything secret. */
import { TerraformStack, Testing } from '../../constructs/cdktf.js';

// biome-ignore lint/suspicious/noExplicitAny: synthesized Terraform JSON is untyped by nature
export type TerraformJson = Record<string, any>;

export function newStack(): TerraformStack {
  return new TerraformStack(Testing.app(), 'stack');
}

export function synthJson(stack: TerraformStack): TerraformJson {
  return JSON.parse(Testing.synth(stack));
}

/** The only element of a map of resources/data sources of one type, failing when there are several. */
export function only(map: Record<string, unknown> | undefined): TerraformJson {
  const values = Object.values(map ?? {});
  if (values.length !== 1) throw new Error(`expected exactly one element, got ${values.length}`);
  return values[0] as TerraformJson;
}

/** Warnings and errors attached through Annotations, as messages. */
export function annotationsOf(stack: TerraformStack, level: 'warn' | 'error'): string[] {
  const messages: string[] = [];
  for (const child of stack.node.findAll()) {
    for (const entry of child.node.metadata) {
      if (entry.type === `@cdktf/${level}`) messages.push(String(entry.data));
    }
  }
  return messages;
}

/**
 * Everything in the JSON that looks like a secret: PEM private keys, known token shapes, a token attribute
 * whose value is a literal instead of a Terraform reference, and any of the given secret strings.
 */
export function secretsIn(json: string, knownSecrets: readonly string[] = []): string[] {
  const found: string[] = [];
  if (/PRIVATE KEY/.test(json)) found.push('a PEM private key');
  if (/\b(hvs|hvb|s)\.[A-Za-z0-9]{20,}/.test(json)) found.push('an OpenBao/Vault token');
  if (/"secretstore_token"/.test(json)) found.push('a secretstore_token attribute');
  for (const match of json.matchAll(/"(token|secret_id|role_id|client_key|password)"\s*:\s*"([^"]*)"/g)) {
    if (!match[2].startsWith('${')) found.push(`a literal ${match[1]}`);
  }
  for (const secret of knownSecrets)
    if (secret && json.includes(secret)) found.push(`the secret ${secret.slice(0, 4)}...`);
  return found;
}
