/** The `proxy` prop of RegisteredCluster and Bridge: the charts' proxy block, with no credential in cdktf.out. */
import { describe, expect, it } from 'vitest';
import { TerraformVariable } from '../../constructs/cdktf.js';
import {
  Bridge,
  BridgeAuth,
  OperatorInstall,
  type ProxyProps,
  RegisteredCluster,
} from '../../constructs/index.js';
import { newStack, only, secretsIn, synthJson, type TerraformJson } from './synth.js';

const kubernetes = { configPath: '/home/ops/.kube/eu-config' };
const FINGERPRINT = '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0';

function proxySettings(release: TerraformJson): Record<string, string> {
  return Object.fromEntries(
    release.set
      .filter((s: { name: string }) => s.name.startsWith('proxy.'))
      .map((s: { name: string; value: string }) => [s.name, s.value]),
  );
}

function cluster(proxy: ProxyProps | undefined) {
  const stack = newStack();
  new RegisteredCluster(stack, 'prod-eu', {
    secretStore: { address: 'https://openbao.example.eu:8200' },
    beacon: { address: 'beacon.example.com:443' },
    kubernetes,
    fingerprint: FINGERPRINT,
    proxy,
  });
  return stack;
}

function bridge(proxy: ProxyProps | undefined) {
  const stack = newStack();
  new Bridge(stack, 'bridge', {
    beacon: { address: 'beacon.example.com:443' },
    openBao: { address: 'https://openbao.openbao.svc:8200' },
    auth: BridgeAuth.appRoleFromSecret({ secretName: 'bridge-approle' }),
    kubernetes,
    proxy,
  });
  return stack;
}

describe.each([
  ['RegisteredCluster', cluster],
  ['Bridge', bridge],
] as const)('%s proxy prop', (_name, build) => {
  it('sets nothing about proxies when the prop is absent', () => {
    expect(proxySettings(only(synthJson(build(undefined)).resource.helm_release))).toEqual({});
  });

  it('passes beaconProxy, httpsProxy and noProxy to the chart, with the commas of noProxy escaped for Helm', () => {
    const release = only(
      synthJson(
        build({
          beaconProxy: 'http://beacon-proxy.corp.example:8080',
          httpsProxy: 'http://proxy.corp.example:3128',
          noProxy: ['.svc', '.cluster.local', '10.0.0.0/8'],
        }),
      ).resource.helm_release,
    );
    expect(proxySettings(release)).toEqual({
      'proxy.beaconProxy': 'http://beacon-proxy.corp.example:8080',
      'proxy.httpsProxy': 'http://proxy.corp.example:3128',
      'proxy.noProxy': '.svc\\,.cluster.local\\,10.0.0.0/8',
    });
  });

  it('names a Secret for a proxy URL with credentials, so none lands in cdktf.out', () => {
    const stack = build({ beaconProxy: 'none', credentialsSecret: { name: 'corp-proxy', key: 'url' } });
    const json = synthJson(stack);
    expect(proxySettings(only(json.resource.helm_release))).toEqual({
      'proxy.beaconProxy': 'none',
      'proxy.credentialsSecret.name': 'corp-proxy',
      'proxy.credentialsSecret.key': 'url',
    });
    expect(secretsIn(JSON.stringify(json))).toEqual([]);
  });

  it.each([
    [{ httpsProxy: 'http://alice:s3cret@proxy:3128' }, "'proxy.httpsProxy' must not carry credentials"],
    [{ beaconProxy: 'alice:s3cret@proxy:3128' }, "'proxy.beaconProxy' must not carry credentials"],
    [{ httpsProxy: 'socks5://proxy:1080' }, "'proxy.httpsProxy' must be an HTTP proxy URL"],
    [{ beaconProxy: 'http://proxy:3128/path' }, "'proxy.beaconProxy' must be an HTTP proxy URL"],
    [
      { httpsProxy: 'http://proxy:3128', credentialsSecret: { name: 'corp-proxy' } },
      "'proxy.httpsProxy' is not supported if 'proxy.credentialsSecret' is used",
    ],
    [{ noProxy: ['.svc,.local'] }, "'proxy.noProxy[0]' must be one name"],
    [
      { credentialsSecret: { name: 'Corp_Proxy' } },
      "'proxy.credentialsSecret.name' must be a Kubernetes object name",
    ],
  ] as const)('refuses %j at synth time naming the prop', (proxy, message) => {
    expect(() => build(proxy as ProxyProps)).toThrow(message);
  });

  it('leaves a proxy URL that is still a Terraform variable for Terraform to resolve', () => {
    const stack = newStack();
    const variable = new TerraformVariable(stack, 'proxy_url', { type: 'string' });
    expect(() => validateWith(build, variable.stringValue)).not.toThrow();
  });
});

function validateWith(build: (proxy: ProxyProps) => unknown, url: string) {
  return build({ httpsProxy: url });
}

describe('RegisteredCluster.operatorValues with a proxy', () => {
  it('carries the proxy block for an operator deployed elsewhere (ArgoCD, Flux)', () => {
    const stack = newStack();
    const registered = new RegisteredCluster(stack, 'gitops', {
      secretStore: { address: 'https://openbao.example.eu:8200' },
      beacon: { address: 'beacon.example.com:443' },
      fingerprint: FINGERPRINT,
      operator: OperatorInstall.deployedElsewhere(),
      proxy: { httpsProxy: 'http://proxy.corp.example:3128', noProxy: ['.corp.example', '10.0.0.0/8'] },
    });
    expect(registered.operatorValues.proxy).toEqual({
      httpsProxy: 'http://proxy.corp.example:3128',
      noProxy: '.corp.example,10.0.0.0/8',
    });
    const without = new RegisteredCluster(stack, 'plain', {
      secretStore: { address: 'https://openbao.example.eu:8200' },
      beacon: { address: 'beacon.example.com:443' },
      // Another cluster: one fingerprint registered twice is refused at synth.
      fingerprint: FINGERPRINT.replace(/.$/u, (c) => (c === '0' ? '1' : '0')),
      operator: OperatorInstall.deployedElsewhere(),
    });
    expect(without.operatorValues).not.toHaveProperty('proxy');
  });
});
