/**
 * The charts' part of issue 11: the operator's trust record (a ConfigMap kept across upgrade and uninstall, RBAC
 * on that one name), bridge authentication on by default at the beacon (bridge CAs from a ConfigMap), and the
 * bridge's beacon client identity (minted from OpenBao by default, or a TLS Secret).
 */
import { describe, expect, it } from 'vitest';
import { readChart, withValue } from './chart-files.js';
import { objectsOf, only, render } from './render.js';
import { validateValues as validateAgainstSchema } from './values-schema.js';

const operator = readChart('cloudtaser');
const beacon = readChart('cloudtaser-beacon');
const bridge = readChart('cloudtaser-bridge');

describe('operator chart: the trust record', () => {
  const record = operator.templates.get('trust-record.yaml')!;
  const rbac = operator.templates.get('rbac.yaml')!;

  it('ships the record as a ConfigMap (never a Secret) that helm keeps on uninstall and that carries the chart labels', () => {
    expect(record).toMatch(/^kind: ConfigMap$/m);
    expect(record).not.toMatch(/kind: Secret/);
    expect(record).toMatch(/name: \{\{ \$name \}\}/);
    expect(record).toContain('$name := include "cloudtaser.trustRecordName" .');
    expect(record).toMatch(/annotations:\s+helm\.sh\/resource-policy: keep/);
    expect(record).toContain('include "cloudtaser.labels"');
  });

  it('renders back what is recorded, so an upgrade (even --force) never wipes it, and never sets the hash itself', () => {
    expect(record).toContain('lookup "v1" "ConfigMap" .Release.Namespace $name');
    expect(record).toMatch(
      /\{\{- if and \$existing \$existing\.data \}\}\s+data:\s+\{\{- toYaml \$existing\.data \| nindent 2 \}\}/,
    );
    expect(record).not.toMatch(/\.Values\.operator\.broker\.trust/);
  });

  it('lets the operator get and patch only that ConfigMap (RBAC cannot limit create by name, so it gets no create)', () => {
    const role = rbac
      .split('---')
      .find((doc) => doc.includes('name: {{ $trustName }}') && /kind: Role\n/.test(doc))!;
    expect(role).toMatch(
      /resources: \["configmaps"\]\s+resourceNames: \[\{\{ include "cloudtaser\.trustRecordName" \. \| quote \}\}\]\s+verbs: \["get", "patch"\]/,
    );
    expect(role.split('rules:')[1]).not.toMatch(/create|list|watch|delete|\*/);
    expect(role).not.toMatch(/kind: ClusterRole/);
    const binding = rbac
      .split('---')
      .find((doc) => doc.includes('name: {{ $trustName }}') && /kind: RoleBinding/.test(doc))!;
    expect(binding).toMatch(/kind: Role\n\s+name: \{\{ \$trustName \}\}[\s\S]*name: \{\{ \$sa \}\}/);
    // Always on: an unpinned broker must be able to record, a pinned one to write the pin.
    const [always] = rbac.split('{{- if .Values.operator.broker.attestation.enabled }}');
    expect(always).toContain('name: {{ $trustName }}');
  });

  it('runs the broker with that record and keeps the pin optional and admin-owned', () => {
    expect(operator.templates.get('deployment.yaml')).toContain(
      '- --trust-record={{ .Release.Namespace }}/{{ include "cloudtaser.trustRecordName" . }}',
    );
    expect(operator.templates.get('_helpers.tpl')).toMatch(
      /define "cloudtaser\.trustRecordName"[\s\S]*include "cloudtaser\.suffixedName" \(dict "root" \. "suffix" "trust"\)/,
    );
    const withAddress = withValue(
      operator.values,
      'operator.broker.beacon.address',
      'beacon.example.com:443',
    );
    expect(validateAgainstSchema(operator.schema, withAddress)).toEqual([]);
    expect(
      validateAgainstSchema(
        operator.schema,
        withValue(withAddress, 'operator.broker.trust.caSha256', 'ab'.repeat(32)),
      ),
    ).toEqual([]);
  });
});

