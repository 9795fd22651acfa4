/**
 * The constructs compose the way the deployment does: providers named by their settings whatever the ids (checked
 * with the real `terraform validate`), one helm provider per cluster connection, the Bridge after the Beacon, addresses
 * that match what the charts serve (the chart is rendered with the very values the construct passes), ports and
 * schemes checked at synth time, and the construct path in every refusal.
 */
import { join } from 'node:path';
import { Construct } from 'constructs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TerraformOutput, Testing } from '../../constructs/cdktf.js';
import {
  Beacon,
  BeaconExposure,
  Bridge,
  BridgeAuth,
  ConstructRefusal,
  OperatorInstall,
  RegisteredCluster,
  type Release,
} from '../../constructs/index.js';
import { installProviderMirror } from '../../provider/packaging/mirror.js';
import { CHARTS_DIR } from '../charts/chart-files.js';
import { mergeValues, renderChart } from '../charts/helm-template.js';
import { testBundle } from '../provider/support/bundle.js';
import { createWorkspace, type TerraformWorkspace } from '../provider/support/terraform.js';
import { annotationsOf, newStack, only, synthJson, type TerraformJson } from './synth.js';

const kubernetes = { configPath: '/home/ops/.kube/eu-config' };
const otherCluster = { configPath: '/home/ops/.kube/us-config' };
const appRole = BridgeAuth.appRoleFromSecret({ secretName: 'bridge-approle' });

/** The values Helm would get from a synthesized helm_release: `values` merged, then every `set` applied. */
function releaseValues(release: TerraformJson): Record<string, unknown> {
  let values = (release.values ? JSON.parse(release.values[0]) : {}) as Record<string, unknown>;
  for (const { name, value, type } of release.set as Array<{ name: string; value: string; type: string }>) {
    const parsed =
      type === 'auto' && /^(true|false|-?\d+)$/.test(value)
        ? JSON.parse(value)
        : value.replaceAll('\\,', ',');
    const override = name
      .split('.')
      .reverse()
      .reduce<unknown>((inner, key) => ({ [key]: inner }), parsed);
    values = mergeValues(values, override) as Record<string, unknown>;
  }
  return values;
}

function renderRelease(release: TerraformJson, chart: string): { objects: TerraformJson[]; notes: string } {
  return renderChart(join(CHARTS_DIR, chart), {
    name: release.name,
    namespace: release.namespace,
    values: releaseValues(release),
  });
}

describe('provider aliases', () => {
  it('one cloudtaser provider per secret-store settings, named by them and not by the ids of the constructs', () => {
    const stack = newStack();
    const team = new Construct(stack, 'team');
    const clusters = [
      new RegisteredCluster(stack, 'prod.eu', elsewhere()),
      new RegisteredCluster(stack, 'prod_eu', elsewhere()),
      new RegisteredCluster(team, 'x', elsewhere()),
      new RegisteredCluster(stack, 'team_x', {
        ...elsewhere(),
        secretStore: { address: 'https://openbao.example.eu:8200', namespaceRoot: 'team' },
      }),
    ];
    const aliases = clusters.map((c) => (c.cloudtaserProvider as unknown as { alias: string }).alias);
    expect(new Set(aliases.slice(0, 3)).size).toBe(1);
    expect(aliases[3]).not.toBe(aliases[0]);
    expect(synthJson(stack).provider.cloudtaser).toHaveLength(2);
    // The same settings in another stack, under other ids, give the same alias: it comes from the settings only.
    const other = new RegisteredCluster(newStack(), 'renamed', elsewhere());
    expect((other.cloudtaserProvider as unknown as { alias: string }).alias).toBe(aliases[0]);
  });

  describe('terraform validate on an app with such ids', () => {
    let workspace: TerraformWorkspace;
    beforeAll(async () => {
      workspace = createWorkspace();
      const mirror = installProviderMirror(join(workspace.dir, '..', 'mirror'), {
        bundlePath: await testBundle(),
        platforms: ['linux_amd64'],
      });
      workspace.write('../terraform.rc', `disable_checkpoint = true\n${mirror.cliConfig}`);
    }, 120_000);
    afterAll(() => workspace?.dispose());

    it('passes (no duplicate provider configuration)', async () => {
      const stack = newStack();
      const team = new Construct(stack, 'team');
      new RegisteredCluster(stack, 'prod.eu', elsewhere());
      new RegisteredCluster(stack, 'prod_eu', elsewhere());
      new RegisteredCluster(team, 'x', elsewhere());
      new RegisteredCluster(stack, 'team_x', elsewhere());
      workspace.write('main.tf.json', Testing.synth(stack));
      const init = await workspace.run(['init', '-backend=false', '-no-color']);
      expect(init.code, init.stderr + init.stdout).toBe(0);
      const validate = await workspace.run(['validate', '-no-color']);
      expect(validate.code, validate.stderr + validate.stdout).toBe(0);
    }, 120_000);
  });
});

