/**
 * The provider's handlers without terraform: unknown provider configuration, plan-time checks, deprecation
 * messages and functions on the wire. The terraform-driven proofs are in plan-checks.e2e.test.ts and
 * functions.e2e.test.ts; these pin the edge cases terraform does not easily reach.
 */
import { describe, expect, it } from 'vitest';
import { createCloudtaserProvider } from '../../provider/cloudtaser.js';
import { decodeMsgpack, encodeMsgpack } from '../../provider/cty/msgpack.js';
import { Unknown, unknown } from '../../provider/cty/values.js';
import { createProviderHandlers, defineResource } from '../../provider/framework/provider.js';
import { clusterRegistrationBlock } from '../../provider/resources/cluster-registration.js';
import { cloudtaserFunctions } from '../../provider/resources/functions.js';
import { providerBlock } from '../../provider/resources/provider-config.js';
import { attr, impliedType } from '../../provider/schema/schema.js';
import * as m from '../../provider/wire/messages.js';
import { decodeMessage, encodeMessage } from '../../provider/wire/protobuf.js';

const FP = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const registrationType = impliedType(clusterRegistrationBlock);
const providerType = impliedType(providerBlock);
const nulls = (block: { attributes: object; blocks?: object }) =>
  Object.fromEntries(
    [...Object.keys(block.attributes), ...Object.keys(block.blocks ?? {})].map((k) => [k, null]),
  );
const registration = (v: Record<string, unknown>) => ({
  msgpack: encodeMsgpack({ ...nulls(clusterRegistrationBlock), ...v } as never, registrationType),
});
const providerConfig = (v: Record<string, unknown>) => ({
  msgpack: encodeMsgpack({ ...nulls(providerBlock), ...v } as never, providerType),
});
const stored = {
  fingerprint: FP,
  id: FP,
  namespace: `cloudtaser/${FP.slice(0, 8)}`,
  init_hash: 'a'.repeat(64),
  operational_hash: 'b'.repeat(64),
  ca_cert_pem: '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n',
  initialized: true,
  purge_on_destroy: false,
  attested: false,
};
type WireDiagnostic = { severity: number; summary: string; detail: string };

async function configured(config: Record<string, unknown>, env: Record<string, string> = {}) {
  const handlers = createProviderHandlers(createCloudtaserProvider({ env }));
  const response = await handlers.ConfigureProvider!({ config: providerConfig(config) });
  expect(response.diagnostics).toEqual([]);
  return handlers;
}

describe('cloudtaser provider with configuration unknown at plan time', () => {
  it('reads a registration as stored with one warning when secretstore_address is unknown, and never contacts OpenBao', async () => {
    const handlers = await configured(
      { secretstore_address: unknown },
      { CLOUDTASER_SECRETSTORE_TOKEN: 't' },
    );
    const response = await handlers.ReadResource!({
      typeName: 'cloudtaser_cluster_registration',
      currentState: registration(stored),
    });
    const diagnostics = response.diagnostics as WireDiagnostic[];
    expect(diagnostics).toHaveLength(1);
    expect(diagnostics[0].severity).toBe(2);
    expect(diagnostics[0].detail).toContain(
      'secretstore_address depend on values Terraform only knows during apply',
    );
    const state = decodeMsgpack(response.newState.msgpack, registrationType) as Record<string, unknown>;
    expect(state).toMatchObject({ ...stored, adopt_existing: false });
  });

  it('refuses to import while the provider configuration is unknown, instead of storing an empty registration', async () => {
    const handlers = await configured({ namespace_root: unknown }, { CLOUDTASER_SECRETSTORE_TOKEN: 't' });
    const response = await handlers.ReadResource!({
      typeName: 'cloudtaser_cluster_registration',
      currentState: registration({ fingerprint: FP, id: FP, purge_on_destroy: false, adopt_existing: false }),
    });
    const diagnostics = response.diagnostics as WireDiagnostic[];
    expect(diagnostics).toHaveLength(1);
    expect(diagnostics[0].summary).toContain('CT_PROVIDER_CONFIG_UNKNOWN');
    expect(diagnostics[0].detail).toContain(`importing cluster ${FP}`);
  });

  it('plans an in-place update with initialized unknown (OpenBao says it at apply, not the stored state)', async () => {
    const handlers = await configured(
      { secretstore_address: unknown },
      { CLOUDTASER_SECRETSTORE_TOKEN: 't' },
    );
    const prior = { ...stored, adopt_existing: false };
    const response = await handlers.PlanResourceChange!({
      typeName: 'cloudtaser_cluster_registration',
      priorState: registration(prior),
      proposedNewState: registration({ ...prior, purge_on_destroy: true }),
      config: registration({ fingerprint: FP, purge_on_destroy: true }),
    });
    expect(response.diagnostics).toEqual([]);
    const planned = decodeMsgpack(response.plannedState.msgpack, registrationType) as Record<string, unknown>;
    expect(planned.initialized).toBeInstanceOf(Unknown);
    expect(planned.operational_hash).toBe(stored.operational_hash);
  });

  it('plans a create, a change and a destroy with the missing token reported on each, but not when only the address is unknown', async () => {
    const noToken = await configured({ secretstore_address: 'https://openbao.example.eu:8200' });
    const unknownAddress = await configured({ secretstore_address: unknown });
    const plans = [
      { priorState: registration(null as never), proposedNewState: registration({ fingerprint: FP }) },
      { priorState: registration(stored), proposedNewState: { msgpack: Buffer.from('c0', 'hex') } },
    ];
    for (const plan of plans) {
      const request = {
        typeName: 'cloudtaser_cluster_registration',
        config: registration({ fingerprint: FP }),
        ...plan,
      };
      const refused = (await noToken.PlanResourceChange!(request)).diagnostics as WireDiagnostic[];
      expect(refused.map((d) => d.summary)).toEqual([expect.stringContaining('CT_TOKEN_MISSING')]);
      // Unknown now, final at apply: nothing to refuse yet, and no OpenBao call is attempted.
      expect((await unknownAddress.PlanResourceChange!(request)).diagnostics).toEqual([]);
    }
  });
});

