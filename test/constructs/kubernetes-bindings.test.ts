/**
 * Our helm/kubernetes bindings (constructs/kubernetes.ts) replace the prebuilt @cdktf/provider-helm and
 * @cdktf/provider-kubernetes packages (which cannot run on cdktn). For every shape the constructs create, both
 * synthesize to the same Terraform JSON and HCL, so a plan is unchanged for users who move between them.
 */
import { HelmProvider } from '@cdktf/provider-helm/lib/provider/index.js';
import { Release } from '@cdktf/provider-helm/lib/release/index.js';
import { DataKubernetesNamespace } from '@cdktf/provider-kubernetes/lib/data-kubernetes-namespace/index.js';
import { DataKubernetesService } from '@cdktf/provider-kubernetes/lib/data-kubernetes-service/index.js';
import { KubernetesProvider } from '@cdktf/provider-kubernetes/lib/provider/index.js';
import { describe, expect, it } from 'vitest';
import { TerraformOutput, TerraformStack, Testing } from '../../constructs/cdktf.js';
import {
  newDataKubernetesNamespace,
  newDataKubernetesService,
  newHelmProvider,
  newKubernetesProvider,
  newRelease,
} from '../../constructs/kubernetes.js';

const exec = {
  apiVersion: 'client.authentication.k8s.io/v1beta1',
  command: 'aws',
  args: ['eks', 'get-token', '--cluster-name', 'prod'],
  env: { AWS_PROFILE: 'ops' },
};
/** A Terraform reference, as a user passes a token (never a literal). */
const TOKEN_REFERENCE = ['$', '{var.token}'].join('');
const connections = {
  token: { host: 'https://203.0.113.10', clusterCaCertificate: 'PEM', token: TOKEN_REFERENCE },
  exec: { host: 'https://203.0.113.10', clusterCaCertificate: 'PEM' },
  kubeconfig: { configPath: '/home/ops/.kube/config', configContext: 'prod' },
} as const;

type Build = (stack: TerraformStack, prebuilt: boolean) => void;

function synthBoth(build: Build): { ours: unknown; prebuilt: unknown; oursHcl: string; prebuiltHcl: string } {
  const make = (prebuilt: boolean) => {
    const stack = new TerraformStack(Testing.app(), 'stack');
    build(stack, prebuilt);
    return { json: JSON.parse(Testing.synth(stack)), hcl: String(Testing.synthHcl(stack)) };
  };
  const ours = make(false);
  const prebuilt = make(true);
  return { ours: ours.json, prebuilt: prebuilt.json, oursHcl: ours.hcl, prebuiltHcl: prebuilt.hcl };
}

