/**
 * The ONE place that loads CDK for Terraform. Two libraries can back these constructs, with the same API:
 * HashiCorp's `cdktf` (0.21 is its last release; HashiCorp deprecated CDKTF in December 2025) and the community
 * fork `cdktn` (CDK Terrain, 0.24+). Which one: `CLOUDTASER_CDK` (`cdktf` or `cdktn`) when set, else the one that is
 * installed (cdktf first). Both are optional peer dependencies, so a CLI-only install carries neither; a missing one
 * fails here, at import, with a message that names the package to install.
 *
 * An app must build its App and stacks from the same library as the constructs: it imports `cdk` from
 * `cloudtaser/constructs` (or sets `CLOUDTASER_CDK`). Generated bindings use the `cdktf` namespace; hand-written
 * constructs use the named exports. Types come from cdktf; the fork keeps them.
 */
import { createRequire } from 'node:module';
import type * as CdktfModule from 'cdktf';
import type * as ConstructsModule from 'constructs';

export type CdkLibraryName = 'cdktf' | 'cdktn';
export const CDK_LIBRARIES: readonly CdkLibraryName[] = ['cdktf', 'cdktn'];
/** What each library needs; printed in the error when it is missing. */
const INSTALL_HINT: Record<CdkLibraryName, string> = {
  cdktf: 'npm install cdktf@^0.21 constructs@^10.4',
  cdktn: 'npm install cdktn@^0.24 constructs@">=10.6 <10.8"',
};

export type {
  AppConfig,
  IResolvable,
  ITerraformDependable,
  TerraformHclModuleConfig,
  TerraformMetaArguments,
} from 'cdktf';

/** Thrown at import when a peer dependency is absent or `CLOUDTASER_CDK` names no known library. */
export class CdkLoadError extends Error {
  readonly code: 'CT_PEER_DEPENDENCY_MISSING' | 'CT_INVALID_ARGUMENT';
  constructor(code: CdkLoadError['code'], message: string) {
    super(`${code}: ${message}`);
    this.name = 'CdkLoadError';
    this.code = code;
  }
}

const requireHere = createRequire(import.meta.url);

function isModuleNotFound(err: unknown, name: string): boolean {
  const e = err as NodeJS.ErrnoException;
  return e?.code === 'MODULE_NOT_FOUND' && e.message.includes(`'${name}'`);
}

/** Resolves the CDK library and the `constructs` package that library itself uses (one copy of Construct). */
export function loadCdk(env: NodeJS.ProcessEnv = process.env): {
  readonly name: CdkLibraryName;
  readonly cdk: typeof CdktfModule;
  readonly constructs: typeof ConstructsModule;
} {
  const wanted = env.CLOUDTASER_CDK?.trim();
  if (wanted && !CDK_LIBRARIES.includes(wanted as CdkLibraryName)) {
    throw new CdkLoadError(
      'CT_INVALID_ARGUMENT',
      `CLOUDTASER_CDK must be "cdktf" or "cdktn", not ${JSON.stringify(wanted)}`,
    );
  }
  const candidates = wanted ? [wanted as CdkLibraryName] : CDK_LIBRARIES;
  for (const name of candidates) {
    let path: string;
    try {
      path = requireHere.resolve(name);
    } catch (err) {
      if (isModuleNotFound(err, name)) continue;
      throw err;
    }
    let constructs: typeof ConstructsModule;
    try {
      constructs = createRequire(path)('constructs') as typeof ConstructsModule;
    } catch (err) {
      if (!isModuleNotFound(err, 'constructs')) throw err;
      throw new CdkLoadError(
        'CT_PEER_DEPENDENCY_MISSING',
        `cloudtaser/constructs found ${name} but not its peer dependency "constructs"; install it: ${INSTALL_HINT[name]}`,
      );
    }
    return { name, cdk: requireHere(path) as typeof CdktfModule, constructs };
  }
  throw new CdkLoadError(
    'CT_PEER_DEPENDENCY_MISSING',
    wanted
      ? `CLOUDTASER_CDK=${wanted} but the package "${wanted}" is not installed; install it: ${INSTALL_HINT[wanted as CdkLibraryName]}`
      : `cloudtaser/constructs needs CDK for Terraform, an optional peer dependency that is not installed; install "cdktf" (${INSTALL_HINT.cdktf}) or the community fork "cdktn" (${INSTALL_HINT.cdktn})`,
  );
}