describe('deprecation messages and functions on the wire', () => {
  it('sends deprecation_message for attributes (field 12) and blocks (field 7) beside the deprecated flag', async () => {
    const handlers = createProviderHandlers({
      address: 'registry.terraform.io/cloudtaser/echo',
      version: '0.0.1',
      schema: { version: 0, block: { description: 'p', attributes: {} } },
      configure: () => undefined,
      dataSources: [],
      resources: [
        defineResource<undefined>()({
          typeName: 'echo_old',
          schema: {
            version: 0,
            block: {
              description: 'old',
              deprecated: 'use echo_new',
              attributes: {
                name: attr.string({ description: 'Name.', optional: true, deprecated: 'use label instead' }),
                label: attr.string({ description: 'Label.', optional: true }),
              },
            },
          },
          create: async ({ planned }) => planned,
          read: async ({ state }) => state,
          delete: async () => {},
        }),
      ],
    });
    const bytes = encodeMessage(m.GetProviderSchemaResponse, await handlers.GetProviderSchema!({}));
    const decoded = decodeMessage(m.GetProviderSchemaResponse, bytes);
    const block = decoded.resourceSchemas.echo_old.block;
    expect(block).toMatchObject({ deprecated: true, deprecationMessage: 'use echo_new' });
    const byName = Object.fromEntries(block.attributes.map((a: { name: string }) => [a.name, a]));
    expect(byName.name).toMatchObject({ deprecated: true, deprecationMessage: 'use label instead' });
    expect(byName.label.deprecated).toBe(false);
    expect(byName.label.deprecationMessage).toBeUndefined();
    // Field numbers as in tfplugin6 6.10: Schema.Attribute.deprecation_message = 12, Schema.Block = 7.
    const tag = (no: number) => no * 8 + 2;
    const attributeBytes = encodeMessage(m.SchemaAttribute, { name: 'n', deprecationMessage: 'x' });
    expect(attributeBytes.includes(tag(12))).toBe(true);
    expect(encodeMessage(m.SchemaBlock, { deprecationMessage: 'x' })[0]).toBe(tag(7));
  });

  it('documents every function with examples whose results are what the function returns', () => {
    for (const fn of cloudtaserFunctions) {
      for (const example of fn.examples ?? []) {
        const call = /^provider::cloudtaser::(\w+)\((.*)\)$/.exec(example.expression);
        if (!call || call[2].includes('cloudtaser_cluster_registration')) continue;
        expect(call[1]).toBe(fn.name);
        const args = JSON.parse(`[${call[2]}]`) as string[];
        expect(JSON.stringify(fn.run(args)), example.expression).toBe(example.result);
      }
    }
  });

  it('refuses an empty deprecation message in the schema DSL', () => {
    expect(() => attr.string({ description: 'x', optional: true, deprecated: ' ' })).toThrow(
      /needs a message/,
    );
  });

  it('lists the functions in GetMetadata and GetProviderSchema, and answers bad calls with a FunctionError', async () => {
    const handlers = createProviderHandlers(createCloudtaserProvider({ env: {} }));
    const metadata = await handlers.GetMetadata!({});
    expect(metadata.functions.map((f: { name: string }) => f.name).sort()).toEqual([
      'init_hash',
      'is_fingerprint',
      'namespace',
      'operational_hash',
    ]);
    const schema = decodeMessage(
      m.GetProviderSchemaResponse,
      encodeMessage(m.GetProviderSchemaResponse, await handlers.GetProviderSchema!({})),
    );
    expect(new TextDecoder().decode(schema.functions.namespace.variadicParameter.type)).toBe('"string"');
    expect(new TextDecoder().decode(schema.functions.is_fingerprint.return.type)).toBe('"bool"');
    const arg = (v: string) => ({ msgpack: encodeMsgpack(v, 'string') });
    expect((await handlers.CallFunction!({ name: 'nope', arguments: [] })).error.text).toContain(
      'no function',
    );
    expect((await handlers.CallFunction!({ name: 'init_hash', arguments: [] })).error.text).toContain(
      'takes 1 argument(s), got 0',
    );
    const bad = await handlers.CallFunction!({ name: 'init_hash', arguments: [arg('x')] });
    expect(bad.error).toMatchObject({ functionArgument: 0 });
    expect(bad.error.text).toContain('(CT_INVALID_FINGERPRINT)');
    const garbage = await handlers.CallFunction!({
      name: 'init_hash',
      arguments: [{ msgpack: Buffer.from('c1', 'hex') }],
    });
    expect(garbage.error).toMatchObject({ functionArgument: 0 });
    const ok = await handlers.CallFunction!({ name: 'is_fingerprint', arguments: [arg(FP)] });
    expect(decodeMsgpack(ok.result.msgpack, 'bool')).toBe(true);
  });
});
