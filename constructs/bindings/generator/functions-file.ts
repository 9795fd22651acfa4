/** Emits `functions.ts`: the provider-defined functions as static methods that build Terraform expressions. */

import { camel, HEADER, type Meta, pascal, wrap } from './code.js';
import type { FunctionJson } from './schema-json.js';

/**
 * Provider-defined functions as static methods that synthesize `provider::<name>::<function>(...)`, so CDKTF code
 * computes e.g. an init hash in the configuration itself, known at plan time.
 */
export function functionsFile(meta: Meta, functions: Readonly<Record<string, FunctionJson>>): string {
  const className = `${pascal(meta.providerName)}Functions`;
  const tsType = (type: unknown, where: string) => {
    if (type === 'string') return 'string';
    if (type === 'bool') return 'boolean | cdktf.IResolvable';
    throw new Error(`bindings generator: function ${where} has type ${JSON.stringify(type)}, not mapped yet`);
  };
  const lines: string[] = [
    HEADER,
    "import { cdktf } from '../cdktf.js';",
    '',
    '/**',
    ...wrap(
      `Provider-defined functions of the ${meta.source} provider (Terraform >= 1.8, OpenTofu >= 1.7). Each call ` +
        `synthesizes \`provider::${meta.providerName}::<name>(...)\`; Terraform requires the provider in the stack, so ` +
        `create a \`${pascal(meta.providerName)}Provider\` in any stack that calls them.`,
      ' * ',
    ),
    ' */',
    "// biome-ignore lint/complexity/noStaticOnlyClass: shaped like cdktf's own Fn, which CDKTF users know",
    `export class ${className} {`,
  ];
  for (const [name, fn] of Object.entries(functions).sort(([a], [b]) => a.localeCompare(b))) {
    const parameters = (fn.parameters ?? []).map(
      (p) => `${camel(p.name)}: ${tsType(p.type, `${name}(${p.name})`)}`,
    );
    const args = (fn.parameters ?? []).map((p) => camel(p.name));
    if (fn.variadic_parameter) {
      const v = fn.variadic_parameter;
      parameters.push(`...${camel(v.name)}: ${tsType(v.type, `${name}(${v.name})`)}[]`);
      args.push(`...${camel(v.name)}`);
    }
    const returns =
      fn.return_type === 'bool' ? 'cdktf.IResolvable' : tsType(fn.return_type, `${name} result`);
    const call = `cdktf.call('provider::${meta.providerName}::${name}', [${args.join(', ')}])`;
    lines.push('  /**', ...wrap(fn.summary ?? '', '   * '), '   *', ...wrap(fn.description ?? '', '   * '));
    for (const p of [...(fn.parameters ?? []), ...(fn.variadic_parameter ? [fn.variadic_parameter] : [])]) {
      lines.push(...wrap(`@param ${camel(p.name)} ${p.description ?? ''}`, '   * '));
    }
    if (fn.deprecation_message) lines.push(...wrap(`@deprecated ${fn.deprecation_message}`, '   * '));
    lines.push(
      '   */',
      `  public static ${camel(name)}(${parameters.join(', ')}): ${returns} {`,
      returns === 'string' ? `    return cdktf.Token.asString(${call});` : `    return ${call};`,
      '  }',
      '',
    );
  }
  lines.pop();
  lines.push('}');
  return `${lines.join('\n')}\n`;
}
