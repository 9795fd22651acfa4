/**
 * A throwaway provider used to test the framework against the real terraform binary without any domain
 * code: `echo_thing` keeps objects in a Map; `data.echo_echo` returns its input.
 */
import { randomUUID } from 'node:crypto';
import { attributeError } from '../../../provider/framework/diagnostics.js';
import {
  defineDataSource,
  defineResource,
  type ProviderDefinition,
} from '../../../provider/framework/provider.js';
import { attr } from '../../../provider/schema/schema.js';

export interface EchoStore {
  readonly things: Map<string, { name: string; value: string | null }>;
  readonly calls: string[];
}

export function createEchoProvider(store: EchoStore): ProviderDefinition<typeof providerBlock, EchoStore> {
  return {
    address: 'registry.terraform.io/cloudtaser/echo',
    version: '0.0.1',
    schema: { version: 0, block: providerBlock },
    configure: () => store,
    resources: [
      defineResource<EchoStore>()({
        typeName: 'echo_thing',
        schema: { version: 1, block: thingBlock },
        validate(config) {
          if (typeof config.name === 'string' && config.name.includes(' ')) {
            throw attributeError(
              ['name'],
              'CT_INVALID_ARGUMENT',
              `name ${JSON.stringify(config.name)} contains a space; use dashes`,
            );
          }
        },
        modifyPlan({ planned }) {
          if (typeof planned.name === 'string') planned.upper = planned.name.toUpperCase();
        },
        async create({ planned, client, private: priv }) {
          client.calls.push('create');
          const id = randomUUID();
          client.things.set(id, { name: planned.name, value: planned.value });
          priv.set('created_by', 'echo');
          return { ...planned, id, upper: planned.name.toUpperCase(), secret_out: 'not-a-secret' };
        },
        async read({ state, client }) {
          client.calls.push('read');
          const thing = client.things.get(state.id!);
          if (!thing) return null;
          return { ...state, name: thing.name, value: thing.value };
        },
        async update({ planned, client }) {
          client.calls.push('update');
          client.things.set(planned.id!, { name: planned.name, value: planned.value });
          return planned;
        },
        async delete({ state, client }) {
          client.calls.push('delete');
          client.things.delete(state.id!);
        },
        async importState({ id, client }) {
          const thing = client.things.get(id);
          if (!thing) throw attributeError([], 'CT_NOT_REGISTERED', `no thing ${id}`);
          return { id, name: thing.name, value: thing.value, upper: thing.name.toUpperCase(), tags: null };
        },
      }),
      defineResource<EchoStore>()({
        typeName: 'echo_legacy',
        schema: { version: 0, block: legacyBlock },
        create: async ({ planned }) => ({ ...planned, id: randomUUID() }),
        read: async ({ state }) => state,
        delete: async () => {},
      }),
    ],
    dataSources: [
      defineDataSource<EchoStore>()({
        typeName: 'echo_echo',
        schema: { version: 0, block: echoBlock },
        async read({ config }) {
          return { ...config, output: config.input };
        },
      }),
    ],
  };
}

const providerBlock = {
  description: 'Echo test provider.',
  attributes: {
    prefix: attr.string({ description: 'Unused prefix.', optional: true }),
  },
};

const thingBlock = {
  description: 'A thing kept in memory.',
  attributes: {
    id: attr.string({ description: 'Random id.', computed: true }),
    name: attr.string({
      description: 'Name; changing it replaces the thing.',
      required: true,
      forceNew: true,
    }),
    value: attr.string({ description: 'Value; updated in place.', optional: true }),
    upper: attr.string({ description: 'Upper-case name, known at plan time.', computed: true }),
    keep: attr.bool({ description: 'State-only flag.', optional: true, computed: true, default: false }),
    tags: attr.stringMap({ description: 'Tags.', optional: true }),
    count_hint: attr.number({ description: 'A number.', optional: true }),
    secret_out: attr.string({
      description: 'Computed output (not sensitive, so fixture capture may dump it).',
      computed: true,
    }),
  },
};

/** A resource with a deprecated argument (kept apart from echo_thing, whose captured fixtures must not move). */
const legacyBlock = {
  description: 'A thing with a deprecated argument.',
  attributes: {
    id: attr.string({ description: 'Random id.', computed: true }),
    old_label: attr.string({
      description: 'A label kept for old configurations.',
      optional: true,
      deprecated: 'use tags instead; old_label is removed in echo 1.0',
    }),
  },
};

const echoBlock = {
  description: 'Echoes its input.',
  attributes: {
    input: attr.string({ description: 'Input.', required: true }),
    output: attr.string({ description: 'Output.', computed: true }),
  },
};
