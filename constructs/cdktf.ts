/**
 * The ONE place that imports CDKTF. HashiCorp deprecated CDKTF in December 2025 and 0.21 is its last release;
 * moving to the community fork (cdktn) means changing the module names in this file and nothing else.
 * Generated bindings use the `cdktf` namespace; hand-written constructs use the named exports.
 */
import * as cdktf from 'cdktf';

export type {
  AppConfig,
  IResolvable,
  ITerraformDependable,
  TerraformHclModuleConfig,
  TerraformMetaArguments,
} from 'cdktf';
export {
  Annotations,
  App,
  Fn,
  Lazy,
  LocalBackend,
  TerraformDataSource,
  TerraformHclModule,
  TerraformOutput,
  TerraformProvider,
  TerraformResource,
  TerraformStack,
  TerraformVariable,
  Testing,
  Token,
} from 'cdktf';
export { cdktf };