describe('helm and kubernetes bindings match the prebuilt packages', () => {
  it.each(Object.entries(connections))('helm provider with a %s connection', (kind, connection) => {
    const kubernetes = kind === 'exec' ? { ...connection, exec } : connection;
    const result = synthBoth((stack, prebuilt) => {
      const config = { alias: 'prod_helm', kubernetes };
      if (prebuilt) new HelmProvider(stack, 'HelmProvider', config);
      else newHelmProvider(stack, 'HelmProvider', config);
    });
    expect(result.ours).toEqual(result.prebuilt);
    expect(result.oursHcl).toBe(result.prebuiltHcl);
  });

  it.each(Object.entries(connections))('kubernetes provider with a %s connection', (kind, connection) => {
    const config = { alias: 'prod_kubernetes', ...connection, ...(kind === 'exec' ? { exec: [exec] } : {}) };
    const result = synthBoth((stack, prebuilt) => {
      if (prebuilt) new KubernetesProvider(stack, 'KubernetesProvider', config);
      else newKubernetesProvider(stack, 'KubernetesProvider', config);
    });
    expect(result.ours).toEqual(result.prebuilt);
    expect(result.oursHcl).toBe(result.prebuiltHcl);
  });

  it('a helm_release with repository, values, typed --set entries and a dependency', () => {
    const result = synthBoth((stack, prebuilt) => {
      const provider = new HelmProvider(stack, 'HelmProvider', { kubernetes: connections.kubeconfig });
      const dependency = new DataKubernetesNamespace(stack, 'First', { metadata: { name: 'first' } });
      const config = {
        provider,
        name: 'cloudtaser',
        namespace: 'cloudtaser-system',
        createNamespace: true,
        chart: 'cloudtaser',
        repository: 'oci://ghcr.io/cloudtaser/charts',
        version: '0.2.0',
        values: ['{"webhook":{"failurePolicy":"Ignore"}}'],
        set: [
          { name: 'operator.broker.beacon.address', value: 'beacon.example.com:443', type: 'string' },
          { name: 'replicas', value: '2', type: 'auto' },
        ],
        dependsOn: [dependency],
      };
      if (prebuilt) new Release(stack, 'Release', config);
      else newRelease(stack, 'Release', config);
    });
    expect(result.ours).toEqual(result.prebuilt);
    expect(result.oursHcl).toBe(result.prebuiltHcl);
  });

  it('the kube-system namespace data source and the uid reference the fingerprint is read from', () => {
    const result = synthBoth((stack, prebuilt) => {
      const provider = new KubernetesProvider(stack, 'KubernetesProvider', connections.kubeconfig);
      const config = { provider, metadata: { name: 'kube-system' } };
      const namespace = prebuilt
        ? new DataKubernetesNamespace(stack, 'KubeSystem', config)
        : newDataKubernetesNamespace(stack, 'KubeSystem', config);
      new TerraformOutput(stack, 'uid', { value: namespace.metadata.uid });
    });
    expect(result.ours).toEqual(result.prebuilt);
    expect(result.oursHcl).toBe(result.prebuiltHcl);
    expect((result.ours as { output: { uid: { value: string } } }).output.uid.value).toBe(
      `\${data.kubernetes_namespace.KubeSystem.metadata[0].uid}`,
    );
  });

  it('a helm_release and a data source name their aliased provider (helm.<alias>, kubernetes.<alias>)', () => {
    const result = synthBoth((stack, prebuilt) => {
      const helmConfig = { alias: 'eu_helm', kubernetes: connections.kubeconfig };
      const kubeConfig = { alias: 'eu_kubernetes', ...connections.kubeconfig };
      const helm = prebuilt
        ? new HelmProvider(stack, 'HelmProvider', helmConfig)
        : newHelmProvider(stack, 'HelmProvider', helmConfig);
      const kubernetes = prebuilt
        ? new KubernetesProvider(stack, 'KubernetesProvider', kubeConfig)
        : newKubernetesProvider(stack, 'KubernetesProvider', kubeConfig);
      const release = { provider: helm, name: 'cloudtaser', chart: 'cloudtaser' };
      if (prebuilt) new Release(stack, 'Release', release);
      else newRelease(stack, 'Release', release);
      const namespace = { provider: kubernetes, metadata: { name: 'kube-system' } };
      if (prebuilt) new DataKubernetesNamespace(stack, 'KubeSystem', namespace);
      else newDataKubernetesNamespace(stack, 'KubeSystem', namespace);
    });
    expect(result.ours).toEqual(result.prebuilt);
    expect(result.oursHcl).toBe(result.prebuiltHcl);
    const json = result.ours as {
      resource: { helm_release: { Release: { provider: string } } };
      data: { kubernetes_namespace: { KubeSystem: { provider: string } } };
    };
    expect(json.resource.helm_release.Release.provider).toBe('helm.eu_helm');
    expect(json.data.kubernetes_namespace.KubeSystem.provider).toBe('kubernetes.eu_kubernetes');
  });

  it("the kubernetes_service data source and the load balancer's ingress address", () => {
    const result = synthBoth((stack, prebuilt) => {
      const provider = new KubernetesProvider(stack, 'KubernetesProvider', connections.kubeconfig);
      const config = { provider, metadata: { name: 'cloudtaser-beacon', namespace: 'cloudtaser-beacon' } };
      if (prebuilt) {
        const service = new DataKubernetesService(stack, 'LoadBalancer', config);
        const ingress = service.status.get(0).loadBalancer.get(0).ingress.get(0);
        new TerraformOutput(stack, 'hostname', { value: ingress.hostname });
        new TerraformOutput(stack, 'ip', { value: ingress.ip });
      } else {
        const ingress = newDataKubernetesService(stack, 'LoadBalancer', config).loadBalancerIngress;
        new TerraformOutput(stack, 'hostname', { value: ingress.hostname });
        new TerraformOutput(stack, 'ip', { value: ingress.ip });
      }
    });
    expect(result.ours).toEqual(result.prebuilt);
    expect(result.oursHcl).toBe(result.prebuiltHcl);
  });
});