function elsewhere() {
  return {
    secretStore: { address: 'https://openbao.example.eu:8200' },
    beacon: { address: 'beacon.example.com:443' },
    kubernetes,
    fingerprintSource: 'cloudtaser' as const,
    operator: OperatorInstall.deployedElsewhere(),
  };
}

describe('one helm provider per cluster connection', () => {
  it('is shared by the Beacon, the Bridge and an operator on the same cluster, and another cluster gets its own', () => {
    const stack = newStack();
    const beacon = new Beacon(stack, 'beacon', { kubernetes });
    new Bridge(stack, 'bridge', {
      kubernetes: { ...kubernetes },
      beacon: { deployment: beacon },
      openBao: { address: 'https://openbao.openbao.svc:8200' },
      auth: appRole,
    });
    new RegisteredCluster(stack, 'eu', {
      secretStore: { address: 'https://openbao.example.eu:8200' },
      beacon: { address: beacon.brokerAddress },
      kubernetes,
    });
    new RegisteredCluster(stack, 'us', {
      secretStore: { address: 'https://openbao.example.eu:8200' },
      beacon: { address: 'beacon.example.com:443' },
      kubernetes: otherCluster,
    });
    const json = synthJson(stack);
    const helm = json.provider.helm as TerraformJson[];
    expect(helm.map((p) => p.kubernetes.config_path).sort()).toEqual([
      '/home/ops/.kube/eu-config',
      '/home/ops/.kube/us-config',
    ]);
    const providerOf = (path: string) =>
      Object.entries(json.resource.helm_release as Record<string, TerraformJson>).find(([id]) =>
        id.startsWith(path),
      )![1].provider;
    const eu = helm.find((p) => p.kubernetes.config_path.includes('eu-config'))!;
    const us = helm.find((p) => p.kubernetes.config_path.includes('us-config'))!;
    for (const id of ['beacon', 'bridge', 'eu_Operator']) expect(providerOf(id), id).toBe(`helm.${eu.alias}`);
    expect(providerOf('us_Operator')).toBe(`helm.${us.alias}`);
  });

  it('outlives the construct that made it: removing the Beacon keeps the provider of the Bridge and the operator', () => {
    const app = (withBeacon: boolean) => {
      const stack = newStack();
      if (withBeacon) new Beacon(stack, 'beacon', { kubernetes });
      new Bridge(stack, 'bridge', {
        kubernetes,
        beacon: { address: 'beacon.example.com:443' },
        openBao: { address: 'https://openbao.openbao.svc:8200' },
        auth: appRole,
      });
      new RegisteredCluster(stack, 'eu', {
        secretStore: { address: 'https://openbao.example.eu:8200' },
        beacon: { address: 'beacon.example.com:443' },
        kubernetes,
      });
      return synthJson(stack);
    };
    const before = app(true).provider.helm as TerraformJson[];
    const after = app(false).provider.helm as TerraformJson[];
    expect(before).toHaveLength(1);
    expect(after).toEqual(before);
    expect(before[0].alias).toMatch(/^helm_[0-9a-f]{12}$/);
  });
});

