/**
 * The local example's CDK app: registers the dev cluster with the dev OpenBao through the cloudtaser provider.
 * The fingerprint comes from the provider's own data source (the registry's hashicorp/kubernetes provider is
 * unreachable offline), and the operator runs as a local broker process instead of a Helm release.
 *
 * App and stack come from `cdk`, the CDK for Terraform library the constructs loaded (cdktf or cdktn; see
 * README.md), so the same file deploys with either CLI.
 *
 * Inputs come from the environment so no secret lands in cdktf.out: the provider reads
 * CLOUDTASER_SECRETSTORE_TOKEN itself.
 */
import { cdk, OperatorInstall, RegisteredCluster } from 'cloudtaser/constructs';
import type { Construct } from 'constructs';

class LocalStack extends cdk.TerraformStack {
  constructor(scope: Construct, id: string) {
    super(scope, id);
    const cluster = new RegisteredCluster(this, 'dev-cluster', {
      secretStore: { address: requireEnv('CLOUDTASER_SECRETSTORE_ADDRESS') },
      beacon: { address: requireEnv('CLOUDTASER_DEMO_BEACON') },
      kubernetes: { configPath: requireEnv('CLOUDTASER_DEMO_KUBECONFIG') },
      fingerprintSource: 'cloudtaser',
      // The broker runs as a local process here, with the operator service account's kubeconfig; attestation
      // stays on (the default with the cloudtaser fingerprint source), read from the dev cluster's issuer keys.
      operator: OperatorInstall.deployedElsewhere(),
      // The demo migrates a Kubernetes Secret: the bridge serves migration only for registrations that allow it.
      migration: true,
    });
    new cdk.TerraformOutput(this, 'fingerprint', { value: cluster.fingerprint });
    new cdk.TerraformOutput(this, 'namespace', { value: cluster.namespace });
    new cdk.TerraformOutput(this, 'init_hash', { value: cluster.initHash });
    new cdk.TerraformOutput(this, 'operational_hash', { value: cluster.operationalHash });
    new cdk.TerraformOutput(this, 'attested', { value: cluster.registration.attested });
  }
}

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} must be set (the demo sets it; see examples/local/README.md)`);
  return value;
}

const app = new cdk.App();
new LocalStack(app, 'local');
app.synth();
