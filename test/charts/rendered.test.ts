/**
 * The charts as Kubernetes receives them: each is rendered (test/charts/helm-template.ts plays `helm template`)
 * with its defaults, its example values and the combinations of its switches, and the objects are checked for
 * what a cluster needs to run them: RBAC exactly as the code calls it, Service ports that reach listening
 * ports, names Kubernetes accepts, addresses that match what is served, flags the CLI has.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SHARD_LEASE_CALLS } from '../../runtime/bridge/shards.js';
import { buildProgram } from '../../runtime/cli/program.js';
import { parseListenAddress } from '../../runtime/core/health-server.js';
import {
  isResourcePermission,
  KUBE_CALLS,
  OPERATOR_CALLS,
  type OperatorFeatures,
  operatorKubeAccess,
  type ResourcePermission,
} from '../../runtime/kube/permissions.js';
import { reviewPod } from '../../runtime/webhook/admission.js';
import { CHART_NAMES, CHARTS_DIR, type ChartName, readChart } from './chart-files.js';
import { mergeValues, type RenderedChart } from './helm-template.js';
import {
  CLUSTER_SCOPED_KINDS,
  containerArgs,
  deepMerge,
  flagValues,
  type K8sObject,
  objectsOf,
  only,
  RELEASE_NAMESPACE,
  REQUIRED_VALUES,
  render,
} from './render.js';
import { validateValues } from './values-schema.js';

// ---- RBAC: what the chart grants = what the operator calls ---------------------------------------------------

/** One normalised RBAC grant: `verb group/resource in <namespace|*> on <names|*>`. */
function grantsOf(rendered: RenderedChart, serviceAccount: { namespace: string; name: string }): string[] {
  const roles = new Map<string, K8sObject>();
  for (const role of [...objectsOf(rendered, 'Role'), ...objectsOf(rendered, 'ClusterRole')])
    roles.set(`${role.kind}/${role.metadata.namespace ?? ''}/${role.metadata.name}`, role);
  const grants: string[] = [];
  for (const binding of [
    ...objectsOf(rendered, 'RoleBinding'),
    ...objectsOf(rendered, 'ClusterRoleBinding'),
  ]) {
    const bound = binding.subjects.some(
      (s: K8sObject) =>
        s.kind === 'ServiceAccount' &&
        s.name === serviceAccount.name &&
        s.namespace === serviceAccount.namespace,
    );
    if (!bound) continue;
    const roleNamespace = binding.roleRef.kind === 'Role' ? binding.metadata.namespace : '';
    const role = roles.get(`${binding.roleRef.kind}/${roleNamespace}/${binding.roleRef.name}`);
    expect(role, `${binding.kind} ${binding.metadata.name} refers to a role the chart renders`).toBeDefined();
    const where = binding.kind === 'RoleBinding' ? binding.metadata.namespace : '*';
    for (const rule of role.rules) {
      for (const verb of rule.verbs)
        for (const group of rule.apiGroups)
          for (const resource of rule.resources)
            grants.push(grant(verb, group, resource, where, rule.resourceNames));
    }
  }
  return grants.sort();
}

function grant(
  verb: string,
  group: string,
  resource: string,
  where: string,
  names?: readonly string[],
): string {
  return `${verb} ${group || 'core'}/${resource} in ${where} on ${names ? [...names].sort().join(',') : '*'}`;
}

function expectedGrants(features: OperatorFeatures): string[] {
  return operatorKubeAccess(features)
    .map((g) => {
      const permission = KUBE_CALLS[g.call] as ResourcePermission;
      const where = permission.scope === 'cluster' ? '*' : (g.namespace ?? '*');
      return grant(permission.verb, permission.group, permission.resource, where, g.resourceNames);
    })
    .sort();
}

function trustRecordOf(flag: string | undefined): OperatorFeatures['trustRecord'] {
  if (flag === undefined) return undefined;
  const [namespace, name] = flag.split('/');
  return { namespace: namespace!, name: name! };
}

const OPERATOR_COMBINATIONS: Array<[string, Record<string, unknown>]> = [
  ['the defaults (attestation on, the operator keeps the webhook caBundle)', {}],
  ['attestation off', { operator: { broker: { attestation: { enabled: false } } } }],
  ['migration in every namespace', { operator: { migration: { enabled: true } } }],
  [
    'migration in two namespaces',
    { operator: { migration: { enabled: true, namespaces: ['team-a', 'team-b'] } } },
  ],
  [
    'webhook certificate from a Secret (caBundle kept by cert-manager)',
    {
      webhook: {
        tls: { secretName: 'hook-tls' },
        annotations: { 'cert-manager.io/inject-ca-from': 'ops/hook-tls' },
      },
    },
  ],
  [
    'everything on, another service account name, another release',
    {
      operator: { migration: { enabled: true, namespaces: ['default'] } },
      serviceAccount: { name: 'ops-broker' },
    },
  ],
];

