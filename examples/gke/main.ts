/**
 * A GKE cluster and its cloudtaser registration, in two stacks of one CDKTF app.
 *
 * Why two stacks: the kubernetes and helm providers of the second stack are configured from the cluster the
 * first stack creates. Terraform can't configure a provider from a resource created in the same run, so CDKTF's
 * answer is a cross-stack reference: `cluster.endpoint` in stack 2 becomes an output of stack 1 read back through
 * remote state. `cdktf deploy gke-cluster gke-cloudtaser` applies them in order. No null_resource anywhere.
 *
 * The cluster comes from the official Terraform modules through TerraformHclModule: no provider package to
 * install, nothing generated. See README.md for the prebuilt-provider alternative.
 */
import { App, Fn, TerraformHclModule, TerraformOutput, TerraformStack } from 'cdktf';
import { RegisteredCluster } from 'cloudtaser/constructs';
import type { Construct } from 'constructs';

export interface GkeExampleSettings {
  /** GCP project that hosts the cluster. */
  readonly projectId: string;
  /** Region of the cluster (any region; the secret store stays in the EU). */
  readonly region: string;
  readonly clusterName: string;
  /** The EU OpenBao. Its token comes from CLOUDTASER_SECRETSTORE_TOKEN at deploy time, never from here. */
  readonly secretStoreAddress: string;
  /** The beacon the operator dials, host:port. */
  readonly beaconAddress: string;
}

export const defaultSettings: GkeExampleSettings = {
  projectId: process.env.GOOGLE_PROJECT ?? 'my-project',
  region: process.env.GOOGLE_REGION ?? 'europe-west3',
  clusterName: 'cloudtaser-demo',
  secretStoreAddress: process.env.CLOUDTASER_SECRETSTORE_ADDRESS ?? 'https://openbao.example.eu:8200',
  beaconAddress: process.env.CLOUDTASER_BEACON_ADDRESS ?? 'beacon.example.eu:443',
};

/** Stack 1: network and GKE cluster (official terraform-google-modules). */
export class GkeClusterStack extends TerraformStack {
  public readonly endpoint: string;
  public readonly caCertificate: string;

  constructor(scope: Construct, id: string, settings: GkeExampleSettings) {
    super(scope, id);
    const network = new TerraformHclModule(this, 'network', {
      source: 'terraform-google-modules/network/google',
      version: '~> 11.0',
      variables: {
        project_id: settings.projectId,
        network_name: `${settings.clusterName}-net`,
        subnets: [
          {
            subnet_name: `${settings.clusterName}-nodes`,
            subnet_ip: '10.10.0.0/20',
            subnet_region: settings.region,
          },
        ],
        secondary_ranges: {
          [`${settings.clusterName}-nodes`]: [
            { range_name: 'pods', ip_cidr_range: '10.20.0.0/14' },
            { range_name: 'services', ip_cidr_range: '10.24.0.0/20' },
          ],
        },
      },
    });
    const gke = new TerraformHclModule(this, 'gke', {
      source: 'terraform-google-modules/kubernetes-engine/google',
      version: '~> 37.0',
      variables: {
        project_id: settings.projectId,
        name: settings.clusterName,
        region: settings.region,
        network: network.getString('network_name'),
        subnetwork: Fn.element(network.getList('subnets_names'), 0),
        ip_range_pods: 'pods',
        ip_range_services: 'services',
        deletion_protection: false,
      },
    });
    this.endpoint = gke.getString('endpoint');
    this.caCertificate = gke.getString('ca_certificate');
    new TerraformOutput(this, 'cluster_name', { value: gke.getString('name') });
  }
}

/** Stack 2: register the cluster with the EU OpenBao and install the operator. */
export class GkeCloudtaserStack extends TerraformStack {
  public readonly cluster: RegisteredCluster;

  constructor(scope: Construct, id: string, settings: GkeExampleSettings, cluster: GkeClusterStack) {
    super(scope, id);
    this.cluster = new RegisteredCluster(this, 'gke', {
      secretStore: { address: settings.secretStoreAddress },
      beacon: { address: settings.beaconAddress },
      kubernetes: {
        host: `https://${cluster.endpoint}`,
        clusterCaCertificate: Fn.base64decode(cluster.caCertificate),
        // A short-lived token from gcloud at apply time: no credential in cdktf.out or state.
        exec: { command: 'gke-gcloud-auth-plugin' },
      },
    });
    new TerraformOutput(this, 'fingerprint', { value: this.cluster.fingerprint });
    new TerraformOutput(this, 'openbao_namespace', { value: this.cluster.namespace });
    new TerraformOutput(this, 'operational_hash', { value: this.cluster.operationalHash });
  }
}

export function createApp(options: { outdir?: string; settings?: Partial<GkeExampleSettings> } = {}): App {
  const settings = { ...defaultSettings, ...options.settings };
  const app = new App({ outdir: options.outdir });
  const cluster = new GkeClusterStack(app, 'gke-cluster', settings);
  new GkeCloudtaserStack(app, 'gke-cloudtaser', settings, cluster);
  return app;
}

// `cdktf synth` runs this file; importing it (tests) only builds the app.
if (import.meta.url === `file://${process.argv[1]}`) createApp().synth();
