import { once } from 'node:events';
import Module from 'node:module';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { createCloudtaserProvider } from '../../provider/cloudtaser.js';
import { decodeJsonValue } from '../../provider/cty/json.js';
import { decodeMsgpack, encodeMsgpack } from '../../provider/cty/msgpack.js';
import { BigNumber, Dynamic, Unknown } from '../../provider/cty/values.js';
import { attributeError, errorToDiagnostic } from '../../provider/framework/diagnostics.js';
import { createProviderHandlers } from '../../provider/framework/provider.js';
import { impliedType } from '../../provider/schema/schema.js';
import { createHclogLogger } from '../../provider/wire/hclog.js';
import { CloudtaserError } from '../../runtime/core/errors.js';
import { createEchoProvider, type EchoStore } from './support/echo-provider.js';

/**
 * runtime/core/errors.ts bundled by esbuild into CommonJS and compiled in this realm, as provider/packaging builds
 * and loads each lazy chunk: a second copy of the class.
 */
async function bundledErrorsChunk(): Promise<typeof import('../../runtime/core/errors.js')> {
  const esbuild = await import('esbuild');
  const built = await esbuild.build({
    entryPoints: [fileURLToPath(new URL('../../runtime/core/errors.ts', import.meta.url))],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    write: false,
  });
  const chunk = { exports: {} as typeof import('../../runtime/core/errors.js') };
  new Script(Module.wrap(built.outputFiles[0].text)).runInThisContext()(chunk.exports, undefined, chunk);
  return chunk.exports;
}

const store = (): EchoStore => ({ things: new Map(), calls: [] });

function setup() {
  const s = store();
  const definition = createEchoProvider(s);
  const handlers = createProviderHandlers(definition);
  const block = definition.resources[0].schema.block;
  const type = impliedType(block);
  const dv = (value: unknown) => ({ msgpack: encodeMsgpack(value as never, type) });
  const read = (msg: { msgpack: Uint8Array }) => decodeMsgpack(msg.msgpack, type) as Record<string, unknown>;
  return { s, handlers, dv, read };
}

