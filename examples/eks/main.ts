/**
 * An EKS cluster and its cloudtaser registration, in two stacks of one CDKTF app.
 *
 * Why two stacks: the kubernetes and helm providers of the second stack are configured from the cluster the
 * first stack creates. Terraform can't configure a provider from a resource created in the same run, so CDKTF's
 * answer is a cross-stack reference: `cluster.endpoint` in stack 2 becomes an output of stack 1 read back through
 * remote state. `cdktf deploy eks-cluster eks-cloudtaser` applies them in order. No null_resource anywhere.
 *
 * The VPC and the cluster come from the official terraform-aws-modules through TerraformHclModule: no provider
 * package to install, nothing generated. The AWS provider is configured from the environment (AWS_REGION,
 * AWS_PROFILE). See README.md for the prebuilt-provider alternative.
 */
import { App, Fn, TerraformHclModule, TerraformOutput, TerraformStack } from 'cdktf';
import { RegisteredCluster } from 'cloudtaser/constructs';
import type { Construct } from 'constructs';

export interface EksExampleSettings {
  /** AWS region of the cluster (also set AWS_REGION for the provider). */
  readonly region: string;
  readonly clusterName: string;
  readonly kubernetesVersion: string;
  /** The EU OpenBao. Its token comes from CLOUDTASER_SECRETSTORE_TOKEN at deploy time, never from here. */
  readonly secretStoreAddress: string;
  /** The beacon the operator dials, host:port. */
  readonly beaconAddress: string;
}

export const defaultSettings: EksExampleSettings = {
  region: process.env.AWS_REGION ?? 'eu-central-1',
  clusterName: 'cloudtaser-demo',
  kubernetesVersion: '1.33',
  secretStoreAddress: process.env.CLOUDTASER_SECRETSTORE_ADDRESS ?? 'https://openbao.example.eu:8200',
  beaconAddress: process.env.CLOUDTASER_BEACON_ADDRESS ?? 'beacon.example.eu:443',
};

/** Stack 1: VPC and EKS cluster (official terraform-aws-modules). */
export class EksClusterStack extends TerraformStack {
  public readonly endpoint: string;
  public readonly caCertificate: string;
  public readonly clusterName: string;

  constructor(scope: Construct, id: string, settings: EksExampleSettings) {
    super(scope, id);
    const azs = ['a', 'b', 'c'].map((zone) => `${settings.region}${zone}`);
    const vpc = new TerraformHclModule(this, 'vpc', {
      source: 'terraform-aws-modules/vpc/aws',
      version: '~> 6.0',
      variables: {
        name: `${settings.clusterName}-vpc`,
        cidr: '10.0.0.0/16',
        azs,
        private_subnets: ['10.0.1.0/24', '10.0.2.0/24', '10.0.3.0/24'],
        public_subnets: ['10.0.101.0/24', '10.0.102.0/24', '10.0.103.0/24'],
        enable_nat_gateway: true,
        single_nat_gateway: true,
      },
    });
    const eks = new TerraformHclModule(this, 'eks', {
      source: 'terraform-aws-modules/eks/aws',
      version: '~> 21.0',
      variables: {
        name: settings.clusterName,
        kubernetes_version: settings.kubernetesVersion,
        endpoint_public_access: true,
        enable_cluster_creator_admin_permissions: true,
        vpc_id: vpc.getString('vpc_id'),
        subnet_ids: vpc.getList('private_subnets'),
        eks_managed_node_groups: {
          default: { instance_types: ['t3.medium'], min_size: 2, max_size: 3, desired_size: 2 },
        },
      },
    });
    this.endpoint = eks.getString('cluster_endpoint');
    this.caCertificate = eks.getString('cluster_certificate_authority_data');
    this.clusterName = eks.getString('cluster_name');
    new TerraformOutput(this, 'cluster_name', { value: this.clusterName });
  }
}

/** Stack 2: register the cluster with the EU OpenBao and install the operator. */
export class EksCloudtaserStack extends TerraformStack {
  public readonly cluster: RegisteredCluster;

  constructor(scope: Construct, id: string, settings: EksExampleSettings, cluster: EksClusterStack) {
    super(scope, id);
    this.cluster = new RegisteredCluster(this, 'eks', {
      secretStore: { address: settings.secretStoreAddress },
      beacon: { address: settings.beaconAddress },
      kubernetes: {
        host: cluster.endpoint,
        clusterCaCertificate: Fn.base64decode(cluster.caCertificate),
        // A short-lived token from the AWS CLI at apply time: no credential in cdktf.out or state.
        exec: {
          apiVersion: 'client.authentication.k8s.io/v1beta1',
          command: 'aws',
          args: ['eks', 'get-token', '--cluster-name', cluster.clusterName, '--region', settings.region],
        },
      },
    });
    new TerraformOutput(this, 'fingerprint', { value: this.cluster.fingerprint });
    new TerraformOutput(this, 'openbao_namespace', { value: this.cluster.namespace });
    new TerraformOutput(this, 'operational_hash', { value: this.cluster.operationalHash });
  }
}

export function createApp(options: { outdir?: string; settings?: Partial<EksExampleSettings> } = {}): App {
  const settings = { ...defaultSettings, ...options.settings };
  const app = new App({ outdir: options.outdir });
  const cluster = new EksClusterStack(app, 'eks-cluster', settings);
  new EksCloudtaserStack(app, 'eks-cloudtaser', settings, cluster);
  return app;
}

// `cdktf synth` runs this file; importing it (tests) only builds the app.
if (import.meta.url === `file://${process.argv[1]}`) createApp().synth();
