// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Terraform interpolations are the expected values
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type BlockJson,
  cloudtaserSchemaJson,
  generateBindings,
  type ProviderSchemaJson,
} from '../../constructs/bindings/generate.js';
import { TerraformOutput, Testing } from '../../constructs/cdktf.js';
import {
  CloudtaserProvider,
  ClusterRegistration,
  DataCloudtaserClusterFingerprint,
} from '../../constructs/index.js';
import { PROVIDER_VERSION } from '../../provider/cloudtaser.js';
import { newStack, only, synthJson } from './synth.js';

const BINDINGS_DIR = resolve(import.meta.dirname, '../../constructs/bindings');

describe('generated provider bindings', () => {
  const schema = cloudtaserSchemaJson();
  const generated = generateBindings(schema);

  it('match the provider schema exactly (regenerate with: npm run build && node dist/constructs/bindings/generate.js)', () => {
    const committed = readdirSync(BINDINGS_DIR)
      .filter((f) => f.endsWith('.ts') && f !== 'generate.ts')
      .sort();
    expect(committed).toEqual([...generated.keys()].sort());
    for (const [file, text] of generated) {
      expect(readFileSync(join(BINDINGS_DIR, file), 'utf8'), `${file} is stale`).toBe(text);
    }
  });

  it('carry every schema attribute with its description, except the sensitive provider token', () => {
    const check = (file: string, block: BlockJson, skip: string[] = []) => {
      const text = generated.get(file)!;
      for (const [name, attribute] of Object.entries(block.attributes ?? {})) {
        if (skip.includes(name)) continue;
        const camel = name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
        expect(text, `${file}: ${name}`).toMatch(new RegExp(`get ${camel}\\(\\)`));
        const firstWords = (attribute.description ?? '').split(/\s+/).slice(0, 4).join(' ');
        expect(text.replace(/\s+\*\s+/g, ' '), `${file}: description of ${name}`).toContain(firstWords);
      }
    };
    check('provider.ts', schema.provider.block, ['secretstore_token']);
    check('cluster-registration.ts', schema.resourceSchemas.cloudtaser_cluster_registration.block);
    check(
      'data-cloudtaser-cluster-fingerprint.ts',
      schema.dataSourceSchemas.cloudtaser_cluster_fingerprint.block,
    );
    expect(generated.get('provider.ts')).not.toMatch(/secretstoreToken/);
    expect(generated.get('provider.ts')).toMatch(/`secretstore_token` is deliberately not a property/);
  });

  it('synthesize snake_case attributes, the provider source and a version matching the provider', () => {
    const stack = newStack();
    const provider = new CloudtaserProvider(stack, 'p', {
      secretstoreAddress: 'https://openbao.example.eu:8200',
      namespaceRoot: 'cloudtaser',
      secretstoreCaCert: '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----',
    });
    const source = new DataCloudtaserClusterFingerprint(stack, 'fp', {
      provider,
      host: 'https://203.0.113.10',
      exec: {
        apiVersion: 'client.authentication.k8s.io/v1',
        command: 'kubelogin',
        args: ['get-token'],
        env: { A: 'b' },
      },
    });
    new ClusterRegistration(stack, 'reg', {
      provider,
      fingerprint: source.fingerprint,
      purgeOnDestroy: false,
    });
    const json = synthJson(stack);
    expect(json.terraform.required_providers.cloudtaser).toEqual({
      source: 'cloudtaser/cloudtaser',
      version: PROVIDER_VERSION,
    });
    expect(only(json.provider.cloudtaser)).toEqual({
      secretstore_address: 'https://openbao.example.eu:8200',
      namespace_root: 'cloudtaser',
      secretstore_ca_cert: '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----',
    });
    expect(only(json.data.cloudtaser_cluster_fingerprint)).toEqual({
      provider: 'cloudtaser',
      host: 'https://203.0.113.10',
      exec: {
        api_version: 'client.authentication.k8s.io/v1',
        command: 'kubelogin',
        args: ['get-token'],
        env: { A: 'b' },
      },
    });
    expect(only(json.resource.cloudtaser_cluster_registration)).toEqual({
      provider: 'cloudtaser',
      fingerprint: '${data.cloudtaser_cluster_fingerprint.fp.fingerprint}',
      purge_on_destroy: false,
    });
    expect(ClusterRegistration.tfResourceType).toBe('cloudtaser_cluster_registration');
    expect(DataCloudtaserClusterFingerprint.tfResourceType).toBe('cloudtaser_cluster_fingerprint');
  });

  it('expose computed attributes as references and also render as HCL', () => {
    const stack = newStack();
    const registration = new ClusterRegistration(stack, 'reg', {
      fingerprint: '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0',
    });
    new TerraformOutput(stack, 'hash', { value: registration.operationalHash });
    new TerraformOutput(stack, 'initialized', { value: registration.initialized });
    const outputs = synthJson(stack).output;
    expect(outputs.hash.value).toBe('${cloudtaser_cluster_registration.reg.operational_hash}');
    expect(outputs.initialized.value).toBe('${cloudtaser_cluster_registration.reg.initialized}');
    const hcl = Testing.synthHcl(stack) as unknown as string;
    expect(hcl).toMatch(
      /resource "cloudtaser_cluster_registration" "reg" \{\s+fingerprint = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"/,
    );
  });

  it('refuses, with the attribute named, a schema type the generator cannot map', () => {
    const odd: ProviderSchemaJson = {
      ...schema,
      resourceSchemas: {
        cloudtaser_odd: { block: { attributes: { weird: { type: ['set', 'number'], optional: true } } } },
      },
    };
    expect(() => generateBindings(odd)).toThrow(/attribute weird has type \["set","number"\]/);
  });
});