describe('operator RBAC is exactly what the operator calls (runtime/kube/permissions.ts)', () => {
  it.each(OPERATOR_COMBINATIONS)('with %s', (_name, values) => {
    const release = { name: 'ct', namespace: 'ops' };
    const rendered = render('cloudtaser', values, release);
    const deployment = only(rendered, 'Deployment');
    const args = containerArgs(deployment);
    const serviceAccount = { namespace: 'ops', name: deployment.spec.template.spec.serviceAccountName };
    const merged = rendered.values as K8sObject;
    const webhookConfiguration = flagValues(args, '--webhook-configuration')[0];
    if (webhookConfiguration !== undefined)
      expect(webhookConfiguration).toBe(only(rendered, 'MutatingWebhookConfiguration').metadata.name);
    const features: OperatorFeatures = {
      attestation: args.includes('--attestation')
        ? { namespace: serviceAccount.namespace, serviceAccount: serviceAccount.name }
        : undefined,
      webhookConfiguration,
      migration: args.includes('--migrate')
        ? { namespaces: flagValues(args, '--migrate-namespace') }
        : undefined,
      trustRecord: trustRecordOf(flagValues(args, '--trust-record')[0]),
    };
    // The broker records its CA in the ConfigMap the chart creates, under that name.
    expect(features.trustRecord).toEqual({
      namespace: 'ops',
      name: objectsOf(rendered, 'ConfigMap').find((c) => c.metadata.name.endsWith('-trust'))?.metadata.name,
    });
    // The switches reach the process as the values say.
    expect(features.attestation !== undefined).toBe(merged.operator.broker.attestation.enabled);
    expect(features.migration !== undefined).toBe(merged.operator.migration.enabled);
    expect(features.webhookConfiguration === undefined).toBe(merged.webhook.tls.secretName !== '');
    expect(grantsOf(rendered, serviceAccount)).toEqual(expectedGrants(features));
  });

  it('declares a resource permission for every call the operator makes, and no wildcard', () => {
    for (const call of OPERATOR_CALLS) expect(isResourcePermission(KUBE_CALLS[call]), call).toBe(true);
    const all = operatorKubeAccess({
      attestation: { namespace: 'n', serviceAccount: 's' },
      webhookConfiguration: 'w',
      migration: {},
      trustRecord: { namespace: 'n', name: 't' },
    }).map((g) => g.call);
    expect(new Set(all)).toEqual(new Set(OPERATOR_CALLS));
    const rendered = render('cloudtaser', { operator: { migration: { enabled: true } } });
    expect(JSON.stringify(rendered.objects)).not.toMatch(/"\*"/);
  });

  it('lets migration record Events (create events) next to list and delete on Secrets, and nothing more on Secrets', () => {
    const rendered = render('cloudtaser', {
      operator: { migration: { enabled: true, namespaces: ['default'] } },
    });
    const role = objectsOf(rendered, 'Role').find((r) => r.metadata.namespace === 'default');
    expect(role.rules).toEqual([
      { apiGroups: [''], resources: ['secrets'], verbs: ['list', 'delete'] },
      { apiGroups: [''], resources: ['events'], verbs: ['create'] },
    ]);
  });
});

// ---- names, uniqueness, ports --------------------------------------------------------------------------------

const LONG_RELEASE = 'a-release-name-that-is-as-long-as-helm-allows-53chars'; // 53 characters, Helm's limit

