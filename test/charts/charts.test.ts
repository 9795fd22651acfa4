import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isChartProxyUrl } from '../../constructs/proxy.js';
import { BEACON_ADDRESS_PATTERN, isBeaconAddress } from '../../constructs/validation.js';
import {
  CHART_NAMES,
  CHARTS_DIR,
  controlKeywords,
  isMap,
  mergeValues,
  readChart,
  valuePathsIn,
  withValue,
} from './chart-files.js';
import { compileSchema, validateValues as validateAgainstSchema } from './values-schema.js';

const charts = CHART_NAMES.map(readChart);
const requiredValues: Record<string, string[]> = {
  cloudtaser: ['operator.broker.beacon.address'],
  'cloudtaser-beacon': [],
  'cloudtaser-bridge': [
    'bridge.beacon.address',
    'bridge.openbao.address',
    'bridge.openbao.auth.approle.secretName',
  ],
};

describe.each(charts)('chart $name', (chart) => {
  it('has a v2 Chart.yaml whose name matches its folder and whose version is semver', () => {
    expect(chart.chart.apiVersion).toBe('v2');
    expect(chart.chart.name).toBe(chart.name);
    expect(String(chart.chart.version)).toMatch(/^\d+\.\d+\.\d+$/);
    expect(String(chart.chart.appVersion)).toMatch(/^\d+\.\d+\.\d+$/);
    expect(chart.chart.type).toBe('application');
  });

  it('has a schema that ajv compiles in strict mode, closed (additionalProperties: false) at every level', () => {
    expect(() => compileSchema(chart.schema)).not.toThrow();
    const open: string[] = [];
    const walk = (node: Record<string, unknown>, path: string) => {
      const properties = node.properties as Record<string, Record<string, unknown>> | undefined;
      if (properties === undefined) return;
      if (node.additionalProperties !== false) open.push(path || '(root)');
      for (const [key, child] of Object.entries(properties)) walk(child, path ? `${path}.${key}` : key);
    };
    walk(chart.schema, '');
    expect(open).toEqual([]);
  });

  it('refuses a misspelt key at any level with its path', () => {
    const top = validateAgainstSchema(chart.schema, { ...chart.values, replicaz: 2 });
    expect(top.map((p) => p.path)).toContain('replicaz');
    const nested = withValue(chart.values, 'image.tagg', 'x');
    expect(validateAgainstSchema(chart.schema, nested).map((p) => p.message)).toContain(
      'image.tagg: is not a value of this chart (misspelt?)',
    );
  });

  it('accepts image.digest only as a sha256 digest', () => {
    const required = requiredValues[chart.name].reduce<unknown>(
      (values, path) => withValue(values, path, exampleFor(path)),
      chart.values,
    );
    expect(
      validateAgainstSchema(chart.schema, withValue(required, 'image.digest', `sha256:${'a'.repeat(64)}`)),
    ).toEqual([]);
    expect(
      validateAgainstSchema(chart.schema, withValue(required, 'image.digest', 'latest')).map((p) => p.path),
    ).toEqual(['image.digest']);
  });

  it('accepts its default values once the required values are set, and its example values', () => {
    let values: unknown = chart.values;
    for (const path of requiredValues[chart.name]) values = withValue(values, path, exampleFor(path));
    expect(validateAgainstSchema(chart.schema, values)).toEqual([]);
    expect(validateAgainstSchema(chart.schema, mergeValues(chart.values, chart.exampleValues))).toEqual([]);
  });

  it('rejects the default values alone with a message naming each required value', () => {
    const problems = validateAgainstSchema(chart.schema, chart.values).map((p) => p.path);
    expect(problems.sort()).toEqual([...requiredValues[chart.name]].sort());
  });

  it('describes every value of values.yaml in the schema (no undocumented or drifting key)', () => {
    const missing: string[] = [];
    const walk = (values: Record<string, unknown>, schema: Record<string, unknown>, path: string[]) => {
      const properties = (schema.properties ?? {}) as Record<string, Record<string, unknown>>;
      for (const [key, value] of Object.entries(values)) {
        const child = properties[key];
        if (child === undefined) {
          if (schema.additionalProperties === undefined || schema.additionalProperties === false) {
            missing.push([...path, key].join('.'));
          }
          continue;
        }
        if (isMap(value) && child.properties !== undefined) walk(value, child, [...path, key]);
      }
    };
    walk(chart.values, chart.schema, []);
    expect(missing).toEqual([]);
  });

  it('references only values that exist in values.yaml', () => {
    const missing: string[] = [];
    for (const [file, text] of chart.templates) {
      for (const path of valuePathsIn(text)) {
        let cursor: unknown = chart.values;
        for (const key of path.split('.')) {
          if (!isMap(cursor) || !(key in cursor)) {
            missing.push(`${file}: .Values.${path}`);
            break;
          }
          cursor = cursor[key];
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it('closes every template block and includes only templates it defines', () => {
    const defined = new Set<string>();
    const included = new Set<string>();
    for (const [file, text] of chart.templates) {
      let depth = 0;
      for (const keyword of controlKeywords(text)) {
        if (keyword === 'end') depth--;
        else if (keyword !== 'else') depth++;
        expect(depth, `${file} closes a block it never opened`).toBeGreaterThanOrEqual(0);
      }
      expect(depth, `${file} leaves ${depth} block(s) open`).toBe(0);
      expect(text.split('{{').length, `${file} has unbalanced braces`).toBe(text.split('}}').length);
      for (const m of text.matchAll(/define "([^"]+)"/g)) defined.add(m[1]);
      for (const m of text.matchAll(/include "([^"]+)"/g)) included.add(m[1]);
    }
    for (const name of included) expect(defined.has(name), `include "${name}" has no define`).toBe(true);
  });

  it('labels every object with the standard app.kubernetes.io and helm.sh labels', () => {
    const helpers = chart.templates.get('_helpers.tpl')!;
    for (const label of [
      'helm.sh/chart:',
      'app.kubernetes.io/name:',
      'app.kubernetes.io/instance:',
      'app.kubernetes.io/version:',
      'app.kubernetes.io/managed-by:',
      'app.kubernetes.io/component:',
      'app.kubernetes.io/part-of:',
    ]) {
      expect(helpers).toContain(label);
    }
    for (const [file, text] of chart.templates) {
      if (file.startsWith('_') || file === 'NOTES.txt') continue;
      const objects = text.split(/^---$/m).filter((doc) => /^kind:/m.test(doc)).length;
      const labelled = (text.match(/include "[a-z-]+\.labels"/g) ?? []).length;
      expect(labelled, `${file}: every object carries the standard labels`).toBeGreaterThanOrEqual(objects);
    }
  });

  it('ships NOTES.txt and runs its pods as non-root with a read-only root filesystem', () => {
    expect(chart.templates.has('NOTES.txt')).toBe(true);
    const pod = chart.values.podSecurityContext as Record<string, unknown>;
    const container = chart.values.securityContext as Record<string, unknown>;
    expect(pod.runAsNonRoot).toBe(true);
    expect(container.readOnlyRootFilesystem).toBe(true);
    expect(container.allowPrivilegeEscalation).toBe(false);
  });
});

describe('chart cloudtaser (operator)', () => {
  const chart = charts[0];
  const withAddress = withValue(chart.values, 'operator.broker.beacon.address', 'beacon.example.com:443');

  it('fails a missing beacon address with a message that names operator.broker.beacon.address', () => {
    const problems = validateAgainstSchema(chart.schema, chart.values);
    expect(problems.map((p) => p.message)).toEqual([
      'operator.broker.beacon.address: is required and must not be empty',
    ]);
    const helpers = chart.templates.get('_helpers.tpl')!;
    expect(helpers).toMatch(
      /required "operator\.broker\.beacon\.address is required: [^"]+--set operator\.broker\.beacon\.address=/,
    );
    expect(chart.templates.get('deployment.yaml')).toContain('include "cloudtaser.beaconAddress"');
  });

  it.each([
    ['operator.broker.beacon.address', 'beacon example com'],
    ['operator.broker.beacon.address', 'https://beacon.example.com'],
    ['operator.broker.trust.caSha256', 'ABCDEF'],
    ['operator.broker.trust.caSha256', 'a'.repeat(63)],
    ['webhook.failurePolicy', 'Sometimes'],
    ['operator.replicas', 0],
    ['operator.replicas', 2],
    ['operator.migration.namespaces', ['a', 'a']],
  ])('rejects %s = %j', (path, value) => {
    const problems = validateAgainstSchema(chart.schema, withValue(withAddress, path, value));
    expect(problems.map((p) => p.path)).toContain(path);
  });

  it('accepts a lower-case 64-hex caSha256 pin and both webhook failure policies', () => {
    for (const policy of ['Fail', 'Ignore']) {
      const values = withValue(
        withValue(withAddress, 'webhook.failurePolicy', policy),
        'operator.broker.trust.caSha256',
        'ab'.repeat(32),
      );
      expect(validateAgainstSchema(chart.schema, values)).toEqual([]);
    }
  });

  it('with attestation on, runs the broker with --attestation, names its service account from the pod spec and may mint tokens only for it', () => {
    const deployment = chart.templates.get('deployment.yaml')!;
    const switchOn = '{{- if .Values.operator.broker.attestation.enabled }}';
    const [args, env] = deployment.split('env:');
    expect(args).toContain(`${switchOn}\n            - --attestation\n            {{- end }}`);
    expect(env).toMatch(
      /\{\{- if \.Values\.operator\.broker\.attestation\.enabled \}\}[\s\S]*?- name: SERVICE_ACCOUNT_NAME\s+valueFrom:\s+fieldRef:\s+fieldPath: spec\.serviceAccountName\s+\{\{- end \}\}/,
    );
    expect(env).toMatch(/- name: POD_NAMESPACE\s+valueFrom:\s+fieldRef:\s+fieldPath: metadata\.namespace/);
    const rbac = chart.templates.get('rbac.yaml')!;
    const attestationRbac = rbac.split(switchOn)[1].split('{{- end }}')[0];
    expect(attestationRbac).toMatch(
      /kind: Role\n[\s\S]*resources: \["serviceaccounts\/token"\]\s+resourceNames: \[\{\{ \$sa \| quote \}\}\]\s+verbs: \["create"\]/,
    );
    expect(attestationRbac).toMatch(/kind: RoleBinding[\s\S]*name: \{\{ \$sa \}\}/);
    expect(attestationRbac).not.toContain('ClusterRole');
    expect(chart.values).toMatchObject({ operator: { broker: { attestation: { enabled: true } } } });
    expect(
      validateAgainstSchema(
        chart.schema,
        withValue(withAddress, 'operator.broker.attestation.enabled', false),
      ),
    ).toEqual([]);
    expect(
      validateAgainstSchema(
        chart.schema,
        withValue(withAddress, 'operator.broker.attestation.enabled', 'yes'),
      ).map((p) => p.path),
    ).toContain('operator.broker.attestation.enabled');
  });

  it('probes /healthz and /readyz on the health port and takes failurePolicy and objectSelector from values', () => {
    const deployment = chart.templates.get('deployment.yaml')!;
    expect(deployment).toMatch(/livenessProbe:\s+httpGet:\s+path: \/healthz\s+port: health/);
    expect(deployment).toMatch(/readinessProbe:\s+httpGet:\s+path: \/readyz\s+port: health/);
    const webhook = chart.templates.get('mutatingwebhook.yaml')!;
    expect(webhook).toContain('failurePolicy: {{ .Values.webhook.failurePolicy }}');
    expect(webhook).toContain('toYaml .Values.webhook.objectSelector');
    expect(webhook).toContain('path: /mutate-pods');
    // The CA bundle only ever comes from a value (or cert-manager): never a literal certificate in the chart.
    expect(webhook).toMatch(/caBundle: \{\{ \.Values\.webhook\.caBundle \}\}/);
  });
});

describe('chart cloudtaser-beacon', () => {
  const chart = charts[1];
  it('takes its TLS certificate from a Secret and never from values', () => {
    expect(chart.templates.get('deployment.yaml')).toMatch(
      /secret:\s+secretName: \{\{ include "cloudtaser-beacon\.tlsSecretName"/,
    );
    expect(JSON.stringify(chart.values)).not.toMatch(/BEGIN|PRIVATE|tls\.key"?:/);
  });
});

describe('chart cloudtaser-bridge', () => {
  const chart = charts[2];
  it('reads the AppRole role-id and secret-id from a Secret reference', () => {
    const deployment = chart.templates.get('deployment.yaml')!;
    // Two for AppRole, one for the proxy URL with credentials (proxy.credentialsSecret).
    expect(deployment.match(/secretKeyRef:/g)).toHaveLength(3);
    expect(
      deployment.match(/name: \{\{ \.Values\.bridge\.openbao\.auth\.approle\.secretName \}\}/g),
    ).toHaveLength(2);
    const schemaText = JSON.stringify(chart.schema);
    expect(schemaText).not.toMatch(/"(roleId|secretId)"\s*:/);
  });
});

describe.each(['cloudtaser', 'cloudtaser-bridge'] as const)('chart %s proxy block', (name) => {
  const chart = charts.find((c) => c.name === name)!;
  let base: Record<string, unknown> = chart.values;
  for (const path of requiredValues[name]) base = withValue(base, path, exampleFor(path));
  const deployment = chart.templates.get('deployment.yaml')!;
  const [args, env] = deployment.split('          env:');

  it('defaults to no proxy: nothing rendered unless a value is set', () => {
    expect(chart.values.proxy).toEqual({
      beaconProxy: '',
      httpsProxy: '',
      noProxy: '',
      credentialsSecret: { name: '', key: 'proxy-url' },
    });
    expect(validateAgainstSchema(chart.schema, base)).toEqual([]);
  });

  it('renders beaconProxy as the --beacon-proxy flag, only when set', () => {
    expect(args).toContain(
      '{{- with .Values.proxy.beaconProxy }}\n            - --beacon-proxy={{ . }}\n            {{- end }}',
    );
  });

  it('renders HTTPS_PROXY from the credentials Secret, else from httpsProxy, and NO_PROXY from noProxy', () => {
    expect(env).toMatch(
      /\{\{- if \.Values\.proxy\.credentialsSecret\.name \}\}[\s\S]*?- name: HTTPS_PROXY\s+valueFrom:\s+secretKeyRef:\s+name: \{\{ \.Values\.proxy\.credentialsSecret\.name \}\}\s+key: \{\{ \.Values\.proxy\.credentialsSecret\.key \}\}\s+\{\{- else if \.Values\.proxy\.httpsProxy \}\}\s+- name: HTTPS_PROXY\s+value: \{\{ \.Values\.proxy\.httpsProxy \| quote \}\}\s+\{\{- end \}\}/,
    );
    expect(env).toMatch(
      /\{\{- with \.Values\.proxy\.noProxy \}\}\s+- name: NO_PROXY\s+value: \{\{ \. \| quote \}\}\s+\{\{- end \}\}/,
    );
  });

  it.each([
    ['proxy.beaconProxy', 'http://proxy.corp:3128'],
    ['proxy.beaconProxy', 'proxy.corp:8080'],
    ['proxy.beaconProxy', 'none'],
    ['proxy.httpsProxy', 'https://proxy.corp'],
    ['proxy.httpsProxy', 'http://[2001:db8::1]:3128'],
    ['proxy.noProxy', '.svc,.cluster.local,10.0.0.0/8,openbao.example.eu:8200'],
    ['proxy.credentialsSecret.name', 'corp-proxy'],
  ])('accepts %s = %j', (path, value) => {
    expect(validateAgainstSchema(chart.schema, withValue(base, path, value))).toEqual([]);
  });

  it.each([
    ['proxy.beaconProxy', 'http://user:secret@proxy.corp:3128'],
    ['proxy.httpsProxy', 'http://user:secret@proxy.corp:3128'],
    ['proxy.httpsProxy', 'socks5://proxy.corp:1080'],
    ['proxy.beaconProxy', 'http://proxy.corp:3128/path'],
    ['proxy.noProxy', 'a.example b.example'],
    ['proxy.credentialsSecret.name', 'Corp_Proxy'],
    ['proxy.credentialsSecret.key', ''],
    ['proxy.httpProxy', 'http://proxy.corp:3128'],
  ])('refuses %s = %j: no credentials, SOCKS, paths or unknown keys in values', (path, value) => {
    const problems = validateAgainstSchema(chart.schema, withValue(base, path, value));
    expect(problems.map((p) => p.path)).toContain(path);
  });
});

describe('proxy URL rule shared by charts and constructs', () => {
  const httpsProxy = ['proxy', 'httpsProxy'].reduce<Record<string, unknown>>(
    (schema, key) => (schema.properties as Record<string, Record<string, unknown>>)[key],
    charts[0].schema,
  );
  const pattern = new RegExp(httpsProxy.pattern as string, 'u');
  it.each([
    ['http://proxy.corp.example:3128', true],
    ['https://proxy.corp.example', true],
    ['proxy:8080', true],
    ['http://[2001:db8::1]:3128', true],
    ['http://user:pw@proxy:3128', false],
    ['socks5://proxy:1080', false],
    ['http://proxy:3128/x', false],
    ['proxy corp', false],
  ])('treats %j as valid=%s in the chart schema and in the constructs', (url, valid) => {
    expect(pattern.test(url)).toBe(valid);
    expect(isChartProxyUrl(url)).toBe(valid);
  });
});

describe('beacon address rule shared by charts and constructs', () => {
  const operator = charts[0];
  const addressSchema = ['operator', 'broker', 'beacon', 'address'].reduce<Record<string, unknown>>(
    (schema, key) => (schema.properties as Record<string, Record<string, unknown>>)[key],
    operator.schema,
  );
  const pattern = new RegExp(addressSchema.pattern as string, 'u');
  it('is one text: the operator and bridge schemas carry the constructs pattern', () => {
    expect(addressSchema.pattern).toBe(BEACON_ADDRESS_PATTERN);
    const bridgeAddress = ['bridge', 'beacon', 'address'].reduce<Record<string, unknown>>(
      (schema, key) => (schema.properties as Record<string, Record<string, unknown>>)[key],
      charts[2].schema,
    );
    expect(bridgeAddress.pattern).toBe(BEACON_ADDRESS_PATTERN);
  });
  it.each([
    ['beacon.example.com:443', true],
    ['127.0.0.1:8443', true],
    ['[::1]:443', true],
    ['wss://beacon.example.com', true],
    ['wss://beacon.example.com:443/relay', true],
    ['beacon.example.com', false],
    ['beacon.example.com:0', false],
    ['beacon.example.com:99999', false],
    ['beacon.example.com:65535', true],
    ['wss://beacon.example.com:65536', false],
    ['https://beacon.example.com:443', false],
    ['beacon example.com:443', false],
    ['', false],
  ])('treats %j as valid=%s in the chart schemas and in the constructs', (address, valid) => {
    expect(pattern.test(address)).toBe(valid);
    expect(isBeaconAddress(address)).toBe(valid);
  });
});

function exampleFor(path: string): string {
  if (path.endsWith('openbao.address')) return 'https://openbao.example.eu:8200';
  if (path.endsWith('secretName')) return 'bridge-approle';
  return 'beacon.example.com:443';
}

describe('container images', () => {
  const imagesDir = join(CHARTS_DIR, '..', 'images');
  it.each([
    ['operator', 'cloudtaser', '- broker\n            - run'],
    ['beacon', 'cloudtaser-beacon', '- beacon\n            - serve'],
    ['bridge', 'cloudtaser-bridge', '- bridge\n            - run'],
  ] as const)(
    'builds %s on a minimal Node base, runs it as non-root, and matches what its chart runs',
    (process, chartName, chartArgs) => {
      const dockerfile = readFileSync(join(imagesDir, `Dockerfile.${process}`), 'utf8');
      // A Node line that still gets security fixes (Node 20 went end-of-life on 2026-04-30), the same for both stages.
      expect(dockerfile).toMatch(/^FROM gcr\.io\/distroless\/nodejs22-debian12:nonroot$/m);
      expect(dockerfile).toMatch(/^FROM node:22-bookworm-slim AS build$/m);
      // Runtime dependencies as package-lock.json pins them, not resolved again from ranges on build day.
      expect(dockerfile).toMatch(/npm ci /);
      expect(dockerfile).toMatch(/npm prune --omit=dev/);
      expect(dockerfile).not.toMatch(/npm install[^\n]*\.tgz/);
      expect(dockerfile).toMatch(/^USER 65532:65532$/m);
      const command = {
        operator: '["broker", "run"]',
        beacon: '["beacon", "serve"]',
        bridge: '["bridge", "run"]',
      }[process];
      expect(dockerfile).toContain(`CMD ${command}`);
      const chart = readChart(chartName);
      expect(chart.templates.get('deployment.yaml')).toContain(chartArgs);
      expect(String((chart.values.image as Record<string, unknown>).repository)).toBe(
        `ghcr.io/cloudtaser/cloudtaser-${process}`,
      );
    },
  );
});

describe('chart container args against the real cloudtaser-cli', () => {
  it.each([
    ['cloudtaser', 0],
    ['cloudtaser-beacon', 1],
    ['cloudtaser-bridge', 2],
  ] as const)('%s runs a command and flags that exist in cloudtaser-cli', async (_name, index) => {
    const { buildProgram } = await import('../../runtime/cli/program.js');
    const deployment = charts[index].templates.get('deployment.yaml')!;
    const block = /\n\s+args:\n((?:\s+(?:- .*|\{\{.*\}\})\n)+)/.exec(deployment);
    expect(block, 'deployment has an args list').not.toBeNull();
    const args = block![1]
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line.startsWith('- '))
      .map((line) => line.slice(2).replace(/^"|"$/g, ''));
    const [group, verb, ...flags] = args;
    const command = buildProgram()
      .commands.find((c) => c.name() === group)
      ?.commands.find((c) => c.name() === verb);
    expect(command, `cloudtaser-cli ${group} ${verb}`).toBeDefined();
    const known = new Set(command!.options.map((o) => o.long));
    for (const flag of flags.filter((f) => f.startsWith('--'))) {
      expect(known, `${group} ${verb} has ${flag.split('=')[0]}`).toContain(flag.split('=')[0]);
    }
  });
});
