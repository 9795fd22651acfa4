/** Emits `provider.ts`: the provider construct, its config interface and its nested block structs. */

import {
  blockHclEntry,
  camel,
  definedOnlyHelper,
  HEADER,
  hclEntry,
  jsdoc,
  lowerFirst,
  type Meta,
  pascal,
  structFields,
  typeInfo,
  wrap,
} from './code.js';
import type { AttributeJson, BlockJson, BlockTypeJson } from './schema-json.js';

/** Provider-level sensitive attributes that the provider can read from the environment are left out on purpose. */
function omittedFromProvider(attribute: AttributeJson): boolean {
  return attribute.sensitive === true && (attribute.env?.length ?? 0) > 0;
}

export function providerFile(meta: Meta, block: BlockJson): string {
  const className = `${pascal(meta.providerName)}Provider`;
  const attributes = Object.entries(block.attributes ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const kept = attributes.filter(([, a]) => !omittedFromProvider(a));
  const omitted = attributes.filter(([, a]) => omittedFromProvider(a));
  const blocks = Object.entries(block.block_types ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const lines: string[] = [
    HEADER,
    "import type { Construct } from 'constructs';",
    "import { cdktf } from '../cdktf.js';",
    '',
  ];
  for (const [name, nestedType] of blocks) {
    lines.push(...providerStructCode(`${className}${pascal(name)}`, name, nestedType));
  }

  lines.push(`export interface ${className}Config {`);
  for (const [name, a] of kept) {
    lines.push(...jsdoc(a.description, '  ', a), `  readonly ${camel(name)}?: ${typeInfo(a.type, name).ts};`);
  }
  for (const [name, b] of blocks) {
    lines.push(
      ...jsdoc(b.block.description, '  '),
      `  readonly ${camel(name)}?: ${className}${pascal(name)};`,
    );
  }
  lines.push(
    '  /**',
    '   * Alias name of this provider configuration, for several configurations in one stack.',
    '   */',
    '  readonly alias?: string;',
    '}',
    '',
  );

  lines.push('/**', ...wrap(block.description ?? '', ' * '), ' *');
  for (const [name, a] of omitted) {
    lines.push(
      ` * \`${name}\` is deliberately not a property: it is sensitive and the provider reads it from the`,
      ` * environment (${(a.env ?? []).map((e) => `\`${e}\``).join(', ')}), so it never lands in \`cdktf.out\`.`,
    );
  }
  lines.push(' */');
  lines.push(`export class ${className} extends cdktf.TerraformProvider {`);
  lines.push(`  public static readonly tfResourceType = '${meta.providerName}';`, '');
  for (const [name, a] of kept) lines.push(`  private _${camel(name)}?: ${typeInfo(a.type, name).ts};`);
  for (const [name] of blocks) lines.push(`  private _${camel(name)}?: ${className}${pascal(name)};`);
  lines.push('  private _alias?: string;', '');
  lines.push(
    `  public constructor(scope: Construct, id: string, config: ${className}Config = {}) {`,
    '    super(scope, id, {',
    `      terraformResourceType: '${meta.providerName}',`,
    '      terraformGeneratorMetadata: {',
    `        providerName: '${meta.providerName}',`,
    `        providerVersion: '${meta.version}',`,
    `        providerVersionConstraint: '${meta.constraint}',`,
    '      },',
    `      terraformProviderSource: '${meta.source}',`,
    '    });',
  );
  for (const [name] of [...kept, ...blocks]) lines.push(`    this._${camel(name)} = config.${camel(name)};`);
  lines.push('    this._alias = config.alias;', '  }', '');
  for (const [name, a] of [...kept, ['alias', { type: 'string' } as AttributeJson] as const]) {
    const prop = camel(name);
    const info = typeInfo(a.type, name);
    // TerraformProvider declares `alias` itself.
    const modifier = name === 'alias' ? 'override ' : '';
    lines.push(
      `  public ${modifier}get ${prop}(): ${info.ts} | undefined {`,
      `    return this._${prop};`,
      '  }',
      `  public ${modifier}set ${prop}(value: ${info.ts} | undefined) {`,
      `    this._${prop} = value;`,
      '  }',
      `  public reset${pascal(name)}(): void {`,
      `    this._${prop} = undefined;`,
      '  }',
      `  public get ${prop}Input(): ${info.ts} | undefined {`,
      `    return this._${prop};`,
      '  }',
      '',
    );
  }
  for (const [name] of blocks) {
    const struct = `${className}${pascal(name)}`;
    lines.push(
      `  public get ${camel(name)}(): ${struct} | undefined {`,
      `    return this._${camel(name)};`,
      '  }',
      `  public set ${camel(name)}(value: ${struct} | undefined) {`,
      `    this._${camel(name)} = value;`,
      '  }',
      `  public reset${pascal(name)}(): void {`,
      `    this._${camel(name)} = undefined;`,
      '  }',
      '',
    );
  }
  lines.push('  protected override synthesizeAttributes(): { [name: string]: unknown } {', '    return {');
  for (const [name, a] of kept)
    lines.push(`      ${name}: ${typeInfo(a.type, name).toTerraform}(this._${camel(name)}),`);
  for (const [name] of blocks) {
    lines.push(
      `      ${name}: ${lowerFirst(`${className}${pascal(name)}`)}ToTerraform(this._${camel(name)}),`,
    );
  }
  lines.push('      alias: cdktf.stringToTerraform(this._alias),', '    };', '  }', '');
  lines.push(
    '  protected override synthesizeHclAttributes(): { [name: string]: unknown } {',
    '    const attrs = {',
  );
  for (const [name, a] of [...kept, ['alias', { type: 'string' } as AttributeJson] as const]) {
    lines.push(...hclEntry(name, typeInfo(a.type, name), `this._${camel(name)}`, '      '));
  }
  for (const [name] of blocks) {
    lines.push(...blockHclEntry(name, `${className}${pascal(name)}`, `this._${camel(name)}`, '      '));
  }
  lines.push('    };', '    return definedOnly(attrs);', '  }', '}', '', ...definedOnlyHelper());
  return `${lines.join('\n')}\n`;
}