describe.each(CHART_NAMES)('chart %s rendered', (chartName) => {
  it('keeps every object name within 63 characters with the longest release name Helm allows', () => {
    expect(LONG_RELEASE).toHaveLength(53);
    // With the switches that add objects on (the bridge's sharding Role and RoleBinding were 70 characters).
    const optional: Record<string, Record<string, unknown>> = {
      'cloudtaser-bridge': { sharding: { enabled: true } },
    };
    const rendered = render(chartName, optional[chartName] ?? {}, {
      name: LONG_RELEASE,
      namespace: 'a-namespace-with-a-long-name-too',
    });
    for (const object of rendered.objects) {
      expect(object.metadata.name.length, `${object.kind} ${object.metadata.name}`).toBeLessThanOrEqual(63);
      expect(object.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    }
    // Suffixed names stay distinct after shortening.
    const names = rendered.objects.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`);
    expect(new Set(names).size).toBe(names.length);
  });

  it('names cluster-scoped objects per release, so another name or namespace never collides', () => {
    const clusterNames = (release: { name: string; namespace: string }) =>
      render(chartName, {}, release)
        .objects.filter((o) => CLUSTER_SCOPED_KINDS.has(o.kind))
        .map((o) => `${o.kind}/${o.metadata.name}`);
    const a = clusterNames({ name: 'cloudtaser', namespace: 'team-a' });
    const b = clusterNames({ name: 'cloudtaser', namespace: 'team-b' });
    const c = clusterNames({ name: 'other', namespace: 'team-a' });
    const d = clusterNames({ name: LONG_RELEASE, namespace: 'team-a-with-a-long-namespace-name' });
    const e = clusterNames({ name: LONG_RELEASE, namespace: 'team-b-with-a-long-namespace-name' });
    for (const [x, y] of [
      [a, b],
      [a, c],
      [d, e],
    ])
      for (const name of x) expect(y).not.toContain(name);
  });

  it('points every Service port at a port a container listens on (headless Services on the same number)', () => {
    const rendered = render(chartName);
    const deployments = objectsOf(rendered, 'Deployment');
    for (const service of objectsOf(rendered, 'Service')) {
      const pods = deployments.filter((d) =>
        Object.entries(service.spec.selector).every(([k, v]) => d.spec.template.metadata.labels[k] === v),
      );
      expect(pods.length, `Service ${service.metadata.name} selects a Deployment`).toBe(1);
      const containerPorts = pods[0].spec.template.spec.containers.flatMap((c: K8sObject) => c.ports ?? []);
      for (const port of service.spec.ports) {
        const target = containerPorts.find((p: K8sObject) =>
          typeof port.targetPort === 'string'
            ? p.name === port.targetPort
            : p.containerPort === port.targetPort,
        );
        expect(target, `${service.metadata.name}:${port.port} -> ${port.targetPort}`).toBeDefined();
        if (service.spec.clusterIP === 'None') expect(port.port).toBe(target.containerPort);
      }
    }
  });

  it('listens on ports of 1024 or above (the processes run as uid 65532) and its schema refuses lower ones', () => {
    const rendered = render(chartName);
    for (const deployment of objectsOf(rendered, 'Deployment'))
      for (const container of deployment.spec.template.spec.containers)
        for (const port of container.ports) expect(port.containerPort).toBeGreaterThanOrEqual(1024);
    const chart = readChart(chartName);
    const portPaths = {
      cloudtaser: ['operator.healthPort', 'operator.webhookPort', 'operator.podApiPort'],
      'cloudtaser-beacon': ['beacon.port', 'beacon.metricsPort'],
      'cloudtaser-bridge': ['bridge.metricsPort', 'bridge.tokenReview.port'],
    }[chartName];
    for (const path of portPaths) {
      const values = deepMerge(deepMerge(chart.values, REQUIRED_VALUES[chartName]), dotted(path, 443));
      expect(
        validateValues(chart.schema, values).map((p) => p.path),
        path,
      ).toContain(path);
    }
  });

  it('runs a command and flags that exist in cloudtaser-cli, plus extraArgs and extraEnv as given', () => {
    const extra = {
      cloudtaser: 'operator',
      'cloudtaser-beacon': 'beacon',
      'cloudtaser-bridge': 'bridge',
    }[chartName];
    const rendered = render(chartName, {
      [extra]: {
        extraArgs: ['--log-level-probe'],
        extraEnv: [{ name: 'HTTPS_PROXY', value: 'http://proxy:3128' }],
      },
      image: { digest: `sha256:${'b'.repeat(64)}` },
    });
    const container = only(rendered, 'Deployment').spec.template.spec.containers[0];
    expect(container.image).toMatch(new RegExp(`@sha256:${'b'.repeat(64)}$`));
    expect(container.args.at(-1)).toBe('--log-level-probe');
    expect(container.env).toContainEqual({ name: 'HTTPS_PROXY', value: 'http://proxy:3128' });
    for (const values of [{}, readChart(chartName).exampleValues]) {
      const [group, verb, ...flags] = containerArgs(only(render(chartName, values), 'Deployment'));
      const command = buildProgram()
        .commands.find((c) => c.name() === group)
        ?.commands.find((c) => c.name() === verb);
      expect(command, `cloudtaser-cli ${group} ${verb}`).toBeDefined();
      const known = new Set(command!.options.map((o) => o.long));
      for (const flag of flags) expect(known, `${group} ${verb} ${flag}`).toContain(flag.split('=')[0]);
    }
  });

  it('installs its example values on an empty cluster: no object in a namespace that may not exist, no reference to a Secret or ConfigMap it does not create', () => {
    const chart = readChart(chartName);
    expect(validateValues(chart.schema, deepMerge(chart.values, chart.exampleValues))).toEqual([]);
    const rendered = render(chartName, chart.exampleValues);
    const always = new Set([RELEASE_NAMESPACE, 'default', 'kube-system']);
    for (const object of rendered.objects)
      if (object.metadata.namespace !== undefined)
        expect(always, `${object.kind} ${object.metadata.name}`).toContain(object.metadata.namespace);
    const created = new Set(
      rendered.objects
        .filter((o) => o.kind === 'Secret' || o.kind === 'ConfigMap')
        .map((o) => `${o.kind}/${o.metadata.name}`),
    );
    for (const reference of podReferences(rendered)) expect(created, reference).toContain(reference);
  });

  it('spreads multi-replica pods over nodes and zones by default, and takes priorityClassName', () => {
    const rendered = render(chartName, { priorityClassName: 'cloudtaser-critical' });
    const spec = only(rendered, 'Deployment').spec.template.spec;
    expect(spec.priorityClassName).toBe('cloudtaser-critical');
    if (chartName === 'cloudtaser') return; // one replica by design
    expect(spec.topologySpreadConstraints.map((c: K8sObject) => c.topologyKey)).toEqual([
      'kubernetes.io/hostname',
      'topology.kubernetes.io/zone',
    ]);
    for (const constraint of spec.topologySpreadConstraints) {
      expect(constraint.whenUnsatisfiable).toBe('ScheduleAnyway');
      expect(constraint.labelSelector.matchLabels).toEqual(
        only(rendered, 'Deployment').spec.selector.matchLabels,
      );
    }
  });

  it('names in values.yaml the command its Deployment runs', () => {
    const [group, verb] = containerArgs(only(render(chartName), 'Deployment'));
    const comment = /runs `cloudtaser-cli ([a-z]+ [a-z-]+)`/.exec(
      readFileSync(join(CHARTS_DIR, chartName, 'values.yaml'), 'utf8'),
    );
    expect(comment?.[1]).toBe(`${group} ${verb}`);
  });

  it('ships a .helmignore', () => {
    expect(readFileSync(join(CHARTS_DIR, chartName, '.helmignore'), 'utf8')).toMatch(/^\.git\/$/m);
  });
});

describe('chart cloudtaser (operator) rendered', () => {
  it('replaces its pod with Recreate, so two brokers never run at once', () => {
    expect(only(render('cloudtaser'), 'Deployment').spec.strategy).toEqual({ type: 'Recreate' });
  });

  it('says in NOTES what the webhook does while the pod is replaced, and whether a restart needs a re-arm', () => {
    const fail = render('cloudtaser').notes;
    expect(fail).toMatch(/Recreate[\s\S]*labelled pods created meanwhile are refused/);
    expect(fail).toMatch(/bootstraps again on its own \(service account cloudtaser-system\/cloudtaser\)/);
    const ignore = render('cloudtaser', {
      webhook: { failurePolicy: 'Ignore' },
      operator: { broker: { attestation: { enabled: false } } },
    }).notes;
    expect(ignore).toMatch(/start WITHOUT their secrets/);
    expect(ignore).toMatch(/needs a re-arm/);
  });

  it('runs the broker with attestation by default as the release service account, whatever the release is called', () => {
    const rendered = render('cloudtaser', {}, { name: 'ops', namespace: 'platform' });
    const deployment = only(rendered, 'Deployment');
    expect(containerArgs(deployment)).toContain('--attestation');
    const env = deployment.spec.template.spec.containers[0].env;
    expect(env).toContainEqual({
      name: 'SERVICE_ACCOUNT_NAME',
      valueFrom: { fieldRef: { fieldPath: 'spec.serviceAccountName' } },
    });
    expect(env).toContainEqual({
      name: 'POD_NAMESPACE',
      valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } },
    });
    // The pod's own name for the broker's /status `pod` (source doctor names the pod holding the tunnel); the host
    // name it falls back to differs when a pod sets spec.hostname.
    expect(env).toContainEqual({
      name: 'POD_NAME',
      valueFrom: { fieldRef: { fieldPath: 'metadata.name' } },
    });
    expect(deployment.spec.template.spec.serviceAccountName).toBe(
      only(rendered, 'ServiceAccount').metadata.name,
    );
    expect(deployment.spec.template.spec.serviceAccountName).toBe('ops-cloudtaser');
  });

  it('sends the webhook only pods it injects: webhook.objectSelector keeps the cloudtaser.io/inject=true label, matchExpressions narrow it', () => {
    const { schema, values: defaults } = readChart('cloudtaser');
    // Helm's merge: a null removes the default key, as `--set webhook.objectSelector.matchLabels...=null` does.
    const problems = (objectSelector: unknown) =>
      validateValues(
        schema,
        mergeValues(deepMerge(defaults, REQUIRED_VALUES.cloudtaser), { webhook: { objectSelector } }),
      ).map((p) => p.path);
    const label = 'webhook.objectSelector.matchLabels.cloudtaser.io/inject';
    // Another opt-in label sent pods the webhook admitted untouched: they started without their secrets.
    expect(
      problems({ matchLabels: { 'cloudtaser.io/inject': null, 'secrets.example.com/openbao': 'enabled' } }),
    ).toEqual([label, 'webhook.objectSelector.matchLabels.secrets.example.com/openbao']);
    expect(problems({ matchLabels: { 'cloudtaser.io/inject': 'yes' } })).toEqual([label]);
    expect(
      problems({ matchExpressions: [{ key: 'cloudtaser.io/inject', operator: 'NotIn', values: ['true'] }] }),
    ).toEqual(['webhook.objectSelector.matchExpressions.0.key']);

    const narrowed = { matchExpressions: [{ key: 'team', operator: 'In', values: ['payments'] }] };
    expect(problems(narrowed)).toEqual([]);
    const rendered = render('cloudtaser', { webhook: { objectSelector: narrowed } });
    const selector = only(rendered, 'MutatingWebhookConfiguration').webhooks[0].objectSelector;
    expect(rendered.notes).toContain('Pods opt in with the label cloudtaser.io/inject=true');
    // A pod the API server sends (it matches the rendered selector) is a pod the webhook injects.
    const labels: Record<string, string> = { ...selector.matchLabels };
    for (const e of selector.matchExpressions) labels[e.key] = e.values[0];
    const pod = {
      metadata: { name: 'app', labels, annotations: { 'cloudtaser.io/secret-db': 'app/db' } },
      spec: { containers: [{ name: 'app', image: 'app:1' }] },
    };
    const state = {
      connected: true,
      podApiUrl: 'https://cloudtaser.cloudtaser-system.svc:8443',
      podApiCaPem: 'CA',
    };
    const response = reviewPod('u', { kind: { kind: 'Pod' }, operation: 'CREATE', object: pod }, state, {
      image: 'ghcr.io/cloudtaser/cloudtaser-operator:test',
    });
    expect(response.patch).toBeDefined();
  });

  it('keeps kube-system and its own namespace out of the webhook whatever namespaceSelector adds', () => {
    const exclusion = {
      key: 'kubernetes.io/metadata.name',
      operator: 'NotIn',
      values: ['kube-system', RELEASE_NAMESPACE],
    };
    const selectorOf = (values: Record<string, unknown>) =>
      only(render('cloudtaser', values), 'MutatingWebhookConfiguration').webhooks[0].namespaceSelector;
    expect(selectorOf({})).toEqual({ matchExpressions: [exclusion] });
    // Before: a selector of the user's own replaced the exclusion, so the webhook intercepted kube-system and
    // the operator's namespace (its own pod could then never start under failurePolicy Fail).
    const narrowing = { key: 'env', operator: 'NotIn', values: ['dev'] };
    expect(
      selectorOf({
        webhook: { namespaceSelector: { matchLabels: { team: 'a' }, matchExpressions: [narrowing] } },
      }),
    ).toEqual({ matchLabels: { team: 'a' }, matchExpressions: [exclusion, narrowing] });
  });

  it('refuses a webhook certificate from a Secret that nothing gives the API server the CA of', () => {
    const tls = { tls: { secretName: 'webhook-tls' } };
    expect(() => render('cloudtaser', { webhook: tls })).toThrow('nothing gives the API server the CA');
    const withBundle = render('cloudtaser', { webhook: { ...tls, caBundle: 'Q0E=' } });
    expect(only(withBundle, 'MutatingWebhookConfiguration').webhooks[0].clientConfig.caBundle).toBe('Q0E=');
    const injected = { 'cert-manager.io/inject-ca-from': `${RELEASE_NAMESPACE}/webhook` };
    expect(() => render('cloudtaser', { webhook: { ...tls, annotations: injected } })).not.toThrow();
  });

  it('refuses ports that collide on the Service or in the pod', () => {
    expect(() => render('cloudtaser', { service: { port: 8200 } })).toThrow(
      "service.port (8200), operator.podApiPort (8200) and operator.healthPort (8081) are the Service's three ports",
    );
    expect(() => render('cloudtaser', { operator: { healthPort: 9443 } })).toThrow(
      'operator.webhookPort (9443), operator.healthPort (9443) and operator.podApiPort (8200) must differ',
    );
    expect(() => render('cloudtaser', { operator: { webhookPort: 9444 } })).not.toThrow();
  });

  it('calls the webhook through the Service port that reaches the webhook container port', () => {
    const rendered = render('cloudtaser', { service: { port: 8443 } });
    const hook = only(rendered, 'MutatingWebhookConfiguration').webhooks[0].clientConfig.service;
    const service = only(rendered, 'Service');
    expect(hook.name).toBe(service.metadata.name);
    expect(service.spec.ports.find((p: K8sObject) => p.port === hook.port).targetPort).toBe('webhook');
  });
});

describe('chart cloudtaser-beacon rendered', () => {
  it('prints in NOTES the headless address bridges dial, on the port the pods listen on, whatever service.port is', () => {
    const rendered = render('cloudtaser-beacon', { service: { port: 4443 }, beacon: { port: 9443 } });
    const headless = objectsOf(rendered, 'Service').find((s) => s.spec.clusterIP === 'None');
    const address = `${headless.metadata.name}.${RELEASE_NAMESPACE}.svc:${headless.spec.ports[0].port}`;
    expect(rendered.notes).toContain(`dial every replica:  ${address}`);
    expect(address).toBe('cloudtaser-beacon-headless.cloudtaser-system.svc:9443');
  });

  it('drains inside the pod grace period: --relay-grace from beacon.relayGrace, and a grace too short is refused', () => {
    const pod = (values: Record<string, unknown> = {}) =>
      only(render('cloudtaser-beacon', values), 'Deployment').spec.template.spec;
    const byDefault = pod();
    expect(byDefault.containers[0].args).toEqual(
      expect.arrayContaining(['--shutdown-delay=5s', '--relay-grace=15s']),
    );
    expect(byDefault.terminationGracePeriodSeconds).toBe(30);
    const longer = pod({ beacon: { relayGrace: '50s' }, terminationGracePeriodSeconds: 60 });
    expect(longer.containers[0].args).toContain('--relay-grace=50s');
    expect(longer.terminationGracePeriodSeconds).toBe(60);
    // 5 s + 25 s is the whole default grace: Kubernetes would kill the pod while tunnels still move.
    expect(() => pod({ beacon: { relayGrace: '25s' } })).toThrow(
      /beacon\.relayGrace \(25s\) plus the 5 s shutdown delay must stay below terminationGracePeriodSeconds \(30\)/,
    );
    const { schema, values: defaults } = readChart('cloudtaser-beacon');
    expect(
      validateValues(schema, deepMerge(defaults, { beacon: { relayGrace: '1m' } })).map((p) => p.path),
    ).toEqual(['beacon.relayGrace']);
  });

  it('keeps a PodDisruptionBudget over its replicas', () => {
    const pdb = only(render('cloudtaser-beacon', { replicas: 3 }), 'PodDisruptionBudget');
    expect(pdb.spec.minAvailable).toBe(1);
    expect(objectsOf(render('cloudtaser-beacon', { replicas: 1 }), 'PodDisruptionBudget')).toEqual([]);
  });

  it('makes a generated certificate valid for the headless name bridges dial (NOTES) and the Service names, besides tls.generate.dnsNames', () => {
    const sans = (values: Record<string, unknown>, release: { name: string; namespace: string }) => {
      const rendered = render('cloudtaser-beacon', values, release);
      const cert = new X509Certificate(Buffer.from(only(rendered, 'Secret').data['tls.crt'], 'base64'));
      const headless = /dial every replica:\s+(\S+):\d+/.exec(rendered.notes)![1]!;
      return { cert, headless };
    };
    const byDefault = sans({ tls: { generate: { enabled: true } } }, { name: 'edge', namespace: 'relay' });
    expect(byDefault.headless).toBe('edge-cloudtaser-beacon-headless.relay.svc');
    // Bridges verify the outer TLS against the host they dial: without it every bridge failed the handshake.
    for (const host of [
      byDefault.headless,
      `${byDefault.headless}.cluster.local`,
      'edge-cloudtaser-beacon.relay.svc',
      'edge-cloudtaser-beacon.relay.svc.cluster.local',
      'cloudtaser-beacon',
    ])
      expect(byDefault.cert.checkHost(host), `${host} in ${byDefault.cert.subjectAltName}`).toBe(host);
    const custom = sans(
      { tls: { generate: { enabled: true, dnsNames: ['beacon.example.com'] } } },
      { name: 'cloudtaser-beacon', namespace: 'cloudtaser-system' },
    );
    expect(custom.cert.subject).toMatch(/^CN=beacon\.example\.com$/m);
    for (const host of ['beacon.example.com', custom.headless, 'cloudtaser-beacon.cloudtaser-system.svc'])
      expect(custom.cert.checkHost(host), `${host} in ${custom.cert.subjectAltName}`).toBe(host);
    // A certificate the user brings must carry the headless name too: NOTES say which.
    expect(render('cloudtaser-beacon').notes).toMatch(
      /must name the headless Service bridges dial, cloudtaser-beacon-headless\.cloudtaser-system\.svc/,
    );
  });

  it('scales with a HorizontalPodAutoscaler (autoscaling/v2) when autoscaling.enabled, and leaves spec.replicas to it', () => {
    const { schema, values: defaults } = readChart('cloudtaser-beacon');
    const problems = (autoscaling: unknown) =>
      validateValues(schema, deepMerge(defaults, { autoscaling })).map((p) => p.path);
    const off = render('cloudtaser-beacon');
    expect(objectsOf(off, 'HorizontalPodAutoscaler')).toEqual([]);
    expect(only(off, 'Deployment').spec.replicas).toBe(2);

    expect(problems({ enabled: true })).toEqual([]);
    const cpu = render('cloudtaser-beacon', { autoscaling: { enabled: true } });
    const deployment = only(cpu, 'Deployment');
    // With replicas in the manifest, every `helm upgrade` snapped an HPA-scaled beacon back (a reconnect storm).
    expect(deployment.spec.replicas).toBeUndefined();
    const hpa = only(cpu, 'HorizontalPodAutoscaler');
    expect(hpa.apiVersion).toBe('autoscaling/v2');
    expect(hpa.spec).toEqual({
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name },
      minReplicas: 2,
      maxReplicas: 10,
      metrics: [
        {
          type: 'Resource',
          resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } },
        },
      ],
    });
    expect(cpu.notes).toMatch(/^cloudtaser beacon \S+: 2 to 10 replicas \(HorizontalPodAutoscaler\)/);

    // docs/scaling.md: a Pods metric on the beacon's own connections, from a Prometheus adapter.
    const connections = {
      type: 'Pods',
      pods: {
        metric: { name: 'cloudtaser_beacon_connections' },
        target: { type: 'AverageValue', averageValue: '14000' },
      },
    };
    const behavior = { scaleDown: { stabilizationWindowSeconds: 600 } };
    const custom = { enabled: true, minReplicas: 3, maxReplicas: 20, metrics: [connections], behavior };
    expect(problems(custom)).toEqual([]);
    const scaled = only(render('cloudtaser-beacon', { autoscaling: custom }), 'HorizontalPodAutoscaler').spec;
    expect(scaled).toMatchObject({ minReplicas: 3, maxReplicas: 20, metrics: [connections], behavior });

    expect(problems({ metrics: [{ type: 'Pod', pods: {} }] })).toEqual(['autoscaling.metrics.0.type']);
    expect(problems({ metrics: [{ type: 'Pods', pod: {} }] })).toEqual(['autoscaling.metrics.0.pod']);
    expect(problems({ minReplicas: 0 })).toEqual(['autoscaling.minReplicas']);
    expect(() =>
      render('cloudtaser-beacon', { autoscaling: { enabled: true, minReplicas: 5, maxReplicas: 3 } }),
    ).toThrow('autoscaling.minReplicas (5) is above autoscaling.maxReplicas (3)');
  });

  it('checks podDisruptionBudget.minAvailable against autoscaling.minReplicas when the HPA owns the count', () => {
    const budget = (minReplicas: number) =>
      render('cloudtaser-beacon', {
        replicas: 5,
        autoscaling: { enabled: true, minReplicas, maxReplicas: 10 },
        podDisruptionBudget: { minAvailable: 2 },
      });
    expect(() => budget(2)).toThrow(
      'podDisruptionBudget.minAvailable (2) must be below autoscaling.minReplicas (2): a budget that allows no disruption blocks every node drain',
    );
    expect(only(budget(3), 'PodDisruptionBudget').spec.minAvailable).toBe(2);
    expect(objectsOf(budget(1), 'PodDisruptionBudget')).toEqual([]);
  });

  it('makes its own self-signed TLS Secret only when asked, and mounts whichever Secret it names', () => {
    expect(objectsOf(render('cloudtaser-beacon'), 'Secret')).toEqual([]);
    const rendered = render('cloudtaser-beacon', {
      tls: { generate: { enabled: true, dnsNames: ['beacon.test'] } },
    });
    const secret = only(rendered, 'Secret');
    expect(secret.type).toBe('kubernetes.io/tls');
    expect(Buffer.from(secret.data['tls.crt'], 'base64').toString()).toContain('BEGIN CERTIFICATE');
    const volume = only(rendered, 'Deployment').spec.template.spec.volumes.find((v: K8sObject) => v.secret);
    expect(volume.secret.secretName).toBe(secret.metadata.name);
  });
});

describe('chart cloudtaser-bridge rendered', () => {
  it('passes --openbao-forwarded-for only when bridge.openbao.forwardedFor is set', () => {
    const args = (forwardedFor?: boolean) =>
      containerArgs(
        only(
          render(
            'cloudtaser-bridge',
            forwardedFor === undefined ? {} : { bridge: { openbao: { forwardedFor } } },
          ),
          'Deployment',
        ),
      );
    expect(args()).not.toContain('--openbao-forwarded-for');
    expect(args(false)).not.toContain('--openbao-forwarded-for');
    expect(args(true)).toContain('--openbao-forwarded-for');
  });

  it('serves TokenReview on a Service OpenBao reaches over HTTPS, prints that endpoint, and finds peers through a headless Service', () => {
    const rendered = render('cloudtaser-bridge', {}, { name: 'bridge', namespace: 'openbao' });
    const deployment = only(rendered, 'Deployment');
    const args = containerArgs(deployment);
    const services = objectsOf(rendered, 'Service');
    const endpointService = services.find((s) => s.metadata.name === 'bridge-cloudtaser-bridge');
    const port = endpointService.spec.ports.find((p: K8sObject) => p.targetPort === 'tokenreview').port;
    const endpoint = `https://${endpointService.metadata.name}.openbao.svc:${port}`;
    expect(rendered.notes).toContain(`--tokenreview-endpoint ${endpoint}`);
    // The serving certificate carries the name OpenBao dials.
    expect(flagValues(args, '--tokenreview-dns-name')).toContain(
      `${endpointService.metadata.name}.openbao.svc`,
    );
    const peers = services.find((s) => s.spec.clusterIP === 'None');
    expect(flagValues(args, '--tokenreview-peers')).toEqual([
      `${peers.metadata.name}.openbao.svc:${peers.spec.ports[0].port}`,
    ]);
    expect(args.some((a) => a.startsWith('--tokenreview-plain-http'))).toBe(false);
    // Its own A-record among the peers (the bridge reads POD_IP): a replica does not ask itself, and with sharding
    // its member Lease says where it is.
    expect(deployment.spec.template.spec.containers[0].env).toContainEqual({
      name: 'POD_IP',
      valueFrom: { fieldRef: { fieldPath: 'status.podIP' } },
    });
  });

  it("prints in NOTES how to run source doctor with every bridge pod, selecting the Deployment's pods on their probe port", () => {
    const rendered = render('cloudtaser-bridge', {}, { name: 'bridge', namespace: 'openbao' });
    const deployment = only(rendered, 'Deployment');
    const labels = deployment.spec.selector.matchLabels as Record<string, string>;
    const selector = Object.entries(labels)
      .map(([key, value]) => `${key}=${value}`)
      .sort();
    const printed = /get pods -l (\S+)/.exec(rendered.notes)![1]!.split(',').sort();
    expect(printed).toEqual(selector);
    const probePort = deployment.spec.template.spec.containers[0].ports.find(
      (p: K8sObject) => p.name === 'metrics',
    ).containerPort;
    expect(rendered.notes).toContain(`port-forward pod/<first pod> 19090:${probePort}`);
    expect(rendered.notes).toContain(
      '--bridge-health-url http://127.0.0.1:19090 --bridge-health-url http://127.0.0.1:19091',
    );
  });

  it('admits only OpenBao and its own replicas to the TokenReview port (NetworkPolicy), with a configurable OpenBao selector', () => {
    const rendered = render('cloudtaser-bridge', {
      networkPolicy: {
        openbao: {
          podSelector: { matchLabels: { app: 'vault' } },
          namespaceSelector: { matchLabels: { team: 'sec' } },
        },
      },
    });
    const policy = only(rendered, 'NetworkPolicy');
    expect(policy.spec.podSelector.matchLabels).toEqual(
      only(rendered, 'Deployment').spec.selector.matchLabels,
    );
    const review = policy.spec.ingress.find((r: K8sObject) => r.ports[0].port === 'tokenreview');
    expect(review.from).toEqual([
      { podSelector: { matchLabels: only(rendered, 'Deployment').spec.selector.matchLabels } },
      { podSelector: { matchLabels: { app: 'vault' } }, namespaceSelector: { matchLabels: { team: 'sec' } } },
    ]);
    expect(
      objectsOf(render('cloudtaser-bridge', { networkPolicy: { enabled: false } }), 'NetworkPolicy'),
    ).toEqual([]);
    // By default: the OpenBao Helm chart's pods in the release's own namespace (before: in every namespace, so
    // any pod that copied OpenBao's labels elsewhere was admitted); {} asks for every namespace explicitly.
    const byDefault = only(render('cloudtaser-bridge'), 'NetworkPolicy').spec.ingress[0].from[1];
    expect(byDefault).toEqual({ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'openbao' } } });
    const everywhere = only(
      render('cloudtaser-bridge', { networkPolicy: { openbao: { namespaceSelector: {} } } }),
      'NetworkPolicy',
    ).spec.ingress[0].from[1];
    expect(everywhere.namespaceSelector).toEqual({});
    expect(() => render('cloudtaser-bridge', { bridge: { metricsPort: 8444 } })).toThrow(
      'bridge.metricsPort and bridge.tokenReview.port are both 8444',
    );
  });

  it('with sharding on, grants exactly the Lease calls sharding makes, in its own namespace, and passes the shard flags and pod identity', () => {
    const off = render('cloudtaser-bridge', {}, { name: 'bridge', namespace: 'openbao' });
    expect(objectsOf(off, 'Role')).toEqual([]);
    expect(only(off, 'Deployment').spec.template.spec.automountServiceAccountToken).toBe(false);

    const rendered = render(
      'cloudtaser-bridge',
      { sharding: { enabled: true, shards: 32, replicasPerShard: 2 } },
      { name: 'bridge', namespace: 'openbao' },
    );
    const deployment = only(rendered, 'Deployment');
    const serviceAccount = { namespace: 'openbao', name: deployment.spec.template.spec.serviceAccountName };
    const expected = SHARD_LEASE_CALLS.map((call) => {
      const permission = KUBE_CALLS[call];
      return grant(permission.verb, permission.group, permission.resource, 'openbao');
    }).sort();
    expect(grantsOf(rendered, serviceAccount)).toEqual(expected);
    expect(deployment.spec.template.spec.automountServiceAccountToken).toBe(true);
    const args = containerArgs(deployment);
    expect(flagValues(args, '--shards')).toEqual(['32']);
    expect(flagValues(args, '--shard-replicas')).toEqual(['2']);
    expect(flagValues(args, '--shard-lease-prefix')).toEqual([deployment.metadata.name]);
    const env = deployment.spec.template.spec.containers[0].env;
    expect(env).toContainEqual({ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } });
    expect(env).toContainEqual({
      name: 'POD_NAMESPACE',
      valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } },
    });
    // The schema refuses what the CLI would refuse.
    const { schema, values: defaults } = readChart('cloudtaser-bridge');
    const withSharding = (sharding: unknown) =>
      deepMerge(deepMerge(defaults, REQUIRED_VALUES['cloudtaser-bridge']), { sharding });
    expect(validateValues(schema, withSharding({ enabled: true, shards: 16 }))).toEqual([]);
    for (const bad of [{ shards: 0 }, { replicasPerShard: 4 }, { shard: 3 }])
      expect(validateValues(schema, withSharding(bad)), JSON.stringify(bad)).not.toEqual([]);
  });

  it('asks in NOTES for the AppRole Secret only when the bridge logs in with AppRole', () => {
    const approle = render('cloudtaser-bridge').notes;
    expect(approle).toMatch(/AppRole credentials: Secret bridge-approle/);
    expect(approle).toMatch(/kubectl -n cloudtaser-system create secret generic bridge-approle/);
    const kubernetes = render(
      'cloudtaser-bridge',
      { bridge: { openbao: { auth: { method: 'kubernetes', approle: { secretName: '' } } } } },
      { name: 'bridge', namespace: 'openbao' },
    ).notes;
    expect(kubernetes).not.toMatch(/AppRole|CreateContainerConfigError|create secret/);
    expect(kubernetes).toMatch(
      /Kubernetes auth \(auth\/kubernetes, role cloudtaser-bridge\) with the projected token of service\s+account openbao\/bridge-cloudtaser-bridge/,
    );
  });

  it('takes the listener certificate from a Secret when named, mounted as a folder so renewals reach the process', () => {
    const rendered = render('cloudtaser-bridge', {
      bridge: { tokenReview: { tls: { secretName: 'tr-tls' } } },
    });
    const spec = only(rendered, 'Deployment').spec.template.spec;
    const args = containerArgs(only(rendered, 'Deployment'));
    expect(flagValues(args, '--tokenreview-tls-cert')).toEqual(['/etc/cloudtaser/tokenreview-tls/tls.crt']);
    expect(flagValues(args, '--tokenreview-tls-ca')).toEqual(['/etc/cloudtaser/tokenreview-tls/ca.crt']);
    const mount = spec.containers[0].volumeMounts.find((m: K8sObject) => m.name === 'tokenreview-tls');
    expect(mount.subPath).toBeUndefined();
    expect(spec.volumes).toContainEqual({ name: 'tokenreview-tls', secret: { secretName: 'tr-tls' } });
  });
});

