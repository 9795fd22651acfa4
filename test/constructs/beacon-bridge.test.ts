import { HelmProvider } from '@cdktf/provider-helm/lib/provider/index.js';
import { describe, expect, it } from 'vitest';
import { TerraformOutput, Testing } from '../../constructs/cdktf.js';
import {
  Beacon,
  BeaconExposure,
  BeaconTls,
  Bridge,
  BridgeAuth,
  type BridgeProps,
} from '../../constructs/index.js';
import { renderPolicyHcl } from '../../runtime/registration/policies.js';
import { newStack, only, secretsIn, synthJson, type TerraformJson } from './synth.js';

const kubernetes = { configPath: '/home/ops/.kube/eu-config' };

function settings(release: TerraformJson): Record<string, string> {
  return Object.fromEntries(release.set.map((s: { name: string; value: string }) => [s.name, s.value]));
}

describe('Beacon', () => {
  it('deploys the beacon chart with two replicas, cluster-only exposure and the headless address for bridges', () => {
    const stack = newStack();
    const beacon = new Beacon(stack, 'relay', { kubernetes });
    const json = synthJson(stack);
    const release = only(json.resource.helm_release);
    expect(release).toMatchObject({
      chart: 'cloudtaser-beacon',
      name: 'cloudtaser-beacon',
      namespace: 'cloudtaser-system',
    });
    expect(release.set).toContainEqual({ name: 'replicas', value: '2', type: 'auto' });
    expect(settings(release)).toMatchObject({ 'service.type': 'ClusterIP', 'beacon.plainDoor': 'false' });
    expect(only(json.provider.helm).kubernetes).toEqual({ config_path: '/home/ops/.kube/eu-config' });
    // The pods' own port: a headless Service translates no port.
    expect(beacon.headlessAddress).toBe('cloudtaser-beacon-headless.cloudtaser-system.svc:8443');
    expect(beacon.node.defaultChild).toBe(beacon.release);
  });

  it('exposes the beacon through a load balancer with source ranges and annotations, and TLS from a Secret', () => {
    const stack = newStack();
    new Beacon(stack, 'relay', {
      kubernetes,
      replicas: 3,
      tls: BeaconTls.fromSecret('beacon-example-com'),
      exposure: BeaconExposure.loadBalancer({
        sourceRanges: ['0.0.0.0/0'],
        annotations: { 'service.beta.kubernetes.io/aws-load-balancer-type': 'nlb' },
      }),
      chart: {
        releaseName: 'edge',
        namespace: 'relay',
        values: { resources: { limits: { memory: '1Gi' } } },
      },
    });
    const release = only(synthJson(stack).resource.helm_release);
    expect(settings(release)).toMatchObject({
      replicas: '3',
      'service.type': 'LoadBalancer',
      'tls.secretName': 'beacon-example-com',
    });
    expect(JSON.parse(release.values[0])).toEqual({
      resources: { limits: { memory: '1Gi' } },
      service: {
        loadBalancerSourceRanges: ['0.0.0.0/0'],
        annotations: { 'service.beta.kubernetes.io/aws-load-balancer-type': 'nlb' },
      },
    });
    expect(release.name).toBe('edge');
  });

  it.each([
    [
      () => new Beacon(newStack(), 'b', { kubernetes, replicas: 0 }),
      /'replicas' must be an integer from 1 to 100; got 0/,
    ],
    [() => new Beacon(newStack(), 'b', { kubernetes, replicas: 1.5 }), /'replicas' must be an integer/],
    [() => new Beacon(newStack(), 'b', {}), /'Beacon' needs 'kubernetes' or 'helmProvider'/],
    [
      () => BeaconTls.fromSecret('Not A Name'),
      /'BeaconTls\.fromSecret\(secretName\)' must be a Kubernetes object name/,
    ],
    [
      () => new Beacon(newStack(), 'b', { kubernetes, tls: { _secretName: 'x' } as never }),
      /'tls' must come from BeaconTls\.fromSecret\(\)/,
    ],
    [
      () => new Beacon(newStack(), 'b', { kubernetes, chart: { version: '1' } }),
      /'chart\.version' must be a semantic version/,
    ],
  ])('refuses invalid props with a message naming the prop (%#)', (make, message) => {
    expect(make).toThrow(message);
  });
});

