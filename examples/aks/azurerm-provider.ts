/**
 * The azurerm provider needs a `features {}` block even when every setting comes from the environment, so the
 * app must declare it. This hand-written binding is all of it: no `cdktf get`, no provider package.
 */
import { TerraformProvider } from 'cdktf';
import type { Construct } from 'constructs';

export interface AzurermProviderConfig {
  /** Subscription to deploy into. @default - ARM_SUBSCRIPTION_ID from the environment */
  readonly subscriptionId?: string;
}

export class AzurermProvider extends TerraformProvider {
  private readonly subscriptionId?: string;

  constructor(scope: Construct, id: string, config: AzurermProviderConfig = {}) {
    super(scope, id, {
      terraformResourceType: 'azurerm',
      terraformGeneratorMetadata: { providerName: 'azurerm', providerVersionConstraint: '~> 4.0' },
      terraformProviderSource: 'hashicorp/azurerm',
    });
    this.subscriptionId = config.subscriptionId;
  }

  protected override synthesizeAttributes(): Record<string, unknown> {
    return { features: {}, subscription_id: this.subscriptionId };
  }
}