describe.each(['cloudtaser-beacon', 'cloudtaser-bridge'] as const)(
  'chart %s PodDisruptionBudget',
  (chart) => {
    it('refuses, with a message naming both values, a budget that allows no disruption (minAvailable >= replicas blocks every drain)', () => {
      const budget = (replicas: number, minAvailable: number) =>
        render(chart, { replicas, podDisruptionBudget: { enabled: true, minAvailable } });
      expect(() => budget(2, 2)).toThrow(
        'podDisruptionBudget.minAvailable (2) must be below replicas (2): a budget that allows no disruption blocks every node drain',
      );
      expect(() => budget(3, 4)).toThrow('podDisruptionBudget.minAvailable (4) must be below replicas (3)');
      const pdb = only(budget(3, 2), 'PodDisruptionBudget');
      expect(3 - pdb.spec.minAvailable, 'disruptions allowed with every replica healthy').toBeGreaterThan(0);
      // One replica gets no budget at all, whatever minAvailable says.
      expect(objectsOf(budget(1, 1), 'PodDisruptionBudget')).toEqual([]);
    });
  },
);

/** The Kubernetes minor version that first serves each built-in API group/version the charts may render. */
const API_SINCE_MINOR: Record<string, number> = {
  v1: 0,
  'apps/v1': 9,
  'rbac.authorization.k8s.io/v1': 8,
  'networking.k8s.io/v1': 7,
  'admissionregistration.k8s.io/v1': 16,
  'policy/v1': 21,
  'autoscaling/v2': 23,
};
/** Custom resources of the Prometheus Operator: their CRDs, not the Kubernetes version, decide. */
const CRD_GROUPS = new Set(['monitoring.coreos.com/v1']);

