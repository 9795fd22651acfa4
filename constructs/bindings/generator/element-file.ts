/** Emits one resource or data source file: its construct, config interface and nested block structs. */

import {
  blockHclEntry,
  camel,
  definedOnlyHelper,
  flags,
  getterType,
  HEADER,
  hclEntry,
  jsdoc,
  lowerFirst,
  type Meta,
  pascal,
  stripProvider,
  structFields,
  typeInfo,
  wrap,
} from './code.js';
import type { BlockJson, BlockTypeJson } from './schema-json.js';

export function elementFile(
  meta: Meta,
  typeName: string,
  block: BlockJson,
  kind: 'resource' | 'data',
): string {
  const base = pascal(stripProvider(typeName, meta.providerName));
  const className = kind === 'data' ? `Data${pascal(typeName)}` : base;
  const superClass = kind === 'data' ? 'cdktf.TerraformDataSource' : 'cdktf.TerraformResource';
  const attributes = Object.entries(block.attributes ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const inputs = attributes.filter(([, a]) => a.required || a.optional);
  const blocks = Object.entries(block.block_types ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const lines: string[] = [
    HEADER,
    "import type { Construct } from 'constructs';",
    "import { cdktf } from '../cdktf.js';",
    '',
  ];

  for (const [name, nestedType] of blocks)
    lines.push(...nestedBlockCode(`${className}${pascal(name)}`, name, nestedType));

  lines.push(`export interface ${className}Config extends cdktf.TerraformMetaArguments {`);
  for (const [name, a] of inputs) {
    const optional = a.required ? '' : '?';
    lines.push(
      ...jsdoc(a.description, '  ', a),
      `  readonly ${camel(name)}${optional}: ${typeInfo(a.type, name).ts};`,
    );
  }
  for (const [name, b] of blocks) {
    const optional = (b.min_items ?? 0) > 0 ? '' : '?';
    lines.push(
      ...jsdoc(b.block.description, '  '),
      `  readonly ${camel(name)}${optional}: ${className}${pascal(name)};`,
    );
  }
  lines.push('}', '');

  const what = kind === 'data' ? 'data source' : 'resource';
  lines.push(
    '/**',
    ` * The \`${typeName}\` ${what} of the ${meta.source} provider.`,
    ' *',
    ...wrap(block.description ?? '', ' * '),
    ' */',
  );
  lines.push(`export class ${className} extends ${superClass} {`);
  lines.push(`  public static readonly tfResourceType = '${typeName}';`, '');
  for (const [name, a] of inputs) lines.push(`  private _${camel(name)}?: ${typeInfo(a.type, name).ts};`);
  for (const [name] of blocks) {
    lines.push(
      `  private _${camel(name)} = new ${className}${pascal(name)}OutputReference(this, '${name}');`,
    );
  }
  lines.push('');
  lines.push(
    `  public constructor(scope: Construct, id: string, config: ${className}Config${inputs.some(([, a]) => a.required) || blocks.some(([, b]) => (b.min_items ?? 0) > 0) ? '' : ' = {}'}) {`,
    '    super(scope, id, {',
    `      terraformResourceType: '${typeName}',`,
    '      terraformGeneratorMetadata: {',
    `        providerName: '${meta.providerName}',`,
    `        providerVersion: '${meta.version}',`,
    `        providerVersionConstraint: '${meta.constraint}',`,
    '      },',
    '      provider: config.provider,',
    '      dependsOn: config.dependsOn,',
    '      count: config.count,',
    '      lifecycle: config.lifecycle,',
    '      provisioners: config.provisioners,',
    '      connection: config.connection,',
    '      forEach: config.forEach,',
    '    });',
  );
  for (const [name] of inputs) lines.push(`    this._${camel(name)} = config.${camel(name)};`);
  for (const [name] of blocks) lines.push(`    this._${camel(name)}.internalValue = config.${camel(name)};`);
  lines.push('  }', '');

  for (const [name, a] of attributes) {
    const prop = camel(name);
    const info = typeInfo(a.type, name);
    lines.push(`  // ${name}: ${flags(a)}`);
    lines.push(...jsdoc(a.description, '  '));
    lines.push(
      `  public get ${prop}(): ${getterType(info)} {`,
      `    return this.${info.getter}('${name}');`,
      '  }',
    );
    if (a.required || a.optional) {
      lines.push(`  public set ${prop}(value: ${info.ts}) {`, `    this._${prop} = value;`, '  }');
      if (!a.required)
        lines.push(`  public reset${pascal(name)}(): void {`, `    this._${prop} = undefined;`, '  }');
      lines.push(`  public get ${prop}Input(): ${info.ts} | undefined {`, `    return this._${prop};`, '  }');
    }
    lines.push('');
  }
  for (const [name] of blocks) {
    const prop = camel(name);
    const struct = `${className}${pascal(name)}`;
    lines.push(
      `  public get ${prop}(): ${struct}OutputReference {`,
      `    return this._${prop};`,
      '  }',
      `  public put${pascal(name)}(value: ${struct}): void {`,
      `    this._${prop}.internalValue = value;`,
      '  }',
      `  public reset${pascal(name)}(): void {`,
      `    this._${prop}.internalValue = undefined;`,
      '  }',
      `  public get ${prop}Input(): ${struct} | undefined {`,
      `    return this._${prop}.internalValue;`,
      '  }',
      '',
    );
  }

  lines.push('  protected override synthesizeAttributes(): { [name: string]: unknown } {', '    return {');
  for (const [name, a] of inputs)
    lines.push(`      ${name}: ${typeInfo(a.type, name).toTerraform}(this._${camel(name)}),`);
  for (const [name] of blocks) {
    lines.push(
      `      ${name}: ${lowerFirst(`${className}${pascal(name)}`)}ToTerraform(this._${camel(name)}.internalValue),`,
    );
  }
  lines.push('    };', '  }', '');
  lines.push(
    '  protected override synthesizeHclAttributes(): { [name: string]: unknown } {',
    '    const attrs = {',
  );
  for (const [name, a] of inputs)
    lines.push(...hclEntry(name, typeInfo(a.type, name), `this._${camel(name)}`, '      '));
  for (const [name] of blocks) {
    lines.push(
      ...blockHclEntry(name, `${className}${pascal(name)}`, `this._${camel(name)}.internalValue`, '      '),
    );
  }
  lines.push('    };', '    return definedOnly(attrs);', '  }', '}', '', ...definedOnlyHelper());
  return `${lines.join('\n')}\n`;
}

function nestedBlockCode(struct: string, name: string, nestedType: BlockTypeJson): string[] {
  if (nestedType.nesting_mode !== 'single' && nestedType.max_items !== 1) {
    throw new Error(
      `bindings generator: block ${name} nests as ${nestedType.nesting_mode}; only single blocks are mapped yet`,
    );
  }
  const attributes = Object.entries(nestedType.block.attributes ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const fn = lowerFirst(struct);
  const lines: string[] = [];
  lines.push(`export interface ${struct} {`, ...structFields(name, attributes), '}', '');
  lines.push(
    `export function ${fn}ToTerraform(struct?: ${struct} | ${struct}OutputReference): unknown {`,
    '  if (!cdktf.canInspect(struct) || cdktf.Tokenization.isResolvable(struct)) return struct;',
    '  if (cdktf.isComplexElement(struct)) {',
    `    throw new Error('${struct}: a complex element was used as configuration; pass a plain object');`,
    '  }',
    `  const value = struct as ${struct};`,
    '  return {',
  );
  for (const [attrName, a] of attributes) {
    lines.push(`    ${attrName}: ${typeInfo(a.type, attrName).toTerraform}(value.${camel(attrName)}),`);
  }
  lines.push('  };', '}', '');
  lines.push(
    `export function ${fn}ToHclTerraform(struct?: ${struct} | ${struct}OutputReference): unknown {`,
    '  if (!cdktf.canInspect(struct) || cdktf.Tokenization.isResolvable(struct)) return struct;',
    '  if (cdktf.isComplexElement(struct)) {',
    `    throw new Error('${struct}: a complex element was used as configuration; pass a plain object');`,
    '  }',
    `  const value = struct as ${struct};`,
    '  const attrs = {',
  );
  for (const [attrName, a] of attributes)
    lines.push(...hclEntry(attrName, typeInfo(a.type, attrName), `value.${camel(attrName)}`, '    '));
  lines.push('  };', '  return definedOnly(attrs);', '}', '');
  lines.push(
    `export class ${struct}OutputReference extends cdktf.ComplexObject {`,
    `  private _value?: ${struct};`,
    '',
    '  public constructor(terraformResource: cdktf.IInterpolatingParent, terraformAttribute: string) {',
    '    super(terraformResource, terraformAttribute, false, 0);',
    '  }',
    '',
    `  public get internalValue(): ${struct} | undefined {`,
    '    return this._value;',
    '  }',
    `  public set internalValue(value: ${struct} | undefined) {`,
    '    this._value = value === undefined ? undefined : { ...value };',
    '  }',
    '',
  );
  for (const [attrName, a] of attributes) {
    const info = typeInfo(a.type, attrName);
    lines.push(
      `  public get ${camel(attrName)}(): ${getterType(info)} {`,
      `    return this.${info.getter}('${attrName}');`,
      '  }',
    );
  }
  lines.push('}', '');
  return lines;
}