describe('framework RPC handlers', () => {
  it('turns a CloudtaserError into one diagnostic: summary from the code, detail = message, attribute path', () => {
    const d = errorToDiagnostic(
      attributeError(['fingerprint'], 'CT_INVALID_FINGERPRINT', 'use the UID'),
      'x',
    );
    expect(d).toEqual({
      severity: 'error',
      summary: 'The fingerprint is not a kube-system namespace UID (a UUID) (CT_INVALID_FINGERPRINT)',
      detail: 'use the UID',
      attribute: ['fingerprint'],
    });
  });

  it('recognises a CloudtaserError from a separately bundled copy of the class, as the lazy chunks carry one', async () => {
    const chunk = await bundledErrorsChunk();
    expect(chunk.CloudtaserError).not.toBe(CloudtaserError);
    const foreign = new chunk.CloudtaserError('CT_OPENBAO_PERMISSION_DENIED', 'denied; check the token', {
      details: { attribute: ['secretstore_address'] },
    });
    expect(errorToDiagnostic(foreign, 'x')).toEqual({
      severity: 'error',
      summary: expect.stringContaining('(CT_OPENBAO_PERMISSION_DENIED)'),
      detail: 'denied; check the token',
      attribute: ['secretstore_address'],
    });
    expect(errorToDiagnostic(new TypeError('boom'), 'applying x').summary).toBe(
      'Unexpected error while applying x',
    );
  });

  it('answers a failing apply with diagnostics instead of a gRPC error', async () => {
    const { handlers, dv } = setup();
    await handlers.ConfigureProvider!({ config: { msgpack: Buffer.from('81a6707265666978c0', 'hex') } });
    const response = await handlers.ImportResourceState!({ typeName: 'echo_thing', id: 'missing' });
    expect(response.diagnostics).toHaveLength(1);
    expect(response.diagnostics[0].summary).toContain('CT_NOT_REGISTERED');
    void dv;
  });

  it('refuses to run resource operations before ConfigureProvider', async () => {
    const { handlers } = setup();
    const response = await handlers.ImportResourceState!({ typeName: 'echo_thing', id: 'x' });
    expect(response.diagnostics[0].summary).toContain('CT_PROVIDER_NOT_CONFIGURED');
  });

  it('reports an unknown resource type as a diagnostic, not a crash', async () => {
    const { handlers } = setup();
    const response = await handlers.ValidateResourceConfig!({
      typeName: 'nope',
      config: { msgpack: Buffer.from('c0', 'hex') },
    });
    expect(response.diagnostics[0].detail).toContain('no resource type nope');
  });

  it('answers a malformed DynamicValue with a CT_PROVIDER_PROTOCOL diagnostic', async () => {
    const { handlers } = setup();
    const response = await handlers.PlanResourceChange!({
      typeName: 'echo_thing',
      priorState: { msgpack: Buffer.from('c0', 'hex') },
      proposedNewState: { msgpack: Buffer.from('dfffffffff', 'hex') },
      config: { msgpack: Buffer.from('c0', 'hex') },
    });
    expect(response.diagnostics[0].summary).toContain('CT_PROVIDER_PROTOCOL');
  });

  it('upgrades JSON state to msgpack, dropping attributes the schema no longer has', async () => {
    const { handlers, read } = setup();
    const json = JSON.stringify({ id: 'i', name: 'a', removed_long_ago: 'x', count_hint: 3 });
    const response = await handlers.UpgradeResourceState!({
      typeName: 'echo_thing',
      version: 1,
      rawState: { json: Buffer.from(json) },
    });
    expect(response.diagnostics).toEqual([]);
    const state = read(response.upgradedState);
    expect(state.name).toBe('a');
    expect(state.count_hint).toBe(3);
    expect(state.value).toBeNull();
    expect('removed_long_ago' in state).toBe(false);
  });

  it('refuses state written by a newer schema version with an actionable message', async () => {
    const { handlers } = setup();
    const response = await handlers.UpgradeResourceState!({
      typeName: 'echo_thing',
      version: 9,
      rawState: { json: Buffer.from('{}') },
    });
    expect(response.diagnostics[0].detail).toContain('upgrade terraform-provider-cloudtaser');
  });

  it('round-trips private state from apply into later calls', async () => {
    const { handlers, dv, read } = setup();
    await handlers.ConfigureProvider!({ config: { msgpack: Buffer.from('81a6707265666978c0', 'hex') } });
    const planned = {
      name: 'a',
      value: null,
      id: new Unknown(),
      upper: 'A',
      keep: false,
      tags: null,
      count_hint: null,
      secret_out: new Unknown(),
    };
    const applied = await handlers.ApplyResourceChange!({
      typeName: 'echo_thing',
      priorState: { msgpack: Buffer.from('c0', 'hex') },
      plannedState: dv(planned),
      config: dv({ name: 'a' }),
    });
    expect(applied.diagnostics).toEqual([]);
    expect(JSON.parse(new TextDecoder().decode(applied.private))).toEqual({ created_by: 'echo' });
    expect(read(applied.newState).id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('fires the AbortSignal handed to operations when Terraform calls StopProvider', async () => {
    let seen: AbortSignal | undefined;
    const definition = createEchoProvider(store());
    const resource = {
      ...definition.resources[0],
      importState: async ({ signal }: { signal: AbortSignal }) => {
        seen = signal;
        // Held until Terraform's StopProvider aborts it, as a long import would be.
        if (!signal.aborted) await once(signal, 'abort');
        throw signal.reason;
      },
    };
    const handlers = createProviderHandlers({ ...definition, resources: [resource as never] });
    await handlers.ConfigureProvider!({ config: { msgpack: Buffer.from('81a6707265666978c0', 'hex') } });
    const pending = handlers.ImportResourceState!({ typeName: 'echo_thing', id: 'x' });
    expect(await handlers.StopProvider!({})).toEqual({ error: '' });
    const response = await pending;
    expect(seen?.aborted).toBe(true);
    expect(response.diagnostics[0].summary).toContain('CT_CANCELLED');
  });
});

describe('DynamicValue debug dump', () => {
  it('dumps resource values as hex but never provider config or blocks with sensitive attributes', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = createHclogLogger({ level: 'info', write: (line) => lines.push(JSON.parse(line)) });
    const cloudtaser = createProviderHandlers(createCloudtaserProvider({ env: {} }), {
      logger,
      dumpValues: true,
    });
    await cloudtaser.ValidateProviderConfig!({ config: { msgpack: Buffer.from('c0', 'hex') } });
    await cloudtaser.ValidateDataResourceConfig!({
      typeName: 'cloudtaser_cluster_fingerprint',
      config: { msgpack: Buffer.from('c0', 'hex') },
    });
    expect(lines.filter((l) => l.event === 'dynamic_value')).toEqual([]);
    const echo = createProviderHandlers(createEchoProvider(store()), { logger, dumpValues: true });
    await echo.ValidateResourceConfig!({
      typeName: 'echo_thing',
      config: { msgpack: Buffer.from('c0', 'hex') },
    });
    expect(lines.filter((l) => l.event === 'dynamic_value')).toEqual([
      expect.objectContaining({ rpc: 'ValidateResourceConfig', field: 'config', msgpack: 'c0' }),
    ]);
  });
});

describe('JSON value codec (state upgrade)', () => {
  it('fills missing attributes with null and converts primitives as Terraform does', () => {
    const t = ['object', { s: 'string', n: 'number', b: 'bool', l: ['list', 'string'] }] as const;
    expect(decodeJsonValue('{"s": 5, "b": "true", "n": "12"}', t as never)).toEqual(
      Object.assign(Object.create(null), { s: '5', n: 12, b: true, l: null }),
    );
  });

  it('reads dynamic values as {type, value}', () => {
    const v = decodeJsonValue('{"type":["list","string"],"value":["a"]}', 'dynamic');
    expect(v).toEqual(new Dynamic(['list', 'string'], ['a']));
  });

  it('keeps numeric strings that no double holds exactly as BigNumber', () => {
    expect(decodeJsonValue('"0.1"', 'number')).toEqual(new BigNumber('0.1'));
  });

  it('rejects invalid JSON and wrong shapes with CT_PROVIDER_PROTOCOL', () => {
    for (const [text, t] of [
      ['{', 'string'],
      ['[1]', 'string'],
      ['{"a":1}', ['list', 'string']],
      ['"x"', 'number'],
    ] as const) {
      expect(() => decodeJsonValue(text, t as never)).toThrow(CloudtaserError);
    }
  });
});
