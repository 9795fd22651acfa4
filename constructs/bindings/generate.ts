/**
 * Generates the CDKTF bindings for the cloudtaser provider from the provider's own schema (the one declaration
 * in `provider/` that also drives the codec, GetProviderSchema and the docs). The output mirrors what `cdktf get`
 * emits, in spirit: config interfaces with the attribute descriptions as jsdoc, attribute getters that return
 * references, `synthesizeAttributes` with snake_case keys and `terraformGeneratorMetadata`.
 *
 *   npm run build && node dist/constructs/bindings/generate.js [outDir]   # rewrites constructs/bindings/*.ts
 *
 * `test/constructs/bindings.test.ts` regenerates in memory and fails when the committed files drift.
 * This module and its parts in `generator/` are dev tooling: nothing in `constructs/index.ts` imports them, so
 * synth never loads the provider, and the npm package leaves them out.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HEADER, kebab, type Meta, stripProvider } from './generator/code.js';
import { elementFile } from './generator/element-file.js';
import { functionsFile } from './generator/functions-file.js';
import { providerFile } from './generator/provider-file.js';
import { cloudtaserSchemaJson, type ProviderSchemaJson } from './generator/schema-json.js';

export {
  type AttributeJson,
  type BlockJson,
  type BlockTypeJson,
  cloudtaserSchemaJson,
  type FunctionJson,
  type FunctionParameterJson,
  type ProviderSchemaJson,
} from './generator/schema-json.js';

/** File name (relative to constructs/bindings) -> TypeScript source. */
export function generateBindings(schema: ProviderSchemaJson): Map<string, string> {
  const providerName = schema.address.split('/').at(-1)!;
  const source = schema.address.replace(/^registry\.terraform\.io\//, '');
  const meta: Meta = {
    providerName,
    source,
    version: schema.version,
    constraint: `~> ${schema.version}`,
  };
  const files = new Map<string, string>();
  const exports: string[] = [];

  files.set('provider.ts', providerFile(meta, schema.provider.block));
  exports.push("export * from './provider.js';");
  for (const [typeName, { block }] of Object.entries(schema.resourceSchemas).sort(([a], [b]) =>
    a.localeCompare(b),
  )) {
    const file = `${kebab(stripProvider(typeName, providerName))}.ts`;
    files.set(file, elementFile(meta, typeName, block, 'resource'));
    exports.push(`export * from './${file.replace(/\.ts$/, '.js')}';`);
  }
  for (const [typeName, { block }] of Object.entries(schema.dataSourceSchemas).sort(([a], [b]) =>
    a.localeCompare(b),
  )) {
    const file = `data-${kebab(typeName)}.ts`;
    files.set(file, elementFile(meta, typeName, block, 'data'));
    exports.push(`export * from './${file.replace(/\.ts$/, '.js')}';`);
  }
  if (schema.functions && Object.keys(schema.functions).length > 0) {
    files.set('functions.ts', functionsFile(meta, schema.functions));
    exports.push("export * from './functions.js';");
  }
  files.set(
    'index.ts',
    // Sorted by path, as the linter's import organizer wants them.
    `${HEADER}\n/** CDKTF bindings for the ${source} provider ${schema.version}. */\n${exports.sort().join('\n')}\n`,
  );
  return files;
}

// ------------------------------------------------------------------ command

const bindingsDir = fileURLToPath(new URL('.', import.meta.url)).replace(
  /\/dist\/constructs\/bindings\/?$/,
  '/constructs/bindings',
);

async function main(outDir: string): Promise<void> {
  const files = generateBindings(cloudtaserSchemaJson());
  for (const [file, text] of files) await writeFile(join(outDir, file), text);
  process.stdout.write(`wrote ${[...files.keys()].join(', ')} to ${outDir}\n`);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  await main(process.argv[2] ?? bindingsDir);
}