const loaded = loadCdk();

/** Which library backs the constructs: `cdktf` or `cdktn`. */
export const cdkLibrary: CdkLibraryName = loaded.name;
/** The loaded library's module; an app takes `App` and `TerraformStack` from here so both sides match. */
export const cdktf: typeof CdktfModule = loaded.cdk;
/** The library's types under the same name, for the generated bindings (`cdktf.IResolvable`). */
export declare namespace cdktf {
  type ComplexObject = CdktfModule.ComplexObject;
  type IInterpolatingParent = CdktfModule.IInterpolatingParent;
  type IResolvable = CdktfModule.IResolvable;
  type ITerraformDependable = CdktfModule.ITerraformDependable;
  type TerraformDataSource = CdktfModule.TerraformDataSource;
  type TerraformMetaArguments = CdktfModule.TerraformMetaArguments;
  type TerraformProvider = CdktfModule.TerraformProvider;
  type TerraformResource = CdktfModule.TerraformResource;
  type TerraformStack = CdktfModule.TerraformStack;
}

export const Construct: typeof ConstructsModule.Construct = loaded.constructs.Construct;
export type Construct = ConstructsModule.Construct;
export const Annotations: typeof CdktfModule.Annotations = cdktf.Annotations;
export type Annotations = CdktfModule.Annotations;
export const App: typeof CdktfModule.App = cdktf.App;
export type App = CdktfModule.App;
export const Fn: typeof CdktfModule.Fn = cdktf.Fn;
export type Fn = CdktfModule.Fn;
export const Lazy: typeof CdktfModule.Lazy = cdktf.Lazy;
export type Lazy = CdktfModule.Lazy;
export const LocalBackend: typeof CdktfModule.LocalBackend = cdktf.LocalBackend;
export type LocalBackend = CdktfModule.LocalBackend;
export const TerraformDataSource: typeof CdktfModule.TerraformDataSource = cdktf.TerraformDataSource;
export type TerraformDataSource = CdktfModule.TerraformDataSource;
export const TerraformHclModule: typeof CdktfModule.TerraformHclModule = cdktf.TerraformHclModule;
export type TerraformHclModule = CdktfModule.TerraformHclModule;
export const TerraformOutput: typeof CdktfModule.TerraformOutput = cdktf.TerraformOutput;
export type TerraformOutput = CdktfModule.TerraformOutput;
export const TerraformProvider: typeof CdktfModule.TerraformProvider = cdktf.TerraformProvider;
export type TerraformProvider = CdktfModule.TerraformProvider;
export const TerraformResource: typeof CdktfModule.TerraformResource = cdktf.TerraformResource;
export type TerraformResource = CdktfModule.TerraformResource;
export const TerraformStack: typeof CdktfModule.TerraformStack = cdktf.TerraformStack;
export type TerraformStack = CdktfModule.TerraformStack;
export const TerraformVariable: typeof CdktfModule.TerraformVariable = cdktf.TerraformVariable;
export type TerraformVariable = CdktfModule.TerraformVariable;
export const Testing: typeof CdktfModule.Testing = cdktf.Testing;
export type Testing = CdktfModule.Testing;
export const Token: typeof CdktfModule.Token = cdktf.Token;
export type Token = CdktfModule.Token;
export const Tokenization: typeof CdktfModule.Tokenization = cdktf.Tokenization;
export type Tokenization = CdktfModule.Tokenization;
export const DefaultTokenResolver: typeof CdktfModule.DefaultTokenResolver = cdktf.DefaultTokenResolver;
export type DefaultTokenResolver = CdktfModule.DefaultTokenResolver;
export const StringConcat: typeof CdktfModule.StringConcat = cdktf.StringConcat;
export type StringConcat = CdktfModule.StringConcat;