describe('Beacon and Bridge', () => {
  it('orders the Bridge after the Beacon it waits at, and dials the headless address on the pods port', () => {
    const stack = newStack();
    const beacon = new Beacon(stack, 'beacon', { kubernetes, port: 9443 });
    const bridge = new Bridge(stack, 'bridge', {
      kubernetes,
      beacon: { deployment: beacon },
      openBao: { address: 'https://openbao.openbao.svc:8200' },
      auth: appRole,
    });
    const json = synthJson(stack);
    const releases = json.resource.helm_release as Record<string, TerraformJson>;
    const bridgeRelease = Object.values(releases).find((r) => r.chart === 'cloudtaser-bridge')!;
    const beaconId = Object.keys(releases).find((id) => releases[id].chart === 'cloudtaser-beacon')!;
    expect(bridgeRelease.depends_on).toEqual([`helm_release.${beaconId}`]);
    expect(bridgeRelease.set).toContainEqual({
      name: 'bridge.beacon.address',
      value: 'cloudtaser-beacon-headless.cloudtaser-system.svc:9443',
      type: 'string',
    });
    // `Release` is exported for escape hatches and tests.
    const typed: Release = bridge.release;
    expect(typed.terraformResourceType).toBe('helm_release');
  });

  it.each([
    ['the defaults', {}],
    ['a pod port override', { port: 9443 }],
    ['a service port override', { servicePort: 4443 }],
    [
      'a release name, namespace and chart values',
      { chart: { releaseName: 'edge', namespace: 'relay', values: { beacon: { port: 10443 } } } },
    ],
    [
      'the longest release name Helm allows (the full name is cut to 63 characters)',
      { chart: { releaseName: 'x'.repeat(53) } },
    ],
  ])('gives bridges the headless address the rendered chart serves and prints, with %s', (_name, props) => {
    const stack = newStack();
    const beacon = new Beacon(stack, 'beacon', { kubernetes, ...props });
    const release = only(synthJson(stack).resource.helm_release);
    const rendered = renderRelease(release, 'cloudtaser-beacon');
    const headless = rendered.objects.find((o) => o.kind === 'Service' && o.spec.clusterIP === 'None')!;
    const deployment = rendered.objects.find((o) => o.kind === 'Deployment')!;
    const containerPort = deployment.spec.template.spec.containers[0].ports.find(
      (p: TerraformJson) => p.name === 'beacon',
    ).containerPort;
    expect(beacon.headlessAddress).toBe(
      `${headless.metadata.name}.${release.namespace}.svc:${containerPort}`,
    );
    expect(rendered.notes).toContain(beacon.headlessAddress);
  });

  it('exposes the address brokers dial: the load balancer hostname, its read-back address, or the in-cluster Service', () => {
    const stack = newStack();
    const named = new Beacon(stack, 'named', {
      kubernetes,
      servicePort: 8443,
      exposure: BeaconExposure.loadBalancer({ hostname: 'beacon.example.com' }),
    });
    const unnamed = new Beacon(stack, 'unnamed', {
      kubernetes,
      chart: { releaseName: 'edge' },
      exposure: BeaconExposure.loadBalancer(),
    });
    const inside = new Beacon(stack, 'inside', { kubernetes, chart: { releaseName: 'inner' } });
    expect(named.brokerAddress).toBe('beacon.example.com:8443');
    expect(inside.brokerAddress).toBe('inner-cloudtaser-beacon.cloudtaser-system.svc:443');
    const json = synthJson(stack);
    const service = only(json.data.kubernetes_service);
    expect(service.metadata).toEqual({ name: 'edge-cloudtaser-beacon', namespace: 'cloudtaser-system' });
    new TerraformOutput(stack, 'address', { value: unnamed.brokerAddress });
    const address = synthJson(stack).output.address.value as string;
    expect(address).toMatch(
      /coalesce\(data\.kubernetes_service\.[^.]+\.status\[0\]\.load_balancer\[0\]\.ingress\[0\]\.hostname/,
    );
    expect(address).toMatch(/:443$/);
  });

  it('gives registration the TokenReview endpoint the rendered bridge chart serves and prints', () => {
    const stack = newStack();
    const bridge = new Bridge(stack, 'bridge', {
      kubernetes,
      beacon: { address: 'beacon.example.com:443' },
      openBao: { address: 'https://openbao.openbao.svc:8200' },
      auth: BridgeAuth.kubernetes({ role: 'bridge' }),
      tokenReviewPort: 9444,
      chart: { releaseName: 'edge', namespace: 'openbao' },
    });
    const release = only(synthJson(stack).resource.helm_release);
    const rendered = renderRelease(release, 'cloudtaser-bridge');
    expect(bridge.tokenReviewEndpoint).toBe('https://edge-cloudtaser-bridge.openbao.svc:9444');
    expect(rendered.notes).toContain(`--tokenreview-endpoint ${bridge.tokenReviewEndpoint}`);
    const clusterStack = newStack();
    const cluster = new RegisteredCluster(clusterStack, 'eu', {
      secretStore: { address: 'https://openbao.example.eu:8200' },
      beacon: { address: 'beacon.example.com:443', caConfigMap: 'beacon-ca' },
      kubernetes,
      tokenReview: { endpoint: bridge.tokenReviewEndpoint },
    });
    const json = synthJson(clusterStack);
    expect(only(json.resource.cloudtaser_cluster_registration).tokenreview_endpoint).toBe(
      'https://edge-cloudtaser-bridge.openbao.svc:9444',
    );
    // The same beacon options on both sides: the operator gets the beacon CA ConfigMap too.
    expect(only(json.resource.helm_release).set).toContainEqual({
      name: 'operator.broker.beacon.caConfigMap',
      value: 'beacon-ca',
      type: 'string',
    });
    expect(cluster.operatorValues.operator.broker.beacon).toEqual({
      address: 'beacon.example.com:443',
      caConfigMap: 'beacon-ca',
    });
  });
});

describe('Bridge openBao.forwardedFor', () => {
  it('renders --openbao-forwarded-for in the bridge chart only when set', () => {
    const args = (forwardedFor?: boolean) => {
      const stack = newStack();
      new Bridge(stack, 'bridge', {
        kubernetes,
        beacon: { address: 'beacon.example.com:443' },
        openBao: {
          address: 'https://openbao.openbao.svc:8200',
          ...(forwardedFor === undefined ? {} : { forwardedFor }),
        },
        auth: BridgeAuth.kubernetes({ role: 'bridge' }),
      });
      const rendered = renderRelease(only(synthJson(stack).resource.helm_release), 'cloudtaser-bridge');
      const deployment = rendered.objects.find((o) => o.kind === 'Deployment');
      return deployment!.spec.template.spec.containers[0].args as string[];
    };
    expect(args()).not.toContain('--openbao-forwarded-for');
    expect(args(false)).not.toContain('--openbao-forwarded-for');
    expect(args(true)).toContain('--openbao-forwarded-for');
  });
});

describe('synth-time checks', () => {
  it.each([
    [
      'a beacon address on port 0',
      () => cluster({ beacon: { address: 'beacon.example.com:0' } }),
      /'beacon\.address'/,
    ],
    [
      'a beacon address on port 99999',
      () => cluster({ beacon: { address: 'beacon.example.com:99999' } }),
      /'beacon\.address'/,
    ],
    [
      'a Beacon pod port of 0',
      () => new Beacon(newStack(), 'b', { kubernetes, port: 0 }),
      /'port' must be an integer from 1024 to 65535; got 0/,
    ],
    [
      'a Beacon service port of 99999',
      () => new Beacon(newStack(), 'b', { kubernetes, servicePort: 99999 }),
      /'servicePort' must be an integer from 1 to 65535/,
    ],
    [
      'a Beacon port in chart values of 99999',
      () => new Beacon(newStack(), 'b', { kubernetes, chart: { values: { beacon: { port: 99999 } } } }),
      /'port'/,
    ],
    [
      'an OpenBao address on port 0',
      () => cluster({ secretStore: { address: 'https://openbao.example.eu:0' } }),
      /port 0/,
    ],
    [
      'a TokenReview endpoint that is not a URL',
      () => cluster({ tokenReview: { endpoint: 'bridge:8444' } }),
      /'tokenReview\.endpoint' must be an https URL/,
    ],
    [
      'the default operator install without a kubernetes connection',
      () =>
        new RegisteredCluster(newStack(), 'prod', {
          secretStore: { address: 'https://openbao.example.eu:8200' },
          beacon: { address: 'beacon.example.com:443' },
          fingerprint: 'c1000000-0000-4000-8000-000000000001',
        }),
      /'operator' needs 'kubernetes' or 'helmProvider'/,
    ],
  ])('refuses %s, naming the construct path and the prop', (_name, build, message) => {
    expect(build).toThrow(message);
    expect(build).toThrow(/^CT_INVALID_ARGUMENT: stack\/[a-z]+: '/);
    // A TypeError, as for any bad argument, with the stable code a script can switch on.
    const refusal = (() => {
      try {
        build();
      } catch (err) {
        return err;
      }
    })();
    expect(refusal).toBeInstanceOf(TypeError);
    expect(refusal).toBeInstanceOf(ConstructRefusal);
    expect((refusal as ConstructRefusal).code).toBe('CT_INVALID_ARGUMENT');
    expect((refusal as ConstructRefusal).at).toMatch(/^stack\/[a-z]+$/);
  });

  it('puts the full construct path of a nested construct in front of the refusal', () => {
    const stack = newStack();
    const team = new Construct(stack, 'team-eu');
    expect(
      () =>
        new RegisteredCluster(team, 'prod', {
          secretStore: { address: 'openbao' },
          beacon: { address: 'beacon.example.com:443' },
          kubernetes,
        }),
    ).toThrow(/^CT_INVALID_ARGUMENT: stack\/team-eu\/prod: 'secretStore\.address'/);
  });

  it('warns about http:// OpenBao, Kubernetes and TokenReview addresses, saying what would travel in clear', () => {
    const stack = newStack();
    new RegisteredCluster(stack, 'eu', {
      secretStore: { address: 'http://openbao.example.eu:8200' },
      beacon: { address: 'beacon.example.com:443' },
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a Terraform reference, as users pass it
      kubernetes: { host: 'http://203.0.113.10', token: '${var.token}' },
      tokenReview: { endpoint: 'http://bridge.openbao.svc:8444' },
    });
    new Bridge(stack, 'bridge', {
      kubernetes,
      beacon: { address: 'beacon.example.com:443' },
      openBao: { address: 'http://openbao.openbao.svc:8200' },
      auth: appRole,
    });
    const warnings = annotationsOf(stack, 'warn');
    expect(warnings).toContainEqual(
      expect.stringMatching(
        /'secretStore\.address' is http:\/\/: the provider's OpenBao token would travel in clear/,
      ),
    );
    expect(warnings).toContainEqual(expect.stringMatching(/'kubernetes\.host' is http:\/\/: .*bearer token/));
    expect(warnings).toContainEqual(
      expect.stringMatching(/'tokenReview\.endpoint' is http:\/\/: .*reviewer credential/),
    );
    expect(warnings).toContainEqual(
      expect.stringMatching(/'openBao\.address' is http:\/\/: the bridge's OpenBao token/),
    );
  });

  it('warns about a shared plain-http OpenBao once per provider, not once per cluster', () => {
    const stack = newStack();
    for (const [id, fingerprint] of [
      ['eu-1', 'c1000000-0000-4000-8000-000000000001'],
      ['eu-2', 'c1000000-0000-4000-8000-000000000002'],
      ['eu-3', 'c1000000-0000-4000-8000-000000000003'],
    ]) {
      new RegisteredCluster(stack, id, {
        secretStore: { address: 'http://openbao.example.eu:8200' },
        beacon: { address: 'beacon.example.com:443' },
        fingerprint,
        operator: OperatorInstall.deployedElsewhere(),
      });
    }
    const warnings = annotationsOf(stack, 'warn').filter((w) =>
      w.includes("'secretStore.address' is http://"),
    );
    expect(warnings).toEqual([expect.stringMatching(/one provider serves every construct of this stack/)]);
  });
});

function cluster(overrides: object) {
  return new RegisteredCluster(newStack(), 'eu', {
    secretStore: { address: 'https://openbao.example.eu:8200' },
    beacon: { address: 'beacon.example.com:443' },
    kubernetes,
    ...overrides,
  });
}