describe('Kubernetes versions', () => {
  const readme = readFileSync(join(CHARTS_DIR, '../../README.md'), 'utf8');
  const row = readme.split('\n').find((l) => l.startsWith('| Kubernetes |'));
  const supported = Number(/\| Kubernetes \| >= 1\.(\d+)/.exec(row ?? '')?.[1]);
  const everythingOn: Record<ChartName, Record<string, unknown>> = {
    cloudtaser: { operator: { migration: { enabled: true } } },
    'cloudtaser-beacon': { autoscaling: { enabled: true }, tls: { generate: { enabled: true } } },
    'cloudtaser-bridge': { sharding: { enabled: true } },
  };

  it.each(CHART_NAMES)(
    'chart %s installs on the oldest Kubernetes the README supports: kubeVersion allows it and every API exists there',
    (chart) => {
      expect(supported).toBeGreaterThan(0);
      const kubeVersion = String(readChart(chart).chart.kubeVersion);
      // Helm refuses `helm install` below the chart's kubeVersion.
      expect(kubeVersion).toBe(`>=1.${supported}.0-0`);
      const apis = new Set(render(chart, everythingOn[chart]).objects.map((o) => String(o.apiVersion)));
      for (const api of apis) {
        if (CRD_GROUPS.has(api)) continue;
        expect(API_SINCE_MINOR[api], `${api} (add it to API_SINCE_MINOR)`).toBeDefined();
        expect(API_SINCE_MINOR[api], api).toBeLessThanOrEqual(supported);
      }
    },
  );
});

