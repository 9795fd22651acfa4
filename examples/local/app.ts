/**
 * The local example's CDKTF app: registers the dev cluster with the dev OpenBao through the cloudtaser
 * provider. The fingerprint comes from the provider's own data source (the registry's hashicorp/kubernetes
 * provider is unreachable offline), and the operator runs as a local broker process instead of a Helm release.
 *
 * Inputs come from the environment so no secret lands in cdktf.out: the provider reads
 * CLOUDTASER_SECRETSTORE_TOKEN itself.
 */
import { App, TerraformOutput, TerraformStack } from 'cdktf';
import { OperatorInstall, RegisteredCluster } from 'cloudtaser/constructs';
import type { Construct } from 'constructs';

class LocalStack extends TerraformStack {
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
    });
    new TerraformOutput(this, 'fingerprint', { value: cluster.fingerprint });
    new TerraformOutput(this, 'namespace', { value: cluster.namespace });
    new TerraformOutput(this, 'init_hash', { value: cluster.initHash });
    new TerraformOutput(this, 'operational_hash', { value: cluster.operationalHash });
    new TerraformOutput(this, 'attested', { value: cluster.registration.attested });
  }
}

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} must be set (the demo sets it; see examples/local/README.md)`);
  return value;
}

const app = new App();
new LocalStack(app, 'local');
app.synth();