describe('beacon chart: bridges authenticate by default', () => {
  const deployment = beacon.templates.get('deployment.yaml')!;

  it('runs the beacon with --bridge-ca from a ConfigMap unless anonymous bridges are asked for explicitly', () => {
    expect(beacon.values).toMatchObject({
      beacon: { bridgeAuth: { allowAnonymous: false, caPems: [], caConfigMap: '' } },
    });
    expect(deployment).toMatch(
      /\{\{- if \.Values\.beacon\.bridgeAuth\.allowAnonymous \}\}\s+- --allow-anonymous-bridges\s+\{\{- else \}\}\s+- --bridge-ca=\/etc\/cloudtaser\/bridge-ca\/ca\.crt\s+\{\{- end \}\}/,
    );
    expect(deployment).toMatch(
      /- name: bridge-ca\s+configMap:\s+name: \{\{ include "cloudtaser-beacon\.bridgeCaConfigMap" \. \}\}/,
    );
    // Rendered: the chart's own ConfigMap (empty until a CA is set, so the pod starts and refuses bridges), or
    // the one named in values (then the chart makes none).
    const own = render('cloudtaser-beacon', {});
    const volume = only(own, 'Deployment').spec.template.spec.volumes.find(
      (v: { name: string }) => v.name === 'bridge-ca',
    );
    const made = objectsOf(own, 'ConfigMap').find((c) => c.metadata.name === volume.configMap.name);
    expect(made?.data).toEqual({ 'ca.crt': '' });
    const named = render('cloudtaser-beacon', { beacon: { bridgeAuth: { caConfigMap: 'ops-bridge-cas' } } });
    expect(
      only(named, 'Deployment').spec.template.spec.volumes.find(
        (v: { name: string }) => v.name === 'bridge-ca',
      ).configMap.name,
    ).toBe('ops-bridge-cas');
    expect(objectsOf(named, 'ConfigMap')).toEqual([]);
  });

  it('makes the ConfigMap from public CA certificates given as values, and refuses anything that is not a certificate', () => {
    const template = beacon.templates.get('bridge-ca.yaml')!;
    expect(template).toMatch(
      /kind: ConfigMap[\s\S]*ca\.crt: \|[\s\S]*range \.Values\.beacon\.bridgeAuth\.caPems/,
    );
    expect(
      validateAgainstSchema(
        beacon.schema,
        withValue(beacon.values, 'beacon.bridgeAuth.caPems', [
          '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
        ]),
      ),
    ).toEqual([]);
    expect(
      validateAgainstSchema(
        beacon.schema,
        withValue(beacon.values, 'beacon.bridgeAuth.caPems', ['-----BEGIN PRIVATE KEY-----']),
      ).map((p) => p.path),
    ).toContain('beacon.bridgeAuth.caPems.0');
  });
});

describe('bridge chart: the beacon client identity', () => {
  const deployment = bridge.templates.get('deployment.yaml')!;

  it('mints it from OpenBao by default, with nothing to mount', () => {
    expect(bridge.values).toMatchObject({
      bridge: { beacon: { clientIdentity: { source: 'openbao', secretName: '' } } },
    });
    expect(deployment).toContain(
      '- --beacon-client-identity={{ .Values.bridge.beacon.clientIdentity.source }}',
    );
  });

  it('reads a TLS Secret with source files, and requires its name', () => {
    expect(deployment).toMatch(
      /if eq \.Values\.bridge\.beacon\.clientIdentity\.source "files"[\s\S]*--beacon-client-cert=\/etc\/cloudtaser\/beacon-client\/tls\.crt\s+- --beacon-client-key=\/etc\/cloudtaser\/beacon-client\/tls\.key/,
    );
    expect(deployment).toMatch(
      /secretName: \{\{ required "bridge\.beacon\.clientIdentity\.secretName is required/,
    );
    expect(
      validateAgainstSchema(
        bridge.schema,
        withValue(bridge.values, 'bridge.beacon.clientIdentity.source', 'vault'),
      ).map((p) => p.path),
    ).toContain('bridge.beacon.clientIdentity.source');
  });
});