/** `Secret/<name>` and `ConfigMap/<name>` every pod of the chart refers to. */
function podReferences(rendered: RenderedChart): string[] {
  const references: string[] = [];
  for (const deployment of objectsOf(rendered, 'Deployment')) {
    const spec = deployment.spec.template.spec;
    for (const volume of spec.volumes ?? []) {
      if (volume.secret) references.push(`Secret/${volume.secret.secretName}`);
      if (volume.configMap) references.push(`ConfigMap/${volume.configMap.name}`);
    }
    for (const container of [...(spec.initContainers ?? []), ...spec.containers]) {
      for (const env of container.env ?? []) {
        if (env.valueFrom?.secretKeyRef) references.push(`Secret/${env.valueFrom.secretKeyRef.name}`);
        if (env.valueFrom?.configMapKeyRef)
          references.push(`ConfigMap/${env.valueFrom.configMapKeyRef.name}`);
      }
    }
  }
  return references;
}

function dotted(path: string, value: unknown): Record<string, unknown> {
  return path
    .split('.')
    .reverse()
    .reduce<unknown>((inner, key) => ({ [key]: inner }), value) as Record<string, unknown>;
}

describe('listeners on IPv6 single-stack clusters (EKS in IPv6 mode)', () => {
  const LISTEN_FLAGS = [
    '--listen',
    '--metrics-listen',
    '--pod-api-listen',
    '--webhook-listen',
    '--tokenreview-listen',
  ];
  it.each(CHART_NAMES)(
    'chart %s binds every port probes and Services reach on every address family',
    (chart) => {
      const args = containerArgs(only(render(chart), 'Deployment'));
      const listens = args.filter((arg) => LISTEN_FLAGS.some((flag) => arg.startsWith(`${flag}=`)));
      expect(listens.length).toBeGreaterThan(0);
      for (const arg of listens) {
        const [flag, value] = arg.split('=');
        // 0.0.0.0 is IPv4 only: on a pod with only an IPv6 address the kubelet's probes and every Service connection
        // were refused. An empty host is Node's unspecified address: `::` dual-stack, 0.0.0.0 where IPv6 is off.
        expect(parseListenAddress(value!, flag!).host, arg).toBe('');
      }
    },
  );
});

describe('rollouts', () => {
  it.each(CHART_NAMES)(
    'chart %s: the process says not-ready on SIGTERM and serves on for a shutdown delay inside the grace period',
    (chart) => {
      const deployment = only(render(chart), 'Deployment');
      const [delay] = flagValues(containerArgs(deployment), '--shutdown-delay');
      expect(delay).toBe('5s');
      const grace = deployment.spec.template.spec.terminationGracePeriodSeconds ?? 30;
      expect(5).toBeLessThan(grace);
    },
  );
});