/**
 * A provider block's nested block as a plain struct (providers cannot be referenced, so no output reference),
 * with its own nested blocks inside, and the two mappers synth uses.
 */
function providerStructCode(struct: string, name: string, nestedType: BlockTypeJson): string[] {
  if (nestedType.nesting_mode !== 'single') {
    throw new Error(
      `bindings generator: provider block ${name} nests as ${nestedType.nesting_mode}; only single is mapped`,
    );
  }
  const attributes = Object.entries(nestedType.block.attributes ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const blocks = Object.entries(nestedType.block.block_types ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const lines: string[] = [];
  for (const [inner, innerType] of blocks)
    lines.push(...providerStructCode(`${struct}${pascal(inner)}`, inner, innerType));
  lines.push(
    ...jsdoc(nestedType.block.description, ''),
    `export interface ${struct} {`,
    ...structFields(name, attributes),
  );
  for (const [inner, innerType] of blocks) {
    lines.push(
      ...jsdoc(innerType.block.description, '  '),
      `  readonly ${camel(inner)}?: ${struct}${pascal(inner)};`,
    );
  }
  lines.push('}', '');
  const fn = lowerFirst(struct);
  for (const [suffix, key] of [
    ['ToTerraform', 'toTerraform'],
    ['ToHclTerraform', 'toHcl'],
  ] as const) {
    lines.push(
      `export function ${fn}${suffix}(struct?: ${struct}): unknown {`,
      '  if (!cdktf.canInspect(struct) || cdktf.Tokenization.isResolvable(struct)) return struct;',
      `  const value = struct as ${struct};`,
    );
    if (key === 'toTerraform') {
      lines.push('  return {');
      for (const [attrName, a] of attributes) {
        lines.push(`    ${attrName}: ${typeInfo(a.type, attrName).toTerraform}(value.${camel(attrName)}),`);
      }
      for (const [inner] of blocks) {
        lines.push(
          `    ${inner}: ${lowerFirst(`${struct}${pascal(inner)}`)}ToTerraform(value.${camel(inner)}),`,
        );
      }
      lines.push('  };', '}', '');
    } else {
      lines.push('  const attrs = {');
      for (const [attrName, a] of attributes)
        lines.push(...hclEntry(attrName, typeInfo(a.type, attrName), `value.${camel(attrName)}`, '    '));
      for (const [inner] of blocks) {
        lines.push(...blockHclEntry(inner, `${struct}${pascal(inner)}`, `value.${camel(inner)}`, '    '));
      }
      lines.push('  };', '  return definedOnly(attrs);', '}', '');
    }
  }
  return lines;
}