describe('Bridge', () => {
  const props = (overrides: Partial<BridgeProps> = {}): BridgeProps => ({
    beacon: { address: 'cloudtaser-beacon-headless.cloudtaser-system.svc:443' },
    openBao: { address: 'https://openbao.openbao.svc:8200' },
    auth: BridgeAuth.appRoleFromSecret({ secretName: 'bridge-approle' }),
    kubernetes,
    ...overrides,
  });

  it('deploys the bridge chart with the beacon, OpenBao and an AppRole Secret reference', () => {
    const stack = newStack();
    new Bridge(
      stack,
      'bridge',
      props({ openBao: { address: 'https://openbao.openbao.svc:8200', namespaceRoot: 'team' } }),
    );
    const release = only(synthJson(stack).resource.helm_release);
    expect(release.chart).toBe('cloudtaser-bridge');
    expect(settings(release)).toEqual({
      replicas: '2',
      'bridge.beacon.address': 'cloudtaser-beacon-headless.cloudtaser-system.svc:443',
      'bridge.openbao.address': 'https://openbao.openbao.svc:8200',
      'bridge.openbao.namespaceRoot': 'team',
      'bridge.openbao.auth.method': 'approle',
      'bridge.openbao.auth.approle.secretName': 'bridge-approle',
      'bridge.beacon.clientIdentity.source': 'openbao',
    });
  });

  it('exposes its least-privilege OpenBao policy for the namespace root it serves, as the CLI prints it', () => {
    const stack = newStack();
    const bridge = new Bridge(
      stack,
      'bridge',
      props({ openBao: { address: 'https://openbao.openbao.svc:8200', namespaceRoot: 'team' } }),
    );
    expect(bridge.policyName).toBe('cloudtaser-bridge');
    expect(bridge.policyHcl).toBe(renderPolicyHcl('bridge', { namespaceRoot: 'team' }));
    expect(bridge.policyHcl).toContain('path "team/+/cloudtaser/data/system/bridge-ca"');
    new TerraformOutput(stack, 'bridge_policy', { value: bridge.policyHcl });
    expect(synthJson(stack).output.bridge_policy.value).toBe(bridge.policyHcl);
    expect(new Bridge(newStack(), 'b', props()).policyHcl).toBe(renderPolicyHcl('bridge'));
  });

  it('escapes commas in literal values so Helm does not split them', () => {
    const stack = newStack();
    new Bridge(stack, 'bridge', props({ openBao: { address: 'https://openbao.example.eu:8200/a,b' } }));
    const release = only(synthJson(stack).resource.helm_release);
    expect(settings(release)['bridge.openbao.address']).toBe('https://openbao.example.eu:8200/a\\,b');
  });

  it("waits at a Beacon construct's headless address and shares its helm provider", () => {
    const stack = newStack();
    const helmProvider = new HelmProvider(stack, 'eu', { kubernetes });
    const beacon = new Beacon(stack, 'relay', { helmProvider });
    new Bridge(
      stack,
      'bridge',
      props({ beacon: { address: beacon.headlessAddress }, kubernetes: undefined, helmProvider }),
    );
    const json = synthJson(stack);
    expect(json.provider.helm).toHaveLength(1);
    const releases = Object.values(json.resource.helm_release as Record<string, TerraformJson>);
    const bridge = releases.find((r) => r.chart === 'cloudtaser-bridge')!;
    expect(settings(bridge)['bridge.beacon.address']).toBe(beacon.headlessAddress);
  });

  it('never takes AppRole credentials or an OpenBao token as values', () => {
    expect(() =>
      BridgeAuth.appRoleFromSecret({ secretName: 's', roleId: 'r-123', secretId: 'hunter2' } as never),
    ).toThrow(
      /'BridgeAuth\.appRoleFromSecret\(roleId\)' is not supported: credentials are read from the Secret/,
    );
    expect(
      () =>
        new Bridge(
          newStack(),
          'b',
          props({ openBao: { address: 'https://o.example', token: 's.x' } as never }),
        ),
    ).toThrow(/'openBao\.token' is not supported/);
    const stack = newStack();
    new Bridge(
      stack,
      'b',
      props({
        auth: BridgeAuth.appRoleFromSecret({
          secretName: 'ar',
          roleIdKey: 'rid',
          secretIdKey: 'sid',
          mountPath: 'auth/eu',
        }),
      }),
    );
    const json = Testing.synth(stack);
    expect(secretsIn(json)).toEqual([]);
    expect(json).toContain('"bridge.openbao.auth.approle.secretIdKey"');
  });

  it.each([
    [{ beacon: { address: 'beacon' } }, /'beacon\.address' must be the beacon's host:port/],
    [
      { openBao: { address: 'openbao:8200' } },
      /^CT_INVALID_ARGUMENT: stack\/b: 'openBao\.address' must be an https URL such as https:\/\/openbao/,
    ],
    [
      { auth: { _appRole: { secretName: 'x' } } as never },
      /'auth' must come from BridgeAuth\.appRoleFromSecret\(\)/,
    ],
    [{ replicas: -1 }, /'replicas' must be an integer from 1 to 100; got -1/],
    [
      { openBao: { address: 'https://o.example', caConfigMap: 'CA Bundle' } },
      /'openBao\.caConfigMap' must be a Kubernetes object name/,
    ],
  ] as Array<[Partial<BridgeProps>, RegExp]>)(
    'refuses invalid props with a message naming the prop (%#)',
    (overrides, message) => {
      expect(() => new Bridge(newStack(), 'b', props(overrides))).toThrow(message);
    },
  );
});
