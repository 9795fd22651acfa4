/**
 * An AKS cluster and its cloudtaser registration, in two stacks of one CDKTF app.
 *
 * Why two stacks: the kubernetes and helm providers of the second stack are configured from the cluster the
 * first stack creates. Terraform can't configure a provider from a resource created in the same run, so CDKTF's
 * answer is a cross-stack reference: `cluster.host` in stack 2 becomes an output of stack 1 read back through
 * remote state. `cdktf deploy aks-cluster aks-cloudtaser` applies them in order. No null_resource anywhere.
 *
 * The cluster comes from the official Azure/aks/azurerm module through TerraformHclModule; the azurerm provider
 * block is a ten-line hand-written binding (./azurerm-provider.ts). See README.md for the prebuilt alternative.
 */
import { App, Fn, TerraformHclModule, TerraformOutput, TerraformStack } from 'cdktf';
import { RegisteredCluster } from 'cloudtaser/constructs';
import type { Construct } from 'constructs';
import { AzurermProvider } from './azurerm-provider.js';

/** The Entra ID application every AKS cluster with Entra integration accepts tokens for (same in every tenant). */
const AKS_ENTRA_SERVER_ID = '6dae42f8-4368-4678-94ff-3960e28e3630';

export interface AksExampleSettings {
  /** An existing resource group for the cluster. */
  readonly resourceGroupName: string;
  readonly location: string;
  readonly prefix: string;
  /** The EU OpenBao. Its token comes from CLOUDTASER_SECRETSTORE_TOKEN at deploy time, never from here. */
  readonly secretStoreAddress: string;
  /** The beacon the operator dials, host:port. */
  readonly beaconAddress: string;
}

export const defaultSettings: AksExampleSettings = {
  resourceGroupName: process.env.AZURE_RESOURCE_GROUP ?? 'cloudtaser-demo',
  location: process.env.AZURE_LOCATION ?? 'germanywestcentral',
  prefix: 'cloudtaser',
  secretStoreAddress: process.env.CLOUDTASER_SECRETSTORE_ADDRESS ?? 'https://openbao.example.eu:8200',
  beaconAddress: process.env.CLOUDTASER_BEACON_ADDRESS ?? 'beacon.example.eu:443',
};

/** Stack 1: the AKS cluster (official Azure/aks/azurerm module), Entra ID integrated. */
export class AksClusterStack extends TerraformStack {
  public readonly host: string;
  public readonly caCertificate: string;

  constructor(scope: Construct, id: string, settings: AksExampleSettings) {
    super(scope, id);
    new AzurermProvider(this, 'azurerm');
    const aks = new TerraformHclModule(this, 'aks', {
      source: 'Azure/aks/azurerm',
      version: '~> 10.0',
      variables: {
        prefix: settings.prefix,
        resource_group_name: settings.resourceGroupName,
        location: settings.location,
        rbac_aad: true,
        rbac_aad_azure_rbac_enabled: true,
        role_based_access_control_enabled: true,
        local_account_disabled: true,
        agents_count: 2,
        agents_size: 'Standard_D2s_v5',
      },
    });
    this.host = aks.getString('host');
    this.caCertificate = aks.getString('cluster_ca_certificate');
    new TerraformOutput(this, 'cluster_name', { value: aks.getString('aks_name') });
  }
}

/** Stack 2: register the cluster with the EU OpenBao and install the operator. */
export class AksCloudtaserStack extends TerraformStack {
  public readonly cluster: RegisteredCluster;

  constructor(scope: Construct, id: string, settings: AksExampleSettings, cluster: AksClusterStack) {
    super(scope, id);
    this.cluster = new RegisteredCluster(this, 'aks', {
      secretStore: { address: settings.secretStoreAddress },
      beacon: { address: settings.beaconAddress },
      kubernetes: {
        host: cluster.host,
        clusterCaCertificate: Fn.base64decode(cluster.caCertificate),
        // kubelogin turns the Azure CLI login into an Entra ID token at apply time: nothing secret is stored.
        exec: {
          command: 'kubelogin',
          args: ['get-token', '--login', 'azurecli', '--server-id', AKS_ENTRA_SERVER_ID],
        },
      },
    });
    new TerraformOutput(this, 'fingerprint', { value: this.cluster.fingerprint });
    new TerraformOutput(this, 'openbao_namespace', { value: this.cluster.namespace });
    new TerraformOutput(this, 'operational_hash', { value: this.cluster.operationalHash });
  }
}

export function createApp(options: { outdir?: string; settings?: Partial<AksExampleSettings> } = {}): App {
  const settings = { ...defaultSettings, ...options.settings };
  const app = new App({ outdir: options.outdir });
  const cluster = new AksClusterStack(app, 'aks-cluster', settings);
  new AksCloudtaserStack(app, 'aks-cloudtaser', settings, cluster);
  return app;
}

// `cdktf synth` runs this file; importing it (tests) only builds the app.
if (import.meta.url === `file://${process.argv[1]}`) createApp().synth();
